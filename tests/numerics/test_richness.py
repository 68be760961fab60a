"""The centred, rescaled model f_gamma and per-head kernel recording."""
import numpy as np
import pytest

from ntkdyn.numerics.kernels import (alignment, empirical_ntk, relative_change, specialization,
                                     specialization_index)
from ntkdyn.numerics.networks import MLP
from ntkdyn.numerics.richness import CenteredModel, KernelRecorder, kernel_metrics, train_centered
from ntkdyn.numerics.synthetic import gaussian_mixture_classes
from ntkdyn.numerics.training import gradient_descent


@pytest.fixture(scope="module")
def task():
    return gaussian_mixture_classes(24, 8, num_classes=3, seed=3)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("depth", [2, 3])
def test_gradient_matches_finite_differences(task, activation, depth):
    net = MLP([8] + [16] * (depth - 1) + [3], activation)
    params0 = net.init(1)
    model = CenteredModel(net, params0, gamma=2.5)
    params = [W + 0.3 * np.random.default_rng(2).standard_normal(W.shape) for W in params0]
    loss, grads = model.loss_and_gradients(params, task.X, task.Y)
    assert loss == pytest.approx(model.loss(params, task.X, task.Y), rel=1e-14)
    direction = [np.random.default_rng(5 + l).standard_normal(W.shape)
                 for l, W in enumerate(params)]
    eps = 1e-5
    plus = model.loss([W + eps * V for W, V in zip(params, direction)], task.X, task.Y)
    minus = model.loss([W - eps * V for W, V in zip(params, direction)], task.X, task.Y)
    fd = (plus - minus) / (2 * eps)
    analytic = sum(np.vdot(g, V) for g, V in zip(grads, direction))
    assert analytic == pytest.approx(fd, rel=1e-7)


def test_starts_at_zero_and_scales_with_gamma(task):
    net = MLP([8, 32, 3])
    params0 = net.init(0)
    params = [1.1 * W for W in params0]
    m1, m4 = CenteredModel(net, params0, 1.0), CenteredModel(net, params0, 4.0)
    assert np.all(m1.apply(params0, task.X) == 0.0)
    np.testing.assert_allclose(m4.apply(params, task.X), m1.apply(params, task.X) / 4.0, rtol=1e-13)
    # The cache is keyed by the array object: a different X gives its own f(X; theta_0).
    X2 = task.X[:5].copy()
    np.testing.assert_allclose(m1.apply(params, X2), m1.apply(params, task.X)[:5], rtol=1e-13)


def test_update_uses_lr_gamma_squared(task):
    net = MLP([8, 16, 3])
    params0 = net.init(0)
    model = CenteredModel(net, params0, gamma=3.0)
    grads = model.loss_and_gradients(params0, task.X, task.Y)[1]
    stepped = model.update(params0, grads, 0.1)
    for W, W0, g in zip(stepped, params0, grads):
        np.testing.assert_allclose(W, W0 - 0.9 * g, rtol=1e-15)


@pytest.mark.parametrize("gamma", [0.1, 1.0, 10.0])
def test_function_space_speed_independent_of_gamma(task, gamma):
    """One step: f_gamma = lr K Y / n + O(lr^2 gamma), K the raw network's full NTK."""
    net = MLP([8, 64, 3])
    params0 = net.init(4)
    model = CenteredModel(net, params0, gamma)
    lr = 1e-5
    traj = gradient_descent(model, params0, task.X, task.Y, lr, 1, update=model.update)
    f1 = model.apply(traj.params, task.X)
    K = empirical_ntk(net, params0, task.X, heads="full")  # (k, k, n, n)
    predicted = lr * np.einsum("ijab,bj->ai", K, task.Y) / task.X.shape[0]
    np.testing.assert_allclose(f1, predicted, rtol=1e-4 * max(gamma, 1.0), atol=1e-14)


def test_lazy_limit_is_frozen_kernel_regression(task):
    """gamma -> 0: f_gamma follows f <- f - lr K (f - y) / n with the kernel at initialisation."""
    net = MLP([8, 64, 3])
    params0 = net.init(7)
    lr, steps = 0.1, 100
    K = empirical_ntk(net, params0, task.X, heads="full")
    n = task.X.shape[0]
    f = np.zeros_like(task.Y)
    for _ in range(steps):
        f = f - lr * np.einsum("ijab,bj->ai", K, f - task.Y) / n
    errors = []
    for gamma in (1e-2, 1e-3):
        model = CenteredModel(net, params0, gamma)
        traj = gradient_descent(model, params0, task.X, task.Y, lr, steps, update=model.update)
        errors.append(np.linalg.norm(model.apply(traj.params, task.X) - f) / np.linalg.norm(f))
    assert errors[1] < 2e-4
    # The deviation from the frozen kernel is O(gamma): ten times smaller gamma, ~10x smaller error.
    assert 5 < errors[0] / errors[1] < 20


