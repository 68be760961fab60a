"""Linear algebra on symmetric positive semi-definite matrices."""
from __future__ import annotations

import numpy as np

from .validation import as_array, positive_float


def psd_power(G, power: float) -> np.ndarray:
    """``G^power`` of a symmetric positive semi-definite matrix (negative eigenvalues set to 0).

    Parameters
    ----------
    G : array_like, shape (p, p)
        The matrix (symmetrised as ``(G + G^T) / 2`` before the eigendecomposition).
    power : float
        A positive exponent; ``1`` returns ``G`` itself.

    Returns
    -------
    numpy.ndarray, shape (p, p)
        ``V diag(max(lambda, 0)^power) V^T`` from the eigendecomposition of ``G``.
    """
    power = positive_float(power, "power")
    G = as_array(G, "G", ndim=2)
    if power == 1.0:
        return G
    evals, evecs = np.linalg.eigh(0.5 * (G + G.T))
    return (evecs * np.clip(evals, 0.0, None) ** power) @ evecs.T
