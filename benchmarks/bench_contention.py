"""In-process experiments under a competing CPU-bound process: the slowdown factor.

The runner limits the BLAS/OpenMP/Numba threads of in-process experiments exactly as a pool
worker's (threadpoolctl; one thread per core share), so a competing process costs them at most
its share of the cores instead of the many-fold slowdown of oversubscribed BLAS threads. Each
in-process experiment's smoke computation is timed alone and beside one busy-looping process
(both measured in this run); the target is a slowdown below 2x.

Run: ``ntkdyn bench --only contention`` or ``python benchmarks/bench_contention.py``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

BUSY = "import time\nend = time.time() + 600\nwhile time.time() < end:\n    pass\n"


def timed(experiment, config, repeats: int) -> float:
    from ntkdyn.figures.runner import compute_result

    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            compute_result(experiment, config, cache, scheduler="serial")
            best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, two experiments")
    args = parser.parse_args(argv)
    from ntkdyn.figures.registry import experiments

    in_process = [e for e in experiments().values() if not e.is_sweep]
    if args.quick:
        in_process = in_process[:2]
    repeats = 1 if args.quick else 2
    worst = 0.0
    print(f"{'experiment':<24s} {'alone':>8s} {'contended':>10s} {'slowdown':>9s}  (target < 2)")
    for experiment in in_process:
        config = experiment.config("smoke")
        timed(experiment, config, 1)  # warm-up: imports, Numba compilation
        alone = timed(experiment, config, repeats)
        busy = subprocess.Popen([sys.executable, "-c", BUSY])
        try:
            time.sleep(0.2)
            contended = timed(experiment, config, repeats)
        finally:
            busy.kill()
            busy.wait()
        factor = contended / alone
        worst = max(worst, factor)
        print(f"{experiment.name:<24s} {alone:8.2f} s {contended:8.2f} s {factor:8.2f}x")
    print(f"worst slowdown {worst:.2f}x (target < 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
