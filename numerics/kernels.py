"""Empirical neural tangent kernels and kernel-target metrics.

The NTK of an MLP factorises over layers (docs/conventions.md):

    Theta_ij(x, x') = sum_l c_l^2 [b_l^(i)(x) . b_l^(j)(x')] [a_{l-1}(x) . a_{l-1}(x')],

with ``b_l^(i) = d f_i / d h_l`` the back-propagated signal of head ``i`` and ``a_{l-1}``
the layer input, so every term is an elementwise product of two Gram matrices computed
with BLAS products. No per-example Jacobian is ever formed. For two-layer networks the
sums over hidden units are those of :func:`ntkdyn.theory.two_layer_ntk.hidden_unit_sums`,
accumulated in blocks, so memory does not grow with width.

The kernel-target metrics (alignment, specialization, relative change, eigenvector overlap)
are closed forms on Gram matrices shared with the theory layer; they live in
:mod:`ntkdyn.base.alignment` and are re-exported here.
"""
from __future__ import annotations

import numpy as np

from ..base.alignment import (alignment, eigenvector_target_overlap, relative_change,  # noqa: F401
                              specialization, specialization_index)
from ..base.validation import one_of, positive_int
from ..theory.two_layer_ntk import hidden_unit_sums
from .networks import MLP

HEADS = ("sum", "each", "full")


def empirical_ntk(net: MLP, params, X, X2=None, heads: str = "sum", block_size: int | None = None):
    """Empirical NTK Gram matrix of ``net`` at ``params`` on ``X`` (and ``X2``).

    Parameters
    ----------
    heads : {"sum", "each", "full"}
        ``"sum"``: ``sum_i Theta_ii``, shape ``(n, n2)``; ``"each"``: per-head kernels
        ``Theta_ii``, shape ``(k, n, n2)``; ``"full"``: ``Theta_ij``, shape ``(k, k, n, n2)``.
    block_size : int, optional
        Hidden units per block for two-layer networks (default: about 32 MiB per slab).
    """
    one_of(heads, "heads", HEADS)
    params = net.check_params(params)
    X = net.check_inputs(X)
    symmetric = X2 is None
    X2 = X if symmetric else net.check_inputs(X2, "X2")
    if block_size is not None:
        block_size = positive_int(block_size, "block_size")
    if net.depth == 2 and heads != "full":
        return _two_layer_ntk(net, params, X, X2, symmetric, heads, block_size)
    return _layerwise_ntk(net, params, X, X2, symmetric, heads)


def _gram(A, B, symmetric):
    """``A @ B.T``; for ``A is B`` NumPy calls the symmetric rank-k update (syrk)."""
    return A @ A.T if symmetric else A @ B.T


def _two_layer_ntk(net, params, X, X2, symmetric, heads, block_size):
    """Two-layer NTK from the blocked hidden-unit sums of :mod:`ntkdyn.theory.two_layer_ntk`.

    ``Theta_ii = c_2^2 [psi'_i psi'_i^T] * ( Phi Phi'^T + c_1^2 (X X'^T) * (D_i D_i'^T) )``,
    ``Phi = phi(H)``, ``D_i = phi'(H) diag(W_2[i])``, ``H = c_1 X W_1^T``.
    With a linear output the head sum needs one product:
    ``sum_i D_i D_i'^T = D diag(||W_2[:, j]||^2) D'^T``.
    """
    W1, W2 = params
    c1, c2 = net.multipliers
    k = W2.shape[0]
    psi = net.output_activation
    per_head = heads == "each" or psi is not None
    # with an output non-linearity, h_L = c_2 Phi W_2^T is accumulated in the same pass
    sums = hidden_unit_sums(W1, W2, X, None if symmetric else X2, c1=c1, activation=net.activation,
                            heads="each" if per_head else "sum", block_size=block_size,
                            readout=psi is not None)
    input_gram = c1 * c1 * sums.inputs
    c2sq = c2 * c2
    if not per_head:
        return c2sq * (k * sums.feature + input_gram * sums.gated)
    K = c2sq * (sums.feature[None] + input_gram[None] * sums.gated)
    if psi is not None:
        s = psi.dphi(c2 * sums.readout)
        s2 = s if symmetric else psi.dphi(c2 * sums.readout2)
        K *= s.T[:, :, None] * s2.T[:, None, :]
    return K if heads == "each" else K.sum(axis=0)


def backprop_signals(net: MLP, params, forward) -> list[np.ndarray]:
    """Signals ``b_l^(i) = d f_i / d h_l`` for every layer, each of shape ``(k, n, n_l)``.

    ``b_L^(i) = psi'(h_L,i) e_i`` and ``b_{l-1} = c_l (b_l W_l) * phi'(h_{l-1})``.
    """
    L, k = net.depth, net.output_dim
    h_out = forward.preactivations[-1]
    psi = net.output_activation
    slope = np.ones_like(h_out) if psi is None else psi.dphi(h_out)
    b = np.zeros((k,) + h_out.shape, dtype=h_out.dtype)
    idx = np.arange(k)
    b[idx, :, idx] = slope.T
    signals = [None] * L
    signals[L - 1] = b
    for l in range(L - 1, 0, -1):
        gate = net.activation.dphi(forward.preactivations[l - 1])
        b = (net.multipliers[l] * (b @ params[l])) * gate
        signals[l - 1] = b
    return signals


def _layerwise_ntk(net, params, X, X2, symmetric, heads):
    """Any depth: ``sum_l c_l^2 Gram(b_l) * Gram(a_{l-1})`` with BLAS products."""
    fwd = net.forward(params, X)
    fwd2 = fwd if symmetric else net.forward(params, X2)
    sig = backprop_signals(net, params, fwd)
    sig2 = sig if symmetric else backprop_signals(net, params, fwd2)
    k, n, n2 = net.output_dim, X.shape[0], X2.shape[0]
    last = net.depth - 1
    shape = {"sum": (n, n2), "each": (k, n, n2), "full": (k, k, n, n2)}[heads]
    K = np.zeros(shape, dtype=fwd.output.dtype)
    for l in range(net.depth):
        a_gram = net.multipliers[l] ** 2 * _gram(fwd.activations[l], fwd2.activations[l], symmetric)
        b, b2 = sig[l], sig2[l]
        if l == last:
            # b_L^(i) = psi'_i e_i: the signal Gram is diagonal in the heads.
            s, s2 = b[np.arange(k), :, np.arange(k)], b2[np.arange(k), :, np.arange(k)]
            diag = s[:, :, None] * s2[:, None, :] * a_gram
            if heads == "sum":
                K += diag.sum(axis=0)
            elif heads == "each":
                K += diag
            else:
                K[np.arange(k), np.arange(k)] += diag
        elif heads == "sum":
            flat = b.transpose(1, 0, 2).reshape(n, -1)
            flat2 = flat if symmetric else b2.transpose(1, 0, 2).reshape(n2, -1)
            K += _gram(flat, flat2, symmetric) * a_gram
        elif heads == "each":
            for i in range(k):
                K[i] += _gram(b[i], b2[i], symmetric) * a_gram
        else:
            K += np.einsum("ina,jma->ijnm", b, b2, optimize=True) * a_gram
    return K
