"""specialization: each ReLU head specialises its kernel to its own class; linear heads cannot.

Shan & Bordelon (2021): kernel specialization, each output head's kernel aligning with its own
target, which does not occur in linear networks (arXiv v1 abstract; sec. 6, Fig. 3). Simulation:
two-layer ReLU and linear networks of the same width, both trained as the rich centred model
``f_gamma`` (:mod:`ntkdyn.numerics.richness`) on a balanced multi-class task with centred one-hot
targets; the specialization matrix ``S_ij = A_c(K_ii, y_j)`` (centred and not normalised, unlike the
paper's eq. 9; docs/conventions.md) and the index ``xi = mean_i S_ii - mean_{i != j} S_ij`` are
recorded at log-spaced steps.

Theory (:mod:`ntkdyn.theory.two_layer_alignment`): a linear network's heads mix the same shared
kernels, ``K_ii = sum_l [B_l B_l^T]_ii Phi_l`` with ``B_l`` the product of the weights above layer
``l`` and ``Phi_l`` the Gram matrix of layer ``l``'s inputs
(:func:`ntkdyn.theory.deep_linear_kernels.linear_head_kernels`), at depth 2
``K_ii = w_i1 Phi_1 + Phi_2``; so ``|xi|`` is bounded by the dissimilarity of the normalised head
kernels (:func:`ntkdyn.theory.two_layer_alignment.specialization_bound`), which stays small; the
exact initial rate ``d xi / dt`` at ``t = 0`` for the ReLU network is reported beside the
simulation.
"""
from __future__ import annotations

import numpy as np

from ..numerics.datafiles import classification_task
from ..numerics.kernels import empirical_ntk
from ..numerics.networks import MLP
from ..numerics.richness import train_centered
from ..theory.two_layer_alignment import initial_rates, linear_head_kernels, specialization_bound

NAME = "specialization"
DESCRIPTION = "kernel specialization S_ij = A_c(K_ii, y_j): ReLU heads specialise, linear cannot"

QUICK = {
    "n": 300, "d": 30, "num_classes": 4, "width": 256, "gamma": 30.0, "lr": 1.0, "steps": 2000,
    "num_records": 16, "seeds": 3, "seed": 0,
    "dataset": "synthetic", "data_dir": "", "fallback_synthetic": False,
}
PAPER = dict(QUICK, n=1000, width=512, num_classes=10, d=40, steps=3000, num_records=20,
             seeds=3)
TARGETS = {
    "xi_relu": (0.10, 1.0),          # final xi of the ReLU network, worst seed
    "xi_linear": (0.0, 0.01),        # final |xi| of the linear network, worst seed
    "xi_init": (0.0, 0.02),          # |xi| at initialisation, both networks, worst seed
    "xi_linear_bound": (0.0, 0.02),  # theory bound on |xi| from the linear heads' kernels
    "diagonal_dominance_relu": (1.0, 1.0),  # fraction of rows of S with S_ii the row maximum
}
ACTIVATIONS = ("relu", "linear")


def load_task(config, seed):
    return classification_task(config["dataset"], config["n"], config["num_classes"],
                               data_dir=config["data_dir"] or None, seed=seed, d=config["d"],
                               fallback=config["fallback_synthetic"])


