"""Sweeps: grids, executors, bitwise reproducibility, resumable cache, killed workers, Ctrl-C,
failed runs, scheduler addresses that are not Dask schedulers (real sockets on 127.0.0.1)."""
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from ntkdyn.figures import cli, ntk_width
from ntkdyn.figures.experiment import point_seed
from ntkdyn.figures.storage import load_result
from ntkdyn.figures.sweep import (DASK_CONNECT_TIMEOUT_S, SerialExecutor, Terminated,
                                  check_dask_scheduler, check_executor_args, connect_timeout,
                                  expand_grid, open_executor, run_cached)

TINY = dict(ntk_width.QUICK, log2_widths=[4, 5], depths=[2, 3], seeds=2, n=6, d=3)


def _seeds(points, config=TINY):
    return [point_seed(config, p) for p in points]


def test_expand_grid_order_and_errors():
    assert expand_grid({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    with pytest.raises(ValueError, match=r"grid\['a'\] must be a non-empty list"):
        expand_grid({"a": []})


def test_serial_executor_propagates_errors():
    future = SerialExecutor().submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        future.result()


def test_pool_results_are_bitwise_identical_to_one_process(tmp_path):
    points = ntk_width.runs(TINY)
    seeds = _seeds(points)
    serial = [ntk_width.run(p, s) for p, s in zip(points, seeds)]
    with open_executor("process", workers=2) as (executor, kind):
        pooled = run_cached(ntk_width.run, points, tmp_path, "ntk-width", executor, kind,
                            seeds=seeds)
    assert kind == "process"
    for a, b in zip(serial, pooled):
        assert np.array_equal(a["K"], b["K"]) and np.array_equal(a["X"], b["X"])
    # every run is cached with its point and executor; a rerun computes nothing
    assert len(list(tmp_path.glob("ntk-width-run-*.npz"))) == len(points)
    again = run_cached(_fail_if_called, points, tmp_path, "ntk-width", SerialExecutor(),
                       seeds=seeds)
    assert all(np.array_equal(a["K"], b["K"]) for a, b in zip(again, pooled))
    # another configuration seed is another cache entry
    other = _seeds(points, dict(TINY, seed=1))
    with pytest.raises(AssertionError, match="recomputed"):
        run_cached(_fail_if_called, points, tmp_path, "ntk-width", SerialExecutor(), seeds=other)


def _fail_if_called(point, seed=None):
    raise AssertionError("a cached run was recomputed")


def _must_not_compute(*args, **kwargs):
    raise AssertionError("computed although the input was refused")


def test_dask_local_cluster_gives_the_same_results(tmp_path):
    pytest.importorskip("distributed")
    points = ntk_width.runs(dict(TINY, depths=[2]))
    seeds = _seeds(points)
    with open_executor("local", workers=2) as (executor, kind):
        results = run_cached(ntk_width.run, points, tmp_path, "ntk-width", executor, kind,
                             seeds=seeds)
    assert kind == "dask"
    for point, seed, result in zip(points, seeds, results):
        assert np.array_equal(result["K"], ntk_width.run(point, seed)["K"])


def test_unreachable_scheduler_and_unknown_names_are_clear_errors():
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with open_executor("tcp://127.0.0.1:9"):
            pass
    with pytest.raises(ValueError, match="scheduler must be"):
        with open_executor("gpu-farm"):
            pass


JOB = textwrap.dedent("""
    import os, sys, time
    import numpy as np

    def slow(point):
        marks = os.environ["JOB_MARKS"]
        with open(os.path.join(marks, f"start-{point['i']}"), "w") as fh:
            fh.write(repr(time.time()))
        with open(os.path.join(marks, f"threads-{point['i']}"), "w") as fh:
            fh.write(os.environ.get("OPENBLAS_NUM_THREADS", "unset"))
        time.sleep(float(os.environ["JOB_SLEEP"]))
        with open(os.path.join(marks, f"end-{point['i']}"), "w") as fh:
            fh.write(repr(time.time()))
        return {"value": np.array([point["i"] ** 2.0])}

    if __name__ == "__main__":
        from ntkdyn.figures import storage
        from ntkdyn.figures.sweep import open_executor, run_cached
        # the resume is under test, not the code hash: keep the keys fixed while the source
        # tree changes under a running test suite
        storage.code_fingerprint = lambda: "fixed-for-this-test"
        points = [{"i": i} for i in range(int(sys.argv[2]))]
        try:
            with open_executor("process", workers=2) as (executor, kind):
                run_cached(slow, points, sys.argv[1], "job", executor, kind)
        except KeyboardInterrupt:
            print(repr(time.time()), flush=True)  # when the sweep gave up
            sys.exit(130)
        print("done")
""")


def restore_sigint():
    """In the child before exec: a shell without job control starts background jobs (and so
    pytest run with `&`, and its children) with SIGINT ignored; Python then keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_job(tmp_path, sleep, count, marks="marks"):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    (tmp_path / marks).mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), JOB_SLEEP=str(sleep),
               JOB_MARKS=str(tmp_path / marks))
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), str(count)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=restore_sigint)


def _wait_for_results(cache: Path, count: int, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(list(cache.glob("job-run-*.npz"))) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} results appeared in {timeout} s")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (reparented orphans may not be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _marks(folder: Path, kind: str) -> dict[int, float]:
    return {int(p.name.split("-")[1]): float(p.read_text()) for p in folder.glob(f"{kind}-*")}


def _cached_values(cache: Path) -> set[int]:
    return {int(round(float(load_result(p)["value"][0]) ** 0.5))
            for p in cache.glob("job-run-*.npz")}


def _check_cache_and_resume(tmp_path, count):
    cache = tmp_path / "cache"
    saved = sorted(cache.glob("job-run-*.npz"))
    assert not list(cache.glob("*.tmp")), "a temporary file was left behind"
    values = sorted(float(load_result(path)["value"][0]) for path in saved)
    assert set(values) <= {float(i * i) for i in range(count)}, "corrupt or wrong cache entry"
    stamps = {p: p.stat().st_mtime_ns for p in saved}
    rerun = _start_job(tmp_path, 0.0, count, marks="rerun-marks")
    assert rerun.wait(timeout=120) == 0, rerun.stderr.read()
    assert len(list(cache.glob("job-run-*.npz"))) == count
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()), \
        "a finished run was recomputed"
    return len(saved)


def test_killing_a_worker_loses_no_finished_result(tmp_path):
    count = 24
    job = _start_job(tmp_path, 0.25, count)
    try:
        _wait_for_results(tmp_path / "cache", 3)
        workers = [c for c in _children(job.pid)]
        assert workers, "no worker processes found"
        os.kill(workers[-1], signal.SIGKILL)
        assert job.wait(timeout=60) != 0
    finally:
        if job.poll() is None:
            job.kill()
    kept = _check_cache_and_resume(tmp_path, count)
    assert 3 <= kept < count


def test_ctrl_c_cancels_queued_runs_and_keeps_every_run_that_finishes(tmp_path):
    """SIGINT to the parent only (as `kill -INT`): no run starts after it but those already
    handed out (at most one per worker), each of those finishes and is cached, the sweep gives
    up within a second of the last one, exit status 130."""
    count, sleep = 24, 0.4
    job = _start_job(tmp_path, sleep, count)
    try:
        _wait_for_results(tmp_path / "cache", 3)
        workers = _children(job.pid)
        interrupted = time.time()
        job.send_signal(signal.SIGINT)
        assert job.wait(timeout=60) == 130, job.stderr.read()
        exited = time.time()
    finally:
        if job.poll() is None:
            job.kill()
    deadline = time.time() + 5.0
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.05)
    assert len(workers) >= 2 and not any(_alive(pid) for pid in workers), \
        "a worker (or the resource tracker) outlived its parent"
    gave_up = float(job.stdout.read().split()[0])
    started, ended = _marks(tmp_path / "marks", "start"), _marks(tmp_path / "marks", "end")
    assert set(started) == set(ended), "a run handed out before Ctrl-C did not finish"
    threads = {p.read_text() for p in (tmp_path / "marks").glob("threads-*")}
    assert threads == {str(max(1, (os.cpu_count() or 1) // 2))}, "BLAS threads not limited"
    assert _cached_values(tmp_path / "cache") == set(ended), "a finished run was not cached"
    done_before = sum(t < interrupted for t in ended.values())
    assert len(started) <= done_before + 2, "runs were started after Ctrl-C"
    last = max(ended.values())
    print(f"Ctrl-C: {len(started) - done_before} run(s) in flight; the sweep gave up "
          f"{gave_up - last:.3f} s after the last one finished, the process exited "
          f"{exited - last:.3f} s after it")
    assert gave_up - last < 1.0
    kept = _check_cache_and_resume(tmp_path, count)
    assert 3 <= kept < count


class _Threads(ThreadPoolExecutor):
    """A thread pool that run_cached hands at most ``workers`` runs at a time."""
    workers = 2


def _interruptible(point):
    """Run 1 sends SIGINT to this process (the main thread gets KeyboardInterrupt at once)."""
    if point["i"] == 1:
        os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.3)
    return {"value": np.array([float(point["i"])])}


def _failing(point):
    if point["i"] == 0:
        raise ValueError("run 0 fails")
    time.sleep(0.3)
    return {"value": np.array([float(point["i"])])}


def test_ctrl_c_in_process_keeps_the_runs_in_flight(tmp_path, monkeypatch):
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        points = [{"i": i} for i in range(8)]
        with _Threads(2) as pool, pytest.raises(KeyboardInterrupt):
            run_cached(_interruptible, points, tmp_path, "job", pool)
    finally:
        signal.signal(signal.SIGINT, previous)
    values = sorted(float(load_result(p)["value"][0]) for p in tmp_path.glob("job-run-*.npz"))
    assert values == [0.0, 1.0]


def test_a_failed_run_stops_the_sweep_and_keeps_the_runs_in_flight(tmp_path):
    points = [{"i": i} for i in range(8)]
    with _Threads(2) as pool, pytest.raises(ValueError, match="run 0 fails"):
        run_cached(_failing, points, tmp_path, "job", pool)
    values = sorted(float(load_result(p)["value"][0]) for p in tmp_path.glob("job-run-*.npz"))
    assert values == [1.0]


def test_serial_executor_lets_interrupts_through():
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        SerialExecutor().submit(interrupted)
    with pytest.raises(Terminated):
        SerialExecutor().submit(lambda: (_ for _ in ()).throw(Terminated()))


# ------------------------------------------------------------ scheduler addresses and options

@contextmanager
def _server(kind: str, life: float = 15.0):
    """A server on 127.0.0.1 that stops by itself after ``life`` s (or at the end of the block):
    ``silent`` accepts and says nothing, ``banner`` greets like SSH, ``http`` is an HTTP
    server. Yields its port."""
    if kind == "http":
        class Quiet(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        timer = threading.Timer(life, server.shutdown)
        timer.start()
        try:
            yield server.server_address[1]
        finally:
            timer.cancel()
            server.shutdown()
            server.server_close()
        return
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    port, stop, accepted = listener.getsockname()[1], [time.time() + life], []

    def serve():
        while time.time() < stop[0]:
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)
            if kind == "banner":
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop[0] = 0
        thread.join(2)
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.mark.parametrize("kind,message", [
    ("silent", "no Dask scheduler answered at tcp://127.0.0.1:{port} within 1 s"),
    ("http", "tcp://127.0.0.1:{port} is an HTTP server, not a Dask scheduler"),
    ("banner", "tcp://127.0.0.1:{port} is not a Dask scheduler (it answered b'SSH-2.0-')"),
])
def test_an_address_that_is_not_a_dask_scheduler_fails_within_the_timeout(kind, message):
    pytest.importorskip("distributed")
    with _server(kind) as port:
        start = time.perf_counter()
        with pytest.raises(ValueError) as info:
            with open_executor(f"tcp://127.0.0.1:{port}", timeout=1.0):
                pass
        elapsed = time.perf_counter() - start
    assert message.format(port=port) in str(info.value) and "\n" not in str(info.value)
    print(f"{kind}: refused after {elapsed:.3f} s (timeout 1 s)")
    assert elapsed < 1.5


def test_the_command_line_names_a_silent_listener_in_one_line(capsys, tmp_path):
    pytest.importorskip("distributed")
    with _server("silent") as port:
        start = time.perf_counter()
        status = cli.main(["run", "ntk-width", "--config", "smoke", "--out", str(tmp_path),
                           "--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "1"])
        elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"no Dask scheduler answered at tcp://127.0.0.1:{port} within 1 s" in err
    assert not list(tmp_path.glob("*.json"))
    print(f"silent listener: exit 2 after {elapsed:.3f} s (--connect-timeout 1)")
    assert elapsed < 10


def test_a_real_dask_scheduler_passes_the_check(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp", dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        check_dask_scheduler(address, timeout=5.0)
        points = ntk_width.runs(dict(TINY, depths=[2], log2_widths=[4], seeds=2))
        seeds = _seeds(points)
        with open_executor(address, timeout=5.0) as (executor, kind):
            results = run_cached(ntk_width.run, points, tmp_path, "ntk-width", executor, kind,
                                 seeds=seeds)
    assert kind == "dask"
    for point, seed, result in zip(points, seeds, results):
        assert np.array_equal(result["K"], ntk_width.run(point, seed)["K"])


@pytest.mark.parametrize("scheduler,workers,timeout,error,message", [
    ("", None, None, ValueError, "scheduler must be 'serial', 'process', 'local' or a Dask"),
    ("tcp://", None, None, ValueError, "got 'tcp://'"),
    ("tcp://127.0.0.1", None, None, ValueError, "PROTOCOL://HOST:PORT"),
    ("tcp:/127.0.0.1:8786", None, None, ValueError, "got 'tcp:/127.0.0.1:8786'"),
    ("udp://127.0.0.1:8786", None, None, ValueError, "PROTOCOL one of tcp, tls, ws, wss"),
    ("http://127.0.0.1:8787", None, None, ValueError, "http:// is the dashboard's"),
    ("tcp://127.0.0.1:0", None, None, ValueError, "the port must be in 1..65535"),
    ("tcp://127.0.0.1:70000", None, None, ValueError, "the port must be in 1..65535"),
    (3, None, None, TypeError, "scheduler must be a string"),
    ("process", 0, None, ValueError, "workers must be a positive integer, got 0"),
    ("process", -2, None, ValueError, "workers must be a positive integer, got -2"),
    ("serial", True, None, TypeError, "workers must be a positive integer, got True"),
    ("process", 2.5, None, TypeError, "workers must be a positive integer, got 2.5"),
    ("process", None, 0, ValueError, "connect_timeout must be a positive, finite number"),
    ("process", None, float("nan"), ValueError, "connect_timeout must be a positive, finite"),
    ("process", None, float("inf"), ValueError, "connect_timeout must be a positive, finite"),
    ("process", None, "10", TypeError, "connect_timeout must be a number of seconds"),
])
def test_bad_executor_arguments_are_refused_before_any_work(scheduler, workers, timeout, error,
                                                            message):
    with pytest.raises(error, match=re.escape(message)):
        check_executor_args(scheduler, workers, timeout)
    with pytest.raises(error):
        with open_executor(scheduler, workers, timeout):
            raise AssertionError("opened")


def test_executor_defaults():
    assert DASK_CONNECT_TIMEOUT_S == 10.0
    assert check_executor_args(None) == ("process", None, 10.0)
    with connect_timeout(2.5):
        assert check_executor_args("tcp://127.0.0.1:8786", 3) == ("tcp://127.0.0.1:8786", 3, 2.5)
    assert check_executor_args("tls://[::1]:8786", None, 4)[2] == 4.0


@pytest.mark.parametrize("argv,message", [
    (["--workers", "0"], "--workers must be a positive integer, got 0"),
    (["--workers", "-1"], "--workers must be a positive integer, got -1"),
    (["--scheduler", ""], "--scheduler must be 'serial', 'process', 'local' or a Dask address"),
    (["--scheduler", "tcp//127.0.0.1:8786"], "got 'tcp//127.0.0.1:8786'"),
    (["--connect-timeout", "-1"], "--connect-timeout must be a positive, finite number"),
])
def test_bad_executor_options_are_one_line_and_exit_2(argv, message, capsys, tmp_path,
                                                      monkeypatch):
    from ntkdyn.figures import runner
    monkeypatch.setattr(runner, "compute_result", _must_not_compute)
    assert cli.main(["run", "ntk-width", "--config", "smoke", "--out", str(tmp_path / "o"),
                     *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists(), "--out was created for a refused run"


def test_missing_dask_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    for scheduler in ("local", "tcp://127.0.0.1:8786"):
        with pytest.raises(ValueError, match="needs dask.distributed, which is not installed"):
            check_executor_args(scheduler)
    assert cli.main(["run", "ntk-width", "--config", "smoke", "--out", str(tmp_path),
                     "--scheduler", "local"]) == 2
    err = capsys.readouterr().err
    assert "pip install -e '.[dask]'" in err and err.count("\n") == 1
