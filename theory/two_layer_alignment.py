"""Two-layer NTK alignment: per-head decomposition, early-time drift, linear nets cannot specialise.

Shan & Bordelon (2021), sec. 6. Two-layer network in the NTK parameterization
(docs/conventions.md), ``k`` heads, width ``m``, input dimension ``d``:

    f_i(x) = c_2 sum_k a_ik phi(h_k),   h_k = c_1 w_k . x,   c_1 = 1/sqrt(d),  c_2 = 1/sqrt(m),

with ``W1 = [w_k] (m, d)`` and ``W2 = [a_ik] (k, m)``. Its per-head NTK is
(:mod:`ntkdyn.theory.two_layer_ntk`)

    K_ii(x, x') = c_2^2 sum_k phi(h_k) phi(h'_k)                       (feature term, shared)
                + c_2^2 c_1^2 (x . x') sum_k a_ik^2 phi'(h_k) phi'(h'_k)  (gated term, per head).

Richness (``numerics.richness``): ``f_gamma = (f - f_0) / gamma`` trained by gradient flow
with parameter rate ``gamma^2`` has, with residual ``Delta = Y - f_gamma``,

    dW2/dt = (gamma c_2 / n) Delta^T phi(H),
    dW1/dt = (gamma c_2 c_1 / n) [(Delta W2) * phi'(H)]^T X,

so at ``t = 0`` (``Delta = Y``) hidden unit ``k`` moves toward ``sum_i a_ik m_ik`` with the
target-weighted mean ``m_ik = (1/n) sum_mu y_i(x_mu) phi'(h_k(x_mu)) x_mu`` of the inputs in
its active half-space, and readout ``a_ik`` grows with the correlation of ``phi(h_k)`` with
``y_i``. Differentiating the kernel along this flow gives ``dK/dt`` exactly, and from it the
exact initial rate of the (centred) alignment and of the specialization matrix. Everything
scales as ``gamma``: in the lazy limit ``gamma -> 0`` nothing moves.

Range of validity (measured, tests/theory/test_two_layer_alignment.py): for ReLU the rates
are exact derivatives at ``t = 0`` but a finite network's kernel is only piecewise smooth in
time: each gate flip ``phi'(h_k(x_mu))`` changes the gated term by a finite jump of order
``1/m``, and flips start at a rate proportional to ``gamma``. On the default 4-class task
(n = 300, m = 256) nine flips out of 76 800 unit-example pairs, by ``gamma t = 0.1``,
already change ``A_c`` ten times more than the smooth first-order drift. The first-order
rate (a sum of terms whose signs are set by the random readouts, small and here negative)
therefore predicts GD only for ``gamma t <~ 10^-2``; the second-order term
(:func:`initial_second_derivatives`, coherent and positive, ``O(gamma^2)``) takes over in the
rich regime. For a linear network (no gates) the second-order expansion matches GD to a few
per cent up to ``gamma t ~ 0.1``.

Functions take weights as plain arrays (the theory layer imports no network code); the
activation is looked up in ``ntkdyn.base.activations`` (ReLU's second derivative is zero
almost everywhere, so ReLU gates do not move to first order). The flows are in the NTK
parameterization, with ``c_1, c_2`` from :func:`flow_multipliers`.
"""
from __future__ import annotations

import numpy as np

from ..base.activations import get_activation
from ..base.alignment import alignment  # noqa: F401 (public here too)
from ..base.alignment import center as _center
from ..base.alignment import specialization as specialization_matrix
from ..base.alignment import specialization_index
from ..base.validation import as_array, positive_float
from .deep_linear_kernels import linear_head_kernels  # noqa: F401 (public here too)
from .parameterization import layer_multipliers
from .relu_ntk import infinite_nngp, infinite_ntk
from .two_layer_ntk import check_weights, two_layer_ntk_terms  # noqa: F401 (public here too)


def flow_multipliers(W1) -> tuple[float, float]:
    """``(c_1, c_2) = (1/sqrt(d), 1/sqrt(m))`` of the NTK parameterization.

    Parameters
    ----------
    W1 : numpy.ndarray, shape (m, d)
        The first-layer weights.

    Returns
    -------
    c1, c2 : float
        The multipliers of the two layers.
    """
    m, d = W1.shape
    return layer_multipliers((d, m), "ntk")


def _weights(W1, W2, X):
    W1, W2, X, _ = check_weights(W1, W2, X)
    return W1, W2, X


def _targets(Y, n, k=None, name="Y"):
    Y = as_array(Y, name, ndim=(1, 2))
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.shape[0] != n or (k is not None and Y.shape[1] != k):
        want = f"({n}, {k})" if k is not None else f"({n}, ...)"
        raise ValueError(f"{name} must have shape {want}, got {Y.shape}")
    return Y


# ------------------------------------------------------------------- decomposition
def infinite_width_terms(X, X2=None, activation: str = "relu", init_scale: float = 1.0):
    """Infinite-width limit of the feature and gated terms at initialisation (each ``(n, n2)``).

    With ``W ~ N(0, sigma^2)`` and ``m -> infinity``, per head,
    ``feature -> E[phi(u) phi(v)]`` and ``gated -> sigma^2 (x . x'/d) E[phi'(u) phi'(v)]`` with
    ``(u, v)`` Gaussian of covariance ``sigma^2 [x.x, x.x'; x'.x, x'.x'] / d``. For ReLU (arc-cosine
    kernels, Cho & Saul 2009), with ``theta`` the angle between ``x`` and ``x'``:
    ``feature = sigma^2 |x||x'| / (2 pi d) [sin theta + (pi - theta) cos theta]`` and
    ``gated = sigma^2 (x.x'/d) (pi - theta) / (2 pi)``; their sum is the depth-2 NTK of
    :func:`ntkdyn.theory.relu_ntk.infinite_ntk`, and ``feature = infinite_nngp / sigma^2``.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs, one per row.
    X2 : array_like, shape (n2, d), optional
        Second inputs (default: ``X``).
    activation : {"relu", "linear"}, optional
        The hidden activation.
    init_scale : float, optional
        ``sigma``, the standard deviation of every weight.

    Returns
    -------
    feature : numpy.ndarray, shape (n, n2)
        The limit of the feature term.
    gated : numpy.ndarray, shape (n, n2)
        The limit of the gated term, per head.
    """
    if activation not in ("relu", "linear"):
        raise ValueError(f"activation must be 'relu' or 'linear' for the infinite-width terms, "
                         f"got {activation!r}")
    sigma = positive_float(init_scale, "init_scale")
    feature = infinite_nngp(X, X2, depth=2, activation=activation, init_scale=sigma) / sigma ** 2
    total = infinite_ntk(X, X2, depth=2, activation=activation, init_scale=sigma)
    return feature, total - feature


