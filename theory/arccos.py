"""Arc-cosine kernels of degree 0 and 1: the Gaussian moments of the step and ReLU functions.

For ``(u, v)`` jointly Gaussian with zero mean, variances ``q1, q2`` and correlation
``cos theta`` (Cho & Saul 2009, sec. 2, with ``k_n = (1/pi) |x|^n |y|^n J_n(theta)``,
``J_0 = pi - theta``, ``J_1 = sin theta + (pi - theta) cos theta``):

    E[step(u) step(v)] = k_0 / 2 = (pi - theta) / (2 pi),
    E[relu(u) relu(v)] = k_1 / 2 = sqrt(q1 q2) / (2 pi) [sin theta + (pi - theta) cos theta].

They are the infinite-width limits of a ReLU layer's gate Gram ``phi'(H) phi'(H')^T / m`` and
feature Gram ``phi(H) phi(H')^T / m`` (:mod:`ntkdyn.theory.relu_ntk`,
:mod:`ntkdyn.theory.nfa`). Both functions take the angle ``theta`` in ``[0, pi]``.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..base.validation import as_array

__all__ = ["angle", "arccos_degree0", "arccos_degree1"]


def _real(value, name):
    """A real scalar unchanged (so that it broadcasts as before), else a checked array.

    Arrays keep float32; complex, non-numeric and non-finite values are refused naming ``name``.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return value
    return as_array(value, name, keep_float32=True)


def angle(cos):
    """``theta = arccos(cos)``, with ``cos`` clipped to ``[-1, 1]`` against rounding.

    Parameters
    ----------
    cos : array_like
        Cosines of the angles between pairs of inputs; any shape.

    Returns
    -------
    numpy.ndarray
        The angles in ``[0, pi]``, of the shape of ``cos``.
    """
    cos = _real(cos, "cos")
    return np.arccos(np.clip(cos, -1.0, 1.0))


def arccos_degree0(theta, scale=1.0):
    """Degree-0 arc-cosine kernel ``scale E[step(u) step(v)] = scale (pi - theta) / (2 pi)``.

    Parameters
    ----------
    theta : array_like
        Angle between the two inputs (see :func:`angle`); any shape.
    scale : float or array_like
        Prefactor, e.g. ``E[a^2] = sigma^2`` of a readout weight ``a ~ N(0, sigma^2)``
        (broadcast against ``theta``).

    Returns
    -------
    numpy.ndarray
        The kernel values, of the broadcast shape of ``theta`` and ``scale``.
    """
    theta = _real(theta, "theta")
    scale = _real(scale, "scale")
    return scale * (np.pi - theta) / (2 * np.pi)


def arccos_degree1(theta, norms=1.0):
    """Degree-1 arc-cosine kernel ``E[relu(u) relu(v)] = norms / (2 pi) J_1(theta)``.

    ``J_1(theta) = sin theta + (pi - theta) cos theta``.

    Parameters
    ----------
    theta : array_like
        Angle between the two inputs (see :func:`angle`).
    norms : array_like
        ``sqrt(q1 q2)``, the product of the standard deviations of ``u`` and ``v``
        (broadcast against ``theta``).

    Returns
    -------
    numpy.ndarray
        The kernel values, of the broadcast shape of ``theta`` and ``norms``.
    """
    theta = _real(theta, "theta")
    norms = _real(norms, "norms")
    return norms / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
