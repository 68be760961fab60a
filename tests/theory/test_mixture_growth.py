"""Gated-term growth from resting readouts (theory.two_layer_alignment): the forms against the
NTK split, the t^2 coefficient against the second-order flow and an Euler-integrated flow, the
Gaussian moment against quadrature, and the small-variance limit 2 against a wide network."""
import math

import numpy as np
import pytest

from ntkdyn.theory.two_layer_alignment import (flow_second_order, flow_velocity,
                                               gated_bilinear_forms, gated_growth_from_rest,
                                               mixture_growth_ratio_limit, own_class_growth_ratio,
                                               relu_square_gate_moment)
from ntkdyn.theory.two_layer_ntk import two_layer_ntk_terms


def _problem(n=24, d=6, m=50, C=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    labels = np.arange(n) % C
    return rng.standard_normal((m, d)), rng.standard_normal((C, m)), X, np.eye(C)[labels]


@pytest.mark.parametrize("sparse", [False, True])
def test_forms_equal_the_gated_term_contracted(sparse):
    W1, W2, X, Y = _problem()
    Z = Y / np.linalg.norm(Y, axis=0) if sparse else np.random.default_rng(1).normal(
        size=(X.shape[0], 4))
    _, gated = two_layer_ntk_terms(W1, W2, X)
    direct = np.einsum("nj,cnm,mj->cj", Z, gated, Z)
    np.testing.assert_allclose(gated_bilinear_forms(W1, W2, X, Z), direct, rtol=1e-12)


def test_growth_from_rest_is_half_the_second_derivative_of_the_flow():
    W1, _, X, Y = _problem()
    Z = Y / np.linalg.norm(Y, axis=0)
    d2 = flow_second_order(W1, np.zeros((Y.shape[1], W1.shape[0])), X, Y)["d2gated"]
    np.testing.assert_allclose(gated_growth_from_rest(W1, X, Y),
                               0.5 * np.einsum("nj,cnm,mj->cj", Z, d2, Z), rtol=1e-12)


def test_growth_from_rest_matches_an_integrated_flow():
    """Euler steps of the gradient flow (both layers move) from W2 = 0: B(t) / t^2 -> B_0."""
    W1, _, X, Y = _problem(m=80)
    W2 = np.zeros((Y.shape[1], W1.shape[0]))
    B0 = gated_growth_from_rest(W1, X, Y)
    h, steps = 1e-4, 100
    A, V = W1.copy(), W2.copy()
    for _ in range(steps):
        c1, c2 = 1 / math.sqrt(A.shape[1]), 1 / math.sqrt(A.shape[0])
        residual = Y - c2 * np.maximum(c1 * X @ A.T, 0) @ V.T
        dA, dV = flow_velocity(A, V, X, residual)
        A, V = A + h * dA, V + h * dV
    t = h * steps
    B = gated_bilinear_forms(A, V, X, Y / np.linalg.norm(Y, axis=0))
    np.testing.assert_allclose(B / t ** 2, B0, rtol=1e-2)
    assert abs(own_class_growth_ratio(B) / own_class_growth_ratio(B0) - 1) < 1e-3


def test_gate_moment_against_quadrature():
    u = np.linspace(0.0, 12.0, 200_001)
    for rho in (-0.7, -0.2, 0.0, 0.3, 0.9):
        a = rho / math.sqrt(1 - rho * rho)
        cdf = 0.5 * (1 + np.vectorize(math.erf)(a * u / math.sqrt(2)))
        integrand = u * u * cdf * np.exp(-u * u / 2) / math.sqrt(2 * math.pi)
        quad = np.trapezoid(integrand, u)
        assert relu_square_gate_moment(rho) == pytest.approx(quad, rel=1e-7)
    assert relu_square_gate_moment(1.0) == pytest.approx(0.5)
    assert relu_square_gate_moment(0.0) == pytest.approx(0.25)
    assert relu_square_gate_moment(-1.0) == pytest.approx(0.0, abs=1e-15)


def test_limit_is_two_for_orthogonal_centres_and_one_for_equal_ones():
    assert mixture_growth_ratio_limit() == 2.0
    assert mixture_growth_ratio_limit(np.eye(5)) == pytest.approx(2.0, rel=1e-14)
    assert mixture_growth_ratio_limit(np.ones((3, 4))) == pytest.approx(1.0, rel=1e-12)


def test_limit_matches_a_wide_network_on_a_tight_mixture():
    """Orthogonal centres, sigma^2 = 1e-6, width 40 000: R_0 within 1.5% of the limit 2."""
    rng = np.random.default_rng(3)
    C, d, per = 4, 8, 5
    centres = np.eye(d)[:C]
    labels = np.repeat(np.arange(C), per)
    X = np.sqrt(d) * (centres[labels] + 1e-3 / np.sqrt(d) * rng.standard_normal((C * per, d)))
    W1 = rng.standard_normal((40_000, d))
    R0 = own_class_growth_ratio(gated_growth_from_rest(W1, X, np.eye(C)[labels]))
    assert R0 == pytest.approx(mixture_growth_ratio_limit(centres), rel=0.015)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="rho"):
        relu_square_gate_moment(1.5)
    with pytest.raises(ValueError, match="square"):
        own_class_growth_ratio(np.ones((2, 3)))
    with pytest.raises(ValueError, match="centres"):
        mixture_growth_ratio_limit(np.zeros((3, 2)))
