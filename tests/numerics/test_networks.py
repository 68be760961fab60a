"""MLP forward pass and hand-written back-propagation."""
import numpy as np
import pytest

from ntkdyn.numerics.networks import MLP

CASES = [
    ([3, 1], "relu", None, "ntk"),
    ([4, 7, 2], "tanh", None, "ntk"),
    ([4, 6, 5, 3], "erf", "tanh", "ntk"),
    ([3, 5, 5, 5, 2], "softplus", None, "standard"),
    ([5, 8, 1], "relu", "sigmoid", "standard"),
]


def data(net, n=6, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, net.input_dim)), rng.standard_normal((n, net.output_dim))


@pytest.mark.parametrize("widths,act,out,param", CASES)
def test_gradients_match_central_finite_differences(widths, act, out, param):
    net = MLP(widths, act, out, init_scale=0.8, parameterization=param)
    params = net.init(0)
    X, Y = data(net)
    theta = net.flatten(params)
    grad = net.flatten(net.gradients(params, X, Y))
    h = 1e-6
    fd = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        fd[i] = (net.loss(net.unflatten(theta + e), X, Y)
                 - net.loss(net.unflatten(theta - e), X, Y)) / (2 * h)
    assert np.linalg.norm(grad - fd) / np.linalg.norm(fd) < 1e-7


def test_forward_matches_the_parameterization_by_hand():
    rng = np.random.default_rng(0)
    W1, W2 = rng.standard_normal((5, 3)), rng.standard_normal((2, 5))
    X = rng.standard_normal((4, 3))
    ntk = MLP([3, 5, 2], "tanh").apply([W1, W2], X)
    np.testing.assert_allclose(ntk, np.tanh(X @ W1.T / np.sqrt(3)) @ W2.T / np.sqrt(5), rtol=1e-14)
    std = MLP([3, 5, 2], "tanh", "tanh", parameterization="standard").apply([W1, W2], X)
    np.testing.assert_allclose(std, np.tanh(np.tanh(X @ W1.T) @ W2.T), rtol=1e-14)


def test_loss_is_half_mean_squared_error():
    net = MLP([3, 4, 2], "relu")
    params = net.init(0)
    X, Y = data(net, n=5)
    r = net.apply(params, X) - Y
    assert net.loss(params, X, Y) == pytest.approx(0.5 * np.sum(r**2) / 5, rel=1e-14)


def test_init_is_seeded_and_scaled():
    net = MLP([20, 300, 4], init_scale=0.5)
    a, b, c = net.init(7), net.init(7), net.init(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert np.std(net.flatten(a)) == pytest.approx(0.5, rel=0.02)
    assert [W.shape for W in a] == [(300, 20), (4, 300)]


def test_flatten_roundtrip():
    net = MLP([3, 4, 5, 2])
    params = net.init(1)
    back = net.unflatten(net.flatten(params))
    assert all(np.array_equal(x, y) for x, y in zip(params, back))
    assert net.num_params == 3 * 4 + 4 * 5 + 5 * 2


def test_float32_is_kept():
    net = MLP([3, 4, 1])
    params = net.init(0, dtype=np.float32)
    out = net.apply(params, np.ones((2, 3), dtype=np.float32))
    assert out.dtype == np.float32


@pytest.mark.parametrize("kwargs,match", [
    ({"widths": [3]}, "at least 2 entries"),
    ({"widths": [3, 0, 1]}, r"widths\[1\] must be >= 1"),
    ({"widths": [3, 2.5, 1]}, r"widths\[1\] must be an integer"),
    ({"widths": [3, 2], "activation": "nope"}, "unknown activation"),
    ({"widths": [3, 2], "output_activation": "nope"}, "unknown output_activation"),
    ({"widths": [3, 2], "init_scale": -1.0}, "init_scale must be > 0"),
    ({"widths": [3, 2], "parameterization": "mup"}, "parameterization must be one of"),
])
def test_bad_construction_names_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MLP(**kwargs)


def test_bad_inputs_name_the_argument():
    net = MLP([3, 4, 2])
    params = net.init(0)
    with pytest.raises(ValueError, match="X must have 3 columns"):
        net.apply(params, np.ones((5, 4)))
    with pytest.raises(ValueError, match="X must be finite"):
        net.apply(params, np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="X must be 2-D"):
        net.apply(params, np.ones(3))
    with pytest.raises(ValueError, match=r"Y must have shape \(5, 2\)"):
        net.loss(params, np.ones((5, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"params\[1\] must have shape \(2, 4\)"):
        net.apply([params[0], params[1].T], np.ones((5, 3)))
    with pytest.raises(ValueError, match="params must hold 2 weight matrices"):
        net.apply(params[:1], np.ones((5, 3)))
    with pytest.raises(TypeError, match="seed must be"):
        net.init("zero")
