"""Memory estimates of the experiments against their measured peaks (issue 17).

The runner refuses a configuration whose estimated peak memory
(``Experiment.memory_bytes``, :mod:`ntkdyn.figures.footprint`) exceeds the budget, so the
estimates must be close to what a computation really allocates. For each case, a smoke
configuration scaled up along the key that dominates its memory, the computation runs in this
process under ``tracemalloc`` (NumPy reports its buffers to it) and the ratio
``estimate / measured peak`` is printed; the goal is a ratio within ``[0.5, 2]``.

Run: ``ntkdyn bench --only memory`` (``--quick``: the four fastest cases) or
``python benchmarks/bench_memory_estimates.py``. The exit status is 1 when a ratio leaves
``[0.5, 2]``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import peak_memory  # noqa: E402

from ntkdyn.figures.registry import get_experiment  # noqa: E402
from ntkdyn.figures.runner import resolve_config  # noqa: E402

#: (experiment, overrides of its smoke configuration); the first four are the quick set.
CASES = [
    ("ntk-width", {"log2_widths": [12], "depths": [3], "seeds": 1}),
    ("il-sweep", {"width": 4096, "steps": 20, "record_every": 10, "periods": [1]}),
    ("hessian-width", {"widths": [2**18, 2**19], "fit_from": 2**18, "activations": ["tanh"],
                       "seeds": 1, "deep_widths": [64, 128], "deep_seeds": 1,
                       "deep_activations": ["tanh"], "deep_fit_from": 64}),
    ("nfa-early-time", {"n_train": 512, "steps": 10, "wide_steps": 10, "num_records": 3,
                        "init_scales": [1.0]}),
    ("il-kernel", {"width": 4096, "steps": 20, "grid_steps": 20, "lrs": [1.0],
                   "periods": [1, 0], "period": 10}),
    ("il-gauss-newton", {"width": 4096, "iterations": 1, "dampings": [0.1]}),
    ("nfa-training", {"width": 512, "steps": 20, "num_records": 3, "early_step": 5}),
    ("toy-kernel-evolution", {"P": 200, "etas": [0.0], "num_times": 60}),
    ("optimal-feature-evolution", {"P": 60}),
    ("kgd-baselines", {"n_train": 1000, "steps": 50, "seeds": 1}),
    ("specialization-matrix", {"n_train": 1000, "steps": 50, "datasets": ["digits"],
                               "seeds": 1}),
    ("relu-alignment", {"n_train": 800, "steps": 50, "gammas": [1.0], "seeds": 1}),
]


def measure(name: str, overrides: dict) -> tuple[int, int, float]:
    """``(estimate, measured peak, seconds)`` of one scaled smoke configuration."""
    experiment = get_experiment(name)
    config = resolve_config(experiment, "smoke", overrides)
    estimate = experiment.memory_bytes(config)
    start = time.perf_counter()
    _, peak = peak_memory(lambda: experiment.compute_serial(config))
    return estimate, peak, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the four fastest cases")
    args = parser.parse_args(argv)
    cases = CASES[:4] if args.quick else CASES
    print(f"{'experiment':<27s} {'estimate':>10s} {'peak':>10s} {'ratio':>6s} {'time':>7s}  "
          "overrides")
    outside = 0
    for name, overrides in cases:
        estimate, peak, seconds = measure(name, overrides)
        ratio = estimate / peak
        outside += not 0.5 <= ratio <= 2.0
        print(f"{name:<27s} {estimate / 2**20:8.1f} Mi {peak / 2**20:8.1f} Mi {ratio:6.2f} "
              f"{seconds:6.1f}s  {overrides}", flush=True)
    print(f"{len(cases) - outside} of {len(cases)} estimates within a factor 2 of the peak")
    return 1 if outside else 0


if __name__ == "__main__":
    sys.exit(main())
