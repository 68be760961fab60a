"""Empirical NTK (with and without biases, summed and per layer) against explicit per-example
Jacobians, and kernel-target metrics."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntkdyn.base.activations import ACTIVATIONS
from ntkdyn.numerics.kernels import (alignment, eigenvector_target_overlap, empirical_ntk,
                                     layer_names, relative_change, specialization,
                                     specialization_index)
from ntkdyn.numerics.networks import MLP, Network
from ntkdyn.theory.two_layer_ntk import hidden_unit_sums

CASES = [
    ([4, 1], "relu", None),
    ([4, 9, 1], "relu", None),
    ([4, 9, 3], "tanh", None),
    ([4, 9, 3], "erf", "tanh"),
    ([4, 6, 7, 2], "relu", None),
    ([4, 6, 7, 5, 3], "softplus", "sigmoid"),
]


def reference_kernels(net, params, X, X2):
    """``J J'^T`` from per-example Jacobians ``(n, k, P)``: full, per-head and summed."""
    full = np.einsum("aip,bjp->ijab", net.jacobian(params, X), net.jacobian(params, X2))
    return {"full": full, "each": np.einsum("iiab->iab", full), "sum": np.einsum("iiab->ab", full)}


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("widths,act,out", CASES)
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_factorised_ntk_equals_jacobian_gram(widths, act, out, parameterization):
    net = MLP(widths, act, out, init_scale=0.9, parameterization=parameterization)
    params = net.init(3)
    rng = np.random.default_rng(0)
    X, X2 = rng.standard_normal((7, 4)), rng.standard_normal((5, 4))
    for x2 in (None, X2):
        ref = reference_kernels(net, params, X, X if x2 is None else x2)
        for heads in ("sum", "each", "full"):
            K = empirical_ntk(net, params, X, x2, heads=heads)
            assert K.shape == ref[heads].shape
            assert rel_err(K, ref[heads]) < 1e-10, (heads, x2 is None)


@pytest.mark.parametrize("out", [None, "tanh"])
def test_two_layer_blocks_do_not_change_the_kernel(out):
    net = MLP([5, 103, 3], "relu", out)
    params = net.init(1)
    X = np.random.default_rng(2).standard_normal((11, 5))
    for heads in ("sum", "each"):
        whole = empirical_ntk(net, params, X, heads=heads, block_size=10**6)
        for block in (1, 7, 50):
            blocked = empirical_ntk(net, params, X, heads=heads, block_size=block)
            assert rel_err(blocked, whole) < 1e-13


def test_float32_kernel_stays_float32_and_close():
    net = MLP([6, 64, 1])
    params = net.init(0)
    X = np.random.default_rng(0).standard_normal((8, 6))
    K64 = empirical_ntk(net, params, X)
    K32 = empirical_ntk(net, [W.astype(np.float32) for W in params], X.astype(np.float32))
    assert K32.dtype == np.float32
    assert rel_err(K32.astype(float), K64) < 1e-5


def test_kernel_is_symmetric_positive_semidefinite():
    net = MLP([3, 20, 20, 2], "tanh")
    X = np.random.default_rng(0).standard_normal((10, 3))
    K = empirical_ntk(net, net.init(0), X)
    np.testing.assert_allclose(K, K.T, atol=1e-13)
    assert np.linalg.eigvalsh(K).min() > -1e-12


def test_bad_heads_and_inputs():
    net = MLP([3, 4, 1])
    with pytest.raises(ValueError, match="heads must be one of"):
        empirical_ntk(net, net.init(0), np.ones((2, 3)), heads="diag")
    with pytest.raises(ValueError, match="X2 must have 3 columns"):
        empirical_ntk(net, net.init(0), np.ones((2, 3)), np.ones((2, 4)))


# ------------------------------------------------------------------- biases
# depth 2, 3, 4; relu, tanh, erf, softplus; output activations; one and several heads
BIAS_CASES = [
    ([4, 9, 1], "relu", None),
    ([4, 9, 3], "tanh", None),
    ([4, 9, 3], "erf", "tanh"),
    ([4, 6, 7, 2], "relu", None),
    ([4, 6, 7, 3], "tanh", "sigmoid"),
    ([4, 6, 7, 5, 3], "softplus", "sigmoid"),
]


