"""Tests of numerics.hessian_operator: R-operator HVPs, dense Hessians, Lanczos, loss Hessian.

Every fast path is checked against an independent computation: complex-step and central
finite differences of the hand-written gradient, dense Hessians built column by column, and
the Gauss-Newton decomposition of the loss Hessian.
"""
from __future__ import annotations

import numpy as np
import pytest

from ntkdyn.numerics.hessian_norm import output_hessian_norm
from ntkdyn.numerics.hessian_operator import (_prepare, hvp, loss_hessian_dense,
                                              loss_hessian_top_eigs, output_hessian_dense,
                                              output_hessian_operator, output_hessian_top_eigs)
from ntkdyn.numerics.networks import MLP


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def _complex_step_hvp(net, params, X, V, Y=None, head=0, h=1e-30):
    """``H V = Im(grad E(theta + i h V)) / h``: exact to rounding for analytic networks."""
    pc = [W + 1j * h * v for W, v in zip(params, V)]
    fwd = net.forward(pc, X)
    if Y is None:
        out_grad = np.zeros((X.shape[0], net.output_dim))
        out_grad[:, head] = 1.0
    else:
        out_grad = (fwd.output - Y) / X.shape[0]
    return [np.imag(g) / h for g in net.backward(pc, fwd, out_grad)]


def _fd_hvp(net, params, X, V, Y=None, head=0, eps=1e-5):
    """Central differences of the exact gradient along ``V`` (error O(eps^2))."""
    def grad(ps):
        fwd = net.forward(ps, X)
        if Y is None:
            og = np.zeros((X.shape[0], net.output_dim))
            og[:, head] = 1.0
        else:
            og = (fwd.output - Y) / X.shape[0]
        return net.backward(ps, fwd, og)
    gp = grad([W + eps * v for W, v in zip(params, V)])
    gm = grad([W - eps * v for W, v in zip(params, V)])
    return [(a - b) / (2 * eps) for a, b in zip(gp, gm)]


# ------------------------------------------------------------------------- R-operator
@pytest.mark.parametrize("widths,output_activation", [
    ([3, 5, 1], None), ([4, 6, 5, 2], None), ([4, 6, 5, 3, 2], "tanh"), ([3, 2], "tanh")])
@pytest.mark.parametrize("loss", [False, True])
def test_hvp_matches_complex_step(widths, output_activation, loss):
    rng = np.random.default_rng(1)
    net = MLP(widths, activation="tanh", output_activation=output_activation)
    params = net.init(rng)
    X = rng.standard_normal((4, widths[0]))
    Y = rng.standard_normal((4, widths[-1])) if loss else None
    V = [rng.standard_normal(W.shape) for W in params]
    head = widths[-1] - 1
    got = hvp(net, params, X, V, Y=Y, head=head)
    want = _complex_step_hvp(net, params, X, V, Y=Y, head=head)
    for g, w in zip(got, want):
        assert _rel(g, w) < 1e-12


@pytest.mark.parametrize("activation", ["relu", "softplus", "sigmoid", "erf", "linear"])
def test_hvp_matches_finite_differences(activation):
    rng = np.random.default_rng(2)
    net = MLP([4, 7, 6, 2], activation=activation, output_activation="sigmoid")
    params = net.init(rng)
    X = rng.standard_normal((5, 4))
    Y = rng.standard_normal((5, 2))
    V = [rng.standard_normal(W.shape) for W in params]
    for targets in (None, Y):
        got = net.flatten(hvp(net, params, X, V, Y=targets))
        want = net.flatten(_fd_hvp(net, params, X, V, Y=targets))
        assert _rel(got, want) < 1e-6


def test_hvp_flat_and_list_agree_and_operator_is_linear():
    rng = np.random.default_rng(3)
    net = MLP([3, 8, 4, 1], activation="tanh")
    params = net.init(rng)
    x = rng.standard_normal(3)
    V = [rng.standard_normal(W.shape) for W in params]
    flat = hvp(net, params, x[None], net.flatten(V))
    assert flat.shape == (net.num_params,)
    np.testing.assert_allclose(flat, net.flatten(hvp(net, params, x[None], V)), rtol=0, atol=0)
    op = output_hessian_operator(net, params, x)
    u, w = rng.standard_normal((2, net.num_params))
    np.testing.assert_allclose(op @ (2 * u - 3 * w), 2 * (op @ u) - 3 * (op @ w), atol=1e-13)


def test_dense_hessian_is_symmetric_and_matches_finite_differences():
    rng = np.random.default_rng(4)
    net = MLP([3, 5, 4, 1], activation="softplus")
    params = net.init(rng)
    x = rng.standard_normal(3)
    H = output_hessian_dense(net, params, x)
    assert np.max(np.abs(H - H.T)) < 1e-14 * np.max(np.abs(H))
    eye = np.eye(net.num_params)
    H_fd = np.column_stack([net.flatten(_fd_hvp(net, params, x[None], net.unflatten(e)))
                            for e in eye])
    assert _rel(H, H_fd) < 1e-7


