"""Empirical NTK against explicit per-example Jacobians, and kernel-target metrics."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntkdyn.numerics.kernels import (alignment, eigenvector_target_overlap, empirical_ntk,
                                     relative_change, specialization, specialization_index)
from ntkdyn.numerics.networks import MLP

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
