"""depth-alignment: deeper ReLU networks align their NTK faster and more strongly.

Claim: feature evolution is faster and more dramatic in deeper networks (Shan & Bordelon 2021,
arXiv v1 abstract; their Fig. 5 trains ReLU MLPs with 2-5 hidden layers). Simulation: ReLU
MLPs of depth ``L = 2..5`` (``L`` weight matrices, equal hidden widths) trained as the centred
model ``f_gamma`` of :mod:`ntkdyn.numerics.richness` at the same ``gamma`` (default 1, NTK
scaling) and function-space learning rate on one task; the centred alignment
``A_c(sum_i K_ii, Y)`` of the per-head NTKs is recorded at log-spaced steps.

Theory: the infinite-width NTK ``Theta_L`` of each depth
(:func:`ntkdyn.theory.infinite_width.infinite_ntk`, for ReLU the arc-cosine recursion) of the
same description as the trained network (:func:`network`: ``Network.mlp(d, width, L, heads=k)``,
ReLU, ``W_std = 1``, ``b_std = 0`` by default, bitwise ``MLP``) against the empirical NTK at
initialisation (mean over heads and ``INIT_KERNEL_DRAWS`` independent initialisations, centred).
At finite width the initial kernel's fluctuation grows with the depth-to-width ratio
(Hanin & Nica 2020), so the tolerance widens with depth. The library has no closed form for the
alignment gain of a deep ReLU network; the depth ordering of the gains is an observation
(simulation against simulation). The deep linear analogue: after learning, the NTK of a
scalar-output deep linear network is ``||beta||^(2(L-1)/L) [x.x' + (L-1)(b.x)(b.x')]`` with
``b = beta / ||beta||``, a spike of weight ``L - 1`` (Shan & Bordelon 2021, sec. 5, whose ``L``
counts hidden layers; :func:`ntkdyn.theory.symbolic.rank_one_ntk_spike`).

Data (the configuration keys ``dataset``, ``classes``, ``n_train``, ``n_test``, ``preprocessing``;
:func:`ntkdyn.numerics.tasks.load_task`): synthetic Gaussian mixture (``synthetic-mixture``, 4
classes) at smoke and quick scale; 10-class MNIST (inputs on the sphere of radius ``sqrt(d)``) at
paper scale. The targets were measured on the synthetic data; on another data set they state the
same claims, unmeasured.
"""
from __future__ import annotations

import numpy as np

from ..base.alignment import center
from ..numerics import tasks
from ..numerics.kernels import alignment, empirical_ntk
from ..numerics.networks import Network
from ..numerics.richness import train_centered
from ..theory.infinite_width import infinite_nngp, infinite_ntk
from . import config_types as ct
from . import footprint as fp
from . import style
from .experiment import Control, Experiment, agreement, at_least, at_most, is_true, observation
from .progress import counter

NAME = "depth-alignment"
DESCRIPTION = "ReLU MLPs of depth 2..5: NTK alignment is faster and larger with depth"

SMOKE = {
    "n_train": 80, "d": 30, "width": 128, "depths": [2, 3, 4, 5], "gamma": 1.0,
    "lr": 1.0, "steps": 400, "num_records": 8, "seeds": 2, "seed": 0,
    "dataset": "synthetic-mixture", "classes": None, "n_test": 0, "preprocessing": "none",
    "W_std": 1.0, "b_std": 0.0,
}
QUICK = {
    "n_train": 160, "d": 30, "width": 128, "depths": [2, 3, 4, 5], "gamma": 1.0,
    "lr": 1.0, "steps": 1000, "num_records": 14, "seeds": 2, "seed": 0,
    "dataset": "synthetic-mixture", "classes": None, "n_test": 0, "preprocessing": "none",
    "W_std": 1.0, "b_std": 0.0,
}
# The paper's data (Shan & Bordelon 2021, Fig. 5: ReLU MLPs with 2-5 hidden layers on MNIST):
# 10-class MNIST, centred one-hot targets, inputs on the sphere of radius sqrt(d) (d = 784; the
# key d is unused).
# Shan & Bordelon 2021, Fig. 5: ReLU MLPs with 2-5 hidden layers (3-6 weight matrices) on MNIST
PAPER = dict(QUICK, n_train=300, width=256, depths=[3, 4, 5, 6], steps=2000, num_records=20,
             seeds=3, dataset="mnist", classes=None, preprocessing="sphere")
