"""Declared types and ranges of the configuration keys of the experiments.

Every key of every configuration (smoke, quick, paper) of every experiment has a declared
type: a :class:`ConfigType` with ``check(key, value) -> value`` (the value, normalised: an
integral float such as ``1e3`` becomes the integer ``1000``, a tuple a list) and
``describe()``, the one-line text of what it accepts (for error messages and the docs). A key
takes its type from the experiment's ``config_types`` (:class:`ntkdyn.figures.experiment.
Experiment`) when it declares one, else from :data:`COMMON`, the keys shared by experiments
(``seed``, ``seeds``, ``n``, ``d``, ``width``, ``steps``, ``lr``, ``log2_widths``, the data keys
...). :func:`ntkdyn.figures.runner.resolve_config` checks every value of a configuration
before any work; a wrong value is a :class:`ConfigValueError` (a ``ValueError``) naming the
key, the value and what is expected, in one line.

The types: :func:`positive_int`, :func:`non_negative_int`, :class:`Int` (a range),
:func:`positive_float`, :func:`non_negative_float`, :func:`finite_float`, :func:`probability`,
:func:`open_fraction`, :class:`Float` (a range), :class:`Choice`, :class:`Bool`,
:class:`Null`, :class:`ListOf` (non-empty by default), :class:`AnyOf` (the first type that
accepts the value).
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Iterable

__all__ = [
    "AnyOf",
    "Bool",
    "COMMON",
    "Choice",
    "ConfigType",
    "ConfigValueError",
    "Float",
    "Int",
    "ListOf",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_LOG2_WIDTH",
    "Null",
    "activation_names",
    "dataset_names",
    "finite_float",
    "non_negative_float",
    "non_negative_int",
    "open_fraction",
    "positive_float",
    "positive_int",
    "preprocessing_names",
    "probability",
    "short_repr",
]

#: Largest integer a configuration takes (an int64 holds it, so NumPy never overflows).
MAX_INT = 2**62


class ConfigValueError(ValueError):
    """A configuration value outside its declared type: names the key, the value and what is
    expected, in one line.

    Parameters
    ----------
    key : str
    value : object
        The value refused.
    expected : str
        What the type accepts (its ``describe()``).
    detail : str
        Why, when the value is a list (``"item 2 is 30.5"``), else empty.
    where, like : str
        The experiment and a valid value (its default), when known (:meth:`located`).
    """

    def __init__(self, key: str, value, expected: str, detail: str = "", where: str = "",
                 like: str = ""):
        self.key, self.value, self.expected, self.detail = key, value, expected, detail
        self.where, self.like = where, like
        suffix = f" ({detail})" if detail else ""
        if where:
            super().__init__(f"configuration key {key!r} of {where} expects "
                             + (f"a value like {like} ({expected})" if like else expected)
                             + f", got {short_repr(value)}{suffix}")
        else:
            super().__init__(f"{key} expects {expected}, got {short_repr(value)}{suffix}")

    def located(self, where: str, default=None) -> "ConfigValueError":
        """The same error naming the experiment ``where`` and a valid value ``default``."""
        return type(self)(self.key, self.value, self.expected, self.detail, where,
                          "" if default is None else short_repr(default, 40))

    def __reduce__(self):
        return type(self), (self.key, self.value, self.expected, self.detail, self.where,
                            self.like)


def short_repr(value, limit: int = 60) -> str:
    """``repr(value)`` cut to about ``limit`` characters (a huge list stays one short line)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return text[:limit - 5] + " ...]" if text[:1] == "[" else text[:limit - 4] + " ..."


class ConfigType:
    """A declared type: ``check(key, value)`` returns the normalised value or raises
    :class:`ConfigValueError`; ``describe()`` says what it accepts."""

    def describe(self) -> str:  # pragma: no cover - every type overrides it
        raise NotImplementedError

    def accepts(self, value) -> bool:
        """Whether ``check`` accepts ``value``."""
        try:
            self.normalise(value)
        except (ValueError, TypeError, OverflowError):
            return False
        return True

    def normalise(self, value):
        """The normalised value; raises ``ValueError`` (the reason) otherwise."""
        raise NotImplementedError  # pragma: no cover

    def check(self, key: str, value):
        """``value`` normalised, or :class:`ConfigValueError` naming ``key`` and ``value``."""
        try:
            return self.normalise(value)
        except (ValueError, TypeError, OverflowError) as exc:
            reason = str(exc)
            raise ConfigValueError(key, value, self.describe(),
                                   "" if reason in ("", "-") else reason) from None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.describe()}>"


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _range_text(noun: str, low, high, low_open=False, high_open=False, fmt=str) -> str:
    if low is not None and high is not None:
        left, right = ("(" if low_open else "["), (")" if high_open else "]")
        return f"{noun} in {left}{fmt(low)}, {fmt(high)}{right}"
    if low is not None:
        return f"{noun} {'>' if low_open else '>='} {fmt(low)}"
    if high is not None:
        return f"{noun} {'<' if high_open else '<='} {fmt(high)}"
    return noun


