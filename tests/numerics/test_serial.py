"""Serial (convolutional, residual) networks: layer descriptions, forward, backward, errors.

The forward pass is checked against explicit loops over positions and kernel offsets, the
backward pass (vector-Jacobian products, loss gradients) against central finite differences,
and stacks of Dense layers against ntkdyn.numerics.networks.Network, bitwise.
"""
import itertools

import numpy as np
import pytest

import ntkdyn
from ntkdyn.base import layers as base_layers
from ntkdyn.layers import Activation, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Layer, Residual
from ntkdyn.numerics.networks import Network
from ntkdyn.numerics.serial import SerialNetwork, patches
from ntkdyn.numerics.training import gradient_descent


def _stack(par="ntk", b=0.0, shape=(5, 4, 2)):
    """Conv (odd and even kernels, same and valid), pooling, residual blocks (identity and
    projected skips), flatten, dense."""
    return SerialNetwork(
        [Conv(3, 3, b_std=b), Activation("tanh"),
         Residual(Conv(3, (2, 3)), Activation("erf"), Conv(3, 3, b_std=b), branch_weight=0.7),
         Residual(Activation("tanh"), Conv(4, 2, b_std=b), branch_weight=1.3, b_std=b),
         AvgPool(2, stride=1), Conv(2, 2, "valid"), Activation("softplus"), Flatten(),
         Dense(3, b_std=b)], shape, par)


def _stack_1d(par="ntk", b=0.0):
    return SerialNetwork([Conv(3, 4, b_std=b), Activation("relu"), AvgPool(2),
                          Residual(Activation("tanh"), Conv(5, 3, "same"), project=True),
                          Activation("sigmoid"), GlobalAvgPool(), Dense(2, b_std=b)], (7, 2), par)


# --------------------------------------------------------------------------- descriptions
def test_both_import_routes_and_the_network_constructor():
    assert ntkdyn.layers.Conv is Conv is base_layers.Conv
    net = ntkdyn.Network.serial(Conv(4, 3), Activation("relu"), GlobalAvgPool(), Dense(2),
                                input_shape=(6, 6, 1), parameterization="standard")
    assert isinstance(net, SerialNetwork) and net.parameterization == "standard"
    assert net.output_dim == 2 and net.input_shape == (6, 6, 1)


def test_descriptions_are_frozen_hashable_and_printable():
    a = _stack(b=0.1)
    b = _stack(b=0.1)
    assert a == b and hash(a) == hash(b) and a != _stack(b=0.2) and a != _stack("standard")
    assert len({a, b}) == 1
    assert repr(a).startswith("SerialNetwork(Conv(3, kernel_size=3, padding='same'")
    with pytest.raises(AttributeError, match="frozen"):
        a.layers = ()
    with pytest.raises(Exception):
        Conv(3, 3).out_channels = 4
    assert Conv(3, 3, padding="VALID").padding == "valid"
    assert Activation("relu") == Activation("relu") != Activation("erf")
    assert Residual(Dense(2)) == Residual(Dense(2))
    assert all(isinstance(layer, Layer) for layer in a.layers)


