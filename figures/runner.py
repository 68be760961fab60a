"""Run one experiment: compute (cached), measure agreement, plot, write NAME.png and NAME.json."""
from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# isort: off
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .experiment import Experiment, config_seed, evaluate, point_seed  # noqa: E402
from .registry import get_experiment  # noqa: E402
from .storage import (atomic_path, config_hash, library_version, load_result,  # noqa: E402
                      save_result, write_json)
from .sweep import (limited_threads_here, open_executor, run_cached,  # noqa: E402
                    threads_per_worker)
# isort: on


class ExperimentError(RuntimeError):
    """An experiment produced an unusable result (non-finite arrays, bad configuration)."""


def resolve_config(experiment: Experiment, config_name: str = "quick",
                   overrides: dict | None = None) -> dict:
    """The named configuration (smoke, quick or paper) with ``overrides`` applied and
    type-checked."""
    config = experiment.config(config_name)
    for key, value in (overrides or {}).items():
        if key not in config:
            raise ValueError(f"unknown configuration key {key!r} for {experiment.name}; "
                             f"expected one of {sorted(config)}")
        default = config[key]
        if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, (int, float)) and not isinstance(value, (int, float))) or (
                isinstance(default, (list, tuple)) and not isinstance(value, (list, tuple))) or (
                isinstance(default, str) and not isinstance(value, str)):
            raise ValueError(f"configuration key {key!r} of {experiment.name} expects a value "
                             f"like {default!r}, got {value!r}")
        config[key] = list(value) if isinstance(value, tuple) else value
    return config


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
    if not experiment.is_sweep:
        with limited_threads_here(threads_per_worker(workers)):
            return experiment.compute(config, config_seed(config)), "serial"
    points = experiment.runs(config)
    seeds = [point_seed(config, p) for p in points]
    with open_executor(scheduler, workers) as (executor, kind):
        results = run_cached(experiment.run, points, cache_dir, experiment.name, executor, kind,
                             progress, seeds=seeds)
    return experiment.combine(config, results), kind


def run_experiment(name: str, paper: bool = False, out="out", overrides: dict | None = None,
                   use_cache: bool = True, verbose: bool = True, scheduler: str | None = "process",
                   workers: int | None = None, progress: bool = False,
                   config_name: str | None = None) -> dict:
    """Run experiment ``name`` and write ``NAME.png`` and ``NAME.json`` into ``out``.

    ``config_name``: ``"smoke"``, ``"quick"`` (default) or ``"paper"`` (``paper=True`` is
    ``"paper"``). ``scheduler``: ``"serial"``, ``"process"`` (default), ``"local"`` (Dask) or a
    Dask address; see :func:`ntkdyn.figures.sweep.open_executor`.

    Returns the JSON record: ``{"experiment", "config", "agreement": {name: number}, "kinds",
    "targets": {name: [low, high]} (null for an open side), "target_types", "holds",
    "controls": {name: {"description", "agreement", "fails"}}, "regimes", "failures", "ok",
    ...}``. ``ok`` is false when a target is missed, a declared number is missing or not finite,
    or a control is rejected by no agreement target.
    """
    experiment = get_experiment(name)
    config_name = config_name or ("paper" if paper else "quick")
    config = resolve_config(experiment, config_name, overrides)
    out = Path(out)
    cache = out / ".cache" / f"{experiment.name}-{config_hash(experiment.name, config)}.npz"
    start = time.perf_counter()
    result = load_result(cache) if use_cache else None
    cached, executor = result is not None, "cache"
    if result is None:
        if not use_cache:
            for stale in cache.parent.glob(f"{experiment.name}-run-*"):
                stale.unlink(missing_ok=True)
        result, executor = compute_result(experiment, config, cache.parent, scheduler, workers,
                                          progress)
        _check_finite(experiment.name, result)
        save_result(cache, result)
    verdict = evaluate(experiment, config, result)
    fig = experiment.plot(result)
    png = out / f"{experiment.name}.png"
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    declared = verdict.declared
    record = {
        "experiment": experiment.name,
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
        "seconds": round(time.perf_counter() - start, 3),
    }
    write_json(out / f"{experiment.name}.json", record)
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