def reference_layer_kernels(net, params, X, X2):
    """Per-parameter-array ``J_p J_p'^T`` (heads "full") from the explicit Jacobians."""
    J, J2 = net.jacobian(params, X), net.jacobian(params, X2)
    L, out, start = net.depth, {}, 0
    for idx, shape in enumerate(net.param_shapes):
        size = int(np.prod(shape))
        name = f"W_{idx + 1}" if idx < L else f"b_{idx - L + 1}"
        sl = slice(start, start + size)
        out[name] = np.einsum("aip,bjp->ijab", J[:, :, sl], J2[:, :, sl])
        start += size
    return out


def in_mode(full, heads):
    return {"full": full, "each": np.einsum("iiab->iab", full),
            "sum": np.einsum("iiab->ab", full)}[heads]


@pytest.mark.parametrize("widths,act,out", BIAS_CASES)
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_ntk_with_biases_equals_jacobian_gram_in_total_and_per_layer(
        widths, act, out, parameterization):
    net = Network(widths, act, W_std=1.3, b_std=0.6, parameterization=parameterization,
                  output_activation=out)
    assert net.has_bias
    params = net.init(5)
    rng = np.random.default_rng(1)
    X, X2 = rng.standard_normal((7, 4)), rng.standard_normal((5, 4))
    for x2 in (None, X2):
        ref = reference_layer_kernels(net, params, X, X if x2 is None else x2)
        total = sum(ref.values())
        for heads in ("sum", "each", "full"):
            K = empirical_ntk(net, params, X, x2, heads=heads)
            assert K.shape == in_mode(total, heads).shape
            assert rel_err(K, in_mode(total, heads)) < 1e-10, (heads, x2 is None)
            layers = empirical_ntk(net, params, X, x2, heads=heads, per_layer=True)
            assert list(layers) == layer_names(net)
            assert set(layers) == set(ref)
            for name, K_l in layers.items():
                expected = in_mode(ref[name], heads)
                assert K_l.shape == expected.shape
                assert rel_err(K_l, expected) < 1e-10, (heads, name, x2 is None)
            assert rel_err(sum(layers.values()), K) < 1e-13


def test_layer_names_interleave_weights_and_biases():
    assert layer_names(Network([3, 4, 5, 2], b_std=0.1)) == ["W_1", "b_1", "W_2", "b_2",
                                                             "W_3", "b_3"]
    assert layer_names(MLP([3, 4, 2])) == ["W_1", "W_2"]
    assert layer_names(Network([3, 4, 2])) == ["W_1", "W_2"]


@pytest.mark.parametrize("widths,act,out", CASES + BIAS_CASES)
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_zero_bias_std_is_bitwise_the_mlp_kernel(widths, act, out, parameterization):
    mlp = MLP(widths, act, out, parameterization=parameterization)
    net = Network(widths, act, W_std=1.0, b_std=0.0, parameterization=parameterization,
                  output_activation=out)
    assert not net.has_bias
    params = mlp.init(2)
    rng = np.random.default_rng(3)
    X, X2 = rng.standard_normal((6, 4)), rng.standard_normal((4, 4))
    for x2 in (None, X2):
        for heads in ("sum", "each", "full"):
            a = empirical_ntk(mlp, params, X, x2, heads=heads)
            b = empirical_ntk(net, params, X, x2, heads=heads)
            assert np.array_equal(a, b), heads
            la = empirical_ntk(mlp, params, X, x2, heads=heads, per_layer=True)
            lb = empirical_ntk(net, params, X, x2, heads=heads, per_layer=True)
            assert list(la) == list(lb) == [f"W_{l + 1}" for l in range(mlp.depth)]
            for name in la:
                assert np.array_equal(la[name], lb[name]), (heads, name)
    if parameterization == "ntk":  # the same initialisation too
        for A, B in zip(mlp.init(7), net.init(7)):
            assert np.array_equal(A, B)


