"""The Hessian of an MLP's output or MSE loss as an operator: products, dense matrix, eigenvalues.

Hessian-vector products by hand-written second-order back-propagation (Pearlmutter's
R-operator, 1994; used for the Hessians of Liu, Zhu & Belkin 2020). For
``h_l = c_l W_l a_l + beta_l b_l``, ``a_{l+1} = phi(h_l)``, ``f = psi(h_{L-1})`` (0-based layers;
the bias term only for a network with biases, :class:`numerics.networks.Network` with
``b_std > 0``) and an objective ``E = sum_i e(f(x_i))`` with ``r = dE/df``, a direction
``V = (V_l, V_{b_l})`` in the order of the parameter list (weights, then biases):

R-forward   ``Rh_l = c_l (V_l a_l + W_l Ra_l) + beta_l V_{b_l}``, ``Ra_{l+1} = phi'(h_l) Rh_l``,
            ``Ra_0 = 0``;

backward    ``g_{L-1} = r psi'(h)``, ``Rg_{L-1} = Rr psi'(h) + r psi''(h) Rh``,
            ``(H V)_l = c_l (Rg_l^T a_l + g_l^T Ra_l)``, ``(H V)_{b_l} = beta_l sum_i Rg_l``,
            ``g_{l-1} = c_l (g_l W_l) phi'(h_{l-1})``,
            ``Rg_{l-1} = c_l [(Rg_l W_l + g_l V_l) phi'(h_{l-1})
            + (g_l W_l) phi''(h_{l-1}) Rh_{l-1}]``,

with ``r = e_head``, ``Rr = 0`` for the output and ``r = (f - y)/n``, ``Rr = Rf/n`` for the
loss ``L = 1/(2n) sum ||f - y||^2`` (docs/conventions.md). A bias enters the backward recursion
only through ``Rh`` (``g`` and ``Rg`` do not involve ``b`` otherwise), and a network without biases
takes exactly the operations it took before biases existed. The operators returned by
:func:`output_hessian_operator` / :func:`loss_hessian_operator` cache everything that does
not depend on ``V`` (one forward and one backward pass), so each product costs about one
extra gradient. Dense Hessians take one product per column (small networks); the top
eigenvalues come from Lanczos (``scipy.sparse.linalg.eigsh`` on the operator) at any depth.
Memory is checked before anything width-sized is allocated (:mod:`numerics.memory`).
"""
from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh

from ..base.validation import (as_array, as_generator, float_arrays, one_of, positive_float,
                               positive_int)
from .hessian_checks import check_head, check_hessian_net, single_input
from .memory import FLOAT64_BYTES, estimate_bytes, require_memory
from .networks import MLP

__all__ = [
    "hvp",
    "output_hessian_operator",
    "loss_hessian_operator",
    "output_hessian_dense",
    "loss_hessian_dense",
    "output_hessian_top_eigs",
    "loss_hessian_top_eigs",
]

# Below this many parameters Lanczos is replaced by a dense eigendecomposition.
_DENSE_MAX = 64


def _as_direction(net: MLP, V):
    """``V`` as a list of per-layer arrays; also says whether it came flat."""
    if isinstance(V, (list, tuple)):
        return net.check_params(float_arrays(V, "V"), "V"), False
    V = as_array(V, "V", ndim=1)
    if V.shape[0] != net.num_params:
        raise ValueError(f"V must have {net.num_params} entries (the number of parameters), "
                         f"got {V.shape[0]}")
    return net.unflatten(V), True