# Independent initialisations averaged into the t = 0 kernel compared with Theta_L.
INIT_KERNEL_DRAWS = 32


def load_task(config, seed):
    """The configured data (:func:`ntkdyn.numerics.tasks.load_task`) drawn from ``seed``."""
    return tasks.load_task(config, seed, d=config["d"])


def network(config, d: int, k: int, depth: int) -> Network:
    """The one description of the trained network and its infinite-width kernel:
    ``Network.mlp(d, width, depth, heads=k)``, ReLU, with the configuration's ``W_std`` and
    ``b_std``."""
    return Network.mlp(int(d), int(config["width"]), int(depth), heads=int(k), activation="relu",
                       W_std=config["W_std"], b_std=config["b_std"])


def child(seed, *index):
    """The child of ``seed`` at ``index`` (spawned by index, independent of call order)."""
    return np.random.SeedSequence(seed.entropy,
                                  spawn_key=tuple(seed.spawn_key) + tuple(int(i) for i in index))


EXTRA_METRICS = ("alignment_uncentered", "trace", "top_eigvec_cosine")


def compute(config, seed) -> dict:
    """Train every depth on every replicate's task (the same task for every depth of a
    replicate); record the initial kernel and add the infinite-width NTK of each depth."""
    tasks.check_task(config, d=config["d"])
    depths = np.asarray(config["depths"], dtype=int)
    seeds = int(config["seeds"])
    splits = []
    a_c = losses = record_times = None
    X_all, Y_all = [], []
    k_init = None
    advance = counter(seeds * len(depths), "run")
    for s in range(seeds):
        data_seed, weight_seed, draws_seed = (child(seed, s, j) for j in range(3))
        ds = load_task(config, data_seed)
        splits.append(ds)
        X_all.append(ds.X)
        Y_all.append(ds.Y)
        d, k = ds.X.shape[1], ds.Y.shape[1]
        for a, L in enumerate(depths):
            net = network(config, d, k, L)
            params0 = net.init(np.random.default_rng(child(weight_seed, a)))
            run = train_centered(net, ds.X, ds.Y, config["gamma"], config["lr"], config["steps"],
                                 params0=params0, num_records=config["num_records"])
            if a_c is None:
                a_c = np.empty((len(depths), seeds, len(run.record_steps)))
                # the paper's uncentred alignment, Tr K and the top-eigenvector cosine, recorded
                extra = {key: np.empty_like(a_c) for key in EXTRA_METRICS}
                losses = np.empty((len(depths), seeds, len(run.losses)))
                k_init = np.empty((len(depths), seeds) + ds.X.shape[:1] * 2)
                record_times = run.record_times
            a_c[a, s] = run.metrics["alignment_centered"]
            for key in EXTRA_METRICS:
                extra[key][a, s] = run.metrics[key]
            losses[a, s] = run.losses
            k_init[a, s] = np.mean(
                [empirical_ntk(net, net.init(np.random.default_rng(child(draws_seed, a, j))),
                               ds.X, heads="each").mean(axis=0)
                 for j in range(INIT_KERNEL_DRAWS)], axis=0)
            advance()
    X, Y = np.array(X_all), np.array(Y_all)
    k_inf = theory_kernels(config, X, Y, depths, infinite_ntk)
    return {"depths": depths, "record_times": record_times, "alignment_centered": a_c, **extra,
            "losses": losses, "times": config["lr"] * np.arange(losses.shape[-1]),
            "X": X, "Y": Y, "kernel_init": k_init, "k_inf": k_inf, **tasks.data_entries(splits)}


def early_index(result) -> int:
    """Recorded step nearest (in log time) to a tenth of the run: where "faster" is read off."""
    t = result["record_times"]
    target = t[-1] / 10.0
    return int(np.argmin(np.abs(np.log(np.maximum(t, t[1] / 2) / target))))


def init_kernel_errors(result) -> np.ndarray:
    """``||H (K_0 - Theta_L) H||_F / ||H Theta_L H||_F``, shape ``(depths, seeds)``."""
    k0, k_inf = center(result["kernel_init"]), center(result["k_inf"])
    return np.linalg.norm(k0 - k_inf, axis=(-2, -1)) / np.linalg.norm(k_inf, axis=(-2, -1))