# --------------------------------------------------------------------- early-time drift
def target_weighted_means(W1, X, Y, activation: str = "relu"):
    """``m_ik = (1/n) sum_mu y_i(x_mu) phi'(h_k(x_mu)) x_mu``.

    For ReLU, the target-weighted mean of the inputs in unit ``k``'s active half-space.

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        The first-layer weights.
    X : array_like, shape (n, d)
        Inputs, one per row.
    Y : array_like, shape (n,) or (n, k)
        Targets.
    activation : str, optional
        The hidden activation's name.

    Returns
    -------
    numpy.ndarray, shape (k, m, d)
        ``m_ik`` for every head ``i`` and unit ``k``.
    """
    W1 = as_array(W1, "W1", ndim=2)
    X = as_array(X, "X", ndim=2)
    if W1.shape[1] != X.shape[1]:
        raise ValueError(f"W1 must have {X.shape[1]} columns, got shape {W1.shape}")
    Y = _targets(Y, X.shape[0])
    dphi = get_activation(activation).dphi
    c1, _ = flow_multipliers(W1)
    D = dphi(c1 * X @ W1.T)
    return np.einsum("ni,nk,nd->ikd", Y, D, X) / X.shape[0]


def flow_velocity(W1, W2, X, residual, gamma: float = 1.0, activation: str = "relu"):
    """Gradient-flow velocity ``(dW1/dt, dW2/dt)`` of the centred model ``f_gamma``.

    ``dW2/dt = (gamma c_2 / n) Delta^T phi(H)`` and
    ``dW1/dt = gamma c_2 c_1 sum_i a_ik m_ik = (gamma c_2 c_1 / n) [(Delta W2) * phi'(H)]^T X``,
    ``Delta = Y - f_gamma`` the residual (``Delta = Y`` at ``t = 0``).

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        The first-layer weights.
    W2 : array_like, shape (k, m)
        The readout weights.
    X : array_like, shape (n, d)
        Inputs, one per row.
    residual : array_like, shape (n, k)
        ``Delta = Y - f_gamma``.
    gamma : float, optional
        The richness ``gamma > 0``.
    activation : str, optional
        The hidden activation's name.

    Returns
    -------
    dW1 : numpy.ndarray, shape (m, d)
        ``dW1/dt``.
    dW2 : numpy.ndarray, shape (k, m)
        ``dW2/dt``.
    """
    W2, X, R, gamma, c1, c2, P, D = _flow_setup(W1, W2, X, residual, gamma, activation)
    return _velocity(W2, X, R, gamma, c1, c2, P, D)


def _flow_setup(W1, W2, X, residual, gamma, activation):
    """Checked inputs, multipliers and ``Phi = phi(H)``, ``D = phi'(H)`` shared by the flows."""
    W1, W2, X = _weights(W1, W2, X)
    R = _targets(residual, X.shape[0], W2.shape[0], "residual")
    gamma = positive_float(gamma, "gamma")
    act = get_activation(activation)
    c1, c2 = flow_multipliers(W1)
    H = c1 * X @ W1.T
    return W2, X, R, gamma, c1, c2, act.phi(H), act.dphi(H)


def _velocity(W2, X, R, gamma, c1, c2, P, D):
    """``(dW1/dt, dW2/dt)`` of :func:`flow_velocity` from precomputed ``Phi`` and ``D``."""
    n = X.shape[0]
    return gamma * c2 * c1 * ((R @ W2) * D).T @ X / n, gamma * c2 * R.T @ P / n


def kernel_velocity(W1, W2, X, dW1, dW2, activation: str = "relu"):
    """Directional derivative of the NTK terms along ``(dW1, dW2)``: ``(dfeature, dgated)``.

    With ``dH = c_1 X dW1^T``: ``d phi(H) = phi'(H) * dH``, ``d phi'(H) = phi''(H) * dH`` and
    ``dfeature = c_2^2 (d phi phi^T + phi d phi^T)``,
    ``dgated_i = c_2^2 c_1^2 G * (dD A_i D^T + D A_i dD^T + 2 D diag(a_i da_i) D^T)``,
    ``A_i = diag(a_i^2)``, ``G = X X^T``.

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        The first-layer weights.
    W2 : array_like, shape (k, m)
        The readout weights.
    X : array_like, shape (n, d)
        Inputs, one per row.
    dW1 : array_like, shape (m, d)
        The direction of the first-layer weights.
    dW2 : array_like, shape (k, m)
        The direction of the readout weights.
    activation : str, optional
        The hidden activation's name.

    Returns
    -------
    dfeature : numpy.ndarray, shape (n, n)
        The derivative of the (shared) feature term.
    dgated : numpy.ndarray, shape (k, n, n)
        The derivative of every head's gated term.
    """
    W1, W2, X = _weights(W1, W2, X)
    dW1 = as_array(dW1, "dW1", ndim=2)
    dW2 = as_array(dW2, "dW2", ndim=2)
    if dW1.shape != W1.shape or dW2.shape != W2.shape:
        raise ValueError(f"dW1, dW2 must have shapes {W1.shape}, {W2.shape}, "
                         f"got {dW1.shape}, {dW2.shape}")
    act = get_activation(activation)
    c1, c2 = flow_multipliers(W1)
    c2sq = c2 * c2
    H = c1 * X @ W1.T
    dH = c1 * X @ dW1.T
    P, D, dP, dD = act.phi(H), act.dphi(H), act.dphi(H) * dH, act.d2phi(H) * dH
    cross = dP @ P.T
    dfeature = c2sq * (cross + cross.T)
    gram = c1 * c1 * X @ X.T
    dgated = []
    for a, da in zip(W2, dW2):
        half = (dD * a * a) @ D.T
        dgated.append(c2sq * gram * (half + half.T + 2.0 * (D * a * da) @ D.T))
    return dfeature, np.stack(dgated)


