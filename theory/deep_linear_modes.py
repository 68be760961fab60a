"""Deep linear networks: the singular-mode dynamics of gradient flow.

Network ``f(x) = V_L ... V_1 x`` with ``V_l = c_l W_l`` (``c_l = 1`` in the standard
parameterization, ``c_l = 1/sqrt(n_{l-1})`` in the NTK parameterization; loss and
gradient-flow time ``t = lr * steps`` as in docs/conventions.md). With input covariance
``Sigma_xx = X^T X / n = V diag(lam) V^T`` and input-output correlation
``Sigma_yx = Y^T X / n = U diag(s) V^T`` the decoupled ("silent-alignment") solutions
``W_1 = R_2 diag(a_1) V^T``, ..., ``W_L = U diag(a_L) R_L^T`` reduce gradient flow to one
ODE per mode (Saxe, McClelland & Ganguli 2014; Shan & Bordelon 2021, sec. 5), in the standard
parameterization::

    da_l/dt = (prod_{k != l} a_k) (s - lam u),     u = prod_l a_l,
    du/dt   = L u^(2 - 2/L) (s - lam u)            (balanced: a_l = u^(1/L)),

derived symbolically in :mod:`ntkdyn.theory.symbolic`. Closed forms exist for ``L = 1``
(``u = s/lam + (u0 - s/lam) e^(-lam t)``) and ``L = 2`` (Saxe's logistic
``u = s e^(2st) / (lam (e^(2st) - 1) + s/u0)``); for ``L >= 3`` the exact implicit solution
is inverted by Newton's method, or the ODE is integrated with ``scipy.integrate.solve_ivp``
(BDF with a diagonal Jacobian) for many modes at once.

In the NTK parameterization a balanced linear network follows the same mode ODE in the time
``C^(2/L) t`` with ``C = prod_l n_{l-1}^(-1/2)`` (:func:`ntk_time_factor`); per layer the
learning rate is multiplied by that layer's ``1/n_{l-1}`` only.

The NTK of these networks and its alignment with the task are in
:mod:`ntkdyn.theory.deep_linear_kernels`.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sps
from scipy.integrate import quad, solve_ivp
from scipy.special import expit as _expit
from scipy.special import log_expit as _log_expit

from ..base.validation import as_array, one_of, positive_float, positive_int
from .parameterization import PARAMETERIZATIONS

__all__ = [
    "ode_rhs",
    "initial_state",
    "closed_form",
    "mode_dynamics",
    "implicit_solution",
    "layer_dynamics",
    "balanced_strengths",
    "mode_time",
    "escape_time",
    "ntk_time_factor",
    "growing_component_u0",
    "task_modes",
    "GD_ERROR_EXPONENT",
]

#: Order of the gap between gradient descent and gradient flow: GD with step ``lr`` is the
#: explicit Euler scheme of the flow (time ``t = lr * steps``), whose global error on a fixed
#: time interval is ``O(lr^1)`` (e.g. Hairer, Norsett & Wanner 1993, sec. II.3).
GD_ERROR_EXPONENT = 1.0


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

    ``da_l/dt = (prod_{k != l} a_k)(s - lam u)`` with ``u = prod_l a_l`` (the mode flow before
    balancing; Saxe et al. 2014 eq. 6). Products over ``k != l`` use prefix/suffix products, so
    zero strengths are allowed.

    Parameters
    ----------
    t : float
        Time (unused: the flow is autonomous; the argument ``solve_ivp`` passes).
    a : array_like, shape (L, m) or (L * m,)
        Per-layer strengths of ``m`` modes, or their flattening.
    s : float or array_like, shape (m,)
        Task singular values.
    lam : float or array_like, shape (m,)
        Input variance along each mode.
    depth : int
        ``L``, the number of layers.

    Returns
    -------
    numpy.ndarray
        ``da/dt``, of the shape of ``a``.
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
    """Balanced per-layer strengths ``a_l = u0^(1/L)``.

    Parameters
    ----------
    u0 : float or array_like, shape (m,)
        Initial end-to-end strengths, ``> 0``.
    depth : int
        ``L``, the number of layers.
    m : int, optional
        The number of modes a scalar ``u0`` is broadcast to.

    Returns
    -------
    numpy.ndarray, shape (L, m)
        ``a_l = u0^(1/L)`` for every layer and mode.
    """
    depth = positive_int(depth, "depth")
    u0 = np.atleast_1d(as_array(u0, "u0", ndim=(0, 1)))
    if np.any(u0 <= 0):
        raise ValueError(f"u0 must be > 0 for a balanced start, got min {u0.min()!r}")
    if m is not None:
        u0 = np.broadcast_to(u0, (m,))
    return balanced_strengths(u0, depth)


def balanced_strengths(u, depth: int) -> np.ndarray:
    """Per-layer strengths ``a_l = u^(1/L)`` of balanced modes.

    Parameters
    ----------
    u : float or array_like, shape (m,)
        End-to-end strengths, ``>= 0``.
    depth : int
        ``L``, the number of layers.

    Returns
    -------
    numpy.ndarray, shape (L, m)
        ``u^(1/L)`` repeated over the layers.
    """
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

    Parameters
    ----------
    s : array_like, shape (m,)
        Task singular values ``>= 0``.
    u0 : float or array_like, shape (m,)
        Initial end-to-end strengths, ``> 0``.
    depth : int
        ``L``, the number of layers.
    t : array_like, shape (T,)
        Times ``>= 0``.
    lam : float or array_like, shape (m,), optional
        Input variance along each mode, ``> 0`` (1 for whitened inputs).

    Returns
    -------
    numpy.ndarray, shape (T, m), or None
        ``u(t)`` for ``depth`` 1 or 2; ``None`` for a deeper network (no closed form).
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
    ``u = (u0^(-(2-2/L)) + 2 lam (L-1) t)^(-L/(2L-2))``.

    Parameters
    ----------
    s : array_like, shape (m,)
        Task singular values ``>= 0``.
    u0 : float or array_like, shape (m,)
        Initial end-to-end strengths, ``> 0``.
    depth : int
        ``L >= 3``, the number of layers.
    t : array_like, shape (T,)
        Times ``>= 0``.
    lam : float or array_like, shape (m,), optional
        Input variance along each mode, ``> 0``.

    Returns
    -------
    numpy.ndarray, shape (T, m)
        ``u(t)`` of every mode.
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

    Solves ``du/dt = L u^(2-2/L) (s - lam u)`` (module docstring; gradient-flow time of the loss
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
    rtol, atol : float
        ``solve_ivp`` tolerances (``atol`` bounds the relative error of ``a``).

    Returns
    -------
    numpy.ndarray, shape (T, m)
        ``u(t)`` of every mode; closed forms for ``L = 1, 2`` (:func:`closed_form`).

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
    ``a_i^2 - a_j^2`` is conserved (:func:`ntkdyn.theory.symbolic.conservation_laws`).

    Parameters
    ----------
    s : array_like, shape (m,)
        Task singular values ``>= 0``.
    a0 : array_like, shape (L,) or (L, m)
        Initial per-layer strengths (``L`` = depth is the first axis).
    t : array_like, shape (T,)
        Times ``>= 0``.
    lam : float or array_like, shape (m,), optional
        Input variance along each mode, ``> 0``.
    rtol, atol : float, optional
        ``solve_ivp`` tolerances.
    method : str, optional
        The ``solve_ivp`` method (default ``"DOP853"``).

    Returns
    -------
    numpy.ndarray, shape (T, L, m)
        ``a_l(t)`` of every layer and mode.
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
    """Exact time for a balanced mode to go from ``u0`` to ``u`` (implicit solution of its ODE).

    With ``a = u^(1/L)``::

        t(u) = int_{u0}^{u} du' / (L u'^(2-2/L) (s - lam u'))
             = int_{a0}^{a} da / (a^(L-1) (s - lam a^L)),

    in closed form for ``L = 1`` (``log((s/lam - u0)/(s/lam - u)) / lam``) and ``L = 2``
    (``log(u (s - lam u0) / (u0 (s - lam u))) / (2 s)``), by adaptive quadrature otherwise.
    Requires ``u0, u`` on the same side of the fixed point ``s/lam`` (``s > 0``).

    Parameters
    ----------
    s : array_like, shape (m,)
        Task singular values, ``> 0``.
    u0, u : float or array_like, shape (m,)
        Start and end strengths of every mode.
    depth : int
        ``L``, the number of layers.
    lam : float or array_like, shape (m,), optional
        Input variance along each mode, ``> 0``.

    Returns
    -------
    numpy.ndarray, shape (m,)
        The gradient-flow time from ``u0`` to ``u`` of every mode.
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
    at ``t*``. For ``L = 2`` returns the logistic half-time ``log(s/u0 - 1) / (2s)`` (needs
    ``u0 < s/2``).

    Parameters
    ----------
    s : array_like, shape (m,)
        Task singular values, ``> 0``.
    u0 : float or array_like, shape (m,)
        Initial end-to-end strengths, ``> 0``.
    depth : int
        ``L >= 2``, the number of layers.

    Returns
    -------
    numpy.ndarray, shape (m,)
        ``t*`` of every mode.
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
    :func:`ntkdyn.theory.symbolic.ntk_time_rescaling`). Strengths ``u`` are those of the
    end-to-end map.

    Parameters
    ----------
    widths : sequence of int
        ``[d, n_1, ..., n_{L-1}, k]``, at least two entries.
    parameterization : {"ntk", "standard"}, optional
        The layer multipliers.

    Returns
    -------
    float
        The time factor ``c`` (1 in the standard parameterization).
    """
    one_of(parameterization, "parameterization", PARAMETERIZATIONS)
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
    Saxe's logistic solution with ``u0 = ||p0 + q0||^2 / 4``.

    Parameters
    ----------
    W1 : array_like, shape (N, D)
        First-layer weights at initialisation.
    W2 : array_like, shape (k, N)
        Second-layer weights at initialisation.
    U : array_like, shape (k, m)
        Output directions of the task modes.
    V : array_like, shape (D, m)
        Input directions of the task modes.

    Returns
    -------
    numpy.ndarray, shape (m,)
        The effective ``u0`` of every mode.
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
    """Singular modes of ``Sigma_yx = Y^T X / n``.

    With ``require_whitened`` (the default), ``Sigma_xx = X^T X / n`` must equal the
    identity to ``whiten_tol`` (max-abs), as the mode ODE with ``lam = 1`` assumes; otherwise a
    ``ValueError`` says so.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs, one per row.
    Y : array_like, shape (n,) or (n, k)
        Targets.
    whiten_tol : float, optional
        The largest entry of ``|X^T X / n - I|`` accepted as whitened.
    require_whitened : bool, optional
        Check that ``X`` is whitened (default ``True``).

    Returns
    -------
    s : numpy.ndarray, shape (m,)
        Singular values, descending (``m = min(k, d)``).
    U : numpy.ndarray, shape (k, m)
        Output directions.
    V : numpy.ndarray, shape (d, m)
        Input directions.
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
