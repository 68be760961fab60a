"""relu-alignment: two-layer ReLU networks align their NTK with the task, more so when richer.

Shan & Bordelon (2021), sec. 6: alignment in two-layer ReLU networks. Simulation: the centred model
``f_gamma = (f - f_0) / gamma`` of :mod:`ntkdyn.numerics.richness` (parameter learning rate
``lr gamma^2``, so every ``gamma`` has the same function-space speed), trained by full-batch GD on a
balanced multi-class task; the per-head NTKs are recorded at log-spaced steps and the centred
alignment ``A_c(sum_i K_ii, Y)`` is followed in time for several ``gamma`` (lazy -> rich) and
widths.

Theory (:mod:`ntkdyn.theory.two_layer_alignment`, computed from the initial weights only): the
exact initial rate ``dA_c/dt`` at ``t = 0`` from ``dK/dt`` under gradient flow, against a GD finite
difference with ``gamma * lr * steps = 1e-5``; the second-order expansion
``A_c(t) - A_c(0) = A' t + A'' t^2 / 2`` against GD with a small learning rate up to ``t = 1``; and
the infinite-width NTK (arc-cosine kernels, :func:`ntkdyn.theory.relu_ntk.infinite_ntk`) against
the centred empirical NTK at initialisation, averaged over heads and independent initialisations
(for two layers ``E[K_0] = K_inf`` at every width). Observed: the lazy limit stays flat, the
alignment gain grows with ``gamma`` and the loss falls faster in the rich regime.

Found here: on this task the exact first-order rate ``A'(0)`` is small and negative; the rise
of the alignment is second order (``A'' ~ gamma^2 > 0``), and ReLU gate flips (which the
derivatives at ``t = 0`` cannot see) dominate the early change once ``gamma t >~ 10^-2``
(see :mod:`ntkdyn.theory.two_layer_alignment`), so the first-order prediction fails at ``t = 1``.

Data (the configuration keys ``dataset``, ``classes``, ``n_train``, ``n_test``, ``preprocessing``;
:func:`ntkdyn.numerics.tasks.load_task`): synthetic Gaussian mixture (``synthetic-mixture``, 4
classes) at smoke and quick scale; MNIST odd vs even (``+-1`` targets, inputs on the sphere of
radius ``sqrt(d)``) at paper scale. The targets were measured on the synthetic data; on another
data set they state the same claims, unmeasured.
"""
from __future__ import annotations

import numpy as np

from ..base.alignment import center
from ..numerics import tasks
from ..numerics.kernels import alignment, empirical_ntk
from ..numerics.networks import MLP
from ..numerics.richness import train_centered
from ..theory.relu_ntk import infinite_nngp, infinite_ntk
from ..theory.two_layer_alignment import initial_rates, initial_second_derivatives
from . import footprint as fp
from . import style
from .experiment import (Control, Experiment, agreement, at_least, at_most, is_true, observation,
                         replaced)

NAME = "relu-alignment"
DESCRIPTION = "two-layer ReLU NTK alignment vs time across richness gamma and width (lazy: flat)"

SMOKE = {
    "n_train": 160, "d": 30, "widths": [256], "gammas": [0.1, 1.0, 30.0],
    "lr": 1.0, "steps": 600, "num_records": 8, "seeds": 2, "seed": 0,
    "dataset": "synthetic-mixture", "classes": None, "n_test": 0, "preprocessing": "none",
}
QUICK = {
    "n_train": 300, "d": 30, "widths": [256], "gammas": [0.1, 1.0, 3.0, 10.0, 30.0],
    "lr": 1.0, "steps": 2000, "num_records": 16, "seeds": 3, "seed": 0,
    "dataset": "synthetic-mixture", "classes": None, "n_test": 0, "preprocessing": "none",
}
# The paper's data (Shan & Bordelon 2021, Fig. 1): MNIST odd vs even, +-1 targets, inputs on the
# sphere of radius sqrt(d) (d = 784; the key d is unused).
PAPER = dict(QUICK, widths=[256, 1024, 4096], gammas=[0.1, 0.3, 1.0, 3.0, 10.0, 30.0],
             steps=3000, num_records=24, seeds=3, dataset="mnist", classes="odd-even",
             preprocessing="sphere")
