"""Empirical NTK of serial networks (ntkdyn.numerics.serial_ntk) against explicit Jacobians.

The reference is ``J J^T`` of the per-example Jacobians of ``SerialNetwork.jacobian`` (one
backward pass per example and head); every kernel, head mode and per-layer term must agree with
it to 1e-10 relative to the kernel's largest entry, for convolution, pooling and residual stacks,
with and without biases, in both parameterizations, by both contraction orders.
"""
import numpy as np
import pytest

import ntkdyn
from ntkdyn.layers import Activation, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Residual
from ntkdyn.numerics.serial import SerialNetwork
from ntkdyn.numerics.serial_ntk import layer_names, serial_ntk

TOL = 1e-10


def _cnn(par, b):
    return SerialNetwork([Conv(3, 3, b_std=b), Activation("relu"), Conv(4, (2, 3), b_std=b),
                          Activation("tanh"), AvgPool(2), Conv(3, 2, "valid"),
                          Activation("erf"), GlobalAvgPool(), Dense(3, b_std=b)], (6, 5, 2), par)


def _resnet(par, b):
    return SerialNetwork([Conv(3, 3, b_std=b),
                          Residual(Activation("relu"), Conv(3, 3), Activation("tanh"),
                                   Conv(3, 2, b_std=b), branch_weight=0.6),
                          Residual(Activation("erf"), Conv(4, 3, b_std=b), b_std=b, W_std=0.8),
                          Activation("relu"), Flatten(), Dense(2, b_std=b)], (7, 2), par)


def _residual_mlp(par, b):
    return SerialNetwork([Dense(6, b_std=b), Residual(Activation("tanh"), Dense(6, b_std=b)),
                          Activation("relu"), Dense(3, b_std=b)], (4,), par)


NETWORKS = {"cnn": _cnn, "resnet-1d": _resnet, "residual-mlp": _residual_mlp}


def _reference(J, J2, heads):
    if heads == "sum":
        return np.einsum("nkp,mkp->nm", J, J2)
    if heads == "each":
        return np.einsum("nkp,mkp->knm", J, J2)
    return np.einsum("nip,mjp->ijnm", J, J2)


def _close(K, R):
    scale = np.abs(R).max()
    assert K.shape == R.shape
    assert np.abs(K - R).max() <= TOL * scale, np.abs(K - R).max() / scale


@pytest.fixture(scope="module")
def cases():
    """(net, params, X, X2, J, J2) per network, parameterization and bias setting."""
    out = {}
    rng = np.random.default_rng(0)
    for name, make in NETWORKS.items():
        for par in ("ntk", "standard"):
            for b in (0.0, 0.3):
                net = make(par, b)
                params = net.init([1, int(10 * b)])
                X = rng.standard_normal((4,) + net.input_shape)
                X2 = rng.standard_normal((3,) + net.input_shape)
                out[name, par, b] = (net, params, X, X2, net.jacobian(params, X),
                                     net.jacobian(params, X2))
    return out


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("par", ["ntk", "standard"])
@pytest.mark.parametrize("b", [0.0, 0.3])
@pytest.mark.parametrize("heads", ["sum", "each", "full"])
def test_kernel_matches_explicit_jacobians(cases, name, par, b, heads):
    net, params, X, X2, J, J2 = cases[name, par, b]
    for method in ("positions", "gradients", "auto"):
        _close(serial_ntk(net, params, X, heads=heads, method=method), _reference(J, J, heads))
        _close(serial_ntk(net, params, X, X2, heads=heads, method=method),
               _reference(J, J2, heads))


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("heads", ["sum", "each", "full"])
def test_per_layer_terms_match_the_jacobian_blocks(cases, name, heads):
    net, params, X, X2, J, J2 = cases[name, "ntk", 0.3]
    terms = serial_ntk(net, params, X, X2, heads=heads, per_layer=True)
    assert list(terms) == layer_names(net)
    assert set(terms) == set(net.param_names)
    start = 0
    for label, shape in zip(net.param_names, net.param_shapes):
        stop = start + int(np.prod(shape))
        _close(terms[label], _reference(J[..., start:stop], J2[..., start:stop], heads))
        start = stop
    for method in ("positions", "gradients"):
        other = serial_ntk(net, params, X, X2, heads=heads, per_layer=True, method=method)
        for label in terms:
            _close(other[label], terms[label])


def test_blocks_do_not_change_the_kernel(cases):
    net, params, X, X2, J, J2 = cases["cnn", "standard", 0.3]
    for heads in ("sum", "each", "full"):
        R = _reference(J, J2, heads)
        for method in ("positions", "gradients"):
            # a few hundred bytes: one head, one kernel offset, one channel, one example at a time
            _close(serial_ntk(net, params, X, X2, heads=heads, method=method, block_bytes=256), R)


def test_one_dimensional_and_symmetric_kernels_are_symmetric(cases):
    net, params, X, _, J, _ = cases["resnet-1d", "ntk", 0.3]
    K = serial_ntk(net, params, X)
    np.testing.assert_allclose(K, K.T, rtol=1e-13, atol=0)
    assert np.all(np.linalg.eigvalsh(K) > -1e-12 * np.abs(K).max())


def test_the_public_empirical_ntk_dispatches_serial_networks(cases):
    net, params, X, X2, J, J2 = cases["cnn", "ntk", 0.0]
    _close(ntkdyn.empirical_ntk(net, params, X, X2, heads="each"), _reference(J, J2, "each"))
    terms = ntkdyn.empirical_ntk(net, params, X, per_layer=True)
    assert list(terms) == layer_names(net)


def test_wide_channels_keep_the_gram_blocks_bounded():
    """256 channels, a 1 MiB block budget: the result equals the unblocked one."""
    net = SerialNetwork([Conv(256, 3), Activation("relu"), Conv(256, 3), Activation("relu"),
                         GlobalAvgPool(), Dense(2)], (4, 4, 1))
    params = net.init(0)
    X = np.random.default_rng(1).standard_normal((5, 4, 4, 1))
    full = serial_ntk(net, params, X)
    for method in ("positions", "gradients"):
        np.testing.assert_allclose(serial_ntk(net, params, X, method=method, block_bytes=2**20),
                                   full, rtol=1e-12)


def test_bad_input_is_refused_before_work(cases):
    net, params, X, X2, _, _ = cases["cnn", "ntk", 0.0]
    with pytest.raises(ValueError, match="heads must be one of"):
        serial_ntk(net, params, X, heads="diag")
    with pytest.raises(ValueError, match="method must be one of"):
        serial_ntk(net, params, X, method="jacobian")
    with pytest.raises(TypeError, match="per_layer must be a bool"):
        serial_ntk(net, params, X, per_layer="yes")
    with pytest.raises(ValueError, match=r"X2 must have shape \(n, 6, 5, 2\)"):
        serial_ntk(net, params, X, X2[:, :, :4])
    with pytest.raises(TypeError, match="SerialNetwork"):
        serial_ntk(object(), params, X)
    with pytest.raises(ValueError, match="block_bytes must be >= 1"):
        serial_ntk(net, params, X, block_bytes=0)