def test_kernel_change_grows_with_gamma(task):
    net = MLP([8, 128, 3])
    changes = []
    for gamma in (0.01, 0.1, 1.0, 10.0):
        run = train_centered(net, task.X, task.Y, gamma, 0.1, 100, seed=0, num_records=3,
                             keep_kernels=True)
        K = run.metrics["kernels"]
        changes.append(relative_change(K[-1].sum(0), K[0].sum(0)))
    assert changes[0] < changes[1] < changes[2] < changes[3]
    # Lazy regime: change proportional to gamma.
    assert changes[1] / changes[0] == pytest.approx(10.0, rel=0.15)


def test_train_centered_records(task):
    net = MLP([8, 32, 3])
    run = train_centered(net, task.X, task.Y, 5.0, 0.5, 200, seed=2, num_records=8,
                         keep_kernels=True)
    steps = run.record_steps
    assert steps[0] == 0 and steps[-1] == 200 and np.all(np.diff(steps) > 0)
    assert np.all(np.diff(np.log(steps[1:])) > 0.5)  # log-spaced
    np.testing.assert_allclose(run.record_times, 0.5 * steps)
    assert run.losses[0] == pytest.approx(0.5 * np.sum(task.Y ** 2) / 24, rel=1e-14)
    assert run.losses[-1] < 0.2 * run.losses[0]
    m = run.metrics
    assert m["specialization"].shape == (len(steps), 3, 3) and m["xi"].shape == (len(steps),)
    # Step-0 metrics recomputed independently: per-head kernels from explicit Jacobians.
    J = net.jacobian(run.params0, task.X)  # (n, k, P)
    K0 = np.einsum("aip,bip->iab", J, J)
    np.testing.assert_allclose(m["kernels"][0], K0, rtol=1e-12, atol=1e-12)
    direct = kernel_metrics(K0, task.Y)
    np.testing.assert_allclose(direct["specialization"], specialization(K0, task.Y), rtol=1e-12)
    S = specialization(K0, task.Y)
    assert direct["xi"] == pytest.approx(specialization_index(S), rel=1e-12)
    A = alignment(K0.sum(0), task.Y, True)
    assert direct["alignment_centered"] == pytest.approx(A, rel=1e-13)
    assert "top_overlap" not in kernel_metrics(K0, task.Y, spectral=False)
    for key in ("alignment_centered", "alignment_uncentered", "xi", "top_overlap"):
        assert m[key][0] == pytest.approx(direct[key], rel=1e-10)
    assert run.gain() == pytest.approx(m["alignment_centered"][-1] - m["alignment_centered"][0])


def test_probe_set(task):
    net = MLP([8, 16, 3])
    probe = gaussian_mixture_classes(12, 8, num_classes=3, seed=9)
    rec = KernelRecorder(probe.X, probe.Y, keep_kernels=True)
    run_params = net.init(0)
    value = rec(net, run_params, task.X, task.Y)
    assert rec.results()["kernels"].shape == (1, 3, 12, 12)
    K = empirical_ntk(net, run_params, probe.X, heads="each")
    assert value == pytest.approx(kernel_metrics(K, probe.Y)["alignment_centered"])
    with pytest.raises(ValueError, match="probe"):
        KernelRecorder(probe.X, None)


def test_bad_input(task):
    net = MLP([8, 16, 3])
    with pytest.raises(ValueError, match="gamma"):
        CenteredModel(net, net.init(0), 0.0)
    with pytest.raises(TypeError, match="net"):
        CenteredModel("mlp", net.init(0), 1.0)
    with pytest.raises(ValueError, match="params0"):
        CenteredModel(net, net.init(0)[:1], 1.0)
    with pytest.raises(ValueError, match="Y"):
        train_centered(net, task.X, task.Y[:, :2], 1.0, 0.1, 5)
    with pytest.raises(ValueError, match="num_records"):
        train_centered(net, task.X, task.Y, 1.0, 0.1, 5, num_records=1)
