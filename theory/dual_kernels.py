"""Dual kernels: the Gaussian expectations ``E[phi(u) phi(v)]`` and ``E[phi'(u) phi'(v)]``.

For ``(u, v)`` jointly Gaussian with zero mean, ``Var u = a``, ``Var v = b``, ``Cov(u, v) = c``
(``|c| <= sqrt(a b)``, correlation ``rho = c / sqrt(a b) = cos theta``), every infinite-width
kernel of a fully-connected network is built from the two dual kernels (Cho & Saul 2009;
Daniely, Frostig & Singer 2016; Jacot et al. 2018)

    E_phi(a, b, c) = E[phi(u) phi(v)],        E_dphi(a, b, c) = E[phi'(u) phi'(v)]

(:mod:`ntkdyn.theory.infinite_width`). By Price's theorem ``dE_phi / dc = E_dphi``.

Closed forms (:data:`CLOSED_FORMS`; ``theta = arccos rho``):

* linear: ``E_phi = c``, ``E_dphi = 1``;
* ReLU, the arc-cosine kernels of degree 1 and 0 (Cho & Saul 2009, :mod:`.arccos`):
  ``E_phi = sqrt(ab) / (2 pi) [sin theta + (pi - theta) cos theta]``,
  ``E_dphi = (pi - theta) / (2 pi)``;
* ABReLU ``phi = alpha min(x, 0) + beta max(x, 0)`` (leaky ReLU: ``alpha = slope, beta = 1``),
  from ``phi = beta relu(x) - alpha relu(-x)`` and the same two kernels at ``theta`` and
  ``pi - theta``: ``E_phi = sqrt(ab) / (2 pi) [(alpha - beta)^2 sin theta + ((alpha^2 + beta^2)
  (pi - theta) + 2 alpha beta theta) cos theta]``,
  ``E_dphi = [(alpha^2 + beta^2)(pi - theta) + 2 alpha beta theta] / (2 pi)``;
* erf (Williams 1997): ``E_phi = (2/pi) asin(2c / sqrt((1 + 2a)(1 + 2b)))``,
  ``E_dphi = (4/pi) / sqrt((1 + 2a)(1 + 2b) - 4c^2)``;
* sin: ``E_phi = exp(-(a + b)/2) sinh c``, ``E_dphi = exp(-(a + b)/2) cosh c`` (from the
  characteristic function ``E[exp(i(u +- v))] = exp(-(a + b -+ 2c)/2)``);
* GELU ``phi = x Phi(x)`` (a closed form for its kernel is given by Tsuchida et al. 2021,
  "Avoiding kernel fixed points: computing with ELU and GELU infinite networks"; the expressions
  here are derived independently, by Gaussian integration by parts on
  ``E[u v 1{Z_1 <= u} 1{Z_2 <= v}]`` and Price's theorem, and are tested against quadrature):
  with ``S^2 = (1 + a)(1 + b)``, ``D = S^2 - c^2``, ``k = 1/(1+a) + 1/(1+b) - 1``,
  ``E_phi = c/4 + c asin(c/S) / (2 pi) + (ab + k c^2) / (2 pi sqrt(D))``,
  ``E_dphi = 1/4 + asin(c/S) / (2 pi) + c / (2 pi sqrt(D)) + c (2 k D + ab + k c^2)
  / (2 pi D^(3/2))``.

Every other activation (tanh, softplus, sigmoid, custom ones) gets a numerical dual:

* **Quadrature** (:func:`quadrature_expectations`): ``E[f(u) f(v)] = E_u[f(u) E[f(v) | u]]``
  with ``v | u ~ N(c u / a, b - c^2 / a)`` (``u`` the larger-variance variable). Each of the two
  one-dimensional Gaussian integrals uses a composite Gauss-Legendre rule of ``order`` points on
  panels whose breakpoints are the union of the Gaussian's own grid ``mean + std * {-9, -7, ...,
  9}`` and the activation's grid ``{0, +-1/2, +-1, +-2, +-4, ...}``, built in standardised
  coordinates (panels never wider than two standard deviations, and graded towards the
  non-linearity at ``x = 0`` whatever the variance). Plain Gauss-Hermite is not used: it misses
  the structure of ``tanh(sqrt(a) z)`` at ``z ~ 1/sqrt(a)`` once ``a >~ 1`` (measured: relative
  errors 1e-3 at ``a = 10`` with 200 nodes). Accuracy, measured against nested adaptive
  ``scipy.integrate.quad`` (tolerance 1e-13) on variances ``1e-3 .. 100`` and
  ``rho in {-1, -0.99, -0.5, 0, 0.5, 0.9, 0.999, 1}`` for tanh, GELU, softplus, sigmoid and
  their derivatives, relative to ``sqrt(E[f(u)^2] E[f(v)^2])``: ``4e-11`` at ``order = 8``,
  ``2e-13`` at ``order = 10`` (the default), machine precision from ``order = 12``. The rule
  assumes the activation is smooth away from zero on scales ``>~ 1/2`` (true of every registry
  entry with a numerical dual; ``sin``, which oscillates everywhere, is met to 1e-10 only for
  variances ``<= 3``, and kinks give ``E[step step]`` only ``~1e-5`` at ``rho = 0.999``: both
  have closed forms); :data:`ORDER_RANGE` is the validated range of ``order``. Cost: about
  ``(20 order)^2`` evaluations per entry (3 ms per entry on the development machine).
* **Tables** (:class:`DualTable`), the fast path of kernel matrices: for fixed variances
  ``(a, b)`` (shared by all inputs of a group, e.g. inputs of equal norm) the duals are smooth
  functions of ``rho in [-1, 1]``. They are sampled by quadrature on nested Chebyshev-Lobatto
  points (17, 33, ..., 1025) until the Chebyshev coefficients beyond three quarters of the
  degree fall below ``tol`` (relative to ``max |E|``), and the global interpolant is re-expanded
  as a piecewise polynomial of degree :data:`TABLE_DEGREE` on ``N`` uniform intervals, ``N``
  doubled until it agrees with the global interpolant to ``tol`` at every interval's
  mid-point and quarter points. One kernel entry then costs an index computation and a Horner
  evaluation: a few element-wise passes, independent of the quadrature order. Measured against
  per-entry quadrature for tanh, GELU, softplus, sigmoid and erf at variances ``0.01 .. 100``
  (equal and unequal): at most ``5e-12`` relative to ``max |E|``; 17 to 513 samples, 16 to 8192
  intervals, built in 0.03 to 3 s (``benchmarks/bench_infinite_width.py``: a depth-5 NTK on
  ``2000 .. 10^4`` inputs costs 1.5 to 3.6 times the ReLU closed form).

Inputs with different variances fall in different groups; a pair of groups with many entries
gets a table, the others quadrature per entry (:class:`DualEvaluator`). Alternatives measured
and not taken: the Mehler (Hermite) series ``sum_k f_k(a) f_k(b) rho^k`` with per-input
coefficients separates the variances but needs 50 to 250 terms for 1e-8 at ``rho -> 1``
(tanh, GELU, sigmoid at variances 1 to 10), i.e. hundreds of element-wise passes per layer;
interpolating in the variances as well costs a table look-up per pair of variance nodes.
"""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
from scipy import fft

