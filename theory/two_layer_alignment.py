"""Two-layer NTK alignment: per-head decomposition, early-time drift, linear nets cannot specialise.

Shan & Bordelon (2021), note sections 4-5. Two-layer network in the NTK parameterization
(DESIGN.md), ``k`` heads, width ``m``, input dimension ``d``:

    f_i(x) = c_2 sum_k a_ik phi(h_k),   h_k = c_1 w_k . x,   c_1 = 1/sqrt(d),  c_2 = 1/sqrt(m),

with ``W1 = [w_k] (m, d)`` and ``W2 = [a_ik] (k, m)``. Its per-head NTK is (note eq. R1)

    K_ii(x, x') = c_2^2 sum_k phi(h_k) phi(h'_k)                       (feature term, shared)
                + c_2^2 c_1^2 (x . x') sum_k a_ik^2 phi'(h_k) phi'(h'_k)  (gated term, per head).

Richness (note section 5; ``numerics.richness``): ``f_gamma = (f - f_0) / gamma`` trained by
gradient flow with parameter rate ``gamma^2`` has, with residual ``Delta = Y - f_gamma``,

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
activation is one of :data:`ACTIVATIONS` (ReLU's second derivative is zero almost everywhere,
so ReLU gates do not move to first order).
"""
from __future__ import annotations

import numpy as np

from ..base.alignment import alignment, specialization_index  # noqa: F401 (public here too)
from ..base.alignment import center as _center
from ..base.alignment import specialization as specialization_matrix
from .relu_ntk import infinite_nngp, infinite_ntk
from ..base.validation import as_array, positive_float


def _relu(x):
    return np.maximum(x, 0.0)


def _step(x):
    return (x > 0).astype(np.float64)


def _tanh_d1(x):
    return 1.0 - np.tanh(x) ** 2


def _tanh_d2(x):
    t = np.tanh(x)
    return -2.0 * t * (1.0 - t * t)


# name -> (phi, phi', phi'')
ACTIVATIONS = {
    "relu": (_relu, _step, np.zeros_like),
    "linear": (lambda x: x, np.ones_like, np.zeros_like),
    "tanh": (np.tanh, _tanh_d1, _tanh_d2),
}


def _activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def _weights(W1, W2, X):
    W1 = as_array(W1, "W1", ndim=2)
    W2 = as_array(W2, "W2", ndim=2)
    X = as_array(X, "X", ndim=2)
    if W1.shape[1] != X.shape[1]:
        raise ValueError(f"W1 must have {X.shape[1]} columns (the input dimension of X), "
                         f"got shape {W1.shape}")
    if W2.shape[1] != W1.shape[0]:
        raise ValueError(f"W2 must have {W1.shape[0]} columns (the width, rows of W1), "
                         f"got shape {W2.shape}")
    return W1, W2, X


def _targets(Y, n, k=None, name="Y"):
    Y = as_array(Y, name, ndim=(1, 2))
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.shape[0] != n or (k is not None and Y.shape[1] != k):
        want = f"({n}, {k})" if k is not None else f"({n}, ...)"
        raise ValueError(f"{name} must have shape {want}, got {Y.shape}")
    return Y


# ------------------------------------------------------------------- decomposition (R1)
def two_layer_ntk_terms(W1, W2, X, X2=None, activation: str = "relu"):
    """Feature term ``(n, n2)`` and per-head gated terms ``(k, n, n2)`` of eq. (R1).

    ``K_ii = feature + gated[i]``; ``feature = c_2^2 phi(H) phi(H')^T`` is shared by all
    heads, ``gated[i] = c_2^2 c_1^2 (X X'^T) * (phi'(H) diag(a_i^2) phi'(H')^T)``.
    """
    W1, W2, X = _weights(W1, W2, X)
    X2 = X if X2 is None else as_array(X2, "X2", ndim=2)
    if X2.shape[1] != X.shape[1]:
        raise ValueError(f"X2 must have {X.shape[1]} columns like X, got shape {X2.shape}")
    phi, dphi, _ = _activation(activation)
    m, d = W1.shape
    c1sq, c2sq = 1.0 / d, 1.0 / m
    H, H2 = X @ W1.T / np.sqrt(d), X2 @ W1.T / np.sqrt(d)
    feature = c2sq * phi(H) @ phi(H2).T
    D, D2 = dphi(H), dphi(H2)
    gram = c1sq * X @ X2.T
    gated = np.stack([c2sq * gram * ((D * a * a) @ D2.T) for a in W2])
    return feature, gated