class _SecondOrderPass:
    """Forward and backward passes of ``E = sum_i e(f(x_i))`` cached for repeated ``H V``.

    ``kind="output"``: ``E = sum_i f_head(x_i)``; ``kind="loss"``: ``E = 1/(2n) sum ||f - y||^2``.
    """

    def __init__(self, net: MLP, params, X, kind: str, Y=None, head: int = 0):
        self.net, self.kind, self.head = net, kind, head
        self.params = [np.asarray(W, dtype=np.float64) for W in params]
        self.X = X
        fwd = net.forward(self.params, X)
        self.fwd = fwd
        n, k = X.shape[0], net.output_dim
        L = net.depth
        c = net.multipliers
        if kind == "output":
            r = np.zeros((n, k))
            r[:, head] = 1.0
        else:
            r = (fwd.output - Y) / n
        self.r = r
        h_out = fwd.preactivations[-1]
        psi = net.output_activation
        if psi is None:
            self.out_slope, self.out_curv = None, None
            g = r
        else:
            self.out_slope = psi.dphi(h_out)
            self.out_curv = psi.d2phi(h_out)
            g = r * self.out_slope
        # Per hidden layer l (input of weight matrix l, l >= 1): phi'(h_{l-1}) and the V-independent
        # curvature term c_l (g_l W_l) phi''(h_{l-1}).
        self.g = [None] * L
        self.g[L - 1] = g
        self.dphi = [None] * L
        self.curv = [None] * L
        for l in range(L - 1, 0, -1):
            h_prev = fwd.preactivations[l - 1]
            q = g @ self.params[l]
            self.dphi[l] = net.activation.dphi(h_prev)
            self.curv[l] = c[l] * q * net.activation.d2phi(h_prev)
            g = c[l] * q * self.dphi[l]
            self.g[l - 1] = g

    def gradient(self) -> list[np.ndarray]:
        """``dE/dW_l`` (then ``dE/db_l = beta_l sum_i g_l``) from the cached signals."""
        c = self.net.multipliers
        out = [c[l] * (self.g[l].T @ self.fwd.activations[l]) for l in range(self.net.depth)]
        if self.net.has_bias:
            out += [beta * g.sum(axis=0) for beta, g in zip(self.net.bias_multipliers, self.g)]
        return out

    def apply(self, V) -> list[np.ndarray]:
        """``H V`` for a direction ``V`` given as a list of arrays in the parameter order."""
        net, P, fwd = self.net, self.params, self.fwd
        L, c = net.depth, net.multipliers
        beta = net.bias_multipliers if net.has_bias else None
        # R-forward: Rh_l and Ra_l (Ra_0 = 0).
        Ra = [None] * L
        Rh = [None] * L
        for l in range(L):
            t = fwd.activations[l] @ V[l].T
            if l > 0:
                t += Ra[l] @ P[l].T
            t *= c[l]
            if beta is not None:
                t += beta[l] * V[L + l]
            Rh[l] = t
            if l < L - 1:
                Ra[l + 1] = self.dphi[l + 1] * t
        # R of the output-layer signal.
        Rh_out = Rh[L - 1]
        if self.kind == "loss":
            Rf = Rh_out if self.out_slope is None else self.out_slope * Rh_out
            Rr = Rf / self.X.shape[0]
        else:
            Rr = None
        if self.out_slope is None:
            Rg = Rr if Rr is not None else np.zeros_like(Rh_out)
        else:
            Rg = self.r * self.out_curv * Rh_out
            if Rr is not None:
                Rg += Rr * self.out_slope
        out = [None] * (2 * L if beta is not None else L)
        for l in range(L - 1, -1, -1):
            a = fwd.activations[l]
            hv = Rg.T @ a
            if l > 0:
                hv += self.g[l].T @ Ra[l]
            out[l] = c[l] * hv
            if beta is not None:
                out[L + l] = beta[l] * Rg.sum(axis=0)
            if l > 0:
                Rq = Rg @ P[l]
                Rq += self.g[l] @ V[l]
                Rq *= self.dphi[l]
                Rq *= c[l]
                Rq += self.curv[l] * Rh[l - 1]
                Rg = Rq
        return out

    def operator(self) -> LinearOperator:
        net = self.net
        P = net.num_params

        def matvec(v):
            v = np.asarray(v, dtype=np.float64).ravel()
            return net.flatten(self.apply(net.unflatten(v)))

        return LinearOperator((P, P), matvec=matvec, rmatvec=matvec, dtype=np.float64)


