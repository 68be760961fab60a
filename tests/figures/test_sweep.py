"""Sweeps: grids, executors, bitwise reproducibility, resumable cache, killed workers."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ntkdyn.figures import ntk_width
from ntkdyn.figures.experiment import point_seed
from ntkdyn.figures.storage import load_result
from ntkdyn.figures.sweep import SerialExecutor, expand_grid, open_executor, run_cached

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
        time.sleep(float(os.environ["JOB_SLEEP"]))
        return {"value": np.array([point["i"] ** 2.0])}

    if __name__ == "__main__":
        from ntkdyn.figures.sweep import open_executor, run_cached
        points = [{"i": i} for i in range(int(sys.argv[2]))]
        with open_executor("process", workers=2) as (executor, kind):
            run_cached(slow, points, sys.argv[1], "job", executor, kind)
        print("done")
""")


def _start_job(tmp_path, sleep, count):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), JOB_SLEEP=str(sleep))
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), str(count)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


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


def _check_cache_and_resume(tmp_path, count):
    cache = tmp_path / "cache"
    saved = sorted(cache.glob("job-run-*.npz"))
    assert not list(cache.glob("*.tmp")), "a temporary file was left behind"
    values = sorted(float(load_result(path)["value"][0]) for path in saved)
    assert set(values) <= {float(i * i) for i in range(count)}, "corrupt or wrong cache entry"
    stamps = {p: p.stat().st_mtime_ns for p in saved}
    rerun = _start_job(tmp_path, 0.0, count)
    assert rerun.wait(timeout=120) == 0, rerun.stderr.read()
    assert len(list(cache.glob("job-run-*.npz"))) == count
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()), \
        "a finished run was recomputed"
    return len(saved)


@pytest.mark.parametrize("how", ["sigkill-worker", "sigint-sweep"])
def test_killing_a_sweep_loses_no_finished_result(tmp_path, how):
    count = 24
    job = _start_job(tmp_path, 0.25, count)
    try:
        _wait_for_results(tmp_path / "cache", 3)
        if how == "sigkill-worker":
            workers = [c for c in _children(job.pid)]
            assert workers, "no worker processes found"
            os.kill(workers[-1], signal.SIGKILL)
        else:
            job.send_signal(signal.SIGINT)
        assert job.wait(timeout=60) != 0
    finally:
        if job.poll() is None:
            job.kill()
    kept = _check_cache_and_resume(tmp_path, count)
    assert 3 <= kept < count
