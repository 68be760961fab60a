"""nfa-early-time: the early-time prediction of the centred NFA against simulation.

Beaglehole, Mitliagkas & Agarwala (2024) give an early-time theory of the centred neural feature
correlation in terms of simple statistics of the inputs and labels (abstract). Theory here
(:mod:`ntkdyn.theory.nfa`, derived from the definitions): to first order in t the weight change of
layer ``l`` is ``dW = -(t c / n) B^T M`` (``B`` the pre-activation tangent features, ``M`` the rows
``r_ij a_i``), so the centred correlation tends to

    C-NFC(0+) = rho(M^T Theta M, M^T Theta^2 M),    Theta = B B^T (the PTK Gram at t = 0),

a function of the layer inputs, the residuals ``f_0 - y`` and the initial PTK only, with error
``O(t)`` (:data:`ntkdyn.theory.nfa.EARLY_TIME_ERROR_ORDER`). Simulation: a bias-free ReLU MLP
(five hidden layers) on the low-rank task, trained by gradient descent with learning rate
``lr / max(init_scale, 1)^(2 H)`` (the NTK grows like ``init_scale^(2 H)`` for ``H`` hidden
layers; a small init scale keeps ``lr``, as its larger relative steps would diverge), C-NFC
recorded at log-spaced steps.

A PTK that is a multiple of the identity (or of the all-ones matrix) predicts
``C-NFC(0+) = 1`` whatever the data; the simulated correlations sit close to 1, so the numbers
compare departures from perfect alignment, ``(1 - C_theory) / (1 - C_sim)``, besides the relative
error.

A second check uses no hidden weights at all: for a wide two-layer ReLU network the PTK is
replaced by its infinite-width limit, the degree-0 arc-cosine kernel of the inputs
(:func:`ntkdyn.theory.nfa.relu_ptk_two_layer`). It trains with a smaller ``wide_lr``: a two-layer
network's residuals, which the theory freezes, change faster than a deep one's.

Data (the configuration keys ``dataset``, ``classes``, ``n_train``, ``n_test``, ``preprocessing``;
:func:`ntkdyn.numerics.tasks.load_task`): the synthetic low-rank task (``synthetic-low-rank``) at
smoke and quick scale; CIFAR-10 odd vs even (``+-1`` targets, inputs on the sphere of radius
``sqrt(d)``) at paper scale. The targets were measured on the synthetic data; on another data set
they state the same claims, unmeasured.
"""
from __future__ import annotations

import numpy as np

from ..numerics.features import nfa_observable, ptk_gram
from ..numerics.networks import MLP
from ..numerics.tasks import DATA_KEYS, check_task, data_entries, load_task
from ..numerics.training import gradient_descent, record_schedule
from ..theory.nfa import EARLY_TIME_ERROR_ORDER, early_centered_nfc, relu_ptk_two_layer
from . import config_types as ct
from . import footprint as fp
from . import style
from .experiment import Control, Experiment, agreement, around, at_least, at_most

NAME = "nfa-early-time"
DESCRIPTION = "early-time C-NFA theory (inputs, labels, initial PTK) vs GD, across init scales"

