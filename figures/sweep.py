"""Sweeps: independent runs over a configuration grid, on any ``concurrent.futures.Executor``.

An experiment that defines ``runs(config) -> list[dict]``, ``run(point) -> dict of arrays`` and
``combine(config, results) -> dict of arrays`` is executed run by run: each finished run is
cached at once (``.npz`` + a JSON of its point, written atomically, keyed by a hash of the
point and the library version), so an interrupted sweep resumes where it stopped and loses no
finished run. Executors::

    "serial"   in this process;
    "process"  a local process pool, one worker per core, BLAS/Numba threads split so the
               workers do not oversubscribe the cores (the default);
    "local"    a local Dask cluster of processes (pip install -e .[dask]);
    "tcp://HOST:PORT"  an existing Dask scheduler (also tls://, ws://, wss://).

Faults and signals:

- at most one run per worker is handed to the executor at a time, so an interrupt has no
  queued run to wait for; Ctrl-C (``KeyboardInterrupt``) stops handing out runs at once, waits
  for the runs in flight, caches every one that finishes, then re-raises (a second Ctrl-C stops
  the wait); a run that raises stops the sweep the same way;
- :class:`Terminated` (raised by the handler :func:`terminate_on_sigterm` installs) stops at
  once: the pool's workers are killed, finished runs are already cached;
- pool workers ignore SIGINT (the parent decides), ask the kernel to kill them when the parent
  dies (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``) and watch the parent's pid from a thread
  (every :data:`PARENT_POLL_S` s, the portable fallback), so no worker outlives its parent
  whatever signal ended it; multiprocessing's resource tracker then sees its last client go
  and exits;
- a Dask address is checked before dask.distributed connects: a TCP connection, then the
  scheduler's greeting (a Dask scheduler speaks first) within the connect timeout (default
  :data:`DASK_CONNECT_TIMEOUT_S` s, :func:`connect_timeout`), so a silent listener, an HTTP
  server or another protocol is one line, not a hang.
"""
from __future__ import annotations

import contextvars
import ctypes
import importlib.util
import itertools
import math
import numbers
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from .storage import config_hash, load_result, save_result, write_json

#: Seconds to reach a Dask scheduler and hear its greeting (``--connect-timeout``).
DASK_CONNECT_TIMEOUT_S = 10.0
#: How often (s) a pool worker's watchdog thread checks that its parent is alive.
PARENT_POLL_S = 0.5
#: Scheduler names other than a Dask address.
SCHEDULERS = ("serial", "process", "local")
#: A Dask scheduler address: ``PROTOCOL://HOST:PORT``.
ADDRESS_PATTERN = re.compile(r"(?P<scheme>tcp|tls|ws|wss)://"
                             r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})/?")
_PR_SET_PDEATHSIG = 1
_MAX_GREETING_BYTES = 1 << 20

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")

_CONNECT_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "ntkdyn_connect_timeout", default=None)


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM): the sweep ends at once, keeping what finished.

    A ``BaseException``, like ``KeyboardInterrupt``, so ``except Exception`` does not swallow
    it; ``signum`` is the signal received; the command line exits with ``128 + signum``.
    """

    def __init__(self, signum: int = signal.SIGTERM):
        self.signum = int(signum)
        super().__init__(f"terminated by signal {self.signum}")


@contextmanager
def terminate_on_sigterm():
    """Turn SIGTERM into :class:`Terminated` in the main thread for the block (the previous
    handler is restored after it); a no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def connect_timeout(seconds: float | None):
    """Use ``seconds`` (``None``: :data:`DASK_CONNECT_TIMEOUT_S`) as the Dask connect timeout of
    the executors opened inside the block."""
    token = _CONNECT_TIMEOUT.set(seconds)  # checked where it is used (check_executor_args)
    try:
        yield
    finally:
        _CONNECT_TIMEOUT.reset(token)


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
    """Runs each task at submission, in this process (for debugging and tiny sweeps).

    An error of the task is handed to the caller through the future; an interrupt
    (``KeyboardInterrupt``, :class:`Terminated`) propagates from ``submit`` at once."""

    workers = 1

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future


