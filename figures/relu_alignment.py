"""relu-alignment: two-layer ReLU networks align their NTK with the task, more so when richer.

Shan & Bordelon (2021), sec. 6: alignment in two-layer ReLU networks. Simulation: the centred model
``f_gamma = (f - f_0) / gamma`` of :mod:`ntkdyn.numerics.richness` (parameter learning rate
``lr gamma^2``, so every ``gamma`` has the same function-space speed), trained by full-batch GD on a
balanced multi-class task; the per-head NTKs are recorded at log-spaced steps and the centred
alignment ``A_c(sum_i K_ii, Y)`` is followed in time for several ``gamma`` (lazy -> rich) and
widths.

Theory (:mod:`ntkdyn.theory.two_layer_alignment`, derived there): the exact initial rate ``dA_c/dt``
at ``t = 0`` from ``dK/dt`` under gradient flow (units drift toward target-weighted means of their
active half-space, readouts grow with unit-target correlations), checked against a GD finite
difference with ``gamma * lr * steps = 1e-3``; the second-order expansion
``A_c(t) - A_c(0) = A' t + A'' t^2 / 2`` against GD with a small learning rate up to ``t = 1``; and
the infinite-width alignment at initialisation from the arc-cosine kernels. Expected: the lazy limit
stays flat, alignment gain grows with ``gamma`` and the loss falls faster in the rich regime.

Found here: on this task the exact first-order rate ``A'(0)`` is small and negative; the rise
of the alignment is second order (``A'' ~ gamma^2 > 0``), and for ``gamma <~ 3`` ReLU gate
flips (which the derivatives at ``t = 0`` cannot see) dominate the early change once
``gamma t >~ 10^-2`` (see :mod:`ntkdyn.theory.two_layer_alignment`).
"""
from __future__ import annotations

import numpy as np

from ..numerics.datafiles import classification_task
from ..numerics.kernels import alignment
from ..numerics.networks import MLP
from ..numerics.richness import train_centered
from ..theory.two_layer_alignment import (infinite_width_terms, initial_rates,
                                          initial_second_derivatives)

NAME = "relu-alignment"
DESCRIPTION = "two-layer ReLU NTK alignment vs time across richness gamma and width (lazy: flat)"

QUICK = {
    "n": 300, "d": 30, "num_classes": 4, "widths": [256], "gammas": [0.1, 1.0, 3.0, 10.0, 30.0],
    "lr": 1.0, "steps": 2000, "num_records": 16, "seeds": 3, "seed": 0,
    "dataset": "synthetic", "data_dir": "", "fallback_synthetic": False,
}
PAPER = dict(QUICK, widths=[256, 1024, 4096], gammas=[0.1, 0.3, 1.0, 3.0, 10.0, 30.0],
             steps=3000, num_records=24, seeds=3)
EARLY_T = 1.0  # horizon of the early-time check, run with lr = EARLY_T / 100
EARLY_STEPS = np.unique(np.round(np.geomspace(1, 100, 9)).astype(int))

TARGETS = {
    "gain_lazy_max": (0.0, 0.01),          # |A_c(T) - A_c(0)| for gamma <= 1, every seed
    "gain_monotone": (1.0, 1.0),           # gain increasing along gamma (>= 1) on every seed
    "gain_rich_min": (0.09, 1.0),          # gain at the largest gamma, worst seed
    "initial_rate_rel_err": (0.0, 0.1),    # exact dA_c/dt(0) vs GD finite difference
    "loss_ratio_rich_lazy": (0.0, 0.5),    # final loss, largest gamma / gamma = 1
    "init_alignment_infinite_gap": (0.0, 0.03),  # |A_c(K_0) - A_c(K_inf)|, first width
    "early_taylor2_rel_err_rich": (0.0, 0.3),   # A't + A''t^2/2 vs GD at t = 1, largest gamma
}


def load_task(config, seed):
    """The configured task (synthetic mixture, or a real subset) for one seed."""
    return classification_task(config["dataset"], config["n"], config["num_classes"],
                               data_dir=config["data_dir"] or None, seed=seed, d=config["d"],
                               fallback=config["fallback_synthetic"])


def runs(config) -> list[dict]:
    """One independent run per (seed, width, gamma); the first width also runs the t = 0 checks."""
    return [dict(config, replicate=s, width=int(m), gamma=float(gamma), early_checks=(a == 0))
            for s in range(int(config["seeds"])) for a, m in enumerate(config["widths"])
            for gamma in config["gammas"]]