# ----------------------------------------------------------------------- deeper networks
@pytest.mark.parametrize("widths,out", [([4, 8, 6, 1], None), ([4, 8, 6, 5, 1], None),
                                        ([4, 16, 1], "tanh"), ([4, 6, 6, 2], "sigmoid")])
def test_lanczos_norm_matches_dense_eigenvalues(widths, out):
    rng = np.random.default_rng(11)
    net = MLP(widths, activation="tanh", output_activation=out)
    params = net.init(rng)
    x = rng.standard_normal(widths[0])
    head = widths[-1] - 1
    dense = np.linalg.eigvalsh(output_hessian_dense(net, params, x, head))
    want = np.max(np.abs(dense))
    assert abs(output_hessian_norm(net, params, x, head=head) - want) < 1e-8 * want
    top = output_hessian_top_eigs(net, params, x, k=3, which="LA", head=head)
    np.testing.assert_allclose(top, np.sort(dense)[::-1][:3], rtol=1e-8)


def test_small_and_zero_hessians():
    """Below 64 parameters the top eigenvalues come from the dense matrix; H = 0 gives 0."""
    rng = np.random.default_rng(18)
    for widths, out in (([2, 3, 2], None), ([3, 1], "tanh"), ([1, 1, 1, 1], None)):
        net = MLP(widths, activation="tanh", output_activation=out)
        params = net.init(rng)
        x = rng.standard_normal(widths[0])
        ev = np.linalg.eigvalsh(output_hessian_dense(net, params, x))
        assert output_hessian_norm(net, params, x) == pytest.approx(np.max(np.abs(ev)),
                                                                       rel=1e-12)
        if net.num_params > 1:
            top = output_hessian_top_eigs(net, params, x, k=1, which="LA")
            assert top[0] == pytest.approx(ev.max(), rel=1e-12, abs=1e-15)
    for d in (5, 100):  # a linear model: the Hessian vanishes (dense path, then the Lanczos guard)
        net = MLP([d, 1])
        assert output_hessian_norm(net, net.init(0), np.ones(d)) == 0.0


def test_nonlinear_output_hessian_is_rank_one_plus_scaled():
    """``H_g = psi''(f) grad f grad f^T + psi'(f) H_f`` for ``g = psi(f)``."""
    rng = np.random.default_rng(12)
    lin = MLP([3, 6, 5, 1], activation="tanh")
    nonlin = MLP([3, 6, 5, 1], activation="tanh", output_activation="tanh")
    params = lin.init(rng)
    x = rng.standard_normal(3)
    f = lin.apply(params, x[None])[0, 0]
    grad = lin.jacobian(params, x[None])[0, 0]
    t = np.tanh(f)
    want = -2 * t * (1 - t * t) * np.outer(grad, grad) + (1 - t * t) * output_hessian_dense(
        lin, params, x)
    np.testing.assert_allclose(output_hessian_dense(nonlin, params, x), want, atol=1e-13)


# --------------------------------------------------------------------------- loss Hessian
def test_loss_hessian_is_gauss_newton_plus_residual_term():
    """``H_L = J^T J / n + sum_k (f_k - y_k) H_f(x_k) / n`` for ``L = 1/(2n) sum (f - y)^2``."""
    rng = np.random.default_rng(13)
    net = MLP([3, 7, 5, 1], activation="tanh")
    params = net.init(rng)
    n = 6
    X = rng.standard_normal((n, 3))
    Y = rng.standard_normal((n, 1))
    H = loss_hessian_dense(net, params, X, Y)
    J = net.jacobian(params, X)[:, 0, :]
    r = net.apply(params, X)[:, 0] - Y[:, 0]
    want = J.T @ J / n + sum(r[k] * output_hessian_dense(net, params, X[k]) for k in range(n)) / n
    assert _rel(H, want) < 1e-8
    top = loss_hessian_top_eigs(net, params, X, Y, k=2)
    np.testing.assert_allclose(top, np.sort(np.linalg.eigvalsh(H))[::-1][:2], rtol=1e-8)
    # The loss gradient from the cached pass is the network's own.
    state = _prepare(net, params, X, "loss", Y)
    for a, b in zip(state.gradient(), net.gradients(params, X, Y)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-16)


def test_loss_hessian_top_eig_stays_order_one_while_output_hessian_falls():
    rng = np.random.default_rng(14)
    d, n = 5, 8
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((n, 1))
    tops, norms = [], []
    for m in (64, 1024):
        net = MLP([d, m, 1], activation="tanh")
        params = net.init(rng)
        tops.append(loss_hessian_top_eigs(net, params, X, Y)[0])
        norms.append(max(output_hessian_norm(net, params, X[k]) for k in range(n)))
    assert 0.5 < tops[1] / tops[0] < 2.0
    assert norms[1] / norms[0] < 0.45  # at least sqrt(16) / sqrt(log ratio) smaller
