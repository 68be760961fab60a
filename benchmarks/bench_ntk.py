"""Empirical-NTK performance, as ratios to BLAS matrix products measured in the same run.

1. Two-layer ReLU NTK (n = 2000, d = 784, m = 8192), float64 and float32, against plain
   products of the same flop count ``2nmd + 4n^2 m`` (``X W^T`` and two ``A B^T``).
2. Deeper networks against the same matrix products done as plain GEMMs.
3. Width scaling at n = 1000 up to m = 10^6: time, peak memory beyond the n x n result.
4. The element-wise stage of the two-layer kernel: NumPy against a fused Numba kernel.

Run: ``ntkdyn bench --only ntk`` (``--quick`` for smaller sizes) or
``python benchmarks/bench_ntk.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time, peak_memory  # noqa: E402

from ntkdyn.numerics.kernels import empirical_ntk  # noqa: E402
from ntkdyn.numerics.networks import MLP  # noqa: E402


def two_layer_vs_gemm(n, d, m, dtype, repeats):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(dtype)
    net = MLP([d, m, 1])
    params = net.init(0, dtype=dtype)
    t_ntk = best_time(lambda: empirical_ntk(net, params, X), repeats)
    A, B = rng.standard_normal((n, m)).astype(dtype), rng.standard_normal((n, m)).astype(dtype)
    t_ref = best_time(lambda: X @ params[0].T, repeats) + 2 * best_time(lambda: A @ B.T, repeats)
    flops = 2 * n * m * d + 4 * n * n * m
    return t_ntk, t_ref, flops


def deep_vs_gemm(n, d, m, depth, repeats):
    """Reference: the forward, back-propagation and Gram products of the layer-wise NTK as GEMMs."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, d))
    net = MLP([d] + [m] * (depth - 1) + [1])
    params = net.init(1)
    t_ntk = best_time(lambda: empirical_ntk(net, params, X), repeats)
    A, B = rng.standard_normal((n, m)), rng.standard_normal((n, m))
    W = rng.standard_normal((m, m))
    t_in = best_time(lambda: X @ params[0].T, repeats)
    t_square = best_time(lambda: A @ W, repeats)
    t_gram = best_time(lambda: A @ B.T, repeats)
    hidden = depth - 1
    # forward (depth - 2 square products) + signals (depth - 2) + two Grams per hidden layer
    t_ref = t_in + 2 * (depth - 2) * t_square + 2 * hidden * t_gram
    return t_ntk, t_ref


def width_scaling(n, d, widths):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((n, d))
    rows = []
    for m in widths:
        net = MLP([d, int(m), 1])
        params = net.init(3)
        t = best_time(lambda: empirical_ntk(net, params, X), 1)
        _, peak = peak_memory(lambda: empirical_ntk(net, params, X))
        rows.append((int(m), t, peak - n * n * 8))
        del params
    return rows


@numba.njit(parallel=True)
def _relu_and_gate(H, w, gate):
    """Fused ReLU and gated readout: ``gate = 1[H > 0] w``, ``H <- relu(H)`` in place."""
    n, b = H.shape
    for i in numba.prange(n):
        for j in range(b):
            if H[i, j] > 0:
                gate[i, j] = w[j]
            else:
                gate[i, j] = 0.0
                H[i, j] = 0.0


def elementwise_stage(n, b, repeats):
    rng = np.random.default_rng(4)
    H0, w = rng.standard_normal((n, b)), rng.standard_normal(b)
    gate = np.empty_like(H0)
    _relu_and_gate(H0.copy(), w, gate)  # compile
    t_numpy = best_time(lambda: (np.maximum(H0, 0.0), (H0 > 0) * w), repeats)
    t_numba = best_time(lambda: _relu_and_gate(H0.copy(), w, gate), repeats)
    return t_numpy, t_numba


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    q = args.quick
    n, d, m = (500, 784, 2048) if q else (2000, 784, 8192)
    repeats = 2 if q else 3
    print(f"1. two-layer ReLU NTK, n={n}, d={d}, m={m} (flops 2nmd + 4n^2 m)")
    for dtype in (np.float64, np.float32):
        t_ntk, t_ref, flops = two_layer_vs_gemm(n, d, m, dtype, repeats)
        print(f"   {np.dtype(dtype).name}: NTK {t_ntk:.3f} s, matrix products {t_ref:.3f} s, "
              f"ratio {t_ntk / t_ref:.2f} (target <= 1); "
              f"GEMM rate {flops / t_ref / 1e9:.1f} GFLOP/s, "
              f"NTK achieves {t_ref / t_ntk:.2f} of it")
    dm = 512 if q else 2048
    for depth in (3, 4):
        t_ntk, t_ref = deep_vs_gemm(n, d, dm, depth, repeats)
        print(f"2. depth {depth}, n={n}, m={dm}: NTK {t_ntk:.3f} s, matrix products {t_ref:.3f} s, "
              f"ratio {t_ntk / t_ref:.2f} (target <= 1.15)")
    widths = [2**12, 2**14, 2**16] if q else [2**14, 2**16, 2**18, 10**6]
    ns, ds = (500, 100) if q else (1000, 100)
    rows = width_scaling(ns, ds, widths)
    print(f"3. width scaling, n={ns}, d={ds}")
    for m, t, extra in rows:
        print(f"   m={m:>8d}: {t:7.3f} s, {t / m * 1e6:6.2f} us per unit, "
              f"peak memory beyond the n x n result {extra / 2**20:7.1f} MiB (target < 1024)")
    ms = np.array([r[0] for r in rows], float)
    ts = np.array([r[1] for r in rows])
    slope = np.polyfit(np.log(ms[1:]), np.log(ts[1:]), 1)[0]
    print(f"   log-log slope of time vs width: {slope:.3f} (linear: 1)")
    t_numpy, t_numba = elementwise_stage(n, 2048, repeats)
    print(f"4. element-wise stage (n={n}, 2048 units): NumPy {t_numpy * 1e3:.1f} ms, fused Numba "
          f"{t_numba * 1e3:.1f} ms, ratio Numba/NumPy {t_numba / t_numpy:.2f}")


if __name__ == "__main__":
    main()
