"""Gradient descent: time axis, recording, divergence, O(lr) agreement with gradient flow, stopping
rules, learning-rate schedules, hooks and minibatches."""
import numpy as np
import pytest
from scipy.linalg import expm

from ntkdyn.base.errors import DivergenceError
from ntkdyn.numerics.kernels import empirical_ntk
from ntkdyn.numerics.networks import MLP, Network
from ntkdyn.numerics.optimizers import adam
from ntkdyn.numerics.training import elapsed_times, epoch_batches, gradient_descent, record_schedule


def problem(widths=(5, 16, 2), act="tanh", n=12, seed=0):
    net = MLP(list(widths), act)
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n, widths[0])), rng.standard_normal((n, widths[-1]))
    return net, net.init(seed), X, Y


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
    """Linear model f = X w / sqrt(d): gradient flow gives r(t) = exp(-t K / n) r(0),
    K = X X^T / d."""
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


# ------------------------------------------------------------------ stopping rules
def test_stop_below_a_fraction_of_the_initial_loss():
    net, params, X, Y = problem()
    full = gradient_descent(net, params, X, Y, lr=0.5, steps=400)
    stop = int(np.argmax(full.losses <= 0.1 * full.losses[0]))
    assert 0 < stop < 400
    traj = gradient_descent(net, params, X, Y, lr=0.5, steps=400, stop_below=0.1, every=50,
                            record={"loss": lambda n, p, x, y: n.loss(p, x, y)}, snapshots=True)
    assert traj.stop_step == stop and len(traj.losses) == stop + 1
    np.testing.assert_array_equal(traj.losses, full.losses[:stop + 1])
    np.testing.assert_array_equal(traj.times, 0.5 * np.arange(stop + 1))
    expected = np.union1d(np.arange(0, stop, 50), [stop])
    np.testing.assert_array_equal(traj.record_steps, expected)
    np.testing.assert_array_equal(traj.observables["loss"], full.losses[expected])
    assert np.array_equal(traj.snapshots[-1][0], traj.params[0])
    assert full.stop_step is None


def test_stop_callable_sees_every_step_and_loss_until_it_fires():
    net, params, X, Y = problem()
    seen = []

    def stop(step, loss):
        seen.append((step, loss))
        return step == 7

    traj = gradient_descent(net, params, X, Y, lr=0.2, steps=50, stop=stop)
    ref = gradient_descent(net, params, X, Y, lr=0.2, steps=7)
    assert traj.stop_step == 7 and [s for s, _ in seen] == list(range(8))
    np.testing.assert_array_equal([loss for _, loss in seen], ref.losses)
    assert all(np.array_equal(a, b) for a, b in zip(traj.params, ref.params))


# --------------------------------------------------------------- learning-rate schedules
def test_constant_schedule_is_bitwise_the_constant_learning_rate():
    net, params, X, Y = problem()
    a = gradient_descent(net, params, X, Y, lr=0.3, steps=30, every=10)
    b = gradient_descent(net, params, X, Y, lr=lambda s: 0.3, steps=30, every=10)
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.record_times, b.record_times)
    assert all(np.array_equal(x, y) for x, y in zip(a.params, b.params))


def test_schedule_steps_and_elapsed_time():
    net, params, X, Y = problem()
    lr = lambda s: 0.5 if s < 10 else 0.05  # noqa: E731
    traj = gradient_descent(net, params, X, Y, lr=lr, steps=25, every=5)
    manual = params
    for s in range(25):
        manual = [W - lr(s) * g for W, g in zip(manual, net.gradients(manual, X, Y))]
    assert all(np.array_equal(a, b) for a, b in zip(traj.params, manual))
    expected = np.concatenate([0.5 * np.arange(11), 5.0 + 0.05 * np.arange(1, 16)])
    np.testing.assert_array_equal(traj.times, expected)
    np.testing.assert_array_equal(traj.record_times, expected[[0, 5, 10, 15, 20, 25]])
    decay = [1.0 / (1 + s) for s in range(100)]
    np.testing.assert_allclose(elapsed_times(decay), np.concatenate([[0], np.cumsum(decay)]),
                               rtol=1e-14)
    np.testing.assert_array_equal(elapsed_times([]), [0.0])


