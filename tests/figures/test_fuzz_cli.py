"""Fuzzing ``ntkdyn run NAME --config smoke --set KEY=VALUE`` for every experiment (hypothesis).

Every outcome is one of: accepted (the run starts; exit 0), exit 2 with one line on stderr, or
exit 1 with a failure message; never a traceback, never a hang.

The default test draws values mostly from the invalid side and stops an accepted run where it
would start computing (the configuration is then checked: types, memory, the sweep's points),
so no heavy run starts; each case has a time limit. ``test_fuzz_set_values_real_runs`` (marked
slow) runs the accepted cases for real, each ``ntkdyn`` in a subprocess with a timeout, with
valid values drawn from below the smoke defaults so that a run stays a smoke run.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import tempfile

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ntkdyn.figures import cli, runner  # noqa: E402
from ntkdyn.figures.registry import experiments  # noqa: E402

REGISTRY = experiments()
#: Seconds one in-process case may take before it counts as a hang.
CASE_LIMIT_S = 20
#: Seconds one real run (a subprocess) may take.
RUN_LIMIT_S = 300
#: Examples per experiment (``NTKDYN_FUZZ_EXAMPLES`` raises it for a longer search).
EXAMPLES = int(os.environ.get("NTKDYN_FUZZ_EXAMPLES", "12"))


class _Accepted(BaseException):
    """Raised where the runner would start computing: the configuration was accepted."""


class _Hang(BaseException):
    """The time limit of one case ran out."""


# ------------------------------------------------------------------------ the values drawn
_SPECIAL = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "[]", "[[]]", "{}", "null",
            "true", "false", '""', "[null]", "[1e400]", "[-1]", "[0]", "[0.5]", "2.5", "-0",
            "1e18", str(2**63), str(10**30), "[" * 50, "]", "1,2", "=", "", " ", "0x10",
            '"1"', "[1, [2]]", '["relu", 3]', "9" * 5000]


def _json(value) -> str:
    return json.dumps(value, allow_nan=True)


_scalars = st.one_of(
    st.integers(-(10**30), 0), st.integers(10**15, 10**400),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not float(x).is_integer()
                                                          if math.isfinite(x) else True),
    st.booleans(), st.none(), st.text(max_size=12))
_bad_json = st.one_of(
    _scalars.map(_json),
    st.lists(_scalars, max_size=4).map(_json),
    st.lists(st.lists(_scalars, max_size=3), max_size=3).map(_json),
    st.dictionaries(st.text(max_size=4), _scalars, max_size=2).map(_json),
)
_raw_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                    max_size=30)


def _mutations(default):
    """Values near the default: the default itself, its type's edge cases and its neighbours."""
    out = [default]
    if isinstance(default, bool):
        out += [not default, int(default)]
    elif isinstance(default, int):
        out += [default + 1, max(0, default - 1), -default, default * 1.5, 0, 10**9]
    elif isinstance(default, float):
        out += [default * 2, -default, 0.0, 1e300]
    elif isinstance(default, list):
        out += [default[:1], default[::-1], default + default[-1:], [default], []]
    elif isinstance(default, str):
        out += [default.upper(), default + "x", [default]]
    elif default is None:
        out += ["odd-even", [0, 1], [0, 0], [10**6]]
    return [_json(v) for v in out]


def _cases(name: str):
    smoke = REGISTRY[name].config("smoke")
    keys = sorted(smoke)
    value = st.one_of(
        st.sampled_from(_SPECIAL), _bad_json, _raw_text,
        st.sampled_from(keys).flatmap(lambda k: st.sampled_from(_mutations(smoke[k]))))
    pair = st.one_of(
        st.tuples(st.sampled_from(keys), value).map(lambda kv: f"{kv[0]}={kv[1]}"),
        st.tuples(st.text(max_size=8), value).map(lambda kv: f"{kv[0]}={kv[1]}"),  # unknown
        _raw_text)  # perhaps no '=' at all
    return st.lists(pair, min_size=1, max_size=3)


