"""kernel-split: the two-layer ReLU NTK split into its readout part K_V and first-layer part K_W.

Shan & Bordelon (2021), sec. 6 and Fig. 6: for ``f(x) = c_2 sum_k a_k ReLU(c_1 w_k . x)`` the NTK
is ``K = K_V + K_W``, ``K_V = c_2^2 Phi Phi^T`` (gradients in the readout ``a``) and
``K_W = c_2^2 c_1^2 (X X^T) * (D diag(a^2) D^T)`` (gradients in the first layer). With fixed
pre-activation signs the bilinear form ``B(z) = z^T K z / ||z||^2`` grows along the target ``y``
in ``K_V`` (anisotropically) and in every direction in ``K_W`` (isotropically).

Simulation: the centred model ``f_gamma = (f - f_0) / gamma`` of :mod:`ntkdyn.numerics.richness`
(function-space time ``t = lr * steps``), one output, trained by full-batch GD on two binary
tasks: random labels (``x ~ N(0, I_d)``, balanced ``y in {+-1}`` drawn independently of ``x``,
as in Fig. 6) and a structured task (the configured data set, odd vs even classes). ``K_V`` and
``K_W`` are the layer terms of the network's NTK computed from its back-propagated signals
(:func:`ntkdyn.numerics.kernels.backprop_signals`), independently of the theory code. Recorded:
``B_V(y)``, ``B_W(y)`` and the mean ``B_perp`` of ``B(z)`` over directions ``z`` orthogonal to
``y`` (:func:`ntkdyn.theory.two_layer_alignment.complement_bilinear_form`).

Theory (:func:`ntkdyn.theory.two_layer_alignment.kernel_split_rates`, from the initial weights
only): the exact rates ``dB/dt`` at ``t = 0`` of the four forms under gradient flow (gates fixed:
exact for ReLU at ``t = 0``), and the rate anisotropies ``dB(y)/dt / dB_perp/dt`` of ``K_V``
(of order ``n``) and ``K_W`` (near 1 for random labels). Agreement: those numbers against a GD
finite difference over ``gamma t = 1e-5`` (no gate flips inside it). Found here: at ``t = 0`` the
rates have the sign of a readout-weighted ``y^T f_0`` (random at initialisation), and
``dB_V(y)/dt = dB_W(y)/dt`` exactly (:func:`fixed_sign_bilinear_rates`); the paper's coherent
growth (``B_V(y)`` up, ``B_V`` flat orthogonally, ``B_W`` up in every direction) appears later,
once the readouts align with ``y``, where first-order theory no longer applies (a regime).
"""
from __future__ import annotations

import numpy as np

from ..numerics import tasks
from ..numerics.kernels import backprop_signals
from ..numerics.networks import MLP
from ..numerics.richness import CenteredModel
from ..numerics.training import gradient_descent, record_schedule
from ..theory.two_layer_alignment import bilinear_form, complement_bilinear_form, kernel_split_rates
from . import footprint as fp
from . import style
from .experiment import (Control, Experiment, agreement, at_least, at_most, is_true, observation,
                         replaced)

NAME = "kernel-split"
DESCRIPTION = ("two-layer ReLU NTK split K_V + K_W: t = 0 growth rates of B(y), B(z perp y) "
               "vs GD, random and structured labels")

SMOKE = {
    "n_train": 100, "d": 20, "width": 256, "gamma": 10.0, "lr": 1.0, "steps": 200,
    "num_records": 8, "seeds": 2, "seed": 0,
    "dataset": "synthetic-mixture", "classes": "odd-even", "n_test": 0,
    "preprocessing": "sphere",
}
QUICK = dict(SMOKE, n_train=200, d=30, steps=1000, num_records=14, seeds=4)
# The paper's data for the structured task (Shan & Bordelon 2021, Fig. 1): MNIST odd vs even on
# the sphere of radius sqrt(d) (d = 784; the key d then sets only the random-label inputs).
PAPER = dict(QUICK, n_train=1000, d=100, width=500, steps=3000, num_records=20, seeds=5,
             dataset="mnist")
