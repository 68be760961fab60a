"""nfa-rule: speed-limited steps at one layer against plain gradient descent, and RFM.

The rule (:class:`ntkdyn.numerics.features.SpeedLimited`): the target layer takes steps of fixed
Frobenius size ``speed * ||W_l||_F`` along ``-grad``; the other layers take plain gradient steps. It
is a reconstruction, derived here, of the speed-limited optimisation of Beaglehole, Mitliagkas &
Agarwala (2024, arXiv:2402.05271), whose exact update is not reproduced; the paper reports that such
a rule raises the NFA correlation of the chosen layer and improves its features (abstract).

For plain GD and for the rule at each target layer we train the bias-free five-hidden-layer
ReLU MLP on the low-rank task ``y = z_1 z_2 + relu(z_3)`` and measure, after ``steps`` steps,

- UC-NFC and C-NFC of every hidden layer (Pearson, power 1);
- the quality of the learned features on held-out data (normalised test MSE): a Laplace
  kernel ridge probe on ``x -> F^{1/2} x`` with ``F`` the first layer's NFM (trace-normalised),
  a linear ridge probe on each hidden representation, the network's own test error, and the
  principal-angle cosines between the top-3 eigenvectors of the first layer's NFM and the
  planted subspace ``U``;

and fit a Laplace-kernel Recursive Feature Machine (Radhakrishnan et al. 2024) on the same
data: its test error, its recovery of ``U``, and the correlation of its feature matrix with the
networks' first-layer NFM.

The library has no theory of the rule's effect, so every number is an observation: simulation
against a qualitative claim (the rule raises the target layer's UC-NFC; RFM recovers the planted
subspace and beats the plain Laplace kernel). Every run shares the data and the initial weights
(drawn from the configuration seed), so rule and GD are compared on the same network.

Data (the configuration keys ``dataset``, ``classes``, ``n_train``, ``n_test``, ``preprocessing``;
:func:`ntkdyn.numerics.tasks.load_task`): the synthetic low-rank task (``synthetic-low-rank``) at
smoke and quick scale; 10-class CIFAR-10 (inputs on the sphere of radius ``sqrt(d)``; no planted
subspace, so no recovery number) at paper scale. The targets were measured on the synthetic data;
on another data set they state the same claims, unmeasured.
"""
from __future__ import annotations

import numpy as np

from ..numerics.features import SpeedLimited, nfa_correlations, nfm, principal_cosines
from ..numerics.networks import MLP
from ..numerics.rfm import RecursiveFeatureMachine
from ..numerics.tasks import DATA_KEYS, check_task, data_entries, load_task
from ..numerics.training import gradient_descent, record_schedule
from . import config_types as ct
from . import footprint as fp
from . import style
from .experiment import Experiment, at_least, at_most, observation

NAME = "nfa-rule"
DESCRIPTION = "speed-limited steps at one layer vs GD: NFA per layer, feature quality; RFM"

SMOKE = {
    "dataset": "synthetic-low-rank", "classes": None, "preprocessing": "none",
    "n_train": 256, "n_test": 256, "d": 20, "width": 32, "hidden_layers": 5, "lr": 0.5,
    "steps": 200,
    "speed": 0.01, "target_layers": [0, 3], "num_records": 6, "rfm_iterations": 3,
    "bandwidth": 10.0, "ridge": 1e-3, "seed": 0,
}
QUICK = {
    "dataset": "synthetic-low-rank", "classes": None, "preprocessing": "none",
    "n_train": 256, "n_test": 512, "d": 20, "width": 64, "hidden_layers": 5, "lr": 0.5,
    "steps": 500,
    "speed": 0.01, "target_layers": [0, 3], "num_records": 12, "rfm_iterations": 3,
    "bandwidth": 10.0, "ridge": 1e-3, "seed": 0,
}
# The paper's data (Beaglehole et al. 2024: CIFAR-10, SVHN and others): 10-class CIFAR-10, inputs
# on the sphere of radius sqrt(d) (d = 3072; the key d is unused). Real data plant no subspace,
# so the subspace-recovery number is declared on the synthetic low-rank task only.
PAPER = {
    "dataset": "cifar10", "classes": None, "preprocessing": "sphere",
    "n_train": 512, "n_test": 1000, "d": 20, "width": 128, "hidden_layers": 5, "lr": 0.5,
    "steps": 1500, "speed": 0.01, "target_layers": [0, 1, 2, 3, 4], "num_records": 20,
    "rfm_iterations": 5, "bandwidth": 10.0, "ridge": 1e-3, "seed": 0,
}