def run(point) -> dict:
    """Train one centred network ``f_gamma``; with ``early_checks`` also compare the exact
    initial rate and second-order expansion of ``A_c`` with short gradient-descent runs."""
    seed = int(point["seed"]) + int(point["replicate"])
    gamma = float(point["gamma"])
    ds = load_task(point, seed)
    net = MLP([ds.X.shape[1], int(point["width"]), ds.Y.shape[1]], "relu")
    trained = train_centered(net, ds.X, ds.Y, gamma, point["lr"], point["steps"], seed=seed,
                             num_records=point["num_records"])
    out = {"alignment_centered": trained.metrics["alignment_centered"],
           "alignment_uncentered": trained.metrics["alignment_uncentered"],
           "top_overlap": trained.metrics["top_overlap"], "losses": trained.losses,
           "record_times": trained.record_times}
    if point["early_checks"]:
        f_inf, g_inf = infinite_width_terms(ds.X)
        out["alignment_infinite"] = alignment(f_inf + g_inf, ds.Y, centered=True)
        # Exact initial rate vs a finite difference with gamma * t = 1e-3.
        t = 1e-3 / gamma
        rates = initial_rates(*trained.params0, ds.X, ds.Y, gamma)
        short = train_centered(net, ds.X, ds.Y, gamma, t / 10, 10, params0=trained.params0,
                               num_records=2)
        out["rate_theory"] = rates["alignment_centered_rate"]
        out["rate_fd"] = short.gain() / t
        # Early-time expansion A' t + A'' t^2 / 2 vs GD with lr = EARLY_T / 100.
        out["curvature_theory"] = initial_second_derivatives(
            *trained.params0, ds.X, ds.Y, gamma)["alignment_centered"]
        trace = train_centered(net, ds.X, ds.Y, gamma, EARLY_T / 100, 100,
                               params0=trained.params0, record_steps=EARLY_STEPS, spectral=False)
        a_early = trace.metrics["alignment_centered"]
        out["early_gain"] = a_early[1:] - a_early[0]
    return out


def combine(config, results) -> dict:
    """Stack the runs (in the order of :func:`runs`) into (width, gamma, seed) arrays."""
    widths = np.asarray(config["widths"], dtype=int)
    gammas = np.asarray(config["gammas"], dtype=float)
    seeds = int(config["seeds"])
    by_key = {}
    for point, result in zip(runs(config), results):
        by_key[point["replicate"], point["width"], point["gamma"]] = result

    def grid(key):
        return np.array([[[by_key[s, int(m), float(g)][key] for s in range(seeds)]
                          for g in gammas] for m in widths])

    def first_width(key):
        return np.array([[by_key[s, int(widths[0]), float(g)][key] for s in range(seeds)]
                         for g in gammas])

    losses = grid("losses")
    return {"widths": widths, "gammas": gammas, "record_times": results[0]["record_times"],
            "times": config["lr"] * np.arange(losses.shape[-1]),
            "alignment_centered": grid("alignment_centered"),
            "alignment_uncentered": grid("alignment_uncentered"),
            "top_overlap": grid("top_overlap"), "losses": losses,
            "alignment_infinite": first_width("alignment_infinite")[0],
            "rate_theory": first_width("rate_theory"), "rate_fd": first_width("rate_fd"),
            "curvature_theory": first_width("curvature_theory"),
            "early_times": EARLY_T * EARLY_STEPS / 100, "early_gain": first_width("early_gain")}


def compute(config) -> dict:
    """All runs in this process (the runner distributes :func:`runs` over an executor)."""
    return combine(config, [run(point) for point in runs(config)])


def gains(result) -> np.ndarray:
    """``A_c(T) - A_c(0)``, shape ``(widths, gammas, seeds)``."""
    a = result["alignment_centered"]
    return a[..., -1] - a[..., 0]


def agreement(result) -> dict:
    g = gains(result)[0]  # first width: (gammas, seeds)
    gammas = result["gammas"]
    out = {f"gain_gamma{gamma:g}": float(g[b].mean()) for b, gamma in enumerate(gammas)}
    lazy = gammas <= 1.0
    out["gain_lazy_max"] = float(np.abs(g[lazy]).max()) if lazy.any() else float("nan")
    rich = g[gammas >= 1.0]
    out["gain_monotone"] = float(np.all(np.diff(rich, axis=0) > 0))
    out["gain_rich_min"] = float(g[-1].min())
    rel = np.abs(result["rate_fd"] - result["rate_theory"]) / np.abs(result["rate_theory"])
    out["initial_rate_rel_err"] = float(rel.max())
    final = result["losses"][0, :, :, -1]
    one = int(np.argmin(np.abs(np.log(gammas))))
    out["loss_ratio_rich_lazy"] = float(np.mean(final[-1] / final[one]))
    a0 = result["alignment_centered"][0, :, :, 0].mean(axis=0)  # (seeds,)
    out["init_alignment_infinite_gap"] = float(np.abs(a0 - result["alignment_infinite"]).max())
    t = result["early_times"][-1]
    taylor = result["rate_theory"][-1] * t + 0.5 * result["curvature_theory"][-1] * t * t
    sim = result["early_gain"][-1, :, -1]
    out["early_taylor2_rel_err_rich"] = float(np.max(np.abs(sim - taylor) / np.abs(sim)))
    out["early_first_order_rel_err_rich"] = float(np.max(
        np.abs(sim - result["rate_theory"][-1] * t) / np.abs(sim)))
    for a, m in enumerate(result["widths"][1:], start=1):
        out[f"gain_rich_width{int(m)}"] = float(gains(result)[a, -1].mean())
    return out


