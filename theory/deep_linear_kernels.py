"""Deep linear networks: the NTK, from the weights or from mode strengths, and its alignment.

Network ``f(x) = c_L W_L ... c_1 W_1 x`` with widths ``[d, n_1, ..., n_{L-1}, k]`` and
multipliers ``c_l`` (docs/conventions.md). The gradient of ``f_i`` with respect to ``W_l`` is
``c_l B_l[i]^T (Q_l x)^T``, so its NTK is exact and layer-wise (Shan & Bordelon 2021, sec. 5,
where ``L`` counts the hidden weight matrices: their ``L`` is ``L - 1`` here)::

    K_ij(x, x') = sum_l [B_l B_l^T]_ij  c_l^2 (Q_l x) . (Q_l x'),
    B_l = c_L W_L ... c_{l+1} W_{l+1}  (B_L = I_k),
    Q_l = c_{l-1} W_{l-1} ... c_1 W_1  (Q_1 = I_d).

:func:`ntk_from_weights` evaluates it in any head layout and :func:`linear_head_kernels` in
its per-head mixture form ``K_ii = sum_l [B_l B_l^T]_ii Phi_l``: every head mixes the same
``L`` shared kernels ``Phi_l``, which is why linear networks cannot specialise. Both use one
layer-wise factorisation, never a Jacobian.

For the balanced decoupled modes of :mod:`ntkdyn.theory.deep_linear_modes` (standard
parameterization) :func:`ntk_from_modes` gives the same kernel from the mode strengths; a
scalar-output mode of strength ``u`` along the unit input direction ``v`` gives the rank-one
spike kernel

    K(x, x') = u^(2 - 2/L) [x . x' + (L - 1)(v . x)(v . x')],

whose alignment with whitened inputs rises from ``1/sqrt(D)`` to
``A_inf = L / sqrt(L^2 + D - 1)`` once the task mode is learned (:func:`alignment_whitened`,
:func:`final_alignment`; verified in :func:`ntkdyn.theory.symbolic.whitened_final_alignment`).
"""
from __future__ import annotations

import numpy as np

from ..base.validation import as_array, float_arrays, one_of, positive_float, positive_int
from .parameterization import PARAMETERIZATIONS, layer_multipliers

__all__ = [
    "ntk_from_weights",
    "linear_head_kernels",
    "ntk_from_modes",
    "initial_kernel_scale",
    "alignment_whitened",
    "final_alignment",
    "alignment_general",
    "observables",
]

_HEADS = ("sum", "each", "full")


def _check_heads(heads):
    return one_of(heads, "heads", _HEADS)


def _weights_and_multipliers(weights, X, multipliers, parameterization, name):
    """Checked ``[W_1, ..., W_L]``, ``X`` and multipliers ``(c_1, ..., c_L)``."""
    if not isinstance(weights, (list, tuple)) or len(weights) == 0:
        raise TypeError(f"{name} must be a non-empty list of 2-D weight matrices [W_1, ..., W_L]")
    Ws = float_arrays(weights, name, ndim=2)
    X = as_array(X, "X", ndim=2)
    if X.shape[1] != Ws[0].shape[1]:
        raise ValueError(f"X must have {Ws[0].shape[1]} columns (the input dimension of "
                         f"{name}[0]), got shape {X.shape}")
    for l in range(1, len(Ws)):
        if Ws[l].shape[1] != Ws[l - 1].shape[0]:
            raise ValueError(f"{name}[{l}] must have {Ws[l - 1].shape[0]} columns (the rows of "
                             f"{name}[{l - 1}]), got shape {Ws[l].shape}")
    if multipliers is None:
        c = layer_multipliers([W.shape[1] for W in Ws], parameterization)
    else:
        c = as_array(multipliers, "multipliers", ndim=1)
        if c.shape != (len(Ws),):
            raise ValueError(f"multipliers must have {len(Ws)} entries, got shape {c.shape}")
        c = [positive_float(float(v), f"multipliers[{l}]") for l, v in enumerate(c)]
    return Ws, X, c


def _layer_factors(Ws, X, c):
    """``B_l`` ``(k, n_l)`` and ``G_l = c_l^2 (Q_l X^T)^T (Q_l X^T)`` ``(n, n)`` for every layer.

    ``Q_{l+1} x = c_l W_l (Q_l x)`` forward from ``Q_1 x = x`` and
    ``B_{l-1} = c_l B_l W_l`` backward from ``B_L = I_k`` (module docstring).
    """
    depth = len(Ws)
    G = []
    Z = X  # rows Q_l x
    for l in range(depth):
        G.append(c[l] ** 2 * (Z @ Z.T))
        if l < depth - 1:
            Z = c[l] * Z @ Ws[l].T
    B = [None] * depth
    B[-1] = np.eye(Ws[-1].shape[0])
    for l in range(depth - 1, 0, -1):
        B[l - 1] = c[l] * B[l] @ Ws[l]
    return B, G


