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


@contextmanager
def open_executor(scheduler: str | None = "process", workers: int | None = None):
    """Yield ``(executor, kind)`` for a scheduler name or a Dask address; clean up after."""
    scheduler = scheduler or "process"
    if scheduler == "serial":
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


def run_cached(fn: Callable[[dict], dict], points: list[dict], cache_dir, name: str,
               executor: Executor, kind: str = "serial", progress: bool = False) -> list[dict]:
    """``[fn(p) for p in points]``, computing only the points not already cached.

    Each result is written (atomically) as soon as it arrives, so killing the sweep loses at
    most the runs in flight, and a rerun computes only what is missing.
    """
    cache_dir = Path(cache_dir)
    paths = [cache_dir / f"{name}-run-{config_hash(name, p)}.npz" for p in points]
    results: list[dict | None] = [load_result(path) for path in paths]
    todo = [i for i, r in enumerate(results) if r is None]
    futures = {executor.submit(fn, points[i]): i for i in todo}
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