from ..base.activations import ACTIVATIONS, Activation, get_activation
from ..base.validation import as_array, one_of, positive_int
from .arccos import angle

__all__ = [
    "CLOSED_FORMS",
    "DEFAULT_ORDER",
    "DualEvaluator",
    "DualTable",
    "ORDER_RANGE",
    "TABLE_DEGREE",
    "abrelu_moments",
    "closed_form",
    "gaussian_expectations",
    "quadrature_expectations",
    "second_moments",
]

DEFAULT_ORDER = 10
ORDER_RANGE = (8, 32)  # Gauss-Legendre points per panel: validated range (see the docstring)
TABLE_DEGREE = 5  # degree of the piecewise polynomials of a DualTable
TABLE_TOL = 1e-11  # target accuracy of a DualTable, relative to max |E| over rho
_REACH = 9.0  # the Gaussian is integrated over mean +- 9 std (tail mass 2e-19)
_GAUSS_STEP = 2.0  # Gaussian grid spacing, in standard deviations
_FEATURE_SCALE = 0.5  # smallest panel at the non-linearity: [0, 1/2]
_INV_2PI = 1.0 / (2.0 * math.pi)
_MAX_RUN_PAIRS = 64  # a block spanning more pairs of variance groups is dispatched by masks
_CHUNK_NODES = 200_000  # quadrature nodes per chunk (1.6 MB per array: stays in cache)


# --------------------------------------------------------------------------- validation
def _check_order(order) -> int:
    order = positive_int(order, "order")
    lo, hi = ORDER_RANGE
    if not lo <= order <= hi:
        raise ValueError(f"order must be in the validated range [{lo}, {hi}] "
                         f"(Gauss-Legendre points per panel), got {order}")
    return order


def _check_moment_args(cov, var1, var2):
    """Broadcast and validate ``(cov, var1, var2)``: finite, variances >= 0, ``|c| <= sqrt(ab)``."""
    cov = as_array(cov, "cov")
    var1 = as_array(var1, "var1")
    var2 = as_array(var2, "var2")
    for name, v in (("var1", var1), ("var2", var2)):
        if np.any(v < 0):
            raise ValueError(f"{name} must be >= 0 (a variance), got min {float(v.min())}")
    try:
        cov, var1, var2 = np.broadcast_arrays(cov, var1, var2)
    except ValueError:
        raise ValueError(f"cov, var1 and var2 must broadcast together, got shapes "
                         f"{np.shape(cov)}, {np.shape(var1)}, {np.shape(var2)}") from None
    bound = np.sqrt(var1 * var2)
    if np.any(np.abs(cov) > bound * (1 + 1e-9) + 1e-300):
        raise ValueError("cov must satisfy |cov| <= sqrt(var1 var2) (a covariance matrix is "
                         "positive semi-definite)")
    return cov, var1, var2


