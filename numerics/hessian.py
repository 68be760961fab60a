"""Exact Hessians of MLP outputs and of the MSE loss (Liu, Zhu & Belkin 2020).

Three tools, from general to fast:

* **Hessian-vector products** by hand-written second-order back-propagation
  (Pearlmutter's R-operator, 1994). For ``h_l = c_l W_l a_l``, ``a_{l+1} = phi(h_l)``,
  ``f = psi(h_{L-1})`` and an objective ``E = sum_i e(f(x_i))`` with ``r = dE/df``:

  R-forward   ``Rh_l = c_l (V_l a_l + W_l Ra_l)``, ``Ra_{l+1} = phi'(h_l) Rh_l``, ``Ra_0 = 0``;

  backward    ``g_{L-1} = r psi'(h)``, ``Rg_{L-1} = Rr psi'(h) + r psi''(h) Rh``,
              ``(H V)_l = c_l (Rg_l^T a_l + g_l^T Ra_l)``,
              ``g_{l-1} = c_l (g_l W_l) phi'(h_{l-1})``,
              ``Rg_{l-1} = c_l [(Rg_l W_l + g_l V_l) phi'(h_{l-1}) + (g_l W_l) phi''(h_{l-1}) Rh_{l-1}]``,

  with ``r = e_head``, ``Rr = 0`` for the output and ``r = (f - y)/n``, ``Rr = Rf/n`` for the
  loss ``L = 1/(2n) sum ||f - y||^2``. The operators returned by
  :func:`output_hessian_operator` / :func:`loss_hessian_operator` cache everything that does
  not depend on ``V`` (one forward and one backward pass), so each product costs about
  one extra gradient.

* **Lanczos** (``scipy.sparse.linalg.eigsh`` on a ``LinearOperator``) for the top
  eigenvalues of either Hessian at any depth.

* **The two-layer closed form** (paper note section 3.2). For
  ``f = c_2 sum_j v_j phi(z_j)``, ``z_j = c_1 w_j . x`` the output Hessian is block-diagonal
  over hidden units; unit ``j`` couples ``w_j`` (``d`` entries) and ``v_j`` (one entry):

      B_j = [[A_j x x^T, B_j x], [B_j x^T, 0]],  A_j = c_2 c_1^2 v_j phi''(z_j),  B_j = c_2 c_1 phi'(z_j).

  ``B_j`` is zero off ``span{x, e_v}``, where it is ``[[A_j|x|^2, B_j|x|], [B_j|x|, 0]]``, so

      ||H|| = max_j (|A_j| |x|^2 + sqrt(A_j^2 |x|^4 + 4 B_j^2 |x|^2)) / 2.

  ReLU (``phi'' = 0`` a.e.) keeps the cross block: ``||H|| = c_1 c_2 |x| = |x| / sqrt(m d)``
  as soon as one unit is active. A Numba kernel streams once over ``W_1`` (widths to 10^7),
  returning the spectral norm, the Frobenius norm, ``||grad f||`` and ``f`` in the same pass.

Memory is estimated before anything width-sized is allocated (:func:`require_memory`), and
Hessians refuse activations whose second derivative they need but which lack one.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh

from ..base.validation import as_array, as_generator, one_of, positive_float, positive_int

from ..base.activations import Activation
from .networks import MLP

__all__ = [
    "MemoryBudgetError",
    "TwoLayerHessian",
    "available_memory",
    "require_memory",
    "estimate_bytes",
    "hvp",
    "output_hessian_operator",
    "loss_hessian_operator",
    "output_hessian_dense",
    "loss_hessian_dense",
    "output_hessian_top_eigs",
    "loss_hessian_top_eigs",
    "output_hessian_norm",
    "output_gradient_norm",
    "two_layer_hessian",
    "two_layer_hessian_norm",
    "two_layer_unit_blocks",
]

_FLOAT = 8  # bytes per float64
# Below this many parameters Lanczos is replaced by a dense eigendecomposition.
_DENSE_MAX = 64
# Fraction of the currently available memory a computation may claim.
MEMORY_FRACTION = 0.8


# ============================================================================ memory
class MemoryBudgetError(MemoryError, ValueError):
    """A computation would need more memory than the machine has available.

    Raised *before* the allocation, with the estimated and the available number of bytes.
    It is a ``ValueError`` too, so the CLI reports it as bad input (a width too large).
    """

    def __init__(self, what: str, needed: int, available: int):
        self.what = what
        self.needed = int(needed)
        self.available = int(available)
        super().__init__(
            f"{what} needs about {_fmt_bytes(needed)} but only {_fmt_bytes(available)} of memory "
            f"is available ({MEMORY_FRACTION:.0%} of free memory); use a smaller width")

    def __reduce__(self):  # picklable, so it crosses process-pool boundaries intact
        return type(self), (self.what, self.needed, self.available)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} PiB"  # pragma: no cover


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    try:  # pragma: no cover - not Linux
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 2**62


def require_memory(nbytes: float, what: str, available: int | None = None) -> int:
    """Raise :class:`MemoryBudgetError` unless ``nbytes`` fit in the available memory.

    Call it before allocating anything whose size grows with width.
    """
    avail = available_memory() if available is None else int(available)
    budget = int(MEMORY_FRACTION * avail)
    if not np.isfinite(nbytes) or nbytes > budget:
        raise MemoryBudgetError(what, nbytes if np.isfinite(nbytes) else 2**63, budget)
    return int(nbytes)


def estimate_bytes(widths, method: str = "closed_form", n: int = 1, ncv: int = 20) -> int:
    """Bytes needed for an output/loss Hessian computation on ``MLP(widths)``, weights included.

    ``method``: ``"closed_form"`` (two-layer kernel: the weights only), ``"lanczos"``
    (weights, ``ncv + 8`` parameter-sized Lanczos vectors and the cached passes on ``n``
    inputs), ``"dense"`` (weights and a ``P x P`` matrix).
    """
    one_of(method, "method", ("closed_form", "lanczos", "dense"))
    widths = [positive_int(w, f"widths[{i}]") for i, w in enumerate(widths)]
    # Python integers: no overflow for absurd widths.
    P = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    units = sum(widths)
    if method == "closed_form":
        return _FLOAT * P
    if method == "lanczos":
        return _FLOAT * (P * (ncv + 8) + 12 * n * units)
    return _FLOAT * (P + P * P + 6 * n * units)


# ============================================================================ validation
def _need_second_derivative(act: Activation, argument: str) -> None:
    d2 = getattr(act, "d2phi", None)
    if d2 is None or not callable(d2):
        raise ValueError(
            f"{argument} {act.name!r} has no second derivative (d2phi is {d2!r}); Hessians of "
            "the network need phi''. Give the Activation a d2phi (zero for piecewise-linear "
            "functions) or use a name from ntkdyn.base.activations.ACTIVATIONS")


def _check_net(net, need_hidden: bool = True) -> MLP:
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a numerics.networks.MLP, got {type(net).__name__}")
    if need_hidden and net.depth > 1:
        _need_second_derivative(net.activation, "activation")
    if net.output_activation is not None:
        _need_second_derivative(net.output_activation, "output_activation")
    return net


def _check_head(net: MLP, head) -> int:
    head = positive_int(head, "head", minimum=0)
    if head >= net.output_dim:
        raise ValueError(f"head must be < {net.output_dim} (the number of outputs), got {head}")
    return head


def _single_input(net: MLP, x) -> np.ndarray:
    x = as_array(x, "x", ndim=(1, 2))
    if x.ndim == 2:
        if x.shape[0] != 1:
            raise ValueError(f"x must be one input, shape ({net.input_dim},) or "
                             f"(1, {net.input_dim}), got {x.shape}")
        x = x[0]
    if x.shape[0] != net.input_dim:
        raise ValueError(f"x must have {net.input_dim} entries (the input dimension), got {x.shape}")
    return x


def _as_direction(net: MLP, V):
    """``V`` as a list of per-layer arrays; also says whether it came flat."""
    if isinstance(V, (list, tuple)):
        return net.check_params([np.asarray(v, dtype=np.float64) for v in V], "V"), False
    V = as_array(V, "V", ndim=1)
    if V.shape[0] != net.num_params:
        raise ValueError(f"V must have {net.num_params} entries (the number of parameters), "
                         f"got {V.shape[0]}")
    return net.unflatten(V), True


# ============================================================================ R-operator
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
        """``dE/dW_l`` from the cached signals."""
        c = self.net.multipliers
        return [c[l] * (self.g[l].T @ self.fwd.activations[l]) for l in range(self.net.depth)]

    def apply(self, V) -> list[np.ndarray]:
        """``H V`` for a direction ``V`` given as a list of per-layer arrays."""
        net, P, fwd = self.net, self.params, self.fwd
        L, c = net.depth, net.multipliers
        # R-forward: Rh_l and Ra_l (Ra_0 = 0).
        Ra = [None] * L
        Rh = [None] * L
        for l in range(L):
            t = fwd.activations[l] @ V[l].T
            if l > 0:
                t += Ra[l] @ P[l].T
            t *= c[l]
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
        out = [None] * L
        for l in range(L - 1, -1, -1):
            a = fwd.activations[l]
            hv = Rg.T @ a
            if l > 0:
                hv += self.g[l].T @ Ra[l]
            out[l] = c[l] * hv
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
    net = _check_net(net)
    params = [np.asarray(W, dtype=np.float64) for W in net.check_params(params)]
    X = net.check_inputs(X).astype(np.float64, copy=False)
    if kind == "loss":
        Y = net.check_targets(Y, X.shape[0]).astype(np.float64, copy=False)
    head = _check_head(net, head)
    return _SecondOrderPass(net, params, X, kind, Y, head)


def hvp(net: MLP, params, X, V, Y=None, head: int = 0):
    """Exact Hessian-vector product ``H V`` by the R-operator.

    With ``Y=None``, ``H`` is the Hessian of ``sum_i f_head(x_i)`` over the rows of ``X`` (for
    one input: the output Hessian); with targets ``Y``, the Hessian of the MSE loss
    ``1/(2n) sum_i ||f(x_i) - y_i||^2``. ``V`` is a list shaped like ``params`` or a flat
    vector of ``net.num_params`` entries; the product comes back in the same form.
    """
    kind = "output" if Y is None else "loss"
    X = np.atleast_2d(as_array(X, "X", ndim=(1, 2)))
    state = _prepare(net, params, X, kind, Y, head)
    Vl, flat = _as_direction(net, V)
    out = state.apply(Vl)
    return net.flatten(out) if flat else out


def output_hessian_operator(net: MLP, params, x, head: int = 0) -> LinearOperator:
    """``LinearOperator`` for the ``P x P`` Hessian of ``f_head(x)`` at one input ``x``."""
    x = _single_input(_check_net(net), x)
    return _prepare(net, params, x[None], "output", head=head).operator()


def loss_hessian_operator(net: MLP, params, X, Y) -> LinearOperator:
    """``LinearOperator`` for the Hessian of ``L = 1/(2n) sum ||f(x_i) - y_i||^2``.

    Equals ``J^T J / n + sum_i (f_i - y_i) . H_f(x_i) / n`` (Gauss-Newton plus residual term).
    """
    return _prepare(net, params, X, "loss", Y).operator()


def _dense(op: LinearOperator, what: str) -> np.ndarray:
    P = op.shape[0]
    require_memory(_FLOAT * 2 * P * P, what)
    H = np.empty((P, P))
    e = np.zeros(P)
    for i in range(P):
        e[i] = 1.0
        H[:, i] = op.matvec(e)
        e[i] = 0.0
    return H


def output_hessian_dense(net: MLP, params, x, head: int = 0) -> np.ndarray:
    """The dense ``P x P`` output Hessian at ``x``, one exact HVP per column (small nets)."""
    return _dense(output_hessian_operator(net, params, x, head), "a dense output Hessian")


def loss_hessian_dense(net: MLP, params, X, Y) -> np.ndarray:
    """The dense ``P x P`` Hessian of the MSE loss, one exact HVP per column (small nets)."""
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

    ``which`` as in ``scipy.sparse.linalg.eigsh``: ``"LM"`` (largest magnitude), ``"LA"``, ``"SA"``.
    """
    one_of(which, "which", ("LM", "LA", "SA", "BE"))
    x = _single_input(_check_net(net), x)
    require_memory(estimate_bytes(net.widths, "lanczos", n=1),
                   f"Lanczos on a network with {net.num_params} parameters")
    op = _prepare(net, params, x[None], "output", head=head).operator()
    return _lanczos(op, k, which, tol, seed, ncv, 1, net.widths)


