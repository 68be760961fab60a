"""Tests of theory.nfa: the early-time centred-NFA prediction, three ways.

1. exact algebra: the leading-order matrices equal the NFM and AGOP of one real gradient step;
2. limits: linear activation (exactly 1), scale invariance, the infinite-width two-layer PTK;
3. simulation: gradient descent with a small learning rate approaches the prediction at rate O(t).
"""
import numpy as np
import pytest

from ntkdyn.numerics import features as F
from ntkdyn.numerics.networks import MLP
from ntkdyn.numerics.synthetic import low_rank_task
from ntkdyn.numerics.training import gradient_descent
from ntkdyn.theory import nfa as T


def _task(n=64, seed=0):
    ds = low_rank_task(n, seed=seed)
    return ds.X, ds.Y


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("k", [1, 3])
def test_leading_order_matrices_are_those_of_the_first_gradient(k):
    X, Y = _task(40)
    Y = np.hstack([Y, np.cos(X[:, :k - 1])]) if k > 1 else Y
    net = MLP([20, 16, 12, k], activation="tanh")
    p0 = net.init(1)
    fwd = net.forward(p0, X)
    grads = net.gradients(p0, X, Y)
    n = X.shape[0]
    for layer in range(net.depth):
        c = net.multipliers[layer]
        nfm, agop = T.early_feature_matrices(fwd.activations[layer], fwd.output - Y,
                                             F.ptk_gram(net, p0, X, layer))
        g = grads[layer]  # = (c / n) B^T M: the first step's weight change up to -lr
        K = F.tangent_feature_covariance(net, p0, X, layer)
        assert _rel((c / n) ** 2 * nfm, g.T @ g) < 1e-12
        assert _rel((c / n) ** 2 * agop, g.T @ K @ g) < 1e-12


def test_prediction_equals_the_centred_correlation_after_one_step():
    # After one GD step dW = -lr g exactly, so at the *initial* K the C-NFC is the prediction.
    X, Y = _task(50)
    net = MLP([20, 24, 24, 1])
    p0 = net.init(2)
    fwd = net.forward(p0, X)
    grads = net.gradients(p0, X, Y)
    for layer in range(net.depth):
        pred = T.early_centered_nfc(fwd.activations[layer], fwd.output - Y,
                                    F.ptk_gram(net, p0, X, layer), kind="cosine", power=0.5)
        g, c = grads[layer], net.multipliers[layer]
        K = F.tangent_feature_covariance(net, p0, X, layer)
        direct = F.matrix_correlation(g.T @ g, T.psd_power(c * c * g.T @ K @ g, 0.5), "cosine")
        assert pred == pytest.approx(direct, abs=1e-10)


def test_linear_activation_gives_exactly_one():
    X, Y = _task(30)
    for widths in ([20, 15, 1], [20, 10, 10, 1]):
        net = MLP(widths, activation="linear")
        p0 = net.init(0)
        fwd = net.forward(p0, X)
        for layer in range(net.depth - 1):
            theta = F.ptk_gram(net, p0, X, layer)
            for kind in T.KINDS:
                assert T.early_centered_nfc(fwd.activations[layer], fwd.output - Y, theta,
                                            kind) == pytest.approx(1.0, abs=1e-10)


def test_prediction_is_invariant_to_scalings_and_accepts_both_layouts():
    rng = np.random.default_rng(0)
    A, R = rng.standard_normal((12, 5)), rng.standard_normal(12)
    Z = rng.standard_normal((12, 12))
    theta = Z @ Z.T
    base = T.early_centered_nfc(A, R, theta)
    assert T.early_centered_nfc(3 * A, -0.5 * R, 7 * theta) == pytest.approx(base, abs=1e-12)
    assert T.early_centered_nfc(A, R[:, None], theta[None, None]) == pytest.approx(base, abs=1e-12)


def test_psd_power():
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((6, 4))
    G = Z @ Z.T
    root = T.psd_power(G, 0.5)
    assert np.allclose(root @ root, G, atol=1e-12)
    assert T.psd_power(G, 1.0) is not None and np.array_equal(T.psd_power(G, 1.0), G)


