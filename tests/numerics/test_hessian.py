"""Tests of numerics.hessian: R-operator HVPs, Lanczos, and the two-layer closed form.

Every fast path is checked against an independent computation: complex-step and central
finite differences of the hand-written gradient, dense Hessians built column by column, an
explicit block construction of the two-layer Hessian, and the Gauss-Newton decomposition of
the loss Hessian.
"""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from ntkdyn.numerics import hessian as hs
from ntkdyn.base.activations import ACTIVATIONS, Activation
from ntkdyn.numerics.networks import MLP

SMOOTH = ["tanh", "softplus", "sigmoid", "erf"]


def _unit_input(d, rng):
    """An input with ``||x|| = sqrt(d)`` (paper note section 2.2)."""
    x = rng.standard_normal(d)
    return x * math.sqrt(d) / np.linalg.norm(x)


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
    got = hs.hvp(net, params, X, V, Y=Y, head=head)
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
        got = net.flatten(hs.hvp(net, params, X, V, Y=targets))
        want = net.flatten(_fd_hvp(net, params, X, V, Y=targets))
        assert _rel(got, want) < 1e-6


def test_hvp_flat_and_list_agree_and_operator_is_linear():
    rng = np.random.default_rng(3)
    net = MLP([3, 8, 4, 1], activation="tanh")
    params = net.init(rng)
    x = rng.standard_normal(3)
    V = [rng.standard_normal(W.shape) for W in params]
    flat = hs.hvp(net, params, x[None], net.flatten(V))
    assert flat.shape == (net.num_params,)
    np.testing.assert_allclose(flat, net.flatten(hs.hvp(net, params, x[None], V)), rtol=0, atol=0)
    op = hs.output_hessian_operator(net, params, x)
    u, w = rng.standard_normal((2, net.num_params))
    np.testing.assert_allclose(op @ (2 * u - 3 * w), 2 * (op @ u) - 3 * (op @ w), atol=1e-13)


def test_dense_hessian_is_symmetric_and_matches_finite_differences():
    rng = np.random.default_rng(4)
    net = MLP([3, 5, 4, 1], activation="softplus")
    params = net.init(rng)
    x = rng.standard_normal(3)
    H = hs.output_hessian_dense(net, params, x)
    assert np.max(np.abs(H - H.T)) < 1e-14 * np.max(np.abs(H))
    eye = np.eye(net.num_params)
    H_fd = np.column_stack([net.flatten(_fd_hvp(net, params, x[None], net.unflatten(e)))
                            for e in eye])
    assert _rel(H, H_fd) < 1e-7