# ----------------------------------------------------------------------------- hooks
class Scaled:
    """The network with its loss and gradients multiplied by ``c``."""

    def __init__(self, net, c):
        self.net, self.c = net, c

    def loss_and_gradients(self, params, X, Y):
        loss, grads = self.net.loss_and_gradients(params, X, Y)
        return self.c * loss, [self.c * g for g in grads]


def test_hook_is_called_every_step_and_can_replace_the_model():
    net, params, X, Y = problem()
    calls, used = [], []

    def hook(step, model, p):
        calls.append((step, model))
        return Scaled(net, 0.5) if step == 5 else None

    traj = gradient_descent(net, params, X, Y, lr=0.4, steps=10, hook=hook, every=1,
                            record={"model": lambda m, p, x, y: used.append(m) or 0,
                                    "net_loss": lambda m, p, x, y: net.loss(p, x, y)})
    assert [s for s, _ in calls] == list(range(11))
    assert all(m is net for s, m in calls[:6]) and all(isinstance(m, Scaled) for _, m in calls[6:])
    assert used[4] is net and all(isinstance(m, Scaled) for m in used[5:])
    manual = params
    for s in range(10):
        c = 1.0 if s < 5 else 0.5
        manual = [W - 0.4 * (c * g) for W, g in zip(manual, net.gradients(manual, X, Y))]
    assert all(np.array_equal(a, b) for a, b in zip(traj.params, manual))
    np.testing.assert_array_equal(traj.losses[5:], 0.5 * traj.observables["net_loss"][5:])
    np.testing.assert_array_equal(traj.losses[:5], traj.observables["net_loss"][:5])


# ----------------------------------------------------------------------------- minibatches
def test_epochs_cover_every_example_once_and_are_seeded():
    batches = epoch_batches(10, 3, seed=4)
    first = [next(batches) for _ in range(8)]  # two epochs: sizes 3, 3, 3, 1
    assert [len(b) for b in first] == [3, 3, 3, 1] * 2
    for epoch in (first[:4], first[4:]):
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), np.arange(10))
    assert not all(np.array_equal(a, b) for a, b in zip(first[:4], first[4:]))
    again = epoch_batches(10, 3, seed=4)
    assert all(np.array_equal(a, next(again)) for a in first)
    other = epoch_batches(10, 3, seed=5)
    assert not all(np.array_equal(a, next(other)) for a in first)


def test_minibatch_gradient_descent_is_reproducible_and_matches_a_manual_loop():
    net, params, X, Y = problem(n=20)
    traj = gradient_descent(net, params, X, Y, lr=0.3, steps=12, batch_size=6, seed=2)
    again = gradient_descent(net, params, X, Y, lr=0.3, steps=12, batch_size=6, seed=2)
    other = gradient_descent(net, params, X, Y, lr=0.3, steps=12, batch_size=6, seed=3)
    manual, losses = params, []
    batches = epoch_batches(20, 6, seed=2)
    for _ in range(12):
        idx = next(batches)
        loss, grads = net.loss_and_gradients(manual, X[idx], Y[idx])
        losses.append(loss)
        manual = [W - 0.3 * g for W, g in zip(manual, grads)]
    assert all(np.array_equal(a, b) for a, b in zip(traj.params, manual))
    assert all(np.array_equal(a, b) for a, b in zip(traj.params, again.params))
    assert not np.array_equal(traj.params[0], other.params[0])
    np.testing.assert_array_equal(traj.losses[:12], losses)
    assert traj.losses[12] == net.loss(manual, X, Y)  # the last loss is on the full data