class WorkerPool(ProcessPoolExecutor):
    """A ``ProcessPoolExecutor`` whose workers never outlive this process (module docstring);
    ``workers`` is its size."""

    def __init__(self, workers: int):
        # PR_SET_PDEATHSIG fires when the thread that started the worker ends: use it only when
        # that is the main thread (workers start on submission, from the submitting thread)
        main = threading.current_thread() is threading.main_thread()
        super().__init__(max_workers=workers, mp_context=get_context("spawn"),
                         initializer=_worker_setup, initargs=(os.getpid(), main))
        self.workers = workers

    def kill_workers(self) -> None:
        """Kill every worker now (what they compute is lost) and reap them."""
        processes = list((getattr(self, "_processes", None) or {}).values())
        for process in processes:
            try:
                process.kill()
            except (OSError, ValueError, AttributeError):
                pass
        for process in processes:
            try:
                process.join(timeout=5)
            except (OSError, ValueError, AssertionError):
                pass


def _worker_setup(parent: int, use_pdeathsig: bool) -> None:
    """Pool-worker initializer: ignore SIGINT, die with the parent (module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if use_pdeathsig and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog remains
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="ntkdyn-parent-watch",
                     daemon=True).start()


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL_S)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)


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


def _check_timeout(seconds, name: str = "connect_timeout") -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds, got {seconds!r}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {seconds!r}")
    return float(seconds)


def check_executor_args(scheduler="process", workers=None, timeout=None,
                        names=("scheduler", "workers", "connect_timeout")):
    """Check a scheduler name or Dask address, a worker count and a connect timeout, before
    any work; ``names``: how the caller calls the three (the command line passes its options).

    Returns
    -------
    tuple
        ``(scheduler, workers, timeout)``: ``None`` scheduler as ``"process"``, ``None``
        timeout as the :func:`connect_timeout` in force (default
        :data:`DASK_CONNECT_TIMEOUT_S`).

    Raises
    ------
    TypeError, ValueError
        One line naming the argument: an empty or unknown scheduler, an address that is not
        ``PROTOCOL://HOST:PORT``, dask.distributed missing for ``"local"`` or an address, a
        worker count that is not a positive integer, a timeout that is not a positive number.
    """
    s_name, w_name, t_name = names
    scheduler = "process" if scheduler is None else scheduler
    if not isinstance(scheduler, str):
        raise TypeError(f"{s_name} must be a string such as 'process' or 'tcp://HOST:PORT', "
                        f"got {scheduler!r}")
    address = ADDRESS_PATTERN.fullmatch(scheduler)
    if scheduler not in SCHEDULERS and address is None:
        hint = ""
        if scheduler.startswith(("http://", "https://")):
            hint = " (http:// is the dashboard's; the scheduler speaks tcp://, usually port 8786)"
        elif "://" in scheduler:
            hint = " (a Dask address is PROTOCOL://HOST:PORT, PROTOCOL one of tcp, tls, ws, wss)"
        raise ValueError(f"{s_name} must be 'serial', 'process', 'local' or a Dask address "
                         f"like tcp://HOST:PORT, got {scheduler!r}{hint}")
    if address is not None and not 1 <= int(address["port"]) <= 65535:
        raise ValueError(f"{s_name} {scheduler!r}: the port must be in 1..65535")
    if (scheduler == "local" or address is not None) and not _has_distributed():
        raise ValueError(f"{s_name} {scheduler!r} needs dask.distributed, which is not "
                         "installed: pip install -e '.[dask]'")
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, numbers.Integral):
            raise TypeError(f"{w_name} must be a positive integer, got {workers!r}")
        if workers < 1:
            raise ValueError(f"{w_name} must be a positive integer, got {workers}")
        workers = int(workers)
    if timeout is None:
        timeout = _CONNECT_TIMEOUT.get()
    timeout = DASK_CONNECT_TIMEOUT_S if timeout is None else _check_timeout(timeout, t_name)
    return scheduler, workers, timeout


def _has_distributed() -> bool:
    try:
        return importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):
        return False


def _recv_some(sock: socket.socket, deadline: float, limit: int) -> bytes:
    """Up to ``limit`` bytes, whatever arrives before ``deadline`` (b"" on silence or EOF)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return b""
    sock.settimeout(remaining)
    try:
        return sock.recv(limit)
    except (socket.timeout, TimeoutError, BlockingIOError):
        return b""


