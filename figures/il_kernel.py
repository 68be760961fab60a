"""il-kernel: the empirical NTK under iterative linearisation, the loss jump at each feature
update, and the learning-rate x K interaction.

Goldwaser & Ge (arXiv:2211.12345): the empirical NTK of a finite network changes during training,
especially early (abstract), and rare feature updates match gradient descent only at small enough
learning rates (introduction of the workshop version). The linear model's kernel is
``J(theta_tilde) J(theta_tilde)^T``: constant inside each block of ``K`` steps by construction
and jumping at every feature update, while under gradient descent (``K = 1``) it drifts at every
step. Inside a block the linear model moves away from the point where the linearisation holds, so
the training loss jumps when the features are updated (the network's own loss replaces the linear
model's). The jump is the Taylor remainder of the linearisation, second order in the block's
displacement ``||theta - theta_tilde|| ~ lr K ||grad L||`` while ``lr K mu << 1`` for most kernel
modes (a heuristic, not a theorem: the displacement saturates at the Gauss-Newton step once
``lr K mu >> 1``), so the first jump grows faster than linearly in ``lr K``.

Theory beside simulation: the first block starts at ``theta_0``, so until the first feature update
the linear model's training loss has a closed form in the frozen empirical NTK ``K_0``
(:class:`ntkdyn.theory.kernel_regime.FrozenKernelRegime`, Lee et al. 2019, sec. 2.2); on the
(lr, K) grid the simulated loss just before the first update (at ``K = inf``: after the last
step) over the closed form is the agreement number. The kernel's block structure is an identity;
the kernel jumps, the growth of the loss jump with ``lr K`` and "a few feature updates beat
none" on the grid are observations. The learning-rate x K interaction is plotted (the heat map)
but not scored: at equal steps a larger learning rate also trains for a longer time ``lr T``, and
on this task the ratio to gradient descent at a large ``K`` does not grow with the learning rate
(it falls at paper scale). Gradient descent's kernel drift is plotted beside IL's; the abstract's
"especially early" sets no threshold (and on this task at ``lr = 1`` the first 10% of the steps
carry about 10% of the drift), so it is not scored.

Data (the configuration keys ``dataset``, ``classes``, ``n_train``, ``n_test``, ``preprocessing``;
:func:`ntkdyn.numerics.tasks.load_task`): the synthetic single-index task
(``synthetic-single-index``) at smoke and quick scale; CIFAR-10 odd vs even (``+-1`` targets,
inputs on the sphere of radius ``sqrt(d)``) at paper scale. The targets were measured on the
synthetic data; on another data set they state the same claims, unmeasured.
"""
from __future__ import annotations

import numpy as np

from ..base.fitting import loglog_slope
from ..numerics.kernels import empirical_ntk, relative_change
from ..numerics.linearised import iterative_linearised_training
from ..numerics.tasks import data_entries, scalar_problem
from ..theory.kernel_regime import FrozenKernelRegime
from . import config_types as ct
from . import footprint as fp
from . import style
from .experiment import (Control, Experiment, agreement, at_least, at_most, identity, interval,
                         observation)

NAME = "il-kernel"
DESCRIPTION = ("iterative linearisation: eNTK constant within blocks, jumps and loss spikes at "
               "updates; lr x K")

SMOKE = {
    "dataset": "synthetic-single-index", "classes": None, "preprocessing": "none",
    "d": 20, "n_train": 200, "n_test": 500, "width": 128, "activation": "relu",
    "lr": 1.0, "steps": 200, "period": 50, "probe": 20, "kernel_every": 10,
    "lrs": [1.0, 2.0], "periods": [1, 50, 200, 0], "grid_steps": 400, "seed": 0,
}
QUICK = {
    "dataset": "synthetic-single-index", "classes": None, "preprocessing": "none",
    "d": 20, "n_train": 200, "n_test": 1000, "width": 256, "activation": "relu",
    "lr": 1.0, "steps": 1000, "period": 100, "probe": 50, "kernel_every": 10,
    "lrs": [0.5, 2.0], "periods": [1, 30, 300, 0], "grid_steps": 600, "seed": 0,
}
# The paper's data (Goldwaser & Ge 2022 train on CIFAR-10): the odd/even label-parity binary
# task, +-1 targets, inputs on the sphere of radius sqrt(d) (d = 3072; the key d is unused).
PAPER = {
    "dataset": "cifar10", "classes": "odd-even", "preprocessing": "sphere",
    "d": 20, "n_train": 200, "n_test": 1000, "width": 256, "activation": "relu",
    "lr": 1.0, "steps": 3000, "period": 100, "probe": 100, "kernel_every": 10,
    "lrs": [0.25, 0.5, 1.0, 2.0, 4.0], "periods": [1, 10, 100, 1000, 0], "grid_steps": 3000,
    "seed": 0,
}


