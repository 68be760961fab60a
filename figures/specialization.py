"""specialization: each ReLU head specialises its kernel to its own class; linear heads cannot.

Shan & Bordelon (2021): kernel specialization, each output head's kernel aligning with its own
target, which does not occur in linear networks (arXiv v1 abstract; sec. 6, Fig. 3). Simulation:
two-layer ReLU and linear networks of the same width, both trained as the rich centred model
``f_gamma`` (:mod:`ntkdyn.numerics.richness`) on a balanced multi-class task with centred one-hot
targets; the specialization matrix ``S_ij = A_c(K_ii, y_j)`` (centred and not normalised, unlike the
paper's eq. 9; docs/conventions.md) and the index ``xi = mean_i S_ii - mean_{i != j} S_ij`` are
recorded at log-spaced steps.

Theory (:mod:`ntkdyn.theory.two_layer_alignment`, from the initial weights only): the exact
initial rate ``d xi / dt`` of the ReLU network, against a GD finite difference, and the
second-order expansion ``xi' t + xi'' t^2 / 2`` of the linear network (no gates, so the expansion
holds up to ``gamma t ~ 0.1``), against GD. A linear network's heads mix the same shared kernels,
``K_ii = sum_l [B_l B_l^T]_ii Phi_l`` with ``B_l`` the product of the weights above layer ``l`` and
``Phi_l`` the Gram matrix of layer ``l``'s inputs
(:func:`ntkdyn.theory.deep_linear_kernels.linear_head_kernels`), at depth 2
``K_ii = w_i1 Phi_1 + Phi_2``; so ``|xi|`` is bounded by the dissimilarity of the normalised head
kernels (:func:`ntkdyn.theory.two_layer_alignment.specialization_bound`; an identity, checked on the
trained kernels), which stays small.

Data (the configuration keys ``dataset``, ``classes``, ``n_train``, ``n_test``, ``preprocessing``;
:func:`ntkdyn.numerics.tasks.load_task`): synthetic Gaussian mixture (``synthetic-mixture``, 4
classes) at smoke and quick scale; 10-class MNIST (inputs on the sphere of radius ``sqrt(d)``) at
paper scale. The targets were measured on the synthetic data; on another data set they state the
same claims, unmeasured.
"""
from __future__ import annotations

import numpy as np

from ..base.alignment import eigenvector_target_overlap
from ..numerics import tasks
from ..numerics.kernels import empirical_ntk
from ..numerics.networks import MLP
from ..numerics.richness import train_centered
from ..theory.two_layer_alignment import (initial_rates, initial_second_derivatives,
                                          linear_head_kernels, specialization_bound)
from . import footprint as fp
from . import style
from .experiment import Control, Experiment, agreement, at_least, at_most, identity, observation
from .progress import counter

NAME = "specialization"
DESCRIPTION = "kernel specialization S_ij = A_c(K_ii, y_j): ReLU heads specialise, linear cannot"

SMOKE = {
    "n_train": 120, "d": 30, "width": 256, "gamma": 30.0, "lr": 1.0, "steps": 600,
    "num_records": 6, "seeds": 2, "seed": 0,
    "dataset": "synthetic-mixture", "classes": None, "n_test": 0, "preprocessing": "none",
}
QUICK = {
    "n_train": 300, "d": 30, "width": 256, "gamma": 30.0, "lr": 1.0, "steps": 2000,
    "num_records": 16, "seeds": 3, "seed": 0,
    "dataset": "synthetic-mixture", "classes": None, "n_test": 0, "preprocessing": "none",
}
# The paper's data (Shan & Bordelon 2021, Fig. 3A): 10-class MNIST, centred one-hot targets,
# inputs on the sphere of radius sqrt(d) (d = 784; the key d is unused).
PAPER = dict(QUICK, n_train=1000, width=512, d=40, steps=3000, num_records=20, seeds=3,
             dataset="mnist", classes=None, preprocessing="sphere")
ACTIVATIONS = ("relu", "linear")
# gamma * t of the finite difference that checks the exact initial rate of xi (ReLU): small
# enough that no gate flips inside it (theory.two_layer_alignment, range of validity).
RATE_GAMMA_T = 1e-5
# gamma * t of the linear network's second-order check, run as 100 GD steps (the t^2 term is
# 4-5% of the change there, the expansion's error 0.2%).
LINEAR_GAMMA_T = 1.0


