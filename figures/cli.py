"""The ``ntkdyn`` command line: list, run, all, report, bench, derive, data.

Errors in the user's input print one line (no traceback) and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

from .. import __version__

EXIT_USAGE = 2


def _parse_overrides(pairs) -> dict:
    overrides = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides[key.strip()] = value
    return overrides


def _show_progress(quiet: bool) -> bool:
    """Progress bars only on a terminal, and never with ``--quiet``."""
    return not quiet and sys.stderr.isatty()


def _progress(items, desc, quiet):
    from tqdm.auto import tqdm
    return tqdm(items, desc=desc, disable=not _show_progress(quiet), unit="exp")


def cmd_list(args) -> int:
    from .registry import experiments
    for name, experiment in experiments().items():
        paper_data = experiment.config("paper").get("dataset")
        data = f" [paper data: {paper_data}]" if paper_data else ""
        print(f"{name:<28s} {experiment.description}{data}" if args.long else name)
    return 0


def _config_name(args) -> str:
    if args.paper and args.config not in (None, "paper"):
        raise ValueError(f"--paper contradicts --config {args.config}")
    return "paper" if args.paper else (args.config or "quick")


def _report_failures(records) -> int:
    """Exit status 1, with the failing checks on stderr, when any record is not ok."""
    failed = [f"{r['experiment']}: {f}" for r in records for f in r["failures"]]
    if failed:
        print(f"ntkdyn: {len(failed)} check(s) failed:", file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def cmd_run(args) -> int:
    from .runner import run_experiment
    record = run_experiment(args.name, out=args.out, config_name=_config_name(args),
                            overrides=_parse_overrides(args.set), use_cache=not args.no_cache,
                            verbose=not args.quiet, scheduler=args.scheduler,
                            workers=args.workers, progress=_show_progress(args.quiet))
    return _report_failures([record])


def cmd_all(args) -> int:
    from .registry import experiments
    from .runner import run_experiment
    config_name = _config_name(args)
    records = []
    for name in _progress(list(experiments()), "experiments", args.quiet):
        record = run_experiment(name, out=args.out, config_name=config_name,
                                use_cache=not args.no_cache, verbose=not args.quiet,
                                scheduler=args.scheduler, workers=args.workers)
        records.append(record)
        if not record["ok"] and not args.keep_going:
            print(f"ntkdyn: {name} failed; stopping (use --keep-going to run the rest)",
                  file=sys.stderr)
            break
    return _report_failures(records)


def cmd_bench(args) -> int:
    root = Path(__file__).resolve().parent.parent / "benchmarks"
    if not root.is_dir():
        raise ValueError(f"benchmarks/ not found beside the installed package ({root}); "
                         "install from a source checkout with `pip install -e .`")
    scripts = sorted(root.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if args.only in s.stem]
        if not scripts:
            raise ValueError(f"no benchmark matches --only {args.only!r}")
    failed = []
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        sys.argv = [str(script)] + (["--quick"] if args.quick else [])
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exc:  # a script ending with sys.exit(main()) must not end the others
            if exc.code not in (None, 0):
                failed.append(script.stem)
    if failed:
        print(f"ntkdyn: benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_derive(args) -> int:
    from ..theory import symbolic
    print(symbolic.derivations(fmt="latex" if args.latex else "pretty"))
    return 0


def cmd_report(args) -> int:
    from .report import build_report
    paths = build_report(args.out, quiet=args.quiet)
    for path in paths:
        print(path)
    return 0


def _megabytes(size) -> str:
    return "?" if not size else f"{size / 1e6:.1f} MB"


def cmd_data_list(args) -> int:
    from ..numerics import fetch
    home = fetch.data_home(args.data_dir, create=False)
    print(f"data home: {home} (--data-dir, else ${fetch.ENV_VAR}, else the platform cache)")
    print(f"{'name':<15s} {'download':>10s} {'cached':>10s}  description")
    for row in fetch.status(args.data_dir):
        states = {f["state"] for f in row["files"]}
        cached = ("yes" if row["cached"] else "partly" if states - {"missing"} else "no")
        if "unverified" in states:
            cached += "*"
        print(f"{row['name']:<15s} {_megabytes(row['download_bytes']):>10s} {cached:>10s}  "
              f"{row['description']}")
    print(f"(* present but not yet verified; `{fetch.FETCH_COMMAND} NAME` downloads and "
          "verifies)")
    return 0


def cmd_data_fetch(args) -> int:
    from ..numerics import fetch
    paths = fetch.fetch(args.name, data_dir=args.data_dir, timeout=args.timeout,
                        progress=_show_progress(args.quiet))
    folder = fetch.data_home(args.data_dir, create=False) / fetch.REMOTE[args.name].subdir
    if not args.quiet:
        print(f"{args.name}: {len(paths)} file(s) verified in {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ntkdyn", description="Theory beside simulation for neural-tangent-kernel dynamics.")
    parser.add_argument("--version", action="version", version=f"ntkdyn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="experiment names, one per line")
    p.add_argument("--long", action="store_true", help="add one-line descriptions")
    p.set_defaults(func=cmd_list)

    for name, func, help_ in (("run", cmd_run, "run one experiment"),
                              ("all", cmd_all, "run every experiment")):
        p = sub.add_parser(name, help=help_)
        if name == "run":
            p.add_argument("name", help="experiment name (see `ntkdyn list`)")
            p.add_argument("--set", action="append", metavar="KEY=VALUE",
                           help="override one configuration value (JSON value)")
        p.add_argument("--paper", action="store_true", help="paper-scale configuration")
        p.add_argument("--config", choices=("smoke", "quick", "paper"), default=None,
                       help="configuration: smoke (seconds), quick (default), paper")
        if name == "all":
            p.add_argument("--keep-going", action="store_true",
                           help="run every experiment even after one fails")
        p.add_argument("--out", default="out", help="output folder (default: ./out)")
        p.add_argument("--no-cache", action="store_true", help="recompute cached results")
        p.add_argument("--quiet", action="store_true", help="no progress or agreement output")
        p.add_argument("--scheduler", default="process",
                       help="serial | process (default: local pool, one worker per core) | "
                            "local (Dask LocalCluster) | tcp://HOST:PORT (Dask scheduler)")
        p.add_argument("--workers", type=int, default=None, help="workers for process/local")
        p.set_defaults(func=func)

    p = sub.add_parser("bench", help="performance benchmarks (ratios measured in one run)")
    p.add_argument("--quick", action="store_true", help="smaller sizes")
    p.add_argument("--only", help="run only benchmarks whose name contains this")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("report", help="HTML + Markdown report of every experiment in --out")
    p.add_argument("--out", default="out", help="folder with the results (default: ./out)")
    p.add_argument("--quiet", action="store_true", help="no progress or agreement output")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("data", help="remote data sets: list what is cached, fetch one")
    data = p.add_subparsers(dest="data_command", required=True)
    q = data.add_parser("list", help="known data sets, their download sizes, what is cached")
    q.add_argument("--data-dir", default=None, help="data home (default: $NTKDYN_DATA, else "
                                                    "the platform cache folder)")
    q.set_defaults(func=cmd_data_list)
    q = data.add_parser("fetch", help="download and verify one data set")
    q.add_argument("name", help="data set name (see `ntkdyn data list`)")
    q.add_argument("--data-dir", default=None, help="data home (default: $NTKDYN_DATA, else "
                                                    "the platform cache folder)")
    q.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for a connection or a read (default 30)")
    q.add_argument("--quiet", action="store_true", help="no progress or summary output")
    q.set_defaults(func=cmd_data_fetch)

    p = sub.add_parser("derive", help="print the sympy derivations")
    p.add_argument("--latex", action="store_true", help="LaTeX instead of pretty text")
    p.set_defaults(func=cmd_derive)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"ntkdyn: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as exc:  # DivergenceError, ExperimentError: the run failed, not the input
        print(f"ntkdyn: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ntkdyn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
