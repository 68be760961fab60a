"""Dual kernels: closed forms against quadrature, quadrature against adaptive scipy integration,
tables against per-entry quadrature, Price's theorem by finite differences; bad input.

Errors are relative to the Cauchy-Schwarz scale ``sqrt(E[f(u)^2] E[f(v)^2])`` of each entry.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from ntkdyn.base.activations import Activation, abrelu
from ntkdyn.theory import dual_kernels as dk

SQRT_2PI = math.sqrt(2 * math.pi)
RHOS = np.array([-1.0, -0.99, -0.5, 0.0, 0.3, 0.9, 0.999, 1.0])


def _grid(pairs, rhos=RHOS):
    a = np.repeat([p[0] for p in pairs], rhos.size)
    b = np.repeat([p[1] for p in pairs], rhos.size)
    rho = np.tile(rhos, len(pairs))
    return rho * np.sqrt(a * b), a, b


def _scale(act, a, b, which, order=dk.DEFAULT_ORDER):
    ea = dk.second_moments(act, a, method="quadrature", order=order)[which]
    eb = dk.second_moments(act, b, method="quadrature", order=order)[which]
    return np.sqrt(ea * eb)


def _adaptive(f, a, b, rho, tol=1e-11):
    """``E[f(u) f(v)]`` by nested adaptive ``scipy.integrate.quad`` (the reference)."""
    sa, sb = math.sqrt(a), math.sqrt(b)

    def density(z):
        return math.exp(-0.5 * z * z) / SQRT_2PI

    if abs(rho) == 1.0:
        return integrate.quad(lambda z: density(z) * f(sa * z) * f(rho * sb * z), -np.inf,
                              np.inf, epsabs=1e-15, epsrel=tol, limit=200)[0]
    s = math.sqrt(1 - rho * rho)

    def inner(z1):
        m = sb * rho * z1
        return integrate.quad(lambda z2: density(z2) * f(m + sb * s * z2), -np.inf, np.inf,
                              epsabs=1e-15, epsrel=tol, limit=200)[0]

    return integrate.quad(lambda z1: density(z1) * f(sa * z1) * inner(z1), -np.inf, np.inf,
                          epsabs=1e-15, epsrel=tol, limit=200)[0]


def _sigmoid(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


# scalar (math-module) versions of the activations and derivatives for the reference integrals
SCALAR = {
    "tanh": (math.tanh, lambda x: 1 - math.tanh(x) ** 2),
    "softplus": (lambda x: max(x, 0.0) + math.log1p(math.exp(-abs(x))), _sigmoid),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x))),
    "gelu": (lambda x: 0.5 * x * math.erfc(-x / math.sqrt(2)),
             lambda x: 0.5 * math.erfc(-x / math.sqrt(2)) + x * math.exp(-x * x / 2) / SQRT_2PI),
    "erf": (math.erf, lambda x: 2 / math.sqrt(math.pi) * math.exp(-x * x)),
}


# ------------------------------------------------------------------ closed forms
CLOSED = ["linear", "erf", "gelu", "relu", "leaky_relu"]


@pytest.mark.parametrize("name", CLOSED)
def test_closed_forms_match_quadrature(name):
    """Closed forms = quadrature to 1e-10 over variances 1e-3..30, |rho| <= 1 (ReLU family:
    |rho| <= 0.9, where the quadrature resolves the kink of E[step | u])."""
    pairs = [(1e-3, 1e-3), (0.2, 1.0), (1.0, 1.0), (3.0, 10.0), (30.0, 30.0)]
    rhos = RHOS if name not in ("relu", "leaky_relu") else RHOS[np.abs(RHOS) <= 0.9]
    cov, a, b = _grid(pairs, rhos)
    closed = dk.gaussian_expectations(name, cov, a, b, method="closed")
    quad = dk.gaussian_expectations(name, cov, a, b, method="quadrature")
    for which in (0, 1):
        err = np.abs(closed[which] - quad[which]) / _scale(name, a, b, which, order=16)
        assert err.max() < 1e-10, (which, err.max())


def test_sin_closed_form_matches_quadrature_at_moderate_variance():
    """sin oscillates at every scale, so the quadrature (built for activations that are smooth
    away from 0) is checked at variances <= 3: 1e-10."""
    cov, a, b = _grid([(1e-2, 0.5), (1.0, 1.0), (3.0, 2.0)])
    closed = dk.gaussian_expectations("sin", cov, a, b, method="closed")
    quad = dk.gaussian_expectations("sin", cov, a, b, method="quadrature", order=16)
    for which in (0, 1):
        err = np.abs(closed[which] - quad[which]) / np.sqrt(
            dk.second_moments("sin", a)[which] * dk.second_moments("sin", b)[which])
        assert err.max() < 1e-10


@pytest.mark.parametrize("slopes", [(0.1, 1.0), (-0.5, 2.0), (1.0, 1.0), (0.0, 1.0), (2.0, 0.0)])
def test_abrelu_closed_form_reduces_to_known_cases_and_matches_quadrature(slopes):
    act = abrelu(*slopes)
    cov, a, b = _grid([(0.5, 2.0), (1.0, 1.0)], RHOS[np.abs(RHOS) <= 0.9])
    closed = dk.gaussian_expectations(act, cov, a, b)
    quad = dk.gaussian_expectations(act, cov, a, b, method="quadrature")
    for which in (0, 1):
        scale = _scale(act, a, b, which, order=16)
        assert np.max(np.abs(closed[which] - quad[which]) / scale) < 1e-10
    if slopes == (0.0, 1.0):  # ReLU: the arc-cosine kernels
        relu = dk.gaussian_expectations("relu", cov, a, b)
        np.testing.assert_allclose(closed, relu, rtol=1e-14, atol=1e-15)
    if slopes == (1.0, 1.0):  # identity
        np.testing.assert_allclose(closed[0], cov, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(closed[1], 1.0, rtol=1e-14)


def test_closed_forms_at_published_special_values():
    """E[relu(u)^2] = a/2, E[relu(u)] E[relu(v)] = sqrt(ab)/(2 pi) at rho = 0; erf at rho = 1:
    (2/pi) asin(2a/(1+2a)); GELU at c = 0: E[u Phi(u)] = a / sqrt(2 pi (1 + a))."""
    a, b = np.array([0.3, 2.0]), np.array([1.5, 0.7])
    relu = dk.gaussian_expectations("relu", a, a, a)
    np.testing.assert_allclose(relu[0], a / 2, rtol=1e-15)
    np.testing.assert_allclose(relu[1], 0.5, rtol=1e-15)
    relu0 = dk.gaussian_expectations("relu", 0.0 * a, a, b)
    np.testing.assert_allclose(relu0[0], np.sqrt(a * b) / (2 * np.pi), rtol=1e-15)
    np.testing.assert_allclose(relu0[1], 0.25, rtol=1e-15)
    erf = dk.gaussian_expectations("erf", a, a, a)[0]
    np.testing.assert_allclose(erf, 2 / np.pi * np.arcsin(2 * a / (1 + 2 * a)), rtol=1e-15)
    gelu = dk.gaussian_expectations("gelu", 0.0 * a, a, b)
    np.testing.assert_allclose(gelu[0], a / np.sqrt(2 * np.pi * (1 + a)) * b
                               / np.sqrt(2 * np.pi * (1 + b)), rtol=1e-14)
    np.testing.assert_allclose(gelu[1], 0.25, rtol=1e-15)  # E[phi'(u)] = 1/2
    sin = dk.gaussian_expectations("sin", a, a, a)[0]
    np.testing.assert_allclose(sin, (1 - np.exp(-2 * a)) / 2, rtol=1e-14)


@pytest.mark.parametrize("name", ["erf", "gelu", "sin", "relu", "leaky_relu"])
def test_price_theorem_dE_phi_dc_is_E_dphi(name):
    """d E[phi(u) phi(v)] / dc = E[phi'(u) phi'(v)]: central differences, step 1e-6, to 1e-7."""
    cov, a, b = _grid([(0.5, 2.0), (1.0, 1.0), (3.0, 0.4)], np.array([-0.8, -0.2, 0.1, 0.6, 0.95]))
    h = 1e-6
    up = dk.gaussian_expectations(name, cov + h, a, b, derivative=False)[0]
    down = dk.gaussian_expectations(name, cov - h, a, b, derivative=False)[0]
    deriv = dk.gaussian_expectations(name, cov, a, b)[1]
    np.testing.assert_allclose((up - down) / (2 * h), deriv, rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------------ quadrature
NUMERICAL = ["tanh", "softplus", "sigmoid"]


def _reference_errors(name, points, order):
    """Largest error of the quadrature against :func:`_adaptive` at ``(a, b, rho)`` points."""
    a, b, rho = (np.array(v, dtype=float) for v in zip(*points))
    quad = dk.quadrature_expectations(name, rho * np.sqrt(a * b), a, b, order=order)
    worst = 0.0
    for which, fn in enumerate(SCALAR[name]):
        ref = np.array([_adaptive(fn, *p) for p in points])
        err = np.abs(quad[which] - ref) / _scale(name, a, b, which, order=16)
        worst = max(worst, float(err.max()))
    return worst


@pytest.mark.parametrize("name", NUMERICAL)
def test_quadrature_matches_adaptive_integration(name):
    """Composite Gauss-Legendre (orders 8 and 10) = nested adaptive scipy quad to 1e-8 at
    small, unit and large variances, rho = -1, -0.5, 0.3, 0.999, 1 (measured: <= 4e-11 at
    order 8, 2e-13 at order 10; the full grid is the slow test below)."""
    points = [(1e-3, 1e-3, -1.0), (1.0, 0.3, -0.5), (1.0, 0.3, 0.999), (30.0, 100.0, 0.3),
              (100.0, 100.0, 1.0)]
    for order in (8, dk.DEFAULT_ORDER):
        assert _reference_errors(name, points, order) < 1e-8


@pytest.mark.slow
@pytest.mark.parametrize("name", NUMERICAL + ["gelu", "erf"])
def test_quadrature_matches_adaptive_integration_full_grid(name):
    """Variances 1e-3 .. 100 (7 pairs) x 8 correlations, orders 8, 10, 16: 1e-8."""
    pairs = [(1e-3, 1e-3), (0.1, 1.0), (1.0, 1.0), (3.0, 10.0), (10.0, 10.0), (30.0, 100.0),
             (100.0, 100.0)]
    points = [(a, b, r) for a, b in pairs for r in RHOS]
    for order in (8, 10, 16):
        assert _reference_errors(name, points, order) < 1e-8


def test_quadrature_of_a_custom_activation():
    """A user activation (x tanh x, no closed form) against adaptive integration: 1e-8."""
    act = Activation("xtanh", lambda x: x * np.tanh(x),
                     lambda x: np.tanh(x) + x * (1 - np.tanh(x) ** 2), lambda x: 0 * x)
    scalar = (lambda x: x * math.tanh(x), lambda x: math.tanh(x) + x * (1 - math.tanh(x) ** 2))
    pairs, rhos = [(0.5, 2.0)], np.array([-0.7, 1.0])
    cov, a, b = _grid(pairs, rhos)
    quad = dk.gaussian_expectations(act, cov, a, b)
    for which, fn in enumerate(scalar):
        ref = np.array([_adaptive(fn, ai, bi, r) for ai, bi, r in zip(a, b, rhos)])
        np.testing.assert_allclose(quad[which], ref, rtol=1e-8, atol=1e-12)


def test_quadrature_order_range_and_zero_variance():
    cov, a, b = _grid([(1.0, 2.0)], np.array([0.4]))
    lo, hi = dk.ORDER_RANGE
    for order in (lo - 1, hi + 1):
        with pytest.raises(ValueError, match="order must be in the validated range"):
            dk.quadrature_expectations("tanh", cov, a, b, order=order)
    with pytest.raises(TypeError, match="order must be an integer"):
        dk.quadrature_expectations("tanh", cov, a, b, order=10.0)
    # Var u = 0: E[phi(0) phi(v)] = phi(0) E[phi(v)]; both variances 0: phi(0)^2
    e = dk.quadrature_expectations("softplus", [0.0, 0.0], [0.0, 0.0], [2.0, 0.0])
    mean = dk.quadrature_expectations("softplus", 0.0, 2.0, 0.0)[0]  # E[phi(v)] phi(0)
    np.testing.assert_allclose(e[0], [mean, math.log(2) ** 2], rtol=1e-13)
    np.testing.assert_allclose(e[1][1], 0.25, rtol=1e-14)


# ------------------------------------------------------------------ tables
@pytest.mark.parametrize("name", ["tanh", "softplus", "gelu"])
@pytest.mark.parametrize("var1,var2", [(1e-2, 1e-2), (1.0, 1.0), (5.0, 1.5)])
def test_tables_match_per_entry_quadrature(name, var1, var2):
    """Piecewise tables = per-entry quadrature to 1e-10 on 101 correlations including +-1."""
    table = dk.DualTable(name, var1, var2)
    rho = np.concatenate([np.linspace(-1, 1, 99), [-0.9999, 0.9999]])
    tab = table.evaluate(rho)
    quad = dk.quadrature_expectations(name, rho * np.sqrt(var1 * var2), var1, var2)
    for which in (0, 1):
        assert np.max(np.abs(tab[which] - quad[which])) <= 1e-10 * np.abs(quad[which]).max()
    assert table.error < 1e-10


def test_evaluator_mixes_tables_and_per_entry_quadrature():
    """Inputs of three variances (two large groups, one singleton): the evaluator's tables and
    per-entry quadrature together equal per-entry quadrature everywhere (1e-10)."""
    rng = np.random.default_rng(0)
    var1 = np.repeat([0.7, 2.0, 1.3], [12, 10, 1])
    var2 = np.repeat([2.0, 0.7], [9, 3])
    rho = rng.uniform(-1, 1, (var1.size, var2.size))
    rho[:3, :3] = 1.0
    cov = rho * np.sqrt(np.outer(var1, var2))
    ev = dk.DualEvaluator("tanh", var1, var2, table_min_entries=64)
    # groups by increasing variance: var1 0.7 -> 0, 1.3 -> 1, 2.0 -> 2; var2 0.7 -> 0, 2.0 -> 1
    assert set(ev.tables) == {(0, 1), (2, 1)}  # the pairs with >= 64 entries
    e_phi, e_dphi = ev(cov)
    q = dk.quadrature_expectations("tanh", cov, var1[:, None], var2[None, :])
    np.testing.assert_allclose(e_phi, q[0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(e_dphi, q[1], rtol=0, atol=1e-10)
    # blocks of rows and columns give the same entries
    part = ev(cov[5:20, 2:10], slice(5, 20), slice(2, 10))
    np.testing.assert_array_equal(part[0], e_phi[5:20, 2:10])


def test_second_moments_closed_and_quadrature_agree():
    var = np.array([0.0, 1e-3, 0.5, 4.0])
    for name in ("relu", "erf", "gelu", "linear", "leaky_relu"):
        closed = dk.second_moments(name, var)
        quad = dk.second_moments(name, var, method="quadrature")
        np.testing.assert_allclose(closed[0], quad[0], rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(closed[1][1:], quad[1][1:], rtol=1e-11)


# ------------------------------------------------------------------ bad input
def test_bad_input():
    with pytest.raises(ValueError, match="var1 must be >= 0"):
        dk.gaussian_expectations("relu", 0.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="var2 must be finite"):
        dk.gaussian_expectations("tanh", 0.0, 1.0, np.nan)
    with pytest.raises(ValueError, match="cov must be finite"):
        dk.gaussian_expectations("tanh", np.inf, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"\|cov\| <= sqrt\(var1 var2\)"):
        dk.gaussian_expectations("erf", 2.5, 1.0, 4.0 * 1.5)
    with pytest.raises(ValueError, match="broadcast"):
        dk.gaussian_expectations("erf", np.zeros(3), np.ones(2), 1.0)
    with pytest.raises(ValueError, match="method must be one of"):
        dk.gaussian_expectations("erf", 0.0, 1.0, 1.0, method="mehler")
    with pytest.raises(ValueError, match="no closed-form dual"):
        dk.gaussian_expectations("tanh", 0.0, 1.0, 1.0, method="closed")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        dk.gaussian_expectations("swish", 0.0, 1.0, 1.0)
    no_derivative = Activation("noderiv", np.tanh, None, None)
    with pytest.raises(ValueError, match="'noderiv' has no callable dphi"):
        dk.gaussian_expectations(no_derivative, 0.0, 1.0, 1.0)
    with pytest.raises(TypeError, match="activation must be a name"):
        dk.gaussian_expectations(3, 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="var1 and var2 must be finite and >= 0"):
        dk.DualTable("tanh", -1.0, 1.0)
