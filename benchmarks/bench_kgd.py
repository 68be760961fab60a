"""Cost of recording the two-layer NTK along a trajectory (kgd-baselines), relative to one step.

The kernel gradient descent baselines of Shan & Bordelon (2021, Fig. 1) need the network's NTK
along training. For a two-layer ReLU network with one output, recording is one call of
:func:`ntkdyn.numerics.kernels.empirical_ntk` (``K = c_2^2 [Phi Phi^T + c_1^2 (X X^T) *
(D D^T)]``: three symmetric rank-k products, ``n^2 (d + 2N) / 2`` multiply-adds with syrk),
plus the per-record metrics of the experiment (``||K||_F``, ``Tr K``, both alignments:
``O(n^2)``). One full-batch gradient step of the centred model (:mod:`ntkdyn.numerics.richness`)
is a forward and a backward pass, about ``2 n d N`` multiply-adds. Target (N = 500 hidden units,
n = 1000 points, d = 784, synthetic inputs on the sphere of radius ``sqrt(d)``): recording costs
at most 3 steps. Measured in one run, BLAS limited to one thread (``threadpoolctl``, where
installed) as in a runner worker, best of ``repeats``.

Run: ``ntkdyn bench --only kgd`` (``--quick`` for smaller sizes) or
``python benchmarks/bench_kgd.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from ntkdyn.base.samplers import sphere_inputs  # noqa: E402
from ntkdyn.numerics.kernels import alignment, empirical_ntk  # noqa: E402
from ntkdyn.numerics.networks import MLP  # noqa: E402
from ntkdyn.numerics.richness import CenteredModel  # noqa: E402

TARGET = 3.0


def one_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - without it, BLAS keeps its default threads
        return contextlib.nullcontext()
    return threadpool_limits(1)


def measure(n, d, N, repeats):
    rng = np.random.default_rng(0)
    X = sphere_inputs(n, d, 0)
    Y = np.sign(rng.standard_normal((n, 1)))
    net = MLP([d, N, 1], activation="relu")
    model = CenteredModel(net, net.init(0), gamma=1.0)
    params = [W + 0.01 * rng.standard_normal(W.shape) for W in model.params0]

    def step():
        _, grads = model.loss_and_gradients(params, X, Y)
        return model.update(params, grads, 1.0)

    def record():
        K = empirical_ntk(net, params, X)
        return (np.linalg.norm(K), np.trace(K), alignment(K, Y), alignment(K, Y, centered=True))

    step()  # fills the f(X; theta_0) cache, as in training
    t_step = best_time(step, repeats)
    t_kernel = best_time(lambda: empirical_ntk(net, params, X), repeats)
    t_record = best_time(record, repeats)
    return t_step, t_kernel, t_record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args(argv)
    n, d, N = (300, 784, 500) if args.quick else (1000, 784, 500)
    repeats = 5
    with one_thread():
        t_step, t_kernel, t_record = measure(n, d, N, repeats)
    print(f"two-layer ReLU, one output, N = {N}, n = {n}, d = {d}, float64, one BLAS thread "
          f"(best of {repeats})")
    print(f"{'step (ms)':>10s} {'NTK (ms)':>9s} {'/ step':>7s} {'record (ms)':>12s} {'/ step':>7s}")
    print(f"{t_step * 1e3:10.1f} {t_kernel * 1e3:9.1f} {t_kernel / t_step:7.2f} "
          f"{t_record * 1e3:12.1f} {t_record / t_step:7.2f}")
    ratio = t_record / t_step
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"recording the NTK with its metrics costs {ratio:.2f} gradient steps: {verdict} the "
          f"target of at most {TARGET:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
