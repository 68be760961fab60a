"""Infinite-width NTK performance, as ratios to the n x n GEMM ``X X^T`` measured in the same run.

1. ReLU (closed-form duals), depth 5 (4 non-linear layers), ``n = 10^4`` inputs of dimension
   784 on the sphere of radius ``sqrt(784)``: ``infinite_ntk`` against the one GEMM ``X X^T``
   it cannot avoid and against one element-wise pass over the ``n x n`` kernel (target: the
   GEMM plus at most 1.5 GEMMs of element-wise work; reported as measured).
2. Numerical duals (tanh, softplus; GELU through ``method="quadrature"`` beside its closed
   form) against the ReLU closed form (target <= 10x): one ``DualTable`` per layer, then a
   piecewise polynomial per entry.
3. Inputs of unequal norms (every pair of inputs its own variances: per-entry quadrature):
   seconds per kernel entry and layer, the cost to expect without normalised inputs.

Run: ``ntkdyn bench --only infinite_width`` (``--quick`` for ``n = 2000``) or
``python benchmarks/bench_infinite_width.py``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from ntkdyn.numerics.networks import Network  # noqa: E402
from ntkdyn.theory.dual_kernels import DualTable  # noqa: E402
from ntkdyn.theory.infinite_width import _thread_count, infinite_nngp, infinite_ntk  # noqa: E402


def sphere(n, d, seed=0):
    X = np.random.default_rng(seed).standard_normal((n, d))
    return X * np.sqrt(d) / np.linalg.norm(X, axis=1, keepdims=True)


def timed(fn, repeats):
    """Best wall-clock time of ``repeats`` calls and the process CPU time of that call (all
    threads; on a shared machine the CPU ratio is the steadier measure of work)."""
    best = (np.inf, np.inf)
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
    return best


def elementwise_pass(n, repeats):
    """Times of one in-place element-wise product over an ``n x n`` float64 matrix and of the
    same product into a fresh array (its first touch: the page faults of a new matrix)."""
    K = np.ones((n, n))
    return (best_time(lambda: np.multiply(K, 1.0, out=K), repeats),
            best_time(lambda: np.multiply(K, 1.0), repeats))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    q = args.quick
    n, d, depth = (2000 if q else 10_000), 784, 5
    repeats = 2 if q else 1
    X = sphere(n, d)
    t_gemm, c_gemm = timed(lambda: X @ X.T, repeats + 1)
    t_pass, t_fresh = elementwise_pass(n, repeats + 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"1. n={n}, d={d}, depth {depth} (4 non-linear layers), W_std=1.4, b_std=0.1; "
          f"{os.cpu_count()} CPUs, load average {load:.1f}")
    print(f"   GEMM X X^T {t_gemm:.3f} s (CPU {c_gemm:.3f} s); one element-wise pass over n x n "
          f"{t_pass * 1e3:.1f} ms in place, {t_fresh:.3f} s into a new array (= "
          f"{t_fresh / t_gemm:.2f} GEMM: the NTK needs one n x n array besides the GEMM's)")

    def report(label, fn):
        t, c = timed(fn, repeats)
        print(f"   {label:30s} {t:8.3f} s = GEMM + {(t - t_gemm) / t_gemm:5.2f} GEMM "
              f"({(t - t_gemm) / t_pass:5.0f} passes); CPU {c:7.3f} s = GEMM + "
              f"{(c - c_gemm) / c_gemm:5.2f} GEMM")
        return t, c

    times = {}
    for act, method in (("relu", "auto"), ("gelu", "auto"), ("gelu", "quadrature"),
                        ("tanh", "auto"), ("softplus", "auto")):
        net = Network.mlp(d, 512, depth, activation=act, W_std=1.4, b_std=0.1)
        closed = method == "auto" and act in ("relu", "gelu")
        times[act, method] = report(f"NTK {act} ({'closed form' if closed else 'tables'})",
                                    lambda: infinite_ntk(net, X, method=method))
        if act == "relu":
            report("NNGP relu (closed form)", lambda: infinite_nngp(net, X))
            report("NTK relu, 1 thread", lambda: infinite_ntk(net, X, threads=1))
    base = times["relu", "auto"]
    print(f"   default: {_thread_count(None, n * n)} threads for the element-wise passes")
    print("   relative to the ReLU NTK (wall, CPU): " + "; ".join(
        f"{act}{'' if m == 'auto' else ' (quadrature)'} {t / base[0]:.2f}, {c / base[1]:.2f}"
        for (act, m), (t, c) in times.items() if act != "relu"))
    print("   targets: ReLU <= GEMM + 1.5 GEMM of element-wise work; tables <= 10x ReLU")
    print("2. DualTable build (tanh, variance 1.96: the first hidden layer's)")
    for act in ("tanh", "softplus", "gelu"):
        t = best_time(lambda: DualTable(act, 1.96, 1.96), repeats)
        table = DualTable(act, 1.96, 1.96)
        print(f"   {act:8s} {t:.3f} s: {table.points} quadrature points, {table.intervals} "
              f"intervals, estimated error {table.error:.1e}")
    m = 24 if q else 64
    Xu = sphere(m, d, seed=1) * np.linspace(0.5, 1.5, m)[:, None]
    net = Network.mlp(d, 512, depth, activation="tanh", W_std=1.4, b_std=0.1)
    t = best_time(lambda: infinite_ntk(net, Xu), 1)
    entries = m * (m + 1) // 2 * (depth - 1)
    print(f"3. unequal norms (tanh, n={m}: per-entry quadrature): {t:.2f} s, "
          f"{t / entries * 1e3:.2f} ms per entry and layer")


if __name__ == "__main__":
    main()