# ------------------------------------------------------------------- two-layer closed form
def _explicit_two_layer_hessian(net, params, x):
    """The two-layer output Hessian assembled block by block (parameter order of ``flatten``).

    ``H_{w_j w_j} = c2 c1^2 v_j phi''(z_j) x x^T``, ``H_{w_j v_j} = c2 c1 phi'(z_j) x``, ``H_vv = 0``.
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
    assert np.max(np.abs(H - hs.output_hessian_dense(net, params, x))) < 1e-14
    evals = np.linalg.eigvalsh(H)
    dense_norm = np.max(np.abs(evals))
    stats = hs.two_layer_hessian(net, params, x)
    assert abs(stats.norm - dense_norm) <= 1e-10 * dense_norm
    assert abs(hs.output_hessian_norm(net, params, x) - dense_norm) <= 1e-10 * dense_norm
    lanczos = hs.output_hessian_norm(net, params, x, method="lanczos")
    assert abs(lanczos - dense_norm) <= 1e-8 * dense_norm
    np.testing.assert_allclose(stats.frobenius, np.linalg.norm(H), rtol=1e-12)
    J = net.jacobian(params, x[None])[0, 0]
    np.testing.assert_allclose(stats.grad_norm, np.linalg.norm(J), rtol=1e-12)
    np.testing.assert_allclose(stats.output, net.apply(params, x[None])[0, 0], rtol=1e-12)
    ref = hs.two_layer_hessian(net, params, x, backend="numpy")
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
    H = hs.output_hessian_dense(net, params, x)
    assert np.all(H[m * d:, m * d:] == 0.0)
    evals = np.linalg.eigvalsh(H)
    scale = np.max(np.abs(evals))
    assert np.sum(np.abs(evals) > 1e-12 * scale) <= 2 * m
    p, q = hs.two_layer_unit_blocks(net, params, x)
    pairs = np.concatenate([(p + np.sqrt(p * p + 4 * q * q)) / 2, (p - np.sqrt(p * p + 4 * q * q)) / 2])
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
    assert abs(hs.output_hessian_norm(net, params, x) - want) <= 1e-14 * want
    assert abs(hs.two_layer_hessian(net, params, x).norm - want) <= 1e-14 * want
    if m <= 30:
        dense = np.max(np.abs(np.linalg.eigvalsh(hs.output_hessian_dense(net, params, x))))
        assert abs(dense - want) <= 1e-12 * want
    # No unit active: the Hessian vanishes.
    params[0][:] = -np.sign(x)[None, :] * np.abs(params[0])
    assert hs.two_layer_hessian(net, params, x).norm == 0.0


@pytest.mark.parametrize("activation", SMOOTH + ["relu", "linear"])
def test_pruned_norm_equals_full_pass(activation):
    rng = np.random.default_rng(8)
    for m in (1, 5, 333, 20000):
        net = MLP([7, m, 2], activation=activation)
        params = net.init(rng)
        x = rng.standard_normal(7)
        for head in (0, 1):
            full = hs.two_layer_hessian(net, params, x, head=head)
            norm, visited = hs.two_layer_hessian_norm(net, params, x, head=head,
                                                      return_visited=True)
            assert norm == full.norm
            assert 0.0 < visited <= 1.0
            for threads in (1, 2):
                assert hs.two_layer_hessian_norm(net, params, x, head=head,
                                                 threads=threads) == full.norm


def test_custom_activation_uses_numpy_path():
    rng = np.random.default_rng(9)
    cube = Activation("cube", lambda z: z ** 3, lambda z: 3 * z ** 2, lambda z: 6 * z)
    net = MLP([3, 9, 1], activation=cube)
    params = net.init(rng)
    x = rng.standard_normal(3)
    dense = np.max(np.abs(np.linalg.eigvalsh(hs.output_hessian_dense(net, params, x))))
    assert abs(hs.output_hessian_norm(net, params, x) - dense) < 1e-12 * dense
    with pytest.raises(ValueError, match="backend='numba'"):
        hs.two_layer_hessian(net, params, x, backend="numba")


def test_multi_head_two_layer_uses_its_row_of_w2():
    rng = np.random.default_rng(10)
    net = MLP([5, 20, 3], activation="tanh")
    params = net.init(rng)
    x = rng.standard_normal(5)
    for head in range(3):
        dense = np.max(np.abs(np.linalg.eigvalsh(hs.output_hessian_dense(net, params, x, head))))
        assert abs(hs.output_hessian_norm(net, params, x, head=head) - dense) < 1e-12 * dense


# ----------------------------------------------------------------------- deeper networks
@pytest.mark.parametrize("widths,out", [([4, 8, 6, 1], None), ([4, 8, 6, 5, 1], None),
                                        ([4, 16, 1], "tanh"), ([4, 6, 6, 2], "sigmoid")])
def test_lanczos_norm_matches_dense_eigenvalues(widths, out):
    rng = np.random.default_rng(11)
    net = MLP(widths, activation="tanh", output_activation=out)
    params = net.init(rng)
    x = rng.standard_normal(widths[0])
    head = widths[-1] - 1
    dense = np.linalg.eigvalsh(hs.output_hessian_dense(net, params, x, head))
    want = np.max(np.abs(dense))
    assert abs(hs.output_hessian_norm(net, params, x, head=head) - want) < 1e-8 * want
    top = hs.output_hessian_top_eigs(net, params, x, k=3, which="LA", head=head)
    np.testing.assert_allclose(top, np.sort(dense)[::-1][:3], rtol=1e-8)


def test_small_and_zero_hessians():
    """Below 64 parameters the top eigenvalues come from the dense matrix; H = 0 gives 0."""
    rng = np.random.default_rng(18)
    for widths, out in (([2, 3, 2], None), ([3, 1], "tanh"), ([1, 1, 1, 1], None)):
        net = MLP(widths, activation="tanh", output_activation=out)
        params = net.init(rng)
        x = rng.standard_normal(widths[0])
        ev = np.linalg.eigvalsh(hs.output_hessian_dense(net, params, x))
        assert hs.output_hessian_norm(net, params, x) == pytest.approx(np.max(np.abs(ev)),
                                                                       rel=1e-12)
        if net.num_params > 1:
            top = hs.output_hessian_top_eigs(net, params, x, k=1, which="LA")
            assert top[0] == pytest.approx(ev.max(), rel=1e-12, abs=1e-15)
    for d in (5, 100):  # a linear model: the Hessian vanishes (dense path, then the Lanczos guard)
        net = MLP([d, 1])
        assert hs.output_hessian_norm(net, net.init(0), np.ones(d)) == 0.0


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
    want = -2 * t * (1 - t * t) * np.outer(grad, grad) + (1 - t * t) * hs.output_hessian_dense(
        lin, params, x)
    np.testing.assert_allclose(hs.output_hessian_dense(nonlin, params, x), want, atol=1e-13)


# --------------------------------------------------------------------------- loss Hessian
def test_loss_hessian_is_gauss_newton_plus_residual_term():
    """``H_L = J^T J / n + sum_k (f_k - y_k) H_f(x_k) / n`` for ``L = 1/(2n) sum (f - y)^2``."""
    rng = np.random.default_rng(13)
    net = MLP([3, 7, 5, 1], activation="tanh")
    params = net.init(rng)
    n = 6
    X = rng.standard_normal((n, 3))
    Y = rng.standard_normal((n, 1))
    H = hs.loss_hessian_dense(net, params, X, Y)
    J = net.jacobian(params, X)[:, 0, :]
    r = net.apply(params, X)[:, 0] - Y[:, 0]
    want = J.T @ J / n + sum(r[k] * hs.output_hessian_dense(net, params, X[k]) for k in range(n)) / n
    assert _rel(H, want) < 1e-8
    top = hs.loss_hessian_top_eigs(net, params, X, Y, k=2)
    np.testing.assert_allclose(top, np.sort(np.linalg.eigvalsh(H))[::-1][:2], rtol=1e-8)
    # The loss gradient from the cached pass is the network's own.
    state = hs._prepare(net, params, X, "loss", Y)
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
        tops.append(hs.loss_hessian_top_eigs(net, params, X, Y)[0])
        norms.append(max(hs.output_hessian_norm(net, params, X[k]) for k in range(n)))
    assert 0.5 < tops[1] / tops[0] < 2.0
    assert norms[1] / norms[0] < 0.45  # at least sqrt(16) / sqrt(log ratio) smaller


# --------------------------------------------------------------------------- scaling
def test_tanh_norm_over_sqrt_log_m_falls_like_inverse_sqrt_width():
    """Reduced-scale version of the issue's slope target (widths 2^8 .. 2^16, 6 seeds)."""
    d = 10
    ms = 2 ** np.arange(8, 17, 2)
    H = np.zeros(len(ms))
    grad = np.zeros(len(ms))
    for seed in range(6):
        rng = np.random.default_rng(seed)
        x = _unit_input(d, rng)
        for i, m in enumerate(ms):
            net = MLP([d, int(m), 1], activation="tanh")
            stats = hs.two_layer_hessian(net, net.init(rng), x)
            H[i] += stats.norm / 6
            grad[i] += stats.grad_norm / 6
    slope = np.polyfit(np.log(ms), np.log(H / np.sqrt(np.log(ms))), 1)[0]
    assert abs(slope + 0.5) < 0.06
    assert np.ptp(grad[1:]) / grad[-1] < 0.05