def measure(result) -> dict:
    a = result["alignment_centered"]
    gains = a[..., -1] - a[..., 0]  # (depths, seeds)
    early = a[..., early_index(result)] - a[..., 0]
    out = {}
    for L, err in zip(result["depths"], init_kernel_errors(result)):
        out[f"init_kernel_rel_err_depth{int(L)}"] = float(np.max(err))
    out["gain_deep_minus_shallow_min"] = float(np.min(gains[-1] - gains[0]))
    out["gain_monotone"] = float(np.all(np.diff(gains, axis=0) > 0))
    out["early_gain_monotone"] = float(np.all(np.diff(early.mean(axis=1)) > 0))
    return out


def init_kernel_tolerance(depth: int) -> float:
    """Tolerance of ``init_kernel_rel_err_depthL``: ``0.05 + 0.03 L``, growing with depth like the
    finite-width fluctuation.

    Measured worst seed (smoke, quick): L = 2: 0.042, 0.044; L = 3: 0.066, 0.067; L = 4: 0.078,
    0.088; L = 5: 0.085, 0.096. Control ntk_one_layer_shallower (smoke, quick): 0.28, 0.29;
    0.38, 0.39; 0.44, 0.46; 0.43, 0.45; control nngp_for_ntk >= 1.3.
    """
    return 0.05 + 0.03 * int(depth)


def numbers(config) -> dict:
    out = {}
    for L in config["depths"]:
        out[f"init_kernel_rel_err_depth{int(L)}"] = agreement(
            at_most(init_kernel_tolerance(L)),
            f"||H (K_0 - Theta_L) H|| / ||H Theta_L H|| at t = 0, depth {int(L)}, worst seed")
    out["gain_deep_minus_shallow_min"] = observation(  # smoke 0.14, quick 0.11
        at_least(0.03), "gain(deepest) - gain(shallowest) of A_c, worst seed")
    out["gain_monotone"] = observation(is_true(), "gain increasing with depth on every seed")
    out["early_gain_monotone"] = observation(
        is_true(), "seed-mean gain at t = T/10 increasing with depth")
    return out


def theory_kernels(config, X, Y, depths, kernel) -> np.ndarray:
    """``kernel(network(config, d, k, L), x)`` (an infinite-width kernel of one head) for every
    depth ``L`` and replicate's inputs ``x``: shape ``(depths, seeds, n, n)``."""
    d, k = X.shape[-1], Y.shape[-1]
    return np.array([[kernel(network(config, d, k, L), x) for x in X] for L in depths])


def _nngp_theory(result, config):
    return dict(result, k_inf=theory_kernels(config, result["X"], result["Y"], result["depths"],
                                             infinite_nngp))


def _shallower_theory(result, config):
    return dict(result, k_inf=theory_kernels(config, result["X"], result["Y"],
                                             np.asarray(result["depths"]) - 1, infinite_ntk))


CONTROLS = (
    Control("nngp_for_ntk", "the infinite-width NNGP kernel in place of the NTK", _nngp_theory),
    Control("ntk_one_layer_shallower", "Theta_{L-1} in place of Theta_L (X X^T / d at L = 2)",
            _shallower_theory),
)

REGIMES = {
    "finite width": "the initial kernel's error grows with depth (its fluctuation grows with "
                    "L / m); init_kernel_rel_err_depthL has a tolerance 0.05 + 0.03 L.",
}


