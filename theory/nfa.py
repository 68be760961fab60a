"""Early-time theory of the centred neural feature ansatz (C-NFA).

Beaglehole, Mitliagkas & Agarwala (2024), "Feature learning as alignment", arXiv:2402.05271:
its early-time analysis of the centred neural feature correlation, derived here from the
definitions (a reconstruction, so every formula is checked against simulation by
tests/theory/test_nfa.py).

Notation (one weight matrix ``W`` of shape ``(m, d)`` with multiplier ``c``, pre-activation
``h = c W a``): ``a_i`` the layer input of example ``i``, ``b_ij = d f_j(x_i) / d h`` the
pre-activation tangent feature of output ``j``, ``r_ij = f_j(x_i) - y_ij`` the residual.
Stack ``B`` (rows ``b_ij``, shape ``(k n, m)``) and ``M`` (rows ``r_ij a_i``, shape ``(k n, d)``),
both indexed by ``(j, i)``. The pre-activation tangent kernel (PTK) Gram matrix is
``Theta = B B^T`` and the PTK feature covariance ``K = B^T B``.

Under gradient flow on ``L = 1/(2n) sum ||f - y||^2`` the weight change is, to first order in t,

    W(t) - W(0) = -(t c / n) B^T M + O(t^2),

so with ``K`` and ``Theta`` frozen at initialisation

    C-NFM  = dW^T dW      ∝ M^T Theta M,
    C-AGOP = c^2 dW^T K dW ∝ M^T Theta^2 M,

and the centred correlation tends, as ``t -> 0``, to

    C-NFC(0+) = rho(M^T Theta M, M^T Theta^2 M),

with the learning rate and the time cancelling inside the scale-invariant ``rho``. It depends on
the inputs (through ``a``), the labels (through ``r``, ``≈ -y`` when the initial outputs are
small) and the PTK only. The error at time ``t`` is ``O(t)``.

Special cases: for a linear activation ``Theta`` is constant across examples, ``dW`` has rank one
per output and the prediction is exactly 1; for the first layer of a wide two-layer ReLU network
``Theta`` tends to the degree-0 arc-cosine kernel (:func:`relu_ptk_two_layer`), so the prediction
is a function of the input angles and the labels alone.
"""
from __future__ import annotations

import numpy as np

from ..base.alignment import CORRELATION_KINDS as KINDS
from ..base.alignment import matrix_correlation
from ..base.linalg import psd_power
from ..base.validation import as_array, one_of, positive_float
from .arccos import angle, arccos_degree0

#: Order in ``t`` of the error of the early-time prediction: ``C-NFC(t) - C-NFC(0+) = O(t)``
#: (the first neglected term of the expansion of ``W(t) - W(0)`` in the module docstring).
EARLY_TIME_ERROR_ORDER = 1.0


def _residual_rows(A, R):
    """``M`` with rows ``r_ij a_i`` ordered by ``(j, i)``, shape ``(k n, d)``."""
    return (R.T[:, :, None] * A[None, :, :]).reshape(-1, A.shape[1])


def _ptk_matrix(theta, n, k):
    """The PTK Gram as a ``(k n, k n)`` matrix indexed by ``(j, i)``."""
    theta = as_array(theta, "theta", ndim=(2, 4))
    if theta.ndim == 2:
        if k != 1 or theta.shape != (n, n):
            raise ValueError(f"theta must have shape ({n}, {n}) for one output, or "
                             f"({k}, {k}, {n}, {n}); got {theta.shape}")
        return theta
    if theta.shape != (k, k, n, n):
        raise ValueError(f"theta must have shape ({k}, {k}, {n}, {n}), got {theta.shape}")
    return theta.transpose(0, 2, 1, 3).reshape(k * n, k * n)