def plot(result):
    import matplotlib.pyplot as plt

    gammas, widths, t = result["gammas"], result["widths"], result["record_times"]
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(gammas)))
    fig, axes = plt.subplots(2, 4, figsize=(20, 8))
    tt = t[1:]
    for ax, key, label in ((axes[0, 0], "alignment_centered", r"$A_c(\sum_i K_{ii}, Y)$"),
                           (axes[1, 1], "alignment_uncentered", r"$A(\sum_i K_{ii}, Y)$"),
                           (axes[1, 0], "top_overlap", "target power in top-k eigenvectors")):
        for b, gamma in enumerate(gammas):
            ax.plot(tt, result[key][0, b].mean(axis=0)[1:], "o-", ms=3, color=colors[b],
                    label=fr"$\gamma$ = {gamma:g}")
        ax.set(xscale="log", xlabel="t = lr x steps", ylabel=label)
        ax.legend(fontsize=7)
    axes[0, 0].axhline(result["alignment_infinite"].mean(), color="k", ls="--", lw=0.8,
                       label=r"theory: infinite width, $t=0$")
    axes[0, 0].legend(fontsize=7)
    axes[0, 0].set_title(f"centred alignment (m = {widths[0]}, mean over seeds)")
    axes[1, 1].set_title("uncentred alignment")
    axes[1, 0].set_title("eigenvector-target overlap (centred)")
    ax = axes[0, 1]
    times = result["times"]
    for b, gamma in enumerate(gammas):
        ax.plot(times[1:], result["losses"][0, b].mean(axis=0)[1:], color=colors[b],
                label=fr"$\gamma$ = {gamma:g}")
    ax.set(xscale="log", yscale="log", xlabel="t", ylabel="training loss",
           title="loss falls faster when rich")
    ax.legend(fontsize=7)
    ax = axes[0, 2]
    g = gains(result)
    for a, m in enumerate(widths):
        ax.errorbar(gammas, g[a].mean(axis=-1), yerr=g[a].std(axis=-1), marker="o", capsize=3,
                    label=f"m = {m}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xscale="log", xlabel=r"richness $\gamma$", ylabel=r"gain $A_c(T) - A_c(0)$",
           title="alignment gain vs richness and width")
    ax.legend(fontsize=7)
    ax = axes[1, 2]
    ratio = result["rate_fd"] / result["rate_theory"]
    for b, gamma in enumerate(gammas):
        ax.scatter(np.full(ratio.shape[1], gamma), ratio[b], color=colors[b], zorder=3)
    ax.axhspan(0.9, 1.1, color="0.9", zorder=0, label="target: within 10%")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xscale="log", ylim=(0.85, 1.15), xlabel=r"richness $\gamma$",
           ylabel=r"GD finite difference / exact $dA_c/dt(0)$",
           title=r"exact initial rate vs GD ($\gamma t = 10^{-3}$), one point per seed")
    ax.legend(fontsize=7)
    ax, ax_end = axes[0, 3], axes[1, 3]
    te = result["early_times"]
    fine = np.linspace(0.0, te[-1], 80)
    for b, gamma in enumerate(gammas):
        if gamma < 3.0:
            continue
        sim = result["early_gain"][b].mean(axis=0)
        r1, r2 = result["rate_theory"][b].mean(), result["curvature_theory"][b].mean()
        ax.plot(te, sim, "o", ms=4, color=colors[b], label=fr"GD, $\gamma$ = {gamma:g}")
        ax.plot(fine, r1 * fine + 0.5 * r2 * fine ** 2, "-", color=colors[b])
        ax.plot(fine, r1 * fine, ":", color=colors[b])
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel="t (GD with lr = t_max / 100)", ylabel=r"$A_c(t) - A_c(0)$",
           title="early time, theory: solid $A't + A''t^2/2$, dotted $A't$")
    ax.legend(fontsize=7)
    t_end = te[-1]
    taylor = (result["rate_theory"] * t_end + 0.5 * result["curvature_theory"] * t_end ** 2)
    for b, gamma in enumerate(gammas):
        ax_end.scatter(taylor[b], result["early_gain"][b, :, -1], color=colors[b],
                       label=fr"$\gamma$ = {gamma:g}")
    lims = [min(taylor.min(), result["early_gain"][..., -1].min()),
            max(taylor.max(), result["early_gain"][..., -1].max())]
    ax_end.plot(lims, lims, "k-", lw=0.8)
    ax_end.set(xscale="symlog", yscale="symlog", xlabel=f"theory $A't + A''t^2/2$ at t = {t_end:g}",
               ylabel="GD", title="second-order expansion vs GD (one point per seed)")
    ax_end.set_xscale("symlog", linthresh=1e-5)
    ax_end.set_yscale("symlog", linthresh=1e-5)
    ax_end.legend(fontsize=7)
    fig.tight_layout()
    return fig