def _prepare(net, params, X, kind, Y=None, head=0):
    net = check_hessian_net(net)
    params = [np.asarray(W, dtype=np.float64) for W in net.check_params(params)]
    X = net.check_inputs(X).astype(np.float64, copy=False)
    if kind == "loss":
        Y = net.check_targets(Y, X.shape[0]).astype(np.float64, copy=False)
    head = check_head(net, head)
    return _SecondOrderPass(net, params, X, kind, Y, head)


def hvp(net: MLP, params, X, V, Y=None, head: int = 0):
    """Exact Hessian-vector product ``H V`` by the R-operator.

    With ``Y=None``, ``H`` is the Hessian of ``sum_i f_head(x_i)`` over the rows of ``X`` (for
    one input: the output Hessian); with targets ``Y``, the Hessian of the MSE loss
    ``1/(2n) sum_i ||f(x_i) - y_i||^2``.

    Parameters
    ----------
    net : MLP
        The network; its activations need ``d2phi``.
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})``, followed by
        ``[b_1, ..., b_L]`` (shape ``(n_l,)``) for a network with biases.
    X : array, shape (n, d) or (d,)
        Inputs (one input of shape ``(d,)`` is one row).
    V : list of arrays shaped like ``params``, or array of shape (P,)
        The direction; the product comes back in the same form.
    Y : array, shape (n, k), optional
        Targets: the loss Hessian instead of the output Hessian.
    head : int
        Output whose Hessian is taken (``Y=None`` only).

    Returns
    -------
    list of arrays shaped like ``params``, or array of shape (P,)
        ``H V``, in the form ``V`` was given (``P = net.num_params``, in the order of
        :meth:`MLP.flatten`).
    """
    kind = "output" if Y is None else "loss"
    X = np.atleast_2d(as_array(X, "X", ndim=(1, 2)))
    state = _prepare(net, params, X, kind, Y, head)
    Vl, flat = _as_direction(net, V)
    out = state.apply(Vl)
    return net.flatten(out) if flat else out


def output_hessian_operator(net: MLP, params, x, head: int = 0) -> LinearOperator:
    """``LinearOperator`` for the ``P x P`` Hessian of ``f_head(x)`` at one input ``x``.

    ``x`` has shape ``(d,)`` or ``(1, d)``; ``P = net.num_params`` (biases included), in the
    order of :meth:`MLP.flatten`. Each product is one :func:`hvp` on cached passes.

    Parameters
    ----------
    net : MLP
        The network; its activations need ``d2phi``.
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})``, followed by
        ``[b_1, ..., b_L]`` (shape ``(n_l,)``) for a network with biases.
    x : array, shape (d,) or (1, d)
        One input.
    head : int
        Output whose Hessian is taken, in ``[0, k)``.

    Returns
    -------
    scipy.sparse.linalg.LinearOperator, shape (P, P)
        Symmetric operator: ``matvec`` maps a flat direction of shape ``(P,)`` to ``H v``.
    """
    x = single_input(check_hessian_net(net), x)
    return _prepare(net, params, x[None], "output", head=head).operator()


def loss_hessian_operator(net: MLP, params, X, Y) -> LinearOperator:
    """``LinearOperator`` for the Hessian of ``L = 1/(2n) sum ||f(x_i) - y_i||^2``.

    Equals ``J^T J / n + sum_i (f_i - y_i) . H_f(x_i) / n`` (Gauss-Newton plus residual term).
    ``X`` is ``(n, d)``, ``Y`` is ``(n, k)``; the operator is ``P x P``.

    Parameters
    ----------
    net : MLP
        The network; its activations need ``d2phi``.
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})``, followed by
        ``[b_1, ..., b_L]`` (shape ``(n_l,)``) for a network with biases.
    X : array, shape (n, d)
        Inputs.
    Y : array, shape (n, k) or (n,)
        Targets.

    Returns
    -------
    scipy.sparse.linalg.LinearOperator, shape (P, P)
        Symmetric operator: ``matvec`` maps a flat direction of shape ``(P,)`` to ``H v``.
    """
    return _prepare(net, params, X, "loss", Y).operator()


