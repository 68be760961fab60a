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
from ntkdyn.numerics.networks import MLP, Network


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def _complex_gradient(net, params, X, Y=None, head=0):
    """``dE/dtheta`` by a plain forward and backward pass that accepts complex parameters.

    ``net.forward`` refuses complex parameters (they are not real floats), so the complex step
    runs through this reference: ``h_l = c_l a_{l-1} W_l^T + beta_l b_l``, ``f = psi(h_L)``,
    ``g_L = dE/df psi'(h_L)``, ``dW_l = c_l g_l^T a_{l-1}``, ``db_l = beta_l sum_i g_l``,
    ``g_{l-1} = c_l (g_l W_l) phi'(h_{l-1})``.
    """
    L = net.depth
    Ws, bs = params[:L], (params[L:] if net.has_bias else None)
    acts, hs, a = [X], [], X
    for l in range(L):
        h = net.multipliers[l] * (a @ Ws[l].T)
        if bs is not None:
            h = h + net.bias_multipliers[l] * bs[l]
        hs.append(h)
        if l < L - 1:
            a = net.activation.phi(h)
            acts.append(a)
    psi = net.output_activation
    f = hs[-1] if psi is None else psi.phi(hs[-1])
    if Y is None:
        g = np.zeros((X.shape[0], net.output_dim))
        g[:, head] = 1.0
    else:
        g = (f - Y) / X.shape[0]
    if psi is not None:
        g = g * psi.dphi(hs[-1])
    grads = [None] * len(params)
    for l in range(L - 1, -1, -1):
        c = net.multipliers[l]
        grads[l] = c * (g.T @ acts[l])
        if bs is not None:
            grads[L + l] = net.bias_multipliers[l] * g.sum(axis=0)
        if l > 0:
            g = c * (g @ Ws[l]) * net.activation.dphi(hs[l - 1])
    return grads


def _complex_step_hvp(net, params, X, V, Y=None, head=0, h=1e-30):
    """``H V = Im(grad E(theta + i h V)) / h``: exact to rounding for analytic networks."""
    pc = [W + 1j * h * v for W, v in zip(params, V)]
    return [np.imag(g) / h for g in _complex_gradient(net, pc, X, Y, head)]


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


# -------------------------------------------------------------------------------- biases
BIASED = [  # (widths, activation, output activation, parameterization, W_std, b_std)
    ([3, 5, 1], "tanh", None, "ntk", 1.3, 0.7),
    ([4, 6, 5, 2], "tanh", None, "standard", 1.5, 0.4),
    ([4, 6, 5, 3, 2], "tanh", "tanh", "ntk", 0.9, 1.2),
    ([3, 4, 2], "tanh", "tanh", "standard", 1.1, 0.8),
    ([3, 2], "tanh", "tanh", "ntk", 1.0, 0.5),
]


def _biased(widths, activation, out, parameterization, W_std, b_std):
    return Network(widths, activation=activation, W_std=W_std, b_std=b_std,
                   parameterization=parameterization, output_activation=out)


@pytest.mark.parametrize("spec", BIASED)
@pytest.mark.parametrize("loss", [False, True])
def test_hvp_with_biases_matches_complex_step(spec, loss):
    """Weight and bias blocks of ``H V`` against the complex step, to 1e-12 relative."""
    rng = np.random.default_rng(21)
    net = _biased(*spec)
    assert net.has_bias
    params = net.init(rng)
    widths = spec[0]
    X = rng.standard_normal((4, widths[0]))
    Y = rng.standard_normal((4, widths[-1])) if loss else None
    V = [rng.standard_normal(W.shape) for W in params]
    head = widths[-1] - 1
    got = hvp(net, params, X, V, Y=Y, head=head)
    want = _complex_step_hvp(net, params, X, V, Y=Y, head=head)
    assert len(got) == 2 * net.depth
    for g, w in zip(got, want):
        assert g.shape == w.shape
        if np.any(w):
            assert _rel(g, w) < 1e-12
        else:  # the output bias enters linearly: its block of the output Hessian is zero
            assert not np.any(g) and net.output_activation is None and not loss
    # A direction along the biases alone: mixed weight-bias second derivatives.
    Vb = [np.zeros_like(W) for W in params[:net.depth]] + V[net.depth:]
    got_b = net.flatten(hvp(net, params, X, Vb, Y=Y, head=head))
    assert _rel(got_b, net.flatten(_complex_step_hvp(net, params, X, Vb, Y=Y, head=head))) < 1e-12


