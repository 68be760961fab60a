"""ntk-width: the empirical NTK converges to the infinite-width NTK like width^{-1/2}.

Both sides come from one description, :func:`network` (``Network.mlp(d, m, depth)``, ReLU,
``W_std = 1``, ``b_std = 0`` by default: then bitwise ``MLP([d, m, ..., m, 1])``).
Simulation: :func:`ntkdyn.numerics.kernels.empirical_ntk` of the width-``m`` network at
initialisation, several seeds. Theory: :func:`ntkdyn.theory.infinite_width.infinite_ntk` of the
same description (for ReLU the arc-cosine recursion; in the NTK parameterization the limit does
not depend on ``m``). The relative Frobenius error ``||K_m - K_inf||_F / ||K_inf||_F`` is a sum of
``m`` independent per-unit terms, so its fluctuation (and its mean) falls like ``m^{-1/2}``
(Jacot et al. 2018; Arora et al. 2019); the fitted log-log slope is the agreement number.
"""
from __future__ import annotations

import numpy as np

from ..base.samplers import sphere_inputs
from ..numerics.kernels import empirical_ntk
from ..numerics.networks import Network
from ..theory.infinite_width import infinite_nngp, infinite_ntk
from ..theory.relu_ntk import NTK_FLUCTUATION_EXPONENT
from . import config_types as ct
from . import footprint as fp
from . import style
from .experiment import Control, Experiment, agreement, around, at_most, observation

NAME = "ntk-width"
DESCRIPTION = "empirical NTK of ReLU MLPs vs the infinite-width NTK: error ~ width^(-1/2)"

SMOKE = {
    "n": 16, "d": 8, "depths": [2, 3], "log2_widths": [6, 7, 8, 9, 10, 11], "seeds": 2,
    "activation": "relu", "W_std": 1.0, "b_std": 0.0, "seed": 0,
}
QUICK = {
    "n": 32, "d": 16, "depths": [2, 3], "log2_widths": [6, 7, 8, 9, 10, 11, 12, 13, 14],
    "seeds": 3, "activation": "relu", "W_std": 1.0, "b_std": 0.0, "seed": 0,
}
PAPER = {
    "n": 100, "d": 32, "depths": [2, 3], "log2_widths": list(range(6, 16)),
    "seeds": 10, "activation": "relu", "W_std": 1.0, "b_std": 0.0, "seed": 0,
}


# Description keys a run's point holds only when they differ from these defaults, so that the
# points (whose hash seeds each run) and hence the numbers of the default networks are unchanged.
DESCRIPTION_DEFAULTS = {"W_std": 1.0, "b_std": 0.0}


def network(config, depth: int, width: int) -> Network:
    """The one description of both sides: ``Network.mlp(d, width, depth)`` with the
    configuration's ``activation``, ``W_std`` and ``b_std`` (a configuration or a run's point;
    a key it lacks takes its :data:`DESCRIPTION_DEFAULTS` value)."""
    scales = {k: config.get(k, v) for k, v in DESCRIPTION_DEFAULTS.items()}
    return Network.mlp(config["d"], int(width), int(depth), activation=config["activation"],
                       **scales)


def runs(config) -> list[dict]:
    """One independent run per (depth, width, seed): the unit a sweep distributes."""
    keys = ("n", "d", "activation")
    keys += tuple(k for k, v in DESCRIPTION_DEFAULTS.items() if config.get(k, v) != v)
    return [dict({k: config[k] for k in keys}, depth=int(L), width=2 ** int(w), replicate=s)
            for L in config["depths"] for w in config["log2_widths"]
            for s in range(config["seeds"])]


def run(point, seed) -> dict:
    """Empirical NTK of one network at initialisation, on inputs shared by every run.

    The inputs are drawn from the configuration seed alone (``seed.entropy``), the weights from
    the run's own stream.
    """
    X = sphere_inputs(point["n"], point["d"], np.random.SeedSequence(seed.entropy))
    net = network(point, point["depth"], point["width"])
    return {"K": empirical_ntk(net, net.init(seed=np.random.default_rng(seed)), X), "X": X}


def combine(config, results) -> dict:
    """Stack the runs (in the order of :func:`runs`) and add the theory: the infinite-width NTK
    of each depth's description on the same inputs (computed without any simulated kernel)."""
    depths = np.asarray(config["depths"], dtype=int)
    widths = 2 ** np.asarray(config["log2_widths"], dtype=int)
    shape = (len(depths), len(widths), int(config["seeds"]))
    X = results[0]["X"]
    K = np.array([r["K"] for r in results]).reshape(shape + results[0]["K"].shape)
    k_inf = np.stack([infinite_ntk(network(config, L, widths[-1]), X) for L in depths])
    return {"depths": depths, "widths": widths, "kernels": K, "k_inf": k_inf, "X": X,
            "predicted_exponent": np.array(NTK_FLUCTUATION_EXPONENT)}


def errors(result) -> np.ndarray:
    """``||K_m - K_inf||_F / ||K_inf||_F`` per (depth, width, seed)."""
    diff = result["kernels"] - result["k_inf"][:, None, None]
    return (np.linalg.norm(diff, axis=(-2, -1))
            / np.linalg.norm(result["k_inf"], axis=(-2, -1))[:, None, None])


