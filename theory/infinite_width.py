"""Infinite-width NNGP and NTK of any fully-connected network description, any activation.

A network description (duck-typed: ``ntkdyn.numerics.networks.MLP`` or ``Network``, or any
object with the same attributes; the theory layer never imports the numerics) gives, per layer
``l = 1..L``, ``(c_l, s_l, beta_l, t_l) = net.layer_scales()[l - 1]`` with

    h_l = c_l W_l a_{l-1} + beta_l b_l,   W_l ~ N(0, s_l^2),   b_l ~ N(0, t_l^2),
    a_l = phi(h_l),   a_0 = x,   f = psi(h_L)

(docs/conventions.md; ``psi`` the identity unless ``net.output_activation`` is set). As the
hidden widths ``n_1, ..., n_{L-1}`` grow (Neal 1996; Lee et al. 2018; Jacot et al. 2018; Arora
et al. 2019), every head's pre-activation is a Gaussian process with covariance ``Sigma_L`` and
its tangent kernel converges to ``Theta_L``:

    Sigma_1 = c_1^2 s_1^2 x.x' + beta_1^2 t_1^2,
    Theta_1 = c_1^2 x.x' + beta_1^2 [bias],
    Sigma_l = c_l^2 s_l^2 n_{l-1} E[phi(u) phi(v)] + beta_l^2 t_l^2,
    Theta_l = c_l^2 n_{l-1} E[phi(u) phi(v)] + beta_l^2 [bias]
              + c_l^2 s_l^2 n_{l-1} E[phi'(u) phi'(v)] Theta_{l-1},

with ``(u, v) ~ N(0, [[Sigma_{l-1}(x, x), Sigma_{l-1}(x, x')], [., Sigma_{l-1}(x', x')]])`` and
``[bias] = 1`` when ``net.has_bias``. The first terms of ``Theta_l`` are the gradients with
respect to ``W_l`` and ``b_l``; the last propagates the earlier layers' through ``W_l``. In the
NTK parameterization (``c_l = W_std / sqrt(n_{l-1})``, ``s_l = 1``, ``beta_l = b_std``,
``t_l = 1``) the widths cancel and this is neural-tangents' ``stax.Dense``; in the standard one
(``c_l = 1``, ``s_l = W_std / sqrt(n_{l-1})``, ``beta_l = 1``, ``t_l = b_std``) ``Sigma`` is the
same and ``Theta`` keeps the factors ``n_{l-1}`` of the finite network (it grows with the
width, as the empirical NTK does). For ``MLP([d, m, ..., m, k], init_scale=sigma)`` it is the
recursion of :mod:`ntkdyn.theory.relu_ntk`.

With an output activation the kernels are the mean over the Gaussian ``h_L`` (as
neural-tangents does): ``NNGP = E[psi(u) psi(v)]`` and ``NTK = E[psi'(u) psi'(v)] Theta_L``,
``(u, v)`` with covariance ``Sigma_L``. (The NTK factorises this way in the limit because the
last layer's gradient and ``h_L`` become independent.)

The kernels are per head: the empirical NTK of ``k`` heads summed (``heads="sum"``) converges
to ``k`` times :func:`infinite_ntk`. ``per_layer=True`` splits the NTK into the contributions of
the parameter groups ``"W_1", "b_1", ..., "W_L", "b_L"`` (the key names of
:func:`ntkdyn.numerics.kernels.empirical_ntk`): group ``W_l`` contributes
``c_l^2 n_{l-1} E_l[phi phi]`` (``c_1^2 x.x'`` for ``l = 1``), ``b_l`` contributes ``beta_l^2``,
each multiplied by ``prod_{m > l} c_m^2 s_m^2 n_{m-1} E_m[phi' phi']`` (and by
``E[psi' psi']``); they sum to the NTK.

The dual kernels ``E[phi phi]``, ``E[phi' phi']`` come from :mod:`ntkdyn.theory.dual_kernels`:
closed forms where known (ReLU, ABReLU/leaky ReLU, erf, GELU, sin, linear), otherwise
quadrature, tabulated in ``rho`` for every group of inputs with equal variance (inputs of equal
norm share all their variances, so normalised inputs cost one table per layer) and per entry
for the rest (about 3 ms per entry and layer: normalise the inputs for large data sets).
The matrices are computed in row blocks that stay in cache (only the upper triangle when
``X2`` is ``None``), on as many threads as BLAS may use for large kernels; one GEMM ``X X2^T``
and a few dozen element-wise passes per layer (``benchmarks/bench_infinite_width.py``).
Entries with ``x = x'`` (the diagonal when ``X2`` is ``None``) use the exact ``rho = 1`` duals.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..base.validation import as_array, one_of, positive_int
from .dual_kernels import DEFAULT_ORDER, DualEvaluator, _as_activation, _check_order, closed_form

__all__ = ["infinite_nngp", "infinite_ntk", "layer_names"]

_REQUIRED = ("widths", "depth", "layer_scales", "activation", "output_activation", "has_bias")
_BLOCK_ENTRIES = 32768  # entries per row block (a few arrays of 256 KB: in L2 cache)
_THREADED_ENTRIES = 2 ** 20  # kernels at least this large use several threads by default


def layer_names(net) -> list[str]:
    """The keys of ``infinite_ntk(..., per_layer=True)``, layer by layer.

    Parameters
    ----------
    net : network description
        As in :func:`infinite_ntk`.

    Returns
    -------
    list of str
        ``["W_1", "b_1", ..., "W_L", "b_L"]`` (bias keys only when ``net.has_bias``).
    """
    net = _check_net(net)[0]
    names = []
    for layer in range(1, net.depth + 1):
        names += [f"W_{layer}", f"b_{layer}"] if net.has_bias else [f"W_{layer}"]
    return names


def _check_net(net):
    missing = [a for a in _REQUIRED if not hasattr(net, a)]
    if missing:
        raise TypeError(f"net must describe a network (an ntkdyn.numerics.networks.MLP or "
                        f"Network, or an object with {', '.join(_REQUIRED)}); "
                        f"{type(net).__name__} lacks {', '.join(missing)}")
    scales = [tuple(float(v) for v in s) for s in net.layer_scales()]
    widths = tuple(int(w) for w in net.widths)
    if len(scales) != net.depth or len(widths) != net.depth + 1:
        raise TypeError(f"net.layer_scales() must give depth = {net.depth} tuples and "
                        f"net.widths depth + 1 entries, got {len(scales)} and {len(widths)}")
    for i, s in enumerate(scales):
        if len(s) != 4 or not all(np.isfinite(s)):
            raise ValueError(f"net.layer_scales()[{i}] must be four finite numbers "
                             f"(c, s, beta, t), got {s}")
    try:
        phi = _as_activation(net.activation, "net.activation")
        psi = (None if net.output_activation is None
               else _as_activation(net.output_activation, "net.output_activation"))
    except (TypeError, ValueError) as exc:
        raise type(exc)(str(exc)) from None
    return net, scales, widths, phi, psi


def _check_inputs(widths, X, X2):
    d = widths[0]
    X = as_array(X, "X", ndim=2)
    if X.shape[1] != d:
        raise ValueError(f"X must have {d} columns (net.widths[0], the input dimension), "
                         f"got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("X must hold at least one example")
    if X2 is None:
        return X, None
    X2 = as_array(X2, "X2", ndim=2)
    if X2.shape[1] != d:
        raise ValueError(f"X2 must have {d} columns (net.widths[0], the input dimension), "
                         f"got shape {X2.shape}")
    if X2.shape[0] == 0:
        raise ValueError("X2 must hold at least one example")
    return X, X2


def _blocks(n, n2, symmetric):
    """Row blocks ``(i0, i1, j0)``: rows ``i0:i1``, columns ``j0:`` (upper part if symmetric)."""
    rows = max(1, _BLOCK_ENTRIES // max(n2, 1))
    for i0 in range(0, n, rows):
        yield i0, min(n, i0 + rows), (i0 if symmetric else 0)


def _thread_count(threads, entries):
    """``threads`` or, for ``None``, BLAS's thread limit (threadpoolctl) on large kernels."""
    if threads is not None:
        return positive_int(threads, "threads")
    if entries < _THREADED_ENTRIES:
        return 1
    from threadpoolctl import threadpool_info
    limits = [info.get("num_threads", 1) for info in threadpool_info()
              if info.get("user_api") == "blas"]
    return max(1, min(limits + [os.cpu_count() or 1]))


