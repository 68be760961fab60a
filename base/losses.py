"""The loss every trainer and flow in ntkdyn minimises: the mean squared error.

``L = 1/(2n) sum_i ||f(x_i) - y_i||^2`` over ``n`` examples with ``k`` outputs each
(docs/conventions.md); its gradient with respect to the outputs is ``(f - Y) / n``.
"""
from __future__ import annotations

import numpy as np


def mse(residual):
    """``1/(2n) sum ||r_i||^2`` of a residual ``r = f - Y`` of shape ``(n,)`` or ``(n, k)``.

    Parameters
    ----------
    residual : array_like, shape (n,), (n, k) or (..., n, k)
        Outputs minus targets; a stack of residuals gives one loss per leading index.

    Returns
    -------
    float or numpy.ndarray, shape (...)
        The loss (an array of losses for a stack).
    """
    r = np.asarray(residual)
    if r.ndim <= 2:
        return 0.5 * float(np.vdot(r, r)) / r.shape[0]
    return 0.5 * np.sum(r * r, axis=(-2, -1)) / r.shape[-2]


def mse_and_output_gradient(outputs, targets):
    """The loss and ``dL/df = (f - Y) / n`` for outputs and targets of shape ``(n, k)``.

    Parameters
    ----------
    outputs : numpy.ndarray, shape (n, k)
        The network outputs ``f``.
    targets : numpy.ndarray, shape (n, k)
        The targets ``Y``.

    Returns
    -------
    loss : float
        ``1/(2n) ||f - Y||_F^2``.
    gradient : numpy.ndarray, shape (n, k)
        ``(f - Y) / n``.
    """
    r = outputs - targets
    n = r.shape[0]
    return 0.5 * float(np.vdot(r, r)) / n, r / n
