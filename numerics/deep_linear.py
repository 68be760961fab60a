"""Finite deep linear networks in the singular-mode basis of a linear task.

For a task ``Sigma_yx = U diag(s) V^T`` (Saxe, McClelland & Ganguli 2014; Shan & Bordelon 2021,
sec. 4) a linear network ``f(x) = W_L ... W_1 x`` (standard parameterization) is measured by its
end-to-end mode strengths ``u_alpha = u_alpha^T W_L ... W_1 v_alpha``, which the balanced mode
ODE of :mod:`ntkdyn.theory.deep_linear_modes` predicts. This module builds the decoupled
initialisation that makes GD follow that ODE mode by mode, reads the strengths off trained
weights, and aligns simulated trajectories with the ODE by a per-mode time shift.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from ..base.samplers import orthonormal_frame
from ..base.validation import as_array, float_arrays, positive_float, positive_int
from ..theory.deep_linear_modes import mode_dynamics, mode_time


def decoupled_init(depth: int, U, V, hidden: int, a0: float, seed) -> list[np.ndarray]:
    """Balanced decoupled weights with every mode at per-layer strength ``a0``.

    ``W_1 = a0 R_2 V^T``, ``W_l = a0 R_{l+1} R_l^T``, ``W_L = a0 U R_L^T`` with Haar-random
    orthonormal frames ``R_l`` of shape ``(hidden, m)``; the end-to-end strength of every mode
    is ``a0^L``.

    Parameters
    ----------
    depth : int
        Number of weight matrices ``L``.
    U : array_like, shape (k, m)
        Orthonormal output directions of the task.
    V : array_like, shape (d, m)
        Orthonormal input directions of the task.
    hidden : int
        Width of every hidden layer (``>= m``).
    a0 : float
        Per-layer strength.
    seed : int, sequence of int or numpy.random.Generator
        Draws the frames (a Generator's stream is continued).

    Returns
    -------
    list of numpy.ndarray
        ``[W_1, ..., W_L]``: ``W_1`` ``(hidden, d)``, ``W_l`` ``(hidden, hidden)``, ``W_L``
        ``(k, hidden)`` (``(k, d)`` for ``L = 1``).
    """
    depth = positive_int(depth, "depth")
    hidden = positive_int(hidden, "hidden")
    a0 = positive_float(a0, "a0")
    U = as_array(U, "U", ndim=2)
    V = as_array(V, "V", ndim=2)
    m = U.shape[1]
    if V.shape[1] != m:
        raise ValueError(f"V must have {m} columns like U, got shape {V.shape}")
    R = [None] + [orthonormal_frame(hidden, m, seed) for _ in range(depth - 1)]
    Ws = []
    for l in range(depth):
        left = U if l == depth - 1 else R[l + 1]
        right = V if l == 0 else R[l]
        Ws.append(a0 * left @ right.T)
    return Ws


def mode_strengths(params, U, V) -> np.ndarray:
    """``u_alpha = u_alpha^T W_L ... W_1 v_alpha`` for every mode.

    A parameter list with biases (any array not 2-D) is refused: the mode basis is that of a
    bias-free linear network.

    Parameters
    ----------
    params : list of numpy.ndarray
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})``.
    U : array_like, shape (k, m)
        The task's output directions.
    V : array_like, shape (d, m)
        The task's input directions.

    Returns
    -------
    numpy.ndarray, shape (m,)
        The end-to-end strength of every mode.
    """
    params = float_arrays(params, "params", keep_float32=True)
    for l, Wl in enumerate(params):
        if np.ndim(Wl) != 2:
            raise ValueError(f"params must be the weight matrices [W_1, ..., W_L] of a bias-free "
                             f"linear network, got params[{l}] of shape {np.shape(Wl)}")
    if not params:
        raise ValueError("params must hold at least one weight matrix")
    U = as_array(U, "U", ndim=2, keep_float32=True)
    V = as_array(V, "V", ndim=2, keep_float32=True)
    W = params[0]
    for Wl in params[1:]:
        W = Wl @ W
    return np.einsum("ka,kd,da->a", U, W, V)


def fit_time_shifts(s, depth: int, t, u, lam=1.0):
    """Best time shift per mode: ``min_tau max_t |u_gd(t) - u_ode(t + tau)| / (s / lam)``.

    The reference ODE solution starts at ``u0 = 1e-9 s / lam`` (below any simulated strength),
    so the shifts ``tau`` are positive; the search starts at the difference of half-times.
    A fitted shift absorbs any error of the ODE's time scale: use it to compare shapes, not
    rates.

    Parameters
    ----------
    s : array_like, shape (m,)
        Singular values of the task.
    depth : int
        Number of weight matrices ``L``.
    t : array_like, shape (T,)
        Recorded gradient-flow times.
    u : array_like, shape (T, m)
        Simulated mode strengths.
    lam : float or array_like, shape (m,)
        Input variances along the modes (1 for whitened inputs).

    Returns
    -------
    shifts : numpy.ndarray, shape (m,)
        The fitted shift ``tau`` of every mode.
    shifted : numpy.ndarray, shape (T, m)
        The ODE solutions at ``t + tau``.
    errors : numpy.ndarray, shape (m,)
        The remaining ``max_t |u_gd - u_ode| / (s / lam)`` of every mode.
    """
    s = as_array(s, "s", ndim=1)
    depth = positive_int(depth, "depth")
    t = as_array(t, "t", ndim=1)
    u = as_array(u, "u", ndim=2)
    m = len(s)
    if u.shape != (t.shape[0], m):
        raise ValueError(f"u must have shape (len(t), len(s)) = {(t.shape[0], m)}, got {u.shape}")
    lam = as_array(lam, "lam", ndim=(0, 1))
    if lam.ndim == 1 and lam.shape != (m,):
        raise ValueError(f"lam must be a number or have shape ({m},), got {lam.shape}")
    lam = np.broadcast_to(lam, (m,))
    fixed = s / lam
    u_ref0 = 1e-9 * fixed
    t_half_ref = mode_time(s, u_ref0, fixed / 2, depth, lam)
    shifts, errs = np.empty(m), np.empty(m)
    shifted = np.empty_like(u)
    for a in range(m):
        above = np.nonzero(u[:, a] >= fixed[a] / 2)[0]
        t_half = t[above[0]] if above.size else t[-1]
        tau0 = t_half_ref[a] - t_half

        def ode(tau, a=a):
            times = np.maximum(t + tau, 0.0)
            return mode_dynamics([s[a]], u_ref0[a], depth, times, lam=lam[a])[:, 0]

        def err(tau, a=a):
            return np.max(np.abs(u[:, a] - ode(tau))) / fixed[a]

        width = 0.5 * t_half + 1.0
        res = minimize_scalar(err, bounds=(max(tau0 - width, 0.0), tau0 + width), method="bounded",
                              options={"xatol": 1e-6})
        shifts[a], errs[a] = res.x, res.fun
        shifted[:, a] = ode(res.x)
    return shifts, shifted, errs