TASKS = ("random", "structured")
PARTS = ("B_V_y", "B_V_perp", "B_W_y", "B_W_perp")
# gamma * t of the finite difference that checks the exact t = 0 rates (as relu-alignment).
RATE_GAMMA_T = 1e-5
RATE_STEPS = 10
POINT_KEYS = tasks.DATA_KEYS + ("d", "width", "gamma", "lr", "steps", "num_records")


def random_label_task(n: int, d: int, seed):
    """``x ~ N(0, I_d)`` and balanced labels ``y in {+-1}`` independent of ``x`` (Fig. 6)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    rng.shuffle(y)
    return X, y[:, None]


def load(point, seed):
    """``(X, Y, data)`` of one task: ``data`` is the DataSplit of the structured task, or None."""
    if point["task"] == "random":
        return (*random_label_task(int(point["n_train"]), int(point["d"]), seed), None)
    ds = tasks.load_task(point, seed, d=int(point["d"]))
    if ds.Y.shape[1] != 1:
        raise ValueError(f"classes: kernel-split needs a binary task (one output), e.g. "
                         f"'odd-even'; got {ds.Y.shape[1]} outputs")
    return ds.X, ds.Y, ds


def layer_kernels(net: MLP, params, X):
    """``(K_V, K_W)``: the readout and first-layer terms ``c_l^2 Gram(b_l) * Gram(a_{l-1})`` of
    a two-layer network's head-summed NTK, from its back-propagated signals (numerics only)."""
    fwd = net.forward(params, X)
    signals = backprop_signals(net, params, fwd)
    terms = []
    for layer in (1, 0):
        b = signals[layer]
        a = fwd.activations[layer]
        terms.append(net.multipliers[layer] ** 2 * np.einsum("inm,ipm->np", b, b) * (a @ a.T))
    return terms[0], terms[1]


def split_forms(net, params, X, y) -> np.ndarray:
    """``[B_V(y), B_V_perp, B_W(y), B_W_perp]`` of the network at ``params``."""
    K_V, K_W = layer_kernels(net, params, X)
    return np.array([bilinear_form(K_V, y), complement_bilinear_form(K_V, y),
                     bilinear_form(K_W, y), complement_bilinear_form(K_W, y)])


def runs(config) -> list[dict]:
    """One independent run per (task, replicate)."""
    base = {k: config[k] for k in POINT_KEYS}
    load(dict(base, task="structured"), 0)  # unknown data or a non-binary task: fail before work
    return [dict(base, task=task, replicate=s) for task in TASKS
            for s in range(int(config["seeds"]))]


def run(point, seed) -> dict:
    """Theory rates at ``t = 0``, a GD finite difference over ``gamma t = RATE_GAMMA_T`` and a
    training trajectory of the four bilinear forms, for one task and initialisation."""
    data_seed, weight_seed = seed.spawn(2)
    X, Y, ds = load(point, data_seed)
    y = Y[:, 0]
    gamma = float(point["gamma"])
    net = MLP([X.shape[1], int(point["width"]), 1], "relu")
    params0 = net.init(np.random.default_rng(weight_seed))
    model = CenteredModel(net, params0, gamma)
    theory = kernel_split_rates(*params0, X, y, gamma)
    t_fd = RATE_GAMMA_T / gamma
    short = gradient_descent(model, params0, X, Y, t_fd / RATE_STEPS, RATE_STEPS,
                             update=model.update)
    forms0 = split_forms(net, params0, X, y)
    steps = int(point["steps"])
    record = record_schedule(steps, num=int(point["num_records"]), log=True)
    traj = gradient_descent(model, params0, X, Y, point["lr"], steps, record_steps=record,
                            snapshots=True, update=model.update)
    out = {"rate_theory": np.array([theory[f"rate_{p}"] for p in PARTS]),
           "forms_theory0": np.array([theory[p] for p in PARTS]),
           "rate_fd": (split_forms(net, short.params, X, y) - forms0) / t_fd,
           "forms": np.array([split_forms(net, p, X, y) for p in traj.snapshots]),
           "record_times": float(point["lr"]) * traj.record_steps, "losses": traj.losses}
    if ds is not None:
        out.update(tasks.data_entries(ds))
    return out