def flow_second_order(W1, W2, X, residual, gamma: float = 1.0, activation: str = "relu") -> dict:
    """First and second time derivatives of the weights, outputs and NTK terms along the flow.

    For activations with ``phi'' = 0`` (ReLU almost everywhere, linear) the gates
    ``D = phi'(H)`` are constant to every order, and differentiating the flow of
    :func:`flow_velocity` once more gives, with ``Delta`` the residual,

        d f_gamma/dt = c_2 (dPhi W2^T + Phi dW2^T) / gamma,       dDelta/dt = -d f_gamma/dt,
        d2W2/dt2 = (gamma c_2 / n) (dDelta^T Phi + Delta^T dPhi),
        d2W1/dt2 = (gamma c_2 c_1 / n) [(dDelta W2 + Delta dW2) * D]^T X,
        d2Phi = D * (c_1 X d2W1^T),
        d2feature = c_2^2 (d2Phi Phi^T + Phi d2Phi^T + 2 dPhi dPhi^T),
        d2gated_i = c_2^2 c_1^2 G * (D diag(2 da_i^2 + 2 a_i d2a_i) D^T).

    All first derivatives scale as ``gamma`` at ``t = 0`` and the second derivatives of the
    kernel as ``gamma^2`` (plus an ``O(gamma)`` part from the shrinking residual).

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        The first-layer weights.
    W2 : array_like, shape (k, m)
        The readout weights.
    X : array_like, shape (n, d)
        Inputs, one per row.
    residual : array_like, shape (n, k)
        ``Delta = Y - f_gamma``.
    gamma : float, optional
        The richness ``gamma > 0``.
    activation : {"relu", "linear"}, optional
        The hidden activation (``phi'' = 0``).

    Returns
    -------
    dict
        ``dW1`` and ``d2W1`` ``(m, d)``, ``dW2`` and ``d2W2`` ``(k, m)``, ``df``
        (``d f_gamma / dt``, ``(n, k)``), ``dfeature`` and ``d2feature`` ``(n, n)``,
        ``dgated`` and ``d2gated`` ``(k, n, n)``.
    """
    if activation not in ("relu", "linear"):
        raise ValueError(f"activation must be 'relu' or 'linear' (phi'' = 0) for the second-order "
                         f"flow, got {activation!r}")
    W2, X, R, gamma, c1, c2, P, D = _flow_setup(W1, W2, X, residual, gamma, activation)
    n = X.shape[0]
    dW1, dW2 = _velocity(W2, X, R, gamma, c1, c2, P, D)
    dP = D * (c1 * X @ dW1.T)
    df = c2 * (dP @ W2.T + P @ dW2.T) / gamma
    dR = -df
    d2W2 = gamma * c2 * (dR.T @ P + R.T @ dP) / n
    d2W1 = gamma * c2 * c1 * ((dR @ W2 + R @ dW2) * D).T @ X / n
    d2P = D * (c1 * X @ d2W1.T)
    c2sq = c2 * c2
    cross = dP @ P.T
    dfeature = c2sq * (cross + cross.T)
    cross2 = d2P @ P.T
    d2feature = c2sq * (cross2 + cross2.T + 2.0 * dP @ dP.T)
    gram = c1 * c1 * X @ X.T
    dgated = np.stack([c2sq * gram * ((D * (2.0 * a * da)) @ D.T) for a, da in zip(W2, dW2)])
    d2gated = np.stack([c2sq * gram * ((D * (2.0 * da * da + 2.0 * a * d2a)) @ D.T)
                        for a, da, d2a in zip(W2, dW2, d2W2)])
    return {"dW1": dW1, "dW2": dW2, "d2W1": d2W1, "d2W2": d2W2, "df": df,
            "dfeature": dfeature, "dgated": dgated, "d2feature": d2feature, "d2gated": d2gated}


# ------------------------------------------------------------------------ alignment rates
def alignment_rate(K, dK, Y, centered: bool = True) -> float:
    """``dA/dt`` from ``dK/dt``: ``<dK, Y Y^T>/(||K|| ||YY^T||) - A <K, dK> / ||K||^2``.

    The derivative of the kernel-target alignment (centred kernels and targets when
    ``centered``; centring is linear so ``d(HKH) = H dK H``).

    Parameters
    ----------
    K : array_like, shape (n, n)
        The kernel.
    dK : array_like, shape (n, n)
        Its time derivative.
    Y : array_like, shape (n,) or (n, k)
        Targets.
    centered : bool, optional
        Centre the kernels and targets (default ``True``).

    Returns
    -------
    float
        ``dA/dt``.
    """
    K = as_array(K, "K", ndim=2)
    dK = as_array(dK, "dK", ndim=2)
    if dK.shape != K.shape:
        raise ValueError(f"dK must have the shape of K {K.shape}, got {dK.shape}")
    Y = _targets(Y, K.shape[0])
    if centered:
        K, dK, Y = _center(K), _center(dK), Y - Y.mean(axis=0)
    kn, yn = np.linalg.norm(K), np.linalg.norm(Y.T @ Y)
    a = np.einsum("ai,ab,bi->", Y, K, Y) / (kn * yn)
    return float(np.einsum("ai,ab,bi->", Y, dK, Y) / (kn * yn) - a * np.vdot(K, dK) / kn ** 2)


def alignment_second_derivative(K, dK, d2K, Y, centered: bool = True) -> float:
    """``d^2 A / dt^2`` from ``K``, ``dK/dt`` and ``d^2K/dt^2``.

    With ``T = Y Y^T / ||Y Y^T||_F``, ``a = <K, T>``, ``q = ||K||_F``:
    ``A = a / q``, ``A'' = a''/q - 2 a' q'/q^2 - a q''/q^2 + 2 a q'^2/q^3``, where
    ``q' = <K, K'>/q`` and ``q'' = (<K', K'> + <K, K''>)/q - <K, K'>^2/q^3``.

    Parameters
    ----------
    K : array_like, shape (n, n)
        The kernel.
    dK, d2K : array_like, shape (n, n)
        Its first and second time derivatives.
    Y : array_like, shape (n,) or (n, k)
        Targets.
    centered : bool, optional
        Centre the kernels and targets (default ``True``).

    Returns
    -------
    float
        ``d^2 A / dt^2``.
    """
    K = as_array(K, "K", ndim=2)
    dK = as_array(dK, "dK", ndim=2)
    d2K = as_array(d2K, "d2K", ndim=2)
    if dK.shape != K.shape or d2K.shape != K.shape:
        raise ValueError(f"dK and d2K must have the shape of K {K.shape}, "
                         f"got {dK.shape}, {d2K.shape}")
    Y = _targets(Y, K.shape[0])
    if centered:
        K, dK, d2K, Y = _center(K), _center(dK), _center(d2K), Y - Y.mean(axis=0)
    yn = np.linalg.norm(Y.T @ Y)
    a, da, d2a = (np.einsum("ai,ab,bi->", Y, M, Y) / yn for M in (K, dK, d2K))
    q = np.linalg.norm(K)
    kk1 = np.vdot(K, dK)
    dq = kk1 / q
    d2q = (np.vdot(dK, dK) + np.vdot(K, d2K)) / q - kk1 ** 2 / q ** 3
    return float(d2a / q - 2 * da * dq / q ** 2 - a * d2q / q ** 2 + 2 * a * dq ** 2 / q ** 3)