def _dense(op: LinearOperator, what: str) -> np.ndarray:
    P = op.shape[0]
    require_memory(FLOAT64_BYTES * 2 * P * P, what)
    H = np.empty((P, P))
    e = np.zeros(P)
    for i in range(P):
        e[i] = 1.0
        H[:, i] = op.matvec(e)
        e[i] = 0.0
    return H


def output_hessian_dense(net: MLP, params, x, head: int = 0) -> np.ndarray:
    """The dense ``P x P`` output Hessian of ``f_head`` at ``x`` ``(d,)``, one HVP per column.

    Refused (:class:`numerics.memory.MemoryBudgetError`) when the matrix would not fit.

    Parameters
    ----------
    net : MLP
        The network; its activations need ``d2phi``.
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})``, followed by
        ``[b_1, ..., b_L]`` (shape ``(n_l,)``) for a network with biases.
    x : array, shape (d,) or (1, d)
        One input.
    head : int
        Output whose Hessian is taken, in ``[0, k)``.

    Returns
    -------
    numpy.ndarray, shape (P, P)
        The Hessian of ``f_head(x)``, in the parameter order of :meth:`MLP.flatten`.
    """
    return _dense(output_hessian_operator(net, params, x, head), "a dense output Hessian")


def loss_hessian_dense(net: MLP, params, X, Y) -> np.ndarray:
    """The dense ``P x P`` MSE-loss Hessian on ``X (n, d)``, ``Y (n, k)``, one HVP per column.

    Refused (:class:`numerics.memory.MemoryBudgetError`) when the matrix would not fit.

    Parameters
    ----------
    net : MLP
        The network; its activations need ``d2phi``.
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})``, followed by
        ``[b_1, ..., b_L]`` (shape ``(n_l,)``) for a network with biases.
    X : array, shape (n, d)
        Inputs.
    Y : array, shape (n, k) or (n,)
        Targets.

    Returns
    -------
    numpy.ndarray, shape (P, P)
        The Hessian of ``L = 1/(2n) sum ||f(x_i) - y_i||^2``, in the parameter order of
        :meth:`MLP.flatten`.
    """
    return _dense(loss_hessian_operator(net, params, X, Y), "a dense loss Hessian")


