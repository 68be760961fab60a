"""il-sweep: how rarely must features be updated? Test loss of iterative linearised training vs K.

Goldwaser & Ge (arXiv:2211.12345) report that, in a variety of cases, iterative linearisation
matches standard training with far fewer feature updates, and that removing feature learning
altogether hurts generalisation (abstract). Iterative linearisation: train the network's
linearisation and move the linearisation point every ``K`` steps
(:func:`ntkdyn.numerics.linearised.iterative_linearised_training`). ``K = 1`` is gradient descent,
``K = inf`` the frozen empirical NTK. On a task that needs feature learning (single-index
``y = He_2(w . x) / sqrt(2)``, :func:`ntkdyn.numerics.synthetic.single_index_hermite`), a few
feature updates recover gradient descent's test loss while none at all is clearly worse.

Theory beside simulation: the claim tested is "K = 100 (1% of the steps are feature updates)
is within 5% of gradient descent's test loss, K = inf is at least 30% worse"; the agreement
numbers are the seed-averaged test-loss ratios to gradient descent, and the smallest number of
feature updates that comes within ``epsilon`` of it. Predictions use the linear model
``f_lin(x; theta | theta_tilde)`` in force after the last step (the network itself when the last
step was a feature update).
"""
from __future__ import annotations

import numpy as np

from ..numerics.linearised import iterative_linearised_training
from ..numerics.tasks import single_index_problem

NAME = "il-sweep"
DESCRIPTION = ("iterative linearisation: test loss vs feature-update period K "
               "(1 = GD .. inf = frozen NTK)")

QUICK = {
    "d": 20, "n_train": 200, "n_test": 1000, "width": 256, "activation": "relu",
    "lr": 1.0, "steps": 3000, "periods": [1, 100], "seeds": 2, "seed": 0,
    "epsilon": 0.05, "record_every": 100,
}
PAPER = {
    "d": 20, "n_train": 200, "n_test": 1000, "width": 256, "activation": "relu",
    "lr": 1.0, "steps": 3000, "periods": [1, 3, 10, 30, 100, 300, 1000, 3000, 10000],
    "seeds": 5, "seed": 0, "epsilon": 0.05, "record_every": 50,
}
TARGETS = {
    "test_loss_ratio_k100": (0.0, 1.05),
    "test_loss_ratio_kinf": (1.30, 1e6),
}


def _periods(config):
    periods = sorted({int(K) for K in config["periods"]})
    if not periods or periods[0] != 1:
        raise ValueError(f"periods must include 1 (gradient descent), got {config['periods']}")
    return periods


def runs(config) -> list[dict]:
    """One independent training per (seed, K), ``K`` in ``periods`` plus infinity (period 0)."""
    periods = _periods(config) + [0]
    return [dict(config, replicate=s, period=K)
            for s in range(int(config["seeds"])) for K in periods]


def run(point) -> dict:
    """Iterative linearised training of one seed at one period ``K`` (0 = never)."""
    net, params, X, Y, X_test, Y_test = single_index_problem(
        int(point["d"]), int(point["n_train"]), int(point["n_test"]), int(point["width"]),
        point["activation"], seed=(int(point["seed"]), point["replicate"]))
    K = float("inf") if point["period"] == 0 else int(point["period"])
    traj = iterative_linearised_training(net, params, X, Y, float(point["lr"]), int(point["steps"]),
                                         K, test=(X_test, Y_test),
                                         every=int(point["record_every"]))
    obs = traj.observables
    return {"test_loss_curve": obs["test_loss"], "record_steps": traj.record_steps,
            "test_loss": obs["test_loss"][-1], "test_accuracy": obs["test_accuracy"][-1],
            "train_loss": obs["loss"][-1], "feature_updates": np.array(traj.feature_updates)}