def _ntk_recorder(probe):
    return lambda model, theta, X, Y: model.ntk(probe)


def _label(period) -> str:
    return "inf" if period == 0 else str(int(period))


def compute(config, seed) -> dict:
    """The kernel along IL(K) and gradient descent, and the (lr, K) grid from one problem.

    The network, weights and data are drawn from ``seed`` (the configuration seed).
    """
    periods = np.asarray(config["periods"], dtype=int)  # 0 = never (K = inf)
    if periods[0] != 1:
        raise ValueError(f"periods must start with 1 (gradient descent), got {list(periods)}")
    task = scalar_problem(config, int(config["width"]), config["activation"],
                          seed=tuple(int(s) for s in seed.generate_state(4)))
    net, params, X, Y, X_test, Y_test = task
    probe = X[:int(config["probe"])]
    lr, steps, K = float(config["lr"]), int(config["steps"]), int(config["period"])
    every = int(config["kernel_every"])
    out = {}
    # The kernel along iterative linearisation (K) and along gradient descent (K = 1).
    for label, period in (("il", K), ("gd", 1)):
        traj = iterative_linearised_training(net, params, X, Y, lr, steps, period, every=every,
                                             record={"ntk": _ntk_recorder(probe)})
        kernels = traj.observables["ntk"]
        out[f"{label}_record_steps"] = traj.record_steps
        out[f"{label}_kernel_change"] = np.array([relative_change(k, kernels[0]) for k in kernels])
        out[f"{label}_train_loss"] = traj.losses
        if label == "il":
            out["il_kernels"] = kernels
            out["il_relinearisation_steps"] = traj.relinearisation_steps
            out["il_loss_before_update"] = traj.loss_before_update
            out["il_loss_after_update"] = traj.loss_after_update
    # Learning rate x K at equal steps: test loss, the linear model's training loss at the end of
    # the first block (K = inf: at the end), and the loss jump at the first update.
    lrs = np.asarray(config["lrs"], dtype=float)
    n_steps = int(config["grid_steps"])
    grid_test = np.empty((len(lrs), len(periods)))
    # the cells with a first block (K > 1 with an update within grid_steps, or K = inf) and a
    # loss jump (the former without K = inf); the losses are 0 elsewhere
    has_block = np.zeros((len(lrs), len(periods)), dtype=bool)
    first_block = np.zeros((len(lrs), len(periods)))
    first_jump = np.zeros((len(lrs), len(periods)))
    for a, rate in enumerate(lrs):
        for b, period in enumerate(periods):
            traj = iterative_linearised_training(
                net, params, X, Y, rate, n_steps, float("inf") if period == 0 else int(period),
                test=(X_test, Y_test), every=n_steps)
            grid_test[a, b] = traj.observables["test_loss"][-1]
            if period == 0:
                has_block[a, b] = True
                first_block[a, b] = traj.observables["loss"][-1]
            elif period > 1 and traj.feature_updates > 0:
                has_block[a, b] = True
                first_block[a, b] = traj.loss_before_update[0]
                first_jump[a, b] = relative_jumps(traj.loss_before_update[:1],
                                                  traj.loss_after_update[:1])[0]
    out.update({"lrs": lrs, "periods": periods, "grid_test_loss": grid_test,
                "grid_has_first_block": has_block, "grid_first_block_loss": first_block,
                "grid_first_jump": first_jump,
                "grid_steps": np.array(n_steps), "lr": np.array(lr), "period": np.array(K),
                "k0_train": empirical_ntk(net, params, X), "f0_train": net.apply(params, X),
                "y_train": Y})
    out["theory_first_block_loss"] = first_block_theory(out, lr_given=True)
    out.update(data_entries(task.data))
    return out


def first_block_theory(result, scale=1.0, lr_given=True) -> np.ndarray:
    """Frozen-kernel closed form of the linear model's training loss at the end of the first
    block (``K`` steps; ``K = inf``: ``grid_steps``) per grid cell, 0 where the simulation has
    no first block. ``K_0`` times ``scale``; gradient descent, or gradient flow at ``t = lr K``
    for ``lr_given = False``."""
    regime = FrozenKernelRegime(scale * result["k0_train"], result["y_train"], result["f0_train"])
    out = np.zeros(result["grid_first_block_loss"].shape)
    for a, rate in enumerate(result["lrs"]):
        for b, period in enumerate(result["periods"]):
            if result["grid_has_first_block"][a, b]:
                s = int(result["grid_steps"]) if period == 0 else int(period)
                out[a, b] = regime.train_loss(rate * s, lr=rate if lr_given else None)
    return out


def relative_jumps(before, after) -> np.ndarray:
    """``(L_network - L_linear) / L_linear`` at each feature update: the loss spike."""
    return (np.asarray(after) - np.asarray(before)) / np.asarray(before)