SMOKE = {
    "dataset": "synthetic-low-rank", "classes": None, "preprocessing": "none", "n_test": 0,
    "n_train": 128, "d": 20, "width": 64, "hidden_layers": 5, "init_scales": [0.5, 1.0, 2.0],
    "lr": 0.5, "steps": 150, "num_records": 12, "small_step": 5, "wide_width": 1024,
    "wide_lr": 0.05, "wide_steps": 20, "seed": 0,
}
QUICK = {
    "dataset": "synthetic-low-rank", "classes": None, "preprocessing": "none", "n_test": 0,
    "n_train": 256, "d": 20, "width": 64, "hidden_layers": 5, "init_scales": [0.5, 1.0, 2.0],
    "lr": 0.5, "steps": 300, "num_records": 16, "small_step": 5, "wide_width": 2048,
    "wide_lr": 0.05, "wide_steps": 100, "seed": 0,
}
# The paper's data (Beaglehole et al. 2024 train on CIFAR-10, SVHN and others): CIFAR-10 as the
# odd/even label-parity binary task (the theory here is for one output), inputs on the sphere of
# radius sqrt(d) (d = 3072; the key d is unused).
PAPER = {
    "dataset": "cifar10", "classes": "odd-even", "preprocessing": "sphere", "n_test": 0,
    "n_train": 512, "d": 20, "width": 128, "hidden_layers": 5, "init_scales": [0.5, 1.0, 2.0, 4.0],
    "lr": 0.5, "steps": 2000, "num_records": 30, "small_step": 5, "wide_width": 8192,
    "wide_lr": 0.05, "wide_steps": 300, "seed": 0,
}


def runs(config) -> list[dict]:
    """One run per init scale of the deep network, and one wide two-layer run."""
    if not 1 <= config["small_step"] <= min(config["steps"], config["wide_steps"]):
        raise ValueError(f"small_step must lie in [1, min(steps, wide_steps)], "
                         f"got {config['small_step']}")
    check_task(config, d=config["d"])
    keys = DATA_KEYS + ("d", "width", "hidden_layers", "lr", "steps", "num_records",
                        "small_step")
    points = [dict({k: config[k] for k in keys}, kind="deep", init_scale=float(s))
              for s in config["init_scales"]]
    points.append(dict({k: config[k] for k in keys}, kind="two-layer",
                       width=config["wide_width"], lr=config["wide_lr"], steps=config["wide_steps"],
                       init_scale=1.0))
    return points


def run(point, seed) -> dict:
    """Train one network; the theory's ingredients (layer inputs, residuals, PTK) at ``t = 0``.

    The data come from the configuration seed alone (``seed.entropy``, shared by every run), the
    weights from the run's own stream.
    """
    ds = load_task(point, np.random.SeedSequence(seed.entropy), d=point["d"])
    X, Y = ds.X, ds.Y
    if Y.shape[1] != 1:
        raise ValueError("classes: nfa-early-time needs a scalar target (classes = 'odd-even' for "
                         f"a real data set), got {Y.shape[1]} outputs")
    s = point["init_scale"]
    n_hidden = point["hidden_layers"] if point["kind"] == "deep" else 1
    net = MLP([X.shape[1]] + [point["width"]] * n_hidden + [1], activation="relu", init_scale=s)
    p0 = net.init(np.random.default_rng(seed))
    fwd = net.forward(p0, X)
    R = fwd.output - Y
    theta = np.stack([ptk_gram(net, p0, X, l)[0, 0] for l in range(n_hidden)])  # (layers, n, n)
    steps = point["steps"]
    schedule = np.union1d(record_schedule(steps, num=point["num_records"], log=True),
                          [point["small_step"]])
    lr = point["lr"] / max(s, 1.0) ** (2 * n_hidden)
    tr = gradient_descent(net, p0, X, Y, lr=lr, steps=steps, record_steps=schedule,
                          record={"nfa": nfa_observable(p0, layers=range(n_hidden))})
    obs = tr.observables["nfa"]
    out = {"steps": tr.record_steps[1:], "c": obs[1:, 1], "uc": obs[1:, 0], "R": R,
           "theta": theta, "inputs0": X,
           "inputs_hidden": np.array([fwd.activations[l] for l in range(1, n_hidden)])}
    if point["kind"] == "two-layer":
        # inputs, labels, initial outputs and the infinite-width PTK only
        out["theta_arccos"] = relu_ptk_two_layer(X)
        out.update(data_entries(ds))
    return out


def predictions(inputs0, inputs_hidden, R, theta) -> np.ndarray:
    """``C-NFC(0+)`` per layer from the layer inputs, residuals and PTK ``theta`` (layers, n, n)."""
    inputs = [inputs0] + list(inputs_hidden[:len(theta) - 1])
    return np.array([early_centered_nfc(A, R, T) for A, T in zip(inputs, theta)])