@pytest.mark.parametrize("out", [None, "tanh"])
def test_two_layer_blocks_do_not_change_the_kernel_with_biases(out):
    net = Network([5, 103, 3], "relu", b_std=0.8, output_activation=out)
    params = net.init(1)
    rng = np.random.default_rng(2)
    X, X2 = rng.standard_normal((11, 5)), rng.standard_normal((4, 5))
    for x2 in (None, X2):
        for heads in ("sum", "each"):
            whole = empirical_ntk(net, params, X, x2, heads=heads, block_size=10**6)
            layers = empirical_ntk(net, params, X, x2, heads=heads, block_size=10**6,
                                   per_layer=True)
            for block in (1, 7, 50):
                blocked = empirical_ntk(net, params, X, x2, heads=heads, block_size=block)
                assert rel_err(blocked, whole) < 1e-13
                per = empirical_ntk(net, params, X, x2, heads=heads, block_size=block,
                                    per_layer=True)
                for name in layers:
                    assert rel_err(per[name], layers[name]) < 1e-13


def test_hidden_unit_sums_with_a_bias_equal_unblocked_products():
    rng = np.random.default_rng(8)
    W1, W2 = rng.standard_normal((23, 6)), rng.standard_normal((3, 23))
    X, X2, bias = rng.standard_normal((9, 6)), rng.standard_normal((4, 6)), rng.standard_normal(23)
    act, c1 = ACTIVATIONS["tanh"], 0.4
    H, H2 = c1 * X @ W1.T + bias, c1 * X2 @ W1.T + bias
    s = hidden_unit_sums(W1, W2, X, X2, c1=c1, activation="tanh", block_size=5, readout=True,
                         bias=bias)
    np.testing.assert_allclose(s.feature, act.phi(H) @ act.phi(H2).T, rtol=1e-12, atol=1e-12)
    gated = np.stack([(act.dphi(H) * a * a) @ act.dphi(H2).T for a in W2])
    np.testing.assert_allclose(s.gated, gated, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.readout2, act.phi(H2) @ W2.T, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"bias must have shape \(23,\)"):
        hidden_unit_sums(W1, W2, X, c1=c1, bias=bias[:5])


def test_float32_kernel_with_biases_stays_float32_and_close():
    net = Network([6, 64, 2], "tanh", b_std=0.5)
    params = net.init(0)
    X = np.random.default_rng(0).standard_normal((8, 6))
    for heads in ("sum", "each"):
        K64 = empirical_ntk(net, params, X, heads=heads)
        K32 = empirical_ntk(net, [W.astype(np.float32) for W in params], X.astype(np.float32),
                            heads=heads)
        assert K32.dtype == np.float32
        assert rel_err(K32.astype(float), K64) < 1e-5


def test_bad_net_and_per_layer():
    X = np.ones((2, 3))
    with pytest.raises(TypeError, match="net must be an MLP or Network, got list"):
        empirical_ntk([np.ones((4, 3))], None, X)
    net = MLP([3, 4, 1])
    with pytest.raises(TypeError, match="per_layer must be a bool, got 'yes'"):
        empirical_ntk(net, net.init(0), X, per_layer="yes")
    with pytest.raises(ValueError, match="heads must be one of"):
        empirical_ntk(net, net.init(0), X, heads="all", per_layer=True)
    with pytest.raises(ValueError, match="params must hold 3 weight matrices and 3 bias"):
        empirical_ntk(Network([3, 4, 4, 1], b_std=0.1), MLP([3, 4, 4, 1]).init(0), X)


# ------------------------------------------------------------------- metrics
def test_alignment_is_one_for_the_target_outer_product_and_scale_free():
    y = np.random.default_rng(0).standard_normal(12)
    assert alignment(np.outer(y, y), y) == pytest.approx(1.0, abs=1e-14)
    K = np.random.default_rng(1).standard_normal((12, 12))
    K = K @ K.T
    assert alignment(3.7 * K, y) == pytest.approx(alignment(K, y), rel=1e-13)
    # identity kernel: A = ||y||^2 / (sqrt(n) ||y||^2) = 1 / sqrt(n)
    assert alignment(np.eye(12), y) == pytest.approx(1 / np.sqrt(12), rel=1e-13)