def loss_hessian_top_eigs(net: MLP, params, X, Y, k: int = 1, which: str = "LA",
                          tol: float = 1e-10, seed=0, ncv: int | None = None) -> np.ndarray:
    """Top ``k`` eigenvalues (descending) of the MSE-loss Hessian by Lanczos on exact HVPs.

    ``which="LA"`` (default) gives the largest algebraic eigenvalues, the sharpness.
    """
    one_of(which, "which", ("LM", "LA", "SA", "BE"))
    net = _check_net(net)
    X = net.check_inputs(X)
    require_memory(estimate_bytes(net.widths, "lanczos", n=X.shape[0]),
                   f"Lanczos on a network with {net.num_params} parameters")
    op = loss_hessian_operator(net, params, X, Y)
    return _lanczos(op, k, which, tol, seed, ncv, X.shape[0], net.widths)


def output_gradient_norm(net: MLP, params, x, head: int = 0) -> float:
    """``||grad_theta f_head(x)||`` at one input (one backward pass)."""
    net = _check_net(net, need_hidden=False)
    x = _single_input(net, x)
    head = _check_head(net, head)
    fwd = net.forward(params, x[None])
    e = np.zeros((1, net.output_dim))
    e[0, head] = 1.0
    grads = net.backward(net.check_params(params), fwd, e)
    return float(math.sqrt(sum(float(np.vdot(g, g)) for g in grads)))


