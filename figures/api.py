"""The Python API: run an experiment, keep its record and arrays, plot, save, reload, export.

::

    import ntkdyn

    r = ntkdyn.run("ntk-width", config="smoke")          # serial, prints nothing
    r.holds, r.numbers["slope_fit_minus_theory"]          # every target met; the numbers
    r.arrays["kernels"].shape                             # the arrays behind the figure
    r.plot()                                              # a matplotlib Figure
    r.save("out", formats=("png", "pdf"))                 # out/ntk-width.{png,pdf,json,npz,csv}
    again = ntkdyn.load("out", "ntk-width")               # the record and the arrays, back
    r.to_xarray()                                         # pip install 'ntkdyn[xarray]'

    wide = ntkdyn.run("ntk-width", config={"log2_widths": [8, 10, 12]}, out="out")
    wide.stem                                             # 'ntk-width-<config hash>'

A configuration is a name (``"smoke"``, ``"quick"``, ``"paper"``) or a dict of overrides of
the quick one (of the paper one with ``paper=True``); the keys and their types are listed by
``ntkdyn show NAME`` (:func:`describe`). The outputs of a changed configuration are named
``NAME-TAG`` or ``NAME-<config hash>`` (:func:`ntkdyn.figures.runner.output_stem`), so they never
overwrite the named configuration's ``NAME.*``. Unlike the command line, the API runs sweeps
serially by default (``scheduler="serial"``: a plain script needs no ``if __name__ ==
"__main__":`` guard), prints nothing and shows progress only when asked (``progress=True``).
"""
from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .experiment import CONFIG_NAMES, Experiment
from .registry import get_experiment
from .report import numbers_csv, read_record
from .runner import execute, format_record, output_stem, resolve_config, write_outputs

__all__ = ["COORDINATES", "Result", "describe", "load", "run"]

#: Result keys that hold a coordinate (one value per index of a dimension), and the dimension
#: each names; the replicate count ``seeds`` (or ``replicates``) of the configuration gives the
#: dimension ``seed`` (``0, 1, ...``).
COORDINATES = {
    "widths": "width", "depths": "depth", "times": "time", "record_times": "record_time",
    "steps": "step", "record_steps": "record_step", "lrs": "lr", "gammas": "gamma",
    "etas": "eta", "activations": "activation", "variances": "variance", "periods": "period",
    "dampings": "damping", "init_scales": "init_scale", "variants": "variant",
    "lr_factors": "lr_factor", "target_layers": "target_layer", "tasks": "task",
    "datasets": "dataset", "curve_times": "curve_time", "curve_steps": "curve_step",
    "early_times": "early_time", "deep_widths": "deep_width",
    "deep_activations": "deep_activation", "random_depths": "random_depth",
}
#: Configuration keys that count replicates: the ``seed`` dimension.
REPLICATE_KEYS = ("seeds", "replicates")


