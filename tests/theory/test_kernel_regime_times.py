"""Loss curves, hitting times and the time change of rescaled-kernel gradient descent, against
explicit recursions, a dense scan and an ODE solver."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from ntkdyn.theory.kernel_regime import (FrozenKernelRegime, rescaled_kernel_time,
                                         rescaled_kernel_time_inverse, time_to_loss,
                                         train_loss_curve)


def _regime(n=10, k=1, seed=0, rank=None):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, rank or 2 * n))
    K = A @ A.T / A.shape[1]
    return FrozenKernelRegime(K, rng.standard_normal((n, k)), 0.2 * rng.standard_normal((n, k))), K


@pytest.mark.parametrize("k", [1, 3])
def test_train_loss_curve_matches_train_loss(k):
    regime, _ = _regime(k=k)
    t = np.array([0.0, 0.5, 3.0, 40.0])
    np.testing.assert_allclose(train_loss_curve(regime, t), regime.train_loss(t), rtol=1e-12)
    np.testing.assert_allclose(train_loss_curve(regime, t, lr=0.5),
                               regime.train_loss(t, lr=0.5), rtol=1e-12)


def test_time_to_loss_against_a_step_by_step_recursion():
    regime, K = _regime()
    n, lr = K.shape[0], 0.7
    r = regime.f0_train - regime.y_train
    target = 0.3 * float(np.sum(r * r) / (2 * n))
    s = 0
    while np.sum(r * r) / (2 * n) > target:  # r <- (I - lr K / n) r until the loss is reached
        r = r - lr * K @ r / n
        s += 1
    assert time_to_loss(regime, target, lr=lr) == pytest.approx(lr * s, rel=1e-12)


def test_time_to_loss_flow_is_a_root_and_limits():
    regime, _ = _regime(rank=6)  # rank 6 < n: a loss floor outside the kernel's range
    L0 = float(regime.train_loss(0.0))
    t = time_to_loss(regime, 0.5 * L0)
    assert float(regime.train_loss(t)) == pytest.approx(0.5 * L0, rel=1e-8)
    assert time_to_loss(regime, 2 * L0) == 0.0
    floor = float(regime.train_loss(np.inf))
    assert floor > 0 and time_to_loss(regime, 0.9 * floor) == np.inf
    with pytest.raises(ValueError, match="diverges"):
        time_to_loss(regime, 0.5 * L0, lr=1e3)


def test_rescaled_kernel_time_solves_the_time_dependent_flow():
    regime, K = _regime()
    n = K.shape[0]
    times = np.array([0.0, 1.0, 2.5, 4.0])
    scales = np.array([1.0, 1.3, 1.2, 2.0])

    def c(t):
        return np.interp(t, times, scales)  # piecewise linear, constant after the last time

    r0 = (regime.f0_train - regime.y_train)[:, 0]
    t_eval = np.array([0.7, 2.5, 3.3, 6.0])
    sol = solve_ivp(lambda t, r: -c(t) * K @ r / n, (0, 6.0), r0, t_eval=t_eval, rtol=1e-11,
                    atol=1e-13, max_step=0.05)
    tau = rescaled_kernel_time(times, scales, t_eval)
    np.testing.assert_allclose(regime.train_predictions(tau)[:, :, 0] - regime.y_train[:, 0],
                               sol.y.T, atol=1e-8)
    back = rescaled_kernel_time_inverse(times, scales, tau)
    np.testing.assert_allclose(back, t_eval, rtol=1e-12)
    assert rescaled_kernel_time_inverse(times, scales, np.inf) == np.inf
    with pytest.raises(ValueError, match="start at 0"):
        rescaled_kernel_time([1.0, 2.0], [1.0, 1.0])