# ============================================================================ two layers
@dataclass(frozen=True)
class TwoLayerHessian:
    """One streaming pass of the two-layer closed form at one input.

    ``norm``: spectral norm ``||H||``; ``unit``: the hidden unit attaining it;
    ``frobenius``: ``||H||_F = sqrt(sum_j A_j^2 |x|^4 + 2 B_j^2 |x|^2)``;
    ``grad_norm``: ``||grad f||`` with ``||grad f||^2 = sum_j c_2^2 phi(z_j)^2 + c_2^2 c_1^2 v_j^2 phi'(z_j)^2 |x|^2``;
    ``output``: ``f(x)``.
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
    def kernel(W1, v, x, c1, c2, code, nchunks):
        m, d = W1.shape
        xx = 0.0
        for i in range(d):
            xx += x[i] * x[i]
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
    def norm_kernel(W1, v, x, c1, c2, code, K1, sqrtQ, nchunks):
        # Spectral norm only. Unit j's eigenvalue is at most u(|v_j|) =
        # (|v_j| K1 + sqrt(v_j^2 K1^2 + 4 Q)) / 2 (K1 = c2 c1^2 |x|^2 sup|phi''|,
        # sqrt(Q) = c2 c1 |x| sup|phi'|), increasing in |v_j|: rows whose bound cannot beat
        # the running maximum are skipped without reading them.
        m, d = W1.shape
        xx = 0.0
        for i in range(d):
            xx += x[i] * x[i]
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


def _two_layer_numpy(W1, v, x, c1, c2, act: Activation):
    """The same closed form in blocks of rows with the activation's own ``phi``, ``dphi``, ``d2phi``."""
    xx = float(x @ x)
    m = W1.shape[0]
    best, arg, frob, grad, out = -1.0, 0, 0.0, 0.0, 0.0
    for lo in range(0, m, _NUMPY_BLOCK_ROWS):
        hi = min(m, lo + _NUMPY_BLOCK_ROWS)
        z = c1 * (W1[lo:hi] @ x)
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
    net = _check_net(net)
    if net.depth != 2:
        raise ValueError(f"the two-layer closed form needs a two-layer network, got depth {net.depth}")
    if net.output_activation is not None:
        raise ValueError("the block-diagonal closed form holds for a linear output only; "
                         "use output_hessian_norm(..., method='lanczos') with an output activation")
    one_of(backend, "backend", ("auto", "numba", "numpy"))
    x = _single_input(net, x)
    head = _check_head(net, head)
    params = net.check_params(params)
    W1 = params[0]
    v = np.asarray(params[1][head])
    c1, c2 = (float(c) for c in net.multipliers)
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
            require_memory(_FLOAT * W1.size, "a float64, C-ordered copy of W_1")
            W1 = np.ascontiguousarray(W1, dtype=np.float64)
        v = np.ascontiguousarray(v, dtype=np.float64)
    else:
        W1, v = np.asarray(W1, dtype=np.float64), v.astype(np.float64)
    return W1, v, np.ascontiguousarray(x), c1, c2, act, code if use_numba else None, threads


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
    (paper note section 3.2), together with ``||H||_F``, ``||grad f||`` and ``f(x)``.
    ``backend``: ``"numba"`` (registry activations), ``"numpy"`` (blocked, any activation with
    ``d2phi``), ``"auto"`` (Numba where it can). ``threads``: Numba threads (default: all).
    """
    W1, v, x, c1, c2, act, code, threads = _two_layer_setup(net, params, x, head, backend, threads)
    if code is not None:
        kernel = _numba_kernel()[0]
        best, arg, frob, grad, out = _run_numba(kernel, threads, W1.shape[0],
                                                W1, v, x, c1, c2, code)
        i = int(np.argmax(best))
        norm, unit = float(best[i]), int(arg[i])
        frob, grad, out = float(frob.sum()), float(grad.sum()), float(out.sum())
    else:
        norm, unit, frob, grad, out = _two_layer_numpy(W1, v, x, c1, c2, act)
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
    parallel launch costs more than it saves on a shared machine (``benchmarks/bench_hessian.py``).
    """
    W1, v, x, c1, c2, act, code, threads = _two_layer_setup(net, params, x, head, backend, threads)
    threads = 1 if threads is None else threads
    if code is None:
        norm = _two_layer_numpy(W1, v, x, c1, c2, act)[0]
        return (norm, 1.0) if return_visited else norm
    sup1, sup2 = act.sup_dphi, act.sup_d2phi
    xx = float(x @ x)
    K1 = c2 * c1 * c1 * xx * sup2
    sqrtQ = c2 * c1 * math.sqrt(xx) * sup1
    kernel = _numba_kernel()[1]
    best, arg, visited = _run_numba(kernel, threads, W1.shape[0],
                                    W1, v, x, c1, c2, code, K1, sqrtQ)
    norm = float(best.max())
    return (norm, float(visited.sum()) / W1.shape[0]) if return_visited else norm


