"""Iterative linearised training: JVP/VJP against dense Jacobians and finite differences, the
K = 1 and K = inf limits, the construction on gradient descent with a re-linearising hook, the
spectral filter and damped Gauss-Newton."""
import numpy as np
import pytest

from ntkdyn.base.errors import DivergenceError
from ntkdyn.base.losses import mse_and_output_gradient
from ntkdyn.numerics.kernels import empirical_ntk
from ntkdyn.numerics.linearised import (LOSSES, LinearisedMLP, accuracy, damped_gauss_newton,
                                        damped_gauss_newton_step, filtered_step, gauss_newton_gram,
                                        iterative_linearised_training, jvp, matched_damping,
                                        minibatch_indices, spectral_filter_step)
from ntkdyn.numerics.networks import MLP, Network
from ntkdyn.numerics.synthetic import single_index_hermite
from ntkdyn.numerics.training import Trajectory, gradient_descent
from ntkdyn.theory.kernel_regime import FrozenKernelRegime, spectral_filter

INF = float("inf")

NETS = [
    dict(widths=[3, 2]),
    dict(widths=[4, 7, 1]),
    dict(widths=[4, 6, 5, 3], activation="tanh"),
    dict(widths=[3, 5, 4, 6, 2], activation="softplus", parameterization="standard",
         init_scale=0.5),
    dict(widths=[4, 6, 2], activation="tanh", output_activation="tanh"),
]


def _setup(spec, n=6, seed=0):
    net = MLP(**spec)
    rng = np.random.default_rng(seed)
    params = net.init(rng)
    X = rng.standard_normal((n, net.input_dim))
    V = [rng.standard_normal(W.shape) for W in params]
    return net, params, X, V, rng


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b)))