def load_task(config, seed):
    """The configured data (:func:`ntkdyn.numerics.tasks.load_task`) drawn from ``seed``."""
    return tasks.load_task(config, seed, d=config["d"])


def replicate_seeds(seed, replicate):
    """``(data, weights)`` seeds of replicate ``replicate``: children of ``seed`` by index. Both
    networks of a replicate start from the same weights (the shapes agree)."""
    key = tuple(seed.spawn_key) + (int(replicate),)
    return np.random.SeedSequence(seed.entropy, spawn_key=key).spawn(2)


def compute(config, seed) -> dict:
    """Train both networks on every replicate; add the early-time theory (from the initial
    weights) beside short GD runs: the ReLU rate ``d xi/dt (0)`` and the linear expansion."""
    tasks.check_task(config, d=config["d"])
    seeds, gamma = int(config["seeds"]), float(config["gamma"])
    xi = S0 = ST = losses = record_times = mixing = None
    bound = np.empty((len(ACTIVATIONS), seeds))
    splits = []
    rate_theory, rate_fd = np.empty(seeds), np.empty(seeds)
    linear_taylor = np.empty((seeds, 2))  # (xi' t, xi'' t^2 / 2) at t = LINEAR_GAMMA_T / gamma
    linear_gain = np.empty(seeds)
    advance = counter(seeds * len(ACTIVATIONS), "run")
    for s in range(seeds):
        data_seed, weight_seed = replicate_seeds(seed, s)
        ds = load_task(config, data_seed)
        splits.append(ds)
        k = ds.Y.shape[1]
        if mixing is None:
            mixing = np.empty((seeds, k, 2))
        for a, act in enumerate(ACTIVATIONS):
            net = MLP([ds.X.shape[1], int(config["width"]), k], act)
            params0 = net.init(np.random.default_rng(weight_seed))
            run = train_centered(net, ds.X, ds.Y, gamma, config["lr"], config["steps"],
                                 params0=params0, num_records=config["num_records"],
                                 spectral=False)
            m = run.metrics
            if xi is None:
                xi = np.empty((len(ACTIVATIONS), seeds, len(run.record_steps)))
                S0 = np.empty((len(ACTIVATIONS), seeds, k, k))
                ST = np.empty_like(S0)
                losses = np.empty((len(ACTIVATIONS), seeds, len(run.losses)))
                record_times = run.record_times
                # the paper's uncentred alignment and Tr K along training; the top
                # eigenvector's cosine with the targets at the end (recorded, not scored)
                a_unc, trace = np.empty_like(xi), np.empty_like(xi)
                top_cos = np.empty((len(ACTIVATIONS), seeds))
            xi[a, s] = m["xi"]
            a_unc[a, s], trace[a, s] = m["alignment_uncentered"], m["trace"]
            S0[a, s], ST[a, s] = m["specialization"][0], m["specialization"][-1]
            losses[a, s] = run.losses
            K_final = empirical_ntk(net, run.params, ds.X, heads="each")
            bound[a, s] = specialization_bound(K_final)
            top_cos[a, s] = np.sqrt(eigenvector_target_overlap(K_final.sum(axis=0), ds.Y,
                                                               centered=True)[1][0])
            if act == "linear":
                mixing[s] = linear_head_kernels(run.params, ds.X)[0]
                t = LINEAR_GAMMA_T / gamma
                rate = initial_rates(*run.params0, ds.X, ds.Y, gamma, act)["xi_rate"]
                curv = initial_second_derivatives(*run.params0, ds.X, ds.Y, gamma, act)["xi"]
                linear_taylor[s] = rate * t, 0.5 * curv * t * t
                short = train_centered(net, ds.X, ds.Y, gamma, t / 100, 100,
                                       params0=run.params0, num_records=2, spectral=False)
                linear_gain[s] = short.gain("xi")
            else:
                t = RATE_GAMMA_T / gamma
                rate_theory[s] = initial_rates(*run.params0, ds.X, ds.Y, gamma)["xi_rate"]
                short = train_centered(net, ds.X, ds.Y, gamma, t / 10, 10, params0=run.params0,
                                       num_records=2, spectral=False)
                rate_fd[s] = short.gain("xi") / t
            advance()
    return {"activations": np.array(ACTIVATIONS), "record_times": record_times, "xi": xi,
            "S_init": S0, "S_final": ST, "losses": losses, "bound": bound,
            "alignment_uncentered": a_unc, "trace": trace, "top_eigvec_cosine_final": top_cos,
            "linear_mixing_weights": mixing, "xi_rate_theory": rate_theory, "xi_rate_fd": rate_fd,
            "linear_taylor_terms": linear_taylor, "linear_early_gain": linear_gain,
            "linear_early_time": np.array(LINEAR_GAMMA_T / gamma), **tasks.data_entries(splits)}