def _run_blocks(fn, n, n2, symmetric, threads):
    """``fn(i0, i1, j0)`` for every row block; blocks write disjoint entries, so ``threads``
    workers (interleaved blocks) give bitwise the same result as one."""
    blocks = list(_blocks(n, n2, symmetric))
    if threads <= 1 or len(blocks) < 2 * threads:
        for block in blocks:
            fn(*block)
        return

    def work(start):
        for block in blocks[start::threads]:
            fn(*block)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))


def _mirror(K, n):
    """Copy the strict upper triangle of the square ``K`` onto its lower triangle, in place."""
    rows = max(1, _BLOCK_ENTRIES // max(n, 1))
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        K[i1:, i0:i1] = K[i0:i1, i1:].T
        blk = K[i0:i1, i0:i1]
        low = np.tril_indices(i1 - i0, -1)
        blk[low] = blk.T[low]


def _set_diagonal(e_phi, e_dphi, diag, i0, i1):
    """Put the exact ``rho = 1`` duals ``diag`` on the diagonal of the block of rows ``i0:i1``
    (whose columns start at ``i0``): ``Sigma_ii / sqrt(q_i q_i)`` may round to ``1 - 1e-16``,
    which ReLU's ``E[phi' phi']`` (slope ``~ 1/sqrt(1 - rho)``) turns into ``1e-8``."""
    k = np.arange(i1 - i0)
    e_phi[k, k] = diag[0][i0:i1]
    if e_dphi is not None:
        e_dphi[k, k] = diag[1][i0:i1]


def _group_order(sq, rtol=1e-10):
    """A permutation sorting ``sq`` into groups of equal values, or ``None`` if already so."""
    perm = np.argsort(sq, kind="stable")
    s = sq[perm]
    ids = np.concatenate([[0], np.cumsum(np.diff(s) > rtol * np.maximum(s[1:], 1e-300))])
    group = np.empty(sq.size, dtype=np.intp)
    group[perm] = ids
    if np.all(np.diff(group) >= 0):
        return None
    return np.argsort(group, kind="stable")


def _recursion(net, X, X2, ntk, per_layer, method, order, threads):
    if hasattr(net, "layers") and hasattr(net, "input_shape"):  # CNN/ResNet: theory.cntk
        from .cntk import serial_kernels
        return serial_kernels(net, X, X2, ntk, per_layer, method, order)
    net, scales, widths, phi, psi = _check_net(net)
    method = one_of(method, "method", ("auto", "closed", "quadrature"))
    order = _check_order(order)
    if not isinstance(per_layer, (bool, np.bool_)):
        raise TypeError(f"per_layer must be a bool, got {per_layer!r}")
    X, X2 = _check_inputs(widths, X, X2)
    symmetric = X2 is None
    has_bias = bool(net.has_bias)
    L = len(scales)
    sq1 = np.einsum("ij,ij->i", X, X)
    sq2 = sq1 if symmetric else np.einsum("ij,ij->i", X2, X2)
    # numerical duals: sort the inputs by norm (inputs of equal norm share every variance, so
    # each group of them needs one table per layer and its entries form contiguous blocks)
    numerical = method == "quadrature" or any(
        closed_form(a) is None for a in (phi, psi) if a is not None)
    perm1 = _group_order(sq1) if numerical else None
    perm2 = perm1 if symmetric else (_group_order(sq2) if numerical else None)
    sorted1, sorted2 = perm1 is None, perm2 is None
    if not sorted1:
        X, sq1 = X[perm1], sq1[perm1]
    if symmetric:
        X2, sq2 = X, sq1
    elif not sorted2:
        X2, sq2 = X2[perm2], sq2[perm2]
    n, n2 = X.shape[0], X2.shape[0]
    threads = _thread_count(threads, n * n2)

    c, s, beta, t = scales[0]
    gram = X @ X2.T
    sigma_b = beta * beta * t * t
    theta_b = beta * beta if has_bias else 0.0
    groups = {}
    if ntk:
        theta = gram * (c * c)
        if theta_b:
            theta += theta_b
        if per_layer:
            groups["W_1"] = gram * (c * c)
            if has_bias:
                groups["b_1"] = np.full((n, n2), theta_b)
    sigma = gram
    sigma *= c * c * s * s
    if sigma_b:
        sigma += sigma_b
    q1 = c * c * s * s * sq1 + sigma_b
    q2 = q1 if symmetric else c * c * s * s * sq2 + sigma_b

    for layer in range(2, L + 1):
        c, s, beta, t = scales[layer - 1]
        fan_in = widths[layer - 1]
        a_w = c * c * fan_in                 # weight-gradient term
        a_s = c * c * s * s * fan_in          # forward (and back-propagation) factor
        sigma_b = beta * beta * t * t
        theta_b = beta * beta if has_bias else 0.0
        ratio = a_w / a_s                     # 1 / s_l^2 (1 in the NTK parameterization)
        const = theta_b - ratio * sigma_b     # 0 in the NTK parameterization
        # the duals come scaled by a_s: Sigma_l = a_s E[phi phi] + sigma_b and
        # Theta_l = a_s E[phi' phi'] Theta_{l-1} + ratio (Sigma_l - sigma_b) + theta_b
        ev = DualEvaluator(phi, q1, q2, derivative=ntk, method=method, order=order, scale=a_s)
        new = (f"W_{layer}", f"b_{layer}")
        if per_layer:
            groups[new[0]] = np.empty((n, n2))
            if has_bias:
                groups[new[1]] = np.full((n, n2), theta_b)
        diag = ev.diagonal(q1) if symmetric else None  # exact duals at rho = 1 (unscaled)
        diag_scaled = None if diag is None else [None if e is None else a_s * e for e in diag]

        def update(i0, i1, j0):
            blk = (slice(i0, i1), slice(j0, n2))
            sb = sigma[blk]
            e_phi, e_dphi = ev(sb, blk[0], blk[1])
            if symmetric:
                _set_diagonal(e_phi, e_dphi, diag_scaled, i0, i1)
            if ntk:
                if per_layer:
                    for name, K in groups.items():
                        if name not in new:
                            K[blk] *= e_dphi
                    groups[new[0]][blk] = e_phi * ratio
                tb = theta[blk]
                tb *= e_dphi
            if sigma_b:
                np.add(e_phi, sigma_b, out=sb)
            else:
                sb[...] = e_phi
            if ntk:
                if ratio == 1.0:
                    tb += sb
                else:
                    tb += np.multiply(sb, ratio, out=e_phi)
                if const:
                    tb += const

        _run_blocks(update, n, n2, symmetric, threads)
        q1_next = a_s * (diag if symmetric else ev.diagonal(q1))[0] + sigma_b
        q2 = q1_next if symmetric else a_s * ev.diagonal(q2)[0] + sigma_b
        q1 = q1_next
        if symmetric:
            np.fill_diagonal(sigma, q1)

    if psi is not None:
        ev = DualEvaluator(psi, q1, q2, derivative=ntk, method=method, order=order)
        diag = ev.diagonal(q1) if symmetric else None

        def output(i0, i1, j0):
            blk = (slice(i0, i1), slice(j0, n2))
            e_psi, e_dpsi = ev(sigma[blk], blk[0], blk[1])
            if symmetric:
                _set_diagonal(e_psi, e_dpsi, diag, i0, i1)
            if ntk:
                theta[blk] *= e_dpsi
                for K in groups.values():
                    K[blk] *= e_dpsi
            sigma[blk] = e_psi

        _run_blocks(output, n, n2, symmetric, threads)

    outputs = [theta] + list(groups.values()) if ntk else [sigma]
    for K in outputs:
        if symmetric:
            _mirror(K, n)
    if not (sorted1 and sorted2):
        inv1 = np.arange(n) if sorted1 else np.argsort(perm1)
        inv2 = inv1 if symmetric else (np.arange(n2) if sorted2 else np.argsort(perm2))
        outputs = [K[inv1][:, inv2] for K in outputs]
    if not ntk:
        return outputs[0]
    if per_layer:
        return dict(zip(groups, outputs[1:]))
    return outputs[0]


def infinite_nngp(net, X, X2=None, *, method="auto", order=DEFAULT_ORDER,
                  threads=None) -> np.ndarray:
    """Infinite-width NNGP kernel of one output head: ``Sigma_L`` (or ``E[psi psi]``).

    Parameters
    ----------
    net : network description
        ``ntkdyn.numerics.networks.MLP``/``Network`` or any object with ``widths``, ``depth``,
        ``layer_scales()``, ``activation``, ``output_activation`` and ``has_bias``.
    X : array, shape (n, d)
        ``d = net.widths[0]``.
    X2 : array, shape (n2, d), optional
        Second input set (default ``X``: the symmetric Gram matrix).
    method : {"auto", "closed", "quadrature"}
        Dual kernels: closed form where known (``"auto"``), or always quadrature.
    order : int
        Quadrature order (:data:`ntkdyn.theory.dual_kernels.ORDER_RANGE`).
    threads : int, optional
        Threads for the element-wise passes (row blocks; the result does not depend on it).
        Default: BLAS's thread limit (threadpoolctl) for kernels of at least 2^20 entries, else 1.

    Returns
    -------
    array, shape (n, n2)
    """
    return _recursion(net, X, X2, False, False, method, order, threads)


def infinite_ntk(net, X, X2=None, per_layer=False, *, method="auto", order=DEFAULT_ORDER,
                 threads=None):
    """Infinite-width NTK of one output head: ``Theta_L`` (or ``E[psi' psi'] Theta_L``).

    The empirical NTK of ``net`` with ``k`` heads summed converges to ``k`` times this kernel
    (each head to it, the cross-head blocks to zero).

    Parameters
    ----------
    net, X, X2, method, order, threads
        As in :func:`infinite_nngp`.
    per_layer : bool
        Return ``{"W_1": K, "b_1": K, ..., "W_L": K, "b_L": K}`` (bias keys only when
        ``net.has_bias``): each parameter group's contribution, summing to the NTK.

    Returns
    -------
    array, shape (n, n2), or dict of them
    """
    return _recursion(net, X, X2, True, per_layer, method, order, threads)