def test_alignment_matches_the_explicit_formula_with_multiple_outputs():
    rng = np.random.default_rng(4)
    K = rng.standard_normal((9, 9))
    K = K @ K.T
    Y = rng.standard_normal((9, 3))
    T = Y @ Y.T
    expected = np.sum(K * T) / (np.linalg.norm(K) * np.linalg.norm(T))
    assert alignment(K, Y) == pytest.approx(expected, rel=1e-13)
    H = np.eye(9) - 1 / 9
    Kc, Yc = H @ K @ H, H @ Y
    Tc = Yc @ Yc.T
    assert alignment(K, Y, centered=True) == pytest.approx(
        np.sum(Kc * Tc) / (np.linalg.norm(Kc) * np.linalg.norm(Tc)), rel=1e-12)


def test_centered_alignment_ignores_constant_modes():
    rng = np.random.default_rng(5)
    y = rng.standard_normal(10)
    K = np.outer(y, y) + 50.0  # a huge constant mode
    assert alignment(K, y + 3.0, centered=True) == pytest.approx(
        alignment(np.outer(y, y), y, centered=True), rel=1e-12)
    assert alignment(K, y) < 0.5


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 12), st.integers(0, 10**6))
def test_alignment_of_psd_kernels_lies_in_unit_interval(n, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    y = rng.standard_normal(n)
    a = alignment(A @ A.T, y)
    assert -1e-12 <= a <= 1 + 1e-12


def test_specialization_matrix_and_index():
    rng = np.random.default_rng(6)
    Y = rng.standard_normal((15, 3))
    K_heads = np.stack([np.outer(Y[:, i], Y[:, i]) for i in range(3)])
    S = specialization(K_heads, Y, centered=False)
    np.testing.assert_allclose(np.diag(S), 1.0, atol=1e-13)
    for i in range(3):
        for j in range(3):
            assert S[i, j] == pytest.approx(alignment(K_heads[i], Y[:, j]), rel=1e-13)
    assert specialization_index(S) == pytest.approx(1 - (S.sum() - 3) / 6, rel=1e-13)
    same = specialization(np.stack([np.eye(15)] * 3), Y)
    off_diagonal = same.sum() - np.trace(same)
    assert abs(specialization_index(same) - (np.trace(same) / 3 - off_diagonal / 6)) < 1e-14


def test_relative_change():
    K0 = np.eye(4)
    assert relative_change(2 * K0, K0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        relative_change(np.eye(3), K0)


def test_eigenvector_overlap_accumulates_to_one_and_finds_the_target_mode():
    rng = np.random.default_rng(7)
    Q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    evals = np.arange(8, 0, -1.0)
    K = (Q * evals) @ Q.T
    lam, C = eigenvector_target_overlap(K, Q[:, 2])
    np.testing.assert_allclose(lam, evals, rtol=1e-12)
    np.testing.assert_allclose(C, [0, 0, 1, 1, 1, 1, 1, 1], atol=1e-12)


def test_kernel_specialization_matrix_is_eq9_of_shan_bordelon():
    from ntkdyn import kernel_specialization_matrix

    rng = np.random.default_rng(4)
    C, n = 3, 12
    F = rng.standard_normal((C, n, 5))
    K_heads = np.einsum("cia,cja->cij", F, F)
    Y = rng.standard_normal((n, C))
    ksm = kernel_specialization_matrix(K_heads, Y)

    def A(K, y):  # uncentred alignment, written out
        return float(y @ K @ y / (np.linalg.norm(K) * (y @ y)))

    for c in range(C):
        for d in range(C):
            expected = A(K_heads[c], Y[:, d]) / np.mean([A(K_heads[e], Y[:, d]) for e in range(C)])
            assert ksm[c, d] == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(ksm.mean(axis=0), 1.0, rtol=1e-12)
    # identical heads: no specialization at all
    same = kernel_specialization_matrix(np.stack([K_heads[0]] * C), Y)
    np.testing.assert_allclose(same, 1.0, rtol=1e-12)
