"""Transition to linearity: predicted scalings and bounds (Liu, Zhu & Belkin 2020).

arXiv:2010.01092. The paper's statements are asymptotic; the exact finite-width forms below are
derived here and checked by tests/theory/test_linearity.py. Networks are in the NTK
parameterization of docs/conventions.md, two-layer
``f(x) = (1/sqrt(m)) sum_j v_j phi(w_j . x / sqrt(d))`` with ``v_j, w_j`` i.i.d. ``N(0, 1)``.

* **Two-layer Hessian at initialization** (the paper's two-layer example). Unit ``j``
  contributes the eigenvalue ``lambda_j = G_j / sqrt(m)`` with the width-free variable::

      G = (|v| alpha + sqrt(v^2 alpha^2 + 4 beta^2)) / 2,  alpha = |phi''(z)| |x|^2 / d,
      beta = |phi'(z)| |x| / sqrt(d),  z ~ N(0, |x|^2 / d),  v ~ N(0, 1),

  so ``||H|| = max_j G_j / sqrt(m)``: a maximum of ``m`` i.i.d. variables over ``sqrt(m)``.
  ``P(G > t | z) = 2 Phi_bar((t^2 - beta^2) / (t alpha))`` for ``t > beta`` gives the exact law
  of ``||H||`` (:func:`hessian_norm_quantile`); the Gaussian tail of ``v`` makes it grow like
  ``sqrt(2 log m) sup|phi''| |x|^2 / d``, hence ``||H|| = Theta(sqrt(log m) / sqrt(m))``,
  while ``||grad f||^2 -> E[phi(z)^2] + (|x|^2/d) E[phi'(z)^2] = Theta(1)``.
  ReLU (``phi'' = 0``): ``||H|| = |x| / sqrt(m d)`` exactly.
* **Kernel change over a ball** (the paper's Hessian-norm criterion): ``||H|| <= eps`` on
  ``B(w_0, R)`` gives ``|f - f_lin| <= R^2 eps / 2`` and
  ``|K_xz(w) - K_xz(w_0)| <= eps R (|grad f(w_0; x)| + |grad f(w_0; z)|) + eps^2 R^2``.
* **Non-linear output** (the paper's first counter-example): ``g = psi(f)`` has
  ``H_g = psi''(f) grad f grad f^T + psi'(f) H_f``; the rank-one term has norm
  ``|psi''(f)| |grad f|^2 = Theta(1)`` whatever the width, and
  ``K_g(x, z) = psi'(f(x)) psi'(f(z)) K_f(x, z)`` changes by ``Theta(1)`` as ``f`` moves to
  the labels.
* **Bottleneck** (the paper's second counter-example):
  ``||H^(l1,l2)|| <= ||T||_{2,2,1} ||df/dalpha||_inf``; a layer of fixed width ``b`` has
  ``||df/dalpha||_inf >= ||df/dalpha||_2 / sqrt(b) = Theta(1)``, and the block of the weights
  entering bottleneck unit ``k`` is
  ``[(df/dalpha_k) phi''(h_k) + (d^2f/dalpha_k^2) phi'(h_k)^2] grad h_k grad h_k^T``, of norm
  ``Theta(1)``.
* **Lazy weights** (contrasted with lazy training in the paper): gradient descent on the
  linearised model moves the weights by ``||w_T - w_0||^2 = r_0^T P K^{-1} P r_0`` with
  ``P = I - (I - lr K / n)^T`` (``O(1)``), while ``||w_0|| ~ sqrt(#params)``, so the relative
  change falls like ``m^{-1/2}``.

Only numpy and scipy are imported; activation derivatives are passed in as callables.
"""
from __future__ import annotations

import functools
import math
import numbers
from typing import Callable

import numpy as np
from scipy import optimize, special

from ..base.validation import as_array, as_generator, positive_float, positive_int

ArrayFn = Callable[[np.ndarray], np.ndarray]

__all__ = [
    "SCALING_EXPONENTS",
    "gaussian_expectation",
    "unit_eigenvalues",
    "unit_norm_tail",
    "hessian_norm_quantile",
    "hessian_norm_mean",
    "hessian_norm_asymptotic",
    "relu_hessian_norm",
    "gradient_norm_limit",
    "frobenius_norm_sq_limit",
    "taylor_remainder_bound",
    "kernel_entry_change_bound",
    "kernel_matrix_change_bound",
    "nonlinear_output_hessian",
    "nonlinear_output_norm_bounds",
    "nonlinear_output_kernel",
    "tanh_output_kernel_change",
    "bottleneck_block_norm",
    "infinity_norm_lower_bound",
    "norm_221_at",
    "norm_221_lower",
    "linearized_residuals",
    "linearized_weight_change",
    "steps_to_loss_fraction",
    "initial_weight_norm",
]