class Int(ConfigType):
    """An integer in ``[low, high]`` (``high`` at most :data:`MAX_INT`). An integral float
    (``2.0``, ``1e8``, as JSON writes them) is taken as the integer; ``2.5``, NaN, inf and
    booleans are refused."""

    def __init__(self, low: int | None = None, high: int | None = None):
        self.low = low
        self.high = MAX_INT if high is None else min(int(high), MAX_INT)

    def describe(self) -> str:
        if self.high == MAX_INT:
            return _range_text("an integer", self.low, None)
        return _range_text("an integer", self.low, self.high)

    def normalise(self, value):
        if not _is_real(value):
            raise TypeError("-")
        if isinstance(value, numbers.Integral):
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value) or value != math.floor(value):
                raise ValueError("-")
            if abs(value) > MAX_INT:
                raise ValueError("-")
            value = int(value)
        if (self.low is not None and value < self.low) or value > self.high:
            raise ValueError("-")
        return value


def positive_int(high: int | None = None) -> Int:
    """An integer >= 1."""
    return Int(1, high)


def non_negative_int(high: int | None = None) -> Int:
    """An integer >= 0."""
    return Int(0, high)


class Float(ConfigType):
    """A finite real number in a range (each side closed or open, or unbounded); integers are
    taken as floats, NaN, inf and booleans refused."""

    def __init__(self, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False):
        self.low, self.high = low, high
        self.low_open, self.high_open = low_open, high_open

    def describe(self) -> str:
        return _range_text("a finite number", self.low, self.high, self.low_open,
                           self.high_open, fmt=lambda v: f"{v:g}")

    def normalise(self, value):
        if not _is_real(value):
            raise TypeError("-")
        try:
            value = float(value)
        except OverflowError:
            raise ValueError("-") from None
        if not math.isfinite(value):
            raise ValueError("-")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise ValueError("-")
        if self.high is not None and (value > self.high
                                      or (self.high_open and value == self.high)):
            raise ValueError("-")
        return value


def positive_float() -> Float:
    """A finite number > 0."""
    return Float(0.0, low_open=True)


def non_negative_float() -> Float:
    """A finite number >= 0."""
    return Float(0.0)


def finite_float() -> Float:
    """Any finite number."""
    return Float()


def probability() -> Float:
    """A number in ``[0, 1]``."""
    return Float(0.0, 1.0)


def open_fraction() -> Float:
    """A number in ``(0, 1)``."""
    return Float(0.0, 1.0, low_open=True, high_open=True)


class Choice(ConfigType):
    """One of a set of strings (or a callable giving them, looked up when checking)."""

    def __init__(self, options: Iterable[str] | Callable[[], Iterable[str]]):
        self._options = options

    @property
    def options(self) -> tuple[str, ...]:
        options = self._options() if callable(self._options) else self._options
        return tuple(options)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def normalise(self, value):
        if not isinstance(value, str):
            raise TypeError("-")
        if value not in self.options:
            raise ValueError("-")
        return value


class Bool(ConfigType):
    """``true`` or ``false`` (JSON booleans only: ``1`` and ``"yes"`` are refused)."""

    def describe(self) -> str:
        return "true or false"

    def normalise(self, value):
        if not isinstance(value, bool):
            raise TypeError("-")
        return value


class Null(ConfigType):
    """``null`` (``None``)."""

    def describe(self) -> str:
        return "null"

    def normalise(self, value):
        if value is not None:
            raise TypeError("-")
        return None


class ListOf(ConfigType):
    """A list of ``item`` values: at least ``min_len`` (1: non-empty) and at most ``max_len``
    of them, optionally ``distinct`` or strictly ``increasing``."""

    def __init__(self, item: ConfigType, min_len: int = 1, max_len: int | None = None,
                 distinct: bool = False, increasing: bool = False):
        self.item = item
        self.min_len, self.max_len = int(min_len), max_len
        self.distinct, self.increasing = distinct, increasing

    def describe(self) -> str:
        if self.max_len is not None and self.max_len == self.min_len:
            size = f"a list of {self.min_len}"
        elif self.min_len == 0:
            size = "a list (possibly empty) of"
        elif self.min_len == 1:
            size = "a non-empty list of"
        else:
            size = f"a list of at least {self.min_len}"
        extra = ("strictly increasing " if self.increasing
                 else "distinct " if self.distinct else "")
        text = f"{size} {extra}{_plural(self.item.describe())}"
        if self.max_len is not None and self.max_len != self.min_len:
            text += f" (at most {self.max_len})"
        return text

    def normalise(self, value):
        if not isinstance(value, (list, tuple)):
            raise TypeError("-")
        if len(value) < self.min_len:
            raise ValueError("-" if len(value) == 0 else f"{len(value)} item(s)")
        if self.max_len is not None and len(value) > self.max_len:
            raise ValueError(f"{len(value)} items")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(self.item.normalise(item))
            except (ValueError, TypeError, OverflowError):
                raise ValueError(f"item {i} is {short_repr(item, 30)}") from None
        if self.distinct and len(set(map(repr, out))) != len(out):
            raise ValueError("repeated items")
        if self.increasing and any(b <= a for a, b in zip(out, out[1:])):
            raise ValueError("not strictly increasing")
        return out


