"""Input checks shared by every layer of ntkdyn (theory has no dependencies, so they live here).

Each check raises ``ValueError`` or ``TypeError`` whose message names the argument and
states what was expected.
"""
from __future__ import annotations

import numbers

import numpy as np


def as_array(value, name: str, ndim: int | tuple[int, ...] | None = None,
             dtype=np.float64, finite: bool = True, keep_float32: bool = False) -> np.ndarray:
    """Convert ``value`` to a floating array, checking its dimension and finiteness.

    Parameters
    ----------
    value : array_like
        Real numbers (booleans and integers are converted); a complex array is refused rather
        than silently losing its imaginary part.
    name : str
        The argument's name, used in the messages.
    ndim : int or tuple of int, optional
        The allowed numbers of dimensions.
    dtype : dtype
        The floating dtype to convert to (default float64).
    finite : bool
        Refuse NaN and infinite entries.
    keep_float32 : bool
        Keep a float32 input as float32 instead of converting it to ``dtype``.

    Returns
    -------
    ndarray

    Raises
    ------
    TypeError
        Not array-like (ragged nested lists included), not numeric, or complex.
    ValueError
        The wrong number of dimensions, or non-finite entries with ``finite``.
    """
    try:
        arr = np.asarray(value)
    except Exception:  # numpy raises many kinds (ragged lists: ValueError)
        raise TypeError(f"{name} must be array-like (a ragged list is not), got "
                        f"{type(value).__name__}") from None
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real, got a complex array (dtype {arr.dtype}); pass "
                        f"its real part explicitly if that is what is meant")
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


def float_arrays(value, name: str, ndim: int | tuple[int, ...] | None = None,
                 dtype=np.float64, keep_float32: bool = False,
                 finite: bool = True) -> list[np.ndarray]:
    """Check a list of real floating arrays (parameters, updates, directions), one per layer.

    Each entry goes through :func:`as_array` as ``name[i]``; an integer or boolean entry is
    refused (a parameter list of integers is a mistake, not a conversion to make silently).

    Parameters
    ----------
    value : list or tuple of array_like
    name : str
        The argument's name, used in the messages (``params``, ``params[1]``).
    ndim, dtype, keep_float32, finite :
        As in :func:`as_array`, for every entry.

    Returns
    -------
    list of ndarray

    Raises
    ------
    TypeError
        Not a list or tuple, or an entry that is not a real floating array.
    ValueError
        An entry of the wrong dimension or, with ``finite``, with NaN or inf entries.
    """
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of real floating arrays, got "
                        f"{type(value).__name__}")
    out = []
    for i, entry in enumerate(value):
        label = f"{name}[{i}]"
        try:
            raw = np.asarray(entry)
        except Exception:  # ragged: as_array says so
            raw = entry
        kind = getattr(raw, "dtype", None)
        if kind is not None and (kind == bool or np.issubdtype(kind, np.integer)):
            raise TypeError(f"{label} must be a real floating array, got dtype {kind}")
        out.append(as_array(raw, label, ndim=ndim, dtype=dtype, keep_float32=keep_float32,
                            finite=finite))
    return out


def positive_int(value, name: str, minimum: int = 1) -> int:
    """Check that ``value`` is an integer >= ``minimum``.

    Parameters
    ----------
    value : int
        The value to check (any ``numbers.Integral`` but ``bool``).
    name : str
        The argument's name, used in the messages.
    minimum : int, default 1
        The smallest allowed value.

    Returns
    -------
    int
        ``value`` as a Python ``int``.

    Raises
    ------
    TypeError
        ``value`` is not an integer (a ``bool`` included).
    ValueError
        ``value < minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def positive_float(value, name: str, allow_zero: bool = False, allow_inf: bool = False) -> float:
    """Check that ``value`` is a real number > 0 (or >= 0 with ``allow_zero``).

    Parameters
    ----------
    value : float
        The value to check (any ``numbers.Real`` but ``bool``).
    name : str
        The argument's name, used in the messages.
    allow_zero : bool, default False
        Accept ``0``.
    allow_inf : bool, default False
        Accept ``+inf``.

    Returns
    -------
    float
        ``value`` as a Python ``float``.

    Raises
    ------
    TypeError
        ``value`` is not a real number (a ``bool`` included).
    ValueError
        ``value`` is NaN, infinite (without ``allow_inf``), negative, or zero (without
        ``allow_zero``).
    """
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
    """Check that ``dtype`` names a real floating dtype (float32 or float64, ...).

    Parameters
    ----------
    dtype : dtype or str or type
        Anything ``numpy.dtype`` accepts.
    name : str, default "dtype"
        The argument's name, used in the messages.

    Returns
    -------
    numpy.dtype

    Raises
    ------
    TypeError
        ``dtype`` is not a dtype, or not a real floating one.
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be a floating dtype such as float64, got {dtype!r}") from None
    if not np.issubdtype(dt, np.floating):
        raise TypeError(f"{name} must be a real floating dtype such as float64, got {dt}")
    return dt


def one_of(value, name: str, choices) -> str:
    """Check that ``value`` is one of ``choices``.

    Parameters
    ----------
    value : str
        The value to check.
    name : str
        The argument's name, used in the messages.
    choices : collection of str
        The allowed values (sorted in the message).

    Returns
    -------
    str
        ``value`` unchanged.

    Raises
    ------
    ValueError
        ``value`` is not in ``choices``.
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def as_generator(seed, name: str = "seed") -> np.random.Generator:
    """A ``numpy.random.Generator`` from an int seed, a sequence of ints (e.g.
    ``[base_seed, width, replicate]``, mixed by ``SeedSequence``) or an existing generator.

    Parameters
    ----------
    seed : int, list or tuple of int, numpy.random.SeedSequence or numpy.random.Generator
        A non-negative int, a non-empty list or tuple of non-negative ints, a
        ``SeedSequence``, or a generator (returned unchanged, not copied).
    name : str, default "seed"
        The argument's name, used in the messages.

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    TypeError
        ``seed`` is none of the accepted kinds (a ``bool`` included).
    ValueError
        ``seed`` is a negative int.
    """
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