def combine(config, results) -> dict:
    """Stack the runs and add the theory: ``C-NFC(0+)`` from each run's quantities at ``t = 0``."""
    deep, wide = results[:-1], results[-1]
    out = {
        "init_scales": np.asarray(config["init_scales"], dtype=float),
        "small_step": np.array(config["small_step"]),
        "steps": np.asarray(deep[0]["steps"]),
        "c": np.stack([r["c"] for r in deep]),  # (scales, records, layers)
        "uc": np.stack([r["uc"] for r in deep]),
        "R": np.stack([r["R"] for r in deep]),  # (scales, n, 1)
        "theta": np.stack([r["theta"] for r in deep]),  # (scales, layers, n, n)
        "inputs0": np.asarray(deep[0]["inputs0"]),
        "inputs_hidden": np.stack([r["inputs_hidden"] for r in deep]),
        "wide_steps": np.asarray(wide["steps"]),
        "wide_c": np.asarray(wide["c"])[:, 0],
        "wide_R": np.asarray(wide["R"]),
        "wide_theta": np.asarray(wide["theta"])[0],
        "wide_theta_arccos": np.asarray(wide["theta_arccos"]),
        "predicted_error_order": np.array(EARLY_TIME_ERROR_ORDER),
        **{k: v for k, v in wide.items() if k.startswith("data_")},
    }
    return dict(out, **theory_side(out))


def theory_side(result) -> dict:
    """The predictions from the stored ``t = 0`` quantities (no simulated correlation is used)."""
    pred = np.stack([predictions(result["inputs0"], result["inputs_hidden"][a], result["R"][a],
                                 result["theta"][a]) for a in range(len(result["init_scales"]))])
    X, R = result["inputs0"], result["wide_R"]
    return {"pred": pred,  # (scales, layers)
            "wide_pred": np.array(early_centered_nfc(X, R, result["wide_theta"])),
            "wide_pred_arccos": np.array(early_centered_nfc(X, R, result["wide_theta_arccos"]))}


def _errors(result):
    """Relative errors ``|C_sim - pred| / pred``, shape (scales, records, layers)."""
    pred = result["pred"][:, None, :]
    return np.abs(result["c"] - pred) / pred


def _early(result):
    """Index of ``small_step`` and the mask of the early records (up to 10 ``small_step``)."""
    steps = result["steps"]
    small = int(np.searchsorted(steps, result["small_step"]))
    return small, steps <= 10 * steps[small]


def measure(result) -> dict:
    """Relative errors and departure ratios at ``small_step``, the error's order in t, the
    two-layer checks, and the error at the last step."""
    steps = result["steps"]
    small, early = _early(result)
    err = _errors(result)
    mean_err = err[:, early].mean(axis=(0, 2))
    slope = np.polyfit(np.log(steps[early]), np.log(mean_err), 1)[0]
    # pooled over init scales and layers: the layers nearest the output have 1 - C ~ 1e-4
    departure = np.sum(1.0 - result["pred"]) / np.sum(1.0 - result["c"][:, small])
    w_small = int(np.searchsorted(result["wide_steps"], result["small_step"]))
    wide_departure = 1.0 - result["wide_c"][w_small]
    return {
        "rel_error_small_t_max": float(np.max(err[:, small])),
        "departure_ratio_small_t": float(departure),
        "error_order_minus_theory": float(slope - result["predicted_error_order"]),
        "two_layer_arccos_departure_ratio": float(
            (1.0 - result["wide_pred_arccos"]) / wide_departure),
        "two_layer_ptk_departure_ratio": float((1.0 - result["wide_pred"]) / wide_departure),
        "rel_error_final_max": float(np.max(err[:, -1])),
    }