def initial_second_derivatives(W1, W2, X, Y, gamma: float = 1.0, activation: str = "relu") -> dict:
    """``d^2/dt^2`` at ``t = 0`` of ``A_c``, ``A`` (summed kernel), ``S_ij`` and ``xi``.

    The early-time expansion ``A(t) = A(0) + A'(0) t + A''(0) t^2 / 2 + O(t^3)`` with
    ``A'(0)`` from :func:`initial_rates`. At ``t = 0`` the first-order kernel change is a sum
    over units of terms whose signs are set by the random readouts ``a_ik``, so ``A'(0)`` is
    small (it can be negative); the coherent alignment appears at second order, once the
    readouts have grown along ``corr(phi(h_k), y_i)`` and steer the unit drifts
    ``sum_i a_ik m_ik`` (Shan & Bordelon 2021, sec. 6).

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        The first-layer weights at initialisation.
    W2 : array_like, shape (k, m)
        The readout weights at initialisation.
    X : array_like, shape (n, d)
        Inputs, one per row.
    Y : array_like, shape (n, k)
        Targets (the residual at ``t = 0``).
    gamma : float, optional
        The richness ``gamma > 0``.
    activation : {"relu", "linear"}, optional
        The hidden activation (``phi'' = 0``).

    Returns
    -------
    dict
        ``alignment_centered`` and ``alignment_uncentered`` (floats); with ``k >= 2`` heads also
        ``specialization`` ``(k, k)`` and ``xi`` (float).
    """
    W1, W2, X = _weights(W1, W2, X)
    Y = _targets(Y, X.shape[0], W2.shape[0])
    flow = flow_second_order(W1, W2, X, Y, gamma, activation)
    feature, gated = two_layer_ntk_terms(W1, W2, X, activation=activation)
    K_heads = feature[None] + gated
    dK_heads = flow["dfeature"][None] + flow["dgated"]
    d2K_heads = flow["d2feature"][None] + flow["d2gated"]
    K, dK, d2K = K_heads.sum(0), dK_heads.sum(0), d2K_heads.sum(0)
    out = {
        "alignment_centered": alignment_second_derivative(K, dK, d2K, Y, True),
        "alignment_uncentered": alignment_second_derivative(K, dK, d2K, Y, False),
    }
    k = Y.shape[1]
    if k >= 2:
        d2S = np.array([[alignment_second_derivative(K_heads[i], dK_heads[i], d2K_heads[i],
                                                     Y[:, j]) for j in range(k)]
                        for i in range(k)])
        out["specialization"] = d2S
        out["xi"] = specialization_index(d2S)
    return out


def initial_rates(W1, W2, X, Y, gamma: float = 1.0, activation: str = "relu") -> dict:
    """Exact ``t = 0`` rates of the alignment metrics of ``f_gamma`` under gradient flow.

    Time is ``t = lr * steps`` of :func:`ntkdyn.numerics.richness.train_centered`. All rates
    are proportional to ``gamma``.

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        The first-layer weights at initialisation.
    W2 : array_like, shape (k, m)
        The readout weights at initialisation.
    X : array_like, shape (n, d)
        Inputs, one per row.
    Y : array_like, shape (n, k)
        Targets (the residual at ``t = 0``).
    gamma : float, optional
        The richness ``gamma > 0``.
    activation : str, optional
        The hidden activation's name.

    Returns
    -------
    dict
        ``alignment_centered``, ``alignment_centered_rate``, ``alignment_uncentered`` and
        ``alignment_uncentered_rate`` (of ``A(sum_i K_ii, Y)``, floats); with ``k >= 2`` heads
        also ``specialization`` and ``specialization_rate`` (``S_ij`` and ``dS_ij/dt``,
        ``(k, k)``), ``xi`` and ``xi_rate``.
    """
    W1, W2, X = _weights(W1, W2, X)
    Y = _targets(Y, X.shape[0], W2.shape[0])
    dW1, dW2 = flow_velocity(W1, W2, X, Y, gamma, activation)
    feature, gated = two_layer_ntk_terms(W1, W2, X, activation=activation)
    dfeature, dgated = kernel_velocity(W1, W2, X, dW1, dW2, activation)
    K_heads, dK_heads = feature[None] + gated, dfeature[None] + dgated
    K, dK = K_heads.sum(axis=0), dK_heads.sum(axis=0)
    k = Y.shape[1]
    out = {
        "alignment_centered": alignment(K, Y, True),
        "alignment_centered_rate": alignment_rate(K, dK, Y, True),
        "alignment_uncentered": alignment(K, Y, False),
        "alignment_uncentered_rate": alignment_rate(K, dK, Y, False),
    }
    if k >= 2:
        S = specialization_matrix(K_heads, Y)
        dS = np.array([[alignment_rate(K_heads[i], dK_heads[i], Y[:, j]) for j in range(k)]
                       for i in range(k)])
        out.update(specialization=S, specialization_rate=dS, xi=specialization_index(S),
                   xi_rate=specialization_index(dS))
    return out


# ------------------------------------------------- heads that cannot specialise (linear nets)
def head_dissimilarity(K_heads, centered: bool = True) -> np.ndarray:
    """``D_ii' = || K^_i - K^_i' ||_F`` with ``K^ = H K H / ||H K H||_F``.

    Parameters
    ----------
    K_heads : array_like, shape (k, n, n)
        One kernel per head.
    centered : bool, optional
        Centre the kernels first (default ``True``).

    Returns
    -------
    numpy.ndarray, shape (k, k)
        The distances between the normalised head kernels.
    """
    K_heads = as_array(K_heads, "K_heads", ndim=3)
    Kc = _center(K_heads) if centered else K_heads
    norms = np.linalg.norm(Kc.reshape(len(Kc), -1), axis=1)
    if np.any(norms == 0):
        raise ValueError("K_heads must not contain a zero (centred) kernel")
    flat = Kc.reshape(len(Kc), -1) / norms[:, None]
    sq = np.sum(flat * flat, axis=1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * flat @ flat.T, 0.0))


