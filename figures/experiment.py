"""The experiment contract: declared numbers with kinds and typed targets, negative controls.

An experiment puts a theory beside a simulation and reports named numbers. Each number is
declared as one of three kinds:

``agreement``    theory against simulation, the theory side computed without the simulation's
                 outcome; held to a target, and counted in the headline;
``identity``     holds by construction (exact algebra, a consistency check): shown, held to its
                 tolerance, never counted as agreement;
``observation``  simulation against a qualitative claim (a sign, an ordering, a comparison of two
                 simulations), held to the claim.

Every number has a typed :class:`Target`: ``interval(low, high)``, ``at_least(low)``,
``at_most(high)`` or ``is_true()``. An experiment with agreement numbers declares at least one
:class:`Control`: a plausible wrong theory put through the same measurement. A control that fails
none of the agreement targets means the targets do not discriminate, and the run fails. Where a
theory is known not to hold, the target states the expected disagreement and ``regimes`` says so.

The runner (:mod:`ntkdyn.figures.runner`) owns seeding: ``run(point, seed)`` and
``compute(config, seed)`` receive a ``numpy.random.SeedSequence`` derived from the configuration's
``seed`` and, for a run, from the point itself (:func:`point_seed`), so a run's numbers do not
depend on the order in which runs execute or on the executor.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from .config_types import COMMON, ConfigType

KINDS = ("agreement", "identity", "observation")
CONFIG_NAMES = ("smoke", "quick", "paper")


@dataclass(frozen=True)
class Target:
    """A typed target: ``low <= value <= high`` with ``None`` for an open side, or ``is_true``."""

    type: str
    low: float | None = None
    high: float | None = None

    def __post_init__(self):
        if self.type not in ("interval", "at_least", "at_most", "is_true"):
            raise TypeError(f"unknown target type {self.type!r}")
        for side in (self.low, self.high):
            if side is not None and not (isinstance(side, (int, float)) and math.isfinite(side)):
                raise TypeError(f"target bounds must be finite numbers or None, got {side!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise TypeError(f"target interval is empty: [{self.low}, {self.high}]")

    def holds(self, value) -> bool:
        """Whether ``value`` meets the target (NaN never does)."""
        if value is None or not math.isfinite(float(value)):
            return False
        if self.type == "is_true":
            return float(value) == 1.0
        return ((self.low is None or float(value) >= self.low)
                and (self.high is None or float(value) <= self.high))

    def bounds(self) -> list:
        """``[low, high]`` for the JSON record, ``None`` (JSON ``null``) for an open side."""
        if self.type == "is_true":
            return [1.0, 1.0]
        return [None if self.low is None else float(self.low),
                None if self.high is None else float(self.high)]

    def __str__(self) -> str:
        if self.type == "is_true":
            return "true"
        if self.low is None:
            return f"<= {self.high:g}"
        if self.high is None:
            return f">= {self.low:g}"
        return f"[{self.low:g}, {self.high:g}]"


def interval(low: float, high: float) -> Target:
    """``low <= value <= high``."""
    return Target("interval", float(low), float(high))


def around(center: float, tolerance: float) -> Target:
    """``|value - center| <= tolerance`` (``center`` from theory code, never a literal guess)."""
    return Target("interval", float(center) - float(tolerance), float(center) + float(tolerance))


def at_least(low: float) -> Target:
    """``value >= low``."""
    return Target("at_least", float(low), None)


def at_most(high: float) -> Target:
    """``value <= high``."""
    return Target("at_most", None, float(high))


def is_true() -> Target:
    """A yes/no claim: the number is ``1.0`` (true) or ``0.0`` (false)."""
    return Target("is_true")


@dataclass(frozen=True)
class Number:
    """A declared number: its kind, its target and what it measures (one line)."""

    kind: str
    target: Target
    description: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise TypeError(f"number kind must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.target, Target):
            raise TypeError(f"a number's target must be a Target, got {self.target!r}")


def agreement(target: Target, description: str = "") -> Number:
    return Number("agreement", target, description)


def identity(target: Target, description: str = "") -> Number:
    return Number("identity", target, description)


def observation(target: Target, description: str = "") -> Number:
    return Number("observation", target, description)


@dataclass(frozen=True)
class Control:
    """A plausible wrong theory: ``apply(result, config)`` returns the result with the theory side
    replaced (never modifying its argument); the experiment's ``measure`` then scores it."""

    name: str
    description: str
    apply: Callable[[dict, dict], dict]


def replaced(**updates) -> Callable[[dict, dict], dict]:
    """A control's ``apply``: the result with each entry ``key`` replaced by ``fn(result)``
    (``replaced(k_inf=lambda r: 1.03 * r["k_inf"])``); the input is never modified."""
    def apply(result, config):
        return dict(result, **{key: fn(result) for key, fn in updates.items()})
    return apply


