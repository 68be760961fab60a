"""Cost of recording per-head NTKs during training, as a ratio to one gradient step, in one run.

Recording (:class:`ntkdyn.numerics.richness.KernelRecorder`) computes the ``k`` per-head kernels
``K_ii = c_2^2 [Phi Phi^T + c_1^2 (X X^T) * (D_i D_i^T)]`` of a two-layer network through the
layer-wise factorisation (:func:`ntkdyn.numerics.kernels.empirical_ntk` with ``heads="each"``): one
symmetric rank-m update (syrk, ``n^2 m`` flops) for the shared feature term and one per head for the
gated terms, so about ``(k + 1) n^2 m`` flops. One full-batch gradient step of the centred model
``f_gamma`` is one forward and one backward pass (about ``4 n d m`` flops) plus the update. Target:
k = 10 heads, n = 1000, m = 2048: recording costs at most 5 steps. The ratio depends on the input
dimension ``d`` (the step's cost grows with ``d``, the kernel's does not); the target case uses
MNIST's ``d = 784`` and a low-dimensional ``d = 30`` is printed beside it. Also reported: the
alignment metrics computed from the kernels (``kernel_metrics``: eigendecomposition and ``k^2``
alignments), and a BLAS reference of equal flops (``k + 1`` syrk products of the same shapes).

Run: ``ntkdyn bench --only kernel_recording`` (``--quick`` for smaller sizes) or
``python benchmarks/bench_kernel_recording.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from ntkdyn.numerics.kernels import empirical_ntk  # noqa: E402
from ntkdyn.numerics.networks import MLP  # noqa: E402
from ntkdyn.numerics.richness import CenteredModel, kernel_metrics  # noqa: E402


def measure(n, d, m, k, repeats):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((n, k))
    net = MLP([d, m, k], activation="relu")
    params0 = net.init(0)
    model = CenteredModel(net, params0, gamma=10.0)
    params = [W + 0.01 * rng.standard_normal(W.shape) for W in params0]

    def step():
        _, grads = model.loss_and_gradients(params, X, Y)
        return model.update(params, grads, 0.1)

    step()  # fills the f(X; theta_0) cache, as in training
    t_step = best_time(step, repeats)
    t_kernel = best_time(lambda: empirical_ntk(net, params, X, heads="each"), repeats)
    K = empirical_ntk(net, params, X, heads="each")
    t_metrics = best_time(lambda: kernel_metrics(K, Y), repeats)
    A = rng.standard_normal((n, m))
    t_blas = best_time(lambda: [A @ A.T for _ in range(k + 1)], repeats)
    return t_step, t_kernel, t_metrics, t_blas


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args(argv)
    n, m, k = (300, 512, 10) if args.quick else (1000, 2048, 10)
    repeats = 5
    print(f"two-layer ReLU, k = {k} heads, n = {n}, m = {m}, float64 (best of {repeats})")
    print(f"{'d':>5s} {'step (ms)':>10s} {'kernels (ms)':>13s} {'/ step':>7s} "
          f"{'+ metrics':>10s} {'BLAS ref (ms)':>14s} {'kernels / BLAS':>15s}")
    ratios = {}
    for d in (784, 30):
        t_step, t_kernel, t_metrics, t_blas = measure(n, d, m, k, repeats)
        ratios[d] = t_kernel / t_step
        print(f"{d:5d} {t_step * 1e3:10.1f} {t_kernel * 1e3:13.1f} {t_kernel / t_step:7.2f} "
              f"{(t_kernel + t_metrics) / t_step:10.2f} {t_blas * 1e3:14.1f} "
              f"{t_kernel / t_blas:15.2f}")
    verdict = "meets" if ratios[784] <= 5 else "misses"
    print(f"recording per-head kernels (d = 784) costs {ratios[784]:.2f} gradient steps: "
          f"{verdict} the target of at most 5")
    return 0


if __name__ == "__main__":
    sys.exit(main())