class AnyOf(ConfigType):
    """The first of ``types`` that accepts the value (``null`` or a list, ...)."""

    def __init__(self, *types: ConfigType):
        self.types = types

    def describe(self) -> str:
        return " or ".join(t.describe() for t in self.types)

    def normalise(self, value):
        for t in self.types:
            try:
                return t.normalise(value)
            except (ValueError, TypeError, OverflowError):
                continue
        raise ValueError("-")


def _plural(text: str) -> str:
    """``"an integer >= 1"`` -> ``"integers >= 1"`` (the item text inside a list's)."""
    for article, noun, plural in (("an ", "integer", "integers"),
                                  ("a ", "finite number", "finite numbers"),
                                  ("a ", "non-empty list", "non-empty lists"),
                                  ("a ", "list", "lists")):
        if text.startswith(article + noun):
            return plural + text[len(article + noun):]
    if text.startswith("one of "):
        return "strings, each " + text
    return f"items, each {text}"


# --------------------------------------------------------------------------- name lists
def activation_names() -> tuple[str, ...]:
    """The activations of :data:`ntkdyn.base.activations.ACTIVATIONS`."""
    from ..base.activations import ACTIVATIONS
    return tuple(sorted(ACTIVATIONS))


def dataset_names() -> tuple[str, ...]:
    """Every name the ``dataset`` key accepts (:func:`ntkdyn.numerics.tasks.task_names`)."""
    from ..numerics.tasks import task_names
    return tuple(task_names())


def preprocessing_names() -> tuple[str, ...]:
    """The ``preprocessing`` names of :data:`ntkdyn.numerics.datafiles.PREPROCESSING`."""
    from ..numerics.datafiles import PREPROCESSING
    return tuple(PREPROCESSING)


#: The largest ``log2`` of a width: ``2 ** 62`` still fits an int64.
MAX_LOG2_WIDTH = 62
#: The deepest network a configuration asks for (weight matrices): signals vanish or explode
#: long before, and a depth is a list of layers in memory.
MAX_DEPTH = 1000

_ACTIVATION = Choice(activation_names)
_CLASS_LABEL = Int(0, 99)

#: The keys shared by experiments, with their types. An experiment overrides or adds keys with
#: ``Experiment(config_types={...})``.
COMMON: dict[str, ConfigType] = {
    # seeding and replicates
    "seed": non_negative_int(),
    "seeds": positive_int(),
    "replicates": positive_int(),
    # sizes
    "n": positive_int(),
    "n_train": positive_int(),
    "n_test": non_negative_int(),
    "d": positive_int(),
    "width": positive_int(),
    "widths": ListOf(positive_int()),
    "log2_widths": ListOf(Int(0, MAX_LOG2_WIDTH)),
    "depths": ListOf(positive_int(MAX_DEPTH)),
    "hidden_layers": positive_int(MAX_DEPTH),
    # training
    "steps": positive_int(),
    "max_steps": positive_int(),
    "lr": positive_float(),
    "lrs": ListOf(positive_float()),
    "num_records": positive_int(),
    "record_every": positive_int(),
    "gamma": positive_float(),
    "gammas": ListOf(positive_float()),
    "activation": _ACTIVATION,
    "activations": ListOf(_ACTIVATION),
    # ODE tolerances and time spans
    "rtol": positive_float(),
    "atol": positive_float(),
    "t_final": positive_float(),
    "t_max": positive_float(),
    # fits and fractions
    "fit_from": positive_int(),
    "fraction": open_fraction(),
    "loss_fraction": open_fraction(),
    "lr_factor": positive_float(),
    # data (numerics.tasks.DATA_KEYS)
    "dataset": Choice(dataset_names),
    "classes": AnyOf(Null(), Choice(("odd-even",)), ListOf(_CLASS_LABEL, distinct=True)),
    "preprocessing": Choice(preprocessing_names),
}
