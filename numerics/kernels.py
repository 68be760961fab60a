"""Empirical neural tangent kernels and kernel-target metrics.

The NTK of an MLP with ``h_l = c_l W_l a_{l-1} + beta_l b_l`` factorises over layers
(docs/conventions.md; Jacot et al. 2018, sec. 4):

    Theta_ij(x, x') = sum_l [b_l^(i)(x) . b_l^(j)(x')] (c_l^2 [a_{l-1}(x) . a_{l-1}(x')]
                                                         + beta_l^2),

with ``b_l^(i) = d f_i / d h_l`` the back-propagated signal of head ``i`` and ``a_{l-1}``
the layer input: the weights ``W_l`` contribute ``c_l^2 Gram(b_l) * Gram(a_{l-1})`` and the
biases ``b_l`` (when the network has them) ``beta_l^2 Gram(b_l)``. Every term is an
elementwise product of Gram matrices computed with BLAS products; no per-example Jacobian is
ever formed. For two-layer networks the sums over hidden units are those of
:func:`ntkdyn.theory.two_layer_ntk.hidden_unit_sums`, accumulated in blocks, so memory does
not grow with width.

The kernel-target metrics (alignment, specialization, relative change, eigenvector overlap)
are closed forms on Gram matrices shared with the theory layer; they live in
:mod:`ntkdyn.base.alignment` and are re-exported here.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt

from ..base.alignment import (alignment, eigenvector_target_overlap, relative_change,  # noqa: F401
                              specialization, specialization_index)
from ..base.validation import one_of, positive_int
from ..theory.two_layer_ntk import hidden_unit_sums
from .memory import empirical_ntk_bytes, require_memory_if_large
from .networks import MLP

HEADS = ("sum", "each", "full")


def layer_names(net: MLP) -> list[str]:
    """Keys of the per-layer NTK, layer by layer.

    Parameters
    ----------
    net : MLP
        The network (an :class:`~ntkdyn.numerics.networks.MLP` or ``Network``).

    Returns
    -------
    list of str
        ``["W_1", "b_1", ..., "W_L", "b_L"]``, the ``b_l`` only when ``net.has_bias``.
    """
    names = []
    for l in range(1, net.depth + 1):
        names += [f"W_{l}", f"b_{l}"] if net.has_bias else [f"W_{l}"]
    return names


def empirical_ntk(net: MLP, params: Sequence[np.ndarray], X: npt.ArrayLike,
                  X2: npt.ArrayLike | None = None, heads: str = "sum", per_layer: bool = False,
                  block_size: int | None = None):
    """Empirical NTK Gram matrix of ``net`` at ``params`` on ``X`` (and ``X2``).

    ``Theta_ij(x, x') = sum_p d f_i(x)/d theta_p  d f_j(x')/d theta_p``, computed layer by layer
    (module docstring): the weights of layer ``l`` give ``c_l^2 Gram(b_l) * Gram(a_{l-1})``, its
    bias ``beta_l^2 Gram(b_l)``.

    Parameters
    ----------
    net : MLP
        The network (an :class:`~ntkdyn.numerics.networks.MLP` or ``Network``).
    params : list of ndarray
        ``[W_1, ..., W_L]`` followed by ``[b_1, ..., b_L]`` when ``net.has_bias``.
    X : array_like, shape (n, d)
        Inputs.
    X2 : array_like, shape (n2, d), optional
        Second inputs; ``None`` for ``X`` itself (symmetric products).
    heads : {"sum", "each", "full"}
        ``"sum"``: ``sum_i Theta_ii``, shape ``(n, n2)``; ``"each"``: per-head kernels
        ``Theta_ii``, shape ``(k, n, n2)``; ``"full"``: ``Theta_ij``, shape ``(k, k, n, n2)``.
    per_layer : bool
        Return the contribution of every parameter array instead of their sum.
    block_size : int, optional
        Hidden units per block for two-layer networks (default: about 32 MiB per slab).

    Returns
    -------
    ndarray or dict
        The kernel in the shape of ``heads``; with ``per_layer=True`` a dict
        ``{"W_1": K, "b_1": K, ..., "W_L": K, "b_L": K}`` (bias keys only when the network has
        biases, see :func:`layer_names`) whose values, each in the shape of ``heads``, sum to
        the kernel.
    """
    if not isinstance(net, MLP):
        from .serial import SerialNetwork
        if isinstance(net, SerialNetwork):  # convolutional/residual: ntkdyn.numerics.serial_ntk
            from .serial_ntk import serial_ntk
            return serial_ntk(net, params, X, X2, heads=heads, per_layer=per_layer)
        raise TypeError(f"net must be an MLP or Network, got {type(net).__name__}")
    one_of(heads, "heads", HEADS)
    if not isinstance(per_layer, (bool, np.bool_)):
        raise TypeError(f"per_layer must be a bool, got {per_layer!r}")
    per_layer = bool(per_layer)
    params = net.check_params(params)
    X = net.check_inputs(X)
    symmetric = X2 is None
    X2 = X if symmetric else net.check_inputs(X2, "X2")
    if block_size is not None:
        block_size = positive_int(block_size, "block_size")
    require_memory_if_large(
        empirical_ntk_bytes(net.widths, X.shape[0], X2.shape[0], heads, per_layer=per_layer),
        "the empirical NTK", hint="use fewer inputs (X, X2), fewer heads or a smaller width")
    if net.depth == 2 and heads != "full":
        return _two_layer_ntk(net, params, X, X2, symmetric, heads, per_layer, block_size)
    return _layerwise_ntk(net, params, X, X2, symmetric, heads, per_layer)


def _gram(A, B, symmetric):
    """``A @ B.T``; for ``A is B`` NumPy calls the symmetric rank-k update (syrk)."""
    return A @ A.T if symmetric else A @ B.T


def _two_layer_ntk(net, params, X, X2, symmetric, heads, per_layer, block_size):
    """Two-layer NTK from the blocked hidden-unit sums of :mod:`ntkdyn.theory.two_layer_ntk`.

    ``Theta_ii = [psi'_i psi'_i^T] * ( c_2^2 [Phi Phi'^T + (c_1^2 X X'^T + beta_1^2) *
    (D_i D_i'^T)] + beta_2^2 )``, ``Phi = phi(H)``, ``D_i = phi'(H) diag(W_2[i])``,
    ``H = c_1 X W_1^T + beta_1 b_1`` (``beta_l = 0`` without biases). With a linear output the
    head sum needs one product: ``sum_i D_i D_i'^T = D diag(||W_2[:, j]||^2) D'^T``.
    """
    W1, W2 = net.weights(params)
    biases = net.biases(params)
    c1, c2 = net.multipliers
    k = W2.shape[0]
    psi = net.output_activation
    per_head = heads == "each" or psi is not None
    offset = None if biases is None else net.bias_multipliers[0] * biases[0]
    # with an output non-linearity, h_L = c_2 Phi W_2^T is accumulated in the same pass
    sums = hidden_unit_sums(W1, W2, X, None if symmetric else X2, c1=c1, activation=net.activation,
                            heads="each" if per_head else "sum", block_size=block_size,
                            readout=psi is not None, bias=offset)
    input_gram = c1 * c1 * sums.inputs
    c2sq = c2 * c2
    if biases is not None:
        beta1sq, beta2sq = net.bias_multipliers[0] ** 2, net.bias_multipliers[1] ** 2
    if per_layer:
        terms = {"W_1": c2sq * (input_gram * sums.gated) if not per_head
                 else c2sq * (input_gram[None] * sums.gated),
                 "W_2": c2sq * k * sums.feature if not per_head
                 else np.repeat(c2sq * sums.feature[None], k, axis=0)}
        if biases is not None:
            terms["b_1"] = c2sq * beta1sq * sums.gated
            terms["b_2"] = np.full(sums.gated.shape, k * beta2sq if not per_head else beta2sq,
                                   dtype=sums.gated.dtype)
        terms = {name: terms[name] for name in layer_names(net)}
        if psi is not None:
            slope = _output_slopes(net, psi, sums, biases, symmetric)
            for name in terms:
                terms[name] *= slope
        if per_head and heads == "sum":
            terms = {name: K.sum(axis=0) for name, K in terms.items()}
        return terms
    gate_gram = input_gram
    if biases is not None:
        gate_gram += beta1sq  # in place: input_gram is not used again
    if not per_head:
        K = c2sq * (k * sums.feature + gate_gram * sums.gated)
        if biases is not None:
            K += k * beta2sq
        return K
    K = c2sq * (sums.feature[None] + gate_gram[None] * sums.gated)
    if biases is not None:
        K += beta2sq
    if psi is not None:
        K *= _output_slopes(net, psi, sums, biases, symmetric)
    return K if heads == "each" else K.sum(axis=0)


def _output_slopes(net, psi, sums, biases, symmetric):
    """``psi'(h_L,i(x)) psi'(h_L,i(x'))``, shape ``(k, n, n2)``, from the accumulated readout."""
    c2 = net.multipliers[1]
    h, h2 = c2 * sums.readout, (None if symmetric else c2 * sums.readout2)
    if biases is not None:
        offset = net.bias_multipliers[1] * biases[1]
        h = h + offset
        h2 = None if symmetric else h2 + offset
    s = psi.dphi(h)
    s2 = s if symmetric else psi.dphi(h2)
    return s.T[:, :, None] * s2.T[:, None, :]


def backprop_signals(net: MLP, params, forward) -> list[np.ndarray]:
    """Signals ``b_l^(i) = d f_i / d h_l`` for every layer, each of shape ``(k, n, n_l)``.

    ``b_L^(i) = psi'(h_L,i) e_i`` and ``b_{l-1} = c_l (b_l W_l) * phi'(h_{l-1})`` (biases do
    not enter the recursion; they shift the pre-activations ``h_l`` of ``forward``).

    Parameters
    ----------
    net : MLP
        The network.
    params : list of ndarray
        Its parameters (the weights ``W_l`` are read).
    forward : Forward
        ``net.forward(params, X)`` on the inputs ``X`` of shape ``(n, d)``.

    Returns
    -------
    list of ndarray
        ``[b_1, ..., b_L]``, ``b_l`` of shape ``(k, n, n_l)``.
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


def _layerwise_ntk(net, params, X, X2, symmetric, heads, per_layer):
    """Any depth: ``sum_l Gram(b_l) * (c_l^2 Gram(a_{l-1}) + beta_l^2)`` with BLAS products."""
    fwd = net.forward(params, X)
    fwd2 = fwd if symmetric else net.forward(params, X2)
    sig = backprop_signals(net, params, fwd)
    sig2 = sig if symmetric else backprop_signals(net, params, fwd2)
    k, n, n2 = net.output_dim, X.shape[0], X2.shape[0]
    shape = {"sum": (n, n2), "each": (k, n, n2), "full": (k, k, n, n2)}[heads]
    dtype = fwd.output.dtype
    if per_layer:
        out = {name: np.zeros(shape, dtype=dtype) for name in layer_names(net)}
    else:
        K = np.zeros(shape, dtype=dtype)
    for l in range(net.depth):
        a_gram = net.multipliers[l] ** 2 * _gram(fwd.activations[l], fwd2.activations[l], symmetric)
        beta_sq = net.bias_multipliers[l] ** 2
        if per_layer:
            # (kernel, factor) pairs: Gram(b_l) * factor is added to the kernel
            targets = [(out[f"W_{l + 1}"], a_gram)]
            if net.has_bias:
                targets.append((out[f"b_{l + 1}"], beta_sq))
        else:
            if net.has_bias:
                a_gram += beta_sq  # in place: the weight and bias terms share one product
            targets = [(K, a_gram)]
        _add_signal_gram(targets, sig[l], sig2[l], symmetric, heads, l == net.depth - 1)
    return out if per_layer else K


def _add_signal_gram(targets, b, b2, symmetric, heads, last):
    """Add ``Gram(b) * factor`` (in the shape of ``heads``) to every ``(kernel, factor)``."""
    k = b.shape[0]
    if last:
        # b_L^(i) = psi'_i e_i: the signal Gram is diagonal in the heads.
        idx = np.arange(k)
        s, s2 = b[idx, :, idx], b2[idx, :, idx]
        G = s[:, :, None] * s2[:, None, :]
        for K, factor in targets:
            diag = G * factor
            if heads == "sum":
                K += diag.sum(axis=0)
            elif heads == "each":
                K += diag
            else:
                K[idx, idx] += diag
    elif heads == "sum":
        n, n2 = b.shape[1], b2.shape[1]
        flat = b.transpose(1, 0, 2).reshape(n, -1)
        flat2 = flat if symmetric else b2.transpose(1, 0, 2).reshape(n2, -1)
        G = _gram(flat, flat2, symmetric)
        for K, factor in targets:
            K += G * factor
    elif heads == "each":
        for i in range(k):
            G = _gram(b[i], b2[i], symmetric)
            for K, factor in targets:
                K[i] += G * factor
    else:
        G = np.einsum("ina,jma->ijnm", b, b2, optimize=True)
        for K, factor in targets:
            K += G * factor
