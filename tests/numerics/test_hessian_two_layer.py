"""Tests of numerics.hessian_two_layer: the closed form against an explicit block construction.

The closed form (Numba and NumPy passes, the pruned norm-only pass) is checked against the
two-layer Hessian assembled block by block, the dense R-operator Hessian and Lanczos.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from ntkdyn.base.activations import ACTIVATIONS, Activation
from ntkdyn.numerics.hessian_norm import output_hessian_norm
from ntkdyn.numerics.hessian_operator import output_hessian_dense
from ntkdyn.numerics.hessian_two_layer import (two_layer_hessian, two_layer_hessian_norm,
                                               two_layer_unit_blocks)
from ntkdyn.numerics.memory import estimate_bytes, require_memory
from ntkdyn.numerics.networks import MLP, Network

SMOOTH = ["tanh", "softplus", "sigmoid", "erf"]


def _unit_input(d, rng):
    """An input on the sphere of radius ``sqrt(d)`` (the inputs of Liu, Zhu & Belkin 2020)."""
    x = rng.standard_normal(d)
    return x * math.sqrt(d) / np.linalg.norm(x)


# ------------------------------------------------------------------- two-layer closed form
def _explicit_two_layer_hessian(net, params, x):
    """The two-layer output Hessian assembled block by block (parameter order of ``flatten``).

    ``H_{w_j w_j} = c2 c1^2 v_j phi''(z_j) x x^T``, ``H_{w_j v_j} = c2 c1 phi'(z_j) x``,
    ``H_vv = 0``.
    """
    W1, W2 = params
    m, d = W1.shape
    c1, c2 = net.multipliers
    z = c1 * (W1 @ x)
    s1, s2 = net.activation.dphi(z), net.activation.d2phi(z)
    P = m * d + m
    H = np.zeros((P, P))
    for j in range(m):
        blk = slice(j * d, (j + 1) * d)
        H[blk, blk] = c2 * c1 * c1 * W2[0, j] * s2[j] * np.outer(x, x)
        H[blk, m * d + j] = c2 * c1 * s1[j] * x
        H[m * d + j, blk] = c2 * c1 * s1[j] * x
    return H


@pytest.mark.parametrize("activation", SMOOTH + ["relu"])
@pytest.mark.parametrize("m", [16, 40])
def test_closed_form_matches_dense_lanczos_and_numpy(activation, m):
    rng = np.random.default_rng(5)
    d = 10
    net = MLP([d, m, 1], activation=activation)
    params = net.init(rng)
    x = _unit_input(d, rng)
    H = _explicit_two_layer_hessian(net, params, x)
    # The R-operator builds the same matrix.
    assert np.max(np.abs(H - output_hessian_dense(net, params, x))) < 1e-14
    evals = np.linalg.eigvalsh(H)
    dense_norm = np.max(np.abs(evals))
    stats = two_layer_hessian(net, params, x)
    assert abs(stats.norm - dense_norm) <= 1e-10 * dense_norm
    assert abs(output_hessian_norm(net, params, x) - dense_norm) <= 1e-10 * dense_norm
    lanczos = output_hessian_norm(net, params, x, method="lanczos")
    assert abs(lanczos - dense_norm) <= 1e-8 * dense_norm
    np.testing.assert_allclose(stats.frobenius, np.linalg.norm(H), rtol=1e-12)
    J = net.jacobian(params, x[None])[0, 0]
    np.testing.assert_allclose(stats.grad_norm, np.linalg.norm(J), rtol=1e-12)
    np.testing.assert_allclose(stats.output, net.apply(params, x[None])[0, 0], rtol=1e-12)
    ref = two_layer_hessian(net, params, x, backend="numpy")
    for name in ("norm", "frobenius", "grad_norm", "output"):
        np.testing.assert_allclose(getattr(stats, name), getattr(ref, name), rtol=1e-13)
    assert stats.unit == ref.unit


def test_two_layer_hessian_structure():
    """H_vv = 0, rank <= 2m, and per-unit eigenvalue pairs with sum A|x|^2, product -B^2|x|^2."""
    rng = np.random.default_rng(6)
    d, m = 6, 12
    net = MLP([d, m, 1], activation="tanh")
    params = net.init(rng)
    x = _unit_input(d, rng)
    H = output_hessian_dense(net, params, x)
    assert np.all(H[m * d:, m * d:] == 0.0)
    evals = np.linalg.eigvalsh(H)
    scale = np.max(np.abs(evals))
    assert np.sum(np.abs(evals) > 1e-12 * scale) <= 2 * m
    p, q = two_layer_unit_blocks(net, params, x)
    root = np.sqrt(p * p + 4 * q * q)
    pairs = np.concatenate([(p + root) / 2, (p - root) / 2])
    nonzero = np.sort(evals[np.abs(evals) > 1e-12 * scale])
    np.testing.assert_allclose(nonzero, np.sort(pairs), atol=1e-10 * scale)
    for j in range(m):
        blk = np.r_[j * d:(j + 1) * d, m * d + j]
        ev = np.linalg.eigvalsh(H[np.ix_(blk, blk)])
        ev = ev[np.argsort(np.abs(ev))][-2:]
        assert abs(ev.sum() - p[j]) < 1e-10 * scale
        assert abs(ev.prod() + q[j] ** 2) < 1e-10 * scale ** 2


@pytest.mark.parametrize("m,d", [(7, 3), (30, 10), (4096, 10)])
def test_relu_norm_is_x_over_sqrt_md(m, d):
    """ReLU: phi'' = 0, so every active unit's block is [[0, |x|/sqrt(md)], [., 0]]."""
    rng = np.random.default_rng(7)
    net = MLP([d, m, 1], activation="relu")
    params = net.init(rng)
    x = rng.standard_normal(d)
    assert np.any(params[0] @ x > 0)
    want = np.linalg.norm(x) / math.sqrt(m * d)
    assert abs(output_hessian_norm(net, params, x) - want) <= 1e-14 * want
    assert abs(two_layer_hessian(net, params, x).norm - want) <= 1e-14 * want
    if m <= 30:
        dense = np.max(np.abs(np.linalg.eigvalsh(output_hessian_dense(net, params, x))))
        assert abs(dense - want) <= 1e-12 * want
    # No unit active: the Hessian vanishes.
    params[0][:] = -np.sign(x)[None, :] * np.abs(params[0])
    assert two_layer_hessian(net, params, x).norm == 0.0