def numbers(config) -> dict:
    # Measured (seed 0; seeds 1-2 in brackets) and the controls ptk_identity / input_gram_for_ptk.
    return {
        "rel_error_small_t_max": agreement(
            at_most(0.05), "max over init scales and layers of |C_sim - C_theory| / C_theory at "
            "small_step"),  # quick 0.0024, smoke 0.030 [0.016, 0.009] (the weights' streams as
        # drawn since the data keys entered the points; before: quick 0.008, smoke 0.008
        # [0.005, 0.017]); ptk_identity 0.10 / 0.34, input_gram 0.095 / 0.20 (quick / smoke)
        "departure_ratio_small_t": agreement(
            around(1.0, 0.2), "sum of (1 - C_theory) over init scales and layers, over the sum "
            "of (1 - C_sim) at small_step"),  # quick 0.99 [1.06, 1.00], smoke 1.00 [1.02, 0.93];
        # ptk_identity 0, input_gram 0.21 (quick) / 0.21 (smoke)
        "error_order_minus_theory": agreement(
            around(0.0, 0.5), "log-log slope of the mean relative error over the early records "
            "(up to 10 small_step), minus the predicted order 1"),
        # quick -0.23 [0.06, 0.21], smoke -0.12 [-0.04, -0.06]; ctl -0.99 to -1.02
        "two_layer_arccos_departure_ratio": agreement(
            around(1.0, 0.2), "wide two-layer ReLU, infinite-width (arc-cosine) PTK: "
            "(1 - C_theory) / (1 - C_sim) at small_step"),
        # quick 0.94 [1.06, 1.13], smoke 1.01 [1.08, 1.05]; ptk_identity 0, input_gram 0.25 / 0.37
        "two_layer_ptk_departure_ratio": agreement(
            around(1.0, 0.1), "the same with the empirical PTK of the wide network"),
        # quick 1.017 [1.022, 1.007], smoke 1.009 [1.007, 1.014]; ctl as above
        "rel_error_final_max": agreement(
            at_least(0.03), "max over init scales and layers of the relative error at the last "
            "step: the early-time theory no longer holds"),  # quick 0.24 [0.08, 0.19],
        # smoke 0.07 [0.19, 0.12]
    }


def _with_theta(transform):
    def apply(result, config):
        out = dict(result, theta=transform(result["theta"]),
                   wide_theta=transform(result["wide_theta"][None])[0],
                   wide_theta_arccos=transform(result["wide_theta_arccos"][None])[0])
        return dict(out, **theory_side(out))
    return apply


def _identity_ptk(theta):
    return np.broadcast_to(np.eye(theta.shape[-1]), theta.shape).copy()


def _input_gram(result, config):
    """The layer-input Gram ``A A^T`` (the NNGP-like kernel of the layer) in place of the PTK."""
    theta = np.empty_like(result["theta"])
    for a in range(len(result["init_scales"])):
        layers = [result["inputs0"]] + list(result["inputs_hidden"][a])
        for l in range(theta.shape[1]):
            theta[a, l] = layers[l] @ layers[l].T
    gram = result["inputs0"] @ result["inputs0"].T
    out = dict(result, theta=theta, wide_theta=gram, wide_theta_arccos=gram)
    return dict(out, **theory_side(out))


CONTROLS = (
    Control("ptk_identity", "Theta = I (or any multiple; the all-ones Theta gives the same): "
            "C-NFC(0+) = 1 for every layer", _with_theta(_identity_ptk)),
    Control("input_gram_for_ptk", "the layer-input Gram A A^T in place of the PTK",
            _input_gram),
)

REGIMES = {
    "late times": "the theory freezes the PTK and the residuals at t = 0; at the last step "
                  "(rel_error_final_max) it is expected to miss by several per cent",
}


