"""Empirical NTK of serial (convolutional, residual) networks without per-example Jacobians.

For a layer with weights shared over output positions, ``h_p(x) = c W^T P_p(x) + beta b``
(:mod:`ntkdyn.numerics.serial`; ``P_p(x)`` the patch of output position ``p``, ``A = K C_in``
entries), the back-propagated signal of head ``i`` is ``B_ip(x) = d f_i(x) / d h_p(x)`` (``C``
output channels) and::

    d f_i(x) / d W = c sum_p P_p(x) B_ip(x)^T =: c G_i(x)          (A x C),
    d f_i(x) / d b = beta sum_p B_ip(x),

so the layer's terms of the NTK ``Theta_ij(x, x') = sum_theta d f_i(x)/d theta d f_j(x')/d theta``
are (the layer-wise factorisation of Jacot et al. 2018, sec. 4, extended to shared weights)::

    Theta^W_ij(x, x') = c^2 sum_{p,q} [P_p(x) . P_q(x')] [B_ip(x) . B_jq(x')]
                      = c^2 <G_i(x), G_j(x')>_F,
    Theta^b_ij(x, x') = beta^2 [sum_p B_ip(x)] . [sum_q B_jq(x')].

The two lines of ``Theta^W`` are the two orders of one contraction, and both are implemented:

* ``method="positions"``: for blocks of example pairs, the patch Gram ``[P_p(x) . P_q(x')]``
  (a GEMM of inner size ``A``) times the signal Gram (inner size ``C``, or ``k C`` summed over
  heads), summed over ``(p, q)``: ``n n2 P^2 (A + k C)`` flops, memory ``b^2 P^2`` per block
  pair whatever the channel counts;
* ``method="gradients"``: the factor ``G_i(x)`` of every example, in blocks of its entries
  (kernel offsets x output channels) so that a block holds a bounded number of numbers, and its
  Gram: ``(n + n2) k P A C + n n2 k A C`` flops. This is the per-layer weight gradient of one
  example: it never forms the per-example Jacobian of the network, and its blocks are bounded
  (memory does not grow with the channel counts beyond the stored forward pass and signals).

``method="auto"`` (the default) takes, layer by layer, the one with fewer flops: the positions
order wins for few positions and many channels (and is the MLP factorisation for a flat
``Dense`` layer, ``P = 1``), the gradient order for many positions and few channels (the
benchmark's 8x8 CNN with 16 channels: ``benchmarks/bench_serial.py``).

Heads: ``"sum"`` (``sum_i Theta_ii``, shape ``(n, n2)``), ``"each"`` (``(k, n, n2)``) and
``"full"`` (``(k, k, n, n2)``). ``per_layer=True`` returns ``{"W_1": K, "b_1": K, ...}``, one
term per parameter array, keyed by the parameterised layers' numbers (pre-order, a residual
projection after its branch: :attr:`SerialNetwork.param_names`), ordered layer by layer
(``W_l`` then ``b_l``); the values sum to the kernel.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ..base.validation import one_of, positive_int
from .serial import SerialNetwork

__all__ = ["METHODS", "layer_names", "serial_ntk"]

HEADS = ("sum", "each", "full")
METHODS = ("auto", "positions", "gradients")
_BLOCK_BYTES = 2**25  # default size of one working block of the Gram stage (32 MiB)


def layer_names(net: SerialNetwork) -> list[str]:
    """Keys of the per-layer NTK, layer by layer: ``["W_1", "b_1", "W_2", ...]``.

    Parameters
    ----------
    net : SerialNetwork

    Returns
    -------
    list of str
        ``b_l`` only for the layers with a bias.
    """
    names = []
    for node in net.parameterised:
        names.append(f"W_{node.number}")
        if node.bias is not None:
            names.append(f"b_{node.number}")
    return names


def serial_ntk(net: SerialNetwork, params, X, X2=None, heads: str = "sum",
               per_layer: bool = False, method: str = "auto", block_bytes: int | None = None):
    """Empirical NTK of a :class:`~ntkdyn.numerics.serial.SerialNetwork` (module docstring).

    Parameters
    ----------
    net : SerialNetwork
    params : list of ndarray
        In the order of ``net.param_names``.
    X : array_like, shape (n,) + net.input_shape
    X2 : array_like, shape (n2,) + net.input_shape, optional
        Second inputs; ``None`` for ``X`` itself.
    heads : {"sum", "each", "full"}
        ``"sum"``: ``sum_i Theta_ii`` ``(n, n2)``; ``"each"``: ``(k, n, n2)``; ``"full"``:
        ``(k, k, n, n2)``.
    per_layer : bool
        Return the term of every parameter array instead of their sum.
    method : {"auto", "positions", "gradients"}
        Order of the weight terms' contraction (module docstring); ``"auto"`` picks the
        cheaper per layer.
    block_bytes : int, optional
        Bytes of one working block of the Gram stage (default 32 MiB); the signals of the
        heads are computed for as many heads at once as fit in two blocks (at least one; all
        heads for ``heads="full"``).

    Returns
    -------
    ndarray or dict
        The kernel in the shape of ``heads``, or ``{"W_1": K, "b_1": K, ...}``
        (:func:`layer_names`).
    """
    if not isinstance(net, SerialNetwork):
        raise TypeError(f"net must be a SerialNetwork, got {type(net).__name__}")
    one_of(heads, "heads", HEADS)
    one_of(method, "method", METHODS)
    if not isinstance(per_layer, (bool, np.bool_)):
        raise TypeError(f"per_layer must be a bool, got {per_layer!r}")
    block_bytes = _BLOCK_BYTES if block_bytes is None else positive_int(block_bytes,
                                                                        "block_bytes")
    params = net.check_params(params)
    X = net.check_inputs(X)
    symmetric = X2 is None
    X2 = X if symmetric else net.check_inputs(X2, "X2")
    fwd = net.forward(params, X)
    fwd2 = fwd if symmetric else net.forward(params, X2)
    k, n, n2 = net.output_dim, X.shape[0], X2.shape[0]
    dtype = fwd.output.dtype
    shape = {"sum": (n, n2), "each": (k, n, n2), "full": (k, k, n, n2)}[heads]
    names = layer_names(net)
    terms = {name: np.zeros(shape, dtype=dtype) for name in names} if per_layer else None
    total = None if per_layer else np.zeros(shape, dtype=dtype)
    itemsize = np.dtype(dtype).itemsize
    per_head = itemsize * (n + (0 if symmetric else n2)) * sum(
        math.prod(node.out_shape) for node in net.parameterised)
    hb = k if heads == "full" else max(1, min(k, (2 * block_bytes) // max(per_head, 1)))
    for h0 in range(0, k, hb):
        h1 = min(k, h0 + hb)
        sig = _head_signals(net, params, fwd, h0, h1)
        sig2 = sig if symmetric else _head_signals(net, params, fwd2, h0, h1)
        for node in net.parameterised:
            c, _, beta, _ = node.scales
            a, a2 = fwd.inputs[node.index], fwd2.inputs[node.index]
            B, B2 = sig[node.index], sig2[node.index]
            target = total if total is not None else terms[f"W_{node.number}"]
            view = _head_view(target, heads, h0, h1)
            chosen = _choose(method, node, n, n2, h1 - h0, heads)
            if chosen == "positions":
                _positions_term(node, a, a2, B, B2, view, heads, c * c, symmetric, block_bytes)
            else:
                _gradient_term(node, a, a2, B, B2, view, heads, c * c, symmetric, block_bytes)
            if node.bias is not None:
                target = total if total is not None else terms[f"b_{node.number}"]
                sums = B.sum(axis=tuple(range(2, B.ndim - 1)))
                sums2 = sums if symmetric else B2.sum(axis=tuple(range(2, B2.ndim - 1)))
                _add_feature_gram(_head_view(target, heads, h0, h1), sums, sums2, heads,
                                  beta * beta, symmetric)
    return terms if per_layer else total


def _head_signals(net, params, fwd, h0, h1):
    """Signals of heads ``h0 .. h1 - 1`` at every parameterised node, ``(m, n, *out_shape)``."""
    n, k = fwd.output.shape
    E = np.zeros((h1 - h0, n, k), dtype=fwd.output.dtype)
    for j, i in enumerate(range(h0, h1)):
        E[j, :, i] = 1.0
    return net.signals(params, fwd, E)


def _head_view(K, heads, h0, h1):
    """The part of the kernel ``K`` that heads ``h0 .. h1 - 1`` add to (a view)."""
    if heads == "sum":
        return K
    if heads == "each":
        return K[h0:h1]
    return K  # "full": a single block of all heads


def _choose(method, node, n, n2, m, heads):
    if method != "auto":
        return method
    P, A, C = node.positions, node.fan_in, node.out_shape[-1]
    pairs = m * m if heads == "full" else m
    positions = n * n2 * P * P * (A + pairs * C)
    gradients = (n + n2) * m * P * A * C + n * n2 * pairs * A * C
    return "positions" if positions <= gradients else "gradients"


def _add_feature_gram(K, F, F2, heads, scale, symmetric):
    """``K += scale * Gram`` of per-head features ``F`` ``(m, n, D)``, ``F2`` ``(m, n2, D)``."""
    m, n, D = F.shape
    n2 = F2.shape[1]
    if heads == "sum":
        flat = F.transpose(1, 0, 2).reshape(n, m * D)
        if symmetric:
            G = flat @ flat.T
        else:
            G = flat @ F2.transpose(1, 0, 2).reshape(n2, m * D).T
        K += scale * G
    elif heads == "each":
        for i in range(m):
            G = F[i] @ F[i].T if symmetric else F[i] @ F2[i].T
            K[i] += scale * G
    else:
        flat = F.reshape(m * n, D)
        G = flat @ flat.T if symmetric else flat @ F2.reshape(m * n2, D).T
        K += scale * G.reshape(m, n, m, n2).transpose(0, 2, 1, 3)


# --------------------------------------------------------------------------- patch blocks
def _offsets(node):
    return list(itertools.product(*(range(k) for k in node.window))) if node.window else [()]


def _padded(node, a):
    if node.kind == "Conv" and any(lo or hi for lo, hi in node.pad):
        return np.pad(a, ((0, 0),) + tuple(node.pad) + ((0, 0),))
    return a


def _patch_columns(node, padded, group):
    """Columns of the patches for the kernel offsets in ``group``: ``(n, P, len(group) C_in)``."""
    n, c_in = padded.shape[0], node.in_shape[-1]
    if node.kind != "Conv":
        return padded.reshape(n, node.positions, c_in)
    out_spatial = node.out_shape[:-1]
    parts = [padded[(slice(None),) + tuple(slice(o, o + e) for o, e in zip(offset, out_spatial))]
             for offset in group]
    stacked = np.stack(parts, axis=-2) if len(parts) > 1 else parts[0][..., None, :]
    return stacked.reshape(n, node.positions, len(group) * c_in)


def _offset_groups(node, rows, budget, itemsize):
    """Kernel offsets in groups whose patch columns for ``rows`` examples fit ``budget``."""
    offsets = _offsets(node)
    per_offset = rows * node.positions * node.in_shape[-1] * itemsize
    size = max(1, min(len(offsets), budget // max(per_offset, 1)))
    return [offsets[i:i + size] for i in range(0, len(offsets), size)]


# --------------------------------------------------------------------------- weight terms
def _gradient_term(node, a, a2, B, B2, K, heads, scale, symmetric, budget):
    """``K += scale <G_i(x), G_j(x')>`` with ``G_i(x) = sum_p P_p(x) B_ip(x)^T``, in blocks."""
    m, n = B.shape[:2]
    n2 = B2.shape[1]
    P, C, c_in = node.positions, node.out_shape[-1], node.in_shape[-1]
    itemsize = B.itemsize
    rows = n + (0 if symmetric else n2)
    # blocks: offsets x output channels, so that G of all examples and heads fits the budget
    groups = _offset_groups(node, rows, budget // 2, itemsize)
    width = len(groups[0]) * c_in
    cb = max(1, min(C, (budget // 2) // max(rows * m * width * itemsize, 1)))
    Bf = B.reshape(m, n, P, C).transpose(1, 2, 0, 3)  # (n, P, m, C)
    Bf2 = Bf if symmetric else B2.reshape(m, n2, P, C).transpose(1, 2, 0, 3)
    pa, pa2 = _padded(node, a), (None if symmetric else _padded(node, a2))
    for group in groups:
        cols = _transposed(_patch_columns(node, pa, group))  # (n, A_b, P)
        cols2 = cols if symmetric else _transposed(_patch_columns(node, pa2, group))
        for c0 in range(0, C, cb):
            c1 = min(C, c0 + cb)
            Bb = np.ascontiguousarray(Bf[:, :, :, c0:c1]).reshape(n, P, m * (c1 - c0))
            G = np.matmul(cols, Bb)  # (n, A_b, m (c1 - c0))
            if symmetric:
                G2 = G
            else:
                Bb2 = np.ascontiguousarray(Bf2[:, :, :, c0:c1]).reshape(n2, P, m * (c1 - c0))
                G2 = np.matmul(cols2, Bb2)
            if heads == "sum":
                flat = G.reshape(n, -1)
                K += scale * (flat @ flat.T if symmetric else flat @ G2.reshape(n2, -1).T)
            else:
                F = _per_head(G, m)
                F2 = F if symmetric else _per_head(G2, m)
                _add_feature_gram(K, F, F2, heads, scale, symmetric)


def _transposed(cols):
    """``(n, P, A) -> (n, A, P)``, contiguous (a strided batch falls off BLAS in matmul)."""
    return np.ascontiguousarray(cols.transpose(0, 2, 1))


def _per_head(G, m):
    """``(n, A, m c)`` -> ``(m, n, A c)``."""
    n, A, mc = G.shape
    return G.reshape(n, A, m, mc // m).transpose(2, 0, 1, 3).reshape(m, n, -1)


def _positions_term(node, a, a2, B, B2, K, heads, scale, symmetric, budget):
    """``K += scale sum_{p,q} [P_p(x) . P_q(x')] [B_ip(x) . B_jq(x')]`` in example blocks."""
    m, n = B.shape[:2]
    n2 = B2.shape[1]
    P, C = node.positions, node.out_shape[-1]
    itemsize = B.itemsize
    # two (b P) x (b2 P) arrays (patch Gram and signal Gram) per block pair
    b = max(1, int(math.sqrt(max(budget // (2 * P * P * itemsize), 1))))
    Bp = B.reshape(m, n, P, C)
    Bp2 = Bp if symmetric else B2.reshape(m, n2, P, C)
    pa = _padded(node, a)
    pa2 = pa if symmetric else _padded(node, a2)
    for r0 in range(0, n, b):
        r1 = min(n, r0 + b)
        rows = _patches_of(node, pa[r0:r1], budget)
        for s0 in range(0, n2, b):
            s1 = min(n2, s0 + b)
            cols = rows if (symmetric and s0 == r0) else _patches_of(node, pa2[s0:s1], budget)
            PG = rows.reshape(-1, rows.shape[-1]) @ cols.reshape(-1, cols.shape[-1]).T
            PG = PG.reshape(r1 - r0, P, s1 - s0, P)
            _add_position_block(K, PG, Bp[:, r0:r1], Bp2[:, s0:s1], heads, scale,
                                (slice(r0, r1), slice(s0, s1)))


def _patches_of(node, padded, budget):
    groups = _offset_groups(node, padded.shape[0], budget, padded.itemsize)
    return np.concatenate([_patch_columns(node, padded, g) for g in groups], axis=-1) \
        if len(groups) > 1 else _patch_columns(node, padded, groups[0])


def _add_position_block(K, PG, Bi, Bj, heads, scale, block):
    """Add ``scale sum_{p,q} PG * SG`` for one block of example pairs (all head modes)."""
    m, bi, P, C = Bi.shape
    bj = Bj.shape[1]
    rows, cols = block
    if heads == "sum":
        left = Bi.transpose(1, 2, 0, 3).reshape(bi * P, m * C)
        right = Bj.transpose(1, 2, 0, 3).reshape(bj * P, m * C)
        SG = (left @ right.T).reshape(bi, P, bj, P)
        K[rows, cols] += scale * np.einsum("xpyq,xpyq->xy", PG, SG)
        return
    for i in range(m):
        left = Bi[i].reshape(bi * P, C)
        for j in (range(m) if heads == "full" else (i,)):
            SG = (left @ Bj[j].reshape(bj * P, C).T).reshape(bi, P, bj, P)
            value = scale * np.einsum("xpyq,xpyq->xy", PG, SG)
            if heads == "each":
                K[i, rows, cols] += value
            else:
                K[i, j, rows, cols] += value