def combine(config, results) -> dict:
    """Stack the runs into ``(task, seed, ...)`` arrays."""
    seeds = int(config["seeds"])
    by_key = {(p["task"], p["replicate"]): r for p, r in zip(runs(config), results)}

    def stack(key):
        return np.array([[by_key[t, s][key] for s in range(seeds)] for t in TASKS])

    structured = by_key["structured", 0]
    out = {key: stack(key) for key in ("rate_theory", "forms_theory0", "rate_fd", "forms",
                                       "losses")}
    out["record_times"] = results[0]["record_times"]
    out["tasks"] = np.array(TASKS)
    out.update({k: structured[k] for k in ("data_name", "data_preprocessing", "data_classes")})
    out["data_checksum"] = np.array([str(by_key["structured", s]["data_checksum"])
                                     for s in range(seeds)])
    return out


def anisotropies(rates) -> np.ndarray:
    """``[dB_V(y)/dB_V_perp, dB_W(y)/dB_W_perp]`` along the last axis of ``(..., 4)`` rates."""
    return np.stack([rates[..., 0] / rates[..., 1], rates[..., 2] / rates[..., 3]], axis=-1)


def growth(result) -> np.ndarray:
    """``B(T) - B(0)`` of the trained networks, ``(task, seed, 4)``."""
    f = result["forms"]
    return f[:, :, -1] - f[:, :, 0]


def measure(result) -> dict:
    out = {}
    th, fd = result["rate_theory"], result["rate_fd"]
    an_th, an_fd = anisotropies(th), anisotropies(fd)
    g = growth(result)
    t_end = result["record_times"][-1]
    for a, task in enumerate(TASKS):
        out[f"rate_fd_over_theory_dev_{task}"] = float(np.max(np.abs(fd[a] / th[a] - 1.0)))
        out[f"anisotropy_V_fd_over_theory_dev_{task}"] = float(
            np.max(np.abs(an_fd[a, :, 0] / an_th[a, :, 0] - 1.0)))
        out[f"anisotropy_W_fd_over_theory_dev_{task}"] = float(
            np.max(np.abs(an_fd[a, :, 1] / an_th[a, :, 1] - 1.0)))
        # the first-order prediction B(0) + B'(0) T at the end of training (a regime)
        first = th[a] * t_end
        out[f"first_order_rel_err_end_{task}"] = float(
            np.median(np.abs(g[a] - first) / np.abs(g[a])))
        # the paper's claims on the trained networks (observations)
        out[f"trained_anisotropy_V_min_{task}"] = float(np.min(g[a, :, 0] / g[a, :, 1]))
    ratio_W = g[:, :, 2] / g[:, :, 3]
    out["trained_anisotropy_W_log_dev_random"] = float(np.max(np.abs(np.log(ratio_W[0]))))
    out["trained_V_over_W_anisotropy_min_structured"] = float(
        np.min(g[1, :, 0] / g[1, :, 1] / ratio_W[1]))
    out["trained_growth_all_positive"] = float(np.all(g > 0))
    # the exact identity dB_V(y)/dt = dB_W(y)/dt at t = 0, in the simulation
    out["rate_V_y_over_W_y_fd_dev"] = float(np.max(np.abs(fd[..., 0] / fd[..., 2] - 1.0)))
    return out


