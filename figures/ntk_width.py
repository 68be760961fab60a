"""ntk-width: the empirical NTK converges to the infinite-width NTK like width^{-1/2}.

Simulation: :func:`ntkdyn.numerics.kernels.empirical_ntk` of ReLU ``MLP([d, m, ..., m, 1])`` at
initialisation, several seeds. Theory: :func:`ntkdyn.theory.relu_ntk.infinite_ntk` (arc-cosine
recursion). The relative Frobenius error ``||K_m - K_inf||_F / ||K_inf||_F`` is a sum of
``m`` independent per-unit terms, so its fluctuation (and its mean) falls like ``m^{-1/2}``
(Jacot et al. 2018; Arora et al. 2019); the fitted log-log slope is the agreement number.
"""
from __future__ import annotations

import numpy as np

from ..base.samplers import sphere_inputs
from ..numerics.kernels import empirical_ntk
from ..numerics.networks import MLP
from ..theory.relu_ntk import infinite_ntk

NAME = "ntk-width"
DESCRIPTION = "empirical NTK of ReLU MLPs vs the infinite-width NTK: error ~ width^(-1/2)"

QUICK = {
    "n": 32, "d": 16, "depths": [2, 3], "log2_widths": [6, 7, 8, 9, 10, 11, 12, 13, 14],
    "seeds": 3, "activation": "relu", "seed": 0,
}
PAPER = {
    "n": 100, "d": 32, "depths": [2, 3], "log2_widths": list(range(6, 16)),
    "seeds": 10, "activation": "relu", "seed": 0,
}
TARGETS = {
    "slope_fit": (-0.6, -0.4),
    "slope_fit_depth2": (-0.65, -0.35),
    "slope_fit_depth3": (-0.65, -0.35),
    "rel_err_widest": (0.0, 0.05),
}


def runs(config) -> list[dict]:
    """One independent run per (depth, width, seed): the unit a sweep distributes."""
    keys = ("n", "d", "activation", "seed")
    return [dict({k: config[k] for k in keys}, depth=int(L), width=2 ** int(w), replicate=s)
            for L in config["depths"] for w in config["log2_widths"]
            for s in range(config["seeds"])]


def run(point) -> dict:
    """Empirical NTK of one network at init and its error against the infinite-width NTK."""
    X = sphere_inputs(point["n"], point["d"], point["seed"])
    L, m = point["depth"], point["width"]
    k_inf = infinite_ntk(X, depth=L, activation=point["activation"])
    net = MLP([point["d"]] + [m] * (L - 1) + [1], activation=point["activation"])
    K = empirical_ntk(net, net.init(seed=[point["seed"], L, m, point["replicate"]]), X)
    return {"K": K, "k_inf": k_inf, "error": np.linalg.norm(K - k_inf) / np.linalg.norm(k_inf)}


def combine(config, results) -> dict:
    """Stack the runs (in the order of :func:`runs`) into error arrays and example kernels."""
    depths = np.asarray(config["depths"], dtype=int)
    widths = 2 ** np.asarray(config["log2_widths"], dtype=int)
    shape = (len(depths), len(widths), int(config["seeds"]))
    errors = np.array([float(r["error"]) for r in results]).reshape(shape)
    K = np.array([r["K"] for r in results]).reshape(shape + results[0]["K"].shape)
    k_inf = np.array([r["k_inf"] for r in results]).reshape(shape + results[0]["K"].shape)[:, 0, 0]
    return {"depths": depths, "widths": widths, "errors": errors, "k_inf": k_inf,
            "k_widest": K[:, -1, 0], "k_narrowest": K[:, 0, 0]}


def compute(config) -> dict:
    """All runs in this process (the runner distributes :func:`runs` over an executor instead)."""
    return combine(config, [run(point) for point in runs(config)])


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


def agreement(result) -> dict:
    joint, per_depth = fit_slopes(result["widths"], result["errors"])
    out = {"slope_fit": joint}
    for L, slope in zip(result["depths"], per_depth):
        out[f"slope_fit_depth{int(L)}"] = slope
    out["rel_err_widest"] = float(result["errors"][:, -1].mean(axis=-1).max())
    return out




def plot(result):
    import matplotlib.pyplot as plt

    widths, errors, depths = result["widths"], result["errors"], result["depths"]
    joint, per_depth = fit_slopes(widths, errors)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    for a, L in enumerate(depths):
        mean, std = errors[a].mean(axis=-1), errors[a].std(axis=-1)
        line = ax.errorbar(widths, mean, yerr=std, marker="o", capsize=3,
                           label=f"depth {L}: slope {per_depth[a]:.3f}")
        ax.scatter(np.repeat(widths, errors.shape[-1]), errors[a].ravel(), s=6, alpha=0.35,
                   color=line[0].get_color())
    ref = errors[:, 0].mean() * (widths / widths[0]) ** -0.5
    ax.plot(widths, ref, "k--", label="theory: width$^{-1/2}$")
    ax.set(xscale="log", yscale="log", xlabel="width m",
           ylabel=r"$\|K_m - K_\infty\|_F / \|K_\infty\|_F$",
           title=f"NTK error vs width (joint slope {joint:.3f})")
    ax.legend(fontsize=8)
    ax = axes[1]
    k_inf = result["k_inf"]
    for a, L in enumerate(depths):
        ax.scatter(k_inf[a].ravel(), result["k_narrowest"][a].ravel(), s=5, alpha=0.4,
                   label=f"depth {L}, m = {widths[0]}")
        ax.scatter(k_inf[a].ravel(), result["k_widest"][a].ravel(), s=5,
                   label=f"depth {L}, m = {widths[-1]}")
    lims = [k_inf.min(), k_inf.max()]
    ax.plot(lims, lims, "k-", lw=0.8)
    ax.set(xlabel=r"infinite-width NTK $K_\infty(x, x')$", ylabel=r"empirical NTK $K_m(x, x')$",
           title="entries: simulation vs theory (one seed)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
