"""The empirical NTK and its alignment with the targets, on your own data, during training.

A two-layer ReLU network is trained by full-batch gradient descent on a small task made here
with numpy (replace ``make_data`` by your own ``X (n, d)`` and ``Y (n, k)``). At log-spaced steps
the training loop records the empirical NTK ``K_t`` on the training inputs
(:func:`ntkdyn.numerics.kernels.empirical_ntk`); from those kernels come the kernel-target
alignment ``A(K_t, Y) = <K_t, Y Y^T>_F / (||K_t||_F ||Y Y^T||_F)`` (Cristianini et al. 2002),
its centred version (Cortes et al. 2012) and the relative kernel change
``||K_t - K_0||_F / ||K_0||_F`` (:mod:`ntkdyn.base.alignment`). The target here (the sign of
``x_1 x_2``) is not linear in ``x``, so the kernel has to move toward ``Y Y^T`` for the network to
fit it: the alignment rises during training (Shan & Bordelon 2021; Baratin et al. 2021).

Run ``python examples/ntk_alignment_during_training.py``; the figure goes to
``$NTKDYN_EXAMPLE_OUT`` (default ``./examples_out``). ``NTKDYN_EXAMPLE_SMOKE=1`` runs a
seconds-long version (what the test suite runs).
"""
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import ntkdyn
from ntkdyn.base.alignment import alignment, relative_change
from ntkdyn.numerics.kernels import empirical_ntk
from ntkdyn.numerics.training import gradient_descent, record_schedule

SMOKE = os.environ.get("NTKDYN_EXAMPLE_SMOKE") == "1"
OUT = Path(os.environ.get("NTKDYN_EXAMPLE_OUT", "examples_out"))

N, D, WIDTH, STEPS, LR = (40, 4, 64, 150, 2.0) if SMOKE else (200, 4, 256, 3000, 2.0)


def make_data(n, d, seed=0):
    """Your data here: ``X (n, d)`` on the sphere of radius ``sqrt(d)``, ``y = sign(x_1 x_2)``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X *= np.sqrt(d) / np.linalg.norm(X, axis=1, keepdims=True)
    Y = np.sign(X[:, :1] * X[:, 1:2])
    return X, Y


def main():
    X, Y = make_data(N, D)
    net = ntkdyn.MLP([D, WIDTH, 1], activation="relu")
    params = net.init(seed=0)
    # Observables are called as fn(net, params, X, Y) at the recorded steps.
    record = {"ntk": lambda net, params, X, Y: empirical_ntk(net, params, X)}
    traj = gradient_descent(net, params, X, Y, LR, STEPS, record=record,
                            record_steps=record_schedule(STEPS, num=25, log=True))
    kernels = traj.observables["ntk"]                       # (records, n, n)
    times = traj.record_times
    uncentred = np.array([alignment(K, Y) for K in kernels])
    centred = np.array([alignment(K, Y, centered=True) for K in kernels])
    change = np.array([relative_change(K, kernels[0]) for K in kernels])
    print(f"loss {traj.losses[0]:.4g} -> {traj.losses[-1]:.4g} in {STEPS} steps "
          f"(t = {times[-1]:g})")
    print(f"alignment {uncentred[0]:.3f} -> {uncentred[-1]:.3f}, "
          f"centred {centred[0]:.3f} -> {centred[-1]:.3f}, kernel change {change[-1]:.3f}")

    fig, axes = plt.subplots(1, 3, figsize=(10, 3), constrained_layout=True)
    axes[0].loglog(traj.times[1:], traj.losses[1:])
    axes[0].set(xlabel="time t = lr * step", ylabel="training loss")
    axes[1].semilogx(times[1:], uncentred[1:], "o-", label="uncentred")
    axes[1].semilogx(times[1:], centred[1:], "s-", label="centred")
    axes[1].set(xlabel="time t", ylabel="alignment A(K_t, Y)")
    axes[1].legend()
    axes[2].semilogx(times[1:], change[1:], "o-")
    axes[2].set(xlabel="time t", ylabel="||K_t - K_0|| / ||K_0||")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "ntk_alignment_during_training.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
    return {"alignment": uncentred, "centred": centred, "change": change}


if __name__ == "__main__":
    main()
