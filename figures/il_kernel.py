"""il-kernel: the empirical NTK under iterative linearisation, the loss jump at each feature
update, and the learning-rate x K interaction.

Goldwaser & Ge (arXiv:2211.12345): the empirical NTK of a finite network changes during training,
especially early (abstract), and rare feature updates match gradient descent only at small enough
learning rates (introduction of the workshop version). The linear model's kernel is
``J(theta_tilde) J(theta_tilde)^T``: exactly constant inside each block of ``K`` steps and jumping
at every feature update, while under gradient descent (``K = 1``) it drifts at every step, mostly
early. Inside a block the linear model moves away from the point where the linearisation holds, so
the training loss jumps when the features are updated (the network's own loss replaces the linear
model's). The jump is the Taylor remainder of the linearisation, second order in the block's
displacement ``||theta - theta_tilde|| ~ lr K ||grad L||`` while ``lr K mu << 1`` for most kernel
modes, so the first jump should grow like ``(lr K)^2`` (a heuristic, not a theorem: the displacement
saturates at the Gauss-Newton step once ``lr K mu >> 1``).

Agreement numbers: the largest kernel change inside a block (theory: exactly 0), the smallest kernel
jump at a feature update (theory: non-zero), the fraction of gradient descent's kernel drift reached
in the first 10% of the steps (reported without a target: the abstract's "especially early" sets no
threshold), the log-log slope of the first loss jump against ``lr K`` over the (lr, K) grid
(heuristic 2), and the test-loss ratios to gradient descent at the same learning rate and steps.
"""
from __future__ import annotations

import numpy as np

from ..base.fitting import loglog_slope
from ..numerics.kernels import relative_change
from ..numerics.linearised import iterative_linearised_training
from ..numerics.tasks import single_index_problem

NAME = "il-kernel"
DESCRIPTION = ("iterative linearisation: eNTK constant within blocks, jumps and loss spikes at "
               "updates; lr x K")

QUICK = {
    "d": 20, "n_train": 200, "n_test": 1000, "width": 256, "activation": "relu",
    "lr": 1.0, "steps": 1000, "period": 100, "probe": 50, "kernel_every": 10,
    "lrs": [0.5, 2.0], "periods": [1, 30, 300, 0], "grid_steps": 600, "seed": 0,
}
PAPER = {
    "d": 20, "n_train": 200, "n_test": 1000, "width": 256, "activation": "relu",
    "lr": 1.0, "steps": 3000, "period": 100, "probe": 100, "kernel_every": 10,
    "lrs": [0.25, 0.5, 1.0, 2.0, 4.0], "periods": [1, 10, 100, 1000, 0], "grid_steps": 3000,
    "seed": 0,
}
TARGETS = {
    "kernel_change_within_blocks": (0.0, 1e-12),
    "kernel_jump_min": (1e-6, 1e6),
    "loss_jump_slope_vs_lrK": (1.0, 3.0),
}


def _ntk_recorder(probe):
    return lambda model, theta, X, Y: model.ntk(probe)


def compute(config) -> dict:
    net, params, X, Y, X_test, Y_test = single_index_problem(
        int(config["d"]), int(config["n_train"]), int(config["n_test"]), int(config["width"]),
        config["activation"], seed=(int(config["seed"]), 0))
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
        out[f"{label}_network_loss"] = traj.observables["network_loss"]
        if label == "il":
            out["il_kernels"] = kernels
            out["il_relinearisation_steps"] = traj.relinearisation_steps
            out["il_loss_before_update"] = traj.loss_before_update
            out["il_loss_after_update"] = traj.loss_after_update
    # Learning rate x K at equal steps: test loss, and the loss jump at the first update.
    lrs = np.asarray(config["lrs"], dtype=float)
    periods = np.asarray(config["periods"], dtype=int)  # 0 = never (K = inf)
    n_steps = int(config["grid_steps"])
    grid_test = np.empty((len(lrs), len(periods)))
    first_jump = np.zeros((len(lrs), len(periods)))  # 0 where K = 1, inf or K > grid_steps
    for a, rate in enumerate(lrs):
        for b, period in enumerate(periods):
            traj = iterative_linearised_training(
                net, params, X, Y, rate, n_steps, float("inf") if period == 0 else int(period),
                test=(X_test, Y_test), every=n_steps)
            grid_test[a, b] = traj.observables["test_loss"][-1]
            if period > 1 and traj.feature_updates > 0:
                first_jump[a, b] = relative_jumps(traj.loss_before_update[:1],
                                                  traj.loss_after_update[:1])[0]
    if periods[0] != 1:
        raise ValueError(f"periods must start with 1 (gradient descent), got {list(periods)}")
    out.update({"lrs": lrs, "periods": periods, "grid_test_loss": grid_test,
                "grid_first_jump": first_jump, "lr": np.array(lr), "period": np.array(K)})
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
    return within, min(jumps)