EARLY_T = 1.0  # horizon of the early-time check, run with lr = EARLY_T / 100
EARLY_STEPS = np.unique(np.round(np.geomspace(1, 100, 9)).astype(int))
# gamma * t of the finite difference that checks the exact initial rate: small enough that no
# ReLU gate flips inside it (at gamma t = 1e-3 one flip in 51 200 unit-example pairs, n = 200,
# m = 256, already made the difference quotient 90 times the rate).
RATE_GAMMA_T = 1e-5
# Independent initialisations averaged into the t = 0 kernel: for two layers E[K_0] = K_inf at
# every width, so the average converges to K_inf like (m * draws)^(-1/2).
INIT_KERNEL_DRAWS = 8
POINT_KEYS = tasks.DATA_KEYS + ("d", "lr", "steps", "num_records")


def load_task(config, seed):
    """The configured data (:func:`ntkdyn.numerics.tasks.load_task`) drawn from ``seed``."""
    return tasks.load_task(config, seed, d=config["d"])


def runs(config) -> list[dict]:
    """One independent run per (seed, width, gamma); the first width also runs the t = 0 checks,
    and its first gamma the infinite-width check of the initial kernel."""
    tasks.check_task(config, d=config["d"])
    base = {k: config[k] for k in POINT_KEYS}
    return [dict(base, replicate=s, width=int(m), gamma=float(gamma), early_checks=(a == 0),
                 init_kernel=(a == 0 and b == 0))
            for s in range(int(config["seeds"])) for a, m in enumerate(config["widths"])
            for b, gamma in enumerate(config["gammas"])]


def replicate_seeds(seed, replicate):
    """``(data, weights, kernel draws)`` seeds of one replicate: children of the configuration
    seed (``seed.entropy``) at index ``replicate``, so every width and gamma of a replicate trains
    on the same task from the same initial weights (paired comparisons along gamma)."""
    return np.random.SeedSequence(seed.entropy, spawn_key=(int(replicate),)).spawn(3)


def run(point, seed) -> dict:
    """Train one centred network ``f_gamma``; with ``early_checks`` also compare the exact
    initial rate and second-order expansion of ``A_c`` with short gradient-descent runs, and
    record the NTK at initialisation (mean over heads and ``INIT_KERNEL_DRAWS`` independent
    initialisations) for the infinite-width check."""
    gamma = float(point["gamma"])
    data_seed, weight_seed, draws_seed = replicate_seeds(seed, point["replicate"])
    ds = load_task(point, data_seed)
    net = MLP([ds.X.shape[1], int(point["width"]), ds.Y.shape[1]], "relu")
    params0 = net.init(np.random.default_rng(weight_seed))
    trained = train_centered(net, ds.X, ds.Y, gamma, point["lr"], point["steps"],
                             params0=params0, num_records=point["num_records"])
    out = {"alignment_centered": trained.metrics["alignment_centered"],
           "alignment_uncentered": trained.metrics["alignment_uncentered"],
           "top_overlap": trained.metrics["top_overlap"], "trace": trained.metrics["trace"],
           "top_eigvec_cosine": trained.metrics["top_eigvec_cosine"], "losses": trained.losses,
           "record_times": trained.record_times}
    if point["init_kernel"]:
        out["X"], out["Y"] = ds.X, ds.Y
        out.update(tasks.data_entries(ds))
        out["kernel_init"] = np.mean(
            [empirical_ntk(net, net.init(np.random.default_rng(child)), ds.X,
                           heads="each").mean(axis=0)
             for child in draws_seed.spawn(INIT_KERNEL_DRAWS)], axis=0)
    if point["early_checks"]:
        # Exact initial rate vs a finite difference with gamma * t = RATE_GAMMA_T.
        t = RATE_GAMMA_T / gamma
        short = train_centered(net, ds.X, ds.Y, gamma, t / 10, 10, params0=trained.params0,
                               num_records=2, spectral=False)
        out["rate_fd"] = short.gain() / t
        out["rate_theory"] = initial_rates(*trained.params0, ds.X, ds.Y,
                                           gamma)["alignment_centered_rate"]
        # Early-time expansion A' t + A'' t^2 / 2 vs GD with lr = EARLY_T / 100.
        out["curvature_theory"] = initial_second_derivatives(
            *trained.params0, ds.X, ds.Y, gamma)["alignment_centered"]
        trace = train_centered(net, ds.X, ds.Y, gamma, EARLY_T / 100, 100,
                               params0=trained.params0, record_steps=EARLY_STEPS, spectral=False)
        a_early = trace.metrics["alignment_centered"]
        out["early_gain"] = a_early[1:] - a_early[0]
    return out