def test_arccos_ptk_limits_and_monte_carlo():
    X = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    th = T.relu_ptk_two_layer(X, init_scale=2.0)
    assert np.allclose(np.diag(th), 2.0)  # sigma^2 / 2
    assert th[0, 1] == pytest.approx(1.0)  # orthogonal: sigma^2 / 4
    assert th[0, 2] == pytest.approx(0.0, abs=1e-15)  # antipodal
    Xs, _ = _task(40)
    net = MLP([20, 4096, 1], init_scale=1.5)
    emp = F.ptk_gram(net, net.init(3), Xs, 0)[0, 0]
    # Monte-Carlo over 4096 hidden units: entries err by O(sigma^2 / sqrt(m)) ~ 0.035.
    assert np.max(np.abs(emp - T.relu_ptk_two_layer(Xs, init_scale=1.5))) < 0.15
    assert np.mean(np.abs(emp - T.relu_ptk_two_layer(Xs, init_scale=1.5))) < 0.03


@pytest.mark.parametrize("k", [1, 2])
def test_infinite_width_prediction_from_data_statistics_matches_a_wide_network(k):
    X, Y = _task(128)
    if k == 2:
        Y = np.hstack([Y, np.sin(X[:, :1])])
    net = MLP([20, 2048, k])
    p0 = net.init(0)
    arccos = T.relu_ptk_two_layer(X)
    theta = arccos if k == 1 else np.einsum("jk,il->jkil", np.eye(k), arccos)
    # Inputs, labels, the initial outputs (O(1) in the NTK parameterization, so r = f_0 - y
    # rather than -y) and the infinite-width PTK: nothing of the network's hidden weights.
    pred = T.early_centered_nfc(X, net.apply(p0, X) - Y, theta)
    tr = gradient_descent(net, p0, X, Y, lr=0.01, steps=10,
                          record={"nfa": F.nfa_observable(p0, [0])}, record_steps=[10])
    measured = tr.observables["nfa"][-1, 1, 0]
    assert abs(measured - pred) < 0.05


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_simulation_approaches_the_prediction_at_small_t(activation):
    X, Y = _task(64)
    net = MLP([20] + [32] * 4 + [1], activation=activation)
    p0 = net.init(0)
    fwd = net.forward(p0, X)
    layers = range(4)
    pred = np.array([T.early_centered_nfc(fwd.activations[l], fwd.output - Y,
                                          F.ptk_gram(net, p0, X, l)) for l in layers])
    steps = [4, 8, 16, 32, 64]
    lr = 0.02 if activation == "relu" else 0.002  # smaller t: the O(t^2) terms stay invisible
    tr = gradient_descent(net, p0, X, Y, lr=lr, steps=64, record_steps=steps,
                          record={"nfa": F.nfa_observable(p0, layers)})
    measured = tr.observables["nfa"][1:, 1]  # (steps, layers), step 0 dropped
    err = np.abs(measured - pred)
    assert np.all(err[0] < 0.05 * pred)  # within 5 % at small t
    assert np.all(err[-1] < 0.05 * pred)
    if activation == "relu":
        return  # ReLU masks flip one by one: the error is O(t) only on average
    # Smooth activation: the log-log slope of the error against t is one.
    t = tr.lr * np.array(steps)
    for l in layers:
        if err[-1, l] > 1e-6:
            slope = np.polyfit(np.log(t), np.log(err[:, l]), 1)[0]
            assert 0.8 < slope < 1.25, (l, slope, err[:, l])


def test_bad_input_names_the_argument():
    A, R, theta = np.ones((4, 2)), np.ones(4), np.eye(4)
    with pytest.raises(ValueError, match="theta"):
        T.early_centered_nfc(A, R, np.eye(3))
    with pytest.raises(ValueError, match="theta"):
        T.early_centered_nfc(A, np.ones((4, 2)), np.eye(4))
    with pytest.raises(ValueError, match="A"):
        T.early_centered_nfc(np.ones((5, 2)), R, theta)
    with pytest.raises(ValueError, match="kind"):
        T.early_centered_nfc(A, R, theta, kind="kendall")
    with pytest.raises(ValueError, match="power"):
        T.early_centered_nfc(A, R, theta, power=-1.0)
    with pytest.raises(ValueError, match="X2"):
        T.relu_ptk_two_layer(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="zero rows"):
        T.relu_ptk_two_layer(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="B"):
        T.matrix_correlation(np.eye(2), np.eye(3))
