"""AGOP / NFA performance, as ratios to one gradient step of the same network, measured in one run.

The AGOP of weight matrix ``l`` is ``c^2 W^T K W`` with the PTK covariance
``K = sum_{x, j} b_j(x) b_j(x)^T``: one forward pass, the back-propagated signals of all ``k``
outputs batched as ``(k n, m)`` products, one ``syrk`` for ``K`` and two small products. A
gradient step is one forward and one backward pass plus the update. Target: the AGOP
of one layer for n = 2000, width 1024, 10 outputs costs at most 10 gradient steps.

Also reported: all layers' UC/C-NFA from one pass (``nfa_correlations``), and the per-example
reference (explicit input Jacobians, one backward chain per example) on a subset, scaled to n.

Run: ``ntkdyn bench --only features`` (``--quick`` for smaller sizes) or
``python benchmarks/bench_features.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time, peak_memory  # noqa: E402

from ntkdyn.numerics.features import agop, nfa_correlations  # noqa: E402
from ntkdyn.numerics.networks import MLP  # noqa: E402
from ntkdyn.numerics.training import sgd_update  # noqa: E402


def per_example_agop(net, params, X, layer):
    """Reference: ``sum_x J_x^T J_x`` with ``J_x = d f / d a_layer`` built example by example."""
    fwd = net.forward(params, X)
    G = np.zeros((params[layer].shape[1],) * 2)
    for i in range(X.shape[0]):
        J = np.eye(net.output_dim)
        for l in range(net.depth - 1, layer - 1, -1):
            J = J @ (net.multipliers[l] * params[l])
            if l > layer:
                J = J * net.activation.dphi(fwd.preactivations[l - 1][i])
        G += J.T @ J
    return G


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args(argv)
    n, d, m, k, hidden = (500, 196, 256, 10, 5) if args.quick else (2000, 784, 1024, 10, 5)
    repeats = 3
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((n, k))
    net = MLP([d] + [m] * hidden + [k], activation="relu")
    params = net.init(0)
    params0 = net.init(1)

    def step():
        _, grads = net.loss_and_gradients(params, X, Y)
        return sgd_update(params, grads, 0.1)

    t_step = best_time(step, repeats)
    print(f"MLP {list(net.widths)}, n = {n}, float64; one gradient step: {t_step * 1e3:.1f} ms")
    print(f"{'quantity':<34s} {'time (ms)':>10s} {'/ step':>8s}")
    worst = 0.0
    for layer in (0, hidden // 2, hidden - 1, hidden):
        t = best_time(lambda: agop(net, params, X, layer), repeats)
        worst = max(worst, t / t_step)
        print(f"{f'agop, layer {layer}':<34s} {t * 1e3:10.1f} {t / t_step:8.2f}")
    t_all = best_time(lambda: nfa_correlations(net, params, X, params0), repeats)
    print(f"{'UC + C-NFA, all layers, one pass':<34s} {t_all * 1e3:10.1f} {t_all / t_step:8.2f}")
    sub = min(n, 50)
    t_ref = best_time(lambda: per_example_agop(net, params, X[:sub], 0), 1) * n / sub
    t0 = best_time(lambda: agop(net, params, X, 0), repeats)
    print(f"{'per-example reference, layer 0':<34s} {t_ref * 1e3:10.1f} {t_ref / t_step:8.2f}"
          f"   (from {sub} examples; factorised AGOP is {t_ref / t0:.1f}x faster)")
    _, peak = peak_memory(lambda: agop(net, params, X, 0))
    signals = hidden * k * n * m * 8 / 2**20
    print(f"peak memory of agop (layer 0): {peak / 2**20:.0f} MiB "
          f"(signals of all layers: {hidden} x k n m x 8 B = {signals:.0f} MiB)")
    verdict = "meets" if worst <= 10 else "MISSES"
    print(f"worst AGOP / gradient step: {worst:.2f} ({verdict} the target <= 10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
