"""Gradient descent: time axis, recording, divergence, and O(lr) agreement with gradient flow."""
import numpy as np
import pytest
from scipy.linalg import expm

from ntkdyn.base.errors import DivergenceError
from ntkdyn.numerics.kernels import empirical_ntk
from ntkdyn.numerics.networks import MLP
from ntkdyn.numerics.training import gradient_descent, record_schedule


def problem(widths=(5, 16, 2), act="tanh", n=12, seed=0):
    net = MLP(list(widths), act)
    rng = np.random.default_rng(seed)
    return net, net.init(seed), rng.standard_normal((n, widths[0])), rng.standard_normal((n, widths[-1]))


def test_trajectory_records_time_losses_observables_and_snapshots():
    net, params, X, Y = problem()
    traj = gradient_descent(net, params, X, Y, lr=0.5, steps=20, every=5, snapshots=True,
                            record={"ntk": lambda net, p, X, Y: empirical_ntk(net, p, X)})
    np.testing.assert_allclose(traj.times, 0.5 * np.arange(21))
    assert traj.losses.shape == (21,) and traj.losses[-1] < traj.losses[0]
    np.testing.assert_array_equal(traj.record_steps, [0, 5, 10, 15, 20])
    np.testing.assert_allclose(traj.record_times, [0, 2.5, 5, 7.5, 10])
    assert traj.observables["ntk"].shape == (5, 12, 12)
    np.testing.assert_array_equal(traj.snapshots[0][0], params[0])
    np.testing.assert_array_equal(traj.snapshots[-1][1], traj.params[1])
    assert traj.losses[-1] == pytest.approx(net.loss(traj.params, X, Y), rel=1e-14)
    np.testing.assert_allclose(traj.observables["ntk"][-1], empirical_ntk(net, traj.params, X))


def test_steps_are_plain_gradient_steps_and_inputs_are_not_modified():
    net, params, X, Y = problem()
    before = [W.copy() for W in params]
    traj = gradient_descent(net, params, X, Y, lr=0.1, steps=2)
    manual = params
    for _ in range(2):
        manual = [W - 0.1 * g for W, g in zip(manual, net.gradients(manual, X, Y))]
    assert all(np.array_equal(a, b) for a, b in zip(traj.params, manual))
    assert all(np.array_equal(a, b) for a, b in zip(params, before))


def test_gradient_descent_approaches_gradient_flow_at_first_order_in_lr():
    """Linear model f = X w / sqrt(d): gradient flow gives r(t) = exp(-t K / n) r(0), K = X X^T / d."""
    net = MLP([6, 1], "linear")
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((10, 6)), rng.standard_normal((10, 1))
    params = net.init(2)
    T = 2.0
    K = X @ X.T / 6
    r_flow = expm(-T * K / 10) @ (net.apply(params, X) - Y)
    lrs = np.array([0.2, 0.1, 0.05, 0.025])
    errors = []
    for lr in lrs:
        traj = gradient_descent(net, params, X, Y, lr=lr, steps=int(round(T / lr)))
        errors.append(np.linalg.norm(net.apply(traj.params, X) - Y - r_flow))
    slope = np.polyfit(np.log(lrs), np.log(errors), 1)[0]
    assert abs(slope - 1.0) < 0.05


def test_divergence_is_detected_with_step_and_loss():
    net, params, X, Y = problem(act="relu")
    with pytest.raises(DivergenceError) as info:
        gradient_descent(net, params, X, Y, lr=100.0, steps=200)
    assert info.value.step > 0
    assert not np.isfinite(info.value.loss) or info.value.loss > 1e8
    assert f"step {info.value.step}" in str(info.value)


def test_record_schedule():
    np.testing.assert_array_equal(record_schedule(10, every=4), [0, 4, 8, 10])
    log = record_schedule(1000, num=5, log=True)
    assert log[0] == 0 and log[-1] == 1000 and np.all(np.diff(log) > 0)
    np.testing.assert_array_equal(record_schedule(7), [0, 7])


@pytest.mark.parametrize("kwargs,error,match", [
    ({"lr": 0.0}, ValueError, "lr must be > 0"),
    ({"lr": -1.0}, ValueError, "lr must be > 0"),
    ({"lr": float("nan")}, ValueError, "lr must be finite"),
    ({"steps": -1}, ValueError, "steps must be >= 0"),
    ({"steps": 2.5}, TypeError, "steps must be an integer"),
    ({"record": {"x": 3}}, TypeError, r"record\['x'\] must be callable"),
    ({"record_steps": [50]}, ValueError, "record_steps must lie in"),
])
def test_bad_arguments_name_themselves(kwargs, error, match):
    net, params, X, Y = problem()
    args = {"lr": 0.1, "steps": 5} | kwargs
    with pytest.raises(error, match=match):
        gradient_descent(net, params, X, Y, **args)
