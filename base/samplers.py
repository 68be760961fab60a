"""Random inputs and frames used by experiments and tests on both sides.

Every sampler takes ``seed`` (an int, a list of ints, or a ``numpy.random.Generator`` whose
stream it continues, see :func:`ntkdyn.base.validation.as_generator`).
"""
from __future__ import annotations

import numpy as np

from .validation import as_generator, positive_int


def sphere_inputs(n: int, d: int, seed=0) -> np.ndarray:
    """``n`` points uniform on the sphere of radius ``sqrt(d)`` (so ``x.x / d = 1``).

    Parameters
    ----------
    n : int
        The number of points.
    d : int
        The dimension.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream (a generator's stream is continued).

    Returns
    -------
    numpy.ndarray, shape (n, d)
        The points, one per row.
    """
    n, d = positive_int(n, "n"), positive_int(d, "d")
    X = as_generator(seed).standard_normal((n, d))
    return X * (np.sqrt(d) / np.linalg.norm(X, axis=1, keepdims=True))


def orthonormal_frame(rows: int, cols: int, seed=0) -> np.ndarray:
    """A Haar-distributed ``rows x cols`` matrix with orthonormal columns (``rows >= cols``).

    The Q factor of a Gaussian matrix with the signs of ``diag(R)`` fixed positive
    (Mezzadri 2007), which makes the distribution exactly Haar.

    Parameters
    ----------
    rows, cols : int
        The shape, ``rows >= cols``.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream (a generator's stream is continued).

    Returns
    -------
    numpy.ndarray, shape (rows, cols)
        A matrix with ``Q^T Q = I_cols``.
    """
    rows, cols = positive_int(rows, "rows"), positive_int(cols, "cols")
    if cols > rows:
        raise ValueError(f"cols must be <= rows for orthonormal columns, got {rows} x {cols}")
    q, r = np.linalg.qr(as_generator(seed).standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))
