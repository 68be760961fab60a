"""No pool worker outlives its parent: a real ``ntkdyn run ... --workers 2`` is killed with
SIGTERM, SIGKILL or SIGINT (to the parent alone, and to its whole process group as a terminal's
Ctrl-C) while its workers compute, and every process it started (the two workers and
multiprocessing's resource tracker) must be gone within a few seconds. Exit statuses: 143
(SIGTERM), 130 (SIGINT), -9 (SIGKILL). Processes are read from /proc (Linux)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="reads the process table from /proc (Linux)")

# ntk-width runs of about half a second each on one core (depth 3, width 2^11), 24 of them
SLOW = ["--set", "depths=[3]", "--set", "log2_widths=[11]", "--set", "seeds=24",
        "--set", "n=32", "--set", "d=8"]
SURVIVAL_LIMIT_S = 5.0


def _stat(pid: int) -> tuple[int, str, int] | None:
    """``(parent pid, state, start time)`` of a process, ``None`` when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), fields[0], int(fields[19])


def _children(pid: int) -> dict[int, int]:
    """``{child pid: start time}`` of the processes whose parent is ``pid``."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == pid:
                out[int(entry.name)] = stat[2]
    return out


def _alive(pid: int, started: int) -> bool:
    """The same process (same start time) still exists and is not a zombie."""
    stat = _stat(pid)
    return stat is not None and stat[2] == started and stat[1] not in ("Z", "X")


def _restore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background pytest passes SIGINT ignored


def _start(out: Path, group: bool = False) -> subprocess.Popen:
    """``ntkdyn run`` on the slow configuration; ``group``: in a process group of its own (as a
    terminal runs a foreground job, whose Ctrl-C reaches every process of the group)."""
    command = [sys.executable, "-m", "ntkdyn.figures.cli", "run", "ntk-width", "--config",
               "smoke", *SLOW, "--workers", "2", "--scheduler", "process", "--out", str(out),
               "--no-cache", "--quiet"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_restore_sigint, start_new_session=group)


def _computing(parent: subprocess.Popen, out: Path) -> dict[int, int] | None:
    """The parent's children once a first run is cached (so both workers have started and
    compute), else ``None``."""
    assert parent.poll() is None, parent.stderr.read()
    if list((out / ".cache").glob("ntk-width-run-*.npz")):
        children = _children(parent.pid)
        if len(children) >= 3:  # two workers and the resource tracker
            return children
    return None


#: ``name: (signal, sent to the whole process group, expected exit status)``; "ctrl-c" is what
#: a terminal does: SIGINT to the parent, its workers and the resource tracker at once.
#: SIGINT to the parent alone is tested in test_sweep.py (the runs in flight are kept).
CASES = {"SIGKILL": (signal.SIGKILL, False, -signal.SIGKILL),
         "SIGTERM": (signal.SIGTERM, False, 128 + signal.SIGTERM),
         "ctrl-c": (signal.SIGINT, True, 130)}


def test_no_process_outlives_a_killed_parent(tmp_path):
    """The three parents start at once (their start-up is most of the time); each is
    signalled as soon as its workers compute, and its exit time is taken from one loop."""
    parents = {name: _start(tmp_path / name, group) for name, (_, group, _) in CASES.items()}
    children, sent, exited, gone = {}, {}, {}, {}
    try:
        deadline = time.time() + 180
        while len(gone) < len(parents) and time.time() < deadline:
            now = time.time()
            for name, parent in parents.items():
                if name not in sent:
                    found = _computing(parent, tmp_path / name)
                    if found is not None:
                        signum, group, _ = CASES[name]
                        children[name], sent[name] = found, now
                        if group:
                            os.killpg(parent.pid, signum)
                        else:
                            parent.send_signal(signum)
                elif name not in exited:
                    if parent.poll() is not None:
                        exited[name] = now
                elif name not in gone:
                    alive = [p for p, t in children[name].items() if _alive(p, t)]
                    if not alive or now > exited[name] + SURVIVAL_LIMIT_S:
                        gone[name] = (now, alive)
            time.sleep(0.01)
        assert set(sent) == set(parents), f"not computing within 180 s: {set(parents) - set(sent)}"
        for name, (signum, _, status) in CASES.items():
            _check_exit(parents[name], tmp_path / name, name, signum, status, children[name],
                        sent[name], exited.get(name), gone.get(name))
    finally:
        for parent in parents.values():
            if parent.poll() is None:
                parent.kill()
                parent.wait()


def _check_exit(parent, out, name, signum, status, children, sent, exited, gone):
    """``exited``: when the parent had exited; ``gone``: ``(time, children still alive)`` when
    none of its children was alive any more, or ``SURVIVAL_LIMIT_S`` after ``exited``."""
    assert exited is not None and gone is not None, f"{name}: the parent did not exit"
    assert parent.wait() == status, parent.stderr.read()
    gone, survivors = gone
    for pid in survivors:  # do not leave them behind
        if _alive(pid, children[pid]):
            os.kill(pid, signal.SIGKILL)
    assert not survivors, f"{name}: {len(survivors)} of {len(children)} processes outlived " \
                          "the parent"
    assert not list(out.rglob("*.tmp")), f"{name}: a temporary file was left behind"
    err = parent.stderr.read()
    assert "Traceback" not in err, err
    print(f"{name}: parent exited {exited - sent:.3f} s after the signal (status {status}); its "
          f"{len(children)} children were all gone {gone - exited:.3f} s after it")
    if signum == signal.SIGINT:  # the runs in flight were finished and cached, then it exited
        last = max(p.stat().st_mtime for p in (out / ".cache").glob("ntk-width-run-*.npz"))
        print(f"{name}: exited {exited - last:.3f} s after the last run in flight was cached")
        assert exited - last < 1.0
