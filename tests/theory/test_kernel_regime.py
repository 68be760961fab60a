"""Frozen-kernel dynamics: closed forms against explicit recursions, an ODE solver, matrix
exponentials, their t = 0 and t -> inf limits, and the O(lr) gap between GD and gradient flow."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from ntkdyn.theory.kernel_regime import (FrozenKernelRegime, gradient_flow_filter,
                                         kernel_regression, spectral_filter)


def _kernel(n, rng, rank=None, extra=0):
    """A PSD Gram matrix ``A A^T`` on ``n + extra`` points; the first ``n`` are training points."""
    A = rng.standard_normal((n + extra, rank or 3 * n))
    K = A @ A.T / A.shape[1]
    return K[:n, :n], K[n:, :n]


def _problem(n=12, k=1, n_test=7, seed=0):
    rng = np.random.default_rng(seed)
    K, Kt = _kernel(n, rng, extra=n_test)
    Y = rng.standard_normal((n, k))
    F0 = 0.3 * rng.standard_normal((n, k))
    F0t = 0.3 * rng.standard_normal((n_test, k))
    return K, Kt, Y, F0, F0t


# ------------------------------------------------------------------------------ filters
def test_spectral_filter_is_the_geometric_sum():
    mu = np.array([0.0, 1e-12, 1e-6, 0.01, 0.3, 1.0, 1.9, 2.5])
    lr = 0.8
    for K in (1, 7, 200):
        direct = lr * sum((1 - lr * mu) ** j for j in range(K))
        np.testing.assert_allclose(spectral_filter(mu, lr, K), direct, rtol=1e-12)
    assert spectral_filter(np.array([0.0]), lr, 5)[0] == pytest.approx(lr * 5)
    inf = spectral_filter(np.array([0.0, 0.5, 2.0, 3.0]), 1.0, float("inf"))
    assert inf[0] == np.inf and inf[1] == 2.0 and np.isnan(inf[2]) and np.isnan(inf[3])


def test_small_eigenvalues_keep_full_precision():
    # 1 - (1 - x)^K by direct subtraction loses all digits at x = 1e-15; expm1/log1p does not.
    mu = np.array([1e-15])
    # Taylor: h_10(mu) = 10 - 45 mu + O(mu^2), g_10(mu) = 10 - 50 mu + O(mu^2).
    np.testing.assert_allclose(spectral_filter(mu, 1.0, 10), 10.0 - 45e-15, rtol=1e-15)
    np.testing.assert_allclose(gradient_flow_filter(mu, 10.0), 10.0 - 50e-15, rtol=1e-15)
    assert abs((1 - (1 - mu[0]) ** 10) / mu[0] - 10.0) > 1e-3  # the naive formula errs 1e3x more


def test_flow_filter_is_the_small_step_limit():
    mu = np.linspace(0.0, 2.0, 9)
    t = 3.0
    errors = []
    lrs = [1e-2, 1e-3, 1e-4]
    for lr in lrs:
        errors.append(np.max(np.abs(spectral_filter(mu, lr, round(t / lr))
                                    - gradient_flow_filter(mu, t))))
    slope = np.polyfit(np.log(lrs), np.log(errors), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.05)
    np.testing.assert_allclose(gradient_flow_filter(mu[1:], np.inf), 1 / mu[1:])


# ------------------------------------------------------------------------- dynamics
@pytest.mark.parametrize("k", [1, 3])
def test_discrete_dynamics_match_the_gd_recursion(k):
    K, Kt, Y, F0, F0t = _problem(k=k)
    n = K.shape[0]
    lr, steps = 0.9, 150
    regime = FrozenKernelRegime(K, Y, F0, Kt, F0t)
    F, Ft = F0.copy(), F0t.copy()
    for _ in range(steps):  # f_{s+1} = f_s - (lr/n) K (f_s - y); test: f_t += -(lr/n) K(x,X) r_s
        R = F - Y
        F = F - lr / n * K @ R
        Ft = Ft - lr / n * Kt @ R
    t = lr * steps
    np.testing.assert_allclose(regime.train_predictions(t, lr=lr), F, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(regime.test_predictions(t, lr=lr), Ft, rtol=1e-11, atol=1e-12)
    assert regime.train_loss(lr * steps, lr=lr) == pytest.approx(0.5 * np.sum((F - Y) ** 2) / n)


def test_gradient_flow_matches_ode_solver_and_matrix_exponential():
    K, Kt, Y, F0, F0t = _problem(k=2)
    n = K.shape[0]
    regime = FrozenKernelRegime(K, Y, F0, Kt, F0t)
    times = np.array([0.0, 0.5, 3.0, 20.0])
    sol = solve_ivp(regime.ode_rhs, (0, times[-1]), F0.ravel(), t_eval=times,
                    method="DOP853", rtol=1e-12, atol=1e-13)
    pred = regime.train_predictions(times)
    np.testing.assert_allclose(pred.reshape(len(times), -1), sol.y.T, rtol=1e-9, atol=1e-10)
    for t, F in zip(times, pred):
        np.testing.assert_allclose(F, Y + expm(-K * t / n) @ (F0 - Y), rtol=1e-11, atol=1e-12)
    # Test outputs: f_t(x) = f_0(x) - K(x, X) K^{-1} (I - e^{-K t/n}) r_0.
    t = 3.0
    direct = F0t - Kt @ np.linalg.solve(K, (np.eye(n) - expm(-K * t / n)) @ (F0 - Y))
    np.testing.assert_allclose(regime.test_predictions(t), direct, rtol=1e-9, atol=1e-10)


def test_limits_t0_and_infinity():
    K, Kt, Y, F0, F0t = _problem(k=2)
    regime = FrozenKernelRegime(K, Y, F0, Kt, F0t)
    np.testing.assert_allclose(regime.train_predictions(0.0), F0, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(regime.test_predictions(0.0), F0t)
    np.testing.assert_allclose(regime.train_predictions(0.0, lr=0.1), F0, atol=1e-15)
    np.testing.assert_allclose(regime.limit_train(), Y, rtol=1e-10, atol=1e-10)
    direct = kernel_regression(K, Y, Kt, F0, F0t)
    np.testing.assert_allclose(regime.limit_test(), direct, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(F0t + Kt @ np.linalg.solve(K, Y - F0), direct, rtol=1e-12)
    # Long but finite times approach the limit.
    late = regime.test_predictions(1e4 * K.shape[0] / np.linalg.eigvalsh(K).min())
    np.testing.assert_allclose(late, direct, rtol=1e-8, atol=1e-9)


def test_singular_kernel_limit_is_the_pseudo_inverse():
    rng = np.random.default_rng(2)
    K, Kt = _kernel(10, rng, rank=4, extra=5)  # rank 4: residual outside the range stays
    Y = rng.standard_normal((10, 1))
    regime = FrozenKernelRegime(K, Y, k_test_train=Kt, rcond=1e-10)
    pinv = np.linalg.pinv(K, rcond=1e-10, hermitian=True)
    np.testing.assert_allclose(regime.limit_test(), Kt @ pinv @ Y, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(regime.limit_train(), K @ pinv @ Y, rtol=1e-8, atol=1e-10)
    assert np.linalg.norm(regime.limit_train() - Y) > 0.1


def test_full_multi_output_kernel_layout():
    """A (k, k, n, n) kernel with cross-head blocks equals the explicit (k n)-dimensional system."""
    rng = np.random.default_rng(5)
    n, k, n_test = 8, 2, 4
    A = rng.standard_normal((k * (n + n_test), 40))
    big = A @ A.T / 40  # index (i, a) = i * (n + n_test) + a
    full = big.reshape(k, n + n_test, k, n + n_test).transpose(0, 2, 1, 3)
    K, Kt = full[:, :, :n, :n], full[:, :, n:, :n]
    Y = rng.standard_normal((n, k))
    F0 = rng.standard_normal((n, k))
    regime = FrozenKernelRegime(K, Y, F0, Kt, np.zeros((n_test, k)))
    M = K.transpose(0, 2, 1, 3).reshape(k * n, k * n)
    Mt = Kt.transpose(0, 2, 1, 3).reshape(k * n_test, k * n)
    r0 = (F0 - Y).T.ravel()
    t, lr = 2.0, 0.5
    steps = int(t / lr)
    r = r0.copy()
    test = np.zeros(k * n_test)
    for _ in range(steps):
        test -= lr / n * Mt @ r
        r = r - lr / n * M @ r
    np.testing.assert_allclose(regime.train_predictions(t, lr=lr), Y + r.reshape(k, n).T,
                               rtol=1e-11)
    np.testing.assert_allclose(regime.test_predictions(t, lr=lr), test.reshape(k, n_test).T,
                               rtol=1e-10, atol=1e-12)


def test_array_of_times_and_losses():
    K, Kt, Y, F0, F0t = _problem()
    Yt = np.ones((Kt.shape[0], 1))
    regime = FrozenKernelRegime(K, Y, F0, Kt, F0t)
    times = np.array([0.0, 0.2, 1.0])
    losses = regime.train_loss(times, lr=0.2)
    assert losses.shape == (3,) and np.all(np.diff(losses) < 0)
    single = regime.test_loss(0.2, Yt, lr=0.2)
    assert regime.test_loss(times, Yt, lr=0.2)[1] == pytest.approx(single)


def test_bad_input():
    K, Kt, Y, F0, F0t = _problem()
    with pytest.raises(ValueError, match="k_train_train"):
        FrozenKernelRegime(K[:, :-1], Y)
    with pytest.raises(ValueError, match="symmetric"):
        FrozenKernelRegime(K + np.triu(np.ones_like(K), 1), Y)
    with pytest.raises(ValueError, match="f0_train"):
        FrozenKernelRegime(K, Y, F0[:-1])
    with pytest.raises(ValueError, match="k_test_train"):
        FrozenKernelRegime(K, Y, k_test_train=Kt[:, :-1])
    regime = FrozenKernelRegime(K, Y)
    with pytest.raises(ValueError, match="test_predictions needs"):
        regime.test_predictions(1.0)
    with pytest.raises(ValueError, match="whole number of steps"):
        regime.train_predictions(0.25, lr=0.1)
    with pytest.raises(ValueError, match="t must be >= 0"):
        regime.train_predictions(-1.0)
    with pytest.raises(ValueError, match="steps"):
        spectral_filter(np.ones(2), 0.1, 2.5)
    with pytest.raises(ValueError, match="lr"):
        spectral_filter(np.ones(2), 0.0, 2)