@dataclass(frozen=True)
class Experiment:
    """One experiment: configurations, declared numbers, controls, computation and plot.

    Parameters
    ----------
    name, description : str
        The CLI name (lower case with dashes) and one line for ``ntkdyn list --long``.
    configs : mapping
        ``{"smoke": ..., "quick": ..., "paper": ...}``, each a dict with the same keys, one of
        them ``seed``. ``smoke`` takes a few seconds (the test suite runs it), ``quick`` is what
        ``ntkdyn all`` runs, ``paper`` the paper-scale run.
    numbers : mapping or callable ``config -> mapping``
        ``{name: Number}``: every number ``measure`` returns, declared.
    measure : callable ``result -> {name: float}``
        The numbers of a result (theory beside simulation).
    plot : callable ``result -> matplotlib Figure``
    controls : sequence of Control
    regimes : mapping ``{name: text}``
        Where the theory is expected to fail, and which targets state that disagreement.
    compute : callable ``(config, seed) -> dict of arrays``, or
    runs, run, combine :
        ``runs(config) -> [point]``, ``run(point, seed) -> dict of arrays`` (one independent
        run, distributed and cached by the runner) and ``combine(config, results) -> dict``.
    config_types : mapping ``{key: ConfigType}``
        Types of the experiment's own keys, and overrides of the shared ones
        (:data:`ntkdyn.figures.config_types.COMMON`); every key of every configuration has a
        type from one or the other (:meth:`config_type`).
    memory : callable ``config -> bytes``, optional
        Peak memory of one computation's arrays (for a sweep: of the largest run, plus what the
        combined results hold); default :func:`ntkdyn.figures.footprint.default_memory`,
        from the size keys. :meth:`memory_bytes` adds the data and the records.
    dims : mapping ``{result key: (dimension name, ...)}``, optional
        Named dimensions of result arrays, one name per axis (``("depth", "width", "seed",
        "sample", "sample_2")``), for the ``xarray`` export (:meth:`ntkdyn.figures.api.Result.
        to_xarray`); an array not named here gets ``KEY_dim0, KEY_dim1, ...``.
    """

    name: str
    description: str
    configs: Mapping[str, dict]
    numbers: Mapping[str, Number] | Callable[[dict], Mapping[str, Number]]
    measure: Callable[[dict], dict]
    plot: Callable
    controls: tuple = ()
    regimes: Mapping[str, str] = field(default_factory=dict)
    compute: Callable | None = None
    runs: Callable | None = None
    run: Callable | None = None
    combine: Callable | None = None
    config_types: Mapping[str, ConfigType] = field(default_factory=dict)
    memory: Callable[[dict], int] | None = None
    dims: Mapping[str, tuple] = field(default_factory=dict)

    def __post_init__(self):
        where = f"experiment {self.name!r}"
        for key, kind in self.config_types.items():
            if not isinstance(kind, ConfigType):
                raise TypeError(f"{where}: config_types[{key!r}] must be a ConfigType, got "
                                f"{kind!r}")
        unknown = sorted(set(self.config_types) - set().union(*map(set, self.configs.values())))
        if unknown:
            raise TypeError(f"{where}: config_types names keys no configuration has: {unknown}")
        if self.memory is not None and not callable(self.memory):
            raise TypeError(f"{where}: memory must be a callable config -> bytes")
        if set(self.configs) != set(CONFIG_NAMES):
            raise TypeError(f"{where}: configs must be exactly {CONFIG_NAMES}, got "
                            f"{sorted(self.configs)}")
        keys = {name: set(c) for name, c in self.configs.items()}
        if len({frozenset(k) for k in keys.values()}) != 1:
            raise TypeError(f"{where}: smoke, quick and paper configs must have the same keys")
        if "seed" not in keys["quick"]:
            raise TypeError(f"{where}: configs must have a 'seed' key")
        sweep = (self.runs, self.run, self.combine)
        if (self.compute is not None) == any(f is not None for f in sweep):
            raise TypeError(f"{where}: give either compute or runs/run/combine")
        if self.compute is None and any(f is None for f in sweep):
            raise TypeError(f"{where}: runs, run and combine go together")
        for control in self.controls:
            if not isinstance(control, Control):
                raise TypeError(f"{where}: controls must be Control objects, got {control!r}")
        for config_name, config in self.configs.items():
            numbers = self.declared(config)
            if any(n.kind == "agreement" for n in numbers.values()) and not self.controls:
                raise TypeError(f"{where}: agreement numbers need at least one negative control")

    @property
    def is_sweep(self) -> bool:
        return self.compute is None

    def config(self, name: str = "quick") -> dict:
        if name not in CONFIG_NAMES:
            raise ValueError(f"configuration must be one of {CONFIG_NAMES}, got {name!r}")
        return dict(self.configs[name])

    def config_type(self, key: str) -> ConfigType | None:
        """The declared type of ``key``: the experiment's own, else the shared one (``None``
        when neither declares it)."""
        return self.config_types.get(key, COMMON.get(key))

    def check_config(self, config: dict) -> dict:
        """``config`` with every value checked against its declared type and normalised
        (:class:`ntkdyn.figures.config_types.ConfigValueError` on the first wrong one).

        A key without a declared type keeps its value (the test suite checks that every key of
        every registered experiment has one)."""
        out = {}
        for key, value in config.items():
            kind = self.config_type(key)
            out[key] = value if kind is None else kind.check(key, value)
        return out

    def memory_bytes(self, config: dict) -> int:
        """Estimated peak bytes of computing ``config``: :attr:`memory` (else
        :func:`ntkdyn.figures.footprint.default_memory`) plus the data and the per-step and
        per-replicate records every experiment keeps
        (:func:`ntkdyn.figures.footprint.data_bytes`,
        :func:`ntkdyn.figures.footprint.bookkeeping_bytes`)."""
        from .footprint import bookkeeping_bytes, data_bytes, default_memory
        own = self.memory(config) if self.memory is not None else default_memory(config)
        return int(own) + data_bytes(config) + bookkeeping_bytes(config)

    def declared(self, config: dict) -> dict[str, Number]:
        """The numbers declared for ``config`` (a mapping, or computed from the config)."""
        numbers = self.numbers(config) if callable(self.numbers) else self.numbers
        for key, number in numbers.items():
            if not isinstance(number, Number):
                raise TypeError(f"experiment {self.name!r}: number {key!r} must be declared as a "
                                f"Number (agreement/identity/observation), got {number!r}")
        return dict(numbers)

    def compute_serial(self, config: dict) -> dict:
        """All runs in this process, seeded as the runner seeds them."""
        if self.compute is not None:
            return self.compute(config, config_seed(config))
        points = self.runs(config)
        return self.combine(config, [self.run(p, point_seed(config, p)) for p in points])


