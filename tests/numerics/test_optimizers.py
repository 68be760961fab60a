"""Optimisers with state: SGD (momentum, Nesterov) and Adam against hand-written recurrences."""
import numpy as np
import pytest

from ntkdyn.base.errors import DivergenceError
from ntkdyn.numerics.networks import MLP
from ntkdyn.numerics.optimizers import Optimizer, adam, apply_updates, sgd
from ntkdyn.numerics.training import gradient_descent


class Quadratic:
    """``L(W_1, W_2) = sum_l 1/2 tr(W_l^T A_l W_l) - tr(B_l^T W_l)``, gradient ``A_l W_l - B_l``."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.A, self.B = [], []
        for shape in [(4, 3), (2, 4)]:
            Q = rng.standard_normal((shape[0], shape[0]))
            self.A.append(Q @ Q.T / shape[0] + 0.1 * np.eye(shape[0]))
            self.B.append(rng.standard_normal(shape))
        self.params0 = [rng.standard_normal(B.shape) for B in self.B]

    def gradients(self, params):
        return [A @ W - B for A, B, W in zip(self.A, self.B, params)]

    def loss_and_gradients(self, params, X=None, Y=None):
        loss = sum(0.5 * np.sum(W * (A @ W)) - np.sum(B * W)
                   for A, B, W in zip(self.A, self.B, params))
        return float(loss) + 10.0, self.gradients(params)  # + 10: positive, no divergence check


def _max_rel(a, b):
    return max(np.max(np.abs(x - y)) / np.max(np.abs(y)) for x, y in zip(a, b))


def _train(q, opt, steps):
    return gradient_descent(q, q.params0, None, None, opt, steps)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_the_heavy_ball_recurrence(nesterov):
    q, lr, mu, steps = Quadratic(), 0.05, 0.9, 60
    W = [P.copy() for P in q.params0]
    v = [np.zeros_like(P) for P in W]
    for _ in range(steps):
        g = q.gradients(W)
        v = [mu * vi + gi for vi, gi in zip(v, g)]
        step = [gi + mu * vi for gi, vi in zip(g, v)] if nesterov else v
        W = [Wi - lr * si for Wi, si in zip(W, step)]
    traj = _train(q, sgd(lr, momentum=mu, nesterov=nesterov), steps)
    assert _max_rel(traj.params, W) <= 1e-12
    np.testing.assert_array_equal(traj.times, lr * np.arange(steps + 1))


def test_adam_matches_kingma_ba_algorithm_1():
    q, lr, b1, b2, eps, steps = Quadratic(1), 0.01, 0.9, 0.999, 1e-8, 80
    W = [P.copy() for P in q.params0]
    m = [np.zeros_like(P) for P in W]
    v = [np.zeros_like(P) for P in W]
    for t in range(1, steps + 1):
        g = q.gradients(W)
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi ** 2 for vi, gi in zip(v, g)]
        m_hat = [mi / (1 - b1 ** t) for mi in m]
        v_hat = [vi / (1 - b2 ** t) for vi in v]
        W = [Wi - lr * mh / (np.sqrt(vh) + eps) for Wi, mh, vh in zip(W, m_hat, v_hat)]
    traj = _train(q, adam(lr, b1, b2, eps), steps)
    assert _max_rel(traj.params, W) <= 1e-12
    # Adam's first step moves every coordinate by lr (|m_hat| / sqrt(v_hat) = 1).
    first = _train(q, adam(lr), 1).params
    np.testing.assert_allclose(np.abs(first[0] - q.params0[0]), lr, rtol=1e-6)


def test_plain_sgd_is_bitwise_plain_gradient_descent():
    net = MLP([5, 16, 2], "tanh")
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((12, 5)), rng.standard_normal((12, 2))
    params = net.init(0)
    plain = gradient_descent(net, params, X, Y, 0.3, 25)
    opt = gradient_descent(net, params, X, Y, sgd(0.3), 25)
    assert all(np.array_equal(a, b) for a, b in zip(plain.params, opt.params))
    np.testing.assert_array_equal(plain.losses, opt.losses)
    np.testing.assert_array_equal(plain.times, opt.times)


def test_schedules_momentum_and_time_axis():
    q, mu, steps = Quadratic(2), 0.5, 30
    schedule = lambda s: 0.1 / (1 + s)  # noqa: E731
    W = [P.copy() for P in q.params0]
    v = [np.zeros_like(P) for P in W]
    for s in range(steps):
        v = [mu * vi + gi for vi, gi in zip(v, q.gradients(W))]
        W = [Wi - schedule(s) * vi for Wi, vi in zip(W, v)]
    traj = _train(q, sgd(schedule, momentum=mu), steps)
    assert _max_rel(traj.params, W) <= 1e-12
    np.testing.assert_allclose(traj.times, np.concatenate([[0], np.cumsum(
        [schedule(s) for s in range(steps)])]), rtol=1e-14)
    assert traj.lr is schedule


def test_init_update_pair_is_functional():
    q = Quadratic()
    opt = sgd(0.1, momentum=0.9)
    assert isinstance(opt, Optimizer) and repr(opt) == "sgd(lr=0.1, momentum=0.9)"
    state = opt.init(q.params0)
    assert state.count == 0 and all(np.all(v == 0) for v in state.velocity)
    g = q.gradients(q.params0)
    before = [x.copy() for x in g]
    updates, new = opt.update(g, state, q.params0)
    assert new.count == 1 and state.count == 0  # the old state is untouched
    assert all(np.array_equal(a, b) for a, b in zip(g, before))
    np.testing.assert_array_equal(apply_updates(q.params0, updates)[0], q.params0[0] - 0.1 * g[0])
    state = adam(0.1).init(q.params0)
    assert state.count == 0 and len(state.mu) == len(state.nu) == 2


@pytest.mark.parametrize("make", [lambda: sgd(50.0, momentum=0.9), lambda: adam(1e6),
                                  lambda: sgd(lambda s: 2.0 ** s)])
def test_divergence_is_raised_with_the_step(make):
    net = MLP([5, 1], "linear")
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((12, 5)), rng.standard_normal((12, 1))
    with pytest.raises(DivergenceError) as info:
        gradient_descent(net, net.init(0), X, Y, make(), 500)
    step = info.value.step
    assert 0 < step < 500 and f"step {step}" in str(info.value)
    # the steps before it are fine
    gradient_descent(net, net.init(0), X, Y, make(), step - 1)


@pytest.mark.parametrize("call,error,match", [
    (lambda: sgd(0.0), ValueError, "lr must be > 0"),
    (lambda: sgd(0.1, momentum=1.0), ValueError, "momentum"),
    (lambda: sgd(0.1, momentum=-0.1), ValueError, "momentum"),
    (lambda: sgd(0.1, momentum="0.9"), TypeError, "momentum"),
    (lambda: sgd(0.1, nesterov=True), ValueError, "nesterov"),
    (lambda: adam(0.1, b2=1.0), ValueError, "b2"),
    (lambda: adam(0.1, eps=0.0), ValueError, "eps"),
])
def test_bad_settings_name_themselves(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bad_schedule_value_and_update_rule_with_an_optimiser():
    q = Quadratic()
    with pytest.raises(ValueError, match=r"lr\(3\)"):
        _train(q, sgd(lambda s: 0.1 if s < 3 else -0.1), 10)
    with pytest.raises(TypeError, match="optimiser"):
        gradient_descent(q, q.params0, None, None, sgd(0.1), 5,
                         update=lambda p, g, lr: [W - lr * x for W, x in zip(p, g)])
