"""The iterative-linearisation experiments: the sparse-feature-update claim on the default task
(one seed at full scale by default, five seeds under ``slow``), the eNTK block structure and
loss jumps, and iterative linearisation against damped Gauss-Newton."""
import matplotlib.figure
import numpy as np
import pytest

from ntkdyn.figures import il_gauss_newton, il_kernel, il_sweep
from ntkdyn.figures.registry import experiments


def _holds(module, numbers, name):
    low, high = module.TARGETS[name]
    return low <= numbers[name] <= high


def test_registered():
    names = experiments()
    for module in (il_sweep, il_kernel, il_gauss_newton):
        assert names[module.NAME] is module


def test_sweep_claim_on_the_default_task_one_seed():
    """d = 20, n = 200, width 256, lr = 1, 3000 steps: K = 100 within 5% of GD and
    K = inf at least 30% worse."""
    config = dict(il_sweep.QUICK, seeds=1, record_every=1000)
    result = il_sweep.compute(config)
    numbers = il_sweep.agreement(result)
    assert _holds(il_sweep, numbers, "test_loss_ratio_k100"), numbers
    assert _holds(il_sweep, numbers, "test_loss_ratio_kinf"), numbers
    np.testing.assert_array_equal(result["feature_updates"], [3000, 30, 0])
    assert numbers["feature_updates_within_eps"] == 30
    assert isinstance(il_sweep.plot(result), matplotlib.figure.Figure)


@pytest.mark.slow
def test_sweep_claim_paper_scale():
    result = il_sweep.compute(dict(il_sweep.PAPER, record_every=500))
    numbers = il_sweep.agreement(result)
    for name in il_sweep.TARGETS:
        assert _holds(il_sweep, numbers, name), numbers
    # Sparse updates suffice: every K up to 100 stays within 5% of gradient descent.
    assert numbers["feature_updates_within_eps"] <= 30


def test_sweep_needs_gradient_descent_in_the_grid():
    with pytest.raises(ValueError, match="periods"):
        il_sweep.compute(dict(il_sweep.QUICK, periods=[10, 100], steps=10))


def test_kernel_blocks_and_loss_jumps_reduced():
    config = dict(il_kernel.QUICK, n_train=100, n_test=200, width=128, steps=200, period=50,
                  probe=20, lrs=[1.0, 2.0], periods=[1, 50, 200, 0], grid_steps=400)
    result = il_kernel.compute(config)
    numbers = il_kernel.agreement(result)
    assert numbers["kernel_change_within_blocks"] == 0.0
    assert numbers["kernel_jump_min"] > 1e-4
    assert _holds(il_kernel, numbers, "loss_jump_slope_vs_lrK"), numbers
    assert result["il_kernels"].shape == (21, 20, 20)
    np.testing.assert_array_equal(result["il_relinearisation_steps"], [0, 50, 100, 150, 200])
    assert isinstance(il_kernel.plot(result), matplotlib.figure.Figure)


def test_gauss_newton_comparison_reduced():
    config = dict(il_gauss_newton.QUICK, n_test=200, iterations=3,
                  dampings=[0.1, 0.01])
    result = il_gauss_newton.compute(config)
    numbers = il_gauss_newton.agreement(result)
    for name in il_gauss_newton.TARGETS:
        assert _holds(il_gauss_newton, numbers, name), numbers
    np.testing.assert_array_equal(result["periods"], [10, 100])
    # Iteration 0 is the shared starting point.
    np.testing.assert_allclose(result["il_loss"][:, 0], result["gn_loss"][:, 0], rtol=1e-12)
    assert isinstance(il_gauss_newton.plot(result), matplotlib.figure.Figure)


def test_same_config_same_result():
    config = dict(il_sweep.QUICK, steps=20, seeds=2, n_train=20, n_test=10, width=16,
                  record_every=10)
    a, b = il_sweep.compute(config), il_sweep.compute(config)
    np.testing.assert_array_equal(a["test_loss"], b["test_loss"])
    assert a["test_loss"][0, 0] != a["test_loss"][1, 0]
