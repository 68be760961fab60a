"""Deep linear networks: singular-mode dynamics, their NTK and its alignment with the task.

Network ``f(x) = V_L ... V_1 x`` with ``V_l = c_l W_l`` (``c_l = 1`` in the standard
parameterization, ``c_l = 1/sqrt(n_{l-1})`` in the NTK parameterization), loss
``1/(2n) sum_i ||f(x_i) - y_i||^2`` and gradient-flow time ``t`` (``t = lr * steps``).
With input covariance ``Sigma_xx = X^T X / n = V diag(lam) V^T`` and input-output correlation
``Sigma_yx = Y^T X / n = U diag(s) V^T`` the decoupled ("silent-alignment") solutions
``W_1 = R_2 diag(a_1) V^T``, ..., ``W_L = U diag(a_L) R_L^T`` reduce gradient flow to one
ODE per mode (Saxe, McClelland & Ganguli 2014; ``papers/shan_bordelon.md`` sec. 4, eq. D2)::

    da_l/dt = (prod_{k != l} a_k) (s - lam u),     u = prod_l a_l,
    du/dt   = L u^(2 - 2/L) (s - lam u)            (balanced: a_l = u^(1/L)),

derived symbolically in :mod:`theory.symbolic`. Closed forms exist for ``L = 1``
(``u = s/lam + (u0 - s/lam) e^(-lam t)``) and ``L = 2`` (Saxe's logistic
``u = s e^(2st) / (lam (e^(2st) - 1) + s/u0)``); deeper networks are integrated with
``scipy.integrate.solve_ivp`` (BDF with a diagonal Jacobian) for many modes at once.

The module also gives the NTK of a deep linear network (exact and layer-wise, eq. D1) from
its weights or from mode strengths, kernel-target alignment, and the alignment predicted for
whitened inputs: ``1/sqrt(D)`` at small strengths (or for ``L = 1``) and
``A_inf = L / sqrt(L^2 + D - 1)`` once the task mode is learned (verified in
:func:`theory.symbolic.whitened_final_alignment`; the note's formula is right).

In the NTK parameterization a balanced linear network follows the same mode ODE in the time
``C^(2/L) t`` with ``C = prod_l n_{l-1}^(-1/2)`` (:func:`ntk_time_factor`); per layer the
learning rate is multiplied by that layer's ``1/n_{l-1}`` only.

STYLE habit 1: :func:`ode_rhs`, :func:`initial_state`, :func:`closed_form`,
:func:`observables`.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sps
from scipy.integrate import quad, solve_ivp
from scipy.special import expit as _expit
from scipy.special import log_expit as _log_expit

from ..base.alignment import alignment
from ..base.validation import as_array, one_of, positive_float, positive_int

__all__ = [
    "ode_rhs",
    "initial_state",
    "closed_form",
    "observables",
    "mode_dynamics",
    "implicit_solution",
    "layer_dynamics",
    "balanced_strengths",
    "mode_time",
    "escape_time",
    "ntk_time_factor",
    "growing_component_u0",
    "task_modes",
    "ntk_from_weights",
    "ntk_from_modes",
    "kernel_alignment",
    "initial_kernel_scale",
    "alignment_whitened",
    "final_alignment",
    "alignment_general",
]

_HEADS = ("sum", "each", "full")


# ------------------------------------------------------------------ input checks
def _singular_values(s) -> np.ndarray:
    s = np.atleast_1d(as_array(s, "s", ndim=(0, 1)))
    if s.size == 0:
        raise ValueError("s (singular values) must hold at least one value")
    if np.any(s < 0):
        raise ValueError(f"s (singular values) must be >= 0, got min {s.min()!r}")
    return s


def _per_mode(value, name: str, m: int, positive: bool = True) -> np.ndarray:
    arr = np.atleast_1d(as_array(value, name, ndim=(0, 1)))
    if arr.size not in (1, m):
        raise ValueError(f"{name} must be a scalar or have one entry per mode ({m}), "
                         f"got shape {arr.shape}")
    if positive and np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0, got min {arr.min()!r}")
    return np.broadcast_to(arr, (m,)).astype(np.float64)


def _times(t) -> np.ndarray:
    t = np.atleast_1d(as_array(t, "t", ndim=(0, 1)))
    if t.size == 0:
        raise ValueError("t must hold at least one time")
    if np.any(t < 0):
        raise ValueError("t must be >= 0 (gradient-flow time from initialisation), "
                         f"got min {t.min()!r}")
    return t


# ------------------------------------------------------------------ mode ODE
def ode_rhs(t, a, s, lam, depth: int):
    """Right-hand side of the per-layer mode flow, vectorised over modes.

    ``a`` has shape ``(L, m)`` (or is its flattening): ``da_l/dt = (prod_{k != l} a_k)(s - lam u)``
    with ``u = prod_l a_l`` (eq. D2 before balancing; Saxe et al. 2014 eq. 6).
    Products over ``k != l`` use prefix/suffix products, so zero strengths are allowed.
    """
    A = np.reshape(a, (depth, -1))
    prefix = np.ones_like(A)
    suffix = np.ones_like(A)
    for l in range(1, depth):
        prefix[l] = prefix[l - 1] * A[l - 1]
        suffix[depth - 1 - l] = suffix[depth - l] * A[depth - l]
    others = prefix * suffix
    u = others[0] * A[0]
    return (others * (s - lam * u)).reshape(np.shape(a))


def _log_balanced_rhs(z, s, lam, depth):
    """``d(log a)/dt = a^(L-2) (s - lam a^L)`` for balanced strengths ``a = e^z``."""
    return np.exp((depth - 2) * z) * (s - lam * np.exp(depth * z))


def _log_balanced_jac_diag(z, s, lam, depth):
    return ((depth - 2) * np.exp((depth - 2) * z) * (s - lam * np.exp(depth * z))
            - lam * depth * np.exp((2 * depth - 2) * z))


def initial_state(u0, depth: int, m: int | None = None) -> np.ndarray:
    """Balanced per-layer strengths ``a_l = u0^(1/L)``, shape ``(L, m)``."""
    depth = positive_int(depth, "depth")
    u0 = np.atleast_1d(as_array(u0, "u0", ndim=(0, 1)))
    if np.any(u0 <= 0):
        raise ValueError(f"u0 must be > 0 for a balanced start, got min {u0.min()!r}")
    if m is not None:
        u0 = np.broadcast_to(u0, (m,))
    return balanced_strengths(u0, depth)


def balanced_strengths(u, depth: int) -> np.ndarray:
    """Per-layer strengths ``a_l = u^(1/L)`` of balanced modes, shape ``(L, m)`` (``u >= 0``)."""
    depth = positive_int(depth, "depth")
    u = np.atleast_1d(as_array(u, "u", ndim=(0, 1)))
    if np.any(u < 0):
        raise ValueError(f"u must be >= 0 for balanced strengths, got min {u.min()!r}")
    return np.tile(u ** (1.0 / depth), (depth, 1))


def closed_form(s, u0, depth: int, t, lam=1.0):
    """Closed-form ``u(t)``, shape ``(len(t), len(s))``, for ``depth`` 1 or 2; ``None`` otherwise.

    * ``L = 1``: ``u = s/lam + (u0 - s/lam) e^(-lam t)``;
    * ``L = 2``: ``u = u0 / (lam u0 (1 - e^(-2st))/s + e^(-2st))``, the overflow-free form of
      Saxe's ``s e^(2st) / (lam (e^(2st) - 1) + s/u0)``; at ``s = 0`` it is
      ``u0 / (1 + 2 lam u0 t)``.
    """
    depth = positive_int(depth, "depth")
    s = _singular_values(s)
    m = s.size
    u0 = _per_mode(u0, "u0", m)
    lam = _per_mode(lam, "lam", m)
    t = _times(t)[:, None]
    if depth == 1:
        return s / lam + (u0 - s / lam) * np.exp(-lam * t)
    if depth == 2:
        decay = np.exp(-2.0 * s * t)
        safe_s = np.where(s > 0, s, 1.0)
        growth = np.where(s > 0, -np.expm1(-2.0 * s * t) / safe_s, 2.0 * t)
        return u0 / (lam * u0 * growth + decay)
    return None


def _pair_terms(w, depth):
    """``sum_{k=1}^{L-1} Re(omega_k^2 log(1 - w / omega_k))`` over the roots of unity other than 1.

    Roots ``k`` and ``L - k`` are conjugate and contribute equally, so each pair is computed
    once, in real arithmetic: ``1 - w conj(omega) = (1 - w cos phi) + i w sin phi``; the root
    ``-1`` of even ``L`` contributes ``log(1 + w)``.
    """
    total = np.zeros_like(w)
    for k in range(1, (depth + 1) // 2):
        phi = 2.0 * np.pi * k / depth
        re = 1.0 - w * np.cos(phi)
        im = w * np.sin(phi)
        log_abs = 0.5 * np.log(re * re + im * im)
        arg = np.arctan2(im, re)
        total += 2.0 * (np.cos(2 * phi) * log_abs - np.sin(2 * phi) * arg)
    if depth % 2 == 0:
        total += np.log1p(w)
    return total


def _implicit_theta(rho, depth, above):
    """``I(w) = int dw / (w^(L-1) (1 - w^L))`` (``L >= 3``) in the coordinate ``rho``.

    Partial fractions: ``1/(w^(L-1)(1-w^L)) = w^(1-L) + w/(1-w^L)`` and
    ``w/(1-w^L) = -(1/L) sum_k omega_k^2 / (w - omega_k)`` (``omega_k`` the L-th roots of unity), so
    ``I(w) = w^(2-L)/(2-L) - (1/L) [log|1-w| + sum_{k>=1} Re(omega_k^2 log(1 - w/omega_k))]``.
    Below the fixed point ``w = expit(rho)``; above it ``w = 1 + e^rho``; both keep
    ``log|1 - w|`` exact.
    """
    if above:
        w = 1.0 + np.exp(rho)
        log_gap = rho
        first = np.exp((2 - depth) * np.log(w)) / (2 - depth)
    else:
        w = _expit(rho)
        log_gap = _log_expit(-rho)                  # log(1 - w)
        log_w = _log_expit(rho)                     # log(w)
        first = np.exp((2 - depth) * log_w) / (2 - depth)
    return first - (log_gap + _pair_terms(w, depth)) / depth


def _implicit_dtheta(rho, depth, above):
    """``dI/drho``: ``w^(2-L) / sum_{j<L} w^j`` below, ``-w^(1-L) / sum_{j<L} w^j`` above."""
    if above:
        w = 1.0 + np.exp(rho)
        geo = sum(w ** j for j in range(depth))
        return -w ** (1 - depth) / geo
    w = _expit(rho)
    geo = sum(w ** j for j in range(depth))
    return np.exp((2 - depth) * _log_expit(rho)) / geo


def _implicit_solve(w0, kappa, t, depth, above, tol=1e-8, max_iter=60, spacing=0.01):
    """``w(t)`` with ``I(w(t)) = I(w0) + kappa t`` on one side of the fixed point (``L >= 3``).

    Starting guess: cubic Hermite interpolation of ``rho(theta)`` on a table of ``I`` with spacing
    ``0.01`` in ``rho`` (slopes from the exact ``dI/drho``); then Newton steps on the points not
    yet converged. Newton converges quadratically, so a point whose last step was below
    ``tol (1 + |rho|)`` is accurate to about ``tol^2``.
    """
    rho0 = np.log(w0 - 1.0) if above else np.log(w0) - np.log1p(-w0)
    target = (_implicit_theta(rho0, depth, above)[None, :] + kappa[None, :] * t[:, None]).ravel()
    if above:
        lo, hi = -40.0 * depth, float(rho0.max()) + 1.0
    else:
        lo, hi = float(rho0.min()) - 1.0, 40.0
    grid = np.linspace(lo, hi, int(np.ceil((hi - lo) / spacing)) + 1)
    if above:
        grid = grid[::-1]           # theta increases along the table
    theta_grid = _implicit_theta(grid, depth, above)
    slope_grid = 1.0 / _implicit_dtheta(grid, depth, above)        # d rho / d theta
    j = np.clip(np.searchsorted(theta_grid, target) - 1, 0, grid.size - 2)
    h = theta_grid[j + 1] - theta_grid[j]
    x = np.clip((target - theta_grid[j]) / h, 0.0, 1.0)
    h00, h10 = (1 + 2 * x) * (1 - x) ** 2, x * (1 - x) ** 2
    h01, h11 = x ** 2 * (3 - 2 * x), x ** 2 * (x - 1)
    rho = (h00 * grid[j] + h10 * h * slope_grid[j] + h01 * grid[j + 1]
           + h11 * h * slope_grid[j + 1])
    beyond = target > theta_grid[-1]
    rho[beyond] = grid[-1] + (-depth if above else depth) * (target[beyond] - theta_grid[-1])
    at_start = np.broadcast_to(t[:, None] == 0, (t.size, w0.size)).ravel()
    rho[at_start] = np.broadcast_to(rho0[None, :], (t.size, w0.size)).ravel()[at_start]
    active = np.nonzero(~at_start)[0]
    for _ in range(max_iter):
        if active.size == 0:
            break
        r = rho[active]
        residual = _implicit_theta(r, depth, above) - target[active]
        step = residual / _implicit_dtheta(r, depth, above)
        step = np.clip(step, -1.0, 1.0)
        rho[active] = r - step
        active = active[np.abs(step) > tol * (1.0 + np.abs(r))]
    else:
        if active.size:
            raise RuntimeError("mode_dynamics: Newton inversion of the implicit solution "
                               "did not converge")
    rho = rho.reshape(t.size, w0.size)
    return 1.0 + np.exp(rho) if above else _expit(rho)


def implicit_solution(s, u0, depth, t, lam=1.0) -> np.ndarray:
    """Exact ``u(t)`` of ``du/dt = L u^(2-2/L)(s - lam u)`` for ``L >= 3`` (implicit solution).

    With ``a = u^(1/L) = (s/lam)^(1/L) w`` the ODE becomes ``dw/dt = kappa w^(L-1)(1 - w^L)``,
    ``kappa = s (s/lam)^((L-2)/L)``, whose implicit solution is ``I(w(t)) = I(w0) + kappa t`` with
    the closed-form ``I`` of :func:`_implicit_theta`; it is inverted by Newton's method to
    machine precision (both sides of the fixed point). For ``s = 0``,
    ``u = (u0^(-(2-2/L)) + 2 lam (L-1) t)^(-L/(2L-2))``. Shape ``(len(t), len(s))``.
    """
    depth = positive_int(depth, "depth", minimum=3)
    s = _singular_values(s)
    m = s.size
    u0 = _per_mode(u0, "u0", m)
    lam = _per_mode(lam, "lam", m)
    t = _times(t)
    out = np.empty((t.size, m))
    zero = s == 0
    if np.any(zero):
        p = 2.0 - 2.0 / depth
        out[:, zero] = (u0[zero] ** (-p) + 2.0 * lam[zero] * (depth - 1) * t[:, None]) ** (-1.0 / p)
    pos = ~zero
    fixed = np.where(pos, s / lam, 1.0)
    w0 = (u0 / fixed) ** (1.0 / depth)
    kappa = s * fixed ** ((depth - 2.0) / depth)
    at_fixed = pos & (w0 == 1.0)
    out[:, at_fixed] = fixed[at_fixed]
    for above in (False, True):
        sel = pos & ((w0 > 1.0) if above else (w0 < 1.0))
        if np.any(sel):
            w = _implicit_solve(w0[sel], kappa[sel], t, depth, above)
            out[:, sel] = fixed[sel] * w ** depth
    return out


def mode_dynamics(s, u0, depth, t, lam=1.0, method: str = "implicit", rtol: float = 1e-10,
                  atol: float = 1e-12) -> np.ndarray:
    """End-to-end mode strengths ``u_alpha(t)`` of a depth-``L`` linear net from a balanced start.

    Solves ``du/dt = L u^(2-2/L) (s - lam u)`` (eq. D2; gradient-flow time of the loss
    ``1/(2n) sum ||f - y||^2``, standard parameterization) for every mode at once.

    Parameters
    ----------
    s : array_like, shape (m,)
        Task singular values ``s_alpha >= 0`` (``Sigma_yx = U diag(s) V^T``).
    u0 : float or array_like, shape (m,)
        Initial end-to-end strengths, ``> 0``.
    depth : int
        Number of layers ``L >= 1``.
    t : array_like, shape (T,)
        Times ``>= 0`` (any order).
    lam : float or array_like, shape (m,)
        Input variance along each mode, ``> 0`` (1 for whitened inputs); the fixed point is
        ``s / lam``.
    method : str
        For ``L >= 3``: ``"implicit"`` (default; exact implicit solution inverted by Newton,
        :func:`implicit_solution`) or a ``solve_ivp`` method (``"DOP853"``, ``"RK45"``,
        ``"Radau"``, ``"BDF"``, ``"LSODA"``) integrating ``log a`` (``a = u^(1/L)``) for all modes
        in one vectorised system, with the exact diagonal Jacobian for the stiff methods.
    rtol, atol
        ``solve_ivp`` tolerances (``atol`` bounds the relative error of ``a``).

    Returns
    -------
    ndarray, shape (len(t), len(s))
        Closed forms for ``L = 1, 2`` (:func:`closed_form`).

    Raises
    ------
    ValueError
        ``depth < 1``, ``u0 <= 0``, ``s < 0``, ``lam <= 0``, ``t < 0``, non-finite input or an
        unknown method.
    RuntimeError
        When the integration (or the Newton inversion) fails.
    """
    depth = positive_int(depth, "depth")
    s = _singular_values(s)
    m = s.size
    u0 = _per_mode(u0, "u0", m)
    lam = _per_mode(lam, "lam", m)
    t = _times(t)
    one_of(method, "method", ("implicit", "DOP853", "RK45", "RK23", "Radau", "BDF", "LSODA"))
    if depth <= 2:
        return closed_form(s, u0, depth, t, lam)
    if method == "implicit":
        return implicit_solution(s, u0, depth, t, lam)
    rtol = positive_float(rtol, "rtol")
    atol = positive_float(atol, "atol")
    order = np.argsort(t, kind="stable")
    t_sorted = t[order]
    z0 = np.log(u0) / depth

    def fun(_, z):
        return _log_balanced_rhs(z, s, lam, depth)

    def jac(_, z):
        return sps.diags(_log_balanced_jac_diag(z, s, lam, depth), format="csc")

    t_end = float(t_sorted[-1])
    if t_end == 0.0:
        return np.broadcast_to(u0, (t.size, m)).copy()
    kwargs = {"jac": jac} if method in ("BDF", "Radau") else {}
    sol = _solve_ivp(fun, (0.0, t_end), z0, method=method, t_eval=t_sorted,
                     rtol=rtol, atol=atol, **kwargs)
    if not sol.success or sol.y.shape[1] != t.size or not np.all(np.isfinite(sol.y)):
        raise RuntimeError(f"mode_dynamics: integration of the depth-{depth} mode ODE failed "
                           f"({getattr(sol, 'message', 'non-finite solution')})")
    u = np.exp(depth * sol.y.T)
    out = np.empty_like(u)
    out[order] = u
    return out


def _solve_ivp(*args, **kwargs):
    """Indirection so tests can make the integrator fail."""
    return solve_ivp(*args, **kwargs)


def layer_dynamics(s, a0, t, lam=1.0, rtol: float = 1e-10, atol: float = 1e-12,
                   method: str = "DOP853") -> np.ndarray:
    """Per-layer strengths ``a_l(t)`` from any (possibly unbalanced) start.

    Integrates ``da_l/dt = (prod_{k != l} a_k)(s - lam prod_k a_k)`` for all modes at once;
    ``a_i^2 - a_j^2`` is conserved (:func:`theory.symbolic.conservation_laws`).

    Parameters
    ----------
    s : array_like, shape (m,)
        Task singular values ``>= 0``.
    a0 : array_like, shape (L,) or (L, m)
        Initial per-layer strengths (``L`` = depth is the first axis).
    t : array_like, shape (T,)
        Times ``>= 0``.

    Returns
    -------
    ndarray, shape (len(t), L, m)
    """
    s = _singular_values(s)
    m = s.size
    a0 = as_array(a0, "a0", ndim=(1, 2))
    if a0.ndim == 1:
        a0 = a0[:, None]
    depth = a0.shape[0]
    if a0.shape[1] not in (1, m):
        raise ValueError(f"a0 must have shape (L,) or (L, {m}), got {a0.shape}")
    a0 = np.broadcast_to(a0, (depth, m)).astype(np.float64)
    lam = _per_mode(lam, "lam", m)
    t = _times(t)
    order = np.argsort(t, kind="stable")
    t_sorted = t[order]
    t_end = float(t_sorted[-1])
    if t_end == 0.0:
        return np.broadcast_to(a0, (t.size, depth, m)).copy()
    sol = _solve_ivp(lambda tt, a: ode_rhs(tt, a, s, lam, depth), (0.0, t_end), a0.ravel(),
                     method=method, t_eval=t_sorted, rtol=rtol, atol=atol)
    if not sol.success or sol.y.shape[1] != t.size or not np.all(np.isfinite(sol.y)):
        raise RuntimeError(f"layer_dynamics: integration failed "
                           f"({getattr(sol, 'message', 'non-finite solution')})")
    a = sol.y.T.reshape(t.size, depth, m)
    out = np.empty_like(a)
    out[order] = a
    return out


def mode_time(s, u0, u, depth: int, lam=1.0) -> np.ndarray:
    """Exact time for a balanced mode to go from ``u0`` to ``u`` (implicit solution of D2).

    ``t(u) = int_{u0}^{u} du' / (L u'^(2-2/L) (s - lam u'))
           = int_{a0}^{a} da / (a^(L-1) (s - lam a^L))``  with ``a = u^(1/L)``;
    closed form for ``L = 1`` (``log((s/lam - u0)/(s/lam - u)) / lam``) and ``L = 2``
    (``log(u (s - lam u0) / (u0 (s - lam u))) / (2 s)``), adaptive quadrature otherwise.
    Requires ``u0, u`` on the same side of the fixed point ``s/lam`` (``s > 0``).
    """
    depth = positive_int(depth, "depth")
    s = _singular_values(s)
    m = s.size
    if np.any(s == 0):
        raise ValueError("s must be > 0 in mode_time (the fixed point s/lam must be positive)")
    u0 = _per_mode(u0, "u0", m)
    u = _per_mode(u, "u", m)
    lam = _per_mode(lam, "lam", m)
    fixed = s / lam
    if np.any((u0 - fixed) * (u - fixed) <= 0):
        raise ValueError("u0 and u must lie strictly on the same side of the fixed point s/lam")
    if depth == 1:
        return np.log((fixed - u0) / (fixed - u)) / lam
    if depth == 2:
        return np.log(u * (s - lam * u0) / (u0 * (s - lam * u))) / (2.0 * s)
    out = np.empty(m)
    for i in range(m):
        a0, a1 = u0[i] ** (1.0 / depth), u[i] ** (1.0 / depth)
        out[i] = quad(lambda a: 1.0 / (a ** (depth - 1) * (s[i] - lam[i] * a ** depth)),
                      a0, a1, epsabs=0.0, epsrel=1e-12, limit=200)[0]
    return out


def escape_time(s, u0, depth: int) -> np.ndarray:
    """Plateau-escape time ``t* = u0^(-(L-2)/L) / (s (L - 2))`` for ``L >= 3`` and small ``u0``.

    From ``da/dt ~ s a^(L-1)`` while ``a^L << s``: ``a^(2-L) = a0^(2-L) - (L-2) s t`` blows up
    at ``t*`` (``papers/shan_bordelon.md`` sec. 4). For ``L = 2`` returns the logistic
    half-time ``log(s/u0 - 1) / (2s)`` (needs ``u0 < s/2``).
    """
    depth = positive_int(depth, "depth", minimum=2)
    s = _singular_values(s)
    u0 = _per_mode(u0, "u0", s.size)
    if np.any(s == 0):
        raise ValueError("s must be > 0 for an escape time")
    if depth == 2:
        return np.log(s / u0 - 1.0) / (2.0 * s)
    return u0 ** (-(depth - 2) / depth) / (s * (depth - 2))


def ntk_time_factor(widths, parameterization: str = "ntk") -> float:
    """Factor ``c`` such that a balanced linear net follows the standard mode ODE in time ``c t``.

    ``widths = [d, n_1, ..., n_{L-1}, k]``. Standard parameterization: ``c = 1``. NTK
    parameterization (``h_{l+1} = W_{l+1} h_l / sqrt(n_l)``): ``f = C W_L ... W_1 x`` with
    ``C = prod_{l=0}^{L-1} n_l^(-1/2)``, and for raw weights balanced in each mode
    ``du/dt = C^(2/L) L u^(2-2/L)(s - lam u)``, so ``c = (prod_{l<L} 1/n_l)^(1/L)``, the geometric
    mean of the per-layer learning-rate factors ``1/n_{l-1}`` (derived in
    :func:`theory.symbolic.ntk_time_rescaling`). Strengths ``u`` are those of the end-to-end map.
    """
    one_of(parameterization, "parameterization", ("ntk", "standard"))
    widths = [positive_int(w, f"widths[{i}]") for i, w in enumerate(widths)]
    if len(widths) < 2:
        raise ValueError("widths must have at least 2 entries [d, ..., k]")
    if parameterization == "standard":
        return 1.0
    fan_ins = np.asarray(widths[:-1], dtype=np.float64)
    return float(np.exp(-np.mean(np.log(fan_ins))))


def growing_component_u0(W1, W2, U, V) -> np.ndarray:
    """Effective balanced ``u0`` of each mode of a depth-2 net started from small random weights.

    Linearising at small weights, ``p = W_1 v_alpha`` and ``q = W_2^T u_alpha`` obey
    ``dp/dt = s q``, ``dq/dt = s p``: ``p + q`` grows as ``e^(st)`` and ``p - q`` decays, so
    ``u = q.p = (||p0 + q0||^2 e^(2st) - ||p0 - q0||^2 e^(-2st)) / 4`` and the growing part is
    Saxe's logistic solution with ``u0 = ||p0 + q0||^2 / 4`` (``W_1``: ``(N, D)``, ``W_2``:
    ``(k, N)``, ``U``: ``(k, m)``, ``V``: ``(D, m)``).
    """
    W1 = as_array(W1, "W1", ndim=2)
    W2 = as_array(W2, "W2", ndim=2)
    U = as_array(U, "U", ndim=2)
    V = as_array(V, "V", ndim=2)
    if W2.shape[1] != W1.shape[0] or V.shape[0] != W1.shape[1] or U.shape[0] != W2.shape[0]:
        raise ValueError(f"incompatible shapes W1 {W1.shape}, W2 {W2.shape}, U {U.shape}, "
                         f"V {V.shape}")
    p = W1 @ V
    q = W2.T @ U
    return 0.25 * np.sum((p + q) ** 2, axis=0)


def task_modes(X, Y, whiten_tol: float = 1e-8, require_whitened: bool = True):
    """Singular modes of ``Sigma_yx = Y^T X / n``: ``(s, U (k, m), V (d, m))``.

    With ``require_whitened`` (the default), ``Sigma_xx = X^T X / n`` must equal the
    identity to ``whiten_tol`` (max-abs), as eq. D2 with ``lam = 1`` assumes; otherwise a
    ``ValueError`` says so.
    """
    X = as_array(X, "X", ndim=2)
    Y = as_array(Y, "Y", ndim=(1, 2))
    if Y.ndim == 1:
        Y = Y[:, None]
    n, d = X.shape
    if Y.shape[0] != n:
        raise ValueError(f"Y must have {n} rows like X, got shape {Y.shape}")
    if require_whitened:
        dev = float(np.max(np.abs(X.T @ X / n - np.eye(d))))
        if dev > whiten_tol:
            raise ValueError(f"X must be whitened (X^T X / n = I); max deviation {dev:.3g} "
                             f"exceeds whiten_tol={whiten_tol:g}")
    U, s, Vt = np.linalg.svd(Y.T @ X / n, full_matrices=False)
    return s, U, Vt.T


# ------------------------------------------------------------------ kernels
def _check_heads(heads):
    return one_of(heads, "heads", _HEADS)


def _reduce_heads(M_list, G_list, heads):
    """``K = sum_l M_l (x) G_l`` in the requested head layout."""
    if heads == "full":
        return sum(M[:, :, None, None] * G[None, None] for M, G in zip(M_list, G_list))
    if heads == "each":
        return sum(np.diag(M)[:, None, None] * G[None] for M, G in zip(M_list, G_list))
    return sum(np.trace(M) * G for M, G in zip(M_list, G_list))


def ntk_from_weights(weights, X, multipliers=None, heads: str = "sum") -> np.ndarray:
    """Exact NTK of the linear network ``f(x) = c_L W_L ... c_1 W_1 x`` on ``X`` (eq. D1).

    ``K_ij(x, x') = sum_l c_l^2 [P_l P_l^T]_ij (Q_l x).(Q_l x')`` with
    ``P_l = V_L ... V_{l+1}`` (``P_L = I``), ``Q_l = V_{l-1} ... V_1`` (``Q_1 = I``),
    ``V_l = c_l W_l``: the gradient of ``f_i`` with respect to ``W_l`` is
    ``c_l P_l[i]^T (Q_l x)^T``. Computed layer-wise with matrix products, never a Jacobian.

    Parameters
    ----------
    weights : list of 2-D arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})``.
    X : array_like, shape (n, d)
    multipliers : sequence of float, optional
        ``c_l``; default all ones (standard parameterization).
    heads : {"sum", "each", "full"}
        ``(n, n)`` summed over heads ``sum_i K_ii``, ``(k, n, n)`` per head, or ``(k, k, n, n)``.
    """
    _check_heads(heads)
    if not isinstance(weights, (list, tuple)) or len(weights) == 0:
        raise TypeError("weights must be a non-empty list of 2-D arrays [W_1, ..., W_L]")
    Ws = [as_array(W, f"weights[{l}]", ndim=2) for l, W in enumerate(weights)]
    X = as_array(X, "X", ndim=2)
    depth = len(Ws)
    if X.shape[1] != Ws[0].shape[1]:
        raise ValueError(f"X must have {Ws[0].shape[1]} columns, got shape {X.shape}")
    for l in range(1, depth):
        if Ws[l].shape[1] != Ws[l - 1].shape[0]:
            raise ValueError(f"weights[{l}] has shape {Ws[l].shape}, incompatible with "
                             f"weights[{l - 1}] of shape {Ws[l - 1].shape}")
    c = np.ones(depth) if multipliers is None else as_array(multipliers, "multipliers", ndim=1)
    if c.shape != (depth,):
        raise ValueError(f"multipliers must have {depth} entries, got {c.shape}")
    Vs = [cl * W for cl, W in zip(c, Ws)]
    H = [X]
    for V in Vs[:-1]:
        H.append(H[-1] @ V.T)
    k = Vs[-1].shape[0]
    P = [None] * depth
    P[-1] = np.eye(k)
    for l in range(depth - 2, -1, -1):
        P[l] = P[l + 1] @ Vs[l + 1]
    M_list = [Pl @ Pl.T for Pl in P]
    G_list = [c[l] ** 2 * (H[l] @ H[l].T) for l in range(depth)]
    return _reduce_heads(M_list, G_list, heads)


def ntk_from_modes(a, X, V, U, heads: str = "sum") -> np.ndarray:
    """NTK of a decoupled deep linear network from its per-layer mode strengths (eq. D1).

    For ``W_1 = R_2 diag(a_1) V^T``, ``W_l = R_{l+1} diag(a_l) R_l^T``, ``W_L = U diag(a_L) R_L^T``
    (standard parameterization; any orthonormal ``R_l``)::

        K_ij(x, x') = sum_l M^l_ij G^l(x, x'),
        M^l = U diag(prod_{k>l} a_k^2) U^T  (l < L),   M^L = I_k,
        G^l = x^T V diag(prod_{k<l} a_k^2) V^T x'  (l > 1),   G^1 = x.x'.

    Balanced scalar-output modes give ``u^(2(L-1)/L) [x.x' + (L-1)(v.x)(v.x')]`` (eq. D3).

    Parameters
    ----------
    a : array_like, shape (L, m)
        Per-layer strengths (see :func:`balanced_strengths`).
    X : array_like, shape (n, d)
    V : array_like, shape (d, m)
        Orthonormal input directions.
    U : array_like, shape (k, m)
        Orthonormal output directions.
    heads : {"sum", "each", "full"}
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