def _reduce_heads(M_list, G_list, heads):
    """``K = sum_l M_l (x) G_l`` in the requested head layout."""
    if heads == "full":
        return sum(M[:, :, None, None] * G[None, None] for M, G in zip(M_list, G_list))
    if heads == "each":
        return sum(np.diag(M)[:, None, None] * G[None] for M, G in zip(M_list, G_list))
    return sum(np.trace(M) * G for M, G in zip(M_list, G_list))


def ntk_from_weights(weights, X, multipliers=None, heads: str = "sum",
                     parameterization: str = "standard") -> np.ndarray:
    """Exact NTK of the linear network ``f(x) = c_L W_L ... c_1 W_1 x`` on ``X``.

    ``K_ij(x, x') = sum_l [B_l B_l^T]_ij c_l^2 (Q_l x) . (Q_l x')`` (module docstring),
    computed layer-wise with matrix products, never a Jacobian.

    Parameters
    ----------
    weights : list of 2-D arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})``.
    X : array_like, shape (n, d)
        Inputs, one per row.
    multipliers : sequence of float, optional
        ``(c_1, ..., c_L)``, all ``> 0``; when given, ``parameterization`` is ignored.
    heads : {"sum", "each", "full"}
        ``(n, n)`` summed over heads ``sum_i K_ii``, ``(k, n, n)`` per head, or ``(k, k, n, n)``.
    parameterization : {"standard", "ntk"}
        Multipliers when ``multipliers`` is not given. The default is ``"standard"``
        (``c_l = 1``, the parameterization of the mode dynamics), **not** the ``"ntk"`` default
        of ``ntkdyn.numerics.networks.MLP``: pass ``parameterization="ntk"`` (or the network's
        ``multipliers``) for the kernel of an ``MLP`` built with its defaults.

    Returns
    -------
    numpy.ndarray, shape (n, n), (k, n, n) or (k, k, n, n)
        The NTK in the layout ``heads`` asks for.
    """
    _check_heads(heads)
    Ws, X, c = _weights_and_multipliers(weights, X, multipliers, parameterization, "weights")
    B, G = _layer_factors(Ws, X, c)
    return _reduce_heads([Bl @ Bl.T for Bl in B], G, heads)


def linear_head_kernels(params, X, multipliers=None, parameterization: str = "ntk"):
    """Per-head NTKs of a deep linear network as mixtures of shared kernels.

    The head-diagonal form of :func:`ntk_from_weights`::

        K_ii(x, x') = sum_l  w_il  Phi_l(x, x'),   w_il = [B_l B_l^T]_ii,
        Phi_l(x, x') = c_l^2 (Q_l x) . (Q_l x').

    Every head mixes the **same** ``L`` kernels ``Phi_l`` and differs only in ``L`` scalar
    weights (``w_iL = 1``), so the heads of a linear network cannot specialise (Shan & Bordelon
    2021, sec. 5).

    Parameters
    ----------
    params : list of 2-D arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})``.
    X : array_like, shape (n, d)
        Inputs, one per row.
    multipliers : sequence of float, optional
        ``(c_1, ..., c_L)``, all ``> 0``; when given, ``parameterization`` is ignored.
    parameterization : {"ntk", "standard"}
        Multipliers when ``multipliers`` is not given; the default is ``"ntk"``
        (``c_l = 1/sqrt(n_{l-1})``, as ``ntkdyn.numerics.networks.MLP``).

    Returns
    -------
    weights : numpy.ndarray, shape (k, L)
        ``w_il = [B_l B_l^T]_ii``, head ``i``'s weight on the shared kernel of layer ``l``.
    shared : numpy.ndarray, shape (L, n, n)
        The shared kernels ``Phi_l`` on ``X``.
    """
    Ws, X, c = _weights_and_multipliers(params, X, multipliers, parameterization, "params")
    B, shared = _layer_factors(Ws, X, c)
    weights = np.empty((Ws[-1].shape[0], len(Ws)))
    for l, Bl in enumerate(B):
        weights[:, l] = np.einsum("ij,ij->i", Bl, Bl)
    return weights, np.stack(shared)