def early_feature_matrices(A, R, theta) -> tuple[np.ndarray, np.ndarray]:
    """Leading-order centred NFM and AGOP ``(M^T Theta M, M^T Theta^2 M)``, up to a common ``t^2``.

    Parameters
    ----------
    A : array_like, shape (n, d)
        Inputs of the layer at initialisation (the data itself for the first layer).
    R : array_like, shape (n,) or (n, k)
        Residuals ``f(x_i) - y_i`` at initialisation (``-Y`` in the small-output limit).
    theta : array_like, shape (n, n) or (k, k, n, n)
        PTK Gram ``Theta[j, j', i, i'] = b_j(x_i) . b_j'(x_i')`` at initialisation (the
        ``(n, n)`` form for one output only).

    Returns
    -------
    nfm : numpy.ndarray, shape (d, d)
        ``M^T Theta M`` (symmetrised), proportional to the early centred NFM.
    agop : numpy.ndarray, shape (d, d)
        ``M^T Theta^2 M``, proportional to the early centred AGOP.
    """
    A = as_array(A, "A", ndim=2)
    R = as_array(R, "R", ndim=(1, 2))
    if R.ndim == 1:
        R = R[:, None]
    n, k = R.shape
    if A.shape[0] != n:
        raise ValueError(f"A must have {n} rows (one per residual), got shape {A.shape}")
    Theta = _ptk_matrix(theta, n, k)
    M = _residual_rows(A, R)
    P = Theta @ M
    nfm = M.T @ P
    # Theta is symmetric: M^T Theta^2 M = (Theta M)^T (Theta M).
    agop = P.T @ P
    return 0.5 * (nfm + nfm.T), agop


def early_centered_nfc(A, R, theta, kind: str = "pearson", power: float = 1.0) -> float:
    """Early-time centred NFC: ``lim_{t->0} C-NFC(t) = rho(M^T Theta M, (M^T Theta^2 M)^power)``.

    See the module docstring for the derivation.

    Parameters
    ----------
    A : array_like, shape (n, d)
        Inputs of the layer at initialisation (the data itself for the first layer).
    R : array_like, shape (n,) or (n, k)
        Residuals ``f(x_i) - y_i`` at initialisation (``-Y`` in the small-output limit).
    theta : array_like, shape (n, n) or (k, k, n, n)
        PTK Gram at initialisation, as in :func:`early_feature_matrices`.
    kind : {"pearson", "cosine"}, optional
        The correlation ``rho`` (:func:`ntkdyn.base.alignment.matrix_correlation`).
    power : float, optional
        The power of the AGOP, as in ``ntkdyn.numerics.features.nfa_correlation``.

    Returns
    -------
    float
        The predicted ``C-NFC(0+)``, in ``[-1, 1]``.
    """
    one_of(kind, "kind", KINDS)
    nfm, agop = early_feature_matrices(A, R, theta)
    return matrix_correlation(nfm, psd_power(agop, power), kind)


def relu_ptk_two_layer(X, X2=None, init_scale: float = 1.0) -> np.ndarray:
    """Infinite-width PTK of the first layer of ``f = a . relu(W x / sqrt(d)) / sqrt(m)``.

    ``Theta(x, x') = (1/m) sum_u a_u^2 1[w_u.x > 0] 1[w_u.x' > 0]
    -> init_scale^2 (pi - theta_xx') / (2 pi)``
    as ``m -> infinity`` with ``W, a ~ N(0, init_scale^2)``: the degree-0 arc-cosine kernel of
    Cho & Saul (2009) (:func:`ntkdyn.theory.arccos.arccos_degree0`), ``theta_xx'`` the angle
    between ``x`` and ``x'``.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs, one per row, none zero.
    X2 : array_like, shape (n2, d), optional
        Second inputs (default: ``X``).
    init_scale : float, optional
        The standard deviation of ``W`` and ``a`` at initialisation.

    Returns
    -------
    numpy.ndarray, shape (n, n2)
        The limiting PTK ``Theta(x_i, x2_j)``.
    """
    X = as_array(X, "X", ndim=2)
    X2 = X if X2 is None else as_array(X2, "X2", ndim=2)
    if X2.shape[1] != X.shape[1]:
        raise ValueError(f"X2 must have {X.shape[1]} columns, got shape {X2.shape}")
    init_scale = positive_float(init_scale, "init_scale")
    norms, norms2 = np.linalg.norm(X, axis=1), np.linalg.norm(X2, axis=1)
    if np.any(norms == 0) or np.any(norms2 == 0):
        raise ValueError("X and X2 must not contain zero rows (the angle is undefined)")
    return arccos_degree0(angle((X @ X2.T) / np.outer(norms, norms2)), init_scale ** 2)
