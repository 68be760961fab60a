"""Sweeps: independent runs over a configuration grid, on any ``concurrent.futures.Executor``.

An experiment that defines ``runs(config) -> list[dict]``, ``run(point) -> dict of arrays`` and
``combine(config, results) -> dict of arrays`` is executed run by run: each finished run is
cached at once (``.npz`` + a JSON of its point, written atomically, keyed by a hash of the
point and the library version), so an interrupted sweep resumes where it stopped and loses no
finished run. Executors:

``"serial"``   in this process;
``"process"``  a local process pool, one worker per core, BLAS/Numba threads split so the
               workers do not oversubscribe the cores (the default);
``"local"``    a local Dask cluster of processes (``pip install -e .[dask]``);
``"tcp://HOST:PORT"``  an existing Dask scheduler.
"""
from __future__ import annotations

import itertools
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from .storage import config_hash, load_result, save_result, write_json

DASK_CONNECT_TIMEOUT_S = 5

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def expand_grid(grid: dict) -> list[dict]:
    """Cartesian product of ``{key: [values]}`` in a fixed order (last key varies fastest)."""
    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid must be a non-empty dict of key -> list of values")
    keys = list(grid)
    for key in keys:
        if not isinstance(grid[key], (list, tuple)) or not grid[key]:
            raise ValueError(f"grid[{key!r}] must be a non-empty list, got {grid[key]!r}")
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


class SerialExecutor(Executor):
    """Runs each task at submission, in this process (for debugging and tiny sweeps)."""

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future


@contextmanager
def limited_threads(threads: int):
    """Set the BLAS/OpenMP/Numba thread variables that child processes inherit."""
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: str(threads) for k in THREAD_VARIABLES})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _seed_key(seed) -> list:
    """A JSON-able identity of a ``SeedSequence`` (entropy and spawn key)."""
    return [str(seed.entropy), [int(k) for k in seed.spawn_key]]


def threads_per_worker(workers: int | None = None) -> int:
    """BLAS/OpenMP/Numba threads of each worker: the cores split evenly (one by default)."""
    cores = os.cpu_count() or 1
    return max(1, cores // (workers or cores))


@contextmanager
def limited_threads_here(threads: int):
    """Limit this process's BLAS/OpenMP (threadpoolctl) and Numba threads, as the pool workers'
    are limited, so in-process results are bitwise those of the workers."""
    import numba
    from threadpoolctl import threadpool_limits

    saved = numba.get_num_threads()
    with threadpool_limits(limits=threads):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            yield
        finally:
            numba.set_num_threads(saved)


@contextmanager
def open_executor(scheduler: str | None = "process", workers: int | None = None):
    """Yield ``(executor, kind)`` for a scheduler name or a Dask address; clean up after."""
    scheduler = scheduler or "process"
    if scheduler == "serial":
        with limited_threads_here(threads_per_worker(workers)):
            yield SerialExecutor(), "serial"
    elif scheduler == "process":
        cores = os.cpu_count() or 1
        workers = workers or cores
        with limited_threads(max(1, cores // workers)):
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
            try:
                yield pool, "process"
            except BaseException:
                # interrupted (Ctrl-C, a killed worker): drop queued runs instead of finishing them
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
    elif scheduler == "local" or scheduler.startswith(("tcp://", "tls://", "ws://")):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ValueError("the Dask scheduler needs the optional extra: "
                             "pip install -e '.[dask]'") from None
        if scheduler == "local":
            cores = os.cpu_count() or 1
            workers = workers or cores
            with limited_threads(max(1, cores // workers)):
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
            client = Client(cluster)
        else:
            cluster = None
            try:
                client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"cannot reach the Dask scheduler at {scheduler} "
                                 f"({exc.__class__.__name__})") from None
        try:
            yield client.get_executor(), "dask"
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    else:
        raise ValueError(f"scheduler must be 'serial', 'process', 'local' or a Dask address "
                         f"like tcp://HOST:PORT, got {scheduler!r}")


def run_cached(fn: Callable, points: list[dict], cache_dir, name: str,
               executor: Executor, kind: str = "serial", progress: bool = False,
               seeds: list | None = None) -> list[dict]:
    """``[fn(p) for p in points]`` (``fn(p, seed)`` with ``seeds``), computing only the points
    not already cached.

    Each result is written (atomically) as soon as it arrives, so killing the sweep loses at
    most the runs in flight, and a rerun computes only what is missing. A run's cache key is a
    hash of its point, its seed and the code (:func:`ntkdyn.figures.storage.config_hash`).
    """
    cache_dir = Path(cache_dir)
    if seeds is not None and len(seeds) != len(points):
        raise ValueError(f"seeds must hold one seed per point ({len(points)}), got {len(seeds)}")
    keys = [p if seeds is None else {"point": p, "seed": _seed_key(seeds[i])}
            for i, p in enumerate(points)]
    paths = [cache_dir / f"{name}-run-{config_hash(name, k)}.npz" for k in keys]
    results: list[dict | None] = [load_result(path) for path in paths]
    todo = [i for i, r in enumerate(results) if r is None]
    if seeds is None:
        futures = {executor.submit(fn, points[i]): i for i in todo}
    else:
        futures = {executor.submit(fn, points[i], seeds[i]): i for i in todo}
    from tqdm.auto import tqdm
    with tqdm(total=len(points), initial=len(points) - len(todo), desc=name, unit="run",
              disable=not progress) as bar:
        for future in as_completed(futures):
            i = futures[future]
            results[i] = {k: v for k, v in future.result().items()}
            save_result(paths[i], results[i])
            write_json(paths[i].with_suffix(".json"),
                       {"experiment": name, "point": points[i], "executor": kind})
            bar.update()
    return results