@pytest.mark.parametrize("activation", SMOOTH + ["relu", "linear"])
def test_pruned_norm_equals_full_pass(activation):
    rng = np.random.default_rng(8)
    for m in (1, 5, 333, 20000):
        net = MLP([7, m, 2], activation=activation)
        params = net.init(rng)
        x = rng.standard_normal(7)
        for head in (0, 1):
            full = two_layer_hessian(net, params, x, head=head)
            norm, visited = two_layer_hessian_norm(net, params, x, head=head,
                                                      return_visited=True)
            assert norm == full.norm
            assert 0.0 < visited <= 1.0
            for threads in (1, 2):
                assert two_layer_hessian_norm(net, params, x, head=head,
                                                 threads=threads) == full.norm


def test_custom_activation_uses_numpy_path():
    rng = np.random.default_rng(9)
    cube = Activation("cube", lambda z: z ** 3, lambda z: 3 * z ** 2, lambda z: 6 * z)
    net = MLP([3, 9, 1], activation=cube)
    params = net.init(rng)
    x = rng.standard_normal(3)
    dense = np.max(np.abs(np.linalg.eigvalsh(output_hessian_dense(net, params, x))))
    assert abs(output_hessian_norm(net, params, x) - dense) < 1e-12 * dense
    with pytest.raises(ValueError, match="backend='numba'"):
        two_layer_hessian(net, params, x, backend="numba")


def test_multi_head_two_layer_uses_its_row_of_w2():
    rng = np.random.default_rng(10)
    net = MLP([5, 20, 3], activation="tanh")
    params = net.init(rng)
    x = rng.standard_normal(5)
    for head in range(3):
        dense = np.max(np.abs(np.linalg.eigvalsh(output_hessian_dense(net, params, x, head))))
        assert abs(output_hessian_norm(net, params, x, head=head) - dense) < 1e-12 * dense


# --------------------------------------------------------------------------- scaling
def test_tanh_norm_over_sqrt_log_m_falls_like_inverse_sqrt_width():
    """Reduced-scale slope target (widths 2^8 .. 2^16, 6 seeds)."""
    d = 10
    ms = 2 ** np.arange(8, 17, 2)
    H = np.zeros(len(ms))
    grad = np.zeros(len(ms))
    for seed in range(6):
        rng = np.random.default_rng(seed)
        x = _unit_input(d, rng)
        for i, m in enumerate(ms):
            net = MLP([d, int(m), 1], activation="tanh")
            stats = two_layer_hessian(net, net.init(rng), x)
            H[i] += stats.norm / 6
            grad[i] += stats.grad_norm / 6
    slope = np.polyfit(np.log(ms), np.log(H / np.sqrt(np.log(ms))), 1)[0]
    assert abs(slope + 0.5) < 0.06
    assert np.ptp(grad[1:]) / grad[-1] < 0.05


