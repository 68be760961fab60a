"""Hessian performance, as ratios to reference operations measured in the same run.

1. The two-layer closed-form spectral norm at m = 10^7, d = 10 (``--quick``: 10^6) against one
   streaming pass over the weights (``W_1 @ x``, BLAS gemv): the norm-only kernel (exact
   pruning by the per-unit eigenvalue bound), the full-statistics kernel (norm, Frobenius
   norm, gradient norm, output in one pass), 1 thread and all threads, and the blocked NumPy
   fallback. Target: at most 2x the streaming pass.
2. One Hessian-vector product of the MSE loss against one gradient evaluation
   (``loss_and_gradients``), two- and three-layer networks: the stand-alone ``hvp`` (which
   redoes the forward and backward pass) and a product of the cached ``LinearOperator``
   (what Lanczos calls). Target: at most 3x.
3. Output-Hessian products at m = 10^5, d = 100 (reference: a PyTorch autodiff power
   iteration spends about 0.15 s per product on a 2-core machine; a fixed figure, not
   measured in this run) and the Lanczos norm against the closed form there.

Every ratio is measured with BLAS and Numba limited to one thread (``threadpoolctl``, where
installed): on a shared 2-core machine multi-threaded OpenBLAS is erratic for the small
products of one input, which would make the ratios meaningless. Section 1 also times the
Numba kernels and the gemv with all threads.

Run: ``ntkdyn bench --only hessian`` (``--quick`` for smaller sizes) or
``python benchmarks/bench_hessian.py``.
"""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from ntkdyn.numerics.hessian_norm import output_hessian_norm  # noqa: E402
from ntkdyn.numerics.hessian_operator import (hvp, loss_hessian_operator,  # noqa: E402
                                              output_hessian_operator)
from ntkdyn.numerics.hessian_two_layer import two_layer_hessian  # noqa: E402
from ntkdyn.numerics.hessian_two_layer import two_layer_hessian_norm
from ntkdyn.numerics.memory import estimate_bytes, require_memory  # noqa: E402
from ntkdyn.numerics.networks import MLP  # noqa: E402

TORCH_REFERENCE_S = 0.15  # PyTorch double-backward HVP, m = 1e5, d = 100, 2 cores (fixed)


