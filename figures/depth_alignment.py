"""depth-alignment: deeper ReLU networks align their NTK faster and more strongly.

Claim: feature evolution is faster and more dramatic in deeper networks (Shan & Bordelon 2021,
arXiv v1 abstract; their Fig. 5 trains ReLU MLPs with 2-5 hidden layers). Simulation: ReLU
MLPs of depth ``L = 2..5`` (``L`` weight matrices, equal hidden widths) trained as the centred
model ``f_gamma`` of :mod:`ntkdyn.numerics.richness` at the same ``gamma`` (default 1, NTK
scaling) and function-space learning rate on one task; the centred alignment
``A_c(sum_i K_ii, Y)`` of the per-head NTKs is recorded at log-spaced steps. Theory: the
infinite-width NTK of each depth (:func:`ntkdyn.theory.relu_ntk.infinite_ntk`) gives the
alignment at initialisation; at finite width the kernel moves by ``O(gamma / sqrt(m))`` per
layer, and deeper networks compound it. The deep linear analogue: after learning, the NTK of a
scalar-output deep linear network is ``||beta||^(2(L-1)/L) [x.x' + (L-1)(b.x)(b.x')]`` with
``b = beta / ||beta||``, a spike of weight ``L - 1`` (Shan & Bordelon 2021, sec. 5, whose ``L``
counts hidden layers; :func:`ntkdyn.theory.symbolic.rank_one_ntk_spike`).
"""
from __future__ import annotations

import numpy as np

from ..numerics.datafiles import classification_task
from ..numerics.kernels import alignment
from ..numerics.networks import MLP
from ..numerics.richness import train_centered
from ..theory.relu_ntk import infinite_ntk

NAME = "depth-alignment"
DESCRIPTION = "ReLU MLPs of depth 2..5: NTK alignment is faster and larger with depth"

QUICK = {
    "n": 160, "d": 30, "num_classes": 4, "width": 128, "depths": [2, 3, 4, 5], "gamma": 1.0,
    "lr": 1.0, "steps": 1000, "num_records": 14, "seeds": 2, "seed": 0,
    "dataset": "synthetic", "data_dir": "", "fallback_synthetic": False,
}
PAPER = dict(QUICK, n=300, width=256, steps=2000, num_records=20, seeds=3)
TARGETS = {
    "gain_deep_minus_shallow_min": (0.03, 1.0),  # gain(deepest) - gain(shallowest), worst seed
    "gain_monotone": (1.0, 1.0),                 # gain increasing with depth on every seed
    "early_gain_monotone": (1.0, 1.0),           # seed-mean gain at t = T/10 increasing with depth
    "init_alignment_infinite_gap_depth2": (0.0, 0.03),  # |A_c(K_0) - A_c(K_inf)| at depth 2
}


def load_task(config, seed):
    return classification_task(config["dataset"], config["n"], config["num_classes"],
                               data_dir=config["data_dir"] or None, seed=seed, d=config["d"],
                               fallback=config["fallback_synthetic"])


def compute(config) -> dict:
    depths = np.asarray(config["depths"], dtype=int)
    seeds = int(config["seeds"])
    a_c = losses = None
    a_inf = np.empty((len(depths), seeds))
    for s in range(seeds):
        seed = int(config["seed"]) + s
        ds = load_task(config, seed)
        d, k = ds.X.shape[1], ds.Y.shape[1]
        for a, L in enumerate(depths):
            a_inf[a, s] = alignment(infinite_ntk(ds.X, depth=int(L)), ds.Y, centered=True)
            net = MLP([d] + [int(config["width"])] * (int(L) - 1) + [k], "relu")
            run = train_centered(net, ds.X, ds.Y, config["gamma"], config["lr"], config["steps"],
                                 seed=seed, num_records=config["num_records"])
            if a_c is None:
                a_c = np.empty((len(depths), seeds, len(run.record_steps)))
                losses = np.empty((len(depths), seeds, len(run.losses)))
                record_times = run.record_times
            a_c[a, s] = run.metrics["alignment_centered"]
            losses[a, s] = run.losses
    return {"depths": depths, "record_times": record_times, "alignment_centered": a_c,
            "losses": losses, "times": config["lr"] * np.arange(losses.shape[-1]),
            "alignment_infinite": a_inf}


def early_index(result) -> int:
    """Recorded step nearest (in log time) to a tenth of the run: where "faster" is read off."""
    t = result["record_times"]
    target = t[-1] / 10.0
    return int(np.argmin(np.abs(np.log(np.maximum(t, t[1] / 2) / target))))


def agreement(result) -> dict:
    a = result["alignment_centered"]
    gains = a[..., -1] - a[..., 0]  # (depths, seeds)
    early = a[..., early_index(result)] - a[..., 0]
    depths = result["depths"]
    out = {f"gain_depth{int(L)}": float(gains[i].mean()) for i, L in enumerate(depths)}
    out["gain_deep_minus_shallow_min"] = float((gains[-1] - gains[0]).min())
    out["gain_monotone"] = float(np.all(np.diff(gains, axis=0) > 0))
    for i, L in enumerate(depths):
        out[f"early_gain_depth{int(L)}"] = float(early[i].mean())
    out["early_gain_monotone"] = float(np.all(np.diff(early.mean(axis=1)) > 0))
    gap = np.abs(a[..., 0].mean(axis=1) - result["alignment_infinite"].mean(axis=1))
    for i, L in enumerate(depths):
        out[f"init_alignment_infinite_gap_depth{int(L)}"] = float(gap[i])
    return out


def plot(result):
    import matplotlib.pyplot as plt

    depths, t = result["depths"], result["record_times"]
    a = result["alignment_centered"]
    colors = plt.cm.plasma(np.linspace(0, 0.85, len(depths)))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ax = axes[0]
    for i, L in enumerate(depths):
        ax.plot(t[1:], a[i].mean(axis=0)[1:], "o-", ms=3, color=colors[i], label=f"depth {L}")
        ax.axhline(result["alignment_infinite"][i].mean(), color=colors[i], ls="--", lw=0.8)
    ax.set(xscale="log", xlabel="t = lr x steps", ylabel=r"$A_c(\sum_i K_{ii}, Y)$",
           title="alignment (dashed: infinite-width NTK at t = 0)")
    ax.legend(fontsize=8)
    ax = axes[1]
    gains = a - a[..., :1]
    for i, L in enumerate(depths):
        for s in range(a.shape[1]):
            ax.plot(t[1:], gains[i, s, 1:], "-", color=colors[i], alpha=0.8,
                    label=f"depth {L}" if s == 0 else None)
    ax.set(xscale="log", xlabel="t", ylabel=r"$A_c(t) - A_c(0)$",
           title="alignment gain (all seeds)")
    ax.legend(fontsize=8)
    ax = axes[2]
    times = result["times"]
    for i, L in enumerate(depths):
        ax.plot(times[1:], result["losses"][i].mean(axis=0)[1:], color=colors[i],
                label=f"depth {L}")
    ax.set(xscale="log", yscale="log", xlabel="t", ylabel="training loss", title="loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
