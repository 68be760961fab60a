"""Timing helpers shared by the benchmark scripts (best-of-k wall time, peak traced memory)."""
from __future__ import annotations

import time
import tracemalloc


def best_time(fn, repeats: int = 3) -> float:
    """Smallest wall-clock time of ``repeats`` calls (the least noisy estimate)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_memory(fn) -> tuple[object, int]:
    """``fn()`` and the peak bytes it allocated (NumPy reports its buffers to tracemalloc)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return out, peak
