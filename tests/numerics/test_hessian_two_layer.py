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
from ntkdyn.numerics.networks import MLP

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
    """Every registry activation has a compiled-kernel code and the sup bounds pruning needs."""
    assert sorted(a.code for a in ACTIVATIONS.values()) == list(range(len(ACTIVATIONS)))
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
