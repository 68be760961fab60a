"""The per-head NTK of a two-layer network as a feature term plus a gated term.

Two-layer network with ``k`` heads, width ``m`` and input dimension ``d``
(Shan & Bordelon 2021, sec. 6; multipliers as in docs/conventions.md):

    f_i(x) = c_2 sum_j a_ij phi(h_j),   h_j = c_1 w_j . x,

``W1 = [w_j]`` of shape ``(m, d)``, ``W2 = [a_ij]`` of shape ``(k, m)``; ``c_1 = 1/sqrt(d)``,
``c_2 = 1/sqrt(m)`` in the NTK parameterization and ``c_1 = c_2 = 1`` in the standard one.
Its per-head NTK on inputs ``X`` ``(n, d)`` and ``X'`` ``(n2, d)``, with ``H = c_1 X W1^T``, is

    K_ii = c_2^2 [ phi(H) phi(H')^T + c_1^2 (X X'^T) * (phi'(H) diag(a_i^2) phi'(H')^T) ]:

the feature term (the gradient with respect to ``W2``, shared by all heads) plus the gated
term of head ``i`` (the gradient with respect to ``W1``). Both are sums over hidden units,
accumulated here over blocks of units (:func:`hidden_unit_sums`), so memory does not grow
with the width; ``ntkdyn.numerics.kernels.empirical_ntk`` assembles its two-layer kernels
from these sums and :func:`two_layer_ntk_terms` returns the two terms scaled.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..base.activations import get_activation
from ..base.validation import as_array, one_of, positive_int
from .parameterization import layer_multipliers

__all__ = ["BLOCK_BYTES", "HiddenUnitSums", "check_weights", "default_block_size",
           "hidden_unit_sums", "two_layer_ntk_terms"]

# Bytes of one (n, block) slab of hidden-unit activations in the blocked sums.
BLOCK_BYTES = 32 * 2**20

_GATED_HEADS = ("each", "sum")


class HiddenUnitSums(NamedTuple):
    """Unscaled sums over the hidden units ``j`` (see :func:`hidden_unit_sums`).

    With ``h_j = c_1 w_j . x`` (plus the bias, if any) and ``k`` heads:

    Parameters
    ----------
    feature : ndarray, shape (n, n2)
        ``sum_j phi(h_j(x)) phi(h_j(x'))``.
    gated : ndarray, shape (k, n, n2) or (n, n2)
        ``sum_j a_ij^2 phi'(h_j(x)) phi'(h_j(x'))`` per head (``heads="each"``) or summed over
        the heads (``heads="sum"``).
    inputs : ndarray, shape (n, n2)
        The input Gram ``X X'^T``.
    readout : ndarray, shape (n, k), or None
        ``phi(H) W2^T``, so that the readout pre-activations are ``c_2 phi(H) W2^T``; ``None``
        unless asked for.
    readout2 : ndarray, shape (n2, k), or None
        The same on ``X'`` (the same array when ``X'`` is ``X``).
    """

    feature: np.ndarray         # (n, n2): sum_j phi(h_j(x)) phi(h_j(x'))
    gated: np.ndarray           # (k, n, n2) or (n, n2): sum_j a_ij^2 phi'(h_j(x)) phi'(h_j(x'))
    inputs: np.ndarray          # (n, n2): X X'^T
    readout: np.ndarray | None  # (n, k): phi(H) W2^T, so that h_out = c_2 phi(H) W2^T
    readout2: np.ndarray | None  # (n2, k): the same on X' (the same array when X' is X)


def check_weights(W1, W2, X, X2=None, keep_float32: bool = False, finite: bool = True):
    """Checked ``(W1, W2, X, X2)``: ``W1 (m, d)``, ``W2 (k, m)``, ``X (n, d)``, ``X2 (n2, d)``.

    ``X2`` stays ``None`` when not given. ``finite`` applies to the weights; inputs are always
    checked for finiteness.

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        First-layer weights.
    W2 : array_like, shape (k, m)
        Readout weights.
    X : array_like, shape (n, d)
        Inputs.
    X2 : array_like, shape (n2, d), optional
        Second inputs.
    keep_float32 : bool, default False
        Keep float32 arrays as float32 (others are converted to float64).
    finite : bool, default True
        Refuse NaN or infinite weights.

    Returns
    -------
    W1 : ndarray, shape (m, d)
    W2 : ndarray, shape (k, m)
    X : ndarray, shape (n, d)
    X2 : ndarray, shape (n2, d), or None
        ``None`` when not given.

    Raises
    ------
    TypeError
        An argument that is not a real numeric array.
    ValueError
        An argument that is not 2-D, non-finite inputs (or weights, with ``finite``), or
        mismatched shapes (``W1`` columns vs ``d``, ``W2`` columns vs ``m``, ``X2`` columns).
    """
    W1 = as_array(W1, "W1", ndim=2, keep_float32=keep_float32, finite=finite)
    W2 = as_array(W2, "W2", ndim=2, keep_float32=keep_float32, finite=finite)
    X = as_array(X, "X", ndim=2, keep_float32=keep_float32)
    if W1.shape[1] != X.shape[1]:
        raise ValueError(f"W1 must have {X.shape[1]} columns (the input dimension of X), "
                         f"got shape {W1.shape}")
    if W2.shape[1] != W1.shape[0]:
        raise ValueError(f"W2 must have {W1.shape[0]} columns (the width, rows of W1), "
                         f"got shape {W2.shape}")
    if X2 is not None:
        X2 = as_array(X2, "X2", ndim=2, keep_float32=keep_float32)
        if X2.shape[1] != X.shape[1]:
            raise ValueError(f"X2 must have {X.shape[1]} columns like X, got shape {X2.shape}")
    return W1, W2, X, X2


def default_block_size(n: int, n2: int) -> int:
    """Hidden units per block: about :data:`BLOCK_BYTES` per ``(max(n, n2), block)`` slab.

    Parameters
    ----------
    n, n2 : int
        The numbers of first and second inputs.

    Returns
    -------
    int
        ``max(1, BLOCK_BYTES // (8 max(n, n2)))`` (float64 entries).
    """
    return max(1, BLOCK_BYTES // (8 * max(n, n2)))


def _gram(A, B, symmetric):
    """``A @ B.T``; for ``A is B`` NumPy calls the symmetric rank-k update (syrk)."""
    return A @ A.T if symmetric else A @ B.T


def hidden_unit_sums(W1, W2, X, X2=None, *, c1: float, activation="relu", heads: str = "each",
                     block_size: int | None = None, readout: bool = False,
                     bias=None) -> HiddenUnitSums:
    """The sums over hidden units of the two-layer NTK, accumulated over blocks of units.

    With ``P = phi(H)``, ``D = phi'(H)``, ``H = c_1 X W1^T`` (and ``P'``, ``D'`` on ``X'``),
    each block of units ``B`` adds ``P_B P_B'^T`` to ``feature`` and
    ``(D_B diag(a_iB)) (D_B' diag(a_iB))^T`` to ``gated[i]``; with ``heads="sum"`` the gated
    sum over heads takes one product, ``D_B diag(||W2[:, B]||^2) D_B'^T``. The two-layer NTK
    is ``c_2^2 [feature + c_1^2 inputs * gated[i]]`` per head (module docstring).

    Parameters
    ----------
    W1 : array_like, shape (m, d)
        First-layer weights.
    W2 : array_like, shape (k, m)
        Readout weights.
    X : array_like, shape (n, d)
    X2 : array_like, shape (n2, d), optional
        Second inputs; ``None`` for ``X`` itself (symmetric products, syrk).
    c1 : float
        First-layer multiplier (``1/sqrt(d)`` in the NTK parameterization).
    activation : str or Activation
        Hidden non-linearity, looked up in ``ntkdyn.base.activations``.
    heads : {"each", "sum"}
        ``gated`` per head ``(k, n, n2)`` or summed over heads ``(n, n2)``.
    block_size : int, optional
        Hidden units per block (default :func:`default_block_size`).
    readout : bool
        Also accumulate ``phi(H) W2^T`` (and on ``X'``), the readout pre-activations over
        ``c_2``, in the same pass.
    bias : array_like, shape (m,), optional
        Offsets of the hidden pre-activations, ``H = c_1 X W1^T + bias`` (``beta_1 b_1`` for a
        network with biases); the sums keep their form, and the bias term of the NTK is
        ``c_2^2 beta_1^2 gated[i]`` (no input Gram).

    Returns
    -------
    HiddenUnitSums
        In the floating type of ``X``, ``W1`` and ``W2`` (float32 is kept). Weights are not
        checked for finiteness: non-finite weights give non-finite sums.
    """
    symmetric = X2 is None
    W1, W2, X, X2 = check_weights(W1, W2, X, X2, keep_float32=True, finite=False)
    X2 = X if symmetric else X2
    act = get_activation(activation)
    one_of(heads, "heads", _GATED_HEADS)
    if bias is not None:
        bias = as_array(bias, "bias", ndim=1, keep_float32=True, finite=False)
        if bias.shape != (W1.shape[0],):
            raise ValueError(f"bias must have shape ({W1.shape[0]},) (the width), "
                             f"got {bias.shape}")
    phi, dphi = act.phi, act.dphi
    per_head = heads == "each"
    k, m = W2.shape
    n, n2 = X.shape[0], X2.shape[0]
    dtype = np.result_type(X, W1, W2)
    block_size = (default_block_size(n, n2) if block_size is None
                  else positive_int(block_size, "block_size"))
    feature = np.zeros((n, n2), dtype=dtype)
    gated = np.zeros((k, n, n2) if per_head else (n, n2), dtype=dtype)
    h_out = np.zeros((n, k), dtype=dtype) if readout else None
    h_out2 = h_out if symmetric or not readout else np.zeros((n2, k), dtype=dtype)
    for start in range(0, m, block_size):
        sl = slice(start, min(start + block_size, m))
        H = X @ W1[sl].T
        H *= c1
        H2 = H if symmetric else c1 * (X2 @ W1[sl].T)
        if bias is not None:
            H += bias[sl]
            if not symmetric:
                H2 += bias[sl]
        P = phi(H)
        P2 = P if symmetric else phi(H2)
        feature += _gram(P, P2, symmetric)
        if readout:
            h_out += P @ W2[:, sl].T
            if not symmetric:
                h_out2 += P2 @ W2[:, sl].T
        D, D2 = dphi(H), (None if symmetric else dphi(H2))
        if per_head:
            for i in range(k):
                w = W2[i, sl]
                gated[i] += _gram(D * w, None if symmetric else D2 * w, symmetric)
        else:
            w = np.sqrt(np.einsum("ij,ij->j", W2[:, sl], W2[:, sl]))
            gated += _gram(D * w, None if symmetric else D2 * w, symmetric)
    return HiddenUnitSums(feature, gated, _gram(X, X2, symmetric), h_out, h_out2)


def two_layer_ntk_terms(W1, W2, X, X2=None, activation="relu", parameterization: str = "ntk",
                        block_size: int | None = None):
    """Feature term ``(n, n2)`` and per-head gated terms ``(k, n, n2)`` of the two-layer NTK.

    ``K_ii = feature + gated[i]`` with ``feature = c_2^2 phi(H) phi(H')^T`` shared by all heads
    and ``gated[i] = c_2^2 c_1^2 (X X'^T) * (phi'(H) diag(a_i^2) phi'(H')^T)`` (module
    docstring; Shan & Bordelon 2021, sec. 6).

    Parameters
    ----------
    W1 : array_like, shape (m, d)
    W2 : array_like, shape (k, m)
    X : array_like, shape (n, d)
    X2 : array_like, shape (n2, d), optional
        Defaults to ``X``.
    activation : str or Activation
        Hidden non-linearity, looked up in ``ntkdyn.base.activations``.
    parameterization : {"ntk", "standard"}
        ``"ntk"`` (default): ``c_1 = 1/sqrt(d)``, ``c_2 = 1/sqrt(m)``; ``"standard"``:
        ``c_1 = c_2 = 1`` (:func:`ntkdyn.theory.parameterization.layer_multipliers`).
    block_size : int, optional
        Hidden units per block of the sums (:func:`hidden_unit_sums`).

    Returns
    -------
    feature : ndarray, shape (n, n2)
        ``c_2^2 phi(H) phi(H')^T``, shared by all heads.
    gated : ndarray, shape (k, n, n2)
        ``c_2^2 c_1^2 (X X'^T) * (phi'(H) diag(a_i^2) phi'(H')^T)`` for each head ``i``.
    """
    W1, W2, X, X2 = check_weights(W1, W2, X, X2)
    m, d = W1.shape
    c1, c2 = layer_multipliers((d, m), parameterization)
    sums = hidden_unit_sums(W1, W2, X, X2, c1=c1, activation=activation, heads="each",
                            block_size=block_size)
    c2sq = c2 * c2
    input_gram = c1 * c1 * sums.inputs
    return c2sq * sums.feature, c2sq * (input_gram[None] * sums.gated)