@style.styled
def plot(result):
    depths, t = result["depths"], result["record_times"]
    a = result["alignment_centered"]
    colors = style.sequential(len(depths), "plasma", 0.85)
    fig, axes = style.panels(8, ncols=4, height=4.2)
    unc_ax, cen_ax, loss_ax, k0_ax, gain_ax, tr_ax, cos_ax, key_ax = axes
    # the paper's uncentred alignment is the headline; the centred one (with theory) beside it
    ax = unc_ax
    for i, L in enumerate(depths):
        ax.plot(t[1:], result["alignment_uncentered"][i].mean(axis=0)[1:], "o-", ms=2,
                color=colors[i], label=f"depth {L}")
    ax.set(xscale="log", xlabel="t = lr x steps", ylabel=r"$A(\sum_i K_{ii}, Y)$")
    style.title(ax, "uncentred (paper's)")
    for ax, key, label in ((tr_ax, "trace", r"$\mathrm{Tr}\,K_t / \mathrm{Tr}\,K_0$"),
                           (cos_ax, "top_eigvec_cosine", "top eigvec. cosine with Y")):
        for i, L in enumerate(depths):
            values = result[key][i].mean(axis=0)
            values = values / values[0] if key == "trace" else values
            ax.plot(t[1:], values[1:], "o-", ms=2, color=colors[i], label=f"depth {L}")
        ax.set(xscale="log", xlabel="t", ylabel=label)
    style.title(tr_ax, "kernel trace")
    style.title(cos_ax, "top eigenvector (centred)")
    ax = cen_ax
    for i, L in enumerate(depths):
        a_inf = np.mean([alignment(k, y, centered=True)
                         for k, y in zip(result["k_inf"][i], result["Y"])])
        ax.plot(t[1:], a[i].mean(axis=0)[1:], "o-", ms=2, color=colors[i], label=f"depth {L}")
        ax.axhline(a_inf, color=colors[i], ls="--", lw=0.8)
    ax.set(xscale="log", xlabel="t = lr x steps", ylabel=r"$A_c(\sum_i K_{ii}, Y)$")
    style.title(ax, "centred alignment")
    ax = gain_ax
    gains = a - a[..., :1]
    for i, L in enumerate(depths):
        for s in range(a.shape[1]):
            ax.plot(t[1:], gains[i, s, 1:], "-", color=colors[i], alpha=0.8,
                    label=f"depth {L}" if s == 0 else None)
    ax.set(xscale="log", xlabel="t", ylabel=r"$A_c(t) - A_c(0)$")
    style.title(ax, "alignment gain (all seeds)")
    ax = loss_ax
    times = result["times"]
    for i, L in enumerate(depths):
        ax.plot(times[1:], result["losses"][i].mean(axis=0)[1:], color=colors[i],
                label=f"depth {L}")
    ax.set(xscale="log", yscale="log", xlabel="t", ylabel="training loss")
    style.title(ax, "loss")
    ax = k0_ax
    k0, k_inf = center(result["kernel_init"]), center(result["k_inf"])
    for i, L in enumerate(depths):
        ax.scatter(k_inf[i, 0].ravel(), k0[i, 0].ravel(), s=2, alpha=0.4, color=colors[i],
                   label=f"depth {L}")
    lims = [k_inf[:, 0].min(), k_inf[:, 0].max()]
    ax.plot(lims, lims, "k-", lw=0.8)
    ax.set(xlabel=r"theory: centred $\Theta_L(x, x')$", ylabel=r"centred empirical $K_0$")
    style.title(ax, "initial kernel (seed 0)")
    handles, labels = style.handles_labels(unc_ax)
    handles.append(style.proxy(color="k", ls="--", lw=0.8))
    labels.append("infinite-width NTK\nat t = 0 (centred)")
    style.legend_panel(key_ax, handles, labels, title="seed mean unless noted")
    return fig


def memory(config) -> int:
    """Peak bytes: the deepest network's training with the per-head kernels ``(k, n, n)`` and
    their spectra."""
    widths = fp.mlp_widths(config)
    return (fp.network_bytes(widths, fp.num_inputs(config))
            + fp.gram_bytes(config["n_train"], count=6 * widths[-1]))


EXPERIMENT = Experiment(
    name=NAME, description=DESCRIPTION,
    configs={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    memory=memory,
    config_types={"W_std": ct.positive_float(), "b_std": ct.non_negative_float()},
    numbers=numbers, measure=measure, plot=plot, controls=CONTROLS, regimes=REGIMES,
    compute=compute,
    dims={**dict.fromkeys(("alignment_centered", "alignment_uncentered", "trace",
                           "top_eigvec_cosine"), ("depth", "seed", "record_time")),
          "losses": ("depth", "seed", "time"), "X": ("seed", "sample", "feature"),
          "Y": ("seed", "sample", "class"), "data_checksum": ("seed",),
          **dict.fromkeys(("kernel_init", "k_inf"), ("depth", "seed", "sample", "sample_2"))})