def test_explicit_batches():
    net, params, X, Y = problem(n=20)
    idx = [np.arange(5), None, np.arange(5, 20)]
    traj = gradient_descent(net, params, X, Y, lr=0.3, steps=3, batches=idx)
    manual = params
    for i in idx:
        Xb, Yb = (X, Y) if i is None else (X[i], Y[i])
        manual = [W - 0.3 * g for W, g in zip(manual, net.gradients(manual, Xb, Yb))]
    assert all(np.array_equal(a, b) for a, b in zip(traj.params, manual))
    with pytest.raises(ValueError, match="batches ran out at step 3"):
        gradient_descent(net, params, X, Y, lr=0.3, steps=4, batches=idx)


# ------------------------------------------------------------------------ divergence
@pytest.mark.parametrize("mode", [
    {}, {"batch_size": 4}, {"lr": lambda s: 50.0 * 1.5 ** s}, {"stop_below": 1e-12},
    {"hook": lambda s, m, p: None}, {"update": lambda p, g, lr: [W - lr * x for W, x in zip(p, g)]},
])
def test_divergence_is_raised_with_the_step_in_every_mode(mode):
    net = MLP([5, 1], "linear")
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((12, 5)), rng.standard_normal((12, 1))
    args = {"lr": 50.0, "steps": 300} | mode
    with pytest.raises(DivergenceError) as info:
        gradient_descent(net, net.init(0), X, Y, **args)
    step = info.value.step
    assert 0 < step < 300 and f"step {step}" in str(info.value)
    ok = gradient_descent(net, net.init(0), X, Y, **(args | {"steps": step - 1}))
    assert np.all(ok.losses <= 1e8 * (ok.losses[0] + 1))


@pytest.mark.parametrize("kwargs,error,match", [
    ({"stop": 3}, TypeError, "stop must be callable"),
    ({"hook": "x"}, TypeError, "hook must be callable"),
    ({"stop_below": 0.0}, ValueError, "stop_below must be > 0"),
    ({"batch_size": 13}, ValueError, "batch_size must be <="),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"batch_size": 4, "batches": [None]}, TypeError, "batch_size or batches"),
    ({"lr": "0.1"}, TypeError, "lr must be a real number"),
])
def test_bad_loop_arguments_name_themselves(kwargs, error, match):
    net, params, X, Y = problem()
    args = {"lr": 0.1, "steps": 5} | kwargs
    with pytest.raises(error, match=match):
        gradient_descent(net, params, X, Y, **args)


def test_divergence_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(DivergenceError(7, float("inf"), "gradient descent diverged")))
    assert isinstance(err, DivergenceError) and err.step == 7 and "at step 7" in str(err)


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_gradient_descent_trains_the_biases(parameterization):
    """Every array of the parameter list (weights, then biases) takes its gradient step; the
    biases' gradient matches central differences of the loss; Adam keeps one state per array."""
    net = Network([5, 9, 7, 2], "tanh", W_std=1.2, b_std=0.6, parameterization=parameterization)
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((12, 5)), rng.standard_normal((12, 2))
    params = net.init(4)
    lr = 0.3 if parameterization == "ntk" else 0.05
    traj = gradient_descent(net, params, X, Y, lr=lr, steps=3)
    manual = params
    for _ in range(3):
        manual = [W - lr * g for W, g in zip(manual, net.gradients(manual, X, Y))]
    assert len(traj.params) == 2 * net.depth
    assert all(np.array_equal(a, b) for a, b in zip(traj.params, manual))
    grads, eps = net.gradients(params, X, Y), 1e-6
    for l in range(net.depth, 2 * net.depth):
        for j in range(params[l].size):
            plus = [W.copy() for W in params]
            minus = [W.copy() for W in params]
            plus[l].flat[j] += eps
            minus[l].flat[j] -= eps
            fd = (net.loss(plus, X, Y) - net.loss(minus, X, Y)) / (2 * eps)
            assert abs(fd - grads[l].flat[j]) <= 1e-8 * max(1.0, abs(fd))
    ad = gradient_descent(net, params, X, Y, lr=adam(0.01), steps=20)
    assert ad.losses[-1] < ad.losses[0]
    assert all(np.any(a != b) for a, b in zip(ad.params, params))
