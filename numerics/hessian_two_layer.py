"""The closed-form output Hessian of a two-layer network, streamed once over ``W_1``.

For the two-layer network of Liu, Zhu & Belkin (2020), ``f = c_2 sum_j v_j phi(z_j)``,
``z_j = c_1 w_j . x`` (``c_1 = 1/sqrt(d)``, ``c_2 = 1/sqrt(m)`` in the NTK parameterization,
docs/conventions.md), the output Hessian is block-diagonal over hidden units; unit ``j``
couples ``w_j`` (``d`` entries) and ``v_j`` (one entry):

    H_j = [[A_j x x^T, B_j x], [B_j x^T, 0]],
    A_j = c_2 c_1^2 v_j phi''(z_j),  B_j = c_2 c_1 phi'(z_j).

``H_j`` is zero off ``span{x, e_v}``, where it is ``[[A_j|x|^2, B_j|x|], [B_j|x|, 0]]``, so::

    ||H|| = max_j (|A_j| |x|^2 + sqrt(A_j^2 |x|^4 + 4 B_j^2 |x|^2)) / 2.

ReLU (``phi'' = 0`` a.e.) keeps the cross block: ``||H|| = c_1 c_2 |x|`` (``|x| / sqrt(m d)``
in the NTK parameterization) as soon as one unit is active.

Biases (:class:`numerics.networks.Network` with ``b_std > 0``): ``z_j = c_1 w_j . x + beta_1 b_j``
and ``f = c_2 v . phi(z) + beta_2 b_{2, head}``. The output bias enters linearly (zero rows and
columns); the hidden bias ``b_j`` enters ``z_j`` exactly as an extra input coordinate
``beta_1 / c_1`` attached to the weight ``w_j``, so unit ``j`` couples ``(w_j, b_j, v_j)`` through
the same block with ``x`` replaced by the augmented input ``x~ = (x, beta_1 / c_1)``::

    H_j = [[A_j x~ x~^T, B_j x~], [B_j x~^T, 0]],    |x|^2  ->  |x~|^2 = |x|^2 + beta_1^2 / c_1^2,

and every formula below holds with ``|x~|`` in place of ``|x|`` (ReLU: ``||H|| = c_2 sqrt(c_1^2
|x|^2 + beta_1^2)``); ``||grad f||^2`` gains ``beta_2^2`` from the output bias. Both the Numba and
the NumPy passes take biases. A Numba kernel streams once over
``W_1`` (widths to 10^7), returning the spectral norm, the Frobenius norm, ``||grad f||`` and
``f`` in the same pass; it selects the activation by its ``code`` and prunes with its
``sup_dphi``/``sup_d2phi`` (:class:`ntkdyn.base.activations.Activation`). Activations without
a code take a blocked NumPy pass with their own ``phi``, ``dphi``, ``d2phi``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..base.activations import Activation
from ..base.validation import one_of, positive_int
from .hessian_checks import check_head, check_hessian_net, single_input
from .memory import FLOAT64_BYTES, require_memory
from .networks import MLP

__all__ = ["TwoLayerHessian", "two_layer_hessian", "two_layer_hessian_norm",
           "two_layer_unit_blocks"]


@dataclass(frozen=True)
class TwoLayerHessian:
    """One streaming pass of the two-layer closed form at one input.

    With biases ``|x|^2`` is ``|x|^2 + beta_1^2 / c_1^2`` throughout and ``||grad f||^2`` has
    the extra term ``beta_2^2`` (module docstring).

    Parameters
    ----------
    norm : float
        Spectral norm ``||H||`` of the output Hessian.
    unit : int
        The hidden unit ``j`` (row of ``W_1``) whose block attains it.
    frobenius : float
        ``||H||_F = sqrt(sum_j A_j^2 |x|^4 + 2 B_j^2 |x|^2)``.
    grad_norm : float
        ``||grad f||``, with
        ``||grad f||^2 = sum_j c_2^2 phi(z_j)^2 + c_2^2 c_1^2 v_j^2 phi'(z_j)^2 |x|^2``.
    output : float
        ``f_head(x)``.
    """

    norm: float
    unit: int
    frobenius: float
    grad_norm: float
    output: float


_NUMPY_BLOCK_ROWS = 1 << 16

_KERNEL = None


def _numba_kernel():
    """Compile (once, lazily) the streaming two-layer kernel."""
    global _KERNEL
    if _KERNEL is not None:
        return _KERNEL
    import numba

    @numba.njit(cache=False, fastmath=False)
    def act(code, z):
        if code == 0:
            return z, 1.0, 0.0
        if code == 1:
            if z > 0.0:
                return z, 1.0, 0.0
            return 0.0, 0.0, 0.0
        if code == 2:
            t = math.tanh(z)
            s1 = 1.0 - t * t
            return t, s1, -2.0 * t * s1
        if code == 3:
            s1 = 1.1283791670955126 * math.exp(-z * z)  # 2/sqrt(pi) exp(-z^2)
            return math.erf(z), s1, -2.0 * z * s1
        # logistic sigmoid, computed without overflow
        if z >= 0.0:
            e = math.exp(-z)
            s = 1.0 / (1.0 + e)
        else:
            e = math.exp(z)
            s = e / (1.0 + e)
        s1 = s * (1.0 - s)
        if code == 4:  # softplus = log(1 + e^z): derivatives sigmoid, sigmoid (1 - sigmoid)
            return max(z, 0.0) + math.log1p(math.exp(-abs(z))), s, s1
        return s, s1, s1 * (1.0 - 2.0 * s)

    @numba.njit(cache=False, fastmath=False, parallel=True)
    def kernel(W1, v, x, c1, c2, code, has_bias, b1, beta1, xb, nchunks):
        # With biases z_j gains beta1 b1[j] and |x|^2 gains xb = (beta1 / c1)^2.
        m, d = W1.shape
        xx = 0.0
        for i in range(d):
            xx += x[i] * x[i]
        if has_bias:
            xx += xb
        best = np.full(nchunks, -1.0)
        arg = np.zeros(nchunks, dtype=np.int64)
        frob = np.zeros(nchunks)
        grad = np.zeros(nchunks)
        out = np.zeros(nchunks)
        for c in numba.prange(nchunks):
            lo = (c * m) // nchunks
            hi = ((c + 1) * m) // nchunks
            b_best, b_arg, b_frob, b_grad, b_out = -1.0, lo, 0.0, 0.0, 0.0
            for j in range(lo, hi):
                z = 0.0
                for i in range(d):
                    z += W1[j, i] * x[i]
                z *= c1
                if has_bias:
                    z += beta1 * b1[j]
                s, s1, s2 = act(code, z)
                vj = v[j]
                A = c2 * c1 * c1 * vj * s2
                B = c2 * c1 * s1
                p = A * xx
                q = B * B * xx
                lam = 0.5 * (abs(p) + math.sqrt(p * p + 4.0 * q))
                if lam > b_best:
                    b_best = lam
                    b_arg = j
                b_frob += p * p + 2.0 * q
                b_grad += c2 * c2 * (s * s + c1 * c1 * vj * vj * s1 * s1 * xx)
                b_out += c2 * vj * s
            best[c] = b_best
            arg[c] = b_arg
            frob[c] = b_frob
            grad[c] = b_grad
            out[c] = b_out
        return best, arg, frob, grad, out

    @numba.njit(cache=False, fastmath=False, parallel=True)
    def norm_kernel(W1, v, x, c1, c2, code, has_bias, b1, beta1, xb, K1, sqrtQ, nchunks):
        # Spectral norm only. Unit j's eigenvalue is at most u(|v_j|) =
        # (|v_j| K1 + sqrt(v_j^2 K1^2 + 4 Q)) / 2 (K1 = c2 c1^2 |x|^2 sup|phi''|,
        # sqrt(Q) = c2 c1 |x| sup|phi'|), increasing in |v_j|: rows whose bound cannot beat
        # the running maximum are skipped without reading them. Biases as in kernel (the bounds
        # hold for any z, so they hold with the bias; |x|^2 is the augmented |x~|^2).
        m, d = W1.shape
        xx = 0.0
        for i in range(d):
            xx += x[i] * x[i]
        if has_bias:
            xx += xb
        best = np.full(nchunks, -1.0)
        arg = np.zeros(nchunks, dtype=np.int64)
        visited = np.zeros(nchunks, dtype=np.int64)
        for c in numba.prange(nchunks):
            lo = (c * m) // nchunks
            hi = ((c + 1) * m) // nchunks
            b_best, b_arg, b_vis = -1.0, lo, 0
            thr = -1.0  # evaluate units with |v_j| >= thr
            for j in range(lo, hi):
                vj = v[j]
                if abs(vj) < thr:
                    continue
                z = 0.0
                for i in range(d):
                    z += W1[j, i] * x[i]
                z *= c1
                if has_bias:
                    z += beta1 * b1[j]
                s, s1, s2 = act(code, z)
                p = c2 * c1 * c1 * vj * s2 * xx
                B = c2 * c1 * s1
                lam = 0.5 * (abs(p) + math.sqrt(p * p + 4.0 * B * B * xx))
                b_vis += 1
                if lam > b_best:
                    b_best = lam
                    b_arg = j
                    # u(|v|) > best  <=>  |v| > (best^2 - Q) / (best K1); keep a safety margin.
                    target = b_best * (1.0 - 1e-9)
                    if target > sqrtQ:
                        if K1 > 0.0:
                            thr = (target - sqrtQ) * (target + sqrtQ) / (target * K1)
                        else:
                            thr = np.inf
            best[c] = b_best
            arg[c] = b_arg
            visited[c] = b_vis
        return best, arg, visited

    _KERNEL = (kernel, norm_kernel)
    return _KERNEL


def _two_layer_numpy(W1, v, x, c1, c2, act: Activation, bias=None):
    """The same closed form in blocks of rows, with the activation's own derivatives.

    ``bias``: ``None`` or ``(b1, beta1, xb)`` (``z += beta1 b1``, ``|x|^2 += xb``).
    """
    xx = float(x @ x)
    if bias is not None:
        b1, beta1, xb = bias
        xx += xb
    m = W1.shape[0]
    best, arg, frob, grad, out = -1.0, 0, 0.0, 0.0, 0.0
    for lo in range(0, m, _NUMPY_BLOCK_ROWS):
        hi = min(m, lo + _NUMPY_BLOCK_ROWS)
        z = c1 * (W1[lo:hi] @ x)
        if bias is not None:
            z += beta1 * b1[lo:hi]
        s, s1, s2 = act.phi(z), act.dphi(z), act.d2phi(z)
        vj = v[lo:hi]
        p = (c2 * c1 * c1 * xx) * vj * s2
        q = (c2 * c1 * s1) ** 2 * xx
        lam = 0.5 * (np.abs(p) + np.sqrt(p * p + 4.0 * q))
        j = int(np.argmax(lam))
        if lam[j] > best:
            best, arg = float(lam[j]), lo + j
        frob += float(np.sum(p * p + 2.0 * q))
        grad += float(c2 * c2 * np.sum(s * s + c1 * c1 * xx * vj * vj * s1 * s1))
        out += float(c2 * np.sum(vj * s))
    return best, arg, frob, grad, out


def _two_layer_setup(net, params, x, head, backend, threads):
    net = check_hessian_net(net)
    if net.depth != 2:
        raise ValueError(f"the two-layer closed form needs a two-layer network, "
                         f"got depth {net.depth}")
    if net.output_activation is not None:
        raise ValueError("the block-diagonal closed form holds for a linear output only; "
                         "use output_hessian_norm(..., method='lanczos') with an output "
                         "activation")
    one_of(backend, "backend", ("auto", "numba", "numpy"))
    x = single_input(net, x)
    head = check_head(net, head)
    params = net.check_params(params)
    W1 = params[0]
    v = np.asarray(params[1][head])
    c1, c2 = (float(c) for c in net.multipliers)
    bias = _Bias.of(net, params, head)
    act = net.activation
    code = act.code
    if backend == "numba" and code is None:
        raise ValueError(f"backend='numba' supports activations with a compiled code "
                         f"(the registry's), got {act!r}; use backend='numpy'")
    if threads is not None:
        threads = positive_int(threads, "threads")
    use_numba = code is not None and backend != "numpy"
    if use_numba:
        if W1.dtype != np.float64 or not W1.flags.c_contiguous:
            require_memory(FLOAT64_BYTES * W1.size, "a float64, C-ordered copy of W_1")
            W1 = np.ascontiguousarray(W1, dtype=np.float64)
        v = np.ascontiguousarray(v, dtype=np.float64)
    else:
        W1, v = np.asarray(W1, dtype=np.float64), v.astype(np.float64)
    return (W1, v, np.ascontiguousarray(x), c1, c2, act, code if use_numba else None, threads,
            bias)


@dataclass(frozen=True)
class _Bias:
    """The bias terms of the closed form: ``z_j += beta1 b1_j``, ``|x|^2 += xb = (beta1/c1)^2``,
    ``f += out``, ``||grad f||^2 += grad``."""

    b1: np.ndarray
    beta1: float
    xb: float
    out: float
    grad: float

    @staticmethod
    def of(net: MLP, params, head: int):
        """``None`` for a network without biases."""
        if not net.has_bias:
            return None
        b1, b2 = net.biases(params)
        c1 = float(net.multipliers[0])
        beta1, beta2 = (float(b) for b in net.bias_multipliers)
        return _Bias(b1=np.ascontiguousarray(b1, dtype=np.float64), beta1=beta1,
                     xb=(beta1 / c1) ** 2, out=beta2 * float(b2[head]), grad=beta2 * beta2)

    def kernel_args(self):
        """``(has_bias, b1, beta1, xb)`` for the Numba kernels."""
        return True, self.b1, self.beta1, self.xb

    def numpy_args(self):
        return self.b1, self.beta1, self.xb


_NO_BIAS_ARGS = (False, np.zeros(0), 0.0, 0.0)


def _run_numba(fn, threads, m, *args):
    import numba
    nthreads = numba.get_num_threads() if threads is None else min(
        threads, numba.config.NUMBA_NUM_THREADS)
    nchunks = max(1, min(m, 8 * nthreads))
    old = numba.get_num_threads()
    numba.set_num_threads(nthreads)
    try:
        return fn(*args, nchunks)
    finally:
        numba.set_num_threads(old)


def two_layer_hessian(net: MLP, params, x, head: int = 0, backend: str = "auto",
                      threads: int | None = None) -> TwoLayerHessian:
    """Closed-form output Hessian of a two-layer network at one input, in one pass over ``W_1``.

    ``||H|| = max_j (|A_j| |x|^2 + sqrt(A_j^2 |x|^4 + 4 B_j^2 |x|^2)) / 2`` with
    ``A_j = c_2 c_1^2 v_j phi''(z_j)``, ``B_j = c_2 c_1 phi'(z_j)``, ``v = W_2[head]``
    (Liu, Zhu & Belkin 2020, two-layer network), together with ``||H||_F``, ``||grad f||``
    and ``f(x)``. With biases ``z_j = c_1 w_j . x + beta_1 b_{1,j}`` and ``|x|^2`` becomes
    ``|x|^2 + beta_1^2 / c_1^2`` (the module docstring), on both backends.

    Parameters
    ----------
    net : MLP
        Two weight matrices, linear output (with or without biases).
    params : list of arrays
        ``[W_1 (m, d), W_2 (k, m)]``, then ``[b_1 (m,), b_2 (k,)]`` for a network with biases.
    x : array, shape (d,) or (1, d)
        One input.
    head : int
        Output whose Hessian is taken (the row of ``W_2``).
    backend : {"auto", "numba", "numpy"}
        ``"numba"`` (activations with a ``code``), ``"numpy"`` (blocked, any activation with
        ``d2phi``), ``"auto"`` (Numba where it can).
    threads : int, optional
        Numba threads (default: all).

    Returns
    -------
    TwoLayerHessian
        ``||H||``, the unit attaining it, ``||H||_F``, ``||grad f||`` and ``f(x)``.
    """
    W1, v, x, c1, c2, act, code, threads, bias = _two_layer_setup(net, params, x, head, backend,
                                                                  threads)
    if code is not None:
        kernel = _numba_kernel()[0]
        bias_args = _NO_BIAS_ARGS if bias is None else bias.kernel_args()
        best, arg, frob, grad, out = _run_numba(kernel, threads, W1.shape[0],
                                                W1, v, x, c1, c2, code, *bias_args)
        i = int(np.argmax(best))
        norm, unit = float(best[i]), int(arg[i])
        frob, grad, out = float(frob.sum()), float(grad.sum()), float(out.sum())
    else:
        norm, unit, frob, grad, out = _two_layer_numpy(
            W1, v, x, c1, c2, act, None if bias is None else bias.numpy_args())
    if bias is not None:
        grad += bias.grad
        out += bias.out
    return TwoLayerHessian(norm=norm, unit=unit, frobenius=math.sqrt(frob),
                           grad_norm=math.sqrt(grad), output=out)


def two_layer_hessian_norm(net: MLP, params, x, head: int = 0, backend: str = "auto",
                           threads: int | None = None, return_visited: bool = False):
    """Spectral norm of the two-layer output Hessian at ``x`` (the closed form, norm only).

    The Numba path skips every unit whose eigenvalue bound
    ``(|v_j| K_1 + sqrt(v_j^2 K_1^2 + 4 Q)) / 2`` (``K_1 = c_2 c_1^2 |x|^2 sup|phi''|``,
    ``sqrt(Q) = c_2 c_1 |x| sup|phi'|``) cannot exceed the running maximum, so most rows of
    ``W_1`` are never read; the result is exact. ``return_visited`` also returns the fraction
    of units evaluated. ``threads`` defaults to 1: the pass reads little more than ``v``, and a
    parallel launch costs more than it saves on a shared machine
    (``benchmarks/bench_hessian.py``). Other arguments as in :func:`two_layer_hessian`.

    Parameters
    ----------
    net : MLP
        Two weight matrices, linear output (with or without biases).
    params : list of arrays
        ``[W_1 (m, d), W_2 (k, m)]``, then ``[b_1 (m,), b_2 (k,)]`` for a network with biases.
    x : array, shape (d,) or (1, d)
        One input.
    head : int
        Output whose Hessian is taken (the row of ``W_2``).
    backend : {"auto", "numba", "numpy"}
        ``"numba"`` (activations with a ``code``; the pruned pass), ``"numpy"`` (blocked, any
        activation with ``d2phi``; every unit evaluated), ``"auto"`` (Numba where it can).
    threads : int, optional
        Numba threads (default: 1).
    return_visited : bool
        Also return the fraction of the ``m`` units evaluated (``1.0`` on the NumPy path).

    Returns
    -------
    float, or (float, float) with ``return_visited``
        ``||H||``, then the fraction of units visited.
    """
    W1, v, x, c1, c2, act, code, threads, bias = _two_layer_setup(net, params, x, head, backend,
                                                                  threads)
    threads = 1 if threads is None else threads
    if code is None:
        norm = _two_layer_numpy(W1, v, x, c1, c2, act,
                                None if bias is None else bias.numpy_args())[0]
        return (norm, 1.0) if return_visited else norm
    sup1, sup2 = act.sup_dphi, act.sup_d2phi
    xx = float(x @ x)
    if bias is not None:
        xx += bias.xb
    K1 = c2 * c1 * c1 * xx * sup2
    sqrtQ = c2 * c1 * math.sqrt(xx) * sup1
    kernel = _numba_kernel()[1]
    bias_args = _NO_BIAS_ARGS if bias is None else bias.kernel_args()
    best, arg, visited = _run_numba(kernel, threads, W1.shape[0],
                                    W1, v, x, c1, c2, code, *bias_args, K1, sqrtQ)
    norm = float(best.max())
    return (norm, float(visited.sum()) / W1.shape[0]) if return_visited else norm


def two_layer_unit_blocks(net: MLP, params, x, head: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit coefficients ``(A_j |x|^2, B_j |x|)`` of the 2x2 blocks on ``span{x, e_v}``.

    Unit ``j``'s two non-zero Hessian eigenvalues are those of
    ``[[A_j|x|^2, B_j|x|], [B_j|x|, 0]]``: their sum is ``A_j |x|^2`` and their product
    ``-B_j^2 |x|^2``. With biases ``z_j`` includes ``beta_1 b_j`` and ``|x|`` is the norm of the
    augmented input, ``sqrt(|x|^2 + beta_1^2 / c_1^2)`` (module docstring).

    Parameters
    ----------
    net : MLP
        Two weight matrices, linear output (with or without biases).
    params : list of arrays
        ``[W_1 (m, d), W_2 (k, m)]``, then ``[b_1 (m,), b_2 (k,)]`` for a network with biases.
    x : array, shape (d,) or (1, d)
        One input.
    head : int
        Output whose Hessian is taken (the row of ``W_2``).

    Returns
    -------
    a : numpy.ndarray, shape (m,)
        ``A_j |x|^2``, the diagonal entry of unit ``j``'s block.
    b : numpy.ndarray, shape (m,)
        ``B_j |x|``, its off-diagonal entry.
    """
    net = check_hessian_net(net)
    if net.depth != 2 or net.output_activation is not None:
        raise ValueError("two_layer_unit_blocks needs a two-layer network with a linear output")
    x = single_input(net, x)
    head = check_head(net, head)
    params = net.check_params(params)
    W1, W2 = net.weights(params)
    c1, c2 = net.multipliers
    z = c1 * (W1 @ x)
    xn = float(np.linalg.norm(x))
    bias = _Bias.of(net, params, head)
    if bias is not None:
        z = z + bias.beta1 * bias.b1
        xn = math.sqrt(xn * xn + bias.xb)
    return (c2 * c1 * c1 * W2[head] * net.activation.d2phi(z) * xn * xn,
            c2 * c1 * net.activation.dphi(z) * xn)
