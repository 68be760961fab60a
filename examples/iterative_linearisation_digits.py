"""Iterative linearisation on handwritten digits: how often must the features move?

Goldwaser & Ge (2022, arXiv:2211.12345) interpolate between gradient descent and the frozen NTK:
train the network's linearisation ``f(theta~) + J(theta~)(theta - theta~)`` and move the
linearisation point ``theta~`` to the current weights every ``K`` steps. ``K = 1`` is gradient
descent (features learned at every step), ``K = inf`` is kernel regression with the initial
empirical NTK (features frozen). Here a two-layer ReLU network is trained on scikit-learn's 8x8
digits (:func:`ntkdyn.numerics.datafiles.load_dataset`: balanced classes, inputs centred and on
the sphere, centred one-hot targets) by
:func:`ntkdyn.numerics.linearised.iterative_linearised_training` for several ``K``, and the test
loss and accuracy of the linear model are compared along training.

Run ``python examples/iterative_linearisation_digits.py`` (needs scikit-learn); the figure goes
to ``$NTKDYN_EXAMPLE_OUT`` (default ``./examples_out``). ``NTKDYN_EXAMPLE_SMOKE=1`` runs a
seconds-long version (what the test suite runs).
"""
import os
from pathlib import Path

import matplotlib.pyplot as plt

import ntkdyn
from ntkdyn.numerics.datafiles import load_dataset
from ntkdyn.numerics.linearised import iterative_linearised_training

SMOKE = os.environ.get("NTKDYN_EXAMPLE_SMOKE") == "1"
OUT = Path(os.environ.get("NTKDYN_EXAMPLE_OUT", "examples_out"))

if SMOKE:
    N_TRAIN, N_TEST, WIDTH, STEPS, PERIODS = 100, 100, 64, 60, [1, 20, float("inf")]
else:
    N_TRAIN, N_TEST, WIDTH, STEPS, PERIODS = 300, 300, 256, 1000, [1, 10, 100, float("inf")]
LR = 1.0


def main():
    data = load_dataset("digits", n_train=N_TRAIN, n_test=N_TEST, seed=0)
    d, k = data.X.shape[1], data.Y.shape[1]
    net = ntkdyn.MLP([d, WIDTH, k], activation="relu")
    params = net.init(seed=1)
    runs = {}
    for K in PERIODS:
        traj = iterative_linearised_training(net, params, data.X, data.Y, LR, STEPS,
                                             relinearise_every=K, every=max(1, STEPS // 40),
                                             test=(data.X_test, data.Y_test))
        runs[K] = traj
        obs = traj.observables
        print(f"K = {K:>5}: {traj.feature_updates:4d} feature updates, test loss "
              f"{obs['test_loss'][-1]:.4f}, test accuracy {obs['test_accuracy'][-1]:.3f}")

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), constrained_layout=True)
    for K, traj in runs.items():
        label = "K = inf (frozen NTK)" if K == float("inf") else f"K = {K:g}"
        if K == 1:
            label += " (gradient descent)"
        t = traj.record_times
        axes[0].plot(t, traj.observables["test_loss"], label=label)
        axes[1].plot(t, traj.observables["test_accuracy"], label=label)
    axes[0].set(xlabel="time t = lr * step", ylabel="test loss", yscale="log")
    axes[1].set(xlabel="time t = lr * step", ylabel="test accuracy")
    axes[1].legend(fontsize=8)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "iterative_linearisation_digits.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
    return runs


if __name__ == "__main__":
    main()
