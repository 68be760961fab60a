"""Sweep overhead: 64 trivial runs on a process pool and on a local Dask cluster, as ratios to
running them serially in one process (measured in one run).

Run: ``ntkdyn bench --only sweep`` or ``python benchmarks/bench_sweep.py``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ntkdyn.figures.sweep import open_executor, run_cached  # noqa: E402


def trivial(point):
    """A run that does almost nothing: what remains is the sweep's own overhead."""
    return {"value": np.array([point["i"] ** 0.5])}


def timed_sweep(scheduler, runs):
    points = [{"i": i} for i in range(runs)]
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        with open_executor(scheduler) as (executor, kind):
            started = time.perf_counter()
            run_cached(trivial, points, cache, "bench", executor, kind)
            finished = time.perf_counter()
        end = time.perf_counter()
    return end - start, finished - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    runs = 16 if args.quick else 64
    schedulers = ["serial", "process"]
    try:
        import distributed  # noqa: F401
        schedulers.append("local")
    except ImportError:
        print("   (dask.distributed not installed: pip install -e '.[dask]' to measure it)")
    serial_total, _ = timed_sweep("serial", runs)
    print(f"{runs} trivial runs (each cached to disk as it finishes)")
    print(f"   serial : {serial_total:7.3f} s")
    for scheduler in schedulers[1:]:
        total, body = timed_sweep(scheduler, runs)
        print(f"   {scheduler:7s}: {total:7.3f} s in all ({total / serial_total:6.1f}x serial), "
              f"{body:7.3f} s excluding start-up and shut-down "
              f"({body / serial_total:6.1f}x serial)")


if __name__ == "__main__":
    main()