def fit_slopes(widths, errors):
    """Least-squares slope of ``log(mean error)`` on ``log(width)``: per depth and jointly
    (a common slope with one intercept per depth)."""
    x = np.log(widths)
    y = np.log(errors.mean(axis=-1))  # (depths, widths)
    per_depth = np.array([np.polyfit(x, row, 1)[0] for row in y])
    D, W = y.shape
    design = np.zeros((D * W, D + 1))
    design[:, 0] = np.tile(x, D)
    for a in range(D):
        design[a * W:(a + 1) * W, a + 1] = 1.0
    joint = np.linalg.lstsq(design, y.ravel(), rcond=None)[0][0]
    return joint, per_depth


def measure(result) -> dict:
    """Fitted exponents minus the predicted ``-1/2``; the widest error in units of ``m^(-1/2)``."""
    err = errors(result)
    joint, per_depth = fit_slopes(result["widths"], err)
    predicted = float(result["predicted_exponent"])
    out = {"slope_fit_minus_theory": joint - predicted}
    for L, slope in zip(result["depths"], per_depth):
        out[f"slope_fit_minus_theory_depth{int(L)}"] = slope - predicted
    out["rel_err_widest_times_sqrt_width"] = float(
        err[:, -1].mean(axis=-1).max() * np.sqrt(result["widths"][-1]))
    return out


def numbers(config) -> dict:
    out = {"slope_fit_minus_theory": agreement(
        around(0.0, 0.05), "joint log-log slope of the error on width, minus theory's -1/2")}
    for L in config["depths"]:
        out[f"slope_fit_minus_theory_depth{int(L)}"] = agreement(
            around(0.0, 0.12), f"the same slope at depth {int(L)}")
    out["rel_err_widest_times_sqrt_width"] = observation(
        at_most(5.0), "error of the widest network (seed mean) times sqrt(width): O(1)")
    return out


def _scaled_theory(factor):
    def apply(result, config):
        return dict(result, k_inf=factor * result["k_inf"])
    return apply


def _nngp_theory(result, config):
    return dict(result, k_inf=np.stack([
        infinite_nngp(network(config, L, result["widths"][-1]), result["X"])
        for L in result["depths"]]))


CONTROLS = (
    Control("ntk_scaled_1.03", "the infinite-width NTK scaled by 1.03", _scaled_theory(1.03)),
    Control("nngp_for_ntk", "the NNGP kernel in place of the NTK", _nngp_theory),
)


@style.styled
def plot(result):
    widths, depths = result["widths"], result["depths"]
    errors = globals()["errors"](result)
    joint, per_depth = fit_slopes(widths, errors)
    predicted = float(result["predicted_exponent"])
    fig, axes = style.panels(2)
    ax = axes[0]
    for a, L in enumerate(depths):
        mean, std = errors[a].mean(axis=-1), errors[a].std(axis=-1)
        line = ax.errorbar(widths, mean, yerr=std, marker="o",
                           label=f"depth {L}: slope {per_depth[a]:.3f}")
        ax.scatter(np.repeat(widths, errors.shape[-1]), errors[a].ravel(), s=4, alpha=0.35,
                   color=line[0].get_color())
    ref = errors[:, 0].mean() * (widths / widths[0]) ** predicted
    ax.plot(widths, ref, "k--", label=f"theory: width$^{{{predicted:g}}}$")
    ax.plot([], [], " ", label=f"joint slope {joint:.3f}")
    ax.set(xscale="log", yscale="log", xlabel="width m",
           ylabel=r"$\|K_m - K_\infty\|_F / \|K_\infty\|_F$")
    style.log_ticks(ax)
    style.title(ax, "NTK error vs width")
    style.legend(ax, loc="lower left")
    ax = axes[1]
    k_inf = result["k_inf"]
    for a, L in enumerate(depths):
        ax.scatter(k_inf[a].ravel(), result["kernels"][a, 0, 0].ravel(), s=4, alpha=0.4,
                   label=f"depth {L}, m = {widths[0]}")
        ax.scatter(k_inf[a].ravel(), result["kernels"][a, -1, 0].ravel(), s=4,
                   label=f"depth {L}, m = {widths[-1]}")
    lims = [k_inf.min(), k_inf.max()]
    ax.plot(lims, lims, "k-", lw=0.8)
    ax.set(xlabel=r"infinite-width NTK $K_\infty(x, x')$", ylabel=r"empirical NTK $K_m(x, x')$")
    style.title(ax, "entries: simulation vs theory (one seed)")
    style.legend(ax, markerscale=2)
    return fig


def memory(config) -> int:
    """Peak bytes: the largest run's empirical NTK (weights, passes and kernel,
    :func:`ntkdyn.numerics.memory.empirical_ntk_bytes`) plus every run's kernel and inputs,
    held and stacked by :func:`combine`."""
    n, d, top = config["n"], config["d"], 2 ** max(config["log2_widths"])
    peak = max(fp.empirical_ntk_bytes([d] + [top] * (int(L) - 1) + [1], n)
               for L in set(config["depths"]))
    runs = len(config["depths"]) * len(config["log2_widths"]) * config["seeds"]
    return peak + runs * (fp.gram_bytes(n, count=2) + fp.FLOAT64_BYTES * n * d
                          + fp.RUN_OVERHEAD_BYTES)


EXPERIMENT = Experiment(
    name=NAME, description=DESCRIPTION,
    configs={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    memory=memory,
    config_types={"activation": ct.Choice(ct.activation_names), "W_std": ct.positive_float(),
                  "b_std": ct.non_negative_float()},
    numbers=numbers, measure=measure, plot=plot, controls=CONTROLS,
    runs=runs, run=run, combine=combine,
    dims={"kernels": ("depth", "width", "seed", "sample", "sample_2"),
          "k_inf": ("depth", "sample", "sample_2"), "X": ("sample", "feature")})