def test_registry_activations_carry_kernel_codes_and_bounds():
    """Registry codes are distinct and 0..k-1 (GELU, sin, leaky ReLU have none: NumPy pass);
    every activation has the sup bounds pruning needs."""
    coded = sorted(a.code for a in ACTIVATIONS.values() if a.code is not None)
    assert coded == list(range(len(coded))) and len(coded) >= 6
    assert all(a.sup_dphi is not None and a.sup_d2phi is not None for a in ACTIVATIONS.values())


# --------------------------------------------------------------------------- paper scale
@pytest.mark.slow
def test_closed_form_at_ten_million_units():
    """m = 10^7, d = 10 (0.8 GB of weights): norm-only pass == full pass; ReLU exact."""
    m, d = 10 ** 7, 10
    require_memory(3 * estimate_bytes([d, m, 1]), "the 10^7-unit test")
    rng = np.random.default_rng(17)
    params = [rng.standard_normal((m, d)), rng.standard_normal((1, m))]
    x = _unit_input(d, rng)
    for activation in ("tanh", "relu"):
        net = MLP([d, m, 1], activation=activation)
        full = two_layer_hessian(net, params, x)
        assert output_hessian_norm(net, params, x) == full.norm
        if activation == "relu":
            assert abs(full.norm - 1 / math.sqrt(m)) < 1e-14 / math.sqrt(m)
        else:
            assert abs(full.grad_norm - 0.9267) < 0.01


@pytest.mark.slow
def test_tanh_slope_over_widths_to_a_million():
    """Slope of ||H|| / sqrt(log m) over 2^12 .. 2^20 within 0.05 of -1/2."""
    d = 10
    ms = 2 ** np.arange(12, 21)
    H = np.zeros(len(ms))
    for seed in range(8):
        rng = np.random.default_rng(seed)
        x = _unit_input(d, rng)
        for i, m in enumerate(ms):
            net = MLP([d, int(m), 1], activation="tanh")
            H[i] += output_hessian_norm(net, net.init(rng), x) / 8
    slope = np.polyfit(np.log(ms), np.log(H / np.sqrt(np.log(ms))), 1)[0]
    assert abs(slope + 0.5) < 0.05


# -------------------------------------------------------------------------------- biases
def _explicit_biased_hessian(net, params, x, head=0):
    """The two-layer output Hessian with biases, block by block, in the order of ``flatten``
    (``W_1``, ``W_2``, ``b_1``, ``b_2``): ``z_j = c1 w_j . x + beta1 b_j``,

    ``H_{w_j w_j} = c2 c1^2 v_j phi''(z_j) x x^T``, ``H_{w_j b_j} = c2 c1 beta1 v_j phi'' x``,
    ``H_{b_j b_j} = c2 beta1^2 v_j phi''``, ``H_{w_j v_j} = c2 c1 phi'(z_j) x``,
    ``H_{b_j v_j} = c2 beta1 phi'(z_j)``; ``v = W_2[head]``; every other entry is zero.
    """
    W1, W2, b1, b2 = params
    m, d = W1.shape
    k = W2.shape[0]
    c1, c2 = net.multipliers
    beta1, _ = net.bias_multipliers
    z = c1 * (W1 @ x) + beta1 * b1
    s1, s2 = net.activation.dphi(z), net.activation.d2phi(z)
    v = W2[head]
    P = m * d + k * m + m + k
    iv, ib = m * d + head * m, m * d + k * m  # offsets of W_2[head] and of b_1
    H = np.zeros((P, P))
    for j in range(m):
        w = slice(j * d, (j + 1) * d)
        A = c2 * v[j] * s2[j]
        H[w, w] = A * c1 * c1 * np.outer(x, x)
        H[w, ib + j] = H[ib + j, w] = A * c1 * beta1 * x
        H[ib + j, ib + j] = A * beta1 * beta1
        H[w, iv + j] = H[iv + j, w] = c2 * c1 * s1[j] * x
        H[ib + j, iv + j] = H[iv + j, ib + j] = c2 * beta1 * s1[j]
    return H