def ntk_from_modes(a, X, V, U, heads: str = "sum") -> np.ndarray:
    """NTK of a decoupled deep linear network from its per-layer mode strengths.

    For ``W_1 = R_2 diag(a_1) V^T``, ``W_l = R_{l+1} diag(a_l) R_l^T``, ``W_L = U diag(a_L) R_L^T``
    (standard parameterization; any orthonormal ``R_l``)::

        K_ij(x, x') = sum_l M^l_ij G^l(x, x'),
        M^l = U diag(prod_{k>l} a_k^2) U^T  (l < L),   M^L = I_k,
        G^l = x^T V diag(prod_{k<l} a_k^2) V^T x'  (l > 1),   G^1 = x.x'.

    Balanced scalar-output modes give the rank-one spike
    ``u^(2(L-1)/L) [x.x' + (L-1)(v.x)(v.x')]`` (module docstring).

    Parameters
    ----------
    a : array_like, shape (L, m)
        Per-layer strengths (see
        :func:`ntkdyn.theory.deep_linear_modes.balanced_strengths`).
    X : array_like, shape (n, d)
        Inputs, one per row.
    V : array_like, shape (d, m)
        Orthonormal input directions.
    U : array_like, shape (k, m)
        Orthonormal output directions.
    heads : {"sum", "each", "full"}
        The layout of the result, as in :func:`ntk_from_weights`.

    Returns
    -------
    numpy.ndarray, shape (n, n), (k, n, n) or (k, k, n, n)
        The NTK in the layout ``heads`` asks for.
    """
    _check_heads(heads)
    a = as_array(a, "a", ndim=2)
    X = as_array(X, "X", ndim=2)
    V = as_array(V, "V", ndim=2)
    U = as_array(U, "U", ndim=2)
    depth, m = a.shape
    if V.shape != (X.shape[1], m):
        raise ValueError(f"V must have shape ({X.shape[1]}, {m}), got {V.shape}")
    if U.shape[1] != m:
        raise ValueError(f"U must have {m} columns, got shape {U.shape}")
    for name, B in (("V", V), ("U", U)):
        if np.max(np.abs(B.T @ B - np.eye(m))) > 1e-8:
            raise ValueError(f"{name} must have orthonormal columns")
    k = U.shape[0]
    a2 = a ** 2
    XV = X @ V
    M_list, G_list = [], []
    for l in range(depth):  # l is 0-based: layer l+1
        above = np.prod(a2[l + 1:], axis=0)
        below = np.prod(a2[:l], axis=0)
        M_list.append(np.eye(k) if l == depth - 1 else (U * above) @ U.T)
        G_list.append(X @ X.T if l == 0 else (XV * below) @ XV.T)
    return _reduce_heads(M_list, G_list, heads)


def initial_kernel_scale(widths, init_scale: float, parameterization: str = "standard") -> float:
    """Expected NTK at initialisation, per head, in units of ``X X^T``: ``E K_0 = c X X^T``.

    For i.i.d. ``N(0, sigma^2)`` weights, ``E[P_l P_l^T] = prod_{k>l} (sigma^2 n_{k-1}) I`` and
    ``E[Q_l^T Q_l] = prod_{k<l} (sigma^2 n_k) I``, so every layer contributes the same
    ``sigma^(2(L-1)) prod_{l=1}^{L-1} n_l`` and ``c = L sigma^(2(L-1)) prod(hidden widths)``,
    times ``prod_{l<L} 1/n_l`` in the NTK parameterization.

    Parameters
    ----------
    widths : sequence of int
        ``[d, n_1, ..., n_{L-1}, k]``, at least two entries.
    init_scale : float
        ``sigma``, the standard deviation of every weight at initialisation.
    parameterization : {"standard", "ntk"}, optional
        The layer multipliers (default ``"standard"``, ``c_l = 1``).

    Returns
    -------
    float
        ``c`` with ``E K_0 = c X X^T`` on each head.
    """
    one_of(parameterization, "parameterization", PARAMETERIZATIONS)
    widths = [positive_int(w, f"widths[{i}]") for i, w in enumerate(widths)]
    if len(widths) < 2:
        raise ValueError("widths must have at least 2 entries [d, ..., k]")
    sigma = positive_float(init_scale, "init_scale")
    depth = len(widths) - 1
    hidden = np.prod(np.asarray(widths[1:-1], dtype=np.float64))
    c = depth * sigma ** (2 * (depth - 1)) * hidden
    if parameterization == "ntk":
        c /= np.prod(np.asarray(widths[:-1], dtype=np.float64))
    return float(c)