def combine(config, results) -> dict:
    """Stack the runs (in the order of :func:`runs`) into (width, gamma, seed) arrays and add
    the infinite-width NTK of each replicate's inputs (computed without any simulated kernel)."""
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

    init = [by_key[s, int(widths[0]), float(gammas[0])] for s in range(seeds)]
    X, Y = np.array([r["X"] for r in init]), np.array([r["Y"] for r in init])  # (seeds, n, .)
    k_inf = np.stack([infinite_ntk(x, depth=2) for x in X])
    losses = grid("losses")
    data = {k: init[0][k] for k in ("data_name", "data_preprocessing", "data_classes")}
    data["data_checksum"] = np.array([str(r["data_checksum"]) for r in init])
    return {"widths": widths, "gammas": gammas, "record_times": results[0]["record_times"],
            "times": config["lr"] * np.arange(losses.shape[-1]),
            "alignment_centered": grid("alignment_centered"),
            "alignment_uncentered": grid("alignment_uncentered"),
            "top_overlap": grid("top_overlap"), "trace": grid("trace"),
            "top_eigvec_cosine": grid("top_eigvec_cosine"), "losses": losses,
            "X": X, "Y": Y, "kernel_init": np.array([r["kernel_init"] for r in init]),
            "k_inf": k_inf,
            "rate_theory": first_width("rate_theory"), "rate_fd": first_width("rate_fd"),
            "curvature_theory": first_width("curvature_theory"),
            "early_times": EARLY_T * EARLY_STEPS / 100, "early_gain": first_width("early_gain"),
            **data}


def gains(result) -> np.ndarray:
    """``A_c(T) - A_c(0)``, shape ``(widths, gammas, seeds)``."""
    a = result["alignment_centered"]
    return a[..., -1] - a[..., 0]


def early_expansions(result):
    """``(first, second)``: ``A' t`` and ``A' t + A'' t^2 / 2`` at ``t = EARLY_T``,
    shape ``(gammas, seeds)``."""
    t = result["early_times"][-1]
    first = result["rate_theory"] * t
    return first, first + 0.5 * result["curvature_theory"] * t * t


def init_kernel_errors(result) -> np.ndarray:
    """``||H (K_0 - K_inf) H||_F / ||H K_inf H||_F`` per seed (``H`` the centring matrix; the
    constant part that every kernel of these offset inputs shares is left out)."""
    k0, k_inf = center(result["kernel_init"]), center(result["k_inf"])
    return np.linalg.norm(k0 - k_inf, axis=(-2, -1)) / np.linalg.norm(k_inf, axis=(-2, -1))


def measure(result) -> dict:
    g = gains(result)[0]  # first width: (gammas, seeds)
    gammas = result["gammas"]
    out = {}
    out["initial_rate_fd_over_theory_dev"] = float(
        np.max(np.abs(result["rate_fd"] / result["rate_theory"] - 1.0)))
    first, second = early_expansions(result)
    sim = result["early_gain"][-1, :, -1]  # largest gamma, every seed, t = EARLY_T
    out["early_taylor2_rel_err_rich"] = float(np.max(np.abs(sim - second[-1]) / np.abs(sim)))
    out["early_first_order_rel_err_rich"] = float(np.min(np.abs(sim - first[-1]) / np.abs(sim)))
    out["init_kernel_rel_err"] = float(np.max(init_kernel_errors(result)))
    lazy = gammas <= 1.0
    out["gain_lazy_max"] = float(np.max(np.abs(g[lazy]))) if lazy.any() else float("nan")
    rich = g[gammas >= 1.0]
    out["gain_monotone"] = float(rich.shape[0] >= 2 and np.all(np.diff(rich, axis=0) > 0))
    out["gain_rich_min"] = float(np.min(g[-1]))
    u = result["alignment_uncentered"][0]  # the paper's (uncentred) alignment, first width
    out["gain_uncentered_rich_min"] = float(np.min(u[-1, :, -1] - u[-1, :, 0]))
    final = result["losses"][0, :, :, -1]
    one = int(np.argmin(np.abs(np.log(gammas))))
    out["loss_ratio_rich_lazy"] = float(np.mean(final[-1] / final[one]))
    return out