def _flat_rel(a, b):
    a = np.concatenate([np.ravel(x) for x in a])
    b = np.concatenate([np.ravel(x) for x in b])
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# ------------------------------------------------------------------------ JVP / VJP
@pytest.mark.parametrize("spec", NETS)
def test_jvp_matches_dense_jacobian(spec):
    net, params, X, V, _ = _setup(spec)
    f, Jv = jvp(net, params, X, V)
    J = net.jacobian(params, X)  # (n, k, P), the slow reference
    np.testing.assert_allclose(f, net.apply(params, X), rtol=0, atol=0)
    np.testing.assert_allclose(Jv, J @ net.flatten(V), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", [s for s in NETS if s.get("activation") in ("tanh", "softplus")])
def test_jvp_matches_central_differences(spec):
    net, params, X, V, _ = _setup(spec)
    eps = 1e-5
    plus = net.apply([W + eps * v for W, v in zip(params, V)], X)
    minus = net.apply([W - eps * v for W, v in zip(params, V)], X)
    np.testing.assert_allclose(jvp(net, params, X, V)[1], (plus - minus) / (2 * eps),
                               rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("spec", NETS)
def test_vjp_is_adjoint_of_jvp(spec):
    net, params, X, V, rng = _setup(spec)
    model = LinearisedMLP(net, params)
    G = rng.standard_normal((X.shape[0], net.output_dim))
    lhs = np.vdot(G, model.jvp(V, X))
    rhs = sum(np.vdot(a, b) for a, b in zip(model.vjp(G, X), V))
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)


def test_linear_model_is_affine_in_the_weights():
    net, params, X, V, rng = _setup(NETS[2])
    U = [rng.standard_normal(W.shape) for W in params]
    model = LinearisedMLP(net, params)
    np.testing.assert_array_equal(model.apply(params, X), net.apply(params, X))
    a, b = 0.7, -1.3
    mixed = model.apply([W + a * v + b * u for W, v, u in zip(params, V, U)], X)
    expected = net.apply(params, X) + a * model.jvp(V, X) + b * model.jvp(U, X)
    np.testing.assert_allclose(mixed, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_linear_model_gradient_matches_finite_differences(loss):
    net, params, X, V, rng = _setup(dict(widths=[4, 6, 5, 3], activation="tanh"))
    Y = np.eye(3)[rng.integers(0, 3, X.shape[0])]
    model = LinearisedMLP(net, params, loss=loss)
    theta = [W + 0.3 * v for W, v in zip(params, V)]
    value, grads = model.loss_and_gradients(theta, X, Y)
    eps = 1e-6
    for _ in range(5):
        D = [rng.standard_normal(W.shape) for W in params]
        plus = model.loss_and_gradients([W + eps * d for W, d in zip(theta, D)], X, Y)[0]
        minus = model.loss_and_gradients([W - eps * d for W, d in zip(theta, D)], X, Y)[0]
        directional = sum(np.vdot(g, d) for g, d in zip(grads, D))
        assert abs((plus - minus) / (2 * eps) - directional) <= 1e-7 * max(1.0, abs(directional))


def test_cross_entropy_value_and_gradient_against_direct_formula():
    rng = np.random.default_rng(3)
    F = rng.standard_normal((5, 4)) * 30.0  # large logits: the stable form must not overflow
    Y = np.eye(4)[rng.integers(0, 4, 5)]
    loss, dF = LOSSES["cross_entropy"].value_and_grad(F, Y)
    top = F.max(1, keepdims=True)
    logp = F - top - np.log(np.sum(np.exp(F - top), 1, keepdims=True))
    assert loss == pytest.approx(-np.mean(np.sum(Y * logp, axis=1)), rel=1e-13)
    np.testing.assert_allclose(dF, (np.exp(logp) - Y) / 5, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------- the two limits
def _task(n=30, d=5, width=16, k=1, seed=1, activation="relu"):
    rng = np.random.default_rng(seed)
    net = MLP([d, width, k], activation=activation)
    X = rng.standard_normal((n, d))
    Y = np.tanh(X[:, :k] * 2.0) + 0.1 * rng.standard_normal((n, k))
    return net, net.init(rng), X, Y, rng


def test_k1_equals_gradient_descent_after_100_steps():
    net, params, X, Y, _ = _task()
    il = iterative_linearised_training(net, params, X, Y, 0.5, 100, relinearise_every=1)
    gd = gradient_descent(net, params, X, Y, 0.5, 100)
    assert isinstance(il, Trajectory)
    assert _flat_rel(il.params, gd.params) <= 1e-12
    np.testing.assert_allclose(il.losses, gd.losses, rtol=1e-12)
    assert il.feature_updates == 100


def test_k1_equals_minibatch_sgd_with_cross_entropy():
    rng = np.random.default_rng(4)
    net = MLP([5, 12, 9, 3], activation="tanh")
    params = net.init(rng)
    X = rng.standard_normal((40, 5))
    Y = np.eye(3)[np.argmax(X[:, :3], axis=1)]
    il = iterative_linearised_training(net, params, X, Y, 0.3, 100, 1, loss="cross_entropy",
                                       batch_size=8, seed=11)
    # Reference: plain minibatch SGD on softmax cross-entropy, written out by hand.
    theta = [W.copy() for W in params]
    for idx in minibatch_indices(40, 8, 100, seed=11):
        fwd = net.forward(theta, X[idx])
        P = np.exp(fwd.output - fwd.output.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        grads = net.backward(theta, fwd, (P - Y[idx]) / len(idx))
        theta = [W - 0.3 * g for W, g in zip(theta, grads)]
    assert _flat_rel(il.params, theta) <= 1e-12


def test_minibatches_are_seeded():
    net, params, X, Y, _ = _task()
    a = iterative_linearised_training(net, params, X, Y, 0.5, 20, 5, batch_size=10, seed=1)
    b = iterative_linearised_training(net, params, X, Y, 0.5, 20, 5, batch_size=10, seed=1)
    c = iterative_linearised_training(net, params, X, Y, 0.5, 20, 5, batch_size=10, seed=2)
    assert _flat_rel(a.params, b.params) == 0.0
    assert _flat_rel(a.params, c.params) > 1e-6


@pytest.mark.parametrize("k", [1, 2])
def test_k_infinity_equals_closed_form_frozen_kernel_dynamics(k):
    net, params, X, Y, rng = _task(n=25, k=k)
    X_test = rng.standard_normal((40, X.shape[1]))
    lr, steps = 0.7, 300
    traj = iterative_linearised_training(net, params, X, Y, lr, steps, INF)
    model = LinearisedMLP(net, traj.linearisation_point)
    heads = "sum" if k == 1 else "full"
    theory = FrozenKernelRegime(empirical_ntk(net, params, X, heads=heads), Y,
                                net.apply(params, X),
                                empirical_ntk(net, params, X_test, X, heads=heads),
                                net.apply(params, X_test))
    t = lr * steps
    assert traj.feature_updates == 0
    assert _rel(model.apply(traj.params, X), theory.train_predictions(t, lr=lr)) <= 1e-8
    assert _rel(model.apply(traj.params, X_test), theory.test_predictions(t, lr=lr)) <= 1e-8
    np.testing.assert_allclose(traj.losses[-1], theory.train_loss(t, lr=lr), rtol=1e-8)


def test_frozen_model_through_the_shared_gradient_descent_loop():
    net, params, X, Y, _ = _task()
    il = iterative_linearised_training(net, params, X, Y, 0.5, 50, INF)
    gd = gradient_descent(LinearisedMLP(net, params), params, X, Y, 0.5, 50)
    assert _flat_rel(il.params, gd.params) <= 1e-13
    np.testing.assert_allclose(il.losses, gd.losses, rtol=1e-13)


def test_iterative_linearisation_is_gradient_descent_with_a_relinearising_hook():
    net, params, X, Y, _ = _task()
    K = 7

    def relinearise(step, model, theta):
        return LinearisedMLP(net, theta) if step > 0 and step % K == 0 else None

    gd = gradient_descent(LinearisedMLP(net, params), params, X, Y, 0.5, 30, hook=relinearise)
    il = iterative_linearised_training(net, params, X, Y, 0.5, 30, K)
    assert all(np.array_equal(a, b) for a, b in zip(il.params, gd.params))
    np.testing.assert_array_equal(il.losses, gd.losses)
    np.testing.assert_array_equal(il.times, gd.times)
    assert LOSSES["mse"].value_and_grad is mse_and_output_gradient


# ----------------------------------------------------------------- recorded observables
def test_kernel_constant_within_blocks_and_jumping_at_updates():
    net, params, X, Y, _ = _task()
    K = 10
    traj = iterative_linearised_training(
        net, params, X, Y, 1.0, 40, K, every=1, ntk_inputs="train",
        record={"ntk": lambda model, theta, X, Y: model.ntk(X)})
    ntk = traj.observables["ntk"]
    for block in range(4):
        inside = ntk[block * K:(block + 1) * K]
        assert np.all(inside == inside[0])
        np.testing.assert_array_equal(traj.kernels[block], inside[0])
    jumps = [np.linalg.norm(ntk[b * K] - ntk[b * K - 1]) for b in range(1, 5)]
    assert min(jumps) > 1e-6 * np.linalg.norm(ntk[0])
    np.testing.assert_array_equal(traj.relinearisation_steps, [0, 10, 20, 30, 40])
    np.testing.assert_array_equal(traj.observables["feature_updates"],
                                  np.arange(41) // K)
    assert traj.kernels.shape == (5, 30, 30)
    # After an update the linear model's loss is the network's own loss.
    np.testing.assert_allclose(traj.loss_after_update, traj.losses[[10, 20, 30, 40]], rtol=1e-12)
    np.testing.assert_allclose(traj.observables["network_loss"][[10, 20, 30, 40]],
                               traj.loss_after_update, rtol=1e-12)


def test_accuracy_and_test_observables():
    net, params, X, Y, rng = _task(k=2)
    Xt = rng.standard_normal((20, X.shape[1]))
    Yt = np.tanh(2 * Xt[:, :2])
    traj = iterative_linearised_training(net, params, X, Y, 0.5, 30, 7, test=(Xt, Yt), every=10,
                                         snapshots=True)
    np.testing.assert_array_equal(traj.record_steps, [0, 10, 20, 30])
    assert traj.feature_updates == 4
    model = LinearisedMLP(net, traj.linearisation_point)
    F_test = model.apply(traj.params, Xt)
    assert traj.observables["test_accuracy"][-1] == accuracy(F_test, Yt)
    assert traj.observables["test_loss"][-1] == pytest.approx(
        0.5 * np.sum((F_test - Yt) ** 2) / 20, rel=1e-12)
    assert traj.observables["accuracy"][-1] == np.mean(
        np.argmax(model.apply(traj.params, X), 1) == np.argmax(Y, 1))
    assert len(traj.snapshots) == 4
    assert _flat_rel(traj.snapshots[-1], traj.params) == 0.0


# ------------------------------------------------------------- the Gauss-Newton connection
def test_spectral_filter_identity_for_k_linear_steps():
    net, params, X, Y, _ = _task(k=2, activation="tanh")
    lr, K = 0.5, 200
    traj = iterative_linearised_training(net, params, X, Y, lr, K, INF)
    moved = [W - W0 for W, W0 in zip(traj.params, params)]
    assert _flat_rel(moved, spectral_filter_step(net, params, X, Y, lr, K)) <= 1e-12


def test_iterated_filter_equals_relinearised_training():
    net, params, X, Y, _ = _task()
    lr, K = 0.5, 25
    traj = iterative_linearised_training(net, params, X, Y, lr, 3 * K, K)
    theta = params
    for _ in range(3):
        theta = [W + d for W, d in zip(theta, spectral_filter_step(net, theta, X, Y, lr, K))]
    assert _flat_rel(traj.params, theta) <= 1e-10


def test_damped_gauss_newton_matches_dense_levenberg_marquardt():
    net, params, X, Y, _ = _task(n=12, width=8, k=2, activation="tanh")
    n = X.shape[0]
    J = net.jacobian(params, X).transpose(1, 0, 2).reshape(2 * n, -1)  # head-major rows
    r = (net.apply(params, X) - Y).T.ravel()
    for damping in (1e-3, 0.1, 10.0):
        dense = -np.linalg.solve(J.T @ J / n + damping * np.eye(J.shape[1]), J.T @ r / n)
        assert _flat_rel([net.flatten(damped_gauss_newton_step(net, params, X, Y, damping))],
                         [dense]) <= 1e-9
    # Undamped: the minimum-norm solution of J delta = -r (over-parameterised, P > k n).
    min_norm = np.linalg.lstsq(J, -r, rcond=None)[0]
    assert _flat_rel([net.flatten(damped_gauss_newton_step(net, params, X, Y, 0.0))],
                     [min_norm]) <= 1e-8
    G = gauss_newton_gram(net, params, X)
    np.testing.assert_allclose(G, J @ J.T / n, rtol=1e-12, atol=1e-14)


def test_inner_loop_to_convergence_is_the_minimum_norm_gauss_newton_step():
    net, params, X, Y, _ = _task(n=10, width=32)
    exact = damped_gauss_newton_step(net, params, X, Y, 0.0)
    mu = np.linalg.eigvalsh(gauss_newton_gram(net, params, X))
    lr = 1.0 / mu.max()
    assert _flat_rel(filtered_step(net, params, X, Y, lambda m: spectral_filter(m, lr, INF)),
                     exact) <= 1e-10
    steps = int(np.ceil(40.0 / (lr * mu.min())))  # (1 - lr mu_min)^K < e^-40
    traj = iterative_linearised_training(net, params, X, Y, lr, steps, INF)
    moved = [W - W0 for W, W0 in zip(traj.params, params)]
    assert _flat_rel(moved, exact) <= 1e-8


def _cosine(net, a, b):
    a, b = net.flatten(a), net.flatten(b)
    return np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))


def test_update_direction_matches_damped_gauss_newton_at_matched_damping():
    task = single_index_hermite(40, 8, seed=0)
    X, Y = task.X, task.Y
    net = MLP([8, 64, 1])
    params = net.init(0)
    lr = 0.01
    assert matched_damping(lr, 10) == pytest.approx(1.0 / (lr * 10))
    gradient = [-g for g in net.gradients(params, X, Y)]
    # lr K mu_max << 1 (mu_max ~ 0.35 here): both filters are ~ lr K (1 - O(lr K mu)).
    K = 10
    il = spectral_filter_step(net, params, X, Y, lr, K)
    gn = damped_gauss_newton_step(net, params, X, Y, matched_damping(lr, K))
    assert _cosine(net, il, gn) > 0.999
    # Where the damping matters (lr K mu_max >> 1) the filters (1 - e^{-x mu}) / mu and
    # 1 / (mu + 1/x), x = lr K, differ by up to 30% near mu = 2/x, so the direction agrees to
    # ~3e-3 only; it is still far closer to damped GN
    # than to the gradient or to a 10x mis-matched damping.
    for K in (1000, 10000, 100000):
        il = spectral_filter_step(net, params, X, Y, lr, K)
        gn = damped_gauss_newton_step(net, params, X, Y, matched_damping(lr, K))
        matched = _cosine(net, il, gn)
        assert matched > 0.996
        assert matched > _cosine(net, il, gradient) + 0.05
        for factor in (0.1, 10.0):
            off = damped_gauss_newton_step(net, params, X, Y, factor * matched_damping(lr, K))
            assert matched > _cosine(net, il, off) + 0.005


def test_damped_gauss_newton_iteration_decreases_loss():
    net, params, X, Y, _ = _task(n=15, width=16)
    traj = damped_gauss_newton(net, params, X, Y, 0.1, 5)
    assert np.all(np.diff(traj.losses) < 0)
    step = damped_gauss_newton_step(net, params, X, Y, 0.1)
    first = [W + d for W, d in zip(params, step)]
    assert traj.losses[1] == pytest.approx(net.loss(first, X, Y), rel=1e-12)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("K, error", [(0, ValueError), (0.5, ValueError), (2.5, ValueError),
                                      (-INF, ValueError), (float("nan"), ValueError),
                                      ("10", TypeError), (True, TypeError)])
def test_bad_relinearisation_period(K, error):
    net, params, X, Y, _ = _task()
    with pytest.raises(error, match="relinearise_every"):
        iterative_linearised_training(net, params, X, Y, 0.1, 5, K)


def test_incompatible_parameter_structure():
    net, params, X, Y, _ = _task()
    with pytest.raises(ValueError, match="params"):
        iterative_linearised_training(net, params[:1], X, Y, 0.1, 5, 2)
    model = LinearisedMLP(net, params)
    with pytest.raises(ValueError, match=r"params\[0\]"):
        model.loss_and_gradients([params[0].T, params[1]], X, Y)
    with pytest.raises(ValueError, match="params0"):
        LinearisedMLP(net, [params[0]])
    with pytest.raises(ValueError, match="tangent"):
        jvp(net, params, X, [params[0]])


def test_other_bad_input():
    net, params, X, Y, _ = _task()
    with pytest.raises(TypeError, match="net must be an MLP"):
        iterative_linearised_training(LinearisedMLP(net, params), params, X, Y, 0.1, 5, 2)
    with pytest.raises(TypeError, match="record"):
        iterative_linearised_training(net, params, X, Y, 0.1, 5, 2, record=[len])
    with pytest.raises(ValueError, match="cross_entropy"):
        LinearisedMLP(net, params, loss="cross_entropy")  # one output: softmax is meaningless
    with pytest.raises(ValueError, match="loss"):
        iterative_linearised_training(net, params, X, Y, 0.1, 5, 2, loss="hinge")
    with pytest.raises(ValueError, match="batch_size"):
        iterative_linearised_training(net, params, X, Y, 0.1, 5, 2, batch_size=31)
    with pytest.raises(TypeError, match="test"):
        iterative_linearised_training(net, params, X, Y, 0.1, 5, 2, test=X)
    with pytest.raises(ValueError, match="ntk_inputs"):
        iterative_linearised_training(net, params, X, Y, 0.1, 5, 2, ntk_inputs="test")
    with pytest.raises(ValueError, match="lr"):
        iterative_linearised_training(net, params, X, Y, -0.1, 5, 2)
    with pytest.raises(ValueError, match="Y"):
        iterative_linearised_training(net, params, X, Y[:-1], 0.1, 5, 2)
    with pytest.raises(ValueError, match="built-in"):
        iterative_linearised_training(net, params, X, Y, 0.1, 5, 2,
                                      record={"loss": lambda m, p, x, y: 0.0})


@pytest.mark.parametrize("K, batch_size", [(INF, None), (5, None), (1, None), (5, 10)])
def test_divergent_training_raises_with_the_step(K, batch_size):
    net, params, X, Y, _ = _task()
    with pytest.raises(DivergenceError) as info:
        iterative_linearised_training(net, params, X, Y, 500.0, 200, K, batch_size=batch_size)
    step = info.value.step
    assert 0 < step < 200 and f"step {step}" in str(info.value)
    assert f"relinearise_every = {K}" in str(info.value)
    iterative_linearised_training(net, params, X, Y, 500.0, step - 1, K, batch_size=batch_size)


# ------------------------------------------------------------------------------ biases
BIASED = [
    dict(widths=[3, 2], b_std=0.5),
    dict(widths=[4, 7, 1], b_std=0.8, W_std=1.3),
    dict(widths=[4, 6, 5, 3], activation="tanh", b_std=0.6, parameterization="standard"),
    dict(widths=[3, 5, 4, 6, 2], activation="softplus", parameterization="standard",
         W_std=1.5, b_std=0.3),
    dict(widths=[4, 6, 2], activation="tanh", output_activation="tanh", b_std=1.1),
    dict(widths=[4, 6, 5, 2], activation="erf", output_activation="sigmoid", b_std=0.9,
         W_std=0.8),
]


def _biased_setup(spec, n=6, seed=0):
    net = Network(**spec)
    assert net.has_bias
    rng = np.random.default_rng(seed)
    params = net.init(rng)
    X = rng.standard_normal((n, net.input_dim))
    V = [rng.standard_normal(W.shape) for W in params]
    return net, params, X, V, rng


@pytest.mark.parametrize("spec", BIASED)
def test_jvp_and_vjp_with_biases_match_the_dense_jacobian(spec):
    net, params, X, V, rng = _biased_setup(spec)
    J = net.jacobian(params, X)  # (n, k, P), bias columns last
    f, Jv = jvp(net, params, X, V)
    np.testing.assert_array_equal(f, net.apply(params, X))
    np.testing.assert_allclose(Jv, J @ net.flatten(V), rtol=1e-12, atol=1e-12)
    # the bias tangents alone
    Vb = [np.zeros_like(W) for W in params[:net.depth]] + V[net.depth:]
    np.testing.assert_allclose(jvp(net, params, X, Vb)[1], J @ net.flatten(Vb), rtol=1e-12,
                               atol=1e-12)
    model = LinearisedMLP(net, params)
    G = rng.standard_normal((X.shape[0], net.output_dim))
    vjp = model.vjp(G, X)
    assert len(vjp) == 2 * net.depth
    np.testing.assert_allclose(net.flatten(vjp), np.einsum("nk,nkp->p", G, J), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("spec", BIASED)
def test_jvp_with_biases_matches_central_differences(spec):
    net, params, X, V, _ = _biased_setup(spec)
    eps = 1e-5
    plus = net.apply([W + eps * v for W, v in zip(params, V)], X)
    minus = net.apply([W - eps * v for W, v in zip(params, V)], X)
    fd = (plus - minus) / (2 * eps)
    got = jvp(net, params, X, V)[1]
    if spec.get("activation", "relu") == "relu":
        assert _rel(got, fd) < 1e-6  # no kink crossed at this eps (checked by the tolerance)
    else:
        np.testing.assert_allclose(got, fd, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("spec", BIASED[1:])
def test_linearised_model_with_biases_is_the_first_order_taylor_model(spec):
    """``f_lin(theta) = f(theta_0) + J (theta - theta_0)`` with the explicit ``J``; its loss
    gradient matches central differences of its own loss."""
    net, params, X, V, rng = _biased_setup(spec)
    model = LinearisedMLP(net, params)
    theta = [W + 0.3 * v for W, v in zip(params, V)]
    J = net.jacobian(params, X)
    delta = net.flatten(theta) - net.flatten(params)
    np.testing.assert_allclose(model.apply(theta, X), net.apply(params, X) + J @ delta,
                               rtol=1e-12, atol=1e-12)
    Y = rng.standard_normal((X.shape[0], net.output_dim))
    value, grads = model.loss_and_gradients(theta, X, Y)
    assert len(grads) == 2 * net.depth
    eps = 1e-6
    for _ in range(4):
        D = [rng.standard_normal(W.shape) for W in params]
        plus = model.loss_and_gradients([W + eps * d for W, d in zip(theta, D)], X, Y)[0]
        minus = model.loss_and_gradients([W - eps * d for W, d in zip(theta, D)], X, Y)[0]
        directional = sum(np.vdot(g, d) for g, d in zip(grads, D))
        assert abs((plus - minus) / (2 * eps) - directional) <= 1e-7 * max(1.0, abs(directional))


def _biased_task(n=30, d=5, width=16, k=1, seed=1, activation="relu", parameterization="ntk"):
    rng = np.random.default_rng(seed)
    net = Network([d, width, k], activation=activation, b_std=0.7,
                  parameterization=parameterization)
    X = rng.standard_normal((n, d))
    Y = np.tanh(X[:, :k] * 2.0) + 0.1 * rng.standard_normal((n, k))
    return net, net.init(rng), X, Y, rng


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_k1_with_biases_equals_gradient_descent(parameterization):
    net, params, X, Y, _ = _biased_task(parameterization=parameterization)
    lr = 0.5 if parameterization == "ntk" else 0.02
    il = iterative_linearised_training(net, params, X, Y, lr, 100, relinearise_every=1)
    gd = gradient_descent(net, params, X, Y, lr, 100)
    assert len(il.params) == 2 * net.depth
    assert _flat_rel(il.params, gd.params) <= 1e-12
    assert _flat_rel(il.params[net.depth:], params[net.depth:]) > 1e-3  # the biases moved
    np.testing.assert_allclose(il.losses, gd.losses, rtol=1e-12)


@pytest.mark.parametrize("k", [1, 2])
def test_k_infinity_with_biases_is_frozen_kernel_dynamics_on_the_explicit_jacobian(k):
    """The kernel of the closed form is ``J J^T`` from ``net.jacobian`` (bias columns included),
    independent of the layer-wise NTK."""
    net, params, X, Y, rng = _biased_task(n=25, k=k, activation="tanh")
    X_test = rng.standard_normal((40, X.shape[1]))
    lr, steps = 0.7, 300
    traj = iterative_linearised_training(net, params, X, Y, lr, steps, INF)
    J, Jt = net.jacobian(params, X), net.jacobian(params, X_test)
    if k == 1:
        K, Kt = J[:, 0] @ J[:, 0].T, Jt[:, 0] @ J[:, 0].T
    else:
        K, Kt = np.einsum("iap,jbp->abij", J, J), np.einsum("iap,jbp->abij", Jt, J)
    theory = FrozenKernelRegime(K, Y, net.apply(params, X), Kt, net.apply(params, X_test))
    model = LinearisedMLP(net, traj.linearisation_point)
    t = lr * steps
    assert _rel(model.apply(traj.params, X), theory.train_predictions(t, lr=lr)) <= 1e-8
    assert _rel(model.apply(traj.params, X_test), theory.test_predictions(t, lr=lr)) <= 1e-8
    np.testing.assert_allclose(model.ntk(X, heads="full" if k > 1 else "sum"), K, rtol=1e-12,
                               atol=1e-12)


def test_gauss_newton_with_biases_matches_dense_levenberg_marquardt():
    net, params, X, Y, _ = _biased_task(n=12, width=8, k=2, activation="tanh")
    n = X.shape[0]
    J = net.jacobian(params, X).transpose(1, 0, 2).reshape(2 * n, -1)  # head-major rows
    r = (net.apply(params, X) - Y).T.ravel()
    np.testing.assert_allclose(gauss_newton_gram(net, params, X), J @ J.T / n, rtol=1e-12,
                               atol=1e-14)
    for damping in (1e-3, 0.1, 10.0):
        dense = -np.linalg.solve(J.T @ J / n + damping * np.eye(J.shape[1]), J.T @ r / n)
        step = damped_gauss_newton_step(net, params, X, Y, damping)
        assert len(step) == 2 * net.depth
        assert _flat_rel([net.flatten(step)], [dense]) <= 1e-9
    lr, K = 0.5, 40
    traj = iterative_linearised_training(net, params, X, Y, lr, K, INF)
    moved = [W - W0 for W, W0 in zip(traj.params, params)]
    assert _flat_rel(moved, spectral_filter_step(net, params, X, Y, lr, K)) <= 1e-12


def test_bias_free_network_description_is_bitwise_the_mlp():
    mlp = MLP([4, 6, 5, 3], activation="tanh")
    net = Network([4, 6, 5, 3], activation="tanh")
    rng = np.random.default_rng(5)
    params = mlp.init(rng)
    X = rng.standard_normal((7, 4))
    Y = rng.standard_normal((7, 3))
    V = [rng.standard_normal(W.shape) for W in params]
    assert np.array_equal(jvp(net, params, X, V)[1], jvp(mlp, params, X, V)[1])
    a = iterative_linearised_training(net, params, X, Y, 0.3, 20, 4)
    b = iterative_linearised_training(mlp, params, X, Y, 0.3, 20, 4)
    assert all(np.array_equal(u, v) for u, v in zip(a.params, b.params))


def test_bias_tangent_of_the_wrong_structure_is_refused():
    net, params, X, V, _ = _biased_setup(BIASED[2])
    with pytest.raises(ValueError, match="tangent must hold 3 weight matrices and 3 bias"):
        jvp(net, params, X, V[:net.depth])
    with pytest.raises(ValueError, match=r"tangent\[3\] must have shape \(6,\)"):
        jvp(net, params, X, V[:3] + [np.ones(5)] + V[4:])