def _as_activation(activation, argument="activation") -> Activation:
    """A registry name or an activation object (anything with callable ``phi``, ``dphi``)."""
    if isinstance(activation, str):
        activation = get_activation(activation, argument)
    elif not hasattr(activation, "phi"):
        raise TypeError(f"{argument} must be a name from {sorted(ACTIVATIONS)} or an "
                        f"Activation, got {type(activation).__name__}")
    for attr in ("phi", "dphi"):
        if not callable(getattr(activation, attr, None)):
            raise ValueError(f"{argument} {getattr(activation, 'name', activation)!r} has no "
                             f"callable {attr}; the dual kernels need phi and phi'")
    return activation


# --------------------------------------------------------------------------- closed forms
def _correlation(cov, var1, var2):
    norms = np.sqrt(var1 * var2)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(norms > 0, cov / np.where(norms > 0, norms, 1.0), 0.0)
    return np.clip(rho, -1.0, 1.0), norms


def _linear(cov, var1, var2, derivative=True):
    return np.array(cov, dtype=float, copy=True), (np.ones_like(cov) if derivative else None)


def _relu(cov, var1, var2, derivative=True):
    rho, norms = _correlation(cov, var1, var2)
    theta = angle(rho)
    pi_minus = np.pi - theta
    e_phi = norms * _INV_2PI * (np.sqrt(1.0 - rho * rho) + pi_minus * rho)
    return e_phi, (pi_minus * _INV_2PI if derivative else None)


def abrelu_moments(cov, var1, var2, slopes, derivative=True):
    """Closed-form ``E[phi phi]``, ``E[phi' phi']`` of ``phi = alpha min(x,0) + beta max(x,0)``.

    See the module docstring for the formula.

    Parameters
    ----------
    cov, var1, var2 : array_like
        ``Cov(u, v)``, ``Var u``, ``Var v`` (broadcast together; not validated here).
    slopes : (float, float)
        ``(alpha, beta)``.
    derivative : bool
        Also return ``E[phi' phi']`` (else ``None``).

    Returns
    -------
    (E_phi, E_dphi) : arrays of the broadcast shape
    """
    alpha, beta = (float(s) for s in slopes)
    rho, norms = _correlation(cov, var1, var2)
    theta = angle(rho)
    weight = (alpha * alpha + beta * beta) * (np.pi - theta) + 2 * alpha * beta * theta
    e_phi = norms * _INV_2PI * ((alpha - beta) ** 2 * np.sqrt(1.0 - rho * rho) + weight * rho)
    return e_phi, (weight * _INV_2PI if derivative else None)


def _erf(cov, var1, var2, derivative=True):
    s = (1 + 2 * var1) * (1 + 2 * var2)
    e_phi = 2 / np.pi * np.arcsin(np.clip(2 * cov / np.sqrt(s), -1.0, 1.0))
    e_dphi = 4 / np.pi / np.sqrt(s - 4 * cov * cov) if derivative else None
    return e_phi, e_dphi


def _sin(cov, var1, var2, derivative=True):
    # exp(-(a+b)/2) sinh c, cosh c as differences of exponentials of arguments <= 0
    half = 0.5 * (var1 + var2)
    up, down = 0.5 * np.exp(cov - half), 0.5 * np.exp(-cov - half)
    return up - down, (up + down if derivative else None)


def _gelu(cov, var1, var2, derivative=True):
    p1, p2 = 1 + var1, 1 + var2
    s2 = p1 * p2
    d = s2 - cov * cov
    asin = np.arcsin(np.clip(cov / np.sqrt(s2), -1.0, 1.0))
    k = 1 / p1 + 1 / p2 - 1
    numer = var1 * var2 + k * cov * cov
    sqrt_d = np.sqrt(d)
    e_phi = 0.25 * cov + _INV_2PI * (cov * asin + numer / sqrt_d)
    if not derivative:
        return e_phi, None
    e_dphi = 0.25 + _INV_2PI * (asin + cov / sqrt_d + cov * (2 * k * d + numer) / (d * sqrt_d))
    return e_phi, e_dphi


CLOSED_FORMS = {"linear": _linear, "relu": _relu, "erf": _erf, "sin": _sin, "gelu": _gelu}


def closed_form(activation):
    """The closed-form dual ``fn(cov, var1, var2, derivative) -> (E_phi, E_dphi)``, or ``None``.

    Registry activations listed in :data:`CLOSED_FORMS` (the registry's own object, not a custom
    activation of the same name) and every ABReLU (``activation.slopes`` set) have one.

    Parameters
    ----------
    activation : str or Activation

    Returns
    -------
    callable or None
    """
    act = _as_activation(activation)
    name = getattr(act, "name", None)
    if isinstance(name, str) and ACTIVATIONS.get(name) is act and name in CLOSED_FORMS:
        return CLOSED_FORMS[act.name]
    slopes = getattr(act, "slopes", None)
    if slopes is not None:
        return lambda cov, var1, var2, derivative=True: abrelu_moments(cov, var1, var2, slopes,
                                                                       derivative)
    return None