NUMBERS = {
    # smoke 9.7e-6, quick 2.1e-5; control rate_scaled_1.03: 0.029
    "initial_rate_fd_over_theory_dev": agreement(
        at_most(1e-3), "max |GD finite difference / exact dA_c/dt(0) - 1|, gamma t = 1e-5"),
    # smoke 0.30, quick 0.19; control first_order_only: 1.26, 1.18
    "early_taylor2_rel_err_rich": agreement(
        at_most(0.6), "|A't + A''t^2/2 - GD| / |GD| at t = 1, largest gamma, worst seed"),
    # smoke 0.68, quick 0.71 (a regime: the first-order rate fails at gamma t >> 1e-2)
    "early_first_order_rel_err_rich": agreement(
        at_least(0.3), "|A't - GD| / |GD| at t = 1, largest gamma, best seed: expected to fail"),
    # smoke 0.058, quick 0.061; controls xxt_for_ntk 0.29, 0.29, nngp_for_ntk 1.3, 1.3
    "init_kernel_rel_err": agreement(
        at_most(0.13), "||H (K_0 - K_inf) H|| / ||H K_inf H|| at t = 0 (mean over heads and "
                       "INIT_KERNEL_DRAWS initialisations), worst seed"),
    "gain_lazy_max": observation(  # smoke 0.0045, quick 0.0085
        at_most(0.015), "|A_c(T) - A_c(0)| for gamma <= 1, every seed: the lazy limit is flat"),
    "gain_monotone": observation(
        is_true(), "gain increasing along gamma (>= 1) on every seed"),
    "gain_rich_min": observation(  # smoke 0.13, quick 0.12
        at_least(0.09), "gain at the largest gamma, worst seed"),
    "gain_uncentered_rich_min": observation(  # smoke 0.36, quick 0.41
        at_least(0.2), "uncentred A(T) - A(0) (the paper's headline alignment), largest gamma, "
                       "worst seed"),
    "loss_ratio_rich_lazy": observation(  # smoke 0.41, quick 0.29
        at_most(0.6), "final loss, largest gamma over gamma = 1: rich fits faster"),
}

REGIMES = {
    "first order": "A'(0) t predicts GD only for gamma t <~ 1e-2 (ReLU gate flips, invisible to "
                   "derivatives at t = 0, dominate later; theory.two_layer_alignment); at t = 1 "
                   "and the largest gamma early_first_order_rel_err_rich states the failure "
                   "(>= 0.3), while the second-order expansion still holds.",
}


CONTROLS = (
    Control("rate_scaled_1.03", "the exact initial rate dA_c/dt(0) scaled by 1.03",
            replaced(rate_theory=lambda r: 1.03 * r["rate_theory"])),
    Control("first_order_only", "the early-time expansion without its second-order term",
            replaced(curvature_theory=lambda r: np.zeros_like(r["curvature_theory"]))),
    Control("nngp_for_ntk", "the infinite-width NNGP kernel in place of the NTK",
            replaced(k_inf=lambda r: np.stack([infinite_nngp(x, depth=2) for x in r["X"]]))),
    Control("xxt_for_ntk", "the input Gram matrix X X^T / d in place of the NTK",
            replaced(k_inf=lambda r: np.einsum("snd,smd->snm", r["X"], r["X"])
                     / r["X"].shape[-1])),
)