def compute(config) -> dict:
    seeds = int(config["seeds"])
    k = int(config["num_classes"])
    xi = S0 = ST = None
    bound = np.empty((len(ACTIVATIONS), seeds))
    mixing = np.empty((seeds, k, 2))
    xi_rate = np.empty(seeds)
    for s in range(seeds):
        seed = int(config["seed"]) + s
        ds = load_task(config, seed)
        for a, act in enumerate(ACTIVATIONS):
            net = MLP([ds.X.shape[1], int(config["width"]), k], act)
            run = train_centered(net, ds.X, ds.Y, config["gamma"], config["lr"], config["steps"],
                                 seed=seed, num_records=config["num_records"], spectral=False)
            m = run.metrics
            if xi is None:
                xi = np.empty((len(ACTIVATIONS), seeds, len(run.record_steps)))
                S0 = np.empty((len(ACTIVATIONS), seeds, k, k))
                ST = np.empty_like(S0)
                losses = np.empty((len(ACTIVATIONS), seeds, len(run.losses)))
                record_times = run.record_times
            xi[a, s] = m["xi"]
            S0[a, s], ST[a, s] = m["specialization"][0], m["specialization"][-1]
            losses[a, s] = run.losses
            bound[a, s] = specialization_bound(empirical_ntk(net, run.params, ds.X, heads="each"))
            if act == "linear":
                mixing[s] = linear_head_kernels(run.params, ds.X)[0]
            else:
                xi_rate[s] = initial_rates(*run.params0, ds.X, ds.Y, config["gamma"])["xi_rate"]
    return {"activations": np.array(ACTIVATIONS), "record_times": record_times, "xi": xi,
            "S_init": S0, "S_final": ST, "losses": losses, "bound": bound,
            "linear_mixing_weights": mixing, "xi_rate_theory": xi_rate}


def agreement(result) -> dict:
    relu, lin = 0, 1
    xi = result["xi"]
    S = result["S_final"][relu]
    rows = S.shape[0] * S.shape[1]
    dominant = sum(int(np.argmax(S[s, i]) == i)
                   for s in range(S.shape[0]) for i in range(S.shape[1]))
    return {
        "xi_relu": float(xi[relu, :, -1].min()),
        "xi_linear": float(np.abs(xi[lin, :, -1]).max()),
        "xi_init": float(np.abs(xi[:, :, 0]).max()),
        "xi_linear_bound": float(result["bound"][lin].max()),
        "xi_relu_mean": float(xi[relu, :, -1].mean()),
        "xi_linear_mean": float(xi[lin, :, -1].mean()),
        "diagonal_dominance_relu": dominant / rows,
        "xi_rate_relu_theory": float(result["xi_rate_theory"].mean()),
    }


def plot(result):
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(14, 7.5))
    grid = fig.add_gridspec(2, 4)
    S_all = np.concatenate([result["S_init"][:, 0].ravel(), result["S_final"][:, 0].ravel()])
    lo, hi = S_all.min(), S_all.max()
    for a, act in enumerate(result["activations"]):
        for c, (key, when) in enumerate((("S_init", "init"), ("S_final", "trained"))):
            ax = fig.add_subplot(grid[a, c])
            S = result[key][a, 0]
            im = ax.imshow(S, vmin=lo, vmax=hi, cmap="magma")
            ax.set(title=f"{act}, {when}: S (seed 0)", xlabel="target j", ylabel="head i")
            fig.colorbar(im, ax=ax, fraction=0.046)
    ax = fig.add_subplot(grid[0, 2:])
    t = result["record_times"][1:]
    for a, act in enumerate(result["activations"]):
        for s in range(result["xi"].shape[1]):
            ax.plot(t, result["xi"][a, s, 1:], "o-" if a == 0 else "s--", ms=3,
                    color=f"C{a}", alpha=0.8, label=act if s == 0 else None)
    for s, b in enumerate(result["bound"][1]):
        ax.axhline(b, color="C1", lw=0.6, ls=":",
                   label="theory: linear bound on |xi| (trained)" if s == 0 else None)
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xscale="log", xlabel="t = lr x steps", ylabel=r"$\xi$ = mean diag - mean off-diag",
           title=r"specialization index $\xi(t)$ (all seeds)")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[1, 2:])
    w = result["linear_mixing_weights"]
    for s in range(w.shape[0]):
        ax.plot(np.arange(w.shape[1]), w[s, :, 0] / w[s, :, 0].mean(), "o-", ms=4,
                label=f"seed {s}")
    ax.set(xlabel="head i", ylabel=r"$w_{i1}$ / mean",
           title=r"linear net: $K_{ii} = w_{i1}\Phi_1 + \Phi_2$, heads differ by one weight")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
