"""The ``ntkdyn`` command line: list, show, run, all, report, bench, derive, data.

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
    """``--set KEY=VALUE`` pairs as ``{key: value}``: the value parsed as JSON (``3``,
    ``1e-3``, ``[6, 7]``, ``null``, ``true``, ``NaN``), else kept as the string. The types are
    checked afterwards, against each key's declared type
    (:func:`ntkdyn.figures.runner.resolve_config`)."""
    overrides = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--set expects KEY=VALUE, got {pair[:60]!r}")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if not key:
            raise ValueError(f"--set expects KEY=VALUE with a key before '=', got {pair[:60]!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        except (ValueError, RecursionError) as exc:  # an integer of > 4300 digits, deep nesting
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise ValueError(f"--set {key}: cannot read the value ({reason.split(';')[0]})") \
                from None
        overrides[key] = value
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


def _outputs(args, name: str, config_name: str, overrides: dict) -> dict:
    """The output options of run/all: file stem (``NAME``, ``NAME-TAG`` or ``NAME-<config
    hash>``), figure formats and dpi, checked before any work."""
    from .registry import get_experiment
    from .runner import check_dpi, check_formats, output_stem, resolve_config
    experiment = get_experiment(name)
    config = resolve_config(experiment, config_name, overrides)
    return {"stem": output_stem(experiment, config_name, config, args.tag),
            "formats": check_formats(args.format), "dpi": check_dpi(args.dpi)}


def _print_outputs(args, record) -> None:
    if not args.quiet:
        from .runner import check_formats
        suffixes = ",".join([*check_formats(args.format), "json", "npz", "csv"])
        print(f"  -> {Path(args.out) / record['stem']}.{{{suffixes}}}")


def _check_run_options(args) -> None:
    """--scheduler, --workers, --connect-timeout and --out, checked before any work."""
    from .storage import check_output_dir
    from .sweep import check_executor_args
    check_executor_args(args.scheduler, args.workers, args.connect_timeout,
                        names=("--scheduler", "--workers", "--connect-timeout"))
    check_output_dir(args.out, "--out")


def cmd_run(args) -> int:
    from .runner import run_experiment
    config_name, overrides = _config_name(args), _parse_overrides(args.set)
    outputs = _outputs(args, args.name, config_name, overrides)
    _check_run_options(args)
    record = run_experiment(args.name, out=args.out, config_name=config_name,
                            overrides=overrides, use_cache=not args.no_cache,
                            verbose=not args.quiet, scheduler=args.scheduler,
                            workers=args.workers, progress=_show_progress(args.quiet),
                            **outputs)
    _print_outputs(args, record)
    return _report_failures([record])


def cmd_show(args) -> int:
    from .api import describe
    info = describe(args.name, args.config or "quick")
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(format_description(info))
    return 0


def _cell(value, width: int = 22) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def format_description(info: dict) -> str:
    """The text of ``ntkdyn show``: configuration keys (type, smoke/quick/paper values),
    declared numbers (kind, target), controls and regimes."""
    lines = [f"{info['name']}: {info['description']}",
             f"computation: {info['computation']}", "",
             "configuration keys (run with --config smoke|quick|paper, --set KEY=VALUE; "
             "show --json: values in full):"]
    rows = [["key", "smoke", "quick", "paper", "type"]]
    rows += [[r["key"], _cell(r["smoke"]), _cell(r["quick"]), _cell(r["paper"]), r["type"]]
             for r in info["config"]]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4])
    lines += ["", f"numbers (declared for the {info['config_name']} configuration):"]
    rows = [["number", "kind", "target", "description"]]
    rows += [[n["name"], n["kind"], n["target"], n["description"]] for n in info["numbers"]]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        lines.append(("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  "
                      + row[3]).rstrip())
    lines += ["", "controls (wrong theories that the agreement targets must reject):"]
    lines += [f"  {c['name']}: {c['description']}" for c in info["controls"]] or ["  (none)"]
    if info["regimes"]:
        lines += ["", "regimes (where the theory is expected to fail):"]
        lines += [f"  {k}: {v}" for k, v in info["regimes"].items()]
    return "\n".join(lines)


def cmd_all(args) -> int:
    from .registry import experiments
    from .runner import run_experiment
    config_name = _config_name(args)
    records = []
    names = list(experiments())
    outputs = {name: _outputs(args, name, config_name, {}) for name in names}
    _check_run_options(args)
    for name in _progress(names, "experiments", args.quiet):
        record = run_experiment(name, out=args.out, config_name=config_name,
                                use_cache=not args.no_cache, verbose=not args.quiet,
                                scheduler=args.scheduler, workers=args.workers,
                                progress=_show_progress(args.quiet), **outputs[name])
        _print_outputs(args, record)
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
    from .storage import check_output_dir
    if not Path(args.out).is_dir():  # a mistyped folder must not start the whole quick suite
        raise ValueError(f"--out {args.out} is not a folder of results; run the experiments "
                         f"first (`ntkdyn all --out {args.out}`), then `ntkdyn report --out "
                         f"{args.out}`")
    check_output_dir(args.out, "--out")
    paths = build_report(args.out, quiet=args.quiet, scheduler="process")
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
    if not (args.timeout > 0 and args.timeout != float("inf")):  # NaN fails both tests
        raise ValueError(f"--timeout must be a positive finite number of seconds, "
                         f"got {args.timeout}")
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

    p = sub.add_parser("show", help="an experiment's configuration keys (type, smoke/quick/"
                                    "paper values), numbers with targets, controls")
    p.add_argument("name", help="experiment name (see `ntkdyn list`)")
    p.add_argument("--config", choices=("smoke", "quick", "paper"), default=None,
                   help="configuration whose declared numbers are listed (default: quick)")
    p.add_argument("--json", action="store_true", help="everything as JSON, values in full")
    p.set_defaults(func=cmd_show)

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
        p.add_argument("--connect-timeout", type=float, default=None, metavar="SECONDS",
                       help="seconds to reach a Dask scheduler (default 10)")
        p.add_argument("--format", default="png", metavar="png,pdf,svg",
                       help="figure formats, comma-separated: png, pdf, svg, eps "
                            "(default: png; the report needs png)")
        p.add_argument("--dpi", type=float, default=None,
                       help="resolution of raster figures (default: 110)")
        p.add_argument("--tag", default=None,
                       help="name the outputs NAME-TAG.* (default: NAME.* for a named "
                            "configuration, NAME-<config hash>.* when --set changes it)")
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


def _os_error_text(exc: OSError) -> str:
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return " ".join(str(exc).split()) or exc.__class__.__name__


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .storage import OutputError, quiet_notices
    from .sweep import Terminated, connect_timeout, terminate_on_sigterm
    try:  # SIGTERM (timeout, batch schedulers) ends the run cleanly, exit status 143
        with terminate_on_sigterm(), quiet_notices(getattr(args, "quiet", False)), \
                connect_timeout(getattr(args, "connect_timeout", None)):
            return args.func(args)
    except OutputError as exc:  # the output folder or a file in it cannot be written
        where = "" if "--out" in str(exc) or not hasattr(args, "out") else f"--out {args.out}: "
        print(f"ntkdyn: error: {where}{exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"ntkdyn: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as exc:  # DivergenceError, ExperimentError: the run failed, not the input
        print(f"ntkdyn: failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file that cannot be read or written: one line, no traceback
        print(f"ntkdyn: error: {_os_error_text(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ntkdyn: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"ntkdyn: terminated (signal {exc.signum})", file=sys.stderr)
        return 128 + exc.signum
    finally:
        if argv is None:  # the program itself, about to exit: spare the collector's last
            import gc  # pass over every object (0.6-0.9 s with numba, scipy, matplotlib)
            gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
