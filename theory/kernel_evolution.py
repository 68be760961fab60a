"""Toy model in which the kernel evolves to accelerate training.

Function-space model on ``P`` training points, a reconstruction of the optimal feature
evolution model of Shan & Bordelon (2021, arXiv:2105.14301): residual ``D = y - f``
(``f(0) = 0``, so ``D(0) = y``), kernel ``K`` (``P x P``, symmetric PSD)::

    dD/dt = -K D                                     (df/dt = K D)
    dK/dt = eta (K D D^T + D D^T K)                  multiplicative rule (T1)
    dK/dt = eta D D^T                                additive rule (T2)

with optional trace normalisation ``dK/dt <- G - (Tr G / Tr K) K`` for the raw rate ``G``
(for T1 this is ``-(2 eta D^T K D / Tr K) K``), which keeps ``Tr K`` constant.
The residual is integrated directly (not ``f``), so the loss ``1/2 ||D||^2`` keeps its
relative accuracy far below ``||y||^2`` instead of being lost to cancellation in ``y - f``.

Closed form (target on one eigenvector of ``K_0``, eigenvalue ``lam0``; ``U = ||D||^2``),
verified in :func:`ntkdyn.theory.symbolic.verify_toy_closed_form`:

* T1: ``lam + eta U = c`` conserved, ``U(t) = c u0 / (eta u0 + lam0 e^(2ct))``,
  ``lam(inf) = lam0 + eta ||y||^2``;
* T2: ``lam^2 + eta U = c2`` conserved,
  ``lam(t) = sqrt(c2) tanh(sqrt(c2) t + atanh(lam0/sqrt(c2)))``,
  ``lam(inf) = sqrt(lam0^2 + eta ||y||^2)``.

With a static kernel (``eta = 0``) and eigen-coefficients ``y_k`` the loss is
``1/2 sum_k y_k^2 e^(-2 lam_k t)`` (:func:`static_loss`), a power law ``t^(-(a-1)/b)`` for
``lam_k ~ k^(-b)``, ``y_k^2 ~ k^(-a)`` at intermediate times.

T1 conserves the whole matrix ``K + eta D D^T`` (:func:`conserved_matrix`), so
``K(inf) = K_0 + eta y y^T`` for any target (:func:`final_kernel`). The optimal feature evolution
of Shan & Bordelon (2021, sec. 3) is a discrete version (:func:`iterate_feature_toy`): features
``Psi`` (``K = Psi^T Psi``) take a gradient step of size ``gamma`` on the next step's loss
``1/2 ||(I - eta Psi^T Psi) D||^2``; as ``eta -> 0`` it is T1 with rate ``2 gamma``
(:func:`feature_toy_rate`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from ..base.samplers import orthonormal_frame
from ..base.validation import as_array, one_of, positive_float, positive_int

__all__ = [
    "VARIANTS",
    "ToyTrajectory",
    "kernel_rate",
    "ode_rhs",
    "initial_state",
    "unpack_state",
    "integrate",
    "closed_form",
    "final_eigenvalue",
    "invariant",
    "static_loss",
    "static_loss_exponent",
    "power_law_problem",
    "observables",
    "FEATURE_TOY_ORDER",
    "conserved_matrix",
    "final_kernel",
    "feature_toy_rate",
    "feature_toy_max_eta",
    "feature_gradient_step",
    "iterate_feature_toy",
]

VARIANTS = ("multiplicative", "additive")


@dataclass
class ToyTrajectory:
    """Toy-model solution at times ``t``: ``residual[i] = y - f(t_i)``, ``kernel[i] = K(t_i)``.

    Parameters
    ----------
    t : numpy.ndarray, shape (T,)
        The recorded times.
    residual : numpy.ndarray, shape (T, P)
        ``D(t_i) = y - f(t_i)``.
    kernel : numpy.ndarray, shape (T, P, P)
        ``K(t_i)``.
    y : numpy.ndarray, shape (P,)
        The targets.
    eta : float
        The rate of the kernel rule.
    variant : {"multiplicative", "additive"}
        The kernel rule, T1 or T2.
    normalise : bool
        Whether ``Tr K`` was kept fixed.
    """

    t: np.ndarray
    residual: np.ndarray
    kernel: np.ndarray
    y: np.ndarray
    eta: float
    variant: str
    normalise: bool

    @property
    def output(self) -> np.ndarray:
        """``f(t) = y - residual`` (loses relative accuracy once the residual is tiny)."""
        return self.y[None, :] - self.residual

    @property
    def loss(self) -> np.ndarray:
        """``1/2 ||y - f||^2`` at every time."""
        return 0.5 * np.sum(self.residual ** 2, axis=1)


def kernel_rate(K, residual, eta: float, variant: str = "multiplicative",
                normalise: bool = False) -> np.ndarray:
    """``dK/dt``: ``eta (K D D^T + D D^T K)`` (T1) or ``eta D D^T`` (T2), optionally normalised.

    Parameters
    ----------
    K : numpy.ndarray, shape (P, P)
        The kernel.
    residual : numpy.ndarray, shape (P,)
        ``D = y - f``.
    eta : float
        The rate.
    variant : {"multiplicative", "additive"}, optional
        T1 (default) or T2.
    normalise : bool, optional
        Subtract ``(Tr G / Tr K) K`` from the raw rate ``G``, so that ``Tr K`` stays fixed.

    Returns
    -------
    numpy.ndarray, shape (P, P)
        ``dK/dt``.

    Raises
    ------
    TypeError
        ``K``, ``residual`` or ``eta`` not real (complex, str).
    ValueError
        Non-finite entries, mismatched shapes, or an unknown ``variant``.
    """
    K = as_array(K, "K", ndim=2, keep_float32=True)
    residual = as_array(residual, "residual", ndim=1, keep_float32=True)
    if K.shape != (residual.shape[0],) * 2:
        raise ValueError(f"K must have shape ({residual.shape[0]}, {residual.shape[0]}) to match "
                         f"residual, got {K.shape}")
    eta = positive_float(eta, "eta", allow_zero=True)
    one_of(variant, "variant", VARIANTS)
    return _rate(K, residual, eta, variant, normalise)


def _rate(K, residual, eta, variant, normalise):
    """:func:`kernel_rate` without the checks (the right-hand side calls it at every step)."""
    if variant == "multiplicative":
        KD = K @ residual
        G = eta * (np.outer(KD, residual) + np.outer(residual, KD))
    else:
        G = eta * np.outer(residual, residual)
    if normalise:
        G = G - (np.trace(G) / np.trace(K)) * K
    return G


def ode_rhs(t, state, P: int, eta: float, variant: str = "multiplicative",
            normalise: bool = False) -> np.ndarray:
    """Right-hand side for the flat state ``[D (P), K (P*P) row-major]``.

    ``dD/dt = -K D`` and ``dK/dt`` = :func:`kernel_rate`.

    Parameters
    ----------
    t : float
        Time (unused: the flow is autonomous; the argument ``solve_ivp`` passes).
    state : numpy.ndarray, shape (P + P * P,)
        The residual followed by the kernel, row-major.
    P : int
        The number of training points.
    eta : float
        The rate of the kernel rule.
    variant : {"multiplicative", "additive"}, optional
        T1 (default) or T2.
    normalise : bool, optional
        Keep ``Tr K`` fixed.

    Returns
    -------
    numpy.ndarray, shape (P + P * P,)
        The time derivative of ``state``.
    """
    residual = state[:P]
    K = state[P:].reshape(P, P)
    out = np.empty_like(state)
    out[:P] = -K @ residual
    out[P:] = _rate(K, residual, eta, variant, normalise).ravel()
    return out


def _problem(K0, y):
    y = as_array(y, "y", ndim=1)
    K0 = as_array(K0, "K0", ndim=2)
    P = y.size
    if K0.shape != (P, P):
        raise ValueError(f"K0 must have shape ({P}, {P}), got {K0.shape}")
    if not np.allclose(K0, K0.T, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(K0).max())):
        raise ValueError("K0 must be symmetric")
    return K0, y


def initial_state(K0, y, f0=None) -> np.ndarray:
    """Flat initial state ``[y - f0, K0]`` (``f0 = 0`` by default).

    Parameters
    ----------
    K0 : array_like, shape (P, P)
        Symmetric initial kernel.
    y : array_like, shape (P,)
        Targets.
    f0 : array_like, shape (P,), optional
        Initial outputs (default 0).

    Returns
    -------
    numpy.ndarray, shape (P + P * P,)
        The state of :func:`ode_rhs`.
    """
    K0, y = _problem(K0, y)
    r0 = y.copy() if f0 is None else y - as_array(f0, "f0", ndim=1)
    if r0.shape != y.shape:
        raise ValueError(f"f0 must have shape {y.shape}")
    return np.concatenate([r0, K0.ravel()])


def unpack_state(state, P: int):
    """``(residual, K)`` from a flat state (or a ``(..., P + P*P)`` stack of them).

    Parameters
    ----------
    state : array_like, shape (..., P + P * P)
        One state of :func:`ode_rhs` or a stack of them.
    P : int
        The number of training points.

    Returns
    -------
    residual : numpy.ndarray, shape (..., P)
        The residuals.
    K : numpy.ndarray, shape (..., P, P)
        The kernels.
    """
    state = np.asarray(state)
    return state[..., :P], state[..., P:].reshape(state.shape[:-1] + (P, P))


def integrate(K0, y, t, eta: float, variant: str = "multiplicative", normalise: bool = False,
              f0=None, rtol: float = 1e-10, atol: float = 1e-14,
              method: str = "DOP853") -> ToyTrajectory:
    """Integrate the toy model with ``scipy.integrate.solve_ivp`` from ``t = 0``.

    Parameters
    ----------
    K0 : array_like, shape (P, P)
        Symmetric initial kernel.
    y : array_like, shape (P,)
        Targets; ``f(0) = f0`` (default 0).
    t : array_like, shape (T,)
        Output times, ``>= 0``, non-decreasing.
    eta : float
        Feature-speed parameter ``eta >= 0`` (``0``: static kernel).
    variant : {"multiplicative", "additive"}
        T1 or T2 (module docstring).
    normalise : bool
        Keep ``Tr K`` fixed.
    f0 : array_like, shape (P,), optional
        Initial outputs (default 0).
    rtol, atol : float, optional
        ``solve_ivp`` tolerances; the state is the residual (not ``f``), so ``atol`` is an
        absolute tolerance on ``y - f`` and on ``K``.
    method : str, optional
        The ``solve_ivp`` method (default ``"DOP853"``).

    Returns
    -------
    ToyTrajectory
        The residual and the kernel at every time of ``t``.

    Raises
    ------
    RuntimeError
        If the integration fails or produces non-finite values.
    """
    K0, y = _problem(K0, y)
    eta = positive_float(eta, "eta", allow_zero=True)
    one_of(variant, "variant", VARIANTS)
    t = np.atleast_1d(as_array(t, "t", ndim=(0, 1)))
    if t.size == 0 or np.any(t < 0) or np.any(np.diff(t) < 0):
        raise ValueError("t must be a non-empty, non-decreasing array of times >= 0")
    if normalise and np.trace(K0) <= 0:
        raise ValueError("trace normalisation needs Tr K0 > 0")
    P = y.size
    x0 = initial_state(K0, y, f0)
    if t[-1] == 0.0:
        Y = np.repeat(x0[None], t.size, axis=0)
    else:
        sol = _solve_ivp(ode_rhs, (0.0, float(t[-1])), x0, method=method, t_eval=t,
                         rtol=positive_float(rtol, "rtol"), atol=positive_float(atol, "atol"),
                         args=(P, eta, variant, normalise))
        if not sol.success or sol.y.shape[1] != t.size or not np.all(np.isfinite(sol.y)):
            raise RuntimeError(f"toy kernel model: integration failed "
                               f"({getattr(sol, 'message', 'non-finite solution')})")
        Y = sol.y.T
    residual, K = unpack_state(Y, P)
    return ToyTrajectory(t=t, residual=residual, kernel=K, y=y, eta=eta, variant=variant,
                         normalise=bool(normalise))


def _solve_ivp(*args, **kwargs):
    """Indirection so tests can make the integrator fail."""
    return solve_ivp(*args, **kwargs)


def _logcosh(x):
    x = np.abs(x)
    return x + np.log1p(np.exp(-2.0 * x)) - np.log(2.0)


def closed_form(t, lam0: float, u0: float, eta: float, variant: str = "multiplicative"):
    """Single-eigenvector solution ``(lam(t), U(t))``, ``U = ||y - f||^2``, ``U(0) = u0 = ||y||^2``.

    T1: ``U = c u0 e^(-2ct) / (eta u0 e^(-2ct) + lam0)``, ``lam = c - eta U``,
    ``c = lam0 + eta u0``.
    T2: ``lam = r tanh(r t + phi0)``, ``U = u0 cosh^2(phi0) / cosh^2(r t + phi0)``,
    ``r = sqrt(lam0^2 + eta u0)``, ``phi0 = atanh(lam0 / r)`` (written overflow-free).
    Untrainable limits: ``lam0 = 0`` under T1 keeps ``U = u0``; ``eta = 0`` gives
    ``U = u0 e^(-2 lam0 t)``.

    Parameters
    ----------
    t : array_like
        Times ``>= 0``; any shape.
    lam0 : float
        The eigenvalue of ``K_0`` on the target's eigenvector, ``>= 0``.
    u0 : float
        ``||y||^2``, ``>= 0``.
    eta : float
        The rate, ``>= 0``.
    variant : {"multiplicative", "additive"}, optional
        T1 (default) or T2.

    Returns
    -------
    lam : numpy.ndarray
        The eigenvalue ``lam(t)``, of the shape of ``t``.
    U : numpy.ndarray
        ``||y - f(t)||^2``, of the shape of ``t``.
    """
    one_of(variant, "variant", VARIANTS)
    t = as_array(t, "t")
    if np.any(t < 0):
        raise ValueError("t must be >= 0")
    lam0 = positive_float(lam0, "lam0", allow_zero=True)
    u0 = positive_float(u0, "u0", allow_zero=True)
    eta = positive_float(eta, "eta", allow_zero=True)
    if u0 == 0.0:
        return np.full(t.shape, lam0), np.zeros(t.shape)
    if eta == 0.0:
        return np.full(t.shape, lam0), u0 * np.exp(-2.0 * lam0 * t)
    if variant == "multiplicative":
        if lam0 == 0.0:
            return np.zeros(t.shape), np.full(t.shape, u0)
        c = lam0 + eta * u0
        decay = np.exp(-2.0 * c * t)
        U = c * u0 * decay / (eta * u0 * decay + lam0)
        return c - eta * U, U
    r = np.sqrt(lam0 ** 2 + eta * u0)
    # atanh(lam0 / r), using r - lam0 = eta u0 / (r + lam0)
    phi0 = 0.5 * (2.0 * np.log(r + lam0) - np.log(eta * u0))
    arg = r * t + phi0
    lam_t = r * np.tanh(arg)
    U = u0 * np.exp(2.0 * (_logcosh(phi0) - _logcosh(arg)))
    return lam_t, U


def final_eigenvalue(lam0: float, u0: float, eta: float, variant: str = "multiplicative") -> float:
    """``lam(inf)``: ``lam0 + eta u0`` (T1) or ``sqrt(lam0^2 + eta u0)`` (T2), by conservation.

    Parameters
    ----------
    lam0 : float
        The initial eigenvalue on the target's eigenvector, ``>= 0``.
    u0 : float
        ``||y||^2``, ``>= 0``.
    eta : float
        The rate, ``>= 0``.
    variant : {"multiplicative", "additive"}, optional
        T1 (default) or T2.

    Returns
    -------
    float
        The final eigenvalue (0 under T1 when ``lam0 = 0``: nothing trains).
    """
    one_of(variant, "variant", VARIANTS)
    lam0 = positive_float(lam0, "lam0", allow_zero=True)
    u0 = positive_float(u0, "u0", allow_zero=True)
    eta = positive_float(eta, "eta", allow_zero=True)
    if variant == "multiplicative":
        return lam0 + eta * u0 if lam0 > 0 else 0.0
    return float(np.sqrt(lam0 ** 2 + eta * u0))


def invariant(lam, U, eta: float, variant: str = "multiplicative"):
    """Conserved quantity of one eigen-direction: ``lam + eta U`` (T1), ``lam^2 + eta U`` (T2).

    Parameters
    ----------
    lam, U : array_like
        The eigenvalue and ``||y - f||^2`` along time, of one shape.
    eta : float
        The rate.
    variant : {"multiplicative", "additive"}, optional
        T1 (default) or T2.

    Returns
    -------
    numpy.ndarray
        The invariant at every time, constant along an exact solution.
    """
    one_of(variant, "variant", VARIANTS)
    lam = np.asarray(lam, dtype=np.float64)
    U = np.asarray(U, dtype=np.float64)
    return lam + eta * U if variant == "multiplicative" else lam ** 2 + eta * U


def static_loss(eigenvalues, coefficients, t) -> np.ndarray:
    """Frozen-kernel loss ``1/2 sum_k y_k^2 e^(-2 lam_k t)`` (``eta = 0``).

    Parameters
    ----------
    eigenvalues : array_like, shape (P,)
        ``lam_k``, the kernel's eigenvalues.
    coefficients : array_like, shape (P,)
        ``y_k``, the target's coefficients in the eigenbasis.
    t : float or array_like, shape (T,)
        Times.

    Returns
    -------
    numpy.ndarray, shape (T,)
        The loss at every time.
    """
    lam = as_array(eigenvalues, "eigenvalues", ndim=1)
    yk = as_array(coefficients, "coefficients", ndim=1)
    t = np.atleast_1d(as_array(t, "t", ndim=(0, 1)))
    if lam.shape != yk.shape:
        raise ValueError("eigenvalues and coefficients must have the same shape")
    return 0.5 * np.exp(-2.0 * t[:, None] * lam[None, :]) @ (yk ** 2)


def static_loss_exponent(a: float, b: float) -> float:
    """``(a - 1) / b``: the frozen-kernel loss decays as ``t^(-(a-1)/b)`` for ``lam_k = k^-b``,
    ``y_k^2 ~ k^-a`` (``a > 1``), while ``1/lam_1 << t << 1/lam_P`` and ``P -> inf``.

    ``sum_k k^-a e^(-2 k^-b t) ~ int k^-a e^(-2 k^-b t) dk = (2t)^(-(a-1)/b) Gamma((a-1)/b) / b``.

    Parameters
    ----------
    a : float
        The target's power-law exponent, ``> 1``.
    b : float
        The spectrum's power-law exponent, ``> 0``.

    Returns
    -------
    float
        ``(a - 1) / b``.
    """
    a = positive_float(a, "a")
    b = positive_float(b, "b")
    if a <= 1.0:
        raise ValueError(f"the power law needs a > 1 (a summable target), got a = {a}")
    return (a - 1.0) / b


def power_law_problem(P: int, b: float = 1.5, a: float = 2.0, seed=0, y_norm: float = 1.0):
    """Kernel ``K0 = Q diag(k^-b) Q^T`` (random orthogonal ``Q``), target power ``y_k^2 ~ k^-a``.

    The coefficients of ``y`` are ``Q^T y`` (positive, ``||y|| = y_norm``). The frozen-kernel
    loss decays as ``t^(-(a-1)/b)`` while ``1/lam_1 << t << 1/lam_P``.

    Parameters
    ----------
    P : int
        The number of training points.
    b : float, optional
        The spectrum's exponent, ``lam_k = k^-b``.
    a : float, optional
        The target's exponent, ``y_k^2 ~ k^-a``.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream of ``Q``.
    y_norm : float, optional
        ``||y||``.

    Returns
    -------
    K0 : numpy.ndarray, shape (P, P)
        The kernel.
    y : numpy.ndarray, shape (P,)
        The target.
    eigenvalues : numpy.ndarray, shape (P,)
        ``k^-b``, descending.
    Q : numpy.ndarray, shape (P, P)
        The eigenvectors, one per column.
    """
    P = positive_int(P, "P")
    b = positive_float(b, "b")
    a = positive_float(a, "a", allow_zero=True)
    y_norm = positive_float(y_norm, "y_norm")
    Q = orthonormal_frame(P, P, seed)
    k = np.arange(1, P + 1, dtype=np.float64)
    lam = k ** (-b)
    coef = k ** (-a / 2.0)
    coef *= y_norm / np.linalg.norm(coef)
    K0 = (Q * lam) @ Q.T
    K0 = 0.5 * (K0 + K0.T)
    return K0, Q @ coef, lam, Q


def observables(traj: ToyTrajectory, y=None) -> dict:
    """Loss, alignment, spectrum and target overlap along a :class:`ToyTrajectory`.

    ``loss = 1/2 ||D||^2``; ``alignment = y^T K y / (||K||_F ||y||^2)``;
    ``eigenvalues`` (descending, ``(T, P)``); ``top_overlap = (phi_1 . y)^2 / ||y||^2`` for the
    top eigenvector ``phi_1`` of ``K(t)``.

    Parameters
    ----------
    traj : ToyTrajectory
        A solution of the toy model.
    y : array_like, shape (P,), optional
        The target to align with (default ``traj.y``).

    Returns
    -------
    dict
        ``{"t": (T,), "loss": (T,), "alignment": (T,), "eigenvalues": (T, P),
        "top_overlap": (T,)}``.
    """
    y = traj.y if y is None else as_array(y, "y", ndim=1)
    K = traj.kernel
    yy = float(y @ y)
    align = np.einsum("i,tij,j->t", y, K, y) / (np.linalg.norm(K, axis=(1, 2)) * yy)
    evals, evecs = np.linalg.eigh(0.5 * (K + np.swapaxes(K, 1, 2)))
    evals = evals[:, ::-1]
    top = evecs[:, :, -1]
    overlap = (top @ y) ** 2 / yy
    return {"t": traj.t, "loss": traj.loss, "alignment": align, "eigenvalues": evals,
            "top_overlap": overlap}


# --- optimal feature evolution: the discrete feature-gradient toy and the matrix law of T1 ---

#: Global order in the output step ``eta`` with which the discrete feature-gradient toy
#: (:func:`iterate_feature_toy`) approaches the multiplicative flow (T1): a one-step map whose
#: local error is ``O(eta^2)``, like forward Euler, so the error at a fixed time is ``O(eta)``.
FEATURE_TOY_ORDER = 1.0


def conserved_matrix(K, residual, eta: float) -> np.ndarray:
    """``K + eta D D^T``, conserved by the multiplicative rule (T1) for any target.

    ``d/dt (K + eta D D^T) = eta (K D D^T + D D^T K) - eta (K D D^T + D D^T K) = 0`` with
    ``dD/dt = -K D``, so the whole matrix (not only one eigenvalue) is a constant of motion.

    Parameters
    ----------
    K : array_like, shape (..., P, P)
        The kernel, at one time or a stack of times.
    residual : array_like, shape (..., P)
        ``D = y - f`` at the same times as ``K``.
    eta : float
        The rate of (T1).

    Returns
    -------
    numpy.ndarray, shape (..., P, P)
        ``K + eta D D^T``.
    """
    K = np.asarray(K, dtype=np.float64)
    D = np.asarray(residual, dtype=np.float64)
    if K.shape[-2:] != (D.shape[-1], D.shape[-1]) or K.shape[:-2] != D.shape[:-1]:
        raise ValueError(f"K of shape {K.shape} does not match residual of shape {D.shape}")
    eta = positive_float(eta, "eta", allow_zero=True)
    return K + eta * D[..., :, None] * D[..., None, :]


def final_kernel(K0, y, eta: float) -> np.ndarray:
    """``K_inf = K0 + eta y y^T``: the end point of (T1) from ``f(0) = 0`` for any target ``y``.

    From :func:`conserved_matrix` with ``D(0) = y`` and ``D(inf) = 0`` (the residual vanishes
    whenever ``K0`` is positive definite). The optimal feature evolution of Shan & Bordelon
    (2021, sec. 3) states ``K_inf = K_0 + gamma y y^T`` with its own rate ``gamma``.

    Parameters
    ----------
    K0 : array_like, shape (P, P)
        Symmetric initial kernel.
    y : array_like, shape (P,)
        Targets.
    eta : float
        The rate of (T1), ``>= 0``.

    Returns
    -------
    numpy.ndarray, shape (P, P)
        ``K0 + eta y y^T``.
    """
    K0, y = _problem(K0, y)
    eta = positive_float(eta, "eta", allow_zero=True)
    return K0 + eta * np.outer(y, y)


def feature_toy_rate(gamma: float) -> float:
    """Rate of (T1) in the continuous limit of :func:`iterate_feature_toy`: ``2 gamma``.

    The step ``Psi <- Psi - gamma grad_Psi 1/2 ||(I - eta Psi^T Psi) D||^2`` is
    ``Psi <- Psi + gamma eta Psi (D r^T + r D^T)`` with ``r = (I - eta K) D = D + O(eta)``; per
    unit time ``t = eta n`` this is ``dPsi/dt = 2 gamma Psi D D^T``, hence
    ``dK/dt = 2 gamma (K D D^T + D D^T K)`` and ``K_inf = K0 + 2 gamma y y^T``.

    Parameters
    ----------
    gamma : float
        The feature learning rate, ``>= 0``.

    Returns
    -------
    float
        ``2 gamma``.
    """
    return 2.0 * positive_float(gamma, "gamma", allow_zero=True)


def feature_toy_max_eta(K0, y, gamma: float) -> float:
    """``2 / lam_max(K0 + 2 gamma y y^T)``: the output step below which the toy stays stable.

    In the continuous limit ``K(t) = K_inf - 2 gamma D D^T <= K_inf`` (:func:`conserved_matrix`),
    so ``eta lam_max(K(t)) < 2``, the gradient-descent stability condition, holds at every step
    once it holds for ``K_inf``.

    Parameters
    ----------
    K0 : array_like, shape (P, P)
        Symmetric initial kernel.
    y : array_like, shape (P,)
        Targets.
    gamma : float
        The feature learning rate, ``>= 0``.

    Returns
    -------
    float
        The largest stable output step.
    """
    K_inf = final_kernel(K0, y, feature_toy_rate(gamma))
    return 2.0 / float(np.linalg.eigvalsh(0.5 * (K_inf + K_inf.T))[-1])


def feature_gradient_step(Psi, residual, eta: float, gamma: float) -> np.ndarray:
    """One step of optimal feature evolution: ``Psi - gamma grad_Psi 1/2 ||r||^2``.

    ``r = (I - eta Psi^T Psi) D`` is the residual after the next output step; its gradient is
    ``-eta Psi (D r^T + r D^T)`` (Shan & Bordelon 2021, sec. 3; the loss of docs/conventions.md,
    with the factor ``1/2``).

    Parameters
    ----------
    Psi : array_like, shape (M, P)
        Features of the ``P`` training points; ``K = Psi^T Psi``.
    residual : array_like, shape (P,)
        ``D = y - f`` before the step.
    eta, gamma : float
        Output learning rate and feature learning rate.

    Returns
    -------
    numpy.ndarray, shape (M, P)
        The features after the step.
    """
    Psi = np.asarray(Psi, dtype=np.float64)
    D = np.asarray(residual, dtype=np.float64)
    r = D - eta * (Psi.T @ (Psi @ D))
    S = np.outer(D, r)
    return Psi + (gamma * eta) * (Psi @ (S + S.T))


def iterate_feature_toy(K0, y, eta: float, gamma: float, steps: int, every: int = 1,
                        blow_up: float = 1e6) -> ToyTrajectory:
    """Iterate the discrete feature-gradient toy from ``Psi_0`` with ``Psi_0^T Psi_0 = K0``.

    Each step: ``Psi_{n+1}`` = :func:`feature_gradient_step` at ``(Psi_n, D_n)``, then the output
    step with the new kernel, ``D_{n+1} = (I - eta K_{n+1}) D_n`` (``D_0 = y``). Time is
    ``t = eta n``; as ``eta -> 0`` the map approaches (T1) with rate :func:`feature_toy_rate`.

    Parameters
    ----------
    K0 : array_like, shape (P, P)
        Symmetric positive semi-definite initial kernel (``Psi_0 = diag(sqrt(lam)) Q^T``).
    y : array_like, shape (P,)
        Targets.
    eta, gamma : float
        Output learning rate ``> 0`` and feature learning rate ``>= 0``.
    steps, every : int
        Number of steps; record every ``every`` steps (and step 0 and the last step).
    blow_up : float
        Divergence threshold on ``loss / loss_0``.

    Returns
    -------
    ToyTrajectory
        With ``eta`` = :func:`feature_toy_rate` ``(gamma)`` and ``variant="multiplicative"``.

    Raises
    ------
    DivergenceError
        At the first step whose loss ``1/2 ||D||^2`` is non-finite or above ``blow_up`` times
        the initial loss.
    """
    from ..base.errors import DivergenceError

    K0, y = _problem(K0, y)
    eta = positive_float(eta, "eta")
    gamma = positive_float(gamma, "gamma", allow_zero=True)
    steps = positive_int(steps, "steps")
    every = positive_int(every, "every")
    lam, Q = np.linalg.eigh(0.5 * (K0 + K0.T))
    if lam[0] < -1e-12 * max(1.0, abs(lam[-1])):
        raise ValueError("K0 must be positive semi-definite")
    Psi = np.sqrt(np.clip(lam, 0.0, None))[:, None] * Q.T
    D = y.copy()
    loss0 = 0.5 * float(D @ D)
    ts, residuals, kernels = [0.0], [D.copy()], [Psi.T @ Psi]
    for n in range(1, steps + 1):
        Psi = feature_gradient_step(Psi, D, eta, gamma)
        K = Psi.T @ Psi
        D = D - eta * (K @ D)
        loss = 0.5 * float(D @ D)
        if not np.isfinite(loss) or loss > blow_up * max(loss0, np.finfo(float).tiny):
            raise DivergenceError(n, loss, f"feature-gradient toy (eta = {eta:g}, gamma = "
                                           f"{gamma:g}) diverged")
        if n % every == 0 or n == steps:
            ts.append(eta * n)
            residuals.append(D.copy())
            kernels.append(K)
    return ToyTrajectory(t=np.array(ts), residual=np.array(residuals), kernel=np.array(kernels),
                         y=y, eta=feature_toy_rate(gamma), variant="multiplicative",
                         normalise=False)