def infinite_width_terms(X, X2=None, activation: str = "relu", init_scale: float = 1.0):
    """Infinite-width limit of the feature and gated terms at initialisation (each ``(n, n2)``).

    With ``W ~ N(0, sigma^2)`` and ``m -> infinity``, per head,
    ``feature -> E[phi(u) phi(v)]`` and ``gated -> sigma^2 (x . x'/d) E[phi'(u) phi'(v)]`` with
    ``(u, v)`` Gaussian of covariance ``sigma^2 [x.x, x.x'; x'.x, x'.x'] / d``. For ReLU (arc-cosine
    kernels, Cho & Saul 2009), with ``theta`` the angle between ``x`` and ``x'``:
    ``feature = sigma^2 |x||x'| / (2 pi d) [sin theta + (pi - theta) cos theta]`` and
    ``gated = sigma^2 (x.x'/d) (pi - theta) / (2 pi)``; their sum is the depth-2 NTK of
    :func:`theory.relu_ntk.infinite_ntk`, and ``feature = infinite_nngp / sigma^2``.
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
    """``m_ik = (1/n) sum_mu y_i(x_mu) phi'(h_k(x_mu)) x_mu``, shape ``(k, m, d)``.

    For ReLU, the target-weighted mean of the inputs in unit ``k``'s active half-space.
    """
    W1 = as_array(W1, "W1", ndim=2)
    X = as_array(X, "X", ndim=2)
    if W1.shape[1] != X.shape[1]:
        raise ValueError(f"W1 must have {X.shape[1]} columns, got shape {W1.shape}")
    Y = _targets(Y, X.shape[0])
    _, dphi, _ = _activation(activation)
    D = dphi(X @ W1.T / np.sqrt(X.shape[1]))
    return np.einsum("ni,nk,nd->ikd", Y, D, X) / X.shape[0]


def flow_velocity(W1, W2, X, residual, gamma: float = 1.0, activation: str = "relu"):
    """Gradient-flow velocity ``(dW1/dt, dW2/dt)`` of the centred model ``f_gamma``.

    ``dW2/dt = (gamma c_2 / n) Delta^T phi(H)`` and
    ``dW1/dt = gamma c_2 c_1 sum_i a_ik m_ik = (gamma c_2 c_1 / n) [(Delta W2) * phi'(H)]^T X``,
    ``Delta = Y - f_gamma`` the residual (``Delta = Y`` at ``t = 0``).
    """
    W2, X, R, gamma, c1, c2, P, D = _flow_setup(W1, W2, X, residual, gamma, activation)
    return _velocity(W2, X, R, gamma, c1, c2, P, D)


def _flow_setup(W1, W2, X, residual, gamma, activation):
    """Checked inputs, multipliers and ``Phi = phi(H)``, ``D = phi'(H)`` shared by the flows."""
    W1, W2, X = _weights(W1, W2, X)
    R = _targets(residual, X.shape[0], W2.shape[0], "residual")
    gamma = positive_float(gamma, "gamma")
    phi, dphi, _ = _activation(activation)
    m, d = W1.shape
    c1, c2 = 1.0 / np.sqrt(d), 1.0 / np.sqrt(m)
    H = c1 * X @ W1.T
    return W2, X, R, gamma, c1, c2, phi(H), dphi(H)


def _velocity(W2, X, R, gamma, c1, c2, P, D):
    """``(dW1/dt, dW2/dt)`` of :func:`flow_velocity` from precomputed ``Phi`` and ``D``."""
    n = X.shape[0]
    return gamma * c2 * c1 * ((R @ W2) * D).T @ X / n, gamma * c2 * R.T @ P / n


def kernel_velocity(W1, W2, X, dW1, dW2, activation: str = "relu"):
    """Directional derivative of the (R1) terms along ``(dW1, dW2)``: ``(dfeature, dgated)``.

    With ``dH = c_1 X dW1^T``: ``d phi(H) = phi'(H) * dH``, ``d phi'(H) = phi''(H) * dH`` and
    ``dfeature = c_2^2 (d phi phi^T + phi d phi^T)``,
    ``dgated_i = c_2^2 c_1^2 G * (dD A_i D^T + D A_i dD^T + 2 D diag(a_i da_i) D^T)``,
    ``A_i = diag(a_i^2)``, ``G = X X^T``.
    """
    W1, W2, X = _weights(W1, W2, X)
    dW1 = as_array(dW1, "dW1", ndim=2)
    dW2 = as_array(dW2, "dW2", ndim=2)
    if dW1.shape != W1.shape or dW2.shape != W2.shape:
        raise ValueError(f"dW1, dW2 must have shapes {W1.shape}, {W2.shape}, "
                         f"got {dW1.shape}, {dW2.shape}")
    phi, dphi, d2phi = _activation(activation)
    m, d = W1.shape
    c1, c2sq = 1.0 / np.sqrt(d), 1.0 / m
    H = c1 * X @ W1.T
    dH = c1 * X @ dW1.T
    P, D, dP, dD = phi(H), dphi(H), dphi(H) * dH, d2phi(H) * dH
    cross = dP @ P.T
    dfeature = c2sq * (cross + cross.T)
    gram = X @ X.T / d
    dgated = []
    for a, da in zip(W2, dW2):
        half = (dD * a * a) @ D.T
        dgated.append(c2sq * gram * (half + half.T + 2.0 * (D * a * da) @ D.T))
    return dfeature, np.stack(dgated)


def flow_second_order(W1, W2, X, residual, gamma: float = 1.0, activation: str = "relu") -> dict:
    """First and second time derivatives of the weights, outputs and (R1) terms along the flow.

    For activations with ``phi'' = 0`` (ReLU almost everywhere, linear) the gates
    ``D = phi'(H)`` are constant to every order, and differentiating the flow of
    :func:`flow_velocity` once more gives, with ``Delta`` the residual,

        d f_gamma/dt = c_2 (dPhi W2^T + Phi dW2^T) / gamma,       dDelta/dt = -d f_gamma/dt,
        d2W2/dt2 = (gamma c_2 / n) (dDelta^T Phi + Delta^T dPhi),
        d2W1/dt2 = (gamma c_2 c_1 / n) [(dDelta W2 + Delta dW2) * D]^T X,
        d2Phi = D * (c_1 X d2W1^T),
        d2feature = c_2^2 (d2Phi Phi^T + Phi d2Phi^T + 2 dPhi dPhi^T),
        d2gated_i = c_2^2 c_1^2 G * (D diag(2 da_i^2 + 2 a_i d2a_i) D^T).

    Returns ``dW1, dW2, d2W1, d2W2, df`` (``d f_gamma / dt``), ``dfeature, dgated,
    d2feature, d2gated``. All first derivatives scale as ``gamma`` at ``t = 0`` and the
    second derivatives of the kernel as ``gamma^2`` (plus an ``O(gamma)`` part from the
    shrinking residual).
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
    ``sum_i a_ik m_ik`` (note section 5).
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

    Returns ``alignment_centered``/``alignment_uncentered`` (values and ``d/dt`` of
    ``A(sum_i K_ii, Y)``), ``specialization`` and ``specialization_rate`` (``S_ij`` and
    ``dS_ij/dt``), ``xi`` and ``xi_rate``. Time is ``t = lr * steps`` of
    :func:`numerics.richness.train_centered`. All rates are proportional to ``gamma``.
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


# ------------------------------------------------------------- linear networks (section 4)
def linear_head_kernels(params, X, multipliers=None):
    """Deep linear network: per-head NTKs as mixtures of shared kernels (note eq. D1).

    ``f(x) = c_L W_L ... c_1 W_1 x``. With ``P_l = c_l W_l ... c_1 W_1`` (``P_0 = I``) and
    ``B_l = c_L W_L ... c_{l+1} W_{l+1}`` (``B_L = I``),

        K_ii(x, x') = sum_l  w_il  Phi_l(x, x'),   w_il = [B_l B_l^T]_ii,
        Phi_l(x, x') = c_l^2 (P_{l-1} x) . (P_{l-1} x').

    Returns ``weights (k, L)`` and ``shared (L, n, n)``: every head mixes the **same** ``L``
    kernels ``Phi_l`` and differs only in ``L`` scalar weights (``w_iL = 1``). Multipliers
    default to the NTK parameterization ``c_l = 1/sqrt(fan_in)``.
    """
    if not isinstance(params, (list, tuple)) or len(params) < 1:
        raise TypeError("params must be a non-empty list of weight matrices [W_1, ..., W_L]")
    Ws = [as_array(W, f"params[{l}]", ndim=2) for l, W in enumerate(params)]
    X = as_array(X, "X", ndim=2)
    if Ws[0].shape[1] != X.shape[1]:
        raise ValueError(f"params[0] must have {X.shape[1]} columns, got shape {Ws[0].shape}")
    for l in range(1, len(Ws)):
        if Ws[l].shape[1] != Ws[l - 1].shape[0]:
            raise ValueError(f"params[{l}] must have {Ws[l - 1].shape[0]} columns, "
                             f"got shape {Ws[l].shape}")
    L = len(Ws)
    c = ([1.0 / np.sqrt(W.shape[1]) for W in Ws] if multipliers is None
         else [positive_float(v, f"multipliers[{l}]") for l, v in enumerate(multipliers)])
    if len(c) != L:
        raise ValueError(f"multipliers must have {L} entries, got {len(c)}")
    k = Ws[-1].shape[0]
    shared, weights = [], np.empty((k, L))
    Z = X  # rows P_{l-1} x
    for l in range(L):
        shared.append(c[l] ** 2 * Z @ Z.T)
        Z = c[l] * Z @ Ws[l].T
    B = np.eye(k)
    for l in range(L - 1, -1, -1):
        weights[:, l] = np.einsum("ij,ij->i", B, B)
        B = c[l] * B @ Ws[l]
    return weights, np.stack(shared)


def head_dissimilarity(K_heads, centered: bool = True) -> np.ndarray:
    """``D_ii' = || K^_i - K^_i' ||_F`` with ``K^ = H K H / ||H K H||_F`` (``(k, k)``)."""
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
    """
    D = head_dissimilarity(K_heads, centered)
    k = D.shape[0]
    if k < 2:
        raise ValueError("K_heads must hold at least two heads")
    return float(D.mean(axis=1).sum() / (k - 1))
