"""Power-law fits: the exponents that scaling claims are stated in."""
from __future__ import annotations

import numpy as np


def loglog_slope(x, y) -> float:
    """Least-squares slope ``p`` of ``log y = p log x + c`` (the exponent of ``y ~ x^p``).

    Parameters
    ----------
    x, y : array_like, shape (m,)
        Positive values, at least two points.

    Returns
    -------
    float
        The fitted exponent ``p``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError(f"x and y must be 1-D of one length >= 2, got shapes {x.shape}, {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be positive for a log-log fit")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