def _shared_seeds(seed):
    """Data (0) and initial weights (1): children of the configuration seed, shared by every run."""
    return np.random.SeedSequence(seed.entropy).spawn(2)


def _task(point, data_seed):
    """Train and test data and the planted subspace ``U`` (``None`` for real data)."""
    ds = load_task(point, np.random.default_rng(data_seed), d=point["d"])
    return ds.X, ds.Y, ds.X_test, ds.Y_test, ds.info.get("U"), ds


def has_planted_subspace(config) -> bool:
    """Whether the configured data plant a subspace ``U`` (the synthetic low-rank task)."""
    return config["dataset"] == "synthetic-low-rank"


def _subspace(matrices, U) -> dict:
    """``{name}subspace_cos`` of each named matrix: the principal cosines with
    ``U``; empty where the data plant no subspace."""
    if U is None:
        return {}
    return {f"{name}subspace_cos": principal_cosines(M, U) for name, M in matrices.items()}


def _nmse(pred, Y):
    return float(np.mean((pred - Y) ** 2) / np.var(Y))


def kernel_probe(F, X, Y, Xt, Yt, bandwidth, ridge) -> float:
    """Normalised test MSE of Laplace kernel ridge regression, ``M = F`` scaled to trace ``d``."""
    M = F * (F.shape[0] / np.trace(F))
    machine = RecursiveFeatureMachine(bandwidth, ridge, iterations=0, M0=M).fit(X, Y)
    return _nmse(machine.predict(Xt), Yt)


def linear_probe(Phi, Y, Phit, Yt, ridge=1e-3) -> float:
    """Normalised test MSE of ridge regression on features ``Phi`` (with an intercept)."""
    mean, ymean = Phi.mean(axis=0), Y.mean(axis=0)
    A, At = Phi - mean, Phit - mean
    G = A.T @ A
    G[np.diag_indices_from(G)] += ridge * np.trace(G) / G.shape[0] + 1e-12
    w = np.linalg.solve(G, A.T @ (Y - ymean))
    return _nmse(At @ w + ymean, Yt)


def runs(config) -> list[dict]:
    if int(config["n_test"]) < 1:
        raise ValueError(f"n_test: nfa-rule probes held-out data, got {config['n_test']}")
    check_task(config, d=config["d"])
    keys = DATA_KEYS + ("d", "width", "hidden_layers", "lr", "steps", "speed", "num_records",
                        "rfm_iterations", "bandwidth", "ridge")
    base = {k: config[k] for k in keys}
    n_hidden = config["hidden_layers"]
    for t in config["target_layers"]:
        if not isinstance(t, int) or not 0 <= t < n_hidden:
            raise ValueError("target_layers must hold hidden-layer indices in "
                             f"[0, {n_hidden - 1}], got {t!r}")
    return ([dict(base, kind="gd", target=-1)]
            + [dict(base, kind="rule", target=int(t)) for t in config["target_layers"]]
            + [dict(base, kind="rfm", target=-1)])


def run(point, seed) -> dict:
    """One of: plain GD, the rule at one target layer, or RFM, on the shared data and weights."""
    data_seed, init_seed = _shared_seeds(seed)
    X, Y, Xt, Yt, U, ds = _task(point, data_seed)
    if point["kind"] == "rfm":
        machine = RecursiveFeatureMachine(point["bandwidth"], point["ridge"],
                                          point["rfm_iterations"]).fit(X, Y)
        return {"M": machine.M, "test_error": np.array(_nmse(machine.predict(Xt), Yt)),
                **_subspace({"": machine.M}, U),
                "identity_error": np.array(kernel_probe(np.eye(X.shape[1]), X, Y, Xt, Yt,
                                                        point["bandwidth"], point["ridge"])),
                **data_entries(ds)}
    n_hidden = point["hidden_layers"]
    net = MLP([X.shape[1]] + [point["width"]] * n_hidden + [Y.shape[1]], activation="relu")
    p0 = net.init(np.random.default_rng(init_seed))
    update = (SpeedLimited(net, point["target"], speed=point["speed"]) if point["kind"] == "rule"
              else None)
    schedule = record_schedule(point["steps"], num=point["num_records"], log=True)
    record = {"nfa": lambda net_, p, X_, Y_: np.stack(list(
        nfa_correlations(net_, p, X_, p0, range(n_hidden)).values()))}
    kwargs = {} if update is None else {"update": update}
    tr = gradient_descent(net, p0, X, Y, lr=point["lr"], steps=point["steps"],
                          record_steps=schedule, record=record, **kwargs)
    p = tr.params
    obs = tr.observables["nfa"]  # (records, 2, n_hidden)
    fwd, fwd_t = net.forward(p, X), net.forward(p, Xt)
    F0, C0 = nfm(p[0]), nfm(p[0] - p0[0])
    return {
        "steps": tr.record_steps[1:], "uc": obs[1:, 0], "c": obs[1:, 1], "losses": tr.losses,
        "test_error": np.array(_nmse(fwd_t.output, Yt)),
        "kernel_probe": np.array(kernel_probe(F0, X, Y, Xt, Yt, point["bandwidth"],
                                              point["ridge"])),
        "linear_probe": np.array([linear_probe(fwd.activations[l + 1], Y, fwd_t.activations[l + 1],
                                               Yt) for l in range(n_hidden)]),
        **_subspace({"": F0, "centred_": C0}, U),
        "nfm0": F0, "cnfm0": C0,
    }


