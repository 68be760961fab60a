"""Tests of numerics.memory: estimates from the widths alone, refusal before allocating."""
from __future__ import annotations

import pickle

import pytest

from ntkdyn.numerics.memory import MemoryBudgetError, estimate_bytes, require_memory


def test_memory_is_estimated_before_allocating():
    # 10^11 units x 10 inputs: 8 TB of weights, refused from the widths alone.
    need = estimate_bytes([10, 10**11, 1])
    assert need == 8 * (10**12 + 10**11)
    with pytest.raises(MemoryBudgetError, match="needs about") as info:
        require_memory(need, "a two-layer network of width 1e11")
    assert isinstance(info.value, ValueError) and isinstance(info.value, MemoryError)
    # It survives pickling (process pools send it back from their workers).
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) and again.needed == need
    assert require_memory(1000, "tiny", available=10**6) == 1000
    with pytest.raises(MemoryBudgetError):
        require_memory(10**6, "too big", available=10**6)
    # Lanczos needs ncv + 8 parameter vectors: refused for a net whose weights alone would fit.
    assert estimate_bytes([10, 1000, 1], "lanczos") > 28 * 8 * 11000
    with pytest.raises(ValueError, match="method"):
        estimate_bytes([2, 3], "magic")


# ------------------------------------------------------------------- the budget's sources
def test_the_budget_is_the_least_of_meminfo_rlimit_and_cgroup(monkeypatch):
    from ntkdyn.numerics import memory

    monkeypatch.setattr(memory, "_meminfo_available", lambda: 8 * 2**30)
    monkeypatch.setattr(memory, "_address_space_left", lambda: None)
    monkeypatch.setattr(memory, "_cgroup_left", lambda: 2 * 2**30)
    assert memory.memory_limits() == {"MemAvailable": 8 * 2**30, "cgroup": 2 * 2**30}
    assert memory.available_bytes() == memory.available_memory() == 2 * 2**30
    with pytest.raises(MemoryBudgetError, match=r"1\.6 GiB .*set by cgroup\); reduce n") as info:
        require_memory(2 * 2**30, "a kernel", hint="reduce n")
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) and again.source == "cgroup"
    monkeypatch.setattr(memory, "_address_space_left", lambda: 2**20)
    assert memory.available_bytes() == 2**20
    monkeypatch.setattr(memory, "_meminfo_available", lambda: None)
    monkeypatch.setattr(memory, "_address_space_left", lambda: None)
    monkeypatch.setattr(memory, "_cgroup_left", lambda: None)
    assert memory.available_bytes() == 2**62  # nothing known: no limit
    # absurd and non-finite requests are refused, never overflow
    with pytest.raises(MemoryBudgetError):
        require_memory(10**400, "absurd")
    with pytest.raises(MemoryBudgetError):
        require_memory(float("inf"), "infinite")


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limit_less_working_set_least_over_ancestors(tmp_path):
    from ntkdyn.numerics.memory import _cgroup_left

    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/jobs/one\n")
    root = tmp_path / "cg"
    _write(root / "jobs" / "one" / "memory.max", "1000000\n")
    _write(root / "jobs" / "one" / "memory.current", "300000\n")
    _write(root / "jobs" / "one" / "memory.stat", "anon 150000\ninactive_file 100000\n")
    assert _cgroup_left(root, str(proc)) == 1000000 - (300000 - 100000)
    _write(root / "jobs" / "memory.max", "500000\n")  # a tighter parent
    _write(root / "jobs" / "memory.current", "100000\n")
    assert _cgroup_left(root, str(proc)) == 400000
    _write(root / "jobs" / "memory.max", "max\n")
    _write(root / "jobs" / "one" / "memory.max", "max\n")
    assert _cgroup_left(root, str(proc)) is None


def test_cgroup_v1_limit_and_unlimited(tmp_path):
    from ntkdyn.numerics.memory import _cgroup_left

    proc = tmp_path / "proc_cgroup"
    proc.write_text("5:cpu,cpuacct:/x\n4:memory:/box\n")
    group = tmp_path / "cg" / "memory" / "box"
    _write(group / "memory.limit_in_bytes", "4000000\n")
    _write(group / "memory.usage_in_bytes", "1000000\n")
    _write(group / "memory.stat", "cache 10\ntotal_inactive_file 250000\n")
    assert _cgroup_left(tmp_path / "cg", str(proc)) == 4000000 - 750000
    _write(group / "memory.limit_in_bytes", "9223372036854771712\n")  # v1's "unlimited"
    assert _cgroup_left(tmp_path / "cg", str(proc)) is None
    assert _cgroup_left(tmp_path / "nothing", str(tmp_path / "no_such_file")) is None


_RLIMIT_CHILD = r"""
import resource
import numpy as np
from ntkdyn.numerics import memory
vm = memory._virtual_size()
resource.setrlimit(resource.RLIMIT_AS, (vm + 400 * 2**20, resource.RLIM_INFINITY))
left = memory.memory_limits()["RLIMIT_AS"]
assert 300 * 2**20 < left <= 400 * 2**20, left
assert memory.available_bytes() == left
try:
    memory.require_memory(2**30, "one GiB")
except memory.MemoryBudgetError as exc:
    assert "set by RLIMIT_AS" in str(exc), exc
else:
    raise SystemExit("not refused")
try:
    np.ones(2**30 // 8)
except MemoryError:
    print("refused; the allocation itself fails too")
"""


def test_rlimit_as_counts_in_the_budget():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _RLIMIT_CHILD], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused; the allocation itself fails too" in out.stdout


# ------------------------------------------------------------------ estimates vs measured
def _traced_peak(fn):
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("widths, n, n2, heads", [
    ([10, 1024, 1024, 1], 100, None, "sum"),
    ([10, 4096, 1], 300, None, "sum"),
    ([10, 512, 512, 3], 80, 40, "each"),
])
def test_empirical_ntk_estimate_within_a_factor_two_of_tracemalloc(widths, n, n2, heads):
    import numpy as np

    from ntkdyn.numerics.kernels import empirical_ntk
    from ntkdyn.numerics.memory import empirical_ntk_bytes
    from ntkdyn.numerics.networks import MLP

    net = MLP(widths, activation="relu")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, widths[0]))
    X2 = None if n2 is None else rng.standard_normal((n2, widths[0]))
    peak = _traced_peak(lambda: empirical_ntk(net, net.init(seed=1), X, X2, heads=heads))
    estimate = empirical_ntk_bytes(widths, n, n2, heads)
    assert 0.5 <= estimate / peak <= 2.0, (estimate, peak)


def test_size_helpers():
    from ntkdyn.numerics.memory import format_bytes, gram_bytes, network_bytes

    assert gram_bytes(10) == 800 and gram_bytes(10, 5, count=3) == 1200
    P, U = 4 * 3 + 3 * 2, 4 + 3 + 2
    assert network_bytes([4, 3, 2], 7) == 8 * (6 * (P + U) + 6 * 7 * U)
    assert network_bytes([4, 3, 2], 0, param_copies=1) == 8 * (P + U)
    with pytest.raises(ValueError, match="n must be >= 0"):
        network_bytes([4, 3, 2], -1)
    with pytest.raises(ValueError, match=r"widths\[1\]"):
        network_bytes([4, 0, 2], 1)
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(10**30) == "1e+30 B"