@pytest.mark.parametrize("make, message", [
    (lambda: Dense(0), "Dense out must be >= 1"),
    (lambda: Dense(3, W_std=0), "Dense W_std must be > 0"),
    (lambda: Dense(3, b_std=-1), "Dense b_std must be >= 0"),
    (lambda: Conv(3, 0), r"Conv kernel_size must be >= 1"),
    (lambda: Conv(3, (1, 2, 3)), "Conv kernel_size must be a positive int or a tuple"),
    (lambda: Conv(3, 3, padding="full"), "Conv padding must be one of"),
    (lambda: Conv(2.5, 3), "Conv out_channels must be an integer"),
    (lambda: Activation("swish"), "unknown Activation name"),
    (lambda: AvgPool(0), "AvgPool size must be >= 1"),
    (lambda: Residual(), "Residual needs at least one branch layer"),
    (lambda: Residual(Dense(2), "relu"), r"Residual branch\[1\] must be a layer"),
    (lambda: Residual(Dense(2), branch_weight=0), "Residual branch_weight must be > 0"),
])
def test_layer_arguments_are_validated(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@pytest.mark.parametrize("layers, shape, message", [
    ([Conv(2, 5, "valid"), GlobalAvgPool(), Dense(1)], (4, 4, 1),
     r"layers\[0\] \(Conv\(2, kernel_size=5.*kernel \(5, 5\) is larger than its input's "
     r"spatial shape \(4, 4\)"),
    ([Conv(2, (3, 6)), GlobalAvgPool(), Dense(1)], (4, 4, 1), r"kernel \(3, 6\) is larger"),
    ([Dense(3), Conv(2, 3)], (5,), r"layers\[1\] .* needs a spatial input"),
    ([Conv(2, (3, 3)), GlobalAvgPool(), Dense(1)], (6, 2), "has 2 entries but the input has 1"),
    ([Conv(2, 3), Residual(Conv(3, 3), project=False), GlobalAvgPool(), Dense(1)], (4, 4, 1),
     r"layers\[1\] .*mismatched channel counts, the branch maps 2 channels to 3"),
    ([Residual(Conv(2, 3, "valid")), GlobalAvgPool(), Dense(1)], (4, 4, 1),
     r"branch maps shape \(4, 4, 1\) to \(2, 2, 2\)"),
    ([Conv(2, 3), Residual(Dense(2), AvgPool(3)), Dense(1)], (4, 4, 1),
     r"layers\[1\]\.branch\[1\] .*window \(3, 3\) is larger|keep the spatial shape"),
    ([Conv(2, 3)], (4, 4, 1), "the network's output must be flat"),
    ([Dense(2)], (4, 4, 4, 1), "input_shape must be"),
])
def test_shape_errors_name_the_layer_and_the_shapes(layers, shape, message):
    with pytest.raises(ValueError, match=message):
        SerialNetwork(layers, shape)


def test_inputs_and_parameters_are_checked():
    net = _stack()
    params = net.init(0)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 5, 4, 2\) for input_shape"):
        net.apply(params, np.zeros((3, 20, 2)))
    with pytest.raises(ValueError, match=r"X must have shape"):
        net.apply(params, np.zeros((3, 5, 4, 3)))
    with pytest.raises(ValueError, match="at least one example"):
        net.apply(params, np.zeros((0, 5, 4, 2)))
    with pytest.raises(ValueError, match=r"params must hold 7 arrays \(W_1"):
        net.apply(params[:-1], np.zeros((1, 5, 4, 2)))
    bad = list(params)
    bad[1] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"params\[1\] \(W_2\) must have shape \(2, 3, 3, 3\)"):
        net.apply(bad, np.zeros((1, 5, 4, 2)))
    bad[1] = np.full((2, 3, 3, 3), np.nan)
    with pytest.raises(ValueError, match="finite"):
        net.apply(bad, np.zeros((1, 5, 4, 2)))
    with pytest.raises(TypeError, match="layers"):
        SerialNetwork([Conv(2, 3), "relu"], (4, 4, 1))
    with pytest.raises(ValueError, match="parameterization"):
        SerialNetwork([Dense(1)], (3,), "mup")
    with pytest.raises(ValueError, match=r"Y must have shape \(2, 3\)"):
        net.loss(params, np.zeros((2, 5, 4, 2)), np.zeros((2, 2)))


# --------------------------------------------------------------------------- parameters
def test_parameter_layout_names_and_initial_scales():
    net = _stack(b=0.5)
    assert net.param_names == ["W_1", "W_2", "W_3", "W_4", "W_5", "W_6", "W_7",
                               "b_1", "b_3", "b_4", "b_5", "b_7"]
    # layer 5 is the projection of the second residual block (3 -> 4 channels)
    proj = net.parameterised[4]
    assert proj.path == "layers[3].skip" and proj.kind == "Dense"
    assert net.param_shapes[:5] == [(3, 3, 2, 3), (2, 3, 3, 3), (3, 3, 3, 3), (2, 2, 3, 4),
                                    (4, 3)]
    assert net.num_params == sum(int(np.prod(s)) for s in net.param_shapes)
    params = net.init(3)
    theta = net.flatten(params)
    assert theta.shape == (net.num_params,)
    assert all(np.array_equal(a, b) for a, b in zip(net.unflatten(theta), params))
    assert all(np.array_equal(a, b) for a, b in zip(net.init(3), params))
    wide = SerialNetwork([Conv(64, 3, W_std=2.0, b_std=0.5), GlobalAvgPool(), Dense(1)],
                         (4, 4, 16), "standard")
    W, _, b = wide.init(1)
    assert abs(W.std() - 2.0 / np.sqrt(9 * 16)) < 0.03 * 2.0 / np.sqrt(9 * 16)
    assert abs(b.std() - 0.5) < 0.2  # 64 draws
    assert wide.layer_scales()[0] == (1.0, 2.0 / 12.0, 1.0, 0.5)
    ntk = SerialNetwork([Conv(64, 3, W_std=2.0, b_std=0.5), GlobalAvgPool(), Dense(1)],
                        (4, 4, 16))
    assert ntk.layer_scales()[0] == (2.0 / 12.0, 1.0, 0.5, 1.0)
    assert abs(ntk.init(1)[0].std() - 1.0) < 0.03
    assert not _stack().has_bias and net.has_bias and net.depth == 7