@style.styled
def plot(result):
    gammas, widths, t = result["gammas"], result["widths"], result["record_times"]
    colors = style.sequential(len(gammas))
    fig, axes = style.panels(9, ncols=3)
    tt = t[1:]
    # the paper's (uncentred) alignment is the headline; the centred one beside it
    a_ax, loss_ax, gain_ax, c_ax, top_ax, rate_ax, early_ax, end_ax, key_ax = axes
    for ax, key, label in ((c_ax, "alignment_centered", r"$A_c(\sum_i K_{ii}, Y)$"),
                           (a_ax, "alignment_uncentered", r"$A(\sum_i K_{ii}, Y)$"),
                           (top_ax, "top_overlap", "target power in top-k eigvecs")):
        for b, gamma in enumerate(gammas):
            ax.plot(tt, result[key][0, b].mean(axis=0)[1:], "o-", ms=2, color=colors[b],
                    label=fr"$\gamma$ = {gamma:g}")
        ax.set(xscale="log", xlabel="t = lr x steps", ylabel=label)
    a_inf = np.mean([alignment(k, y, centered=True) for k, y in zip(result["k_inf"], result["Y"])])
    c_ax.axhline(a_inf, color="k", ls="--", lw=0.8, label=r"centred $A_c$, infinite width, $t=0$")
    style.title(c_ax, "centred alignment")
    style.title(a_ax, f"uncentred alignment (paper's), m = {widths[0]}")
    style.title(top_ax, "eigenvector-target overlap (centred)")
    ax = loss_ax
    times = result["times"]
    for b, gamma in enumerate(gammas):
        ax.plot(times[1:], result["losses"][0, b].mean(axis=0)[1:], color=colors[b],
                label=fr"$\gamma$ = {gamma:g}")
    ax.set(xscale="log", yscale="log", xlabel="t", ylabel="training loss")
    style.title(ax, "loss falls faster when rich")
    ax = gain_ax
    g = gains(result)
    for a, m in enumerate(widths):
        ax.errorbar(gammas, g[a].mean(axis=-1), yerr=g[a].std(axis=-1), marker="o", ms=3,
                    label=f"m = {m}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xscale="log", xlabel=r"richness $\gamma$", ylabel=r"gain $A_c(T) - A_c(0)$")
    style.title(ax, "alignment gain vs richness and width")
    style.legend(ax)
    ax = rate_ax
    ratio = result["rate_fd"] / result["rate_theory"]
    tol = NUMBERS["initial_rate_fd_over_theory_dev"].target.high
    for b, gamma in enumerate(gammas):
        ax.scatter(np.full(ratio.shape[1], gamma), ratio[b], s=10, color=colors[b], zorder=3)
    ax.axhspan(1 - tol, 1 + tol, color="0.9", zorder=0, label=f"target: within {tol:g}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xscale="log", ylim=(1 - 3 * tol, 1 + 3 * tol), xlabel=r"richness $\gamma$",
           ylabel=r"GD fin. diff. / exact $dA_c/dt(0)$")
    ax.ticklabel_format(axis="y", useOffset=True, style="sci", scilimits=(0, 0))
    style.title(ax, fr"initial rate at $\gamma t = {RATE_GAMMA_T:g}$, per seed")
    style.legend(ax)
    ax = early_ax
    te = result["early_times"]
    fine = np.linspace(0.0, te[-1], 80)
    for b, gamma in enumerate(gammas):
        if gamma < 3.0:
            continue
        sim = result["early_gain"][b].mean(axis=0)
        r1, r2 = result["rate_theory"][b].mean(), result["curvature_theory"][b].mean()
        ax.plot(te, sim, "o", ms=3, color=colors[b])
        ax.plot(fine, r1 * fine + 0.5 * r2 * fine ** 2, "-", color=colors[b])
        ax.plot(fine, r1 * fine, ":", color=colors[b])
    ax.plot([], [], "ko", ms=3, label="GD")
    ax.plot([], [], "k-", label=r"$A't + A''t^2/2$")
    ax.plot([], [], "k:", label=r"$A't$")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel="t (GD, lr = t_max / 100)", ylabel=r"$A_c(t) - A_c(0)$")
    style.time_axis(ax, te)
    style.title(ax, r"early time, $\gamma \geq 3$")
    style.legend(ax)
    _, taylor = early_expansions(result)
    for b, gamma in enumerate(gammas):
        end_ax.scatter(taylor[b], result["early_gain"][b, :, -1], s=10, color=colors[b],
                       label=fr"$\gamma$ = {gamma:g}")
    lims = [min(taylor.min(), result["early_gain"][..., -1].min()),
            max(taylor.max(), result["early_gain"][..., -1].max())]
    end_ax.plot(lims, lims, "k-", lw=0.8)
    end_ax.set(xlabel=r"theory $A't + A''t^2/2$ at $t_{max}$", ylabel="GD")
    style.title(end_ax, "second order vs GD, per seed")
    end_ax.set_xscale("symlog", linthresh=1e-5)
    end_ax.set_yscale("symlog", linthresh=1e-5)
    style.legend_panel(key_ax, *style.handles_labels(a_ax, c_ax), title="richness (all panels)")
    return fig


def memory(config) -> int:
    """Peak bytes: the widest run's training with its per-head kernels ``(k, n, n)``, the
    initial-kernel draws, plus the initial kernel each replicate keeps."""
    n = config["n_train"]
    widths = fp.mlp_widths(config, width=max(config["widths"]), depth=2)
    k = widths[-1]
    run = (fp.network_bytes(widths, fp.num_inputs(config))
           + fp.gram_bytes(n, count=5 * k + INIT_KERNEL_DRAWS))
    runs = config["seeds"] * len(config["widths"]) * len(config["gammas"])
    return (run + config["seeds"] * len(config["widths"]) * fp.gram_bytes(n, count=2)
            + runs * fp.RUN_OVERHEAD_BYTES)


EXPERIMENT = Experiment(
    name=NAME, description=DESCRIPTION,
    configs={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    memory=memory,
    numbers=NUMBERS, measure=measure, plot=plot, controls=CONTROLS, regimes=REGIMES,
    runs=runs, run=run, combine=combine)