def measure(result) -> dict:
    relu, lin = 0, 1
    xi = result["xi"]
    S = result["S_final"][relu]
    dominant = np.argmax(S, axis=-1) == np.arange(S.shape[-1])  # rows: (seeds, heads)
    taylor = result["linear_taylor_terms"].sum(axis=-1)
    sim = result["linear_early_gain"]
    return {
        "xi_rate_fd_over_theory_dev": float(
            np.max(np.abs(result["xi_rate_fd"] / result["xi_rate_theory"] - 1.0))),
        "xi_linear_early_taylor2_rel_err": float(np.max(np.abs(sim - taylor) / np.abs(sim))),
        "xi_linear_within_bound": float(np.max(np.abs(xi[lin, :, -1]) - result["bound"][lin])),
        "xi_relu": float(np.min(xi[relu, :, -1])),
        "xi_linear": float(np.max(np.abs(xi[lin, :, -1]))),
        "xi_init": float(np.max(np.abs(xi[:, :, 0]))),
        "xi_linear_bound": float(np.max(result["bound"][lin])),
        "diagonal_dominance_relu": float(np.mean(dominant)),
    }


NUMBERS = {
    # smoke 5.1e-7, quick 1.8e-6; control xi_rate_scaled_1.03: 0.029
    "xi_rate_fd_over_theory_dev": agreement(
        at_most(1e-3), "ReLU: max |GD finite difference / exact d xi/dt (0) - 1|, gamma t = 1e-5"),
    # smoke 0.0019, quick 0.0014; control linear_first_order_only: 0.038, 0.054
    "xi_linear_early_taylor2_rel_err": agreement(
        at_most(0.008), "linear: |xi't + xi''t^2/2 - GD| / |GD| at gamma t = 1, worst seed"),
    "xi_linear_within_bound": identity(  # smoke -0.0039, quick -0.0054
        at_most(0.0), "max over seeds of |xi_linear(T)| - bound(T): Cauchy-Schwarz, <= 0"),
    "xi_relu": observation(  # smoke 0.145, quick 0.125
        at_least(0.10), "final xi of the ReLU network, worst seed"),
    "xi_linear": observation(  # smoke 0.0015, quick 0.0039
        at_most(0.01), "final |xi| of the linear network, worst seed"),
    "xi_init": observation(  # smoke 0.010, quick 0.0089
        at_most(0.02), "|xi| at initialisation, both networks, worst seed"),
    "xi_linear_bound": observation(  # smoke 0.011, quick 0.016
        at_most(0.02), "bound on |xi| from the trained linear heads' kernels: heads stay alike"),
    "diagonal_dominance_relu": observation(  # smoke 0.875, quick 1.0
        at_least(0.75), "fraction of rows of the trained ReLU S with S_ii the row maximum"),
}


def _scaled_rate(result, config):
    return dict(result, xi_rate_theory=1.03 * result["xi_rate_theory"])


def _linear_first_order(result, config):
    terms = result["linear_taylor_terms"].copy()
    terms[:, 1] = 0.0
    return dict(result, linear_taylor_terms=terms)


CONTROLS = (
    Control("xi_rate_scaled_1.03", "the exact initial rate d xi/dt (0) scaled by 1.03",
            _scaled_rate),
    Control("linear_first_order_only", "the linear network's expansion without its t^2 term",
            _linear_first_order),
)