def specialization_bound(K_heads, centered: bool = True) -> float:
    """Upper bound ``|xi| <= (1/(k-1)) sum_i mean_{i'} D_ii'`` from head dissimilarity.

    ``xi = (1/(k-1)) sum_i (S_ii - mean_{i'} S_i'i)`` and, by Cauchy-Schwarz with the unit
    target kernel ``y^ y^^T``, ``|S_ij - S_i'j| <= ||K^_i - K^_i'||_F``. Heads whose normalised
    kernels coincide cannot specialise. For a deep linear network (``linear_head_kernels``)
    the normalised head kernels differ only through the ``L`` mixing weights ``w_il`` of the
    shared kernels ``Phi_l``, so ``xi = 0`` exactly whenever the rows ``w_i`` are parallel
    (e.g. readout rows of equal norm at depth 2) and is small whenever they are close.

    Parameters
    ----------
    K_heads : array_like, shape (k, n, n)
        One kernel per head, ``k >= 2``.
    centered : bool, optional
        Centre the kernels first (default ``True``).

    Returns
    -------
    float
        The bound on ``|xi|``.
    """
    D = head_dissimilarity(K_heads, centered)
    k = D.shape[0]
    if k < 2:
        raise ValueError("K_heads must hold at least two heads")
    return float(D.mean(axis=1).sum() / (k - 1))


# ------------------------------------------ kernel specialization matrix (uncentred, Eq. 9)
def kernel_specialization_rate(K_heads, dK_heads, Y) -> tuple[np.ndarray, np.ndarray]:
    """The kernel specialization matrix and its time derivative along ``dK_heads``.

    ``KSM(c, d) = A_cd / m_d`` with ``A_cd = A(K^{cc}, y_d)`` uncentred and
    ``m_d = (1/C) sum_c A_cd`` (Shan & Bordelon 2021, Eq. 9;
    :func:`ntkdyn.base.alignment.kernel_specialization_matrix`), so
    ``dKSM(c, d)/dt = (dA_cd m_d - A_cd dm_d) / m_d^2`` with ``dA_cd`` from
    :func:`alignment_rate` (uncentred).

    Parameters
    ----------
    K_heads : array_like, shape (C, n, n)
        One kernel per head.
    dK_heads : array_like, shape (C, n, n)
        Their time derivatives.
    Y : array_like, shape (n, C)
        One target column per class.

    Returns
    -------
    ksm : numpy.ndarray, shape (C, C)
        The kernel specialization matrix.
    ksm_rate : numpy.ndarray, shape (C, C)
        Its time derivative.
    """
    K_heads = as_array(K_heads, "K_heads", ndim=3)
    dK_heads = as_array(dK_heads, "dK_heads", ndim=3)
    if dK_heads.shape != K_heads.shape:
        raise ValueError(f"dK_heads must have the shape of K_heads {K_heads.shape}, "
                         f"got {dK_heads.shape}")
    Y = _targets(Y, K_heads.shape[1], K_heads.shape[0])
    k = Y.shape[1]
    A = specialization_matrix(K_heads, Y, centered=False)
    dA = np.array([[alignment_rate(K_heads[i], dK_heads[i], Y[:, j], centered=False)
                    for j in range(k)] for i in range(k)])
    m, dm = A.mean(axis=0), dA.mean(axis=0)
    if np.any(m == 0):
        raise ValueError("the kernel specialization matrix is undefined when a class's mean "
                         "alignment over heads is zero")
    return A / m, (dA * m - A * dm) / (m * m)


def initial_specialization_rates(W1, W2, X, Y, gamma: float = 1.0,
                                 activation: str = "relu") -> dict:
    """Exact ``t = 0`` rates of the uncentred KSM (Eq. 9) and of the centred ``S_ij``.

    The per-head kernels and their velocity along the gradient flow of ``f_gamma``
    (:func:`flow_velocity`, :func:`kernel_velocity`), put through
    :func:`kernel_specialization_rate` and the centred :func:`alignment_rate`. Returns
    ``ksm``, ``ksm_rate``, ``specialization`` (centred ``S``) and ``specialization_rate``, each
    ``(C, C)``; time is ``t = lr * steps`` of :func:`ntkdyn.numerics.richness.train_centered`.

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        The first-layer weights at initialisation.
    W2 : array_like, shape (C, m)
        The readout weights at initialisation.
    X : array_like, shape (n, d)
        Inputs, one per row.
    Y : array_like, shape (n, C)
        Targets (the residual at ``t = 0``).
    gamma : float, optional
        The richness ``gamma > 0``.
    activation : str, optional
        The hidden activation's name.

    Returns
    -------
    dict
        ``ksm``, ``ksm_rate``, ``specialization`` and ``specialization_rate``, each ``(C, C)``.
    """
    W1, W2, X = _weights(W1, W2, X)
    Y = _targets(Y, X.shape[0], W2.shape[0])
    dW1, dW2 = flow_velocity(W1, W2, X, Y, gamma, activation)
    feature, gated = two_layer_ntk_terms(W1, W2, X, activation=activation)
    dfeature, dgated = kernel_velocity(W1, W2, X, dW1, dW2, activation)
    K_heads, dK_heads = feature[None] + gated, dfeature[None] + dgated
    ksm, ksm_rate = kernel_specialization_rate(K_heads, dK_heads, Y)
    k = Y.shape[1]
    dS = np.array([[alignment_rate(K_heads[i], dK_heads[i], Y[:, j]) for j in range(k)]
                   for i in range(k)])
    return {"ksm": ksm, "ksm_rate": ksm_rate,
            "specialization": specialization_matrix(K_heads, Y), "specialization_rate": dS}


