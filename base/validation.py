"""Input checks shared by every layer of ntkdyn (theory has no dependencies, so they live here).

Each check raises ``ValueError`` or ``TypeError`` whose message names the argument and
states what was expected.
"""
from __future__ import annotations

import numbers

import numpy as np


def as_array(value, name: str, ndim: int | tuple[int, ...] | None = None,
             dtype=np.float64, finite: bool = True, keep_float32: bool = False) -> np.ndarray:
    """Convert ``value`` to a floating array, checking its dimension and finiteness."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy raises many kinds
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if keep_float32 and arr.dtype == np.float32:
        pass
    else:
        arr = arr.astype(dtype, copy=False)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {want}, got shape {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return arr


def positive_int(value, name: str, minimum: int = 1) -> int:
    """Check that ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def positive_float(value, name: str, allow_zero: bool = False, allow_inf: bool = False) -> float:
    """Check that ``value`` is a real number > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if np.isnan(value) or (np.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_float_dtype(dtype, name: str = "dtype") -> np.dtype:
    """Check that ``dtype`` names a real floating dtype (float32 or float64, ...)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be a floating dtype such as float64, got {dtype!r}") from None
    if not np.issubdtype(dt, np.floating):
        raise TypeError(f"{name} must be a real floating dtype such as float64, got {dt}")
    return dt


def one_of(value, name: str, choices) -> str:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def as_generator(seed, name: str = "seed") -> np.random.Generator:
    """A ``numpy.random.Generator`` from an int seed, a sequence of ints (e.g.
    ``[base_seed, width, replicate]``, mixed by ``SeedSequence``) or an existing generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (list, tuple)) and seed and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in seed):
        return np.random.default_rng([int(s) for s in seed])
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.random.SeedSequence)):
        raise TypeError(f"{name} must be an int, a list of non-negative ints or a "
                        f"numpy.random.Generator, got {seed!r}")
    if isinstance(seed, numbers.Integral) and seed < 0:
        raise ValueError(f"{name} must be non-negative, got {seed}")
    return np.random.default_rng(seed)
