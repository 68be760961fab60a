"""Infinite-width kernels against Gauss-Hermite quadrature and Monte-Carlo wide networks."""
import numpy as np
import pytest
from scipy import special

from ntkdyn.numerics.kernels import empirical_ntk
from ntkdyn.numerics.networks import MLP
from ntkdyn.theory.relu_ntk import GAUSSIAN_MOMENTS, infinite_nngp, infinite_ntk

PHI = {"relu": (lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
       "erf": (special.erf, lambda x: 2 / np.sqrt(np.pi) * np.exp(-x * x)),
       "linear": (lambda x: x, np.ones_like)}


def quadrature_moments(phi, dphi, a, b, c, order=200):
    """``E[phi(u) phi(v)]`` and ``E[phi'(u) phi'(v)]`` by 2-D Gauss-Hermite on a Cholesky factor."""
    z, w = np.polynomial.hermite_e.hermegauss(order)
    w = w / w.sum()
    L = np.linalg.cholesky(np.array([[a, c], [c, b]]))
    Z1, Z2 = np.meshgrid(z, z, indexing="ij")
    W = np.outer(w, w)
    u = L[0, 0] * Z1
    v = L[1, 0] * Z1 + L[1, 1] * Z2
    return np.sum(W * phi(u) * phi(v)), np.sum(W * dphi(u) * dphi(v))


COVARIANCES = [(1.0, 1.0, 0.3), (2.0, 0.5, -0.6), (0.7, 1.3, 0.9)]


@pytest.mark.parametrize("name", ["erf", "linear"])
@pytest.mark.parametrize("a,b,c", COVARIANCES)
def test_smooth_closed_form_moments_match_quadrature(name, a, b, c):
    e_phi, e_dphi = GAUSSIAN_MOMENTS[name](np.array(c), np.array(a), np.array(b))
    q_phi, q_dphi = quadrature_moments(*PHI[name], a, b, c)
    assert e_phi == pytest.approx(q_phi, rel=1e-10, abs=1e-12)
    assert e_dphi == pytest.approx(q_dphi, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("a,b,c", COVARIANCES)
def test_arc_cosine_moments_match_monte_carlo(a, b, c):
    """Gauss-Hermite converges slowly across ReLU's kink, so sample instead:
    4e6 draws give a standard error below 6e-4; the tolerance is 5 standard errors."""
    e_phi, e_dphi = GAUSSIAN_MOMENTS["relu"](np.array(c), np.array(a), np.array(b))
    L = np.linalg.cholesky(np.array([[a, c], [c, b]]))
    u, v = L @ np.random.default_rng(0).standard_normal((2, 4_000_000))
    phi, dphi = PHI["relu"]
    prod, dprod = phi(u) * phi(v), dphi(u) * dphi(v)
    assert abs(e_phi - prod.mean()) < 5 * prod.std() / 2000
    assert abs(e_dphi - dprod.mean()) < 5 * dprod.std() / 2000


def test_known_values_on_the_sphere():
    """ReLU, ``x.x/d = 1``: Theta_2(x, x) = 1/2 + 1/2 = 1 and NNGP(x, x) = 1/2."""
    X = np.eye(4) * 2.0
    np.testing.assert_allclose(np.diag(infinite_ntk(X, depth=2)), 1.0, rtol=1e-14)
    np.testing.assert_allclose(np.diag(infinite_nngp(X, depth=2)), 0.5, rtol=1e-14)
    # orthogonal inputs: E[relu(u) relu(v)] = 1/(2 pi), E[step step] = 1/4
    assert infinite_ntk(X, depth=2)[0, 1] == pytest.approx(1 / (2 * np.pi), rel=1e-14)


def test_linear_network_kernels_are_depth_times_input_gram():
    X = np.random.default_rng(0).standard_normal((5, 3))
    G = X @ X.T / 3
    for L in (1, 2, 4):
        np.testing.assert_allclose(infinite_ntk(X, depth=L, activation="linear"), L * G, rtol=1e-13)
        np.testing.assert_allclose(infinite_nngp(X, depth=L, activation="linear"), G, rtol=1e-13)


def test_cross_kernel_is_consistent_with_the_joint_kernel():
    rng = np.random.default_rng(1)
    X, X2 = rng.standard_normal((4, 3)), rng.standard_normal((6, 3))
    joint = infinite_ntk(np.vstack([X, X2]), depth=3, activation="erf", init_scale=1.3)
    np.testing.assert_allclose(infinite_ntk(X, X2, depth=3, activation="erf", init_scale=1.3),
                               joint[:4, 4:], rtol=1e-13)


@pytest.mark.parametrize("activation,depth,scale,width,tol",
                         [("relu", 2, 1.0, 8192, 0.015), ("relu", 3, 1.0, 2048, 0.03),
                          ("erf", 2, 1.5, 8192, 0.015), ("erf", 3, 1.0, 2048, 0.03)])
def test_monte_carlo_wide_networks_converge_to_the_infinite_ntk(activation, depth, scale, width,
                                                                 tol):
    X = np.random.default_rng(2).standard_normal((6, 4))
    net = MLP([4] + [width] * (depth - 1) + [1], activation, init_scale=scale)
    K = np.mean([empirical_ntk(net, net.init(s), X) for s in range(8)], axis=0)
    K_inf = infinite_ntk(X, depth=depth, activation=activation, init_scale=scale)
    # Monte-Carlo error ~ 1 / sqrt(width * seeds) (about 0.5% at depth 2, 1.5% at depth 3);
    # the tolerances are about twice that.
    assert np.linalg.norm(K - K_inf) / np.linalg.norm(K_inf) < tol


def test_monte_carlo_outputs_have_the_nngp_covariance():
    X = np.random.default_rng(3).standard_normal((4, 3))
    net = MLP([3, 256, 256, 1], "relu", init_scale=1.2)
    F = np.array([net.apply(net.init(s), X)[:, 0] for s in range(4000)])
    S = infinite_nngp(X, depth=3, init_scale=1.2)
    # 4000 samples: standard error of a covariance entry ~ sqrt(2/4000) ~ 2%.
    assert np.linalg.norm(F.T @ F / 4000 - S) / np.linalg.norm(S) < 0.06


def test_bad_arguments():
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match="activation must be one of"):
        infinite_ntk(X, activation="tanh")
    with pytest.raises(ValueError, match="depth must be >= 1"):
        infinite_ntk(X, depth=0)
    with pytest.raises(ValueError, match="X2 must have 2 columns"):
        infinite_nngp(X, np.ones((2, 3)))
    with pytest.raises(ValueError, match="X must be finite"):
        infinite_ntk(np.array([[np.inf, 1.0]]))