@style.styled
def plot(result):
    fig, gs = style.grid(2, 4, height=4.4)
    S_all = np.concatenate([result["S_init"][:, 0].ravel(), result["S_final"][:, 0].ravel()])
    lo, hi = S_all.min(), S_all.max()
    mats = []
    for a, act in enumerate(result["activations"]):
        for c, (key, when) in enumerate((("S_init", "init"), ("S_final", "trained"))):
            ax = fig.add_subplot(gs[0, 2 * a + c])
            S = result[key][a, 0]
            im = ax.imshow(S, vmin=lo, vmax=hi, cmap="magma")
            style.matrix_ticks(ax, *S.shape)
            ax.set(xlabel="target j", ylabel="head i" if a + c == 0 else None)
            style.title(ax, f"{act}, {when}")
            mats.append(ax)
    fig.colorbar(im, ax=mats, shrink=0.8, aspect=12, label="S (seed 0)")
    ax = fig.add_subplot(gs[1, :2])
    t = result["record_times"][1:]
    for a, act in enumerate(result["activations"]):
        for s in range(result["xi"].shape[1]):
            ax.plot(t, result["xi"][a, s, 1:], "o-" if a == 0 else "s--", ms=2,
                    color=f"C{a}", alpha=0.8, label=act if s == 0 else None)
    for s, b in enumerate(result["bound"][1]):
        ax.axhline(b, color="C1", lw=0.6, ls=":",
                   label="bound on |xi|, trained linear heads" if s == 0 else None)
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xscale="log", xlabel="t = lr x steps", ylabel=r"$\xi$ = diag - off-diag mean")
    style.title(ax, r"specialization index $\xi(t)$ (all seeds)")
    style.legend(ax, loc="upper left")
    ax = fig.add_subplot(gs[1, 2])
    taylor = result["linear_taylor_terms"].sum(axis=-1)
    ax.scatter(taylor, result["linear_early_gain"], s=10, color="C1",
               label=f"linear, per seed,\nt = {float(result['linear_early_time']):.3g}")
    lims = [min(taylor.min(), result["linear_early_gain"].min()),
            max(taylor.max(), result["linear_early_gain"].max())]
    ax.plot(lims, lims, "k-", lw=0.8)
    ax.set(xlabel=r"theory $\xi' t + \xi'' t^2/2$", ylabel=r"GD $\xi(t) - \xi(0)$")
    style.sci_axis(ax)
    style.title(ax, "linear: early time")
    style.legend(ax, loc="upper left")
    ax = fig.add_subplot(gs[1, 3])
    w = result["linear_mixing_weights"]
    for s in range(w.shape[0]):
        ax.plot(np.arange(w.shape[1]), w[s, :, 0] / w[s, :, 0].mean(), "o-", ms=3,
                label=f"seed {s}")
    style.integer_ticks(ax, "x")
    ax.set(xlabel="head i", ylabel=r"$w_{i1}$ / mean")
    style.title(ax, r"linear: $K_{ii} = w_{i1}\Phi_1 + \Phi_2$")
    style.legend(ax)
    return fig


def memory(config) -> int:
    """Peak bytes: training with the per-head kernels ``(k, n, n)`` and their spectra."""
    widths = fp.mlp_widths(config, depth=2)
    return (fp.network_bytes(widths, fp.num_inputs(config))
            + fp.gram_bytes(config["n_train"], count=6 * widths[-1]))


EXPERIMENT = Experiment(
    name=NAME, description=DESCRIPTION,
    configs={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    memory=memory,
    numbers=NUMBERS, measure=measure, plot=plot, controls=CONTROLS, compute=compute,
    dims={**dict.fromkeys(("xi", "alignment_uncentered", "trace"),
                          ("activation", "seed", "record_time")),
          **dict.fromkeys(("S_init", "S_final"), ("activation", "seed", "head", "class")),
          "losses": ("activation", "seed", "step"),
          **dict.fromkeys(("bound", "top_eigvec_cosine_final"), ("activation", "seed")),
          "linear_mixing_weights": ("seed", "head", "layer"),
          **dict.fromkeys(("xi_rate_theory", "xi_rate_fd", "linear_early_gain",
                           "data_checksum"), ("seed",)),
          "linear_taylor_terms": ("seed", "order")})