@style.styled
def plot(result):
    scales, steps, pred, c = result["init_scales"], result["steps"], result["pred"], result["c"]
    S, n_hidden = pred.shape
    fig, axes = style.panels(S + 3, ncols=3)
    colors = style.sequential(n_hidden)
    for a, s in enumerate(scales):
        ax = axes[a]
        for layer in range(n_hidden):
            ax.plot(steps, c[a, :, layer], color=colors[layer], label=f"layer {layer + 1}")
            ax.axhline(pred[a, layer], color=colors[layer], ls="--", lw=0.9)
        ax.axvline(int(result["small_step"]), color="0.6", lw=0.6)
        ax.set(xscale="log", xlabel="GD step", ylabel="C-NFA")
        style.title(ax, f"init scale {s:g}")
    ax = axes[S]
    err = _errors(result)
    for a, s in enumerate(scales):
        ax.plot(steps, err[a].mean(axis=-1), marker="o", ms=2.5, label=f"init scale {s:g}")
    order = float(result["predicted_error_order"])
    ref = err[:, 0].mean() * (steps / steps[0]) ** order
    ax.plot(steps, ref, "k--", lw=0.8, label=rf"theory: $\propto t^{{{order:g}}}$")
    ax.set(xscale="log", yscale="log", xlabel="GD step",
           ylabel="|sim - theory| / theory\n(mean over layers)")
    style.title(ax, "approach to t -> 0")
    style.legend(ax)
    ax = axes[S + 1]
    small, _ = _early(result)
    for a, s in enumerate(scales):
        ax.scatter(pred[a], c[a, small], s=12, label=f"deep, init scale {s:g}")
    w_small = int(np.searchsorted(result["wide_steps"], result["small_step"]))
    ax.scatter([result["wide_pred_arccos"]], [result["wide_c"][w_small]], marker="*", s=80,
               color="k", label="two-layer, arc-cosine PTK")
    lo = min(pred.min(), float(result["wide_pred_arccos"])) - 0.02
    ax.plot([lo, 1], [lo, 1], "k-", lw=0.7)
    ax.set(xlabel="predicted C-NFA (t -> 0)",
           ylabel=f"simulated C-NFA, step {int(result['small_step'])}")
    style.title(ax, "theory vs GD at small t")
    style.legend(ax)
    handles, labels = style.handles_labels(axes[0])
    handles += [style.proxy(color="k"), style.proxy(color="k", ls="--"),
                style.proxy(color="0.6", lw=0.6)]
    labels += ["simulation", "theory, t -> 0", "small step"]
    style.legend_panel(axes[-1], handles, labels, ncol=2)
    return fig


def memory(config) -> int:
    """Peak bytes: the larger of a deep run (training, PTK and hidden inputs per layer, the
    NFA feature matrices) and the wide run, plus what every deep run keeps (``theta`` and the
    hidden inputs, stacked by :func:`combine`)."""
    n, L, m = config["n_train"], config["hidden_layers"], config["width"]
    D, B = fp.input_dim(config), fp.FLOAT64_BYTES
    deep = fp.mlp_widths(config, width=m, depth=L + 1, outputs=1)
    wide = fp.mlp_widths(config, width=config["wide_width"], depth=2, outputs=1)
    held = B * L * (n * n + n * m)
    run = max(fp.network_bytes(deep, n) + 2 * held + 6 * B * max(D, m) ** 2,
              fp.network_bytes(wide, n) + fp.gram_bytes(n, count=4) + 6 * B * D * D)
    scales = len(config["init_scales"])
    return run + 2 * scales * held + (scales + 1) * fp.RUN_OVERHEAD_BYTES


EXPERIMENT = Experiment(
    name=NAME, description=DESCRIPTION,
    configs={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    memory=memory,
    config_types={"init_scales": ct.ListOf(ct.positive_float()), "small_step": ct.positive_int(),
                  "wide_width": ct.positive_int(), "wide_lr": ct.positive_float(),
                  "wide_steps": ct.positive_int()},
    numbers=numbers, measure=measure, plot=plot, controls=CONTROLS, regimes=REGIMES,
    runs=runs, run=run, combine=combine)