@contextmanager
def blas_threads(n):
    """Limit BLAS to ``n`` threads where ``threadpoolctl`` is installed (else a no-op)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield False
        return
    with threadpool_limits(n):
        yield True


def closed_form(m, d, repeats):
    rng = np.random.default_rng(0)
    require_memory(estimate_bytes([d, m, 1]) * 1.2, f"the benchmark at m = {m}")
    net = MLP([d, m, 1], activation="tanh")
    params = [rng.standard_normal((m, d)), rng.standard_normal((1, m))]
    x = rng.standard_normal(d)
    x *= np.sqrt(d) / np.linalg.norm(x)
    W1 = params[0]
    two_layer_hessian_norm(net, params, x)  # compile
    two_layer_hessian(net, params, x)
    with blas_threads(1):
        t_ref = best_time(lambda: W1 @ x, repeats)
    nthreads = numba.get_num_threads()
    rows = [("W_1 @ x (BLAS gemv, 1 thread, reference)", t_ref),
            ("W_1 @ x (BLAS gemv, all threads)", best_time(lambda: W1 @ x, repeats))]
    for threads in sorted({1, nthreads}):
        rows.append((f"norm only, Numba, {threads} thread(s)",
                     best_time(lambda: two_layer_hessian_norm(net, params, x, threads=threads),
                               repeats)))
        rows.append((f"full statistics, Numba, {threads} thread(s)",
                     best_time(lambda: two_layer_hessian(net, params, x, threads=threads),
                               repeats)))
    rows.append(("full statistics, blocked NumPy", best_time(
        lambda: two_layer_hessian(net, params, x, backend="numpy"), 1)))
    norm, visited = two_layer_hessian_norm(net, params, x, return_visited=True)
    full = two_layer_hessian(net, params, x)
    assert norm == full.norm
    print(f"  m = {m:.0e}, d = {d}: ||H|| = {norm:.6g} (unit {full.unit}); the norm-only kernel "
          f"evaluated {visited:.2%} of the units")
    for name, t in rows:
        print(f"  {name:<44s} {t * 1e3:9.2f} ms   x{t / t_ref:6.2f} of W_1 @ x")


def hvp_vs_gradient(widths, n, repeats, label):
    rng = np.random.default_rng(1)
    net = MLP(widths, activation="tanh")
    params = net.init(rng)
    X = rng.standard_normal((n, widths[0]))
    Y = rng.standard_normal((n, widths[-1]))
    V = [rng.standard_normal(W.shape) for W in params]
    t_grad = best_time(lambda: net.loss_and_gradients(params, X, Y), repeats)
    t_hvp = best_time(lambda: hvp(net, params, X, V, Y=Y), repeats)
    op = loss_hessian_operator(net, params, X, Y)
    v = net.flatten(V)
    t_op = best_time(lambda: op.matvec(v), repeats)
    print(f"  {label:<34s} gradient {t_grad * 1e3:8.2f} ms | hvp {t_hvp * 1e3:8.2f} ms "
          f"(x{t_hvp / t_grad:4.2f}) | cached operator {t_op * 1e3:8.2f} ms "
          f"(x{t_op / t_grad:4.2f})")


def output_products(m, d, repeats):
    rng = np.random.default_rng(2)
    net = MLP([d, m, 1], activation="tanh")
    params = net.init(rng)
    x = rng.standard_normal(d)
    x *= np.sqrt(d) / np.linalg.norm(x)
    op = output_hessian_operator(net, params, x)
    v = rng.standard_normal(net.num_params)
    t_op = best_time(lambda: op.matvec(v), repeats)
    t_hvp = best_time(lambda: hvp(net, params, x[None], v), repeats)
    start = time.perf_counter()
    lanczos = output_hessian_norm(net, params, x, method="lanczos", tol=1e-10)
    t_lanczos = time.perf_counter() - start
    t_closed = best_time(lambda: output_hessian_norm(net, params, x), repeats)
    closed = output_hessian_norm(net, params, x)
    print(f"  output HVP, m = {m:.0e}, d = {d}: cached {t_op * 1e3:.2f} ms, stand-alone "
          f"{t_hvp * 1e3:.2f} ms per product; PyTorch reference {TORCH_REFERENCE_S * 1e3:.0f} ms "
          f"(x{TORCH_REFERENCE_S / t_op:.0f} and x{TORCH_REFERENCE_S / t_hvp:.0f} faster)")
    print(f"  Lanczos norm {lanczos:.12g} in {t_lanczos:.2f} s; closed form {closed:.12g} in "
          f"{t_closed * 1e3:.2f} ms; relative difference {abs(lanczos - closed) / closed:.1e}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 7
    print(f"numba threads available: {numba.get_num_threads()}")
    print("1. two-layer closed-form norm vs one streaming pass over W_1")
    closed_form(10 ** 6 if args.quick else 10 ** 7, 10, repeats)
    with blas_threads(1) as limited:
        numba.set_num_threads(1)
        print(f"(below: BLAS {'limited to 1 thread' if limited else 'threads not limited'}, "
              "Numba 1 thread)")
        _products(args.quick, repeats)


def _products(quick, repeats):
    print("2. loss HVP vs gradient (tanh, MSE)")
    m = 4096 if quick else 10 ** 5
    hvp_vs_gradient([100, m, 1], 10, repeats, f"two-layer d=100 m={m} n=10")
    hvp_vs_gradient([100, m, 1], 100, repeats, f"two-layer d=100 m={m} n=100")
    k = 256 if quick else 1024
    hvp_vs_gradient([100, k, k, 1], 100, repeats, f"three-layer d=100 m={k} n=100")
    hvp_vs_gradient([100, k, k, k, 10], 100, repeats, f"four-layer d=100 m={k} n=100 k=10")
    print("3. output-Hessian products and Lanczos at the PyTorch reference size")
    output_products(10 ** 4 if quick else 10 ** 5, 100, repeats)


if __name__ == "__main__":
    main()