def kernel_alignment(K, Y) -> float:
    """Uncentred kernel-target alignment ``<K, Y Y^T>_F / (||K||_F ||Y Y^T||_F)``.

    For a scalar target this is ``y^T K y / (||K||_F ||y||^2)`` (Cristianini et al. 2002);
    the same function as :func:`theory.alignment.alignment` with ``centered=False``.
    """
    return alignment(K, Y, centered=False)


def initial_kernel_scale(widths, init_scale: float, parameterization: str = "standard") -> float:
    """Expected NTK at initialisation, per head, in units of ``X X^T``: ``E K_0 = c X X^T``.

    For i.i.d. ``N(0, sigma^2)`` weights, ``E[P_l P_l^T] = prod_{k>l} (sigma^2 n_{k-1}) I`` and
    ``E[Q_l^T Q_l] = prod_{k<l} (sigma^2 n_k) I``, so every layer contributes the same
    ``sigma^(2(L-1)) prod_{l=1}^{L-1} n_l`` and ``c = L sigma^(2(L-1)) prod(hidden widths)``,
    times ``prod_{l<L} 1/n_l`` in the NTK parameterization. ``widths = [d, n_1, ..., k]``.
    """
    one_of(parameterization, "parameterization", ("ntk", "standard"))
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
    (eq. D3) and ``bulk`` an isotropic remainder (e.g. the initial kernel
    :func:`initial_kernel_scale`). For whitened inputs (``X^T X = n I_D``)
    ``A = (alpha + gamma) / sqrt(alpha^2 D + 2 alpha gamma + gamma^2)`` with
    ``alpha = bulk + w``, ``gamma = (L-1) w`` (:func:`theory.symbolic.whitened_final_alignment`);
    ``bulk = 0`` gives ``L / sqrt(L^2 + D - 1)`` and ``w << bulk`` gives ``1/sqrt(D)``.
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

    Verified: symbolically (:func:`theory.symbolic.whitened_final_alignment`) and numerically in
    the tests against the kernel of a trained balanced network.
    """
    L = np.asarray(depth, dtype=np.float64)
    D = np.asarray(dim, dtype=np.float64)
    if np.any(L < 1) or np.any(L != np.round(L)):
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    if np.any(D < 1) or np.any(D != np.round(D)):
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    out = L / np.sqrt(L ** 2 + D - 1)
    return float(out) if out.ndim == 0 else out


def alignment_general(G, y, beta_norm: float, depth: int) -> float:
    """Alignment after learning for non-whitened data (``papers/shan_bordelon.md`` sec. 4).

    ``K ∝ G + (L-1) S`` with ``G = X X^T`` and ``S = y y^T / ||beta*||^2``::

        A = [y^T G y + (L-1)||y||^4/b^2] /
            (||y||^2 sqrt(||G||_F^2 + 2(L-1) y^T G y / b^2 + (L-1)^2 ||y||^4 / b^4)),

    ``b = ||beta*||``; ``depth = 1`` gives the initial ``A(G, y)``.
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

    Returns ``{"u": u, "spike": u^(2-2/L), "alignment": alignment_whitened(...)}``.
    """
    u = as_array(u, "u")
    return {"u": u, "spike": u ** (2.0 - 2.0 / positive_int(depth, "depth")),
            "alignment": alignment_whitened(depth, dim, u, bulk)}