def _declare():
    numbers = {}
    for task in TASKS:
        # smoke 2.2e-6 / 2.5e-6, quick 1.9e-4 / 5.3e-6 (random / structured; the quick random
        # value is a seed whose dB_V_perp/dt nearly cancels); control rates_scaled_1.05: 0.048,
        # swap_V_W: 271 / 17 (quick)
        numbers[f"rate_fd_over_theory_dev_{task}"] = agreement(
            at_most(5e-3), "max |GD finite difference / exact dB/dt(0) - 1| over the four "
                           "forms and seeds, gamma t = 1e-5")
        # smoke 4.3e-7 / 1.3e-6, quick 1.8e-4 / 4.0e-6; control swap_V_W: 271 / 17 (quick)
        numbers[f"anisotropy_V_fd_over_theory_dev_{task}"] = agreement(
            at_most(5e-3), "max |GD / theory - 1| of dB_V(y)/dB_V_perp at t = 0")
        # smoke 6.4e-7 / 1.9e-7, quick 6.8e-6 / 1.3e-6; control swap_V_W: 1.0 / 0.95 (quick)
        numbers[f"anisotropy_W_fd_over_theory_dev_{task}"] = agreement(
            at_most(5e-3), "max |GD / theory - 1| of dB_W(y)/dB_W_perp at t = 0")
        # smoke 1.02 / 0.95, quick 0.97 / 1.2; controls: 0.97-1.4
        numbers[f"first_order_rel_err_end_{task}"] = agreement(
            at_least(0.5), "|B(T) - B(0) - B'(0) T| / |B(T) - B(0)| at the end of training, "
                           "median over forms and seeds: expected to fail")
    # smoke 5.3 / 28, quick 6.8 / 34 (random / structured)
    numbers["trained_anisotropy_V_min_random"] = observation(
        at_least(3.0), "growth of B_V(y) over growth of B_V_perp after training, worst seed")
    numbers["trained_anisotropy_V_min_structured"] = observation(
        at_least(15.0), "growth of B_V(y) over growth of B_V_perp after training, worst seed")
    numbers["trained_anisotropy_W_log_dev_random"] = observation(  # smoke 0.24, quick 0.24
        at_most(0.5), "random labels: max |log(growth of B_W(y) / growth of B_W_perp)| over "
                      "seeds (K_W grows isotropically)")
    numbers["trained_V_over_W_anisotropy_min_structured"] = observation(  # smoke 7.2, quick 5.6
        at_least(2.5), "structured task: K_V's trained anisotropy over K_W's, worst seed")
    numbers["trained_growth_all_positive"] = observation(
        is_true(), "after training every form grew on every seed (t = 0 rates have mixed signs)")
    # smoke 2.6e-7, quick 9.9e-6
    numbers["rate_V_y_over_W_y_fd_dev"] = observation(
        at_most(5e-3), "GD finite differences: max |dB_V(y) / dB_W(y) - 1| (theory: exactly 0)")
    return numbers


NUMBERS = _declare()

REGIMES = {
    "first order": "the t = 0 rates are checked at gamma t = 1e-5 only; by the end of training "
                   "(gamma t = gamma lr steps >= 2000) the readouts have aligned with y and gates "
                   "have flipped, every form grows coherently and far from B'(0) t: "
                   "first_order_rel_err_end_* states the failure (>= 0.5).",
}


CONTROLS = (
    Control("rates_scaled_1.05", "the exact t = 0 rates of the four forms scaled by 1.05",
            replaced(rate_theory=lambda r: 1.05 * r["rate_theory"])),
    Control("swap_V_W", "K_V and K_W swapped in the theory (rates of B_V <-> B_W)",
            replaced(rate_theory=lambda r: r["rate_theory"][..., [2, 3, 0, 1]])),
)


