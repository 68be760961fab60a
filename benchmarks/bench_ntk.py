"""Empirical-NTK performance, as ratios to BLAS matrix products measured in the same run.

1. Two-layer ReLU NTK (n = 2000, d = 784, m = 8192), float64 and float32, against plain
   products of the same flop count ``2nmd + 4n^2 m`` (``X W^T`` and two ``A B^T``).
2. Deeper networks against the same matrix products done as plain GEMMs.
3. Width scaling at n = 1000 up to m = 10^6: time, peak memory beyond the n x n result.
4. The element-wise stage of the two-layer kernel: NumPy against a fused Numba kernel.
5. Biases: the empirical NTK of the same network (same weights) with biases against without,
   two-layer (blocked path) and depth 3 (layer-wise path), summed and per layer.

Run: ``ntkdyn bench --only ntk`` (``--quick`` for smaller sizes) or
``python benchmarks/bench_ntk.py``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time, peak_memory  # noqa: E402

from ntkdyn.numerics.kernels import empirical_ntk  # noqa: E402
from ntkdyn.numerics.networks import MLP, Network  # noqa: E402


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
        params = None  # free before the next width
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


def bias_overhead(n, d, m, depth, pairs, per_layer=False):
    """The NTK of one network with biases (``b_std = 0.1``) against without, same weights.

    Each of ``pairs`` rounds times both kernels back to back, in alternating order, so both see
    the same machine load; the estimate is the median over rounds of the ratio (with biases /
    without) of wall and of process-CPU time, steadier on a shared machine than a ratio of best
    times. Returns ``(best with, best without, median wall ratio, median CPU ratio)``.
    """
    rng = np.random.default_rng(5)
    X = rng.standard_normal((n, d))
    widths = [d] + [m] * (depth - 1) + [1]
    plain, biased = Network(widths), Network(widths, b_std=0.1)
    params = biased.init(5)
    runs = {True: lambda: empirical_ntk(biased, params, X, per_layer=per_layer),
            False: lambda: empirical_ntk(plain, biased.weights(params), X, per_layer=per_layer)}
    best, wall, cpu = {True: np.inf, False: np.inf}, [], []
    for r in range(pairs):
        t = {}
        for with_bias in ((True, False) if r % 2 == 0 else (False, True)):
            start, start_cpu = time.perf_counter(), time.process_time()
            runs[with_bias]()
            t[with_bias] = (time.perf_counter() - start, time.process_time() - start_cpu)
            best[with_bias] = min(best[with_bias], t[with_bias][0])
        wall.append(t[True][0] / t[False][0])
        cpu.append(t[True][1] / max(t[False][1], 1e-9))
    return best[True], best[False], float(np.median(wall)), float(np.median(cpu))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    q = args.quick
    n, d, m = (500, 784, 2048) if q else (2000, 784, 8192)
    two_layer_m = m
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
    print("5. empirical NTK with biases / without (same network and weights; median of paired "
          "ratios)")
    pairs = 6 if q else 8
    for depth, width in ((2, two_layer_m), (3, dm)):
        for per_layer in (False, True):
            t_bias, t_plain, wall, cpu = bias_overhead(n, d, width, depth, pairs, per_layer)
            what = "per layer" if per_layer else "summed"
            target = "" if per_layer else " (target <= 1.1)"
            print(f"   depth {depth}, n={n}, m={width}, {what}: best with biases {t_bias:.3f} s, "
                  f"without {t_plain:.3f} s; ratio {wall:.3f} wall, {cpu:.3f} CPU time{target}")


if __name__ == "__main__":
    main()