# --------------------------------------------------------------------------- quadrature
_GAUSS_GRID = np.arange(-_REACH, _REACH + 1e-9, _GAUSS_STEP)


def _feature_grid(reach):
    """``{0, +-1/2, +-1, +-2, ...}`` up to ``reach``: where a non-linearity has its structure."""
    top = max(0, math.ceil(math.log2(max(reach, _FEATURE_SCALE) / _FEATURE_SCALE)))
    pos = _FEATURE_SCALE * 2.0 ** np.arange(top + 1)
    return np.concatenate([[0.0], pos, -pos])


def _normal_rule(mean, std, order, features):
    """Composite Gauss-Legendre rule for ``N(mean, std^2)``: nodes ``x`` and weights ``w``.

    ``mean``, ``std`` of shape ``(M,)``; returns two ``(M, K)`` arrays with
    ``sum_k w[m, k] f(x[m, k]) ~ E[f(mean_m + std_m z)]``. Built in standardised coordinates
    ``y = (x - mean) / std`` so that a tiny ``std`` loses no accuracy (``std = 0`` gives
    ``x = mean``).
    """
    mean = mean[:, None]
    std = std[:, None]
    safe = np.where(std > 0, std, 1.0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        feat = np.where(std > 0, (features[None, :] - mean) / safe, _REACH)
    feat = np.clip(feat, -_REACH, _REACH)
    grid = np.broadcast_to(_GAUSS_GRID, (mean.shape[0], _GAUSS_GRID.size))
    edges = np.sort(np.concatenate([grid, feat], axis=1), axis=1)
    xi, omega = _legendre(order)
    mid = 0.5 * (edges[:, 1:] + edges[:, :-1])
    half = 0.5 * (edges[:, 1:] - edges[:, :-1])
    # drop the empty panels (features outside the reach were clipped onto its ends)
    empty = half <= 0
    keep = half.shape[1] - int(empty.sum(axis=1).min())
    if keep < half.shape[1]:
        first = np.argsort(empty, axis=1, kind="stable")[:, :keep]
        mid = np.take_along_axis(mid, first, axis=1)
        half = np.take_along_axis(half, first, axis=1)
    y = (mid[:, :, None] + half[:, :, None] * xi).reshape(mean.shape[0], -1)
    w = (half[:, :, None] * omega).reshape(mean.shape[0], -1)
    w *= np.exp(-0.5 * y * y) * (1.0 / math.sqrt(2.0 * math.pi))
    return mean + std * y, w


_LEGENDRE_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _legendre(order):
    if order not in _LEGENDRE_CACHE:
        _LEGENDRE_CACHE[order] = np.polynomial.legendre.leggauss(order)
    return _LEGENDRE_CACHE[order]


def _pair_quadrature(fns, cov, var1, var2, order):
    """``[E[f(u) f(v)] for f in fns]`` for flat arrays ``cov, var1, var2`` (validated)."""
    a = np.maximum(var1, var2)
    b = np.minimum(var1, var2)
    sa = np.sqrt(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(a > 0, cov / np.where(a > 0, a, 1.0), 0.0)  # E[v | u] = slope u
    tau = np.sqrt(np.maximum(b - slope * cov, 0.0))                   # std of v given u
    features = _feature_grid(_REACH * float(np.sqrt(a.max(initial=0.0))))
    k1 = (_GAUSS_GRID.size + features.size - 1) * order
    per_entry = k1 * k1
    chunk = max(1, _CHUNK_NODES // per_entry)
    out = [np.empty(cov.size) for _ in fns]
    for s in range(0, cov.size, chunk):
        sl = slice(s, min(s + chunk, cov.size))
        m = sl.stop - sl.start
        u, wu = _normal_rule(np.zeros(m), sa[sl], order, features)
        mu = (slope[sl, None] * u).ravel()
        v, wv = _normal_rule(mu, np.repeat(tau[sl], u.shape[1]), order, features)
        for f, res in zip(fns, out):
            inner = np.einsum("ij,ij->i", wv, f(v)).reshape(m, -1)
            res[sl] = np.einsum("ij,ij->i", wu * f(u), inner)
    return out


def _pair_functions(act, derivative):
    return [act.phi, act.dphi] if derivative else [act.phi]


def quadrature_expectations(activation, cov, var1, var2, derivative=True, order=DEFAULT_ORDER):
    """Numerical duals ``E[phi(u) phi(v)]`` (and ``E[phi'(u) phi'(v)]``) by quadrature.

    The composite Gauss-Legendre rule of the module docstring, per entry: about
    ``(20 order)^2`` evaluations of ``phi`` per entry, so meant for small arrays and for
    building :class:`DualTable`.

    Parameters
    ----------
    activation : str or Activation
        Needs ``phi`` and ``dphi``.
    cov, var1, var2 : array_like
        ``Cov(u, v)``, ``Var u``, ``Var v``; broadcast together; ``var >= 0``,
        ``|cov| <= sqrt(var1 var2)``.
    derivative : bool
        Also return ``E[phi'(u) phi'(v)]`` (else ``None``).
    order : int
        Gauss-Legendre points per panel, in :data:`ORDER_RANGE`.

    Returns
    -------
    (E_phi, E_dphi) : arrays of the broadcast shape (``E_dphi`` is ``None`` without
    ``derivative``)
    """
    act = _as_activation(activation)
    order = _check_order(order)
    cov, var1, var2 = _check_moment_args(cov, var1, var2)
    shape = cov.shape
    res = _pair_quadrature(_pair_functions(act, derivative), cov.ravel(), var1.ravel(),
                           var2.ravel(), order)
    res = [r.reshape(shape) for r in res]
    return res[0], (res[1] if derivative else None)


def _single_quadrature(fns, var, order):
    """``[E[f(u)^2] for f in fns]``, ``u ~ N(0, var)`` for a flat array ``var``."""
    features = _feature_grid(_REACH * float(np.sqrt(var.max(initial=0.0))))
    u, w = _normal_rule(np.zeros(var.size), np.sqrt(var), order, features)
    return [np.einsum("ij,ij->i", w, f(u) ** 2) for f in fns]


def second_moments(activation, var, derivative=True, method="auto", order=DEFAULT_ORDER):
    """``E[phi(u)^2]`` (and ``E[phi'(u)^2]``), ``u ~ N(0, var)``: the duals at ``rho = 1``.

    Closed form where there is one (``method="auto"`` or ``"closed"``), else a one-dimensional
    composite Gauss-Legendre rule (``method="quadrature"``).

    Parameters
    ----------
    activation : str or Activation
    var : array_like
        Variances ``>= 0``, any shape.
    derivative : bool
        Also return ``E[phi'(u)^2]`` (else ``None``).
    method : {"auto", "closed", "quadrature"}
    order : int
        Quadrature order, in :data:`ORDER_RANGE`.

    Returns
    -------
    (E_phi, E_dphi) : arrays of the shape of ``var``
    """
    act = _as_activation(activation)
    method = one_of(method, "method", ("auto", "closed", "quadrature"))
    var = as_array(var, "var")
    if np.any(var < 0):
        raise ValueError(f"var must be >= 0 (a variance), got min {float(var.min())}")
    fn = closed_form(act) if method != "quadrature" else None
    if method == "closed" and fn is None:
        raise ValueError(f"activation {act.name!r} has no closed-form dual; use "
                         "method='auto' or 'quadrature'")
    if fn is not None:
        return fn(var, var, var, derivative)
    order = _check_order(order)
    res = _single_quadrature(_pair_functions(act, derivative), var.ravel(), order)
    res = [r.reshape(var.shape) for r in res]
    return res[0], (res[1] if derivative else None)


def gaussian_expectations(activation, cov, var1, var2, derivative=True, method="auto",
                          order=DEFAULT_ORDER):
    """The dual kernels ``E[phi(u) phi(v)]`` and ``E[phi'(u) phi'(v)]`` (module docstring).

    Parameters
    ----------
    activation : str or Activation
        A registry name or an :class:`~ntkdyn.base.activations.Activation` with ``phi`` and
        ``dphi``.
    cov, var1, var2 : array_like
        ``Cov(u, v)``, ``Var u``, ``Var v`` (broadcast together); variances ``>= 0`` and
        ``|cov| <= sqrt(var1 var2)``.
    derivative : bool
        Also compute ``E[phi'(u) phi'(v)]``.
    method : {"auto", "closed", "quadrature"}
        ``"auto"``: the closed form where one is known (:func:`closed_form`), else quadrature.
    order : int
        Quadrature order (Gauss-Legendre points per panel), in :data:`ORDER_RANGE`.

    Returns
    -------
    (E_phi, E_dphi) : arrays of the broadcast shape (``E_dphi`` is ``None`` without
    ``derivative``)
    """
    act = _as_activation(activation)
    method = one_of(method, "method", ("auto", "closed", "quadrature"))
    fn = closed_form(act) if method != "quadrature" else None
    if method == "closed" and fn is None:
        raise ValueError(f"activation {act.name!r} has no closed-form dual; use "
                         "method='auto' or 'quadrature'")
    if fn is None:
        return quadrature_expectations(act, cov, var1, var2, derivative, order)
    cov, var1, var2 = _check_moment_args(cov, var1, var2)
    return fn(cov, var1, var2, derivative)


# --------------------------------------------------------------------------- tables
def _local_basis(degree):
    """Chebyshev points of ``[0, 1]`` and the matrix taking values there to monomials in t."""
    k = np.arange(degree + 1)
    t = 0.5 - 0.5 * np.cos(np.pi * (k + 0.5) / (degree + 1))
    return t, np.linalg.inv(np.vander(t, degree + 1, increasing=True))


class DualTable:
    """Piecewise-polynomial tables of the duals in ``rho`` for fixed variances ``(a, b)``.

    Built as described in the module docstring; ``error`` is the achieved accuracy estimate
    (the largest of the quadrature-series tail and the piecewise re-expansion error, relative to
    ``max |E|``), ``intervals`` the number ``N`` of uniform intervals of ``[-1, 1]``.

    Parameters
    ----------
    activation : str or Activation
    var1, var2 : float
        The variances ``a = Var u``, ``b = Var v`` (``>= 0``).
    derivative : bool
        Tabulate ``E[phi' phi']`` too.
    order : int
        Quadrature order for the samples.
    tol : float
        Target accuracy relative to ``max_rho |E|``.
    max_points, max_intervals : int
        Caps on the Chebyshev samples and the piecewise intervals (a ``RuntimeWarning`` when
        ``tol`` is not reached within them).
    """

    def __init__(self, activation, var1, var2, derivative=True, order=DEFAULT_ORDER,
                 tol=TABLE_TOL, max_points=1025, max_intervals=8192):
        self.activation = _as_activation(activation)
        self.order = _check_order(order)
        self.var1, self.var2 = float(var1), float(var2)
        if not (self.var1 >= 0 and self.var2 >= 0 and math.isfinite(self.var1 * self.var2)):
            raise ValueError(f"var1 and var2 must be finite and >= 0, got {var1}, {var2}")
        self.derivative = bool(derivative)
        fns = _pair_functions(self.activation, self.derivative)
        scale = math.sqrt(self.var1 * self.var2)
        # nested Chebyshev-Lobatto samples until the series' tail is below tol
        n, values, tail = 17, None, np.inf
        while True:
            rho = np.cos(np.pi * np.arange(n) / (n - 1))
            if values is None:
                new = np.arange(n)
            else:
                new = np.arange(1, n, 2)
            got = _pair_quadrature(fns, rho[new] * scale, np.full(new.size, self.var1),
                                   np.full(new.size, self.var2), self.order)
            full = [np.empty(n) for _ in fns]
            for f, g in zip(full, got):
                f[new] = g
            if values is not None:
                for f, old in zip(full, values):
                    f[0::2] = old
            values = full
            coeffs = [_chebyshev_coefficients(v) for v in values]
            tails = [np.abs(c[(3 * n) // 4:]).max() / max(np.abs(v).max(), 1e-300)
                     for c, v in zip(coeffs, values)]
            tail = max(tails)
            if tail <= tol or 2 * n - 1 > max_points:
                break
            n = 2 * n - 1
        self.points = n
        self._coeffs = coeffs
        self.series_error = float(tail)
        # piecewise re-expansion
        t_loc, to_monomial = _local_basis(TABLE_DEGREE)
        check = np.array([0.25, 0.5, 0.75])
        scales = [max(np.abs(v).max(), 1e-300) for v in values]
        intervals = 16
        while True:
            h = 2.0 / intervals
            left = -1.0 + h * np.arange(intervals)
            samples = left[:, None] + h * t_loc[None, :]
            tables = [np.polynomial.chebyshev.chebval(samples, c) @ to_monomial.T
                      for c in coeffs]
            x_check = left[:, None] + h * check[None, :]
            err = 0.0
            for tab, c, s in zip(tables, coeffs, scales):
                approx = np.polynomial.polynomial.polyval(check, tab.T, tensor=True)
                err = max(err, np.abs(approx - np.polynomial.chebyshev.chebval(x_check, c))
                          .max() / s)
            if err <= tol or 2 * intervals > max_intervals:
                break
            intervals *= 2
        self.intervals = intervals
        self.piecewise_error = float(err)
        self.error = max(self.series_error, self.piecewise_error)
        if self.error > 10 * tol:
            warnings.warn(f"DualTable for {self.activation.name!r} at variances "
                          f"({self.var1:g}, {self.var2:g}) reached only {self.error:.1e} "
                          f"(target {tol:.0e}); the activation may not be smooth",
                          RuntimeWarning, stacklevel=2)
        # columns by descending power for Horner: (intervals,) contiguous per power
        self._tables = [np.ascontiguousarray(tab.T[::-1]) for tab in tables]

    def scaled(self, factor):
        """A copy whose evaluations are multiplied by ``factor`` (the coefficients scaled).

        Parameters
        ----------
        factor : float

        Returns
        -------
        DualTable
        """
        factor = float(factor)
        if factor == 1.0:
            return self
        out = copy.copy(self)
        out._tables = [tab * factor for tab in self._tables]
        return out

    def __repr__(self) -> str:
        return (f"DualTable({self.activation.name!r}, var1={self.var1:g}, var2={self.var2:g}, "
                f"intervals={self.intervals}, error={self.error:.1e})")

    def evaluate(self, rho):
        """``(E_phi, E_dphi)`` at correlations ``rho`` (clipped to ``[-1, 1]``).

        Parameters
        ----------
        rho : array_like
            Correlations, any shape.

        Returns
        -------
        (E_phi, E_dphi) : arrays of the shape of ``rho`` (``E_dphi`` is ``None`` for a table
        built without ``derivative``)
        """
        rho = np.asarray(rho, dtype=float)
        t = np.clip(rho, -1.0, 1.0)
        t += 1.0
        t *= 0.5 * self.intervals
        idx = t.astype(np.intp)
        np.minimum(idx, self.intervals - 1, out=idx)
        t -= idx
        out = []
        tmp = np.empty_like(t)
        for tab in self._tables:
            acc = np.take(tab[0], idx)
            for row in tab[1:]:
                acc *= t
                np.take(row, idx, out=tmp)
                acc += tmp
            out.append(acc)
        return out[0], (out[1] if self.derivative else None)


def _chebyshev_coefficients(values):
    """Chebyshev coefficients of the interpolant at Lobatto points ``cos(pi j / (n - 1))``."""
    n = values.size
    c = fft.dct(values, type=1) / (n - 1)
    c[0] *= 0.5
    c[-1] *= 0.5
    return c


# --------------------------------------------------------------------------- matrices
def _groups(var, rtol):
    """Group ids of ``var`` (values within ``rtol`` relative of a neighbour share a group)."""
    order = np.argsort(var, kind="stable")
    sv = var[order]
    gaps = np.diff(sv) > rtol * np.maximum(np.abs(sv[1:]), 1e-300)
    ids_sorted = np.concatenate([[0], np.cumsum(gaps)])
    ids = np.empty(var.size, dtype=np.intp)
    ids[order] = ids_sorted
    starts = np.flatnonzero(np.concatenate([[True], gaps]))
    centers = np.add.reduceat(sv, starts) / np.diff(np.append(starts, sv.size))
    return ids, centers


class DualEvaluator:
    """Dual kernels of one layer for all pairs of two input sets: ``E_phi, E_dphi`` blocks.

    Bound to the per-input variances ``var1`` (shape ``(n,)``) and ``var2`` (``(n2,)``);
    ``evaluator(cov_block, rows, cols)`` returns the two duals for ``cov_block =
    Cov[rows, cols]``. Closed forms are evaluated directly. Otherwise inputs are grouped by
    variance (relative tolerance ``rtol``); each pair of groups holding at least
    ``table_min_entries`` entries gets a :class:`DualTable`, the rest per-entry quadrature.
    Inputs must be sorted by group for the tables to see contiguous blocks; any order is
    correct, only slower.

    Parameters
    ----------
    activation : str or Activation
    var1, var2 : array, shapes (n,), (n2,)
    derivative : bool
    method : {"auto", "closed", "quadrature"}
    order : int
    rtol : float
        Variances closer than this (relative) share a table.
    table_min_entries : int
        Smallest number of entries of a pair of groups that gets a table.
    scale : float
        Factor applied to both duals (folded into the tables and the ReLU path: free).
    """

    def __init__(self, activation, var1, var2, derivative=True, method="auto",
                 order=DEFAULT_ORDER, rtol=1e-10, table_min_entries=2048, scale=1.0):
        self.activation = _as_activation(activation)
        self.scale = float(scale)
        self.method = one_of(method, "method", ("auto", "closed", "quadrature"))
        self.derivative = bool(derivative)
        self.var1 = as_array(var1, "var1", ndim=1)
        self.var2 = as_array(var2, "var2", ndim=1)
        self.closed = closed_form(self.activation) if method != "quadrature" else None
        self._slopes = None  # ReLU and ABReLU take a fused in-place path
        if self.closed is not None:
            if self.closed is _relu:
                self._slopes = (0.0, 1.0)
            elif getattr(self.activation, "slopes", None) is not None:
                self._slopes = tuple(float(v) for v in self.activation.slopes)
        if self._slopes is not None:
            self._sd1, self._sd2 = np.sqrt(self.var1), np.sqrt(self.var2)
            with np.errstate(divide="ignore"):
                self._inv1 = np.where(self._sd1 > 0, 1.0 / self._sd1, 0.0)
                self._inv2 = np.where(self._sd2 > 0, 1.0 / self._sd2, 0.0)
        if method == "closed" and self.closed is None:
            raise ValueError(f"activation {self.activation.name!r} has no closed-form dual; "
                             "use method='auto' or 'quadrature'")
        self.order = _check_order(order)
        self.tables: dict[tuple[int, int], DualTable] = {}
        if self.closed is None:
            symmetric = var2 is var1 or (self.var1.shape == self.var2.shape
                                         and np.array_equal(self.var1, self.var2))
            self.ids1, self.centers1 = _groups(self.var1, rtol)
            self.ids2, self.centers2 = ((self.ids1, self.centers1) if symmetric
                                        else _groups(self.var2, rtol))
            counts1 = np.bincount(self.ids1)
            counts2 = np.bincount(self.ids2)
            for g1 in range(counts1.size):
                for g2 in range(counts2.size):
                    if counts1[g1] * counts2[g2] < table_min_entries:
                        continue
                    if symmetric and g2 < g1:  # E is symmetric in (var1, var2)
                        self.tables[g1, g2] = self.tables[g2, g1]
                        continue
                    self.tables[g1, g2] = DualTable(
                        self.activation, self.centers1[g1], self.centers2[g2],
                        derivative=self.derivative, order=self.order).scaled(self.scale)

    def _scaled(self, pair):
        if self.scale != 1.0:
            for e in pair:
                if e is not None:
                    e *= self.scale
        return pair

    def diagonal(self, var):
        """``E[phi(u)^2]``, ``E[phi'(u)^2]`` for ``u ~ N(0, var)`` (exact, no table, no scale).

        Parameters
        ----------
        var : array_like
            Variances.

        Returns
        -------
        (E_phi, E_dphi) : arrays (see :func:`second_moments`)
        """
        method = "closed" if self.closed is not None else "quadrature"
        return second_moments(self.activation, var, self.derivative, method, self.order)

    def __call__(self, cov, rows=slice(None), cols=slice(None)):
        v1 = self.var1[rows]
        v2 = self.var2[cols]
        if self._slopes is not None:
            return _abrelu_block(cov, self._sd1[rows], self._sd2[cols], self._inv1[rows],
                                 self._inv2[cols], *self._slopes, self.derivative, self.scale)
        if self.closed is not None:
            return self._scaled(self.closed(cov, v1[:, None], v2[None, :], self.derivative))
        e_phi = np.empty(cov.shape)
        e_dphi = np.empty(cov.shape) if self.derivative else None
        out = (e_phi, e_dphi)
        ids1, ids2 = self.ids1[rows], self.ids2[cols]
        if _run_count(ids1) * _run_count(ids2) <= _MAX_RUN_PAIRS:  # contiguous rectangles
            runs1, runs2 = _runs(ids1), _runs(ids2)
            pending = np.zeros(cov.shape, dtype=bool)
            for g1, r0, r1 in runs1:
                for g2, c0, c1 in runs2:
                    table = self.tables.get((g1, g2))
                    block = (slice(r0, r1), slice(c0, c1))
                    if table is None:
                        pending[block] = True
                        continue
                    rho, _ = _correlation(cov[block], v1[r0:r1, None], v2[None, c0:c1])
                    for dst, src in zip(out, table.evaluate(rho)):
                        if dst is not None:
                            dst[block] = src
        else:  # scattered groups: one mask per table
            which = np.full(cov.shape, -1, dtype=np.intp)
            tables = list(self.tables.items())
            for t, ((g1, g2), _) in enumerate(tables):
                which[np.ix_(ids1 == g1, ids2 == g2)] = t
            for t, (_, table) in enumerate(tables):
                mask = which == t
                if mask.any():
                    i, j = np.nonzero(mask)
                    rho, _ = _correlation(cov[mask], v1[i], v2[j])
                    for dst, src in zip(out, table.evaluate(rho)):
                        if dst is not None:
                            dst[mask] = src
            pending = which < 0
        if pending.any():
            i, j = np.nonzero(pending)
            a, b, c = v1[i], v2[j], cov[pending]
            bound = np.sqrt(a * b)
            res = self._scaled(_pair_quadrature(
                _pair_functions(self.activation, self.derivative), np.clip(c, -bound, bound),
                a, b, self.order))
            for dst, src in zip(out, res):
                dst[pending] = src
        return out


def _abrelu_block(cov, sd1, sd2, inv1, inv2, alpha, beta, derivative, scale=1.0):
    """``scale`` times :func:`abrelu_moments` for a block, fused in place (``sd = sqrt(var)``,
    ``inv = 1/sd``, 0 where ``sd = 0``).

    ``weight = A (pi - theta) + B theta`` with ``A = alpha^2 + beta^2``, ``B = 2 alpha beta``.
    """
    big, cross = alpha * alpha + beta * beta, 2.0 * alpha * beta
    rho = cov * inv1[:, None]
    rho *= inv2
    np.clip(rho, -1.0, 1.0, out=rho)
    weight = np.arccos(rho)
    if cross == 0.0:  # ReLU-like: weight = A (pi - theta)
        np.subtract(np.pi, weight, out=weight)
        if big != 1.0:
            weight *= big
    else:
        weight *= cross - big
        weight += big * np.pi
    e_phi = np.multiply(rho, rho)
    np.subtract(1.0, e_phi, out=e_phi)
    np.sqrt(e_phi, out=e_phi)
    if alpha == beta:
        e_phi[...] = 0.0
    elif (alpha - beta) ** 2 != 1.0:
        e_phi *= (alpha - beta) ** 2
    rho *= weight
    e_phi += rho
    e_phi *= (sd1 * (scale * _INV_2PI))[:, None]
    e_phi *= sd2
    if not derivative:
        return e_phi, None
    weight *= scale * _INV_2PI
    return e_phi, weight


def _run_count(ids):
    return 1 + int(np.count_nonzero(np.diff(ids))) if ids.size else 0


def _runs(ids):
    """``(value, start, stop)`` of the maximal runs of equal values in ``ids``."""
    if ids.size == 0:
        return []
    cut = np.flatnonzero(np.diff(ids)) + 1
    starts = np.concatenate([[0], cut])
    stops = np.concatenate([cut, [ids.size]])
    return [(int(ids[s]), int(s), int(e)) for s, e in zip(starts, stops)]
