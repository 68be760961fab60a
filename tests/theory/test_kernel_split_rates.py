"""K_V / K_W split of the two-layer NTK and its t = 0 growth rates (theory.two_layer_alignment)."""
import numpy as np
import pytest

from ntkdyn.numerics.networks import MLP
from ntkdyn.theory import two_layer_alignment as tla


def problem(n=24, d=6, m=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    rng.shuffle(y)
    return rng.standard_normal((m, d)), rng.standard_normal((1, m)), X, y


def jacobian_split(W1, W2, X):
    """``(K_V, K_W)`` as Gram matrices of the explicit per-layer Jacobian columns."""
    m, d = W1.shape
    J = MLP([d, m, 1], "relu").jacobian([W1, W2], X)[:, 0]
    return J[:, m * d:] @ J[:, m * d:].T, J[:, :m * d] @ J[:, :m * d].T


def network_output(W1, W2, X):
    m, d = W1.shape
    return (np.maximum(X @ W1.T / np.sqrt(d), 0.0) @ W2.T / np.sqrt(m))[:, 0]


def test_split_is_the_per_layer_jacobian_gram():
    W1, W2, X, y = problem()
    s = tla.kernel_split_velocity(W1, W2, X, y[:, None])
    K_V, K_W = jacobian_split(W1, W2, X)
    np.testing.assert_allclose(s["K_V"], K_V, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s["K_W"], K_W, rtol=1e-12, atol=1e-12)


def test_velocity_matches_finite_differences_of_the_integrated_flow():
    """Integrate the centred gradient flow (RK4, residual y - f_gamma) to t = +-h and difference
    the Jacobian-Gram K_V, K_W: the t = 0 velocity of kernel_split_velocity."""
    gamma = 2.0
    W1, W2, X, y = problem()
    f0 = network_output(W1, W2, X)

    def velocity(state):
        A, B = state
        residual = y - (network_output(A, B, X) - f0) / gamma
        return tla.flow_velocity(A, B, X, residual[:, None], gamma)

    def integrate(h, steps=4):
        state = (W1, W2)
        dt = h / steps
        for _ in range(steps):
            k1 = velocity(state)
            k2 = velocity([s + 0.5 * dt * k for s, k in zip(state, k1)])
            k3 = velocity([s + 0.5 * dt * k for s, k in zip(state, k2)])
            k4 = velocity([s + dt * k for s, k in zip(state, k3)])
            state = [s + dt / 6 * (a + 2 * b + 2 * c + e)
                     for s, a, b, c, e in zip(state, k1, k2, k3, k4)]
        return state

    h = 1e-4
    plus, minus = jacobian_split(*integrate(h), X), jacobian_split(*integrate(-h), X)
    s = tla.kernel_split_velocity(W1, W2, X, y[:, None], gamma)
    for a, name in enumerate(("dK_V", "dK_W")):
        fd = (plus[a] - minus[a]) / (2 * h)
        assert np.linalg.norm(fd - s[name]) <= 1e-6 * np.linalg.norm(s[name])


def test_complement_form_is_the_mean_over_an_orthonormal_complement():
    W1, W2, X, y = problem()
    K = tla.kernel_split_velocity(W1, W2, X, y[:, None])["K_W"]
    basis = np.linalg.qr(np.column_stack([y, np.eye(len(y))]))[0][:, 1:len(y)]
    np.testing.assert_allclose(tla.complement_bilinear_form(K, y),
                               np.mean(tla.bilinear_form(K, basis)), rtol=1e-12)


def test_unit_sums_equal_the_kernel_velocity_and_rates_along_y_coincide():
    gamma = 3.0
    W1, W2, X, y = problem(seed=1)
    Z = np.column_stack([y, np.random.default_rng(5).standard_normal((len(y), 3))])
    rate_V, rate_W = tla.fixed_sign_bilinear_rates(W1, W2, X, y, Z, gamma)
    s = tla.kernel_split_velocity(W1, W2, X, y[:, None], gamma)
    scale = np.abs(rate_W).max()
    np.testing.assert_allclose(rate_V, tla.bilinear_form(s["dK_V"], Z), atol=1e-12 * scale)
    np.testing.assert_allclose(rate_W, tla.bilinear_form(s["dK_W"], Z), atol=1e-12 * scale)
    rates = tla.kernel_split_rates(W1, W2, X, y, gamma)
    assert rates["rate_B_V_y"] == pytest.approx(rates["rate_B_W_y"], rel=1e-12)
    assert rates["anisotropy_W"] == pytest.approx(rates["rate_B_W_y"] / rates["rate_B_W_perp"])
    # every rate is proportional to gamma
    assert tla.kernel_split_rates(W1, W2, X, y, 2 * gamma)["rate_B_V_perp"] == pytest.approx(
        2 * rates["rate_B_V_perp"], rel=1e-12)


def test_bad_input():
    W1, W2, X, y = problem()
    with pytest.raises(ValueError, match="one output"):
        tla.kernel_split_rates(W1, np.vstack([W2, W2]), X, y)
    with pytest.raises(ValueError, match="zero column"):
        tla.bilinear_form(np.eye(len(y)), np.zeros(len(y)))
    with pytest.raises(ValueError, match="phi''"):
        tla.fixed_sign_bilinear_rates(W1, W2, X, y, y, activation="tanh")