@pytest.mark.parametrize("par", ["ntk", "standard"])
def test_dense_stack_is_the_network_of_the_same_widths(par):
    mlp = Network([6, 9, 7, 2], activation="tanh", W_std=1.3, b_std=0.2, parameterization=par)
    net = SerialNetwork([Dense(9, 1.3, 0.2), Activation("tanh"), Dense(7, 1.3, 0.2),
                         Activation("tanh"), Dense(2, 1.3, 0.2)], (6,), par)
    params = mlp.init([4, 2])
    assert all(np.array_equal(a, b) for a, b in zip(net.init([4, 2]), params))
    X = np.random.default_rng(0).standard_normal((5, 6))
    np.testing.assert_array_equal(net.apply(params, X), mlp.apply(params, X))
    Y = np.ones((5, 2))
    for g1, g2 in zip(net.gradients(params, X, Y), mlp.gradients(params, X, Y)):
        np.testing.assert_allclose(g1, g2, rtol=1e-13, atol=1e-15)


# --------------------------------------------------------------------------- forward
def _direct_conv(a, W, padding):
    """Correlation by explicit loops over output positions and kernel offsets."""
    spatial = a.shape[1:-1]
    window = W.shape[:-2]
    if padding == "same":
        lo = [(k - 1) // 2 for k in window]
        out_spatial = spatial
    else:
        lo = [0] * len(window)
        out_spatial = tuple(s - k + 1 for s, k in zip(spatial, window))
    out = np.zeros((a.shape[0],) + tuple(out_spatial) + (W.shape[-1],))
    for p in itertools.product(*(range(e) for e in out_spatial)):
        for o in itertools.product(*(range(k) for k in window)):
            u = tuple(pi + oi - li for pi, oi, li in zip(p, o, lo))
            if all(0 <= ui < si for ui, si in zip(u, spatial)):
                out[(slice(None),) + p] += a[(slice(None),) + u] @ W[o]
    return out


@pytest.mark.parametrize("shape, kernel, padding", [
    ((7, 3), 3, "same"), ((7, 3), 4, "same"), ((7, 3), 2, "valid"),
    ((5, 6, 2), 3, "same"), ((5, 6, 2), (2, 3), "same"), ((5, 6, 2), (4, 2), "valid"),
])
@pytest.mark.parametrize("par", ["ntk", "standard"])
def test_convolution_matches_explicit_loops(shape, kernel, padding, par):
    net = SerialNetwork([Conv(4, kernel, padding, W_std=1.5, b_std=0.3), Flatten(), Dense(1)],
                        shape, par)
    params = net.init(0)
    a = np.random.default_rng(1).standard_normal((3,) + shape)
    fwd = net.forward(params, a)
    c, _, beta, _ = net.layer_scales()[0]
    expected = c * _direct_conv(a, params[0], padding) + beta * params[2]
    np.testing.assert_allclose(fwd.outputs[0], expected, rtol=1e-13, atol=1e-14)
    # patches: h = c patches @ W.reshape(fan_in, C_out)
    node = net.nodes[0]
    P = patches(node, a)
    assert P.shape == (3, node.positions, node.fan_in)
    np.testing.assert_allclose(
        c * P @ params[0].reshape(node.fan_in, -1) + beta * params[2],
        fwd.outputs[0].reshape(3, node.positions, -1), rtol=1e-13, atol=1e-14)


def test_pooling_flatten_and_residual_match_direct_computation():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 5, 7, 3))
    net = SerialNetwork([AvgPool((2, 3), stride=(1, 2)), Flatten(), Dense(1)], (5, 7, 3))
    out = net.forward(net.init(0), a).outputs[0]
    expected = np.array([[[a[:, i:i + 2, 2 * j:2 * j + 3].mean(axis=(1, 2))[n]
                           for j in range(3)] for i in range(4)] for n in range(2)])
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    net = SerialNetwork([GlobalAvgPool(), Dense(1)], (5, 7, 3))
    np.testing.assert_allclose(net.forward(net.init(0), a).outputs[0], a.mean(axis=(1, 2)))
    net = SerialNetwork([Flatten(), Dense(1)], (5, 7, 3))
    np.testing.assert_array_equal(net.forward(net.init(0), a).outputs[0], a.reshape(2, -1))
    net = SerialNetwork([Residual(Conv(3, 3), Activation("tanh"), branch_weight=0.5),
                         Residual(Conv(4, 1), project=True, W_std=0.7, b_std=0.2),
                         GlobalAvgPool(), Dense(1)], (5, 7, 3))
    params = net.init(1)
    fwd = net.forward(params, a)
    branch = np.tanh(fwd.outputs[1])
    np.testing.assert_allclose(fwd.outputs[0], a + 0.5 * branch, rtol=1e-14)
    skip = net.nodes[net.nodes[3].skip]
    assert skip.path == "layers[1].skip"
    c, _, beta, _ = skip.scales
    W_skip, b_skip = params[2], params[4]
    expected = (c * fwd.outputs[0] @ W_skip.T + beta * b_skip) + fwd.outputs[4]
    np.testing.assert_allclose(fwd.outputs[3], expected, rtol=1e-13)