@style.styled
def plot(result):
    fig, axes = style.panels(8, ncols=4, height=4.6)
    axes = np.array(axes).reshape(2, 4)
    t = result["record_times"]
    labels = [r"$B_V(y)$", r"$B_V(z \perp y)$", r"$B_W(y)$", r"$B_W(z \perp y)$"]
    colors = ["C0", "C1", "C2", "C3"]
    th, fd = result["rate_theory"], result["rate_fd"]
    for a, task in enumerate(TASKS):
        ax = axes[a, 0]
        f = result["forms"][a]
        for j in range(4):
            ax.plot(t[1:], (f[:, 1:, j] - f[:, :1, j]).mean(axis=0), "o-", ms=2,
                    color=colors[j], label=labels[j])
            ax.plot(t[1:], th[a, :, j].mean() * t[1:], ":", color=colors[j])
        top = float(np.max(np.abs(f[:, 1:] - f[:, :1]))) or 1.0
        ax.set_yscale("symlog", linthresh=1e-3 * top)
        ax.set(xscale="log", xlabel="t = lr x steps", ylabel="B(t) - B(0)")
        style.title(ax, f"{task} labels: growth")
        ax = axes[a, 1]
        dev = NUMBERS[f"rate_fd_over_theory_dev_{task}"].target.high
        for j in range(4):
            ax.scatter(th[a, :, j], fd[a, :, j], s=8, color=colors[j])
        lim = np.max(np.abs(th[a]))
        ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.8, label=f"|ratio - 1| <= {dev:g}")
        ax.set(xlabel="exact dB/dt at t = 0", ylabel=fr"GD at $\gamma t$ = {RATE_GAMMA_T:g}")
        style.sci_axis(ax)
        style.title(ax, f"{task}: initial rates")
        style.legend(ax, loc="upper left", handlelength=1, title="target")
        ax = axes[a, 2]
        an_th, an_fd = anisotropies(th[a]), anisotropies(fd[a])
        for j, part in enumerate(("V", "W")):
            ax.scatter(an_th[:, j], an_fd[:, j], s=8, color=colors[2 * j],
                       label=f"$K_{part}$: theory {np.mean(an_th[:, j]):.3g}")
        lim = np.max(np.abs(an_th))
        ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.8)
        ax.set(xscale="symlog", yscale="symlog", xlabel=r"theory $dB(y) / dB_\perp$ (t = 0)",
               ylabel="GD")
        style.title(ax, f"{task}: rate anisotropy")
        style.legend(ax, loc="upper left", handlelength=1, title="mean")
        ax = axes[a, 3]
        g = growth(result)[a]
        ax.bar(np.arange(2) - 0.2, [np.median(g[:, 0] / g[:, 1]), np.median(g[:, 2] / g[:, 3])],
               0.4, color="C4", label="GD, trained")
        ax.bar(np.arange(2) + 0.2, np.abs(np.median(an_th, axis=0)), 0.4, color="C5",
               label="theory, t = 0")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set(xticks=[0, 1], xticklabels=["$K_V$", "$K_W$"], yscale="log",
               ylabel=r"growth(y) / growth($\perp$)")
        style.title(ax, f"{task}: after training")
    handles, names = style.handles_labels(axes[0, 0], axes[0, 3])
    handles.append(style.proxy(color="k", ls=":"))
    names.append("first order (exact rate x t)")
    style.figure_legend(fig, handles=handles, labels=names, ncol=4,
                        title=f"medians over seeds; trained to t = {t[-1]:g}")
    return fig


def memory(config) -> int:
    """Peak bytes: training with a parameter snapshot at every record and the bilinear forms'
    kernels ``(n, n)``."""
    widths = fp.mlp_widths(config, depth=2, outputs=1)
    snapshots = (config["num_records"] + 2) * (fp.parameter_count(widths) + sum(widths))
    return (fp.network_bytes(widths, fp.num_inputs(config)) + fp.FLOAT64_BYTES * snapshots
            + fp.gram_bytes(config["n_train"], count=8))


EXPERIMENT = Experiment(
    name=NAME, description=DESCRIPTION,
    configs={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    memory=memory,
    numbers=NUMBERS, measure=measure, plot=plot, controls=CONTROLS, regimes=REGIMES,
    runs=runs, run=run, combine=combine)