@pytest.mark.parametrize("activation", SMOOTH + ["relu", "linear"])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_closed_form_with_biases_matches_explicit_blocks(activation, parameterization):
    """Numba and NumPy passes, the pruned pass and the unit blocks with biases, against the
    explicit Hessian, the R-operator, Lanczos and ``net.jacobian``."""
    rng = np.random.default_rng(31)
    d, m = 6, 24
    net = Network([d, m, 2], activation=activation, W_std=1.3, b_std=0.8,
                  parameterization=parameterization)
    params = net.init(rng)
    x = _unit_input(d, rng)
    for head in (0, 1):
        H = _explicit_biased_hessian(net, params, x, head)
        scale = np.max(np.abs(H))
        assert np.max(np.abs(H - output_hessian_dense(net, params, x, head))) < 1e-14 * scale
        evals = np.linalg.eigvalsh(H)
        want = np.max(np.abs(evals))
        for backend in ("numba", "numpy"):
            stats = two_layer_hessian(net, params, x, head, backend=backend)
            assert abs(stats.norm - want) <= 1e-12 * want
            np.testing.assert_allclose(stats.frobenius, np.linalg.norm(H), rtol=1e-12)
            J = net.jacobian(params, x[None])[0, head]
            np.testing.assert_allclose(stats.grad_norm, np.linalg.norm(J), rtol=1e-12)
            np.testing.assert_allclose(stats.output, net.apply(params, x[None])[0, head],
                                       rtol=1e-12)
            norm = two_layer_hessian_norm(net, params, x, head, backend=backend)
            assert abs(norm - want) <= 1e-12 * want
        assert two_layer_hessian_norm(net, params, x, head) == two_layer_hessian(
            net, params, x, head).norm
        assert abs(output_hessian_norm(net, params, x, head) - want) <= 1e-12 * want
        lanczos = output_hessian_norm(net, params, x, head, method="lanczos")
        assert abs(lanczos - want) <= 1e-8 * want
        # unit blocks: the non-zero spectrum is the union of the per-unit 2x2 blocks
        p, q = two_layer_unit_blocks(net, params, x, head)
        root = np.sqrt(p * p + 4 * q * q)
        pairs = np.sort(np.concatenate([(p + root) / 2, (p - root) / 2]))
        nonzero = np.sort(evals[np.abs(evals) > 1e-12 * want])
        pairs = pairs[np.abs(pairs) > 1e-12 * want]
        np.testing.assert_allclose(nonzero, pairs, atol=1e-10 * want)


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_relu_norm_with_biases(parameterization):
    """ReLU with biases: ``||H|| = c_2 sqrt(c_1^2 |x|^2 + beta_1^2)`` once a unit is active."""
    rng = np.random.default_rng(32)
    d, m = 10, 4096
    net = Network([d, m, 1], activation="relu", W_std=1.4, b_std=0.3,
                  parameterization=parameterization)
    params = net.init(rng)
    x = rng.standard_normal(d)
    (c1, c2), (beta1, _) = net.multipliers, net.bias_multipliers
    want = c2 * math.sqrt(c1 * c1 * float(x @ x) + beta1 * beta1)
    assert abs(two_layer_hessian(net, params, x).norm - want) <= 1e-14 * want
    assert abs(output_hessian_norm(net, params, x) - want) <= 1e-14 * want


@pytest.mark.parametrize("activation", SMOOTH + ["relu"])
def test_pruned_norm_with_biases_equals_full_pass(activation):
    rng = np.random.default_rng(33)
    for m in (1, 5, 333, 20000):
        for parameterization in ("ntk", "standard"):
            net = Network([7, m, 2], activation=activation, b_std=0.5,
                          parameterization=parameterization)
            params = net.init(rng)
            x = rng.standard_normal(7)
            for head in (0, 1):
                full = two_layer_hessian(net, params, x, head=head)
                for threads in (1, 2):
                    norm, visited = two_layer_hessian_norm(net, params, x, head=head,
                                                           threads=threads, return_visited=True)
                    assert norm == full.norm
                    assert 0.0 < visited <= 1.0


def test_custom_activation_with_biases_uses_numpy_path():
    rng = np.random.default_rng(34)
    cube = Activation("cube", lambda z: z ** 3, lambda z: 3 * z ** 2, lambda z: 6 * z)
    net = Network([3, 9, 1], activation=cube, b_std=0.7)
    params = net.init(rng)
    x = rng.standard_normal(3)
    dense = np.max(np.abs(np.linalg.eigvalsh(_explicit_biased_hessian(net, params, x))))
    assert abs(output_hessian_norm(net, params, x) - dense) < 1e-12 * dense
    assert abs(two_layer_hessian(net, params, x).norm - dense) < 1e-12 * dense


def test_zero_b_std_closed_form_is_bitwise_the_bias_free_one():
    rng = np.random.default_rng(35)
    mlp = MLP([5, 300, 2], activation="tanh")
    net = Network([5, 300, 2], activation="tanh")
    params = mlp.init(rng)
    x = rng.standard_normal(5)
    for backend in ("numba", "numpy"):
        assert two_layer_hessian(net, params, x, 1, backend) == two_layer_hessian(
            mlp, params, x, 1, backend)
        assert two_layer_hessian_norm(net, params, x, 1, backend) == two_layer_hessian_norm(
            mlp, params, x, 1, backend)
