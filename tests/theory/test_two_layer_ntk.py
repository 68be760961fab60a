"""The blocked two-layer NTK sums against unblocked products, the network's Jacobian Gram and
the empirical NTK (which assembles its two-layer kernels from them); multipliers; bad input."""
import numpy as np
import pytest

from ntkdyn.base.activations import ACTIVATIONS
from ntkdyn.numerics.kernels import empirical_ntk
from ntkdyn.numerics.networks import MLP
from ntkdyn.theory.parameterization import layer_multipliers
from ntkdyn.theory.two_layer_ntk import default_block_size, hidden_unit_sums, two_layer_ntk_terms


def _problem(seed=0, n=13, n2=5, d=6, m=23, k=3):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((m, d)), rng.standard_normal((k, m)),
            rng.standard_normal((n, d)), rng.standard_normal((n2, d)))


@pytest.mark.parametrize("activation", ["relu", "tanh", "linear", "erf"])
def test_blocked_sums_equal_unblocked_products(activation):
    W1, W2, X, X2 = _problem()
    act = ACTIVATIONS[activation]
    c1 = 1 / np.sqrt(X.shape[1])
    H, H2 = c1 * X @ W1.T, c1 * X2 @ W1.T
    feature = act.phi(H) @ act.phi(H2).T
    gated = np.stack([(act.dphi(H) * a * a) @ act.dphi(H2).T for a in W2])
    for block in (1, 7, None, 1000):
        for second in (X2, None):
            Xb = X if second is None else X2
            Hb = H if second is None else H2
            s = hidden_unit_sums(W1, W2, X, second, c1=c1, activation=activation,
                                 block_size=block, readout=True)
            np.testing.assert_allclose(s.feature, act.phi(H) @ act.phi(Hb).T, rtol=1e-12,
                                       atol=1e-12)
            ref = np.stack([(act.dphi(H) * a * a) @ act.dphi(Hb).T for a in W2])
            np.testing.assert_allclose(s.gated, ref, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(s.inputs, X @ Xb.T, rtol=1e-14)
            np.testing.assert_allclose(s.readout, act.phi(H) @ W2.T, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(s.readout2, act.phi(Hb) @ W2.T, rtol=1e-12, atol=1e-12)
            summed = hidden_unit_sums(W1, W2, X, second, c1=c1, activation=activation,
                                      heads="sum", block_size=block)
            np.testing.assert_allclose(summed.gated, s.gated.sum(axis=0), rtol=1e-12,
                                       atol=1e-12)
            assert summed.readout is None and summed.readout2 is None
    np.testing.assert_allclose(hidden_unit_sums(W1, W2, X, X2, c1=c1, activation=activation)
                               .gated, gated, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hidden_unit_sums(W1, W2, X, X2, c1=c1, activation=activation)
                               .feature, feature, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_terms_are_the_network_kernel_in_both_parameterizations(parameterization, activation):
    W1, W2, X, X2 = _problem(1)
    net = MLP([6, 23, 3], activation, parameterization=parameterization)
    feature, gated = two_layer_ntk_terms(W1, W2, X, X2, activation,
                                         parameterization=parameterization, block_size=4)
    J, J2 = net.jacobian([W1, W2], X), net.jacobian([W1, W2], X2)
    P1 = W1.size
    for i in range(3):
        np.testing.assert_allclose(J[:, i, P1:] @ J2[:, i, P1:].T, feature, rtol=1e-11,
                                   atol=1e-11)
        np.testing.assert_allclose(J[:, i, :P1] @ J2[:, i, :P1].T, gated[i], rtol=1e-11,
                                   atol=1e-11)
    np.testing.assert_allclose(feature[None] + gated,
                               empirical_ntk(net, [W1, W2], X, X2, heads="each"),
                               rtol=1e-12, atol=1e-12)


def test_empirical_ntk_is_assembled_from_the_sums():
    """numerics' two-layer kernel is c_2^2 (k feature + c_1^2 inputs * gated), bitwise."""
    W1, W2, X, _ = _problem(2, m=40)
    net = MLP([6, 40, 3], "relu")
    c1, c2 = net.multipliers
    s = hidden_unit_sums(W1, W2, X, c1=c1, activation="relu", heads="sum", block_size=9)
    K = empirical_ntk(net, [W1, W2], X, block_size=9)
    np.testing.assert_array_equal(K, c2 * c2 * (3 * s.feature + c1 * c1 * s.inputs * s.gated))


def test_float32_is_kept():
    W1, W2, X, X2 = (a.astype(np.float32) for a in _problem(3))
    s = hidden_unit_sums(W1, W2, X, X2, c1=0.5, readout=True)
    assert all(a.dtype == np.float32 for a in (s.feature, s.gated, s.inputs, s.readout,
                                                s.readout2))


def test_multipliers_and_block_size():
    assert layer_multipliers((6, 23)) == MLP([6, 23, 3]).multipliers
    assert layer_multipliers((6, 23), "standard") == (1.0, 1.0)
    assert layer_multipliers([4, 9, 9], "ntk") == MLP([4, 9, 9, 2]).multipliers
    assert default_block_size(10, 20) == 32 * 2 ** 20 // (8 * 20)
    assert default_block_size(10 ** 9, 1) == 1


def test_bad_input_names_the_argument():
    W1, W2, X, X2 = _problem()
    with pytest.raises(ValueError, match="W1"):
        hidden_unit_sums(W1[:, :4], W2, X, c1=1.0)
    with pytest.raises(ValueError, match="W2"):
        hidden_unit_sums(W1, W2[:, :4], X, c1=1.0)
    with pytest.raises(ValueError, match="X2"):
        hidden_unit_sums(W1, W2, X, X2[:, :4], c1=1.0)
    with pytest.raises(ValueError, match="heads"):
        hidden_unit_sums(W1, W2, X, c1=1.0, heads="full")
    with pytest.raises(ValueError, match="block_size"):
        hidden_unit_sums(W1, W2, X, c1=1.0, block_size=0)
    with pytest.raises(ValueError, match="activation"):
        hidden_unit_sums(W1, W2, X, c1=1.0, activation="swish-7")
    with pytest.raises(TypeError, match="c1"):
        hidden_unit_sums(W1, W2, X)
    with pytest.raises(ValueError, match="parameterization"):
        two_layer_ntk_terms(W1, W2, X, parameterization="mean-field")
    with pytest.raises(ValueError, match="finite"):
        two_layer_ntk_terms(np.full_like(W1, np.nan), W2, X)
    with pytest.raises(ValueError, match="fan_ins"):
        layer_multipliers((0, 3))