def kernel_specialization_bound(K_heads, Y) -> np.ndarray:
    """Bound ``|KSM(c, d) - 1| <= mean_{c'} D_cc' / m_d`` from the heads' dissimilarity.

    With ``D`` the uncentred :func:`head_dissimilarity` and ``m_d`` the mean alignment of
    class ``d`` over heads: ``A_cd = <K^_c, T_d>_F`` with the unit target kernel
    ``T_d = y_d y_d^T / ||y_d||^2``, so by Cauchy-Schwarz ``|A_cd - A_c'd| <= D_cc'`` and
    ``|A_cd - m_d| <= mean_{c'} D_cc'``. Heads whose normalised kernels coincide give
    ``KSM = 1`` exactly (for a two-layer linear network, readout rows of equal norm:
    :func:`ntkdyn.theory.deep_linear_kernels.linear_head_kernels`).

    Parameters
    ----------
    K_heads : array_like, shape (C, n, n)
        One kernel per head.
    Y : array_like, shape (n, C)
        One target column per class.

    Returns
    -------
    numpy.ndarray, shape (C, C)
        The bound on ``|KSM(c, d) - 1|``.
    """
    K_heads = as_array(K_heads, "K_heads", ndim=3)
    Y = _targets(Y, K_heads.shape[1], K_heads.shape[0])
    A = specialization_matrix(K_heads, Y, centered=False)
    D = head_dissimilarity(K_heads, centered=False)
    return D.mean(axis=1)[:, None] / A.mean(axis=0)[None, :]


# ------------------------------------------- readout and first-layer parts (K_V and K_W)
def bilinear_form(K, z) -> np.ndarray:
    """``B(z) = z^T K z / ||z||^2``: the kernel's Rayleigh quotient along ``z``.

    Shan & Bordelon (2021), sec. 6.

    Parameters
    ----------
    K : array_like, shape (n, n)
        The kernel.
    z : array_like, shape (n,) or (n, p)
        One direction, or ``p`` directions as columns (none zero).

    Returns
    -------
    float or numpy.ndarray, shape (p,)
        ``B`` of every direction (a float for one direction).
    """
    K = as_array(K, "K", ndim=2)
    z = as_array(z, "z", ndim=(1, 2))
    if z.shape[0] != K.shape[0]:
        raise ValueError(f"z must have {K.shape[0]} rows, got shape {z.shape}")
    Z = z[:, None] if z.ndim == 1 else z
    norms = np.sum(Z * Z, axis=0)
    if np.any(norms == 0):
        raise ValueError("z must not hold a zero column")
    out = np.einsum("ap,ab,bp->p", Z, K, Z) / norms
    return out[0] if z.ndim == 1 else out


def complement_bilinear_form(K, y) -> float:
    """Mean of ``B(z)`` over ``z`` uniform on the unit sphere of the complement of ``y``.

    ``B_perp = tr(P K P) / (n - 1)``, ``P = I - y y^T / ||y||^2``, i.e.
    ``(tr K - B(y)) / (n - 1)`` for a symmetric ``K``.

    Parameters
    ----------
    K : array_like, shape (n, n)
        The kernel, ``n >= 2``.
    y : array_like, shape (n,)
        The direction whose complement is averaged over.

    Returns
    -------
    float
        ``B_perp``.
    """
    K = as_array(K, "K", ndim=2)
    y = as_array(y, "y", ndim=1)
    n = K.shape[0]
    if y.shape != (n,) or n < 2:
        raise ValueError(f"y must have shape ({n},) with n >= 2, got {y.shape}")
    return float((np.trace(K) - bilinear_form(0.5 * (K + K.T), y)) / (n - 1))


def kernel_split_velocity(W1, W2, X, residual, gamma: float = 1.0,
                          activation: str = "relu") -> dict:
    """Readout and first-layer parts of the head-summed NTK and their gradient-flow velocity.

    ``sum_i K_ii = K_V + K_W`` with ``K_V = k c_2^2 Phi Phi^T`` (the ``W2``-gradient Gram, ``k``
    heads) and ``K_W = c_2^2 c_1^2 G * sum_i D A_i D^T`` (the ``W1``-gradient Gram), Shan &
    Bordelon (2021), sec. 6. Their time derivatives along the flow of :func:`flow_velocity`
    with residual ``Delta`` are the directional derivatives of :func:`kernel_velocity`:
    ``dK_V/dt = k dfeature``, ``dK_W/dt = sum_i dgated_i``; the derivatives are proportional to
    ``gamma``.

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        The first-layer weights.
    W2 : array_like, shape (k, m)
        The readout weights.
    X : array_like, shape (n, d)
        Inputs, one per row.
    residual : array_like, shape (n, k)
        ``Delta = Y - f_gamma``.
    gamma : float, optional
        The richness ``gamma > 0``.
    activation : str, optional
        The hidden activation's name.

    Returns
    -------
    dict
        ``K_V``, ``K_W``, ``dK_V`` and ``dK_W``, each ``(n, n)``.
    """
    W1, W2, X = _weights(W1, W2, X)
    dW1, dW2 = flow_velocity(W1, W2, X, residual, gamma, activation)
    feature, gated = two_layer_ntk_terms(W1, W2, X, activation=activation)
    dfeature, dgated = kernel_velocity(W1, W2, X, dW1, dW2, activation)
    k = W2.shape[0]
    return {"K_V": k * feature, "K_W": gated.sum(axis=0),
            "dK_V": k * dfeature, "dK_W": dgated.sum(axis=0)}


