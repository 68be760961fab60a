"""Empirical against infinite-width NTK over widths, for several activations.

One description of a network, :class:`ntkdyn.Network` (``widths``, ``activation``, ``W_std``,
``b_std``, ``parameterization``, with ``W_std`` and ``b_std`` meaning what they mean in
neural-tangents' ``stax.Dense``), gives both the finite network (its ``init`` and the empirical
NTK :func:`ntkdyn.empirical_ntk`) and its infinite-width NTK :func:`ntkdyn.infinite_ntk`. As the
hidden width ``m`` grows, the empirical kernel at initialisation converges to the infinite-width
one, and the relative Frobenius error falls like ``m^(-1/2)`` (Jacot et al. 2018; Arora et al.
2019): a sum of ``m`` independent per-unit terms. The script measures that error for a few
activations, with biases, over widths and seeds, and fits the log-log slope.

Run ``python examples/empirical_vs_infinite_ntk.py``; the figure goes to
``$NTKDYN_EXAMPLE_OUT`` (default ``./examples_out``). ``NTKDYN_EXAMPLE_SMOKE=1`` runs a
seconds-long version (what the test suite runs).
"""
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import ntkdyn
from ntkdyn.base.fitting import loglog_slope
from ntkdyn.base.samplers import sphere_inputs

SMOKE = os.environ.get("NTKDYN_EXAMPLE_SMOKE") == "1"
OUT = Path(os.environ.get("NTKDYN_EXAMPLE_OUT", "examples_out"))

ACTIVATIONS = ["relu", "erf", "tanh"]
if SMOKE:
    N, D, DEPTH, WIDTHS, SEEDS = 8, 4, 2, [64, 256, 1024], 2
else:
    N, D, DEPTH, WIDTHS, SEEDS = 32, 16, 3, [64, 128, 256, 512, 1024, 2048, 4096], 5


def relative_errors(activation, X):
    """``||K_m - K_inf||_F / ||K_inf||_F`` for every width (rows) and seed (columns)."""
    errors = np.empty((len(WIDTHS), SEEDS))
    K_inf = None
    for i, m in enumerate(WIDTHS):
        net = ntkdyn.Network([D] + [m] * (DEPTH - 1) + [1], activation=activation,
                             W_std=1.5, b_std=0.1, parameterization="ntk")
        if K_inf is None:  # the limit does not depend on the hidden widths
            K_inf = ntkdyn.infinite_ntk(net, X)                 # (n, n)
        for s in range(SEEDS):
            K = ntkdyn.empirical_ntk(net, net.init(seed=s), X)  # (n, n)
            errors[i, s] = np.linalg.norm(K - K_inf) / np.linalg.norm(K_inf)
    return errors


def main():
    X = sphere_inputs(N, D, seed=0)
    widths = np.array(WIDTHS, dtype=float)
    fig, ax = plt.subplots(figsize=(4.8, 3.4), constrained_layout=True)
    slopes = {}
    for activation in ACTIVATIONS:
        errors = relative_errors(activation, X)
        mean = errors.mean(axis=1)
        slopes[activation] = loglog_slope(widths, mean)
        print(f"{activation:>5}: error {mean[0]:.3g} at m = {WIDTHS[0]} -> {mean[-1]:.3g} at "
              f"m = {WIDTHS[-1]}, log-log slope {slopes[activation]:.3f} (theory -0.5)")
        ax.errorbar(widths, mean, yerr=errors.std(axis=1), marker="o",
                    label=f"{activation} (slope {slopes[activation]:.2f})")
    ax.loglog(widths, mean[0] * (widths / widths[0]) ** -0.5, "k--", label="width^(-1/2)")
    ax.set(xscale="log", yscale="log", xlabel="hidden width m",
           ylabel="||K_m - K_inf||_F / ||K_inf||_F")
    ax.legend(fontsize=8)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "empirical_vs_infinite_ntk.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
    return slopes


if __name__ == "__main__":
    main()