def block_changes(result) -> tuple[float, float]:
    """Largest kernel change inside a block and smallest jump across an update (both relative
    to the initial kernel's norm)."""
    steps, kernels = result["il_record_steps"], result["il_kernels"]
    relin = set(result["il_relinearisation_steps"].tolist())
    norm0 = np.linalg.norm(kernels[0])
    current, within, jumps = kernels[0], 0.0, []
    for s, k in zip(steps[1:], kernels[1:]):
        change = np.linalg.norm(k - current) / norm0
        if s in relin:
            jumps.append(change)
            current = k
        else:
            within = max(within, change)
    if not jumps:
        raise ValueError("the kernel run needs at least one feature update (period < steps)")
    return within, float(np.min(jumps))


def jump_slope(result) -> float:
    """Least-squares slope of ``log(first loss jump)`` on ``log(lr K)`` over the grid cells with
    a feature update and a positive jump."""
    lrK = result["lrs"][:, None] * result["periods"][None, :]
    jumps = result["grid_first_jump"]
    use = result["grid_has_first_block"] & (result["periods"][None, :] > 1) & (jumps > 0)
    if use.sum() < 2:
        raise ValueError("the (lr, K) grid needs at least two cells with a positive loss jump")
    return loglog_slope(lrK[use], jumps[use])


def test_loss_ratios(result) -> np.ndarray:
    """Test loss over gradient descent's at the same learning rate and steps, ``(lrs, periods)``,
    the columns in the order of increasing ``K`` (``inf`` last)."""
    ratio = result["grid_test_loss"] / result["grid_test_loss"][:, :1]
    order = np.argsort(np.where(result["periods"] == 0, np.inf, result["periods"]))
    return ratio[:, order]


def measure(result) -> dict:
    within, jump = block_changes(result)
    has_block = result["grid_has_first_block"]
    dev = np.abs(result["grid_first_block_loss"][has_block]
                 / result["theory_first_block_loss"][has_block] - 1.0)
    ratio = test_loss_ratios(result)  # columns: K = 1, the most frequent K > 1, ..., inf
    return {
        "first_block_loss_over_theory_max_dev": float(np.max(dev)),
        "kernel_change_within_blocks": within,
        "kernel_jump_min": jump,
        "loss_jump_slope_vs_lrK": jump_slope(result),
        "test_loss_ratio_kinf_over_most_frequent_min": float(np.min(ratio[:, -1] / ratio[:, 1])),
    }


def numbers(config) -> dict:
    return {
        # smoke 2e-15, quick 5e-15; controls ntk_scaled_1.03 0.06 (quick), gradient_flow 3e-3
        "first_block_loss_over_theory_max_dev": agreement(
            at_most(1e-9), "linear model's loss at the first update (K = inf: the end) over the "
                           "frozen-NTK closed form, max |ratio - 1| over the (lr, K) grid"),
        "kernel_change_within_blocks": identity(
            at_most(1e-12), "largest eNTK change inside a block (the linear model's kernel)"),
        # smoke 0.02, quick 0.014
        "kernel_jump_min": observation(
            at_least(1e-3), "smallest eNTK jump at a feature update (relative to ||K_0||)"),
        # smoke 1.76, quick 1.63
        "loss_jump_slope_vs_lrK": observation(
            interval(1.2, 2.2), "log-log slope of the first loss jump on lr K: faster than "
                                "linear, at most the heuristic's 2"),
        # smoke 1.24, quick 1.15, paper 1.39
        "test_loss_ratio_kinf_over_most_frequent_min": observation(
            at_least(1.05), "test-loss ratio to GD at K = inf over that at the most frequent "
                            "K > 1, smallest over lr: a few feature updates beat none"),
    }


def _scaled_kernel(factor):
    def apply(result, config):
        return dict(result, theory_first_block_loss=first_block_theory(result, scale=factor))
    return apply


def _gradient_flow(result, config):
    return dict(result, theory_first_block_loss=first_block_theory(result, lr_given=False))


CONTROLS = (
    Control("ntk_scaled_1.03", "the frozen empirical NTK scaled by 1.03", _scaled_kernel(1.03)),
    Control("gradient_flow_for_gd", "the gradient-flow closed form (t = lr K) in place of "
            "gradient descent's", _gradient_flow),
)


