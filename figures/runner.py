"""Run one experiment: compute (cached), measure agreement, plot, write NAME.png and NAME.json."""
from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .registry import get_experiment  # noqa: E402
from .storage import (atomic_path, config_hash, library_version, load_result,  # noqa: E402
                      save_result, write_json)
from .sweep import open_executor, run_cached  # noqa: E402


class ExperimentError(RuntimeError):
    """An experiment produced an unusable result (non-finite numbers, bad configuration)."""


def resolve_config(module, paper: bool = False, overrides: dict | None = None) -> dict:
    """The quick or paper configuration with ``overrides`` applied and type-checked."""
    config = dict(module.PAPER if paper else module.QUICK)
    for key, value in (overrides or {}).items():
        if key not in config:
            raise ValueError(f"unknown configuration key {key!r} for {module.NAME}; "
                             f"expected one of {sorted(config)}")
        default = config[key]
        if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, (int, float)) and not isinstance(value, (int, float))) or (
                isinstance(default, (list, tuple)) and not isinstance(value, (list, tuple))) or (
                isinstance(default, str) and not isinstance(value, str)):
            raise ValueError(f"configuration key {key!r} of {module.NAME} expects a value like "
                             f"{default!r}, got {value!r}")
        config[key] = list(value) if isinstance(value, tuple) else value
    return config


def _check_finite(name: str, result: dict) -> None:
    for key, value in result.items():
        arr = np.asarray(value)
        if np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
            raise ExperimentError(f"{name}: result {key!r} holds non-finite values; "
                                  "the run diverged or the configuration is unstable")


def holds(value: float, target) -> bool:
    low, high = target
    return bool(low <= value <= high)


def compute_result(module, config, cache_dir, scheduler="process", workers=None,
                   progress=False) -> tuple[dict, str]:
    """The experiment's arrays and the executor kind that computed them.

    Experiments that split into independent runs (``runs``/``run``/``combine``, see
    :mod:`ntkdyn.figures.sweep`) are distributed over the executor, run by run, with each run
    cached; the others are computed in this process.
    """
    if not hasattr(module, "runs"):
        return module.compute(config), "serial"
    points = module.runs(config)
    with open_executor(scheduler, workers) as (executor, kind):
        results = run_cached(module.run, points, cache_dir, module.NAME, executor, kind, progress)
    return module.combine(config, results), kind


def run_experiment(name: str, paper: bool = False, out="out", overrides: dict | None = None,
                   use_cache: bool = True, verbose: bool = True, scheduler: str | None = "process",
                   workers: int | None = None, progress: bool = False) -> dict:
    """Run experiment ``name`` and write ``NAME.png`` and ``NAME.json`` into ``out``.

    ``scheduler``: ``"serial"``, ``"process"`` (default), ``"local"`` (Dask) or a Dask
    address; see :func:`ntkdyn.figures.sweep.open_executor`.
    Returns the JSON record ``{"experiment", "config", "agreement", "targets", ...}``.
    """
    module = get_experiment(name)
    config = resolve_config(module, paper, overrides)
    out = Path(out)
    cache = out / ".cache" / f"{module.NAME}-{config_hash(module.NAME, config)}.npz"
    start = time.perf_counter()
    result = load_result(cache) if use_cache else None
    cached, executor = result is not None, "cache"
    if result is None:
        if not use_cache:
            for stale in cache.parent.glob(f"{module.NAME}-run-*"):
                stale.unlink(missing_ok=True)
        result, executor = compute_result(module, config, cache.parent, scheduler, workers,
                                          progress)
        _check_finite(module.NAME, result)
        save_result(cache, result)
    agreement = {k: float(v) for k, v in module.agreement(result).items()}
    bad = [k for k, v in agreement.items() if not np.isfinite(v)]
    if bad:
        raise ExperimentError(f"{module.NAME}: agreement numbers {bad} are not finite")
    fig = module.plot(result)
    png = out / f"{module.NAME}.png"
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    targets = {k: list(v) for k, v in module.TARGETS.items()}
    record = {
        "experiment": module.NAME,
        "config": config,
        "agreement": agreement,
        "targets": targets,
        "holds": {k: holds(agreement[k], v) for k, v in targets.items() if k in agreement},
        "paper": paper,
        "version": library_version(),
        "cached": cached,
        "executor": executor,
        "seconds": round(time.perf_counter() - start, 3),
    }
    write_json(out / f"{module.NAME}.json", record)
    if verbose:
        print(format_record(record))
    return record


def format_record(record: dict) -> str:
    """Agreement numbers, one per line, with the target interval and whether it holds."""
    lines = [f"{record['experiment']}  ({record['seconds']:.1f} s"
             f"{', cached' if record.get('cached') else ''})"]
    for key, value in record["agreement"].items():
        target = record["targets"].get(key)
        mark = "" if target is None else (
            f"  target [{target[0]:g}, {target[1]:g}] "
            f"{'holds' if record['holds'][key] else 'FAILS'}")
        lines.append(f"  {key:<32s} {value: .6g}{mark}")
    return "\n".join(lines)


def load_record(path) -> dict:
    return json.loads(Path(path).read_text())