def _lanczos(op: LinearOperator, k: int, which: str, tol: float, seed, ncv, n_inputs: int,
             widths) -> np.ndarray:
    P = op.shape[0]
    k = positive_int(k, "k")
    if k >= P:
        raise ValueError(f"k must be < {P} (the number of parameters), got {k}")
    tol = positive_float(tol, "tol", allow_zero=True)
    ncv_eff = min(P, max(2 * k + 1, 20)) if ncv is None else positive_int(ncv, "ncv")
    require_memory(estimate_bytes(widths, "lanczos", n=n_inputs, ncv=ncv_eff),
                   f"Lanczos on a network with {P} parameters")
    if P <= _DENSE_MAX:
        # Small problems: the dense matrix from P exact products and LAPACK.
        evals = np.linalg.eigvalsh(_dense(op, "a small dense Hessian"))
        order = {"LM": np.argsort(-np.abs(evals), kind="stable"), "LA": np.argsort(-evals),
                 "SA": np.argsort(evals)}.get(which)
        if order is None:  # "BE": alternate from both ends
            idx = np.argsort(evals)
            order = np.array([idx[-1 - i // 2] if i % 2 == 0 else idx[i // 2] for i in range(k)])
        return np.sort(evals[order[:k]])[::-1]
    rng = as_generator(seed)
    v0 = rng.standard_normal(P)
    if not np.any(op.matvec(v0)):
        return np.zeros(k)  # H v0 = 0 for a random v0: H = 0 (e.g. a model linear in theta)
    vals = eigsh(op, k=k, which=which, tol=tol, v0=v0, ncv=ncv, return_eigenvectors=False)
    return np.sort(vals)[::-1]


def output_hessian_top_eigs(net: MLP, params, x, k: int = 1, which: str = "LM", head: int = 0,
                            tol: float = 1e-12, seed=0, ncv: int | None = None) -> np.ndarray:
    """Top ``k`` eigenvalues (descending) of the output Hessian at ``x`` by Lanczos.

    Parameters
    ----------
    net : MLP
        The network; its activations need ``d2phi``.
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})``, followed by
        ``[b_1, ..., b_L]`` (shape ``(n_l,)``) for a network with biases.
    x : array, shape (d,) or (1, d)
        One input.
    k : int
        Number of eigenvalues, ``< P``; below 64 parameters they come from the dense matrix.
    which : {"LM", "LA", "SA", "BE"}
        As in ``scipy.sparse.linalg.eigsh``: largest magnitude, largest or smallest
        algebraic, both ends.
    head : int
        Output whose Hessian is taken, in ``[0, n_out)`` (``n_out`` outputs).
    tol : float
        Relative tolerance of ``eigsh`` (unused by the dense path).
    seed : int or Generator
        Draws the Lanczos start vector.
    ncv : int, optional
        Number of Lanczos vectors of ``eigsh``; ``None``: its default (memory is checked
        for ``min(P, max(2 k + 1, 20))``).

    Returns
    -------
    numpy.ndarray, shape (k,)
        The eigenvalues, in descending order (zeros when ``H v0 = 0`` for the random start
        vector ``v0``, i.e. ``H = 0``).
    """
    one_of(which, "which", ("LM", "LA", "SA", "BE"))
    x = single_input(check_hessian_net(net), x)
    require_memory(estimate_bytes(net.widths, "lanczos", n=1),
                   f"Lanczos on a network with {net.num_params} parameters")
    op = _prepare(net, params, x[None], "output", head=head).operator()
    return _lanczos(op, k, which, tol, seed, ncv, 1, net.widths)


def loss_hessian_top_eigs(net: MLP, params, X, Y, k: int = 1, which: str = "LA",
                          tol: float = 1e-10, seed=0, ncv: int | None = None) -> np.ndarray:
    """Top ``k`` eigenvalues (descending) of the MSE-loss Hessian by Lanczos on exact HVPs.

    ``X`` is ``(n, d)``, ``Y`` is ``(n, k)``; the other arguments are those of
    :func:`output_hessian_top_eigs`. ``which="LA"`` (default) gives the largest algebraic
    eigenvalues, the sharpness. Returns shape ``(k,)``.

    Parameters
    ----------
    net : MLP
        The network; its activations need ``d2phi``.
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})``, followed by
        ``[b_1, ..., b_L]`` (shape ``(n_l,)``) for a network with biases.
    X : array, shape (n, d)
        Inputs.
    Y : array, shape (n, n_out) or (n,)
        Targets (``n_out`` outputs).
    k : int
        Number of eigenvalues, ``< P``; below 64 parameters they come from the dense matrix.
    which : {"LM", "LA", "SA", "BE"}
        As in ``scipy.sparse.linalg.eigsh``: largest magnitude, largest or smallest
        algebraic, both ends.
    tol : float
        Relative tolerance of ``eigsh`` (unused by the dense path).
    seed : int or Generator
        Draws the Lanczos start vector.
    ncv : int, optional
        Number of Lanczos vectors of ``eigsh``; ``None``: its default.

    Returns
    -------
    numpy.ndarray, shape (k,)
        The eigenvalues, in descending order (zeros when ``H = 0``).
    """
    one_of(which, "which", ("LM", "LA", "SA", "BE"))
    net = check_hessian_net(net)
    X = net.check_inputs(X)
    require_memory(estimate_bytes(net.widths, "lanczos", n=X.shape[0]),
                   f"Lanczos on a network with {net.num_params} parameters")
    op = loss_hessian_operator(net, params, X, Y)
    return _lanczos(op, k, which, tol, seed, ncv, X.shape[0], net.widths)