# --------------------------------------------------------------------------- bad input
def test_activation_without_second_derivative_is_refused():
    rng = np.random.default_rng(15)
    rough = Activation("rough", np.tanh, lambda z: 1 - np.tanh(z) ** 2, None)
    net = MLP([3, 4, 1], activation=rough)
    params = net.init(rng)
    x = rng.standard_normal(3)
    for call in (lambda: hs.output_hessian_norm(net, params, x),
                 lambda: hs.hvp(net, params, x[None], net.flatten(params)),
                 lambda: hs.two_layer_hessian(net, params, x),
                 lambda: hs.loss_hessian_top_eigs(net, params, x[None], [[1.0]])):
        with pytest.raises(ValueError, match="no second derivative"):
            call()
    out = MLP([3, 4, 1], activation="tanh", output_activation=rough)
    with pytest.raises(ValueError, match="output_activation 'rough'"):
        hs.output_hessian_norm(out, params, x)
    # The gradient norm needs no second derivative.
    assert hs.output_gradient_norm(net, params, x) > 0


def test_memory_is_estimated_before_allocating():
    # 10^11 units x 10 inputs: 8 TB of weights, refused from the widths alone.
    need = hs.estimate_bytes([10, 10**11, 1])
    assert need == 8 * (10**12 + 10**11)
    with pytest.raises(hs.MemoryBudgetError, match="needs about") as info:
        hs.require_memory(need, "a two-layer network of width 1e11")
    assert isinstance(info.value, ValueError) and isinstance(info.value, MemoryError)
    # It survives pickling (process pools send it back from their workers).
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) and again.needed == need
    assert hs.require_memory(1000, "tiny", available=10**6) == 1000
    with pytest.raises(hs.MemoryBudgetError):
        hs.require_memory(10**6, "too big", available=10**6)
    # Lanczos needs ncv + 8 parameter vectors: refused for a net whose weights alone would fit.
    assert hs.estimate_bytes([10, 1000, 1], "lanczos") > 28 * 8 * 11000
    with pytest.raises(ValueError, match="method"):
        hs.estimate_bytes([2, 3], "magic")


