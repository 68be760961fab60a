"""Tests of theory.linearity: each closed form against simulation or an exact computation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ntkdyn import numerics as hs  # the Hessian entry points are re-exported there
from ntkdyn.base.activations import ACTIVATIONS
from ntkdyn.numerics.kernels import empirical_ntk
from ntkdyn.numerics.networks import MLP
from ntkdyn.theory import linearity as lin

TANH = ACTIVATIONS["tanh"]
D = 10
XN = math.sqrt(D)


def _unit_G(rng, size, act=TANH, x_norm=XN, d=D):
    """Samples of the width-free unit variable ``G = sqrt(m) max|eig(B_j)|``."""
    z = rng.standard_normal(size) * x_norm / math.sqrt(d)
    v = rng.standard_normal(size)
    alpha = np.abs(act.d2phi(z)) * x_norm ** 2 / d
    beta = np.abs(act.dphi(z)) * x_norm / math.sqrt(d)
    return 0.5 * (np.abs(v) * alpha + np.sqrt(v * v * alpha * alpha + 4 * beta * beta))


def test_gaussian_expectation_moments():
    assert abs(lin.gaussian_expectation(lambda z: z ** 4, 1.7) - 3 * 1.7 ** 4) < 1e-10
    assert abs(lin.gaussian_expectation(np.cos, 0.5) - math.exp(-0.125)) < 1e-14


def test_unit_eigenvalues_match_2x2_blocks_and_numerics():
    rng = np.random.default_rng(0)
    m = 50
    net = MLP([D, m, 1], activation="tanh")
    params = net.init(rng)
    x = rng.standard_normal(D)
    z = (params[0] @ x) / math.sqrt(D)
    lp, lm = lin.unit_eigenvalues(params[1][0], TANH.dphi(z), TANH.d2phi(z), np.linalg.norm(x),
                                  m, D)
    p, q = hs.two_layer_unit_blocks(net, params, x)
    for j in range(m):
        ev = np.linalg.eigvalsh([[p[j], q[j]], [q[j], 0.0]])
        np.testing.assert_allclose([lm[j], lp[j]], ev, atol=1e-15)
    assert abs(np.max(np.abs(np.r_[lp, lm])) - hs.output_hessian_norm(net, params, x)) < 1e-15


def test_unit_norm_tail_matches_monte_carlo():
    rng = np.random.default_rng(1)
    G = _unit_G(rng, 400_000)
    for t in (0.5, 1.0, 1.5, 2.5):
        p = float(lin.unit_norm_tail(t, TANH.dphi, TANH.d2phi, XN, D))
        emp = np.mean(G > t)
        assert abs(emp - p) < 5 * math.sqrt(p * (1 - p) / G.size) + 1e-6


def test_hessian_norm_law_matches_simulated_maxima():
    """Median and mean of ``||H||`` from the exact law vs 1500 simulated widths m = 1024."""
    rng = np.random.default_rng(2)
    m = 1024
    maxima = _unit_G(rng, (1500, m)).max(axis=1) / math.sqrt(m)
    med = lin.hessian_norm_quantile(m, TANH.dphi, TANH.d2phi, XN, D)
    mean = lin.hessian_norm_mean(m, TANH.dphi, TANH.d2phi, XN, D)
    assert abs(np.median(maxima) - med) < 0.02 * med
    assert abs(np.mean(maxima) - mean) < 4 * np.std(maxima) / math.sqrt(maxima.size)
    q90 = lin.hessian_norm_quantile(m, TANH.dphi, TANH.d2phi, XN, D, quantile=0.9)
    assert abs(np.mean(maxima <= q90) - 0.9) < 0.03


def test_hessian_norm_law_matches_networks():
    """The exact law against the closed-form norm of real networks (12 seeds, m = 4096)."""
    m = 4096
    norms = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        net = MLP([D, m, 1], activation="tanh")
        x = rng.standard_normal(D)
        norms.append(hs.output_hessian_norm(net, net.init(rng), x * XN / np.linalg.norm(x)))
    mean = lin.hessian_norm_mean(m, TANH.dphi, TANH.d2phi, XN, D)
    assert abs(np.mean(norms) - mean) < 3 * np.std(norms) / math.sqrt(len(norms))


def test_predicted_norm_scales_like_sqrt_log_m_over_sqrt_m():
    ms = 2.0 ** np.arange(12, 21)
    q = np.array([lin.hessian_norm_quantile(int(m), TANH.dphi, TANH.d2phi, XN, D) for m in ms])
    slope = np.polyfit(np.log(ms), np.log(q / np.sqrt(np.log(ms))), 1)[0]
    assert abs(slope + 0.5) < 0.03
    raw = np.polyfit(np.log(ms), np.log(q), 1)[0]
    assert -0.5 < raw < -0.4  # the sqrt(log m) factor makes the raw slope shallower
    # The leading-order form approaches the exact quantile from above, slowly.
    sup2 = 4 / (3 * math.sqrt(3))
    ratio = [lin.hessian_norm_quantile(int(m), TANH.dphi, TANH.d2phi, XN, D)
             / lin.hessian_norm_asymptotic(m, sup2, XN, D) for m in (1e3, 1e6, 1e12, 1e24)]
    assert np.all(np.diff(ratio) > 0) and ratio[-1] < 1.0 and ratio[-1] > 0.9


def test_relu_law_is_a_point_mass():
    relu = ACTIVATIONS["relu"]
    for m in (10, 1000):
        want = float(lin.relu_hessian_norm(m, D, 2.0))
        assert want == pytest.approx(2.0 / math.sqrt(m * D), rel=1e-15)
        got = lin.hessian_norm_quantile(m, relu.dphi, relu.d2phi, 2.0, D)
        assert got == pytest.approx(want, rel=1e-9)


def test_gradient_and_frobenius_limits_match_wide_networks():
    m = 2 ** 15
    g = lin.gradient_norm_limit(TANH.phi, TANH.dphi, XN, D)
    f2 = lin.frobenius_norm_sq_limit(TANH.dphi, TANH.d2phi, XN, D)
    assert g == pytest.approx(0.9267, abs=1e-3) and f2 == pytest.approx(1.229, abs=1e-3)
    grads, frobs = [], []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        net = MLP([D, m, 1], activation="tanh")
        x = rng.standard_normal(D)
        st = hs.two_layer_hessian(net, net.init(rng), x * XN / np.linalg.norm(x))
        grads.append(st.grad_norm)
        frobs.append(st.frobenius ** 2)
    assert abs(np.mean(grads) - g) < 0.02 * g
    assert abs(np.mean(frobs) - f2) < 0.05 * f2


def _segment_sup(net, params, delta, x, points=41):
    return max(hs.output_hessian_norm(net, [W + t * dW for W, dW in zip(params, delta)], x)
               for t in np.linspace(0, 1, points))


def test_taylor_and_kernel_change_bounds_hold_on_random_balls():
    rng = np.random.default_rng(3)
    for m, R in ((32, 1.0), (256, 3.0), (256, 0.3)):
        net = MLP([D, m, 1], activation="tanh")
        params = net.init(rng)
        x, z = rng.standard_normal((2, D))
        for _ in range(4):
            delta = [rng.standard_normal(W.shape) for W in params]
            scale = R * rng.uniform(0.2, 1.0) / np.linalg.norm(net.flatten(delta))
            delta = [scale * dW for dW in delta]
            r = np.linalg.norm(net.flatten(delta))
            moved = [W + dW for W, dW in zip(params, delta)]
            eps = max(_segment_sup(net, params, delta, x), _segment_sup(net, params, delta, z))
            J0 = net.jacobian(params, np.stack([x, z]))[:, 0]
            J1 = net.jacobian(moved, np.stack([x, z]))[:, 0]
            f_lin = net.apply(params, x[None])[0, 0] + J0[0] @ net.flatten(delta)
            assert abs(net.apply(moved, x[None])[0, 0] - f_lin) <= lin.taylor_remainder_bound(
                r, _segment_sup(net, params, delta, x))
            change = abs(J1[0] @ J1[1] - J0[0] @ J0[1])
            bound = lin.kernel_entry_change_bound(eps, r, np.linalg.norm(J0[0]),
                                                  np.linalg.norm(J0[1]))
            assert change <= bound
    g = np.array([1.0, 2.0])
    assert lin.kernel_matrix_change_bound(0.1, 1.0, g) == pytest.approx(
        np.linalg.norm([[0.21, 0.31], [0.31, 0.41]]))


def test_nonlinear_output_hessian_bounds_and_kernel():
    rng = np.random.default_rng(4)
    net = MLP([4, 12, 1], activation="tanh")
    g_net = MLP([4, 12, 1], activation="tanh", output_activation="tanh")
    params = net.init(rng)
    X = rng.standard_normal((5, 4))
    x = X[0]
    f = net.apply(params, x[None])[0, 0]
    grad = net.jacobian(params, x[None])[0, 0]
    H_f = hs.output_hessian_dense(net, params, x)
    dpsi, d2psi = TANH.dphi(f), TANH.d2phi(f)
    H_g = lin.nonlinear_output_hessian(grad, H_f, dpsi, d2psi)
    np.testing.assert_allclose(H_g, hs.output_hessian_dense(g_net, params, x), atol=1e-14)
    rank_one, scaled, lo, hi = lin.nonlinear_output_norm_bounds(
        np.linalg.norm(grad), np.max(np.abs(np.linalg.eigvalsh(H_f))), dpsi, d2psi)
    norm_g = np.max(np.abs(np.linalg.eigvalsh(H_g)))
    assert lo - 1e-14 <= norm_g <= hi + 1e-14
    assert rank_one == pytest.approx(abs(d2psi) * grad @ grad)
    F = net.apply(params, X)[:, 0]
    K_g = lin.nonlinear_output_kernel(empirical_ntk(net, params, X), TANH.dphi(F))
    np.testing.assert_allclose(K_g, empirical_ntk(g_net, params, X), rtol=1e-12)


def test_nonlinear_output_rank_one_term_does_not_fall_with_width():
    rank_one, scaled = [], []
    for m in (64, 4096):
        vals = []
        for seed in range(8):
            rng = np.random.default_rng(seed)
            net = MLP([D, m, 1], activation="tanh")
            params = net.init(rng)
            x = rng.standard_normal(D)
            x *= XN / np.linalg.norm(x)
            st = hs.two_layer_hessian(net, params, x)
            vals.append(lin.nonlinear_output_norm_bounds(
                st.grad_norm, st.norm, TANH.dphi(st.output), TANH.d2phi(st.output))[:2])
        r1, sc = np.mean(vals, axis=0)
        rank_one.append(r1)
        scaled.append(sc)
    assert rank_one[1] > 0.1 and rank_one[1] / rank_one[0] > 0.5
    assert scaled[1] / scaled[0] < 0.3  # falls like sqrt(log m / m): ratio about 0.16


def _bottleneck_blocks(net, params, x):
    """Norms of the Hessian blocks of the rows of ``W_2`` in ``[d, m, b, m, 1]`` from the theory."""
    c = net.multipliers
    fwd = net.forward(params, x[None])
    h3 = fwd.preactivations[2][0]
    # f = c4 W4 phi(h3), h3 = c3 W3 alpha: first and second derivatives in alpha_k.
    out = c[3] * params[3][0]
    dfdalpha = c[2] * (out * TANH.dphi(h3)) @ params[2]
    d2fdalpha2 = (out * TANH.d2phi(h3)) @ (c[2] * params[2]) ** 2
    h2 = fwd.preactivations[1][0]
    a_prev = fwd.activations[1][0]
    return lin.bottleneck_block_norm(dfdalpha, d2fdalpha2, TANH.dphi(h2), TANH.d2phi(h2),
                                     c[1] ** 2 * a_prev @ a_prev)


def test_bottleneck_block_is_exact_and_width_independent():
    rng = np.random.default_rng(5)
    d, b, m = 3, 2, 6
    net = MLP([d, m, b, m, 1], activation="tanh")
    params = net.init(rng)
    x = rng.standard_normal(d)
    H = hs.output_hessian_dense(net, params, x)
    want = _bottleneck_blocks(net, params, x)
    start = params[0].size
    for k in range(b):
        blk = slice(start + k * m, start + (k + 1) * m)
        got = np.max(np.abs(np.linalg.eigvalsh(H[blk, blk])))
        assert got == pytest.approx(want[k], rel=1e-12)
        assert np.max(np.abs(np.linalg.eigvalsh(H))) >= got
    # Averaged over seeds, the block norm does not fall with the width around the bottleneck.
    means = []
    for m in (32, 2048):
        vals = [np.max(_bottleneck_blocks(MLP([D, m, b, m, 1], activation="tanh"),
                                          MLP([D, m, b, m, 1]).init(seed),
                                          np.random.default_rng(100 + seed).standard_normal(D)))
                for seed in range(20)]
        means.append(np.mean(vals))
    assert means[1] / means[0] > 0.5 and means[1] > 0.05
    assert lin.infinity_norm_lower_bound(1.0, 4) == 0.5


def test_norm_221_inequality_in_random_trials():
    """``||sum_k b_k T_k||_op <= ||b||_inf sum_k |p^T T_k q|`` at the top singular pair (p, q)."""
    rng = np.random.default_rng(6)
    for _ in range(1000):
        d1, d2, d3 = rng.integers(1, 6, size=3)
        T = rng.standard_normal((d1, d2, d3))
        b = rng.standard_normal(d3)
        M = T @ b
        U, s, Vt = np.linalg.svd(M)
        assert s[0] <= np.max(np.abs(b)) * lin.norm_221_at(T, U[:, 0], Vt[0]) * (1 + 1e-12) + 1e-14
    T = rng.standard_normal((4, 3, 5))
    low = lin.norm_221_lower(T, seed=1)
    upper = sum(np.linalg.norm(T[:, :, k], 2) for k in range(5))
    a = rng.standard_normal(4)
    c = rng.standard_normal(3)
    assert lin.norm_221_at(T, a / np.linalg.norm(a), c / np.linalg.norm(c)) <= low <= upper + 1e-12


def test_linearized_weight_change_matches_gradient_descent_on_a_linear_model():
    rng = np.random.default_rng(7)
    n, P = 12, 40
    J = rng.standard_normal((n, P)) / math.sqrt(P)
    K = J @ J.T
    y = rng.standard_normal(n)
    lr = 1.5 / np.max(np.linalg.eigvalsh(K / n))
    w = np.zeros(P)
    steps = 300
    for _ in range(steps):
        w -= lr * J.T @ (J @ w - y) / n
    r0 = -y
    assert lin.linearized_weight_change(K, r0, lr, steps) == pytest.approx(np.linalg.norm(w),
                                                                           rel=1e-10)
    np.testing.assert_allclose(lin.linearized_residuals(K, r0, lr, [steps])[0], J @ w - y,
                               atol=1e-12)
    # Converged: r0^T K^{-1} r0.
    full = lin.linearized_weight_change(K, r0, lr, 10**6)
    assert full == pytest.approx(math.sqrt(r0 @ np.linalg.solve(K, r0)), rel=1e-8)
    T = lin.steps_to_loss_fraction(K, r0, lr, 1e-3)
    loss = [np.sum(lin.linearized_residuals(K, r0, lr, [s])[0] ** 2) for s in (T - 1, T)]
    assert loss[0] > 1e-3 * (r0 @ r0) >= loss[1]
    assert lin.initial_weight_norm([10, 100, 1], 2.0) == pytest.approx(2 * math.sqrt(1100))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="quantile"):
        lin.hessian_norm_quantile(10, TANH.dphi, TANH.d2phi, 1.0, 3, quantile=1.0)
    with pytest.raises(ValueError, match="m must"):
        lin.unit_eigenvalues(1.0, 1.0, 1.0, 1.0, 0, 3)
    with pytest.raises(ValueError, match="x_norm"):
        lin.gradient_norm_limit(np.tanh, TANH.dphi, -1.0, 3)
    with pytest.raises(ValueError, match="K_f"):
        lin.nonlinear_output_kernel(np.eye(3), np.ones(2))
    with pytest.raises(ValueError, match="K0"):
        lin.linearized_weight_change(np.ones((2, 3)), np.ones(2), 0.1, 3)
    with pytest.raises(TypeError, match="steps"):
        lin.linearized_weight_change(np.eye(2), np.ones(2), 0.1, 2.5)
    for name in lin.__all__:
        assert hasattr(lin, name)
