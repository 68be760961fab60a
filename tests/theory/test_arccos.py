"""Arc-cosine kernels of degree 0 and 1: known values, Monte Carlo, and the one implementation
behind the infinite-width ReLU kernels and the two-layer PTK."""
import numpy as np
import pytest

from ntkdyn.theory import nfa, relu_ntk
from ntkdyn.theory.arccos import angle, arccos_degree0, arccos_degree1


def test_known_values():
    theta = np.array([0.0, np.pi / 2, np.pi])
    np.testing.assert_allclose(arccos_degree0(theta), [0.5, 0.25, 0.0], atol=1e-16)
    np.testing.assert_allclose(arccos_degree1(theta, 2.0), [1.0, 1 / np.pi, 0.0], atol=1e-16)
    np.testing.assert_array_equal(angle(np.array([1.0 + 1e-15, -1.0 - 1e-15])), [0.0, np.pi])
    assert arccos_degree0(0.3, 2.0) == 2.0 * arccos_degree0(0.3)


@pytest.mark.parametrize("rho", [-0.7, 0.0, 0.4, 0.95])
def test_gaussian_moments_by_monte_carlo(rho):
    """1e6 draws: standard errors below 1e-3; tolerance five of them."""
    q1, q2 = 2.0, 0.5
    cov = np.array([[q1, rho * np.sqrt(q1 * q2)], [rho * np.sqrt(q1 * q2), q2]])
    u, v = np.linalg.cholesky(cov) @ np.random.default_rng(1).standard_normal((2, 10 ** 6))
    relu, step = np.maximum(u, 0) * np.maximum(v, 0), (u > 0) * (v > 0) * 1.0
    theta = angle(rho)
    assert abs(arccos_degree1(theta, np.sqrt(q1 * q2)) - relu.mean()) < 5 * relu.std() / 1000
    assert abs(arccos_degree0(theta) - step.mean()) < 5 * step.std() / 1000


def test_relu_kernels_and_ptk_use_them():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((9, 4))
    norms = np.linalg.norm(X, axis=1)
    theta = angle(X @ X.T / np.outer(norms, norms))
    np.testing.assert_array_equal(nfa.relu_ptk_two_layer(X, init_scale=0.7),
                                  arccos_degree0(theta, 0.7 ** 2))
    var = np.einsum("ij,ij->i", X, X) / 4
    e_phi, e_dphi = relu_ntk.GAUSSIAN_MOMENTS["relu"](X @ X.T / 4, var[:, None], var[None, :])
    # the angles come from differently rounded cosines; arccos near 1 amplifies that to 1e-8
    np.testing.assert_allclose(e_dphi, arccos_degree0(theta), rtol=0, atol=1e-7)
    np.testing.assert_allclose(e_phi, arccos_degree1(theta, np.sqrt(np.outer(var, var))),
                               rtol=1e-12, atol=1e-12)