def _recv_exactly(sock: socket.socket, count: int, deadline: float) -> bytes:
    data = b""
    while len(data) < count:
        chunk = _recv_some(sock, deadline, count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def check_dask_scheduler(address: str, timeout: float = DASK_CONNECT_TIMEOUT_S) -> None:
    """Check that a Dask scheduler answers at a ``tcp://`` address within ``timeout`` seconds.

    A Dask scheduler greets every connection first (its handshake: an 8-byte frame length,
    then that many bytes). This connects, waits half the timeout for the greeting, and, when
    none came, sends an HTTP request and waits the other half, to name what is listening.
    Other protocols are left to dask.distributed.

    Raises
    ------
    ValueError
        One line: nothing listens, the connection timed out, the listener sent nothing, an
        HTTP server or something else answered.
    """
    match = ADDRESS_PATTERN.fullmatch(address)
    if match is None or match["scheme"] != "tcp":
        return
    host, port = match["host"].strip("[]"), int(match["port"])
    start = time.monotonic()
    deadline = start + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except (socket.timeout, TimeoutError):
        raise ValueError(f"cannot reach the Dask scheduler at {address} (no connection within "
                         f"{timeout:g} s)") from None
    except OSError as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {address} "
                         f"({exc.strerror or exc.__class__.__name__})") from None
    with sock:
        greeting = _recv_exactly(sock, 8, start + timeout / 2)
        if len(greeting) == 8 and not greeting.startswith(b"HTTP/"):
            (length,) = struct.unpack("Q", greeting)
            if 0 < length <= _MAX_GREETING_BYTES:
                if len(_recv_exactly(sock, length, deadline)) == length:
                    return
                raise ValueError(f"the Dask scheduler at {address} did not finish its greeting "
                                 f"within {timeout:g} s")
        if not greeting:
            try:
                sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            except OSError:
                pass
            greeting = _recv_some(sock, deadline, 64)
        if greeting.startswith(b"HTTP/"):
            raise ValueError(f"{address} is an HTTP server, not a Dask scheduler (a scheduler "
                             "speaks tcp://, usually on port 8786; 8787 is its dashboard)")
        if greeting:
            raise ValueError(f"{address} is not a Dask scheduler (it answered "
                             f"{greeting[:16]!r})")
        raise ValueError(f"no Dask scheduler answered at {address} within {timeout:g} s "
                         "(something accepts connections there but says nothing)")


