"""Recursive Feature Machines: kernel ridge regression that learns its own Mahalanobis metric.

Radhakrishnan, Beaglehole, Pandit & Belkin (2024), Science 383:1461: a kernel machine whose
feature matrix ``M`` is replaced, round after round, by the average gradient outer product
(AGOP) of its own predictor, the kernel-machine counterpart of the neural feature ansatz
measured for networks in :mod:`numerics.features`. The kernel is the Mahalanobis Laplace
kernel ``k(x, z) = exp(-||x - z||_M / L)``.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg

from ..base.linalg import psd_power
from ..base.validation import as_array, positive_float, positive_int

__all__ = ["RecursiveFeatureMachine", "laplace_kernel"]


def _sq_distances(X, Z, M, same):
    """``D_ij = ||x_i - z_j||_M^2`` clipped at zero, ``(n, n')``; exact zeros on the diagonal."""
    XM = X @ M
    x2 = np.einsum("ij,ij->i", XM, X)
    z2 = x2 if same else np.einsum("ij,jk,ik->i", Z, M, Z)
    D = x2[:, None] + z2[None, :] - 2.0 * (XM @ Z.T)
    np.maximum(D, 0.0, out=D)
    if same:
        np.fill_diagonal(D, 0.0)
    return D


def _check_M(M, d):
    if M is None:
        return np.eye(d)
    M = as_array(M, "M", ndim=2)
    if M.shape != (d, d):
        raise ValueError(f"M must have shape ({d}, {d}), got {M.shape}")
    return M


def laplace_kernel(X, Z=None, M=None, bandwidth: float = 10.0) -> np.ndarray:
    """Mahalanobis Laplace kernel ``k(x, z) = exp(-||x - z||_M / L)``, ``||v||_M = sqrt(v^T M v)``.

    Parameters
    ----------
    X : array, shape (n, d)
    Z : array, shape (n', d), optional
        Second argument; default ``X`` (then the diagonal is exactly 1).
    M : array, shape (d, d), optional
        Positive semi-definite feature matrix; default the identity.
    bandwidth : float
        ``L``.

    Returns
    -------
    array, shape (n, n')
    """
    X = as_array(X, "X", ndim=2)
    same = Z is None
    Z = X if same else as_array(Z, "Z", ndim=2)
    if Z.shape[1] != X.shape[1]:
        raise ValueError(f"Z must have {X.shape[1]} columns, got shape {Z.shape}")
    M = _check_M(M, X.shape[1])
    bandwidth = positive_float(bandwidth, "bandwidth")
    return np.exp(-np.sqrt(_sq_distances(X, Z, M, same)) / bandwidth)


class RecursiveFeatureMachine:
    """Laplace-kernel Recursive Feature Machine (Radhakrishnan, Beaglehole, Pandit & Belkin 2024).

    Starting from ``M_0`` (identity by default), repeat ``iterations`` times:

    1. kernel ridge regression ``alpha = (K_M(X, X) + ridge I)^{-1} Y`` (``scipy.linalg.solve``);
    2. ``M <- ((1/n) sum_x sum_c grad f_c(x) grad f_c(x)^T)^power``, the AGOP of the predictor
       ``f(x) = sum_j alpha_j K_M(x, x_j)``, with
       ``grad f(x) = -(1/L) sum_j alpha_j K_M(x, x_j) M (x - x_j) / ||x - x_j||_M``
       (terms at zero distance dropped);

    then refit the ridge regression with the final ``M``. ``iterations=0`` is plain kernel
    ridge regression with the Mahalanobis Laplace kernel of ``M_0`` (a probe of a feature matrix).
    After :meth:`fit`: ``M`` (final feature matrix, ``(d, d)``), ``alpha`` (``(n, k)``),
    ``history`` (``M`` of every round, ``M_0`` first).

    Parameters
    ----------
    bandwidth : float
        Laplace bandwidth ``L``.
    ridge : float
        Ridge ``> 0`` added to the kernel diagonal.
    iterations : int
        Number of AGOP rounds (0 allowed).
    power : float
        Feature matrix ``AGOP^power`` (1 or 1/2 in the literature).
    M0 : array, shape (d, d), optional
        Initial feature matrix; default the identity.
    """

    def __init__(self, bandwidth: float = 10.0, ridge: float = 1e-3, iterations: int = 5,
                 power: float = 1.0, M0=None):
        self.bandwidth = positive_float(bandwidth, "bandwidth")
        self.ridge = positive_float(ridge, "ridge")
        self.iterations = positive_int(iterations, "iterations", minimum=0)
        self.power = positive_float(power, "power")
        self.M0 = None if M0 is None else as_array(M0, "M0", ndim=2)
        self.M = self.alpha = self.X = None
        self.history: list[np.ndarray] = []

    def _solve(self, X, Y, M):
        K = laplace_kernel(X, None, M, self.bandwidth)
        K[np.diag_indices_from(K)] += self.ridge
        return linalg.solve(K, Y, assume_a="pos")

    def _agop(self, X, alpha, M):
        """``(1/n) sum_x sum_c grad f_c grad f_c^T`` of the fitted predictor, on its inputs."""
        n = X.shape[0]
        dist = np.sqrt(_sq_distances(X, X, M, True))
        K = np.exp(-dist / self.bandwidth)
        with np.errstate(divide="ignore", invalid="ignore"):
            Wt = np.where(dist > 0, K / dist, 0.0)  # K / ||x - x_j||_M, zero-distance terms dropped
        S = Wt @ alpha  # (n, k): sum_j w_ij alpha_jc
        G = np.zeros((X.shape[1], X.shape[1]))
        for c in range(alpha.shape[1]):
            T = Wt @ (alpha[:, c:c + 1] * X)  # (n, d): sum_j w_ij alpha_jc x_j
            grads = -(X * S[:, c:c + 1] - T) @ M / self.bandwidth
            G += grads.T @ grads
        return G / n

    def fit(self, X, Y):
        """Fit on inputs ``X (n, d)`` and targets ``Y (n, k)`` or ``(n,)``; returns ``self``.

        Runs the ``iterations`` AGOP rounds and the final ridge regression (class docstring),
        setting ``M``, ``alpha``, ``history`` (``iterations + 1`` matrices ``(d, d)``) and the
        training inputs used by :meth:`predict`.

        Parameters
        ----------
        X : array_like, shape (n, d)
            Training inputs.
        Y : array_like, shape (n, k) or (n,)
            Targets; a 1-D array is one column (``k = 1``).

        Returns
        -------
        RecursiveFeatureMachine
            ``self``, fitted.

        Raises
        ------
        ValueError
            ``X`` not 2-D, ``Y`` not 1-D or 2-D, ``Y`` with a number of rows other than ``n``,
            ``M0`` not of shape ``(d, d)``, or NaN or inf entries.
        """
        X = as_array(X, "X", ndim=2)
        Y = as_array(Y, "Y", ndim=(1, 2))
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.shape[0] != X.shape[0]:
            raise ValueError(f"Y must have {X.shape[0]} rows to match X, got shape {Y.shape}")
        M = _check_M(self.M0, X.shape[1])
        self.history = [M]
        for _ in range(self.iterations):
            alpha = self._solve(X, Y, M)
            M = psd_power(self._agop(X, alpha, M), self.power)
            self.history.append(M)
        self.X, self.M, self.alpha = X, M, self._solve(X, Y, M)
        return self

    def predict(self, X) -> np.ndarray:
        """Predictions ``K_M(X, X_train) alpha`` of shape ``(n', k)`` for inputs ``X (n', d)``.

        Parameters
        ----------
        X : array_like, shape (n', d)
            Inputs.

        Returns
        -------
        ndarray, shape (n', k)
            Always 2-D (one column for 1-D training targets).

        Raises
        ------
        ValueError
            Called before :meth:`fit`, or ``X`` not 2-D with ``d`` columns.
        """
        if self.alpha is None:
            raise ValueError("call fit(X, Y) before predict")
        X = as_array(X, "X", ndim=2)
        if X.shape[1] != self.X.shape[1]:
            raise ValueError(f"X must have {self.X.shape[1]} columns, got shape {X.shape}")
        return laplace_kernel(X, self.X, self.M, self.bandwidth) @ self.alpha