def test_bad_arguments_name_themselves():
    rng = np.random.default_rng(16)
    net = MLP([3, 4, 2], activation="tanh")
    params = net.init(rng)
    x = rng.standard_normal(3)
    with pytest.raises(ValueError, match="head"):
        hs.output_hessian_norm(net, params, x, head=2)
    with pytest.raises(ValueError, match="x must"):
        hs.output_hessian_norm(net, params, np.ones(4))
    with pytest.raises(ValueError, match="x must be one input"):
        hs.output_hessian_norm(net, params, np.ones((2, 3)))
    with pytest.raises(ValueError, match="V must have"):
        hs.hvp(net, params, x[None], np.ones(5))
    with pytest.raises(ValueError, match="method"):
        hs.output_hessian_norm(net, params, x, method="power")
    with pytest.raises(ValueError, match="depth"):
        hs.two_layer_hessian(MLP([3, 4, 4, 1]), MLP([3, 4, 4, 1]).init(0), x)
    with pytest.raises(TypeError, match="net"):
        hs.output_hessian_norm("net", params, x)
    with pytest.raises(ValueError, match="k must be"):
        hs.output_hessian_top_eigs(net, params, x, k=net.num_params)
    with pytest.raises(ValueError, match="finite"):
        hs.output_hessian_norm(net, params, np.array([1.0, np.nan, 0.0]))


def test_public_names_exist():
    for name in hs.__all__:
        assert hasattr(hs, name), name
    # every registry activation has a compiled-kernel code and the sup bounds the pruning needs
    assert sorted(a.code for a in ACTIVATIONS.values()) == list(range(len(ACTIVATIONS)))
    assert all(a.sup_dphi is not None and a.sup_d2phi is not None for a in ACTIVATIONS.values())


# --------------------------------------------------------------------------- paper scale
@pytest.mark.slow
def test_closed_form_at_ten_million_units():
    """m = 10^7, d = 10 (0.8 GB of weights): norm-only pass == full pass; ReLU exact."""
    m, d = 10 ** 7, 10
    hs.require_memory(3 * hs.estimate_bytes([d, m, 1]), "the 10^7-unit test")
    rng = np.random.default_rng(17)
    params = [rng.standard_normal((m, d)), rng.standard_normal((1, m))]
    x = _unit_input(d, rng)
    for activation in ("tanh", "relu"):
        net = MLP([d, m, 1], activation=activation)
        full = hs.two_layer_hessian(net, params, x)
        assert hs.output_hessian_norm(net, params, x) == full.norm
        if activation == "relu":
            assert abs(full.norm - 1 / math.sqrt(m)) < 1e-14 / math.sqrt(m)
        else:
            assert abs(full.grad_norm - 0.9267) < 0.01


@pytest.mark.slow
def test_tanh_slope_over_the_issue_widths():
    """Issue 6 target: slope of ||H|| / sqrt(log m) over 2^12 .. 2^20 within 0.05 of -1/2."""
    d = 10
    ms = 2 ** np.arange(12, 21)
    H = np.zeros(len(ms))
    for seed in range(8):
        rng = np.random.default_rng(seed)
        x = _unit_input(d, rng)
        for i, m in enumerate(ms):
            net = MLP([d, int(m), 1], activation="tanh")
            H[i] += hs.output_hessian_norm(net, net.init(rng), x) / 8
    slope = np.polyfit(np.log(ms), np.log(H / np.sqrt(np.log(ms))), 1)[0]
    assert abs(slope + 0.5) < 0.05