def kernel_split_rates(W1, W2, X, y, gamma: float = 1.0, activation: str = "relu") -> dict:
    """``B`` along ``y`` and its complement for ``K_V`` and ``K_W``, and their rates at ``t = 0``.

    For a one-output network trained on ``y`` (residual ``Delta = y`` at ``t = 0``), with
    :func:`bilinear_form` ``B(y)`` and :func:`complement_bilinear_form` ``B_perp``: returns
    ``B_V_y, B_V_perp, B_W_y, B_W_perp``, their rates ``rate_B_V_y, ...`` (``dB/dt`` at
    ``t = 0``, from :func:`kernel_split_velocity`) and the rate anisotropies
    ``anisotropy_V = rate_B_V_y / rate_B_V_perp`` and ``anisotropy_W`` (the same for ``K_W``).
    Shan & Bordelon (2021, sec. 6): with fixed pre-activation signs ``K_V`` grows along ``y``
    (``anisotropy_V`` of order ``n``) and ``K_W`` nearly isotropically (``anisotropy_W`` near 1
    for random labels). By the symmetry of the flow, ``rate_B_V_y = rate_B_W_y`` exactly when
    ``phi'' = 0`` (:func:`fixed_sign_bilinear_rates`).

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        The first-layer weights at initialisation.
    W2 : array_like, shape (1, m)
        The readout weights (one output).
    X : array_like, shape (n, d)
        Inputs, one per row.
    y : array_like, shape (n,)
        Targets.
    gamma : float, optional
        The richness ``gamma > 0``.
    activation : str, optional
        The hidden activation's name.

    Returns
    -------
    dict
        Floats ``B_{V,W}_y``, ``B_{V,W}_perp``, ``rate_B_{V,W}_y``, ``rate_B_{V,W}_perp`` and
        ``anisotropy_{V,W}``.
    """
    W1, W2, X = _weights(W1, W2, X)
    y = as_array(y, "y", ndim=(1, 2)).reshape(-1)
    if W2.shape[0] != 1 or y.shape != (X.shape[0],):
        raise ValueError(f"kernel_split_rates needs one output and y of shape ({X.shape[0]},), "
                         f"got W2 {W2.shape}, y {y.shape}")
    s = kernel_split_velocity(W1, W2, X, y[:, None], gamma, activation)
    out = {}
    for part in ("V", "W"):
        K, dK = s[f"K_{part}"], s[f"dK_{part}"]
        out[f"B_{part}_y"] = float(bilinear_form(K, y))
        out[f"B_{part}_perp"] = complement_bilinear_form(K, y)
        out[f"rate_B_{part}_y"] = float(bilinear_form(dK, y))
        out[f"rate_B_{part}_perp"] = complement_bilinear_form(dK, y)
        out[f"anisotropy_{part}"] = out[f"rate_B_{part}_y"] / out[f"rate_B_{part}_perp"]
    return out


def fixed_sign_bilinear_rates(W1, W2, X, residual, Z, gamma: float = 1.0,
                              activation: str = "relu") -> tuple[np.ndarray, np.ndarray]:
    """``(dB_V(z)/dt, dB_W(z)/dt)`` for the columns of ``Z (n, p)``, unit by unit, gates fixed.

    For ``phi'' = 0`` (ReLU, linear) and one output ``f = c_2 sum_k a_k phi(h_k)`` with residual
    ``r``, ``u_k = X^T (z * D_k)``, ``v_k = X^T (r * D_k)``, ``C = 2 gamma c_2^3 c_1^2 / n``:

        ||z||^2 dB_V(z)/dt = C sum_k a_k (z . Phi_k) (u_k . v_k),
        ||z||^2 dB_W(z)/dt = C sum_k a_k (r . Phi_k) (u_k . u_k).

    ``dB_W`` weighs the non-negative ``|u_k|^2`` by ``a_k (r . Phi_k)`` (the unit's share of
    ``r^T f``): every direction grows with the sign of that weighted ``r^T f``; ``dB_V`` has
    ``z . Phi_k`` in place of ``r . Phi_k`` and is coherent only along ``z = r``, where the two
    coincide (Shan & Bordelon 2021, sec. 6).

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        The first-layer weights.
    W2 : array_like, shape (1, m)
        The readout weights (one output).
    X : array_like, shape (n, d)
        Inputs, one per row.
    residual : array_like, shape (n,) or (n, 1)
        ``r``.
    Z : array_like, shape (n,) or (n, p)
        The directions ``z``, as columns.
    gamma : float, optional
        The richness ``gamma > 0``.
    activation : {"relu", "linear"}, optional
        The hidden activation (``phi'' = 0``).

    Returns
    -------
    rate_V : numpy.ndarray, shape (p,)
        ``dB_V(z)/dt`` of every direction.
    rate_W : numpy.ndarray, shape (p,)
        ``dB_W(z)/dt`` of every direction.
    """
    if activation not in ("relu", "linear"):
        raise ValueError(f"activation must be 'relu' or 'linear' (phi'' = 0), got {activation!r}")
    W1, W2, X = _weights(W1, W2, X)
    n = X.shape[0]
    if W2.shape[0] != 1:
        raise ValueError(f"fixed_sign_bilinear_rates needs one output, got W2 {W2.shape}")
    r = _targets(residual, n, 1, "residual")[:, 0]
    Z = as_array(Z, "Z", ndim=(1, 2))
    Z = Z[:, None] if Z.ndim == 1 else Z
    if Z.shape[0] != n:
        raise ValueError(f"Z must have {n} rows, got shape {Z.shape}")
    gamma = positive_float(gamma, "gamma")
    act = get_activation(activation)
    c1, c2 = flow_multipliers(W1)
    H = c1 * X @ W1.T
    P, D = act.phi(H), act.dphi(H)
    a = W2[0]
    C = 2.0 * gamma * c2 ** 3 * c1 ** 2 / n
    V = np.einsum("nk,nd->kd", r[:, None] * D, X)            # v_k, (m, d)
    U = np.einsum("np,nk,nd->pkd", Z, D, X)                  # u_k for each z, (p, m, d)
    norms = np.sum(Z * Z, axis=0)
    rate_V = C * np.einsum("k,np,nk,pkd,kd->p", a, Z, P, U, V) / norms
    rate_W = C * np.einsum("k,k,pkd,pkd->p", a, r @ P, U, U) / norms
    return rate_V, rate_W


# ------------------------------------------- gated-term growth from resting readouts (mixtures)
def gated_bilinear_forms(W1, W2, X, Z, activation: str = "relu") -> np.ndarray:
    """``B[c, j] = z_j^T K_W^{cc} z_j``: the gated (first-layer) term of head ``c`` along ``z_j``.

    With ``K_W^{cc} = c_2^2 c_1^2 (X X^T) * (phi'(H) diag(a_c^2) phi'(H)^T)`` (the gated term
    of :func:`ntkdyn.theory.two_layer_ntk.two_layer_ntk_terms`; Shan & Bordelon 2021, sec. 6),

        B[c, j] = c_2^2 c_1^2 sum_k a_ck^2 || sum_mu z_j(x_mu) phi'(h_k(x_mu)) x_mu ||^2.

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        The first-layer weights.
    W2 : array_like, shape (C, m)
        Readouts ``a_ck`` (any values: trained weights, or a velocity, see
        :func:`gated_growth_from_rest`).
    X : array_like, shape (n, d)
        Inputs, one per row.
    Z : array_like, shape (n, p)
        Directions ``z_j`` (columns), e.g. unit class indicators.
    activation : str, optional
        The hidden activation's name.

    Returns
    -------
    numpy.ndarray, shape (C, p)
        ``B[c, j]``.
    """
    W1, W2, X = _weights(W1, W2, X)
    Z = _targets(Z, X.shape[0], name="Z")
    c1, c2 = flow_multipliers(W1)
    D = get_activation(activation).dphi(c1 * X @ W1.T)
    q = np.empty((Z.shape[1], W1.shape[0]))
    for j, z in enumerate(Z.T):
        rows = np.flatnonzero(z)  # sparse directions (class indicators): their rows only
        q[j] = np.sum(((D[rows] * z[rows, None]).T @ X[rows]) ** 2, axis=1)
    return c2 * c2 * c1 * c1 * (W2 * W2) @ q.T


