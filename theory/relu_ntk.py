"""Infinite-width NNGP and NTK of fully-connected networks (arc-cosine recursion).

For ``MLP([d, m, ..., m, 1])`` with ``L = depth`` weight matrices in the NTK parameterization
(``h_1 = W_1 x / sqrt(d)``, ``h_{l+1} = W_{l+1} phi(h_l) / sqrt(m)``, ``W ~ N(0, sigma^2)``),
as ``m -> infinity`` (Jacot et al. 2018; Cho & Saul 2009; Arora et al. 2019):

    Sigma_1(x, x') = sigma^2 x.x' / d,     Theta_1(x, x') = x.x' / d,
    Sigma_{l+1}    = sigma^2 E[phi(u) phi(v)],
    Theta_{l+1}    = E[phi(u) phi(v)] + sigma^2 E[phi'(u) phi'(v)] Theta_l,

with ``(u, v) ~ N(0, [[Sigma_l(x,x), Sigma_l(x,x')], [., Sigma_l(x',x')]])``. The output
kernels are ``Sigma_L`` (NNGP) and ``Theta_L`` (NTK). The Gaussian expectations are closed
forms: ReLU (arc-cosine kernels of degree 1 and 0, :mod:`ntkdyn.theory.arccos`), erf
(Williams 1997) and linear.
"""
from __future__ import annotations

import numpy as np

from ..base.validation import as_array, positive_float, positive_int
from .arccos import angle, arccos_degree0, arccos_degree1


def _relu_moments(cov, var1, var2):
    """``E[relu(u) relu(v)]`` and ``E[step(u) step(v)]``: arc-cosine kernels of degree 1 and 0."""
    norms = np.sqrt(var1 * var2)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(norms > 0, cov / norms, 0.0)
    theta = angle(rho)
    return arccos_degree1(theta, norms), arccos_degree0(theta)


def _erf_moments(cov, var1, var2):
    """``E[erf(u) erf(v)] = (2/pi) asin(2c / sqrt((1+2a)(1+2b)))`` and ``E[erf'(u) erf'(v)]``."""
    s = (1 + 2 * var1) * (1 + 2 * var2)
    e_phi = 2 / np.pi * np.arcsin(np.clip(2 * cov / np.sqrt(s), -1.0, 1.0))
    e_dphi = 4 / np.pi / np.sqrt(s - 4 * cov * cov)
    return e_phi, e_dphi


def _linear_moments(cov, var1, var2):
    return cov, np.ones_like(cov)


# The empirical NTK at initialisation averages m i.i.d. per-unit terms in every layer, so its
# deviation from the infinite-width limit is O(m^(-1/2)) (central limit theorem; Jacot et al. 2018,
# Arora et al. 2019): the exponent of ||K_m - K_inf||_F / ||K_inf||_F in the width.
NTK_FLUCTUATION_EXPONENT = -0.5

GAUSSIAN_MOMENTS = {"relu": _relu_moments, "erf": _erf_moments, "linear": _linear_moments}


def _kernels(X, X2, depth, activation, init_scale):
    X = as_array(X, "X", ndim=2)
    symmetric = X2 is None
    X2 = X if symmetric else as_array(X2, "X2", ndim=2)
    if X2.shape[1] != X.shape[1]:
        raise ValueError(f"X2 must have {X.shape[1]} columns like X, got shape {X2.shape}")
    depth = positive_int(depth, "depth")
    sigma2 = positive_float(init_scale, "init_scale") ** 2
    if activation not in GAUSSIAN_MOMENTS:
        raise ValueError(f"activation must be one of {sorted(GAUSSIAN_MOMENTS)} for the "
                         f"infinite-width kernels, got {activation!r}")
    moments = GAUSSIAN_MOMENTS[activation]
    d = X.shape[1]
    dot = X @ X2.T / d
    diag1 = np.einsum("ij,ij->i", X, X) / d
    diag2 = diag1 if symmetric else np.einsum("ij,ij->i", X2, X2) / d
    sigma, v1, v2 = sigma2 * dot, sigma2 * diag1, sigma2 * diag2
    theta = dot.copy()
    for _ in range(depth - 1):
        e_phi, e_dphi = moments(sigma, v1[:, None], v2[None, :])
        diag_phi1 = moments(v1, v1, v1)[0]
        diag_phi2 = diag_phi1 if symmetric else moments(v2, v2, v2)[0]
        theta = e_phi + sigma2 * e_dphi * theta
        sigma = sigma2 * e_phi
        v1, v2 = sigma2 * diag_phi1, sigma2 * diag_phi2
    return sigma, theta


def infinite_nngp(X, X2=None, depth=2, activation="relu", init_scale=1.0) -> np.ndarray:
    """NNGP kernel ``Sigma_L(x, x')`` of the scalar output of a ``depth``-matrix MLP.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs, one per row.
    X2 : array_like, shape (n2, d), optional
        Second inputs (default: ``X``, a symmetric kernel).
    depth : int, optional
        ``L``, the number of weight matrices (default 2: one hidden layer).
    activation : {"relu", "erf", "linear"}, optional
        The hidden activation ``phi``.
    init_scale : float, optional
        ``sigma``, the standard deviation of every weight at initialisation.

    Returns
    -------
    numpy.ndarray, shape (n, n2)
        ``Sigma_L(x_i, x2_j)``.
    """
    return _kernels(X, X2, depth, activation, init_scale)[0]


def infinite_ntk(X, X2=None, depth=2, activation="relu", init_scale=1.0) -> np.ndarray:
    """Neural tangent kernel ``Theta_L(x, x')`` of the scalar output of a ``depth``-matrix MLP.

    The empirical NTK of ``MLP([d, m, ..., m, k], init_scale=sigma)`` converges to
    ``Theta_L`` on each head (and to ``k Theta_L`` for ``heads="sum"``) as ``m -> infinity``.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs, one per row.
    X2 : array_like, shape (n2, d), optional
        Second inputs (default: ``X``, a symmetric kernel).
    depth : int, optional
        ``L``, the number of weight matrices (default 2: one hidden layer).
    activation : {"relu", "erf", "linear"}, optional
        The hidden activation ``phi``.
    init_scale : float, optional
        ``sigma``, the standard deviation of every weight at initialisation.

    Returns
    -------
    numpy.ndarray, shape (n, n2)
        ``Theta_L(x_i, x2_j)``.
    """
    return _kernels(X, X2, depth, activation, init_scale)[1]
