"""Run one experiment: compute (cached), measure agreement, plot, write NAME.png and NAME.json.

Beside the figure (``NAME.png``, or any of :data:`FIGURE_FORMATS`) and the record
(``NAME.json``) the runner writes the arrays (``NAME.npz``) and the agreement table
(``NAME.csv``). A changed configuration writes ``NAME-TAG.*`` or ``NAME-<config hash>.*``
(:func:`output_stem`) so it never overwrites the named configuration's outputs.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# isort: off
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..numerics.memory import MemoryBudgetError, require_memory  # noqa: E402
from .config_types import ConfigValueError  # noqa: E402
from .experiment import Experiment, config_seed, evaluate, point_seed  # noqa: E402
from .footprint import memory_hint, replicate_count  # noqa: E402
from .progress import showing  # noqa: E402
from .registry import get_experiment  # noqa: E402
from .report import numbers_csv  # noqa: E402
from .storage import (atomic_path, check_output_dir, config_hash, library_version,  # noqa: E402
                      load_result, save_result, write_json, write_text)
from .sweep import (check_executor_args, limited_threads_here, open_executor,  # noqa: E402
                    run_cached, threads_per_worker)
# isort: on


class ExperimentError(RuntimeError):
    """An experiment produced an unusable result (non-finite arrays, bad configuration)."""


def resolve_config(experiment: Experiment, config_name: str = "quick",
                   overrides: dict | None = None) -> dict:
    """The named configuration (smoke, quick or paper) with ``overrides`` applied and every
    value checked against its declared type (:mod:`ntkdyn.figures.config_types`), before any
    work: a wrong value is a ``ValueError`` naming the experiment, the key, the value and what
    is expected, in one line."""
    config = experiment.config(config_name)
    defaults = dict(config)
    for key, value in (overrides or {}).items():
        if key not in config:
            raise ValueError(f"unknown configuration key {key!r} for {experiment.name}; "
                             f"expected one of {sorted(config)}")
        config[key] = value
    for key, value in config.items():
        kind = experiment.config_type(key)
        if kind is not None:
            try:
                config[key] = kind.check(key, value)
            except ConfigValueError as exc:
                raise exc.located(experiment.name, defaults[key]) from None
            continue
        default = defaults[key]  # an undeclared key: the value must look like the default
        if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, (int, float)) and not isinstance(value, (int, float))) or (
                isinstance(default, (list, tuple)) and not isinstance(value, (list, tuple))) or (
                isinstance(default, str) and not isinstance(value, str)):
            raise ValueError(f"configuration key {key!r} of {experiment.name} expects a value "
                             f"like {default!r}, got {value!r}")
        config[key] = list(value) if isinstance(value, tuple) else value
    return config


def check_memory(experiment: Experiment, config: dict, scheduler: str | None = "serial",
                 workers: int | None = None) -> int:
    """Refuse, before computing, a configuration whose estimated peak memory exceeds the budget.

    The estimate is :meth:`ntkdyn.figures.experiment.Experiment.memory_bytes`; a sweep on a
    local pool (``"process"`` or ``"local"``) holds one run per worker at once, and the runs of
    the largest size -- its replicates, at least two -- run side by side, so it counts
    ``min(workers, max(2, replicates))`` times that (``workers`` default: one per core;
    :func:`ntkdyn.figures.footprint.replicate_count`). The budget is
    :func:`ntkdyn.numerics.memory.require_memory`'s (the least of ``MemAvailable``,
    ``RLIMIT_AS`` and the cgroup limit). The refusal, a
    :class:`ntkdyn.numerics.memory.MemoryBudgetError` (a ``ValueError``), says how much is
    needed, how much is available and which key to reduce.

    Returns
    -------
    int
        The bytes counted.
    """
    need = experiment.memory_bytes(config)
    what = f"{experiment.name}"
    if experiment.is_sweep and scheduler in (None, "process", "local"):
        parallel = min(int(workers or os.cpu_count() or 1), max(2, replicate_count(config)))
        if parallel > 1:
            need *= parallel
            what += f" ({parallel} runs at once; --workers sets how many)"
    try:
        return require_memory(need, what)
    except MemoryBudgetError as exc:
        raise MemoryBudgetError(exc.what, exc.needed, exc.available,
                                memory_hint(experiment, config), exc.source) from None


def _check_finite(name: str, result: dict) -> None:
    for key, value in result.items():
        arr = np.asarray(value)
        if np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
            raise ExperimentError(f"{name}: result {key!r} holds non-finite values; "
                                  "the run diverged or the configuration is unstable")


def compute_result(experiment: Experiment, config, cache_dir, scheduler="process", workers=None,
                   progress=False) -> tuple[dict, str]:
    """The experiment's arrays and the executor kind that computed them.

    Sweep experiments (``runs``/``run``/``combine``) are distributed over the executor, run by
    run, each run seeded by :func:`ntkdyn.figures.experiment.point_seed` and cached; the others
    are computed in this process with the threads limited as a pool worker's are
    (:func:`ntkdyn.figures.sweep.limited_threads_here`), so every executor gives the same bits.
    """
    if not experiment.is_sweep:  # progress: the steps it reports (ntkdyn.figures.progress)
        with limited_threads_here(threads_per_worker(workers)), \
                showing(experiment.name, bool(progress)):
            return experiment.compute(config, config_seed(config)), "serial"
    points = experiment.runs(config)
    seeds = [point_seed(config, p) for p in points]
    with open_executor(scheduler, workers) as (executor, kind):
        results = run_cached(experiment.run, points, cache_dir, experiment.name, executor, kind,
                             bool(progress), seeds=seeds)
    return experiment.combine(config, results), kind


#: Figure formats the runner writes (``--format``; matplotlib's own writers).
FIGURE_FORMATS = ("png", "pdf", "svg", "eps")
#: Resolution of the raster figures (``--dpi``).
DEFAULT_DPI = 110
#: A tag in an output name (``--tag``): letters, digits, ``.``, ``_``, ``-``; at most 40.
TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


def check_formats(formats) -> tuple[str, ...]:
    """``formats``, a comma-separated string (``"png,pdf"``) or a sequence of names, as a tuple
    of distinct names from :data:`FIGURE_FORMATS` (an empty sequence: no figure)."""
    items = formats.split(",") if isinstance(formats, str) else formats
    if not isinstance(items, (list, tuple)) or not all(isinstance(f, str) for f in items):
        raise TypeError(f"formats must be a comma-separated string or a sequence of names like "
                        f"('png', 'pdf'), got {formats!r}")
    names = tuple(dict.fromkeys(f.strip().lower() for f in items))
    bad = [f for f in names if f not in FIGURE_FORMATS]
    if bad:
        raise ValueError(f"formats must be some of {', '.join(FIGURE_FORMATS)} (comma-separated),"
                         f" got {formats!r}")
    return names


def check_dpi(dpi) -> float:
    """``dpi`` (``None``: :data:`DEFAULT_DPI`) as a float in ``[10, 2400]``."""
    if dpi is None:
        return float(DEFAULT_DPI)
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Real):
        raise TypeError(f"dpi must be a number, got {dpi!r}")
    if not (math.isfinite(dpi) and 10 <= dpi <= 2400):
        raise ValueError(f"dpi must be a number in [10, 2400], got {dpi!r}")
    return float(dpi)


def output_stem(experiment: Experiment, config_name: str, config: dict,
                tag: str | None = None) -> str:
    """The file name (without suffix) of a run's outputs.

    ``NAME`` when ``config`` is the named configuration ``config_name`` unchanged; ``NAME-TAG``
    when a ``tag`` is given; otherwise ``NAME-<first 8 hex digits of a SHA-256 of the
    configuration>``. So a changed configuration never overwrites ``NAME.png``/``NAME.json``,
    and the same configuration always lands in the same files (the JSON records the
    configuration either way).
    """
    if tag is not None:
        if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
            raise ValueError("tag must be 1 to 40 letters, digits, '.', '_' or '-' (starting with"
                             f" a letter or digit), got {tag!r}")
        return f"{experiment.name}-{tag}"
    if config == resolve_config(experiment, config_name):
        return experiment.name
    payload = json.dumps(config, sort_keys=True, default=str).encode()
    return f"{experiment.name}-{hashlib.sha256(payload).hexdigest()[:8]}"


def make_record(experiment: Experiment, config_name: str, config: dict, result: dict, verdict,
                stem: str, cached: bool, executor: str, seconds: float) -> dict:
    """The JSON record of one run (see :func:`run_experiment`)."""
    declared = verdict.declared
    return {
        "experiment": experiment.name,
        "stem": stem,
        "config_name": config_name,
        "config": config,
        "agreement": verdict.numbers,
        "kinds": {k: n.kind for k, n in declared.items()},
        "targets": {k: n.target.bounds() for k, n in declared.items()},
        "target_types": {k: n.target.type for k, n in declared.items()},
        "descriptions": {k: n.description for k, n in declared.items() if n.description},
        "holds": verdict.holds,
        "controls": verdict.controls,
        "regimes": dict(experiment.regimes),
        # what the experiment trained on: result entries "data_<field>" (name, checksum, ...)
        "data": {k[len("data_"):]: np.asarray(v).tolist() for k, v in result.items()
                 if k.startswith("data_")},
        "failures": verdict.failures,
        "ok": verdict.ok,
        "paper": config_name == "paper",
        "version": library_version(),
        "cached": cached,
        "executor": executor,
        "seconds": round(seconds, 3),
    }


def write_outputs(out, stem: str, record: dict, result: dict, plot=None,
                  formats=("png",), dpi=None) -> list[Path]:
    """Write ``STEM.<format>`` for each figure format (``plot(result)`` makes the figure),
    ``STEM.npz`` (the arrays), ``STEM.csv`` (the agreement table,
    :func:`ntkdyn.figures.report.numbers_csv`) and, last, ``STEM.json`` (the record); each
    atomically. Returns the paths written."""
    out = Path(out)
    formats, dpi = check_formats(formats), check_dpi(dpi)
    paths = []
    if formats and plot is not None:
        fig = plot(result)
        try:
            for fmt in formats:
                path = out / f"{stem}.{fmt}"
                with atomic_path(path) as tmp:
                    fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
                paths.append(path)
        finally:
            plt.close(fig)
    # a copy, not a link to the cache file: a user overwriting STEM.npz in place must not
    # change what the cache serves
    save_result(out / f"{stem}.npz", result)
    write_text(out / f"{stem}.csv", numbers_csv([record]))
    write_json(out / f"{stem}.json", record)
    return paths + [out / f"{stem}.npz", out / f"{stem}.csv", out / f"{stem}.json"]


@contextmanager
def _run_folder(cache: Path | None):
    """The folder of a sweep's per-run cache: beside the result's, else a temporary one."""
    if cache is not None:
        yield cache.parent
        return
    with tempfile.TemporaryDirectory(prefix="ntkdyn-runs-") as folder:
        yield Path(folder)


def execute(name: str, config_name: str = "quick", overrides: dict | None = None, out=None,
            use_cache: bool = True, scheduler: str | None = "serial", workers: int | None = None,
            progress: bool = False, stem: str | None = None, formats=("png",),
            dpi=None) -> tuple[dict, dict]:
    """Run experiment ``name``; return its JSON record and its arrays (the computed result).

    With ``out``, the result is cached in ``out/.cache`` (reused when ``use_cache``) and the
    outputs are written by :func:`write_outputs` as ``out/STEM.*`` (``stem``: default
    ``NAME``; :func:`output_stem` names a changed configuration); with ``out=None`` nothing is
    read or written. ``progress``: a tqdm bar on stderr (runs of a sweep, steps of an
    in-process computation that reports them, :mod:`ntkdyn.figures.progress`).
    """
    experiment = get_experiment(name)
    config = resolve_config(experiment, config_name, overrides)
    formats, dpi = check_formats(formats), check_dpi(dpi)
    stem = experiment.name if stem is None else stem
    if not isinstance(stem, str) or not (stem == experiment.name or (
            stem.startswith(experiment.name + "-") and TAG_PATTERN.fullmatch(
                stem[len(experiment.name) + 1:]))):
        raise ValueError(f"stem must be {experiment.name!r} or {experiment.name + '-TAG'!r} "
                         f"(TAG: letters, digits, '.', '_', '-'), got {stem!r}")
    check_executor_args(scheduler, workers)
    check_memory(experiment, config, scheduler, workers)
    cache = None
    if out is not None:
        out = check_output_dir(out, "out")  # writable (and .cache too) before any work
        check_output_dir(out / ".cache", "out")
        cache = out / ".cache" / f"{experiment.name}-{config_hash(experiment.name, config)}.npz"
    start = time.perf_counter()
    result = load_result(cache) if cache is not None and use_cache else None
    cached, executor = result is not None, "cache"
    if result is None:
        if cache is not None and not use_cache:
            for stale in cache.parent.glob(f"{experiment.name}-run-*"):
                stale.unlink(missing_ok=True)
        with _run_folder(cache) as folder:
            result, executor = compute_result(experiment, config, folder, scheduler, workers,
                                              progress)
        _check_finite(experiment.name, result)
        if cache is not None:
            save_result(cache, result)
    verdict = evaluate(experiment, config, result)
    record = make_record(experiment, config_name, config, result, verdict, stem, cached,
                         executor, time.perf_counter() - start)
    if out is not None:
        write_outputs(out, stem, record, result, experiment.plot, formats, dpi)
    return record, result


def run_experiment(name: str, paper: bool = False, out="out", overrides: dict | None = None,
                   use_cache: bool = True, verbose: bool = False, scheduler: str | None = "serial",
                   workers: int | None = None, progress: bool = False,
                   config_name: str | None = None, stem: str | None = None, formats=("png",),
                   dpi=None) -> dict:
    """Run experiment ``name`` and write ``NAME.png``, ``NAME.json``, ``NAME.npz`` (the arrays)
    and ``NAME.csv`` (the agreement table) into ``out``.

    ``config_name``: ``"smoke"``, ``"quick"`` (default) or ``"paper"`` (``paper=True`` is
    ``"paper"``). ``scheduler``: ``"serial"`` (default), ``"process"`` (a local pool; the
    command line's default), ``"local"`` (Dask) or a Dask address; see
    :func:`ntkdyn.figures.sweep.open_executor`. ``verbose`` prints :func:`format_record`.
    ``stem``: the output file name without suffix (default ``NAME``, also for ``overrides``;
    :func:`output_stem` gives a changed configuration its own, as the command line and
    :func:`ntkdyn.run` do). ``formats``: figure formats (:data:`FIGURE_FORMATS`); ``dpi``:
    their resolution (default :data:`DEFAULT_DPI`).

    Returns the JSON record: ``{"experiment", "stem", "config", "agreement": {name: number},
    "kinds", "targets": {name: [low, high]} (null for an open side), "target_types", "holds",
    "controls": {name: {"description", "agreement", "fails"}}, "regimes", "failures", "ok",
    ...}``. ``ok`` is false when a target is missed, a declared number is missing or not finite,
    or a control is rejected by no agreement target.
    """
    config_name = config_name or ("paper" if paper else "quick")
    record, _ = execute(name, config_name, overrides, out, use_cache, scheduler, workers,
                        progress, stem, formats, dpi)
    if verbose:
        print(format_record(record))
    return record


def _bounds_text(bounds, target_type) -> str:
    if target_type == "is_true":
        return "true"
    low, high = bounds
    if low is None:
        return f"<= {high:g}"
    if high is None:
        return f">= {low:g}"
    return f"[{low:g}, {high:g}]"


def format_record(record: dict) -> str:
    """Every number with its kind, target and verdict, then the controls and any failure."""
    lines = [f"{record['experiment']}  ({record['seconds']:.1f} s"
             f"{', cached' if record.get('cached') else ''})"]
    types = record.get("target_types", {})
    for key, value in record["agreement"].items():
        target = record["targets"].get(key)
        mark = "" if target is None else (
            f"  {record.get('kinds', {}).get(key, ''):<11s} "
            f"{_bounds_text(target, types.get(key, 'interval'))} "
            f"{'holds' if record['holds'].get(key) else 'FAILS'}")
        lines.append(f"  {key:<36s} {value: .6g}{mark}")
    for name, control in record.get("controls", {}).items():
        verdict = (f"rejected by {len(control['fails'])} target(s)" if control["fails"]
                   else "NOT REJECTED")
        lines.append(f"  control {name}: {verdict}")
    for failure in record.get("failures", []):
        lines.append(f"  FAILED {failure}")
    return "\n".join(lines)


def load_record(path) -> dict:
    return json.loads(Path(path).read_text())
