"""Reliability probe: bad command-line inputs, and how ``ntkdyn`` answers each (issue 17).

Every case runs ``python -m ntkdyn ...`` in a subprocess with a time limit and is classified:

``clear``      the expected answer: exit status 2 and one line on stderr starting with
               ``ntkdyn: error:`` (naming what the case says it must name), or, for a bad
               cache file, exit 0 with a one-line notice on stderr and the entry recomputed;
``vague``      exit 2 but more than one line, or a line that does not name the offending
               option or key;
``traceback``  a Python traceback on stderr;
``hang``       no exit within the time limit (the process group is killed);
``silent``     accepted without a word (exit 0 where the input is wrong, or a bad cache
               file recomputed without a notice);
``other``      any other exit status (e.g. 1).

The cases are the kinds of issue 17's Why section -- ``--set`` values of a wrong type or out of
range on every experiment, sizes that do not fit in memory, unwritable ``--out`` folders, a
``--scheduler`` that is not a Dask scheduler, silently defaulted options, bad cache files -- and
more of each kind (at least 80 in all). Run from the repository root::

    python benchmarks/reliability_probe.py            # every case, two at a time
    python benchmarks/reliability_probe.py --quick    # one ``--set`` case per experiment
    python benchmarks/reliability_probe.py --json probe.json --verbose

It prints one line per case that is not ``clear`` (all with ``--verbose``) and the counts;
the exit status is 1 when any case is a traceback, a hang or silent.
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

CATEGORIES = ("clear", "vague", "traceback", "hang", "silent", "other")


@dataclass
class Case:
    """One probe: the ``ntkdyn`` arguments, what must be named, and what a right answer is."""

    kind: str
    args: list
    mention: str = ""               # a substring the one-line error must contain
    expect: str = "error"           # "error": exit 2 + one line; "recover": exit 0 + a notice
    setup: object = None            # callable(workdir) run before the case
    check: object = None            # callable(workdir) -> bool after a "recover" case
    timeout: float = 90.0
    result: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return " ".join(str(a) for a in self.args)


# ----------------------------------------------------------------------- --set cases
def _bad_values(default):
    """Wrong values for a key whose smoke default is ``default``: (text, what it is)."""
    if isinstance(default, bool):
        return [("2", "an integer for a boolean"), ('"yes"', "a string for a boolean")]
    if isinstance(default, int):
        return [("0" if default >= 1 else "-1", "zero or negative"), ("2.5", "non-integral"),
                ("NaN", "NaN"), ("1e400", "overflow to inf"), ('"3"', "a string")]
    if isinstance(default, float):
        return [("NaN", "NaN"), ("-1" if default > 0 else "Infinity", "out of range"),
                ("Infinity", "infinite"), ("[1.0]", "a list for a number")]
    if isinstance(default, list):
        return [("[]", "an empty list"), ("[-1]", "a negative item"), ('["x"]', "a string item"),
                ("3", "a number for a list")]
    if isinstance(default, str):
        return [("no-such-choice", "an unknown name"), ("3", "a number for a name")]
    return [("[-1]", "a negative item"), ("NaN", "NaN")]


def set_cases(quick: bool) -> list[Case]:
    from ntkdyn.figures.registry import experiments

    cases = []
    for name, experiment in experiments().items():
        smoke = experiment.config("smoke")
        keys = [k for k in smoke if k != "seed"]
        chosen = keys[:1] if quick else keys[:3]
        for i, key in enumerate(chosen):
            values = _bad_values(smoke[key])
            for text, _what in (values[:1] if quick else values[i % 2::2][:2]):
                cases.append(Case("set: wrong type or range",
                                  ["run", name, "--config", "smoke", "--set", f"{key}={text}"],
                                  mention=key))
    # the examples of the issue, literally
    for pair in ("seeds=0", "seeds=-1", "log2_widths=[]", "seeds=2.5", "n=NaN", "d=1e400"):
        cases.append(Case("set: issue examples", ["run", "ntk-width", "--config", "smoke",
                                                  "--set", pair], mention=pair.split("=")[0]))
    # malformed pairs and unknown keys
    for pair, mention in (("seeds", "--set"), ("=3", "--set"), ("sedes=2", "sedes"),
                          ("n=" + "9" * 5000, "--set"), ("n=" + "[" * 20000, "--set")):
        cases.append(Case("set: malformed", ["run", "ntk-width", "--config", "smoke", "--set",
                                             pair], mention=mention))
    return cases


def size_cases() -> list[Case]:
    """Sizes that do not fit: refused before allocating, naming the key to reduce."""
    rows = [("ntk-width", "log2_widths=[30]", "log2_widths"), ("il-sweep", "width=1e9", "width"),
            ("ntk-width", "seeds=1e8", "seeds"), ("hessian-width", "widths=[1e12, 2e12]", "widths"),
            ("toy-kernel-evolution", "P=1000000", "P"), ("kgd-baselines", "n_train=1e9", ""),
            ("nfa-training", "width=1e7", "width"), ("kernel-split", "n_train=1e8", ""),
            ("optimal-feature-evolution", "t_max=1e12", "t_max"),
            ("relu-alignment", "widths=[1e10]", "widths"),
            ("deep-linear-data", "t_final=1e300", "")]
    return [Case("memory: does not fit", ["run", name, "--config", "smoke", "--set", pair],
                 mention=f"reduce {key}" if key else "needs about")
            for name, pair, key in rows]


# ------------------------------------------------------------------------- --out cases
def _read_only(work: Path) -> None:
    folder = work / "read-only"
    folder.mkdir(exist_ok=True)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)


def _regular_file(work: Path) -> None:
    (work / "a-file").write_text("not a folder\n")


def output_cases() -> list[Case]:
    """Unwritable ``--out``; as root (who writes in any read-only folder) a folder under
    ``/proc`` stands for it."""
    base = ["run", "deep-linear-alignment", "--config", "smoke"]
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    read_only = "/proc/ntkdyn-probe" if root else "{work}/read-only"
    return [
        Case("out: read-only folder", base + ["--out", read_only + "/sub"], "--out",
             setup=_read_only),
        Case("out: read-only folder itself", base + ["--out", read_only], "--out",
             setup=_read_only),
        Case("out: a regular file", base + ["--out", "{work}/a-file"], "--out",
             setup=_regular_file),
        Case("out: below a regular file", base + ["--out", "{work}/a-file/sub"], "--out",
             setup=_regular_file),
        Case("out: a device", base + ["--out", "/dev/null"], "--out"),
        Case("out: all, read-only", ["all", "--config", "smoke", "--out", read_only], "--out",
             setup=_read_only),
        Case("report: no such folder", ["report", "--out", "{work}/no-such-folder"], "--out"),
    ]


# ----------------------------------------------------------------------- scheduler cases
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request log on the probe's stderr
        pass


class _Listeners:
    """A TCP listener that never answers and an HTTP server, on free local ports."""

    def __enter__(self):
        self.silent = socket.socket()
        self.silent.bind(("127.0.0.1", 0))
        self.silent.listen(16)
        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.http.shutdown()
        self.silent.close()

    @property
    def silent_port(self) -> int:
        return self.silent.getsockname()[1]

    @property
    def http_port(self) -> int:
        return self.http.server_address[1]


def scheduler_cases(listeners: _Listeners) -> list[Case]:
    base = ["run", "ntk-width", "--config", "smoke"]
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    silent = f"tcp://127.0.0.1:{listeners.silent_port}"
    web = f"tcp://127.0.0.1:{listeners.http_port}"
    return [
        Case("scheduler: silent listener", base + ["--scheduler", silent], silent, timeout=60),
        Case("scheduler: an HTTP server", base + ["--scheduler", web], web, timeout=60),
        Case("scheduler: nothing listening", base + ["--scheduler", f"tcp://127.0.0.1:{closed}"],
             f"tcp://127.0.0.1:{closed}", timeout=60),
        Case("scheduler: empty", base + ["--scheduler", ""], "--scheduler"),
        Case("scheduler: unknown", base + ["--scheduler", "threads"], "--scheduler"),
        Case("scheduler: wrong protocol", base + ["--scheduler", "http://127.0.0.1:1"],
             "--scheduler"),
        Case("workers: zero", base + ["--workers", "0"], "--workers"),
        Case("workers: negative", base + ["--workers", "-2"], "--workers"),
        Case("workers: not a number", base + ["--workers", "two"], "--workers"),
    ]


# --------------------------------------------------------------------------- cache cases
_CACHED = ["run", "deep-linear-alignment", "--config", "smoke", "--scheduler", "serial",
           "--out", "{work}/cached"]


def _cache_file(work: Path) -> Path:
    found = [p for p in (work / "cached" / ".cache").glob("deep-linear-alignment-*.npz")
             if "-run-" not in p.name]
    return found[0]


def _seed_cache(work: Path, damage) -> None:
    out = work / "cached"
    if not any((out / ".cache").glob("deep-linear-alignment-*.npz")):
        subprocess.run([sys.executable, "-m", "ntkdyn", *[a.format(work=work) for a in _CACHED],
                        "--quiet"], check=True, capture_output=True, timeout=300)
    damage(_cache_file(work))


def _wrong_keys(path: Path) -> None:
    import numpy as np
    with open(path, "wb") as fh:
        np.savez(fh, something_else=np.arange(3))


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _a_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside").write_text("x")


def _recomputed(work: Path) -> bool:
    try:
        import numpy as np
        with np.load(_cache_file(work)) as data:
            return len(data.files) > 1
    except (OSError, ValueError, IndexError):
        return False


def cache_cases() -> list[Case]:
    return [Case(f"cache: {what}", list(_CACHED), expect="recover",
                 setup=(lambda damage: lambda work: _seed_cache(work, damage))(damage),
                 check=_recomputed, timeout=300)
            for what, damage in (("valid .npz, wrong keys", _wrong_keys),
                                 ("truncated file", _truncated), ("a folder", _a_folder))]


# ---------------------------------------------------------------------- other options
def misc_cases() -> list[Case]:
    smoke = ["--config", "smoke"]
    return [
        Case("name: unknown experiment", ["run", "no-such-experiment"] + smoke, "no-such"),
        Case("option: --paper with --config smoke", ["run", "ntk-width", "--paper"] + smoke,
             "--paper"),
        Case("option: --connect-timeout 0", ["run", "ntk-width", "--connect-timeout", "0"]
             + smoke, "--connect-timeout"),
        Case("option: --connect-timeout NaN", ["run", "ntk-width", "--connect-timeout", "nan"]
             + smoke, "--connect-timeout"),
        Case("bench: unknown filter", ["bench", "--only", "no-such-benchmark"], "--only"),
        Case("data: unknown set", ["data", "fetch", "no-such-set"], "no-such-set"),
        Case("data: --timeout 0", ["data", "fetch", "mnist", "--timeout", "0"], "--timeout"),
        Case("data: --data-dir a file", ["data", "list", "--data-dir", "{work}/a-file"],
             "a-file", setup=_regular_file),
    ]


# ------------------------------------------------------------------------------ running
def _classify(case: Case, code, err: str, elapsed: float, work: Path) -> str:
    if code is None:
        return "hang"
    if "Traceback (most recent call last)" in err:
        return "traceback"
    lines = [line for line in err.splitlines() if line.strip()]
    if case.expect == "recover":
        if code != 0:
            return "other"
        notice = len(lines) == 1 and "cache" in lines[0]
        recomputed = case.check(work) if case.check else True
        return "clear" if notice and recomputed else "silent"
    if code == 0:
        return "silent"
    if code != 2:
        return "other"
    if lines and lines[0].startswith("usage:"):  # argparse: its usage, then one error line
        lines = lines[-1:]
    if len(lines) != 1 or not lines[0].startswith("ntkdyn"):
        return "vague"
    return "clear" if case.mention.lower() in lines[0].lower() else "vague"


def run_case(case: Case, root: Path, tries: int = 2) -> Case:
    """Run one case in a fresh temporary folder (its working directory). A cache case whose
    entry was not looked up at all (the code, and so the cache key, changed between writing
    and reading it: another process editing the tree) is tried again."""
    for _ in range(tries):
        _run_once(case, root)
        if case.expect != "recover" or case.result["stderr"] or not case.result.get("stale"):
            break
    return case


def _run_once(case: Case, root: Path) -> Case:
    with tempfile.TemporaryDirectory(prefix="ntkdyn-probe-") as tmp:
        work = Path(tmp)
        if case.setup is not None:
            case.setup(work)
        args = [str(a).format(work=work) for a in case.args]
        if args[0] in ("run", "all") and "--out" not in args:
            args += ["--out", str(work / "out")]
        if args[0] in ("run", "all") and "--quiet" not in args and case.expect != "recover":
            args += ["--quiet"]
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "ntkdyn", *args], cwd=work,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            _, err = proc.communicate(timeout=case.timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            code = None
        elapsed = time.perf_counter() - start
        category = _classify(case, code, err, elapsed, work)
        entries = list((work / "cached" / ".cache").glob("deep-linear-alignment-*.npz*"))
        stale = len([p for p in entries if "-run-" not in p.name]) > 1
        for path in work.rglob("*"):  # let the temporary folder go
            try:
                path.chmod(0o755 if path.is_dir() else 0o644)
            except OSError:
                pass
        case.result = {"kind": case.kind, "args": args, "exit": code,
                       "seconds": round(elapsed, 1), "category": category,
                       "stderr": err.strip().splitlines()[-3:] if err.strip() else [],
                       "stale": stale}
        return case


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one --set case per experiment")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--json", help="write every case and its outcome to this file")
    parser.add_argument("--verbose", action="store_true", help="a line for every case")
    parser.add_argument("--only", help="only the cases whose kind contains this")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    with _Listeners() as listeners:
        cases = (set_cases(args.quick) + size_cases() + output_cases()
                 + scheduler_cases(listeners) + cache_cases() + misc_cases())
        if args.only:
            cases = [c for c in cases if args.only in c.kind]
        start = time.perf_counter()
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            done = list(pool.map(lambda c: run_case(c, root), cases))
    counts = {c: 0 for c in CATEGORIES}
    for case in done:
        counts[case.result["category"]] += 1
        if args.verbose or case.result["category"] != "clear":
            last = case.result["stderr"][-1] if case.result["stderr"] else ""
            print(f"{case.result['category']:<9s} exit={case.result['exit']} "
                  f"{case.result['seconds']:5.1f}s  {case.kind}: {' '.join(case.args)[:90]}"
                  f"\n          {last[:160]}")
    print(f"reliability probe: {len(done)} bad CLI inputs in {time.perf_counter() - start:.0f} s: "
          + ", ".join(f"{counts[c]} {c}" for c in CATEGORIES))
    if args.json:
        Path(args.json).write_text(json.dumps({"counts": counts,
                                               "cases": [c.result for c in done]}, indent=1))
    return 1 if counts["traceback"] or counts["hang"] or counts["silent"] else 0


if __name__ == "__main__":
    sys.exit(main())