#: Predicted log-log slopes against the width ``m`` (NTK parameterization, fixed depth, R = O(1)).
SCALING_EXPONENTS = {
    "hessian_norm": -0.5,             # times sqrt(log m) for smooth activations
    "gradient_norm": 0.0,
    "hessian_frobenius": 0.0,         # the Frobenius norm does not vanish with width
    "kernel_change_bound": -0.5,      # an upper bound; NTK-parameterized GD measures close to -1
    # The change itself, linear output: the first-order change averages to zero over the signs of
    # the output weights, leaving O(1/m) (Dyer & Gur-Ari 2020; Huang & Yau 2020).
    "kernel_change": -1.0,
    "weight_change": 0.0,
    "relative_weight_change": -0.5,
    "nonlinear_output_kernel_change": 0.0,
    "bottleneck_kernel_change": 0.0,
}


# ============================================================================ helpers
@functools.lru_cache(maxsize=16)
def _hermite_nodes(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite nodes and weights normalised to ``N(0, 1)`` (cached)."""
    nodes, weights = special.roots_hermitenorm(order)
    return nodes, weights / math.sqrt(2.0 * math.pi)


@functools.lru_cache(maxsize=4)
def _legendre_nodes(order: int) -> tuple[np.ndarray, np.ndarray]:
    return special.roots_legendre(order)


def gaussian_expectation(fn: ArrayFn, scale: float = 1.0, order: int = 120) -> float:
    """``E[fn(z)]`` for ``z ~ N(0, scale^2)`` by Gauss-Hermite quadrature of ``order`` nodes.

    Parameters
    ----------
    fn : callable
        A vectorised function of ``z`` (array in, array of the same shape out).
    scale : float, optional
        The standard deviation of ``z``, ``>= 0``.
    order : int, optional
        The number of quadrature nodes.

    Returns
    -------
    float
        The expectation.
    """
    scale = positive_float(scale, "scale", allow_zero=True)
    order = positive_int(order, "order")
    nodes, weights = _hermite_nodes(order)
    return float(np.sum(weights * fn(scale * nodes)))


def _counts(value, name, minimum=0):
    """An int ``>= minimum``, or an array of them; returned unconverted (an int stays an int)."""
    if isinstance(value, numbers.Number) and not isinstance(value, np.ndarray):
        return positive_int(value, name, minimum=minimum)
    if isinstance(value, np.ndarray) and (value.dtype == bool
                                          or not np.issubdtype(value.dtype, np.number)):
        raise TypeError(f"{name} must be an integer or an array of integers, got dtype "
                        f"{value.dtype}")
    arr = as_array(value, name)
    if np.any(arr != np.round(arr)) or np.any(arr < minimum):
        raise ValueError(f"{name} must hold integers >= {minimum}, got {value!r}")
    return value


def _nonnegative(value, name):
    """``value`` as a float64 array (any shape) of finite numbers ``>= 0``."""
    arr = as_array(value, name)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return arr


def _input_scale(x_norm, d):
    x_norm = positive_float(x_norm, "x_norm", allow_zero=True)
    d = positive_int(d, "d")
    return x_norm, d, x_norm / math.sqrt(d)


# ============================================================================ two-layer Hessian
def unit_eigenvalues(v, dphi_z, d2phi_z, x_norm: float, m: int, d: int):
    """The two non-zero eigenvalues of hidden unit ``j``'s Hessian block (module docstring).

    On ``span{x, e_v}`` the block is ``[[a |x|^2, b |x|], [b |x|, 0]]`` with
    ``a = v phi''(z) / (sqrt(m) d)``, ``b = phi'(z) / sqrt(m d)``, so the eigenvalues are
    ``(lambda_+, lambda_-) = (a|x|^2 +- sqrt(a^2 |x|^4 + 4 b^2 |x|^2)) / 2``.

    Parameters
    ----------
    v : array_like
        Output weights ``v_j``; any shape, broadcast against ``dphi_z`` and ``d2phi_z``.
    dphi_z, d2phi_z : array_like
        ``phi'(z_j)`` and ``phi''(z_j)`` at the units' pre-activations.
    x_norm : float
        ``|x|``, the input's norm.
    m : int
        The width.
    d : int
        The input dimension.

    Returns
    -------
    lambda_plus, lambda_minus : numpy.ndarray
        The two eigenvalues of every unit's block, of the broadcast shape of the inputs.
    """
    m, d = positive_int(m, "m"), positive_int(d, "d")
    x_norm = positive_float(x_norm, "x_norm", allow_zero=True)
    p = np.asarray(v) * np.asarray(d2phi_z) * x_norm ** 2 / (math.sqrt(m) * d)
    q = np.asarray(dphi_z) * x_norm / math.sqrt(m * d)
    root = np.sqrt(p * p + 4.0 * q * q)
    return 0.5 * (p + root), 0.5 * (p - root)


def unit_norm_tail(t, dphi: ArrayFn, d2phi: ArrayFn, x_norm: float, d: int,
                   order: int = 200) -> np.ndarray:
    """``P(G > t)`` for the width-free unit variable ``G = sqrt(m) max|eig(B_j)|``.

    ``G = (|v| alpha + sqrt(v^2 alpha^2 + 4 beta^2)) / 2`` is increasing in ``|v|``, so given
    ``z``: ``P(G > t | z) = 2 Phi_bar((t^2 - beta^2) / (t alpha))`` for ``t > beta``, 1 otherwise
    (``alpha = 0``: ``1[beta > t]``); ``z ~ N(0, |x|^2/d)`` is integrated by Gauss-Hermite.

    Parameters
    ----------
    t : float or array_like
        Thresholds; any shape.
    dphi, d2phi : callable
        ``phi'`` and ``phi''``, vectorised.
    x_norm : float
        ``|x|``, the input's norm.
    d : int
        The input dimension.
    order : int, optional
        The number of Gauss-Hermite nodes.

    Returns
    -------
    numpy.ndarray
        ``P(G > t)``, of the shape of ``t``.
    """
    x_norm, d, s = _input_scale(x_norm, d)
    shape = np.shape(t)
    t = np.atleast_1d(np.asarray(t, dtype=np.float64)).ravel()
    nodes, weights = _hermite_nodes(positive_int(order, "order"))
    z = s * nodes
    alpha = np.abs(d2phi(z)) * x_norm ** 2 / d
    beta = np.abs(dphi(z)) * s
    tt = t[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        arg = (tt * tt - beta * beta) / (tt * alpha)
        cond = np.where(alpha > 0, 2.0 * special.ndtr(-arg), 0.0)
    cond = np.where(tt > beta, cond, 1.0)
    return (cond @ weights).reshape(shape)


def hessian_norm_quantile(m: int, dphi: ArrayFn, d2phi: ArrayFn, x_norm: float, d: int,
                          quantile: float = 0.5, order: int = 200) -> float:
    """Quantile of ``||H||`` at initialization for a two-layer net of width ``m`` (exact law).

    ``P(||H|| <= t / sqrt(m)) = (1 - P(G > t))^m``; solves ``P(G > t) = 1 - q^{1/m}``.

    Parameters
    ----------
    m : int
        The width.
    dphi, d2phi : callable
        ``phi'`` and ``phi''``, vectorised.
    x_norm : float
        ``|x|``, the input's norm.
    d : int
        The input dimension.
    quantile : float, optional
        ``q`` in ``(0, 1)`` (default 0.5: the median).
    order : int, optional
        The number of Gauss-Hermite nodes.

    Returns
    -------
    float
        The ``q``-quantile of ``||H||``.
    """
    m = positive_int(m, "m")
    q = positive_float(quantile, "quantile")
    if not q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    target = -math.expm1(math.log(q) / m)  # 1 - q^{1/m}, accurate for large m

    def gap(log_t):
        return math.log(max(float(unit_norm_tail(math.exp(log_t), dphi, d2phi, x_norm, d, order)),
                            1e-300)) - math.log(target)

    lo, hi = -30.0, 5.0
    while gap(hi) > 0:
        hi += 5.0
    # The tail is 1 below min beta: move lo up to where the tail starts to fall.
    if gap(lo) < 0:  # pragma: no cover - only for q^{1/m} tiny
        return 0.0
    return math.exp(optimize.brentq(gap, lo, hi, xtol=1e-13)) / math.sqrt(m)


def hessian_norm_mean(m: int, dphi: ArrayFn, d2phi: ArrayFn, x_norm: float, d: int,
                      order: int = 200) -> float:
    """``E||H||`` at initialization, ``(1/sqrt(m)) int_0^inf 1 - (1 - P(G > t))^m dt`` (exact).

    Parameters
    ----------
    m : int
        The width.
    dphi, d2phi : callable
        ``phi'`` and ``phi''``, vectorised.
    x_norm : float
        ``|x|``, the input's norm.
    d : int
        The input dimension.
    order : int, optional
        The number of Gauss-Hermite nodes.

    Returns
    -------
    float
        The mean Hessian norm.
    """
    m = positive_int(m, "m")

    def above(t):  # P(max_j G_j > t), without cancellation when P(G > t) is tiny
        tail = np.minimum(unit_norm_tail(t, dphi, d2phi, x_norm, d, order), 1.0)
        with np.errstate(divide="ignore"):
            return -np.expm1(m * np.log1p(-tail))

    # Gauss-Legendre on [0, t_med] and [t_med, t_hi], t_hi where the maximum is negligible.
    t_med = hessian_norm_quantile(m, dphi, d2phi, x_norm, d, 0.5, order) * math.sqrt(m)
    t_hi = t_med
    while above(np.array([t_hi]))[0] > 1e-16:
        t_hi *= 1.25
    nodes, weights = _legendre_nodes(400)
    total = 0.0
    for lo, hi in ((0.0, t_med), (t_med, t_hi)):
        t = 0.5 * (hi - lo) * nodes + 0.5 * (hi + lo)
        total += 0.5 * (hi - lo) * float(weights @ above(t))
    return total / math.sqrt(m)


def hessian_norm_asymptotic(m, sup_d2phi: float, x_norm: float, d: int):
    """Leading order ``sqrt(2 log m) sup|phi''| |x|^2 / (d sqrt(m))`` of ``||H||`` (smooth phi).

    Parameters
    ----------
    m : int or array_like
        Widths.
    sup_d2phi : float
        ``sup |phi''|``.
    x_norm : float
        ``|x|``, the input's norm.
    d : int
        The input dimension.

    Returns
    -------
    numpy.ndarray
        The leading-order norm, of the shape of ``m``.
    """
    x_norm, d, _ = _input_scale(x_norm, d)
    m = np.asarray(m, dtype=np.float64)
    return np.sqrt(2.0 * np.log(m)) * sup_d2phi * x_norm ** 2 / (d * np.sqrt(m))


def relu_hessian_norm(m, d: int, x_norm: float):
    """``||H|| = |x| / sqrt(m d)`` for a two-layer ReLU network with one active unit or more.

    Parameters
    ----------
    m : int or array_like
        Widths.
    d : int
        The input dimension.
    x_norm : float
        ``|x|``, the input's norm.

    Returns
    -------
    numpy.ndarray
        ``||H||``, of the shape of ``m``.
    """
    m = _counts(m, "m", minimum=1)
    x_norm, d, _ = _input_scale(x_norm, d)
    return x_norm / np.sqrt(np.asarray(m, dtype=np.float64) * d)


def gradient_norm_limit(phi: ArrayFn, dphi: ArrayFn, x_norm: float, d: int) -> float:
    """``lim ||grad f|| = sqrt(E[phi(z)^2] + (|x|^2/d) E[phi'(z)^2])``, ``z ~ N(0, |x|^2/d)``.

    Parameters
    ----------
    phi, dphi : callable
        ``phi`` and ``phi'``, vectorised.
    x_norm : float
        ``|x|``, the input's norm.
    d : int
        The input dimension.

    Returns
    -------
    float
        The infinite-width gradient norm.
    """
    x_norm, d, s = _input_scale(x_norm, d)
    return math.sqrt(gaussian_expectation(lambda z: phi(z) ** 2, s)
                     + s * s * gaussian_expectation(lambda z: dphi(z) ** 2, s))


def frobenius_norm_sq_limit(dphi: ArrayFn, d2phi: ArrayFn, x_norm: float, d: int) -> float:
    """``lim ||H||_F^2 = E[phi''(z)^2] |x|^4/d^2 + 2 E[phi'(z)^2] |x|^2/d`` (does not vanish).

    Parameters
    ----------
    dphi, d2phi : callable
        ``phi'`` and ``phi''``, vectorised.
    x_norm : float
        ``|x|``, the input's norm.
    d : int
        The input dimension.

    Returns
    -------
    float
        The infinite-width squared Frobenius norm of the Hessian.
    """
    x_norm, d, s = _input_scale(x_norm, d)
    return (gaussian_expectation(lambda z: d2phi(z) ** 2, s) * s ** 4
            + 2.0 * gaussian_expectation(lambda z: dphi(z) ** 2, s) * s ** 2)


# ============================================================================ bounds on a ball
def taylor_remainder_bound(R, hessian_sup):
    """``|f(w) - f_lin(w)| <= R^2 sup_B ||H|| / 2`` on the ball ``B(w_0, R)``.

    Parameters
    ----------
    R : float or array_like
        The ball's radius.
    hessian_sup : float or array_like
        ``sup ||H||`` over the ball (broadcast against ``R``).

    Returns
    -------
    numpy.ndarray
        The bound, of the broadcast shape.
    """
    R = _nonnegative(R, "R")
    hessian_sup = _nonnegative(hessian_sup, "hessian_sup")
    return 0.5 * R ** 2 * hessian_sup


def kernel_entry_change_bound(eps, R, grad_norm_x, grad_norm_z):
    """``|K_xz(w) - K_xz(w_0)| <= eps R (|grad f(w_0;x)| + |grad f(w_0;z)|) + eps^2 R^2``.

    From ``||grad f(w) - grad f(w_0)|| <= eps R`` (mean-value theorem, ``||H|| <= eps`` on the
    ball).

    Parameters
    ----------
    eps : float or array_like
        ``sup ||H||`` over the ball.
    R : float or array_like
        The ball's radius.
    grad_norm_x, grad_norm_z : float or array_like
        ``|grad f(w_0; x)|`` and ``|grad f(w_0; z)|`` (all four arguments broadcast).

    Returns
    -------
    numpy.ndarray
        The bound on the kernel entry's change.
    """
    eps = _nonnegative(eps, "eps")
    R = _nonnegative(R, "R")
    grad_norm_x = as_array(grad_norm_x, "grad_norm_x")
    grad_norm_z = as_array(grad_norm_z, "grad_norm_z")
    return eps * R * (grad_norm_x + grad_norm_z) + (eps * R) ** 2


def kernel_matrix_change_bound(eps: float, R: float, grad_norms) -> float:
    """``||K(w) - K(w_0)||_F <= ||[entry bounds]_ij||_F = O(n eps R)`` on ``n`` inputs.

    Parameters
    ----------
    eps : float
        ``sup ||H||`` over the ball.
    R : float
        The ball's radius.
    grad_norms : array_like, shape (n,)
        ``|grad f(w_0; x_i)|`` for every input.

    Returns
    -------
    float
        The bound on the Frobenius norm of the kernel's change.
    """
    g = as_array(grad_norms, "grad_norms", ndim=1)
    return float(np.linalg.norm(kernel_entry_change_bound(eps, R, g[:, None], g[None, :])))


# ============================================================================ non-linear output
def nonlinear_output_hessian(grad_f, H_f, dpsi_f: float, d2psi_f: float) -> np.ndarray:
    """``H_g = psi''(f) grad f grad f^T + psi'(f) H_f`` for ``g = psi(f)`` (dense, small nets).

    Parameters
    ----------
    grad_f : array_like, shape (P,)
        ``grad f`` with respect to the ``P`` parameters.
    H_f : array_like, shape (P, P)
        The Hessian of ``f``.
    dpsi_f, d2psi_f : float
        ``psi'(f)`` and ``psi''(f)``.

    Returns
    -------
    numpy.ndarray, shape (P, P)
        ``H_g``.
    """
    grad_f = as_array(grad_f, "grad_f", ndim=1)
    H_f = as_array(H_f, "H_f", ndim=2)
    return d2psi_f * np.outer(grad_f, grad_f) + dpsi_f * H_f


def nonlinear_output_norm_bounds(grad_norm, H_f_norm, dpsi_f, d2psi_f):
    """``(rank_one, scaled, lower, upper)`` for ``||H_g||`` of ``g = psi(f)``.

    ``rank_one = |psi''(f)| |grad f|^2`` (width-independent), ``scaled = |psi'(f)| ||H_f||``
    (``O~(1/sqrt(m))``), ``lower = rank_one - scaled <= ||H_g|| <= rank_one + scaled = upper``.

    Parameters
    ----------
    grad_norm : float or array_like
        ``|grad f|``.
    H_f_norm : float or array_like
        ``||H_f||``.
    dpsi_f, d2psi_f : float or array_like
        ``psi'(f)`` and ``psi''(f)`` (all four arguments broadcast).

    Returns
    -------
    rank_one, scaled, lower, upper : numpy.ndarray
        The two terms and the bounds on ``||H_g||``, of the broadcast shape.
    """
    rank_one = np.abs(d2psi_f) * np.asarray(grad_norm) ** 2
    scaled = np.abs(dpsi_f) * np.asarray(H_f_norm)
    return rank_one, scaled, rank_one - scaled, rank_one + scaled


def nonlinear_output_kernel(K_f, dpsi_fx, dpsi_fz=None) -> np.ndarray:
    """``K_g(x, z) = psi'(f(x)) psi'(f(z)) K_f(x, z)``.

    Parameters
    ----------
    K_f : array_like, shape (n, n2)
        The kernel of ``f``.
    dpsi_fx : array_like, shape (n,)
        ``psi'(f(x_i))``.
    dpsi_fz : array_like, shape (n2,), optional
        ``psi'(f(z_j))`` (default: ``dpsi_fx``, a symmetric kernel).

    Returns
    -------
    numpy.ndarray, shape (n, n2)
        ``K_g``.
    """
    K_f = as_array(K_f, "K_f", ndim=2)
    a = as_array(dpsi_fx, "dpsi_fx", ndim=1)
    b = a if dpsi_fz is None else as_array(dpsi_fz, "dpsi_fz", ndim=1)
    if K_f.shape != (a.size, b.size):
        raise ValueError(f"K_f must have shape ({a.size}, {b.size}), got {K_f.shape}")
    return a[:, None] * K_f * b[None, :]


def tanh_output_kernel_change(K0, outputs0, targets) -> float:
    """Predicted ``||K_g(T) - K_g(0)||_F / ||K_g(0)||_F`` for ``g = tanh(f)`` fitted to ``targets``.

    With ``K_f`` constant (a wide linear-output ``f``), ``K_g = psi'(f(x)) psi'(f(z)) K_f`` and
    ``psi'(f) = 1 - g^2``: moving ``g`` from ``outputs0`` to ``targets`` gives
    ``K_g(T) = D K_g(0) D`` with ``D = diag((1 - y^2) / (1 - g_0^2))``, a ``Theta(1)`` change at
    every width (Liu, Zhu & Belkin 2020, the non-linear output counter-example).

    Parameters
    ----------
    K0 : array_like, shape (n, n)
        ``K_g(0)``, the kernel of ``g`` at initialisation.
    outputs0 : array_like, shape (n,)
        ``g(w_0; x_i)``, in ``(-1, 1)``.
    targets : array_like, shape (n,)
        ``y_i``.

    Returns
    -------
    float
        The predicted relative change of the kernel.
    """
    K0 = as_array(K0, "K0", ndim=2)
    g0 = as_array(outputs0, "outputs0", ndim=1)
    y = as_array(targets, "targets", ndim=1)
    KT = nonlinear_output_kernel(K0, (1.0 - y * y) / (1.0 - g0 * g0))
    return float(np.linalg.norm(KT - K0) / np.linalg.norm(K0))


# ============================================================================ bottleneck
def bottleneck_block_norm(dfdalpha_k, d2fdalpha2_k, dphi_hk, d2phi_hk, grad_h_norm_sq):
    """``||H_{W_k W_k}||`` for the weights ``W_k`` entering unit ``k`` of a bottleneck layer.

    ``W_k`` acts on ``f`` only through ``alpha_k = phi(h_k)``, so its block is the rank-one
    ``[(df/dalpha_k) phi''(h_k) + (d^2f/dalpha_k^2) phi'(h_k)^2] grad h_k grad h_k^T`` of norm
    ``|...| ||grad_{W_k} h_k||^2``, a lower bound on ``||H||``. With the bottleneck width ``b``
    fixed, ``df/dalpha_k`` and ``d^2f/dalpha_k^2`` are ``Theta(1)`` (a sum of ``m`` terms of random
    sign and size ``1/sqrt(m)``) and ``||grad h_k||^2 = |alpha_prev|^2 / n_prev = Theta(1)``.

    Parameters
    ----------
    dfdalpha_k, d2fdalpha2_k : float or array_like
        ``df/dalpha_k`` and ``d^2f/dalpha_k^2``.
    dphi_hk, d2phi_hk : float or array_like
        ``phi'(h_k)`` and ``phi''(h_k)``.
    grad_h_norm_sq : float or array_like
        ``||grad_{W_k} h_k||^2`` (all arguments broadcast).

    Returns
    -------
    numpy.ndarray
        The block's norm, of the broadcast shape.
    """
    coef = (np.asarray(dfdalpha_k) * np.asarray(d2phi_hk)
            + np.asarray(d2fdalpha2_k) * np.asarray(dphi_hk) ** 2)
    return np.abs(coef) * np.asarray(grad_h_norm_sq)


def infinity_norm_lower_bound(l2_norm, b: int):
    """``||u||_inf >= ||u||_2 / sqrt(b)`` for ``u`` in ``R^b``: away from 0 for fixed ``b``.

    Parameters
    ----------
    l2_norm : float or array_like
        ``||u||_2``.
    b : int
        The dimension of ``u``.

    Returns
    -------
    numpy.ndarray
        The lower bound, of the shape of ``l2_norm``.
    """
    return np.asarray(l2_norm, dtype=np.float64) / math.sqrt(positive_int(b, "b"))


def norm_221_at(T, a, b) -> float:
    """``sum_k |a^T T[:, :, k] b|``: the (2,2,1) objective at unit vectors ``a``, ``b``.

    Parameters
    ----------
    T : array_like, shape (p, q, r)
        The tensor.
    a : array_like, shape (p,)
        A unit vector.
    b : array_like, shape (q,)
        A unit vector.

    Returns
    -------
    float
        The objective.
    """
    T = as_array(T, "T", ndim=3)
    a = as_array(a, "a", ndim=1)
    b = as_array(b, "b", ndim=1)
    if a.shape[0] != T.shape[0] or b.shape[0] != T.shape[1]:
        raise ValueError(f"a and b must have {T.shape[0]} and {T.shape[1]} entries (the first "
                         f"two dimensions of T), got {a.shape[0]} and {b.shape[0]}")
    return float(np.sum(np.abs(np.einsum("i,ijk,j->k", a, T, b))))


def norm_221_lower(T, restarts: int = 8, iters: int = 100, seed=0) -> float:
    """A lower estimate of ``||T||_{2,2,1} = sup_{|a|=|b|=1} sum_k |a^T T_k b|``.

    Alternates signs ``s_k = sign(a^T T_k b)`` with the top singular pair of ``sum_k s_k T_k``
    (each step does not decrease the objective); the best of ``restarts`` random starts.

    Parameters
    ----------
    T : array_like, shape (p, q, r)
        The tensor.
    restarts : int, optional
        The number of random sign starts.
    iters : int, optional
        The most alternations per start.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream of the starts.

    Returns
    -------
    float
        The best objective found, ``<= ||T||_{2,2,1}``.
    """
    T = as_array(T, "T", ndim=3)
    rng = as_generator(seed)
    best = 0.0
    for _ in range(positive_int(restarts, "restarts")):
        s = rng.choice([-1.0, 1.0], size=T.shape[2])
        for _ in range(positive_int(iters, "iters")):
            U, _, Vt = np.linalg.svd(T @ s)
            a, b = U[:, 0], Vt[0]
            new = np.sign(np.einsum("i,ijk,j->k", a, T, b))
            new[new == 0] = 1.0
            if np.array_equal(new, s):
                break
            s = new
        best = max(best, norm_221_at(T, a, b))
    return best


# ============================================================================ lazy weights
def _eig(K0):
    K0 = as_array(K0, "K0", ndim=2)
    if K0.shape[0] != K0.shape[1]:
        raise ValueError(f"K0 must be square, got {K0.shape}")
    lam, U = np.linalg.eigh(0.5 * (K0 + K0.T))
    return np.clip(lam, 0.0, None), U


def linearized_residuals(K0, r0, lr: float, steps, n: int | None = None) -> np.ndarray:
    """Residuals ``r_T = (I - lr K_0 / n)^T r_0`` of gradient descent on the linearised model.

    Parameters
    ----------
    K0 : array_like, shape (n, n)
        The frozen kernel.
    r0 : array_like, shape (n,)
        The initial residual.
    lr : float
        The learning rate.
    steps : int or array_like of int, shape (S,)
        The step counts ``T``.
    n : int, optional
        The ``n`` of the loss ``1/(2n) sum r^2`` (default: the kernel's size).

    Returns
    -------
    numpy.ndarray, shape (S, n)
        ``r_T`` for every step count.
    """
    lam, U = _eig(K0)
    r0 = as_array(r0, "r0", ndim=1)
    n = lam.shape[0] if n is None else positive_int(n, "n")
    lr = positive_float(lr, "lr")
    steps = np.atleast_1d(np.asarray(_counts(steps, "steps")))
    c = U.T @ r0
    decay = (1.0 - lr * lam / n)[None, :] ** steps[:, None]
    return (decay * c) @ U.T


def linearized_weight_change(K0, r0, lr: float, steps: int, n: int | None = None) -> float:
    """``||w_T - w_0||`` of ``steps`` GD steps on the linearised model (MSE ``1/(2n) sum r^2``).

    ``w_T - w_0 = -J^T K^{-1} (I - (I - lr K/n)^T) r_0``, so
    ``||w_T - w_0||^2 = sum_i (1 - (1 - lr lambda_i/n)^T)^2 (u_i . r_0)^2 / lambda_i``: finite as
    ``T -> inf`` (``r_0^T K^{-1} r_0``), independent of the width once ``K_0`` has converged.

    Parameters
    ----------
    K0 : array_like, shape (n, n)
        The frozen kernel.
    r0 : array_like, shape (n,)
        The initial residual.
    lr : float
        The learning rate.
    steps : int
        ``T``, ``>= 0``.
    n : int, optional
        The ``n`` of the loss (default: the kernel's size).

    Returns
    -------
    float
        ``||w_T - w_0||``.
    """
    lam, U = _eig(K0)
    r0 = as_array(r0, "r0", ndim=1)
    n = lam.shape[0] if n is None else positive_int(n, "n")
    lr = positive_float(lr, "lr")
    steps = positive_int(steps, "steps", minimum=0)
    c = U.T @ r0
    x = lr * lam / n
    # 1 - (1 - x)^T, without cancellation for small x (x may exceed 1 for lr > n / lambda).
    small = x < 0.5
    done = np.empty_like(x)
    done[small] = -np.expm1(steps * np.log1p(-x[small]))
    done[~small] = 1.0 - (1.0 - x[~small]) ** steps
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(lam > 0, done * done * c * c / lam, 0.0)
    return float(math.sqrt(np.sum(terms)))


def steps_to_loss_fraction(K0, r0, lr: float, fraction: float, n: int | None = None,
                           max_steps: int = 10**7) -> int:
    """Smallest ``T`` with ``|r_T|^2 <= fraction |r_0|^2`` for the linearised model.

    Parameters
    ----------
    K0 : array_like, shape (n, n)
        The frozen kernel.
    r0 : array_like, shape (n,)
        The initial residual.
    lr : float
        The learning rate.
    fraction : float
        The fraction of the initial squared residual to reach.
    n : int, optional
        The ``n`` of the loss (default: the kernel's size).
    max_steps : int, optional
        The most steps searched.

    Returns
    -------
    int
        ``T``; ``max_steps`` when no ``T`` up to it qualifies.
    """
    lam, U = _eig(K0)
    r0 = as_array(r0, "r0", ndim=1)
    n = lam.shape[0] if n is None else positive_int(n, "n")
    lr = positive_float(lr, "lr")
    fraction = positive_float(fraction, "fraction")
    max_steps = positive_int(max_steps, "max_steps")
    c2 = (U.T @ r0) ** 2
    rate = np.abs(1.0 - lr * lam / n)
    total = c2.sum()

    def loss(T):
        return float(np.sum(c2 * rate ** (2 * T))) / total

    if loss(max_steps) > fraction:
        return max_steps
    lo, hi = 0, 1
    while loss(hi) > fraction:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if loss(mid) > fraction else (lo, mid)
    return hi


def initial_weight_norm(widths, init_scale: float = 1.0) -> float:
    """``E||w_0||^2 = init_scale^2 #params``: the square root, ``~ m`` for hidden widths ``m``.

    Parameters
    ----------
    widths : sequence of int
        ``[d, n_1, ..., k]``.
    init_scale : float, optional
        The standard deviation of every weight.

    Returns
    -------
    float
        ``init_scale sqrt(#params)``.
    """
    widths = [positive_int(w, f"widths[{i}]") for i, w in enumerate(widths)]
    P = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    return positive_float(init_scale, "init_scale") * math.sqrt(P)