# --------------------------------------------------------------------------- backward
def _central_vjp(net, params, X, v, eps=1e-6):
    theta = net.flatten(params)
    out = np.empty_like(theta)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = eps
        plus = np.sum(v * net.apply(net.unflatten(theta + e), X))
        minus = np.sum(v * net.apply(net.unflatten(theta - e), X))
        out[j] = (plus - minus) / (2 * eps)
    return out


@pytest.mark.parametrize("make", [_stack, _stack_1d])
@pytest.mark.parametrize("par", ["ntk", "standard"])
@pytest.mark.parametrize("b", [0.0, 0.4])
def test_backward_matches_finite_differences(make, par, b):
    net = make(par, b)
    rng = np.random.default_rng(3)
    params = net.init(5)
    X = rng.standard_normal((3,) + net.input_shape)
    v = rng.standard_normal((3, net.output_dim))
    vjp = net.flatten(net.backward(params, net.forward(params, X), v))
    fd = _central_vjp(net, params, X, v)
    # central differences with eps = 1e-6: truncation ~1e-12, rounding ~1e-10
    np.testing.assert_allclose(vjp, fd, rtol=0, atol=1e-8 * max(1.0, np.abs(fd).max()))
    J = net.jacobian(params, X)
    np.testing.assert_allclose(np.einsum("nk,nkp->p", v, J), vjp, rtol=1e-12, atol=1e-14)


def test_loss_gradients_match_finite_differences_and_training_runs():
    net = _stack_1d("ntk", 0.2)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6,) + net.input_shape)
    Y = rng.standard_normal((6, 2))
    params = net.init(0)
    loss, grads = net.loss_and_gradients(params, X, Y)
    theta = net.flatten(params)
    g = net.flatten(grads)
    for j in rng.choice(theta.size, 12, replace=False):
        e = np.zeros_like(theta)
        e[j] = 1e-6
        fd = (net.loss(net.unflatten(theta + e), X, Y)
              - net.loss(net.unflatten(theta - e), X, Y)) / 2e-6
        assert abs(fd - g[j]) < 1e-8
    traj = gradient_descent(net, params, X, Y, lr=0.5, steps=20)
    assert traj.losses[-1] < traj.losses[0] == pytest.approx(loss)


def test_signals_are_the_gradients_of_the_node_outputs():
    """``signals`` at a Conv node, contracted with its patches, give the weight gradient."""
    net = _stack("ntk", 0.3)
    rng = np.random.default_rng(5)
    params = net.init(1)
    X = rng.standard_normal((2,) + net.input_shape)
    fwd = net.forward(params, X)
    cot = rng.standard_normal((3, 2, net.output_dim))
    sig = net.signals(params, fwd, cot)
    assert set(sig) == set(net.weighted)
    for j in range(3):
        grads = net.backward(params, fwd, cot[j])
        for node in net.parameterised:
            c, _, beta, _ = node.scales
            B = sig[node.index][j].reshape(-1, node.out_shape[-1])
            P = patches(node, fwd.inputs[node.index]).reshape(-1, node.fan_in)
            dW = c * P.T @ B
            W = grads[node.weight]
            np.testing.assert_allclose(dW.T if node.kind == "Dense" else dW.reshape(W.shape),
                                       W, rtol=1e-12, atol=1e-14)
            if node.bias is not None:
                np.testing.assert_allclose(beta * B.sum(axis=0), grads[node.bias],
                                           rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match=r"cotangents must have shape \(m, 2, 3\)"):
        net.signals(params, fwd, np.zeros((2, 3)))