def alignment_whitened(depth: int, dim: int, u, bulk=0.0) -> np.ndarray:
    """Alignment of ``K = (bulk + w) X X^T + (L-1) w (X v)(X v)^T`` with ``y = X beta``.

    ``v = beta_hat``.

    ``w = u^(2-2/L)`` is the spike scale of a balanced scalar-output mode of strength ``u``
    (the rank-one spike kernel of the module docstring) and ``bulk`` an isotropic remainder
    (e.g. the initial kernel
    :func:`initial_kernel_scale`). For whitened inputs (``X^T X = n I_D``)
    ``A = (alpha + gamma) / sqrt(alpha^2 D + 2 alpha gamma + gamma^2)`` with
    ``alpha = bulk + w``, ``gamma = (L-1) w``
    (:func:`ntkdyn.theory.symbolic.whitened_final_alignment`);
    ``bulk = 0`` gives ``L / sqrt(L^2 + D - 1)`` and ``w << bulk`` gives ``1/sqrt(D)``.

    Parameters
    ----------
    depth : int
        ``L``, the number of weight matrices.
    dim : int
        ``D``, the input dimension.
    u : array_like
        Mode strengths ``u >= 0``; any shape.
    bulk : float, optional
        The isotropic part of the kernel, ``>= 0`` (default 0).

    Returns
    -------
    numpy.ndarray
        The alignment ``A`` for every ``u``, of the shape of ``u``.
    """
    depth = positive_int(depth, "depth")
    dim = positive_int(dim, "dim")
    u = as_array(u, "u")
    if np.any(u < 0):
        raise ValueError("u must be >= 0")
    bulk = positive_float(bulk, "bulk", allow_zero=True)
    w = u ** (2.0 - 2.0 / depth)
    alpha = bulk + w
    gamma = (depth - 1) * w
    den = np.sqrt(alpha ** 2 * dim + 2 * alpha * gamma + gamma ** 2)
    if np.any(den == 0):
        raise ValueError("alignment undefined: zero kernel (u = 0 and bulk = 0)")
    return (alpha + gamma) / den


def final_alignment(depth, dim) -> np.ndarray | float:
    """Predicted final alignment ``A_inf = L / sqrt(L^2 + D - 1)``.

    Whitened inputs, scalar output, small initialisation.

    Verified: symbolically (:func:`ntkdyn.theory.symbolic.whitened_final_alignment`) and
    numerically in the tests against the kernel of a trained balanced network.

    Parameters
    ----------
    depth : int or array_like of int
        ``L >= 1``, the number of weight matrices.
    dim : int or array_like of int
        ``D >= 1``, the input dimension (broadcast against ``depth``).

    Returns
    -------
    float or numpy.ndarray
        ``A_inf`` (a float for scalar arguments, else of their broadcast shape).
    """
    L = as_array(depth, "depth")
    D = as_array(dim, "dim")
    if np.any(L < 1) or np.any(L != np.round(L)):
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    if np.any(D < 1) or np.any(D != np.round(D)):
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    out = L / np.sqrt(L ** 2 + D - 1)
    return float(out) if out.ndim == 0 else out


def alignment_general(G, y, beta_norm: float, depth: int) -> float:
    """Alignment after learning for non-whitened data (Shan & Bordelon 2021, sec. 5).

    ``K ∝ G + (L-1) S`` with ``G = X X^T`` and ``S = y y^T / ||beta*||^2``::

        A = [y^T G y + (L-1)||y||^4/b^2] /
            (||y||^2 sqrt(||G||_F^2 + 2(L-1) y^T G y / b^2 + (L-1)^2 ||y||^4 / b^4)),

    ``b = ||beta*||``; ``depth = 1`` gives the initial ``A(G, y)``.

    Parameters
    ----------
    G : array_like, shape (n, n)
        The input Gram matrix ``X X^T``.
    y : array_like, shape (n,)
        The targets ``X beta*``.
    beta_norm : float
        ``b = ||beta*||``, positive.
    depth : int
        ``L``, the number of weight matrices.

    Returns
    -------
    float
        The alignment ``A`` after learning.
    """
    G = as_array(G, "G", ndim=2)
    y = as_array(y, "y", ndim=1)
    b = positive_float(beta_norm, "beta_norm")
    depth = positive_int(depth, "depth")
    if G.shape != (y.size, y.size):
        raise ValueError(f"G must be ({y.size}, {y.size}), got {G.shape}")
    yy = float(y @ y)
    yGy = float(y @ G @ y)
    c = depth - 1
    num = yGy + c * yy ** 2 / b ** 2
    den = yy * np.sqrt(np.sum(G ** 2) + 2 * c * yGy / b ** 2 + c ** 2 * yy ** 2 / b ** 4)
    return float(num / den)


def observables(u, depth: int, dim: int, bulk=0.0) -> dict:
    """Observables of scalar-output whitened mode trajectories ``u(t)`` (any shape).

    Parameters
    ----------
    u : array_like
        Mode strengths along time; any shape.
    depth : int
        ``L``, the number of weight matrices.
    dim : int
        ``D``, the input dimension.
    bulk : float, optional
        The isotropic part of the kernel, as in :func:`alignment_whitened`.

    Returns
    -------
    dict
        ``{"u": u, "spike": u^(2-2/L), "alignment": alignment_whitened(depth, dim, u, bulk)}``,
        each of the shape of ``u``.
    """
    u = as_array(u, "u")
    return {"u": u, "spike": u ** (2.0 - 2.0 / positive_int(depth, "depth")),
            "alignment": alignment_whitened(depth, dim, u, bulk)}