def combine(config, results) -> dict:
    gd, rules, rfm = results[0], results[1:-1], results[-1]
    out = {"target_layers": np.asarray(config["target_layers"], dtype=int),
           "steps": np.asarray(gd["steps"])}
    keys = ("uc", "c", "losses", "test_error", "kernel_probe", "linear_probe", "subspace_cos",
            "centred_subspace_cos", "nfm0", "cnfm0")
    for key in (k for k in keys if k in gd):  # no subspace keys on real data
        out[f"gd_{key}"] = np.asarray(gd[key])
        out[f"rule_{key}"] = np.stack([np.asarray(r[key]) for r in rules])  # (targets, ...)
    for key in (k for k in ("M", "test_error", "subspace_cos", "identity_error") if k in rfm):
        out[f"rfm_{key}"] = np.asarray(rfm[key])
    out.update({k: v for k, v in rfm.items() if k.startswith("data_")})
    return out


def measure(result) -> dict:
    """The rule's UC-NFC gain at each target layer (against GD, final step) and RFM's checks."""
    targets = result["target_layers"]
    idx = np.arange(len(targets))
    uc_gain = result["rule_uc"][idx, -1, targets] - result["gd_uc"][-1][targets]
    out = {"uc_gain_min": float(np.min(uc_gain))}
    for a, t in enumerate(targets):
        out[f"uc_gain_layer{t + 1}"] = float(uc_gain[a])
    if "rfm_subspace_cos" in result:  # a planted subspace
        out["rfm_subspace_cos_min"] = float(np.min(result["rfm_subspace_cos"]))
    out["rfm_minus_identity_kernel_test_error"] = float(result["rfm_test_error"]
                                                        - result["rfm_identity_error"])
    return out


def numbers(config) -> dict:
    out = {
        "uc_gain_min": observation(
            at_least(0.1), "min over target layers of the rule's UC-NFC minus GD's (final "
            "step): the rule raises the target layer's uncentred correlation"),
        # quick 0.33, smoke 0.30 (seeds 1-2: quick 0.32, 0.30; smoke 0.36, 0.17)
        "rfm_minus_identity_kernel_test_error": observation(
            at_most(0.0), "RFM's normalised test MSE minus the plain Laplace kernel's (M = I): "
            "learning M helps"),  # quick -0.41, smoke -0.38
    }
    if has_planted_subspace(config):
        out["rfm_subspace_cos_min"] = observation(  # quick 0.96, smoke 0.96
            at_least(0.9), "smallest principal cosine between RFM's feature matrix and the "
            "planted subspace U: RFM recovers it (Radhakrishnan et al. 2024)")
    for t in config["target_layers"]:
        out[f"uc_gain_layer{int(t) + 1}"] = observation(
            at_least(0.1), f"the rule's UC-NFC gain at layer {int(t) + 1}")
        # layer 1: quick 0.33, smoke 0.30; layer 4: quick 0.45, smoke 0.41
    return out