def _connect_client(address: str, timeout: float):
    """``distributed.Client(address, timeout=timeout)``, given up (one line) if it has not
    returned a second after ``timeout``."""
    from distributed import Client

    box: dict = {}

    def connect():
        try:
            box["client"] = Client(address, timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            box["error"] = exc

    thread = threading.Thread(target=connect, name="ntkdyn-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    if thread.is_alive():
        raise ValueError(f"no Dask scheduler answered at {address} within {timeout:g} s")
    if "error" in box:
        exc = box["error"]
        reason = " ".join(str(exc).split())[:160] or exc.__class__.__name__
        raise ValueError(f"cannot reach the Dask scheduler at {address} "
                         f"({exc.__class__.__name__}: {reason})") from None
    return box["client"]


@contextmanager
def open_executor(scheduler: str | None = "process", workers: int | None = None,
                  timeout: float | None = None):
    """Yield ``(executor, kind)`` for a scheduler name or a Dask address; clean up after.

    ``timeout``: seconds to reach a Dask scheduler (``None``: :func:`connect_timeout`, default
    :data:`DASK_CONNECT_TIMEOUT_S`). On an exception in the block the pool's workers are
    killed (:meth:`WorkerPool.kill_workers`) rather than waited for.
    """
    scheduler, workers, timeout = check_executor_args(scheduler, workers, timeout)
    if scheduler == "serial":
        with limited_threads_here(threads_per_worker(workers)):
            yield SerialExecutor(), "serial"
    elif scheduler == "process":
        cores = os.cpu_count() or 1
        workers = workers or cores
        # the workers start on submission (inside the block): they inherit these variables
        with limited_threads(max(1, cores // workers)):
            pool = WorkerPool(workers)
            try:
                yield pool, "process"
            except BaseException:
                # interrupted, terminated or a run failed: the runs that could finish were
                # waited for by run_cached; what is still running is not waited for
                pool.kill_workers()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
    else:
        from distributed import LocalCluster

        if scheduler == "local":
            cores = os.cpu_count() or 1
            workers = workers or cores
            with limited_threads(max(1, cores // workers)):
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
            client = _connect_client(cluster.scheduler_address, max(timeout, 30.0))
        else:
            cluster = None
            check_dask_scheduler(scheduler, timeout)
            client = _connect_client(scheduler, timeout)
        try:
            executor = client.get_executor()
            try:
                threads = sum(w.get("nthreads", 1)
                              for w in client.scheduler_info()["workers"].values())
            except Exception:  # noqa: BLE001 - an unknown size: hand out every run at once
                threads = 0
            executor.workers = threads or None
            yield executor, "dask"
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def run_cached(fn: Callable, points: list[dict], cache_dir, name: str,
               executor: Executor, kind: str = "serial", progress: bool = False,
               seeds: list | None = None) -> list[dict]:
    """``[fn(p) for p in points]`` (``fn(p, seed)`` with ``seeds``), computing only the points
    not already cached.

    Each result is written (atomically) as soon as it arrives, so killing the sweep loses at
    most the runs in flight, and a rerun computes only what is missing. A run's cache key is a
    hash of its point, its seed and the code (:func:`ntkdyn.figures.storage.config_hash`).

    At most ``executor.workers`` runs (when the executor has that attribute) are handed out at
    once. On ``KeyboardInterrupt`` or a failed run no further run is handed out, the runs in
    flight are waited for and every one that finishes is cached, then the exception is
    raised; on any other interrupt (:class:`Terminated`) the runs in flight are abandoned.
    """
    cache_dir = Path(cache_dir)
    if seeds is not None and len(seeds) != len(points):
        raise ValueError(f"seeds must hold one seed per point ({len(points)}), got {len(seeds)}")
    keys = [p if seeds is None else {"point": p, "seed": _seed_key(seeds[i])}
            for i, p in enumerate(points)]
    paths = [cache_dir / f"{name}-run-{config_hash(name, k)}.npz" for k in keys]
    results: list[dict | None] = [load_result(path) for path in paths]
    todo = deque(i for i, r in enumerate(results) if r is None)
    limit = getattr(executor, "workers", None) or len(todo) or 1
    running: dict[Future, int] = {}

    # an interrupt between handing out a run and recording its future would lose that run:
    # the bookkeeping holds SIGINT/SIGTERM back (not for an executor that runs at submission)
    holding = _nothing if isinstance(executor, SerialExecutor) else _signals_held

    def hand_out():
        while todo and len(running) < limit:
            i = todo.popleft()
            args = (points[i],) if seeds is None else (points[i], seeds[i])
            with holding():
                running[executor.submit(fn, *args)] = i

    def keep(i, result):
        result = dict(result)
        save_result(paths[i], result)
        results[i] = result
        write_json(paths[i].with_suffix(".json"),
                   {"experiment": name, "point": points[i], "executor": kind})
        bar.update()

    from tqdm.auto import tqdm
    error, finished = None, []
    with tqdm(total=len(points), initial=len(points) - len(todo), desc=name, unit="run",
              disable=not progress) as bar:
        try:
            hand_out()
            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                with _signals_held():
                    finished = [(running.pop(f), f) for f in done]
                if error is None and not any(f.exception() for _, f in finished):
                    hand_out()  # the next runs start before the finished ones are written
                for i, future in finished:
                    if future.exception() is None:
                        keep(i, future.result())
                    elif error is None:
                        error = future.exception()
                        todo.clear()
        except KeyboardInterrupt:
            todo.clear()
            for i, future in finished:  # finished but not yet written when interrupted
                if results[i] is None and future.exception() is None:
                    keep(i, future.result())
            for future in _as_done(running):  # a second Ctrl-C ends this wait at once
                if future.exception() is None:
                    keep(running[future], future.result())
            raise
        except BaseException:
            todo.clear()
            for future in running:
                future.cancel()
            raise
    if error is not None:
        raise error
    return results


@contextmanager
def _nothing():
    yield


@contextmanager
def _signals_held():
    """Hold back what the SIGINT and SIGTERM handlers do (raise ``KeyboardInterrupt``,
    :class:`Terminated`) until the block ends; only Python-level handlers, only in the main
    thread (elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught, previous = [], {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if callable(handler):
            previous[signum] = handler
            signal.signal(signum, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum, frame in caught:
            previous[signum](signum, frame)


def _as_done(futures):
    """The futures in the order they finish (all of them, or until interrupted)."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from done