def combine(config, results) -> dict:
    """Stack the runs (in the order of :func:`runs`) into (seed, period) arrays."""
    periods = _periods(config) + [0]
    shape = (int(config["seeds"]), len(periods))

    def stack(key):
        return np.array([np.asarray(r[key], dtype=float) for r in results]).reshape(
            shape + np.shape(results[0][key]))

    return {"periods": np.array(periods), "feature_updates": stack("feature_updates")[0],
            "test_loss": stack("test_loss"), "test_accuracy": stack("test_accuracy"),
            "train_loss": stack("train_loss"), "record_steps": results[0]["record_steps"],
            "test_loss_curves": stack("test_loss_curve"),
            "steps": np.array(int(config["steps"])), "epsilon": np.array(float(config["epsilon"]))}


def compute(config) -> dict:
    """All runs in this process (the runner distributes :func:`runs` over an executor)."""
    return combine(config, [run(point) for point in runs(config)])


def ratios(result) -> np.ndarray:
    """Test loss over gradient descent's (period 1, column 0), per seed and period."""
    return result["test_loss"] / result["test_loss"][:, :1]


def agreement(result) -> dict:
    r = ratios(result)
    periods = result["periods"]
    mean = r.mean(axis=0)
    out = {}
    for j, K in enumerate(periods):
        label = "inf" if K == 0 else str(int(K))
        if K != 1:
            out[f"test_loss_ratio_k{label}"] = float(mean[j])
            out[f"test_loss_ratio_k{label}_std"] = float(r[:, j].std())
    # The largest finite K whose mean ratio (and every smaller K's) stays within 1 + epsilon.
    eps = float(result["epsilon"])
    within = 1
    for j, K in enumerate(periods):
        if K == 0 or mean[j] > 1 + eps:
            break
        within = int(K)
    out["feature_updates_within_eps"] = float(int(result["steps"]) // within)
    out["feature_update_fraction_within_eps"] = 1.0 / within
    out["test_loss_gd"] = float(result["test_loss"][:, 0].mean())
    out["test_accuracy_gd"] = float(result["test_accuracy"][:, 0].mean())
    out["test_accuracy_kinf"] = float(result["test_accuracy"][:, -1].mean())
    return out


def plot(result):
    import matplotlib.pyplot as plt

    periods, steps = result["periods"], int(result["steps"])
    r = ratios(result)
    finite = periods > 0
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    updates = steps // periods[finite]
    tl = result["test_loss"]
    ax.errorbar(np.maximum(updates, 0.5), tl[:, finite].mean(0), yerr=tl[:, finite].std(0),
                marker="o", capsize=3, label="iterative linearisation (mean ± sd over seeds)")
    for value, style, label in ((tl[:, 0].mean(), "k--", "gradient descent (K = 1)"),
                                (tl[:, -1].mean(), "r:", "frozen NTK (K = inf)")):
        ax.axhline(value, color=style[0], ls=style[1:], label=label)
    ax.axhline(tl[:, 0].mean() * (1 + float(result["epsilon"])), color="0.6", lw=0.8,
               label=f"GD + {100 * float(result['epsilon']):.0f}%")
    ax.set(xscale="log", xlabel="number of feature updates T / K", ylabel="final test MSE",
           title=f"test loss vs feature updates (T = {steps})")
    ax.legend(fontsize=7)
    ax = axes[1]
    labels = [("inf" if K == 0 else str(int(K))) for K in periods]
    positions = np.arange(len(periods))
    ax.bar(positions, r.mean(0), yerr=r.std(0), capsize=3, color="C0", alpha=0.7)
    for s in range(r.shape[0]):
        ax.scatter(positions, r[s], s=10, color="k", zorder=3)
    ax.axhline(1.05, color="0.5", ls="--", lw=0.8, label="target: K = 100 within 5%")
    ax.axhline(1.30, color="r", ls=":", lw=0.8, label="target: K = inf at least 30% worse")
    ax.set_xticks(positions, labels)
    ax.set(xlabel="period K", ylabel="test loss / GD test loss", title="ratio to gradient descent")
    ax.legend(fontsize=7)
    ax = axes[2]
    curves = result["test_loss_curves"].mean(axis=0)
    for j, label in enumerate(labels):
        ax.plot(result["record_steps"], curves[j], label=f"K = {label}")
    ax.set(yscale="log", xlabel="step", ylabel="test MSE (mean over seeds)",
           title="test loss during training")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