def two_layer_unit_blocks(net: MLP, params, x, head: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit coefficients ``(A_j |x|^2, B_j |x|)`` of the 2x2 blocks on ``span{x, e_v}``.

    Unit ``j``'s two non-zero Hessian eigenvalues are those of ``[[A_j|x|^2, B_j|x|], [B_j|x|, 0]]``:
    their sum is ``A_j |x|^2`` and their product ``-B_j^2 |x|^2``.
    """
    net = _check_net(net)
    if net.depth != 2 or net.output_activation is not None:
        raise ValueError("two_layer_unit_blocks needs a two-layer network with a linear output")
    x = _single_input(net, x)
    head = _check_head(net, head)
    W1, W2 = net.check_params(params)
    c1, c2 = net.multipliers
    z = c1 * (W1 @ x)
    xn = float(np.linalg.norm(x))
    return (c2 * c1 * c1 * W2[head] * net.activation.d2phi(z) * xn * xn,
            c2 * c1 * net.activation.dphi(z) * xn)


def output_hessian_norm(net: MLP, params, x, head: int = 0, method: str = "auto",
                        tol: float = 1e-12, seed=0) -> float:
    """Spectral norm (largest ``|eigenvalue|``) of the Hessian of ``f_head`` at one input ``x``.

    ``method="auto"``: the closed form (:func:`two_layer_hessian`) for two-layer networks with
    a linear output, Lanczos on exact HVPs (:func:`output_hessian_top_eigs`) otherwise.
    """
    one_of(method, "method", ("auto", "closed_form", "lanczos"))
    net = _check_net(net)
    if method == "closed_form" or (method == "auto" and net.depth == 2
                                   and net.output_activation is None):
        return two_layer_hessian_norm(net, params, x, head)
    if net.num_params == 1:
        H = output_hessian_dense(net, params, x, head)
        return float(abs(H[0, 0]))
    return float(abs(output_hessian_top_eigs(net, params, x, k=1, which="LM", head=head,
                                             tol=tol, seed=seed)[0]))