@pytest.mark.parametrize("activation", ["relu", "softplus", "sigmoid", "erf", "linear"])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_hvp_with_biases_matches_finite_differences(activation, parameterization):
    rng = np.random.default_rng(22)
    net = Network([4, 7, 6, 2], activation=activation, W_std=1.2, b_std=0.6,
                  parameterization=parameterization, output_activation="sigmoid")
    params = net.init(rng)
    X = rng.standard_normal((5, 4))
    Y = rng.standard_normal((5, 2))
    V = [rng.standard_normal(W.shape) for W in params]
    for targets in (None, Y):
        got = net.flatten(hvp(net, params, X, V, Y=targets))
        want = net.flatten(_fd_hvp(net, params, X, V, Y=targets))
        assert _rel(got, want) < 1e-6


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("out", [None, "tanh"])
def test_dense_hessians_with_biases(parameterization, out):
    """Dense output Hessian: symmetric and equal to central differences of the explicit
    Jacobian (``net.jacobian``, biases included); loss Hessian = Gauss-Newton + residual term;
    Lanczos = dense eigenvalues; the cached gradient is the network's own."""
    rng = np.random.default_rng(23)
    net = Network([3, 5, 4, 2], activation="softplus", W_std=1.4, b_std=0.9,
                  parameterization=parameterization, output_activation=out)
    params = net.init(rng)
    theta = net.flatten(params)
    x = rng.standard_normal(3)
    head = 1
    H = output_hessian_dense(net, params, x, head)
    P = net.num_params
    assert H.shape == (P, P) and P == 3 * 5 + 5 * 4 + 4 * 2 + 5 + 4 + 2
    assert np.max(np.abs(H - H.T)) < 1e-14 * np.max(np.abs(H))
    eps = 1e-5
    H_fd = np.empty((P, P))
    for i in range(P):
        e = np.zeros(P)
        e[i] = eps
        jp = net.jacobian(net.unflatten(theta + e), x[None])[0, head]
        jm = net.jacobian(net.unflatten(theta - e), x[None])[0, head]
        H_fd[:, i] = (jp - jm) / (2 * eps)
    assert _rel(H, H_fd) < 1e-7
    # loss Hessian
    n = 5
    X = rng.standard_normal((n, 3))
    Y = rng.standard_normal((n, 2))
    HL = loss_hessian_dense(net, params, X, Y)
    J = net.jacobian(params, X)  # (n, k, P)
    r = net.apply(params, X) - Y
    want = np.einsum("nkp,nkq->pq", J, J) / n
    want += sum(r[a, i] * output_hessian_dense(net, params, X[a], i)
                for a in range(n) for i in range(2)) / n
    assert _rel(HL, want) < 1e-12
    top = loss_hessian_top_eigs(net, params, X, Y, k=2)
    np.testing.assert_allclose(top, np.sort(np.linalg.eigvalsh(HL))[::-1][:2], rtol=1e-8)
    state = _prepare(net, params, X, "loss", Y)
    grads = net.gradients(params, X, Y)
    assert len(state.gradient()) == len(grads) == 2 * net.depth
    for a, b in zip(state.gradient(), grads):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-16)


def test_lanczos_with_biases_matches_dense():
    """Above 64 parameters (the Lanczos path) with biases, both ends of the spectrum."""
    rng = np.random.default_rng(24)
    for parameterization in ("ntk", "standard"):
        net = Network([4, 8, 6, 1], activation="tanh", W_std=1.3, b_std=0.8,
                      parameterization=parameterization)
        params = net.init(rng)
        x = rng.standard_normal(4)
        dense = np.linalg.eigvalsh(output_hessian_dense(net, params, x))
        want = np.max(np.abs(dense))
        assert abs(output_hessian_norm(net, params, x) - want) < 1e-8 * want
        top = output_hessian_top_eigs(net, params, x, k=3, which="LA")
        np.testing.assert_allclose(top, np.sort(dense)[::-1][:3], rtol=1e-8)
        low = output_hessian_top_eigs(net, params, x, k=2, which="SA")
        np.testing.assert_allclose(low, np.sort(dense)[:2][::-1], rtol=1e-8)


def test_zero_b_std_is_bitwise_the_bias_free_network():
    """``Network(b_std=0)`` has no bias parameters and gives the MLP's numbers bitwise."""
    rng = np.random.default_rng(25)
    mlp = MLP([3, 6, 5, 2], activation="tanh", output_activation="tanh")
    net = Network([3, 6, 5, 2], activation="tanh", output_activation="tanh")
    params = mlp.init(rng)
    X = rng.standard_normal((4, 3))
    Y = rng.standard_normal((4, 2))
    V = net.flatten([rng.standard_normal(W.shape) for W in params])
    for targets in (None, Y):
        assert np.array_equal(hvp(net, params, X, V, Y=targets),
                              hvp(mlp, params, X, V, Y=targets))
    assert np.array_equal(output_hessian_dense(net, params, X[0]),
                          output_hessian_dense(mlp, params, X[0]))


def test_bias_direction_of_the_wrong_shape_is_refused():
    net = Network([3, 4, 1], activation="tanh", b_std=0.5)
    params = net.init(0)
    x = np.ones(3)
    with pytest.raises(ValueError, match="V must hold 2 weight matrices and 2 bias vectors"):
        hvp(net, params, x[None], params[:2])
    with pytest.raises(ValueError, match=f"V must have {net.num_params} entries"):
        hvp(net, params, x[None], np.ones(3 * 4 + 4))
