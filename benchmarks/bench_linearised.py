"""Iterative-linearisation performance: one linearised step (JVP + VJP) as a ratio to one ordinary
gradient step, measured in the same run (target: at most 3x).

1. Full batch: the forward pass at the linearisation point is cached for the block, so a step is
   one forward-mode pass (``J v``) and one back-propagation (``J^T g``).
2. Minibatch: nothing is cached; a step is a forward pass at ``theta_tilde`` + JVP + VJP.
3. The whole training loop, per step: ``iterative_linearised_training`` (K = 100), which is
   ``training.gradient_descent`` on the linear model with a re-linearise-every-K hook, against
   ``training.gradient_descent`` on the network.

Run: ``ntkdyn bench --only linearised`` (``--quick`` for smaller sizes) or
``python benchmarks/bench_linearised.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from ntkdyn.numerics.linearised import LinearisedMLP, iterative_linearised_training  # noqa: E402
from ntkdyn.numerics.networks import MLP  # noqa: E402
from ntkdyn.numerics.training import gradient_descent  # noqa: E402


def _problem(n, widths, seed=0):
    rng = np.random.default_rng(seed)
    net = MLP(widths)
    params = net.init(rng)
    X = rng.standard_normal((n, widths[0]))
    Y = rng.standard_normal((n, widths[-1]))
    theta = [W + 0.01 * rng.standard_normal(W.shape) for W in params]
    return net, params, theta, X, Y


def step_ratio(n, widths, batch, repeats, budget):
    """Seconds per step: (linearised, gradient) on the full batch or on fresh minibatches.

    Each timed call runs as many steps as fit in about ``budget`` seconds of gradient steps.
    """
    net, params, theta, X, Y = _problem(n, widths)
    model = LinearisedMLP(net, params)
    rng = np.random.default_rng(1)
    if batch is None:
        model.point(X)  # the block's cached forward pass at theta_tilde
        data = lambda: (X, Y, True)  # noqa: E731
    else:
        def data():
            idx = np.sort(rng.choice(n, batch, replace=False))
            return X[idx], Y[idx], False
    inner = max(1, int(budget / best_time(lambda: net.loss_and_gradients(theta, *data()[:2]), 3)))
    batches = [data() for _ in range(inner)]

    def lin():
        for Xb, Yb, cache in batches:
            model.loss_and_gradients(theta, Xb, Yb, cache=cache)

    def grad():
        for Xb, Yb, _ in batches:
            net.loss_and_gradients(theta, Xb, Yb)

    return _interleaved(lin, grad, repeats, inner)


def _interleaved(first, second, repeats, per_call=1):
    """Best times of two functions timed alternately, so load changes hit both alike."""
    times = np.array([(best_time(first, 1), best_time(second, 1)) for _ in range(repeats)])
    return tuple(times.min(axis=0) / per_call)


def loop_ratio(n, widths, steps, repeats):
    net, params, _, X, Y = _problem(n, widths)
    return _interleaved(lambda: iterative_linearised_training(net, params, X, Y, 0.1, steps, 100),
                        lambda: gradient_descent(net, params, X, Y, 0.1, steps), repeats, steps)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    q = args.quick
    repeats, budget = (5, 0.05) if q else (7, 0.2)
    cases = [("default task", 200, [20, 256, 1]),
             ("wide", 1000 if q else 2000, [100, 1024 if q else 4096, 1]),
             ("depth 4", 500 if q else 1000, [50, 256 if q else 512, 256 if q else 512,
                                              256 if q else 512, 10])]
    print("1. full batch, cached forward pass at theta_tilde: linearised step / gradient step")
    for name, n, widths in cases:
        t_lin, t_gd = step_ratio(n, widths, None, repeats, budget)
        print(f"   {name:<13s} n={n:<5d} widths={widths}: linearised {t_lin * 1e3:8.3f} ms, "
              f"gradient {t_gd * 1e3:8.3f} ms, ratio {t_lin / t_gd:.2f} (target <= 3)")
    print("2. minibatch of 64, nothing cached: linearised step / gradient step")
    for name, n, widths in cases:
        t_lin, t_gd = step_ratio(n, widths, 64, repeats, budget)
        print(f"   {name:<13s} n={n:<5d} widths={widths}: linearised {t_lin * 1e3:8.3f} ms, "
              f"gradient {t_gd * 1e3:8.3f} ms, ratio {t_lin / t_gd:.2f} (target <= 3)")
    steps = 100 if q else 500
    name, n, widths = cases[0]
    t_il, t_gd = loop_ratio(n, widths, steps, 2 if q else 3)
    print(f"3. training loop, {name}, {steps} steps, K = 100: iterative linearisation "
          f"{t_il * 1e3:.3f} ms/step, gradient descent {t_gd * 1e3:.3f} ms/step, "
          f"ratio {t_il / t_gd:.2f} (target <= 3)")


if __name__ == "__main__":
    main()