def gated_growth_from_rest(W1, X, Y, Z=None, activation: str = "relu") -> np.ndarray:
    """``t^2`` coefficient of ``z_j^T K_W^{cc}(t) z_j`` under gradient flow from zero readouts.

    With ``W2(0) = 0`` the gated term starts at zero, the first layer has no velocity at
    ``t = 0`` (``dW1/dt`` is proportional to ``W2``) and the gates ``phi'(H)`` stay fixed, so
    ``a_c(t) = t da_c + O(t^2)`` with ``da_c = (c_2 / n) phi(H)^T y_c``
    (:func:`flow_velocity`, ``gamma = 1``) and

        z^T K_W^{cc}(t) z = t^2 B[c, j] + O(t^3),   B = gated_bilinear_forms(W1, da, X, Z),

    i.e. ``B = (1/2) d^2/dt^2`` at ``t = 0``. Head ``c``'s readout grows on the units active on
    class ``c``, so ``K_W^{cc}`` grows fastest along ``y_c`` (Shan & Bordelon 2021, sec. 6.2).

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        The initial first layer.
    X : array_like, shape (n, d)
        Inputs, one per row.
    Y : array_like, shape (n, C)
        The training targets.
    Z : array_like, shape (n, p), optional
        Directions; default the columns of ``Y`` scaled to unit norm.
    activation : str, optional
        The hidden activation's name.

    Returns
    -------
    numpy.ndarray, shape (C, p)
        The ``t^2`` coefficients ``B[c, j]``.
    """
    W1 = as_array(W1, "W1", ndim=2)
    Y = _targets(Y, as_array(X, "X", ndim=2).shape[0])
    if Z is None:
        norms = np.linalg.norm(Y, axis=0)
        if np.any(norms == 0):
            raise ValueError("Y must not have a zero column when Z is not given")
        Z = Y / norms
    _, dW2 = flow_velocity(W1, np.zeros((Y.shape[1], W1.shape[0])), X, Y, 1.0, activation)
    return gated_bilinear_forms(W1, dW2, X, Z, activation)


def own_class_growth_ratio(B) -> float:
    """``mean_c B[c, c] / mean_{c != d} B[c, d]`` of a square array of growths.

    Parameters
    ----------
    B : array_like, shape (C, C)
        Growths, ``C >= 2`` (e.g. :func:`gated_growth_from_rest` along the class indicators).

    Returns
    -------
    float
        The ratio of the mean diagonal to the mean off-diagonal entry.
    """
    B = as_array(B, "B", ndim=2)
    C = B.shape[0]
    if B.shape != (C, C) or C < 2:
        raise ValueError(f"B must be square with at least two rows, got shape {B.shape}")
    off = ~np.eye(C, dtype=bool)
    return float(np.mean(np.diag(B)) / np.mean(B[off]))


def relu_square_gate_moment(rho) -> np.ndarray:
    """``E[relu(u)^2 1(v > 0)]`` for standard Gaussians ``u, v`` of correlation ``rho``.

    With ``theta = arccos(rho)``: ``(pi - theta + sin(theta) cos(theta)) / (2 pi)``
    (``1/2`` at ``rho = 1``, ``1/4`` at ``rho = 0``, ``0`` at ``rho = -1``).

    Parameters
    ----------
    rho : float or array_like
        Correlations in ``[-1, 1]``; any shape.

    Returns
    -------
    numpy.ndarray
        The moment, of the shape of ``rho``.
    """
    rho = np.asarray(rho, dtype=np.float64)
    if np.any(np.abs(rho) > 1) or not np.all(np.isfinite(rho)):
        raise ValueError("rho must lie in [-1, 1]")
    theta = np.arccos(rho)
    return (np.pi - theta + np.sin(theta) * np.cos(theta)) / (2.0 * np.pi)


def mixture_growth_ratio_limit(centres=None) -> float:
    """Small-variance, infinite-width limit of :func:`own_class_growth_ratio` on a mixture.

    Balanced classes at unit centres ``mu_c`` with variance ``sigma^2 -> 0`` and Gaussian first
    layer: a unit's gates are constant on each class and ``da_ck`` is proportional to
    ``relu(w_k . mu_c)``, so (:func:`gated_growth_from_rest`)
    ``B[c, d] ~ E[relu(u_c)^2 1(u_d > 0)]`` with ``u_c = w . mu_c``, and the ratio is
    ``(1/2) / mean_{c != d} E[relu(u_c)^2 1(u_d > 0)]`` (:func:`relu_square_gate_moment`).
    For orthogonal centres it is ``(1/2) / (1/4) = 2``: along ``y_c`` every unit that head
    ``c``'s readout grows on is active, along ``y_d`` half of them (Shan & Bordelon 2021,
    sec. 6.2).

    Parameters
    ----------
    centres : array_like, shape (C, d), optional
        Class centres (rows are scaled to unit norm); default orthogonal ones (the limit does
        not depend on ``C`` then).

    Returns
    -------
    float
        The limiting own-class growth ratio.
    """
    if centres is None:
        return float(0.5 / relu_square_gate_moment(0.0))
    centres = as_array(centres, "centres", ndim=2)
    norms = np.linalg.norm(centres, axis=1)
    if centres.shape[0] < 2 or np.any(norms == 0):
        raise ValueError(f"centres must hold at least two non-zero rows, got {centres.shape}")
    U = centres / norms[:, None]
    rho = np.clip(U @ U.T, -1.0, 1.0)
    off = ~np.eye(len(U), dtype=bool)
    return float(0.5 / np.mean(relu_square_gate_moment(rho[off])))