@style.styled
def plot(result):
    fig, axes = style.panels(4, ncols=2)
    K, lr = int(result["period"]), float(result["lr"])
    ax = axes[0]
    ax.plot(result["il_record_steps"], result["il_kernel_change"], ".-", ms=2,
            label=f"iterative lin., K = {K}")
    ax.plot(result["gd_record_steps"], result["gd_kernel_change"], label="GD (K = 1)")
    for s in result["il_relinearisation_steps"][1:]:
        ax.axvline(s, color="0.85", lw=0.6, zorder=0)
    ax.set(xlabel="step", ylabel=r"$\|K_t - K_0\|_F / \|K_0\|_F$")
    style.time_axis(ax, result["gd_record_steps"])
    style.title(ax, "eNTK change: flat in blocks, jumps at updates")
    style.legend(ax)
    ax = axes[1]
    s = np.arange(len(result["il_train_loss"]))
    ax.plot(s, result["il_train_loss"], lw=0.8, label=f"iterative lin., K = {K}")
    ax.plot(s, result["gd_train_loss"], lw=0.8, label=f"GD (K = 1), lr = {lr:g}")
    relin = result["il_relinearisation_steps"][1:]
    ax.scatter(relin, result["il_loss_before_update"], s=10, marker="v", color="C2",
               label="linear model before update")
    ax.scatter(relin, result["il_loss_after_update"], s=10, marker="^", color="C3",
               label="network after update")
    ax.set(yscale="log", xlabel="step", ylabel="training MSE")
    style.time_axis(ax, s)
    style.title(ax, "loss jumps at updates")
    style.legend(ax)
    ax = axes[2]
    lrK = result["lrs"][:, None] * result["periods"][None, :]
    jumps = result["grid_first_jump"]
    for b, period in enumerate(result["periods"]):
        use = jumps[:, b] > 0
        if period > 1 and use.any():
            ax.plot(lrK[use, b], jumps[use, b], "o", label=f"K = {int(period)}")
    use = jumps > 0
    if use.sum() >= 2:
        slope = jump_slope(result)
        x = np.geomspace(lrK[use].min(), lrK[use].max(), 20)
        c = np.exp(np.mean(np.log(jumps[use]) - slope * np.log(lrK[use])))
        ax.plot(x, c * x ** slope, "k--", lw=0.8, label=f"fit: slope {slope:.2f}")
        ax.plot(x, c * x[0] ** slope * (x / x[0]) ** 2, "k:", lw=0.8,
                label="slope 2 (second order)")
    ax.set(xscale="log", yscale="log", xlabel="lr x K", ylabel="relative loss jump, 1st update")
    style.title(ax, "spike size vs lr x K")
    style.legend(ax, loc="upper left")
    ax = axes[3]
    ratio = result["grid_test_loss"] / result["grid_test_loss"][:, :1]
    im = ax.imshow(ratio, cmap="viridis", aspect="auto", origin="lower")
    labels = [_label(p) for p in result["periods"]]
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(result["lrs"])), [f"{r:g}" for r in result["lrs"]])
    for (a, b), v in np.ndenumerate(ratio):
        ax.text(b, a, f"{v:.2f}", ha="center", va="center", fontsize=style.FONT_PT,
                color="w" if v < ratio.min() + 0.6 * np.ptp(ratio) else "k")
    ax.set(xlabel="period K", ylabel="learning rate")
    style.title(ax, "test loss / GD's (same lr, steps)")
    fig.colorbar(im, ax=ax, shrink=0.9)
    return fig


def memory(config) -> int:
    """Peak bytes: linearised training on the train and test inputs, the probe kernels recorded
    along IL and gradient descent (kept twice: list and array) and the initial NTK."""
    n, nt = config["n_train"], config["n_test"]
    widths = fp.mlp_widths(config, depth=2, outputs=1)
    records = config["steps"] // config["kernel_every"] + 2
    probe = min(config["probe"], n)
    return (max(fp.network_bytes(widths, n + nt), fp.empirical_ntk_bytes(widths, n))
            + fp.gram_bytes(probe, count=3 * records) + fp.gram_bytes(n, count=2))


EXPERIMENT = Experiment(
    name=NAME, description=DESCRIPTION,
    configs={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    memory=memory,
    config_types={"period": ct.positive_int(), "probe": ct.positive_int(),
                  "kernel_every": ct.positive_int(),
                  "periods": ct.ListOf(ct.non_negative_int()),  # 0: never (K = inf)
                  "grid_steps": ct.positive_int()},
    numbers=numbers, measure=measure, plot=plot, controls=CONTROLS,
    regimes={
        "first loss jump": "the (lr K)^2 of a second-order remainder holds only while "
                           "lr K mu << 1; the grid reaches the Gauss-Newton saturation, so the "
                           "slope (smoke 1.77, quick 1.63) is held between linear and 2, not to 2",
        "lr x K": "at equal steps the ratio to GD at a large K does not grow with lr on this task "
                  "(paper, K = 1000: 1.10 at lr 0.25, 1.005 at lr 4; a larger lr trains longer "
                  "in t = lr T), so the workshop version's interaction is plotted, not scored",
    },
    compute=compute)