@style.styled
def plot(result):
    targets, steps = result["target_layers"], result["steps"]
    n_hidden = result["gd_uc"].shape[-1]
    layers = np.arange(1, n_hidden + 1)
    fig, axes = style.panels(4, ncols=2)
    ax = axes[0]
    idx = np.arange(len(targets))
    x = targets + 1
    ax.plot(layers, result["gd_uc"][-1], "o:", color="C0", label="GD: UC-NFA")
    ax.plot(layers, result["gd_c"][-1], "s:", color="C2", label="GD: C-NFA")
    ax.plot(x, result["rule_uc"][idx, -1, targets], "o-", color="C0", ms=6,
            label="rule at that layer: UC-NFA")
    ax.plot(x, result["rule_c"][idx, -1, targets], "s-", color="C2", ms=6,
            label="rule at that layer: C-NFA")
    ax.set(xlabel="layer (target of the rule)", ylabel=f"correlation at step {int(steps[-1])}",
           ylim=(0, 1.02), xticks=layers)
    style.title(ax, "NFA at the target layer: GD vs rule")
    style.legend(ax, loc="lower left")
    ax = axes[1]
    for a, t in enumerate(targets):
        line, = ax.plot(steps, result["rule_uc"][a, :, t], label=f"rule at layer {t + 1}: UC")
        ax.plot(steps, result["gd_uc"][:, t], color=line.get_color(), ls=":",
                label=f"GD, layer {t + 1}: UC")
        ax.plot(steps, result["rule_c"][a, :, t], color=line.get_color(), ls="--", lw=0.8)
    ax.plot([], [], color="k", ls="--", lw=0.8, label="rule: C")
    ax.set(xscale="log", xlabel="GD step", ylabel="correlation at the target layer",
           ylim=(0, 1.02))
    style.title(ax, "target layer over training")
    style.legend(ax, loc="lower left", ncol=2)
    ax = axes[2]
    width = 0.8 / (len(targets) + 1)
    ax.bar(layers - 0.4 + width / 2, result["gd_linear_probe"], width, label="GD")
    for a, t in enumerate(targets):
        ax.bar(layers - 0.4 + (a + 1.5) * width, result["rule_linear_probe"][a], width,
               label=f"rule at layer {t + 1}")
    top = max(np.max(result["gd_linear_probe"]), np.max(result["rule_linear_probe"]))
    ax.set(xlabel="hidden representation of layer", ylabel="normalised test MSE", xticks=layers,
           ylim=(0, 1.3 * top))
    style.title(ax, "linear probe on hidden features")
    style.legend(ax, loc="upper center", ncol=len(targets) + 1)
    ax = axes[3]
    names = ["Laplace (M = I)", "NFM$_1$ of GD"]
    values = [float(result["rfm_identity_error"]), float(result["gd_kernel_probe"])]
    for a, t in enumerate(targets):
        names.append(f"NFM$_1$, rule at {t + 1}")
        values.append(float(result["rule_kernel_probe"][a]))
    names.append("RFM")
    values.append(float(result["rfm_test_error"]))
    ax.barh(np.arange(len(names)), values, color=["0.6", "C0"] + ["C1"] * len(targets) + ["C3"])
    ax.set_yticks(np.arange(len(names)), names)
    ax.set(xlabel="normalised test MSE")
    style.title(ax, r"Laplace kernel probe on $x \to F^{1/2} x$")
    return fig


def memory(config) -> int:
    """Peak bytes: the larger of a training run (train and test passes, the NFA feature
    matrices) and the RFM run (Laplace kernels ``(n, n)``, gradients ``(n, d)``), plus each
    run's feature matrices."""
    n, nt, L, m = config["n_train"], config["n_test"], config["hidden_layers"], config["width"]
    widths = fp.mlp_widths(config, depth=L + 1)
    D, B = widths[0], fp.FLOAT64_BYTES
    gd = fp.network_bytes(widths, n + nt) + 6 * B * max(D, m) ** 2
    rfm = (fp.gram_bytes(n, count=5) + fp.gram_bytes(nt, n, count=2) + 4 * B * (n + nt) * D
           + 4 * B * D * D)
    runs = len(config["target_layers"]) + 2
    return max(gd, rfm) + runs * (2 * B * D * D + fp.RUN_OVERHEAD_BYTES)


EXPERIMENT = Experiment(
    name=NAME, description=DESCRIPTION,
    configs={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    memory=memory,
    config_types={"speed": ct.positive_float(),
                  "target_layers": ct.ListOf(ct.non_negative_int(), distinct=True),
                  "rfm_iterations": ct.positive_int(), "bandwidth": ct.positive_float(),
                  "ridge": ct.positive_float()},
    numbers=numbers, measure=measure, plot=plot,
    runs=runs, run=run, combine=combine)