# ---------------------------------------------------------------------------- the checks
def _check_outcome(code, err: str, pairs):
    where = f"--set {pairs!r}"
    assert "Traceback" not in err, f"{where}: traceback\n{err[-3000:]}"
    if code == 0:
        return
    assert err.startswith("ntkdyn: "), f"{where}: exit {code} without a message: {err!r}"
    if code == 2:
        assert err.count("\n") == 1, f"{where}: exit 2 with more than one line:\n{err}"
        return
    assert code == 1, f"{where}: exit status {code}:\n{err}"
    first = err.splitlines()[0]
    assert first.startswith("ntkdyn: failed:") or "check(s) failed" in first, \
        f"{where}: exit 1 without a failure message:\n{err}"


def _stop_before_computing(experiment, config, *args, **kwargs):
    if experiment.is_sweep:
        experiment.runs(config)  # the sweep's own checks of its points
    raise _Accepted


def _on_alarm(signum, frame):
    raise _Hang


def _run_in_process(name, pairs, out):
    argv = ["run", name, "--config", "smoke", "--out", out, "--scheduler", "serial",
            "--quiet", "--no-cache"]
    for pair in pairs:
        argv += ["--set", pair]
    err = io.StringIO()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_LIMIT_S)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli.main(argv)
            except _Accepted:
                code = 0
            except SystemExit as exc:  # argparse: a usage error, exit 2
                code = exc.code
    except _Hang:
        pytest.fail(f"{name} --set {pairs!r}: no outcome within {CASE_LIMIT_S} s (a hang)")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    text = err.getvalue()
    if code == 2 and text.startswith("usage:"):  # argparse's own usage error
        text = text.splitlines()[-1] + "\n"
        assert text.startswith("ntkdyn run: error:"), text
        return
    _check_outcome(code, text, pairs)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_fuzz_set_values(name, monkeypatch):
    monkeypatch.setattr(runner, "compute_result", _stop_before_computing)
    out = tempfile.mkdtemp(prefix="ntkdyn-fuzz-")

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(pairs=_cases(name))
    def check(pairs):
        _run_in_process(name, pairs, out)

    check()


# --------------------------------------------------------------------- real runs (slow)
def _below(default):
    """Valid-looking values no larger than the smoke default (a run stays a smoke run)."""
    if isinstance(default, bool):
        return st.just(_json(default))
    if isinstance(default, int):
        return st.integers(max(0, default // 4), default).map(_json)
    if isinstance(default, float):
        return st.floats(default / 4, default).map(_json)
    if isinstance(default, list) and default:
        return st.lists(st.sampled_from(default), min_size=1, max_size=len(default)).map(_json)
    return st.just(_json(default))


def _real_cases(name: str):
    smoke = REGISTRY[name].config("smoke")
    keys = sorted(smoke)
    pair = st.sampled_from(keys).flatmap(
        lambda k: st.one_of(_below(smoke[k]), st.sampled_from(_SPECIAL)).map(
            lambda v: f"{k}={v}"))
    return st.lists(pair, min_size=1, max_size=2)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REGISTRY))
def test_fuzz_set_values_real_runs(name):
    out = tempfile.mkdtemp(prefix="ntkdyn-fuzz-real-")

    @settings(max_examples=max(2, EXAMPLES // 3), deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(pairs=_real_cases(name))
    def check(pairs):
        argv = [sys.executable, "-m", "ntkdyn", "run", name, "--config", "smoke", "--out", out,
                "--scheduler", "serial", "--quiet", "--no-cache"]
        for pair in pairs:
            argv += ["--set", pair]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_LIMIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} --set {pairs!r}: no outcome within {RUN_LIMIT_S} s (a hang)")
        _check_outcome(done.returncode, done.stderr, pairs)

    check()