@dataclass
class Result:
    """One experiment's run: its JSON record and its arrays.

    Parameters
    ----------
    record : dict
        The JSON record (:func:`ntkdyn.figures.runner.run_experiment`): configuration, numbers
        with their kinds and targets, controls, failures.
    arrays : dict of numpy arrays
        The computed result (what the figure and the numbers are made from).
    folder : pathlib.Path or None
        Where the outputs were written or read (``None``: only in memory).
    """

    record: dict
    arrays: dict = field(default_factory=dict)
    folder: Path | None = None

    # ------------------------------------------------------------------ the record
    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.record["experiment"]

    @property
    def stem(self) -> str:
        """The file name of the outputs without suffix (``NAME``, ``NAME-TAG`` or
        ``NAME-<config hash>``)."""
        return self.record.get("stem", self.name)

    @property
    def config(self) -> dict:
        """The configuration that was run (every key)."""
        return self.record["config"]

    @property
    def config_name(self) -> str:
        """The named configuration it started from (``smoke``, ``quick``, ``paper``)."""
        return self.record.get("config_name", "quick")

    @property
    def numbers(self) -> dict[str, float]:
        """``{name: value}`` of every declared number."""
        return dict(self.record["agreement"])

    @property
    def holds(self) -> bool:
        """Whether every declared number meets its target."""
        return all(self.record["holds"].get(key, False) for key in self.record["targets"])

    @property
    def ok(self) -> bool:
        """Whether the run passes: every target met and every control rejected."""
        return bool(self.record["ok"])

    @property
    def controls(self) -> dict:
        """``{control: {"description", "agreement": {number: value}, "fails": [numbers]}}``:
        each wrong theory and the agreement targets that reject it."""
        return self.record["controls"]

    @property
    def failures(self) -> list[str]:
        """Every failed check, one line each (empty when :attr:`ok`)."""
        return list(self.record["failures"])

    def summary(self) -> str:
        """Every number with its kind, target and verdict, then the controls (what the command
        line prints)."""
        return format_record(self.record)

    def __repr__(self) -> str:
        met = sum(bool(v) for v in self.record["holds"].values())
        return (f"<Result {self.stem}: {met}/{len(self.record['targets'])} targets met, "
                f"{len(self.controls)} control(s), ok={self.ok}, {len(self.arrays)} arrays>")

    # ------------------------------------------------------------------ figures and files
    @property
    def experiment(self) -> Experiment:
        return get_experiment(self.name)

    def _need_arrays(self, what: str) -> None:
        if not self.arrays:
            where = f" (no {self.stem}.npz in {self.folder})" if self.folder else ""
            raise ValueError(f"{what} needs the result's arrays, which this Result does not "
                             f"hold{where}; rerun it with ntkdyn.run")

    def plot(self):
        """The experiment's figure of these arrays (a ``matplotlib.figure.Figure``; close it
        with ``matplotlib.pyplot.close`` when done)."""
        self._need_arrays("plot()")
        return self.experiment.plot(self.arrays)

    def save(self, out, formats=("png", "pdf"), dpi=None) -> list[Path]:
        """Write ``out/STEM.<format>`` for each figure format, ``STEM.json`` (the record),
        ``STEM.npz`` (the arrays) and ``STEM.csv`` (the numbers).

        Parameters
        ----------
        out : str or path-like
            The folder (created when missing).
        formats : sequence of str or str
            Figure formats, some of ``png``, ``pdf``, ``svg``, ``eps`` (``"png,pdf"`` works
            too); empty: no figure.
        dpi : float, optional
            Resolution of raster formats (default 110).

        Returns
        -------
        list of pathlib.Path
            The files written.
        """
        self._need_arrays("save()")
        paths = write_outputs(_folder(out), self.stem, self.record, self.arrays,
                              self.experiment.plot, formats, dpi)
        self.folder = Path(out)
        return paths

    # ------------------------------------------------------------------ exports
    def numbers_csv(self) -> str:
        """The agreement table as CSV text (:func:`ntkdyn.figures.report.numbers_csv`)."""
        return numbers_csv([self.record])

    def dims(self, overrides: Mapping | None = None) -> dict[str, tuple[str, ...]]:
        """The named dimensions of every array (see :meth:`to_xarray`)."""
        return _dims(self.arrays, self.config, dict(self.experiment.dims), overrides)

    def to_xarray(self, dims: Mapping | None = None):
        """The arrays as an ``xarray.Dataset`` with named dimensions (needs ``xarray``:
        ``pip install 'ntkdyn[xarray]'``).

        The coordinate arrays of the result (:data:`COORDINATES`: ``widths`` -> ``width``,
        ``depths`` -> ``depth``, ``times`` -> ``time``, ...) become coordinates; the
        configuration's ``seeds`` gives ``seed = 0, 1, ...``. An array's dimensions are those
        the experiment declares (:attr:`ntkdyn.figures.experiment.Experiment.dims`), or
        ``dims[key]`` given here, else ``KEY_dim0, KEY_dim1, ...`` (never guessed from its
        shape: a length equal to a coordinate's may be a coincidence).

        Parameters
        ----------
        dims : mapping ``{key: (name, ...)}``, optional
            Dimension names of arrays, one per axis, over the declared ones.

        Returns
        -------
        xarray.Dataset
            One variable per array; the record (configuration, numbers, targets, controls)
            in ``attrs`` as JSON text, so the dataset can be written to netCDF.
        """
        try:
            import xarray as xr
        except ImportError:
            raise ImportError("to_xarray needs xarray: pip install 'ntkdyn[xarray]'") from None
        self._need_arrays("to_xarray()")
        names = self.dims(dims)
        lengths = {}
        for key, dim_names in names.items():
            for dim, size in zip(dim_names, np.shape(self.arrays[key])):
                if lengths.setdefault(dim, size) != size:
                    raise ValueError(f"dimension {dim!r} has length {lengths[dim]} in one array "
                                     f"and {size} in {key!r}; give dims= for {key!r}")
        coords, data_vars = {}, {}
        for key, value in self.arrays.items():
            dim = COORDINATES.get(key)
            if dim is not None and names[key] == (dim,):
                coords[dim] = (dim, np.asarray(value), {"result_key": key})
            else:
                data_vars[key] = (names[key], np.asarray(value))
        replicates = _replicates(self.config)
        if replicates and "seed" in lengths and "seed" not in coords:
            coords["seed"] = ("seed", np.arange(lengths["seed"]))
        attrs = {"experiment": self.name, "stem": self.stem, "config_name": self.config_name,
                 "holds": int(self.holds), "ok": int(self.ok)}
        for key in ("config", "agreement", "kinds", "targets", "controls", "version"):
            attrs[key] = json.dumps(self.record.get(key), default=str)
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _replicates(config: dict) -> int | None:
    for key in REPLICATE_KEYS:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _dims(arrays: dict, config: dict, declared: dict, overrides) -> dict[str, tuple[str, ...]]:
    """Dimension names per array: ``overrides``, else ``declared``, else a coordinate's own
    dimension, else ``KEY_dim<i>``; checked against each array's number of axes."""
    if overrides is not None and not isinstance(overrides, Mapping):
        raise TypeError(f"dims must be a mapping {{key: (name, ...)}}, got {overrides!r}")
    given = dict(declared, **dict(overrides or {}))
    unknown = sorted(set(dict(overrides or {})) - set(arrays))
    if unknown:
        raise ValueError(f"dims names arrays the result does not have: {unknown}; expected some "
                         f"of {sorted(arrays)}")
    out = {}
    for key, value in arrays.items():
        ndim = np.ndim(value)
        if key in given:
            names = given[key]
            if isinstance(names, str) or not all(isinstance(n, str) for n in names) \
                    or len(names) != ndim or len(set(names)) != ndim:
                raise ValueError(f"dims[{key!r}] must be {ndim} distinct names (the array has "
                                 f"shape {np.shape(value)}), got {names!r}")
            out[key] = tuple(names)
        elif key in COORDINATES and ndim == 1:
            out[key] = (COORDINATES[key],)
        else:
            out[key] = tuple(f"{key}_dim{i}" for i in range(ndim))
    return out


# ---------------------------------------------------------------------------------- run
def _folder(out) -> Path:
    if not isinstance(out, (str, os.PathLike)) or str(out) == "":
        raise TypeError(f"out must be a folder path (str or path-like), got {out!r}")
    return Path(out)


def _config_arguments(experiment: Experiment, config, paper: bool, overrides, seed):
    """``(config name, overrides)`` from the API's ``config``/``paper``/``overrides``/``seed``."""
    if not isinstance(paper, bool):
        raise TypeError(f"paper must be True or False, got {paper!r}")
    if config is None or isinstance(config, Mapping):
        name, changes = ("paper" if paper else "quick"), dict(config or {})
    elif isinstance(config, str):
        if config not in CONFIG_NAMES:
            raise ValueError(f"config must be one of {CONFIG_NAMES} or a dict of overrides, "
                             f"got {config!r}")
        if paper and config != "paper":
            raise ValueError(f"paper=True contradicts config={config!r}")
        name, changes = config, {}
    else:
        raise TypeError(f"config must be None, a configuration name {CONFIG_NAMES} or a dict "
                        f"of overrides, got {config!r}")
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise TypeError(f"overrides must be a dict, got {overrides!r}")
        changes.update(overrides)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        changes["seed"] = int(seed)
    return name, changes


def _check_name(name):
    if not isinstance(name, str):
        raise TypeError(f"name must be an experiment's name, a str (see `ntkdyn list`), got "
                        f"{type(name).__name__} {name!r}")
    return name


def run(name: str, config=None, paper: bool = False, out=None, scheduler: str = "serial",
        workers: int | None = None, cache: bool = True, seed: int | None = None,
        tag: str | None = None, overrides: Mapping | None = None, progress: bool = False,
        formats=("png",), dpi: float | None = None) -> Result:
    """Run experiment ``name`` and return its :class:`Result` (record and arrays).

    Parameters
    ----------
    name : str
        An experiment (``ntkdyn list``).
    config : None, str or dict
        ``"smoke"``, ``"quick"`` (the default) or ``"paper"``; or a dict of overrides of the
        quick configuration (of the paper one with ``paper=True``). Keys and types:
        ``ntkdyn show NAME``.
    paper : bool
        Start from the paper-scale configuration.
    out : str or path-like, optional
        A folder: the result is cached in ``out/.cache`` and ``out/STEM.json``, ``.npz``,
        ``.csv`` and the figure (``formats``) are written. ``None`` (default): nothing is read
        or written; :meth:`Result.save` writes later.
    scheduler : str
        ``"serial"`` (default: in this process), ``"process"`` (a local pool; needs the
        ``if __name__ == "__main__":`` guard in a script), ``"local"`` or a Dask address.
    workers : int, optional
        Workers of a pool.
    cache : bool
        Reuse a cached result in ``out`` (only with ``out``).
    seed : int, optional
        The configuration's ``seed`` (every draw of the run derives from it).
    tag : str, optional
        Name the outputs ``NAME-TAG`` (default: ``NAME`` for a named configuration, else
        ``NAME-<config hash>``).
    overrides : dict, optional
        More overrides, applied after ``config`` (e.g. ``config="smoke", overrides={"n": 8}``).
    progress : bool
        A progress bar on stderr (default: none).
    formats : sequence of str
        Figure formats written into ``out`` (default ``("png",)``).
    dpi : float, optional
        Resolution of raster figures (default 110).

    Returns
    -------
    Result
    """
    experiment = get_experiment(_check_name(name))
    config_name, changes = _config_arguments(experiment, config, paper, overrides, seed)
    for flag, value in (("cache", cache), ("progress", progress)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be True or False, got {value!r}")
    folder = None if out is None else _folder(out)
    resolved = resolve_config(experiment, config_name, changes)
    stem = output_stem(experiment, config_name, resolved, tag)
    record, arrays = execute(experiment.name, config_name, changes, folder, cache, scheduler,
                             workers, progress, stem, formats, dpi)
    return Result(record, arrays, folder)


def load(out, name: str) -> Result:
    """The :class:`Result` saved as ``out/NAME.json`` and ``out/NAME.npz``.

    Parameters
    ----------
    out : str or path-like
        The folder.
    name : str
        The file name without suffix: the experiment (``"ntk-width"``), or a changed
        configuration's ``NAME-TAG`` (:attr:`Result.stem`).

    Returns
    -------
    Result
        Its ``arrays`` are empty when no ``.npz`` was saved (outputs of ntkdyn before 0.2).
    """
    folder = _folder(out)
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise ValueError(f"name must be an output file name without folder or suffix, like "
                         f"'ntk-width', got {name!r}")
    path = folder / f"{name}.json"
    if not path.is_file():
        found = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
        raise FileNotFoundError(f"no result {path}; results in {folder}: {found or 'none'}")
    record = read_record(path)
    arrays = {}
    npz = path.with_suffix(".npz")
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"malformed result file {npz}: {exc.__class__.__name__}") from None
    return Result(record, arrays, folder)


# ------------------------------------------------------------------------------ describe
def _type_text(experiment: Experiment, key: str, value) -> str:
    """The declared type of ``key`` (``ntkdyn.figures.config_types``), else the Python type."""
    declared = getattr(experiment, "config_type", None)
    kind = declared(key) if callable(declared) else None
    if kind is not None and hasattr(kind, "describe"):
        return kind.describe()
    if isinstance(value, list):
        inner = sorted({type(v).__name__ for v in value})
        return f"list of {'/'.join(inner)}" if inner else "list"
    return type(value).__name__


def describe(name: str, config_name: str = "quick") -> dict:
    """What an experiment takes and reports: the keys of its configurations with their types,
    its declared numbers (for ``config_name``), its controls and regimes.

    Returns
    -------
    dict
        ``{"name", "description", "computation": "sweep" | "in-process", "config": [{"key",
        "type", "smoke", "quick", "paper"}], "config_name", "numbers": [{"name", "kind",
        "target", "target_type", "low", "high", "description"}], "controls": [{"name",
        "description"}], "regimes": {name: text}}``.
    """
    experiment = get_experiment(_check_name(name))
    if config_name not in CONFIG_NAMES:
        raise ValueError(f"config_name must be one of {CONFIG_NAMES}, got {config_name!r}")
    configs = {c: experiment.config(c) for c in CONFIG_NAMES}
    rows = [{"key": key, "type": _type_text(experiment, key, configs["quick"][key]),
             **{c: configs[c][key] for c in CONFIG_NAMES}} for key in configs["quick"]]
    numbers = []
    for key, number in experiment.declared(configs[config_name]).items():
        low, high = number.target.bounds()
        numbers.append({"name": key, "kind": number.kind, "target": str(number.target),
                        "target_type": number.target.type, "low": low, "high": high,
                        "description": number.description})
    return {"name": experiment.name, "description": experiment.description,
            "computation": "sweep" if experiment.is_sweep else "in-process",
            "config": rows, "config_name": config_name, "numbers": numbers,
            "controls": [{"name": c.name, "description": c.description}
                         for c in experiment.controls],
            "regimes": dict(experiment.regimes)}