def config_seed(config: dict) -> np.random.SeedSequence:
    """The seed of an in-process computation: ``SeedSequence(config["seed"])``."""
    return np.random.SeedSequence(int(config["seed"]))


def point_seed(config: dict, point: dict) -> np.random.SeedSequence:
    """The seed of one run: the configuration's ``seed`` as entropy and a stable hash of the point
    (without ``seed``) as spawn key, so every point has its own stream, independent of run order
    and executor."""
    payload = json.dumps({k: v for k, v in point.items() if k != "seed"}, sort_keys=True,
                         default=str).encode()
    digest = hashlib.sha256(payload).digest()
    key = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))
    return np.random.SeedSequence(int(config["seed"]), spawn_key=key)


@dataclass
class Verdict:
    """The checked numbers of one result: values, holds, control outcomes and failures."""

    numbers: dict
    declared: dict
    holds: dict
    controls: dict
    failures: list

    @property
    def ok(self) -> bool:
        return not self.failures


def evaluate(experiment: Experiment, config: dict, result: dict) -> Verdict:
    """Measure ``result``, check every declared number against its target, run the controls.

    Failures (each a name and reason): a target not met; a declared number missing from the
    measurement; a number measured but not declared; a NaN or infinite number; a control that
    fails none of the agreement targets.
    """
    declared = experiment.declared(config)
    numbers = {k: float(v) for k, v in experiment.measure(result).items()}
    failures = []
    for key in sorted(set(numbers) - set(declared)):
        failures.append(f"{key}: measured but not declared")
    for key in sorted(set(declared) - set(numbers)):
        failures.append(f"{key}: declared but missing from the result")
    for key, value in numbers.items():
        if not math.isfinite(value):
            failures.append(f"{key}: not finite ({value})")
    holds = {key: declared[key].target.holds(numbers[key]) for key in declared if key in numbers}
    failures += [f"{key}: {numbers[key]:.6g} misses its target {declared[key].target}"
                 for key, ok in holds.items() if not ok and math.isfinite(numbers[key])]
    agreement_keys = [k for k, n in declared.items() if n.kind == "agreement"]
    controls = {}
    for control in experiment.controls:
        wrong = control.apply(dict(result), config)
        control_numbers = {k: float(v) for k, v in experiment.measure(wrong).items()}
        fails = [k for k in agreement_keys
                 if not declared[k].target.holds(control_numbers.get(k, float("nan")))]
        controls[control.name] = {
            "description": control.description,
            # a wrong theory may give NaN or inf: recorded as None (JSON null), and a failure
            "agreement": {k: (control_numbers[k] if math.isfinite(control_numbers[k]) else None)
                          for k in agreement_keys if k in control_numbers},
            "fails": fails,
        }
        if not fails:
            failures.append(f"control {control.name}: rejected by no agreement target "
                            "(the targets do not discriminate this wrong theory)")
    return Verdict(numbers, declared, holds, controls, failures)