def jump_slope(result) -> float:
    """Least-squares slope of ``log(first loss jump)`` on ``log(lr K)`` over the grid cells with
    a feature update and a positive jump."""
    lrK = result["lrs"][:, None] * result["periods"][None, :]
    jumps = result["grid_first_jump"]
    use = (result["periods"][None, :] > 1) & (jumps > 0)
    if use.sum() < 2:
        raise ValueError("the (lr, K) grid needs at least two cells with a positive loss jump")
    return loglog_slope(lrK[use], jumps[use])


def agreement(result) -> dict:
    within, jump = block_changes(result)
    steps, drift = result["gd_record_steps"], result["gd_kernel_change"]
    early = drift[np.searchsorted(steps, 0.1 * steps[-1])]
    lrs, periods = result["lrs"], result["periods"]
    ratio = result["grid_test_loss"] / result["grid_test_loss"][:, :1]
    out = {
        "kernel_change_within_blocks": within,
        "kernel_jump_min": jump,
        "kernel_drift_final_k1": float(drift[-1]),
        "kernel_drift_early_fraction_k1": float(early / drift[-1]),
        "kernel_change_final_il": float(result["il_kernel_change"][-1]),
        "loss_jump_mean": float(np.mean(relative_jumps(result["il_loss_before_update"],
                                                       result["il_loss_after_update"]))),
        "loss_jump_slope_vs_lrK": jump_slope(result),
    }
    for a, rate in enumerate(lrs):
        for b, period in enumerate(periods):
            if period != 1:
                label = "inf" if period == 0 else str(int(period))
                out[f"test_loss_ratio_lr{rate:g}_k{label}"] = float(ratio[a, b])
    return out


def plot(result):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    K, lr = int(result["period"]), float(result["lr"])
    ax = axes[0]
    ax.plot(result["il_record_steps"], result["il_kernel_change"], ".-", ms=3,
            label=f"iterative linearisation, K = {K}")
    ax.plot(result["gd_record_steps"], result["gd_kernel_change"], label="gradient descent (K = 1)")
    for s in result["il_relinearisation_steps"][1:]:
        ax.axvline(s, color="0.85", lw=0.6, zorder=0)
    ax.set(xlabel="step", ylabel=r"$\|K_t - K_0\|_F / \|K_0\|_F$",
           title="eNTK change: constant inside blocks, jumps at updates")
    ax.legend(fontsize=7)
    ax = axes[1]
    s = np.arange(len(result["il_train_loss"]))
    ax.plot(s, result["il_train_loss"], lw=0.8, label=f"training loss, K = {K}")
    ax.plot(s, result["gd_train_loss"], lw=0.8, label="gradient descent")
    relin = result["il_relinearisation_steps"][1:]
    ax.scatter(relin, result["il_loss_before_update"], s=10, marker="v", color="C2",
               label="linear model just before update")
    ax.scatter(relin, result["il_loss_after_update"], s=10, marker="^", color="C3",
               label="network just after update")
    ax.set(yscale="log", xlabel="step", ylabel="training MSE", title=f"loss jumps (lr = {lr:g})")
    ax.legend(fontsize=7)
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
        ax.plot(x, c * x ** slope, "k--", lw=0.8, label=f"fit: slope {slope:.2f} (heuristic 2)")
    ax.set(xscale="log", yscale="log", xlabel="lr x K",
           ylabel="relative loss jump at the first update", title="spike size vs lr x K")
    ax.legend(fontsize=7)
    ax = axes[3]
    ratio = result["grid_test_loss"] / result["grid_test_loss"][:, :1]
    im = ax.imshow(ratio, cmap="viridis", aspect="auto", origin="lower")
    labels = ["inf" if p == 0 else str(int(p)) for p in result["periods"]]
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(result["lrs"])), [f"{r:g}" for r in result["lrs"]])
    for (a, b), v in np.ndenumerate(ratio):
        ax.text(b, a, f"{v:.2f}", ha="center", va="center", color="w", fontsize=8)
    ax.set(xlabel="period K", ylabel="learning rate",
           title="test loss / GD's (same lr and steps)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig
