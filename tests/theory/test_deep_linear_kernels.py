"""Deep linear NTK: the layer-wise formula against finite-difference Jacobians, the empirical
NTK of the network and explicit decoupled weights; the spike kernel and its alignment; bad
input."""
import numpy as np
import pytest

from ntkdyn.base.alignment import alignment
from ntkdyn.numerics.kernels import empirical_ntk
from ntkdyn.numerics.networks import MLP
from ntkdyn.theory import deep_linear_kernels as dlk
from ntkdyn.theory import deep_linear_modes as dlm


# ------------------------------------------------------------------ NTK from weights
def _fd_jacobian(weights, X, c):
    """Central differences; exact up to rounding because f is linear in each W_l."""
    def f(ws):
        h = X.T
        for cl, W in zip(c, ws):
            h = cl * W @ h
        return h.T   # (n, k)
    rows = []
    for l, W in enumerate(weights):
        for idx in np.ndindex(W.shape):
            plus = [w.copy() for w in weights]
            minus = [w.copy() for w in weights]
            plus[l][idx] += 1.0
            minus[l][idx] -= 1.0
            rows.append((f(plus) - f(minus)) / 2.0)
    return np.stack(rows, axis=-1)   # (n, k, P)


@pytest.mark.parametrize("depth,k", [(1, 1), (2, 3), (3, 1), (4, 2)])
def test_ntk_from_weights_matches_finite_difference_jacobian(depth, k):
    rng = np.random.default_rng(depth + 10 * k)
    widths = [4] + [5] * (depth - 1) + [k]
    Ws = [rng.normal(size=(widths[l + 1], widths[l])) for l in range(depth)]
    X = rng.normal(size=(6, 4))
    for c in (np.ones(depth), 1 / np.sqrt(widths[:-1])):
        J = _fd_jacobian(Ws, X, c)
        full = np.einsum("aip,bjp->ijab", J, J)
        K = dlk.ntk_from_weights(Ws, X, multipliers=c, heads="full")
        np.testing.assert_allclose(K, full, rtol=1e-10, atol=1e-10 * np.abs(full).max())
        each = dlk.ntk_from_weights(Ws, X, multipliers=c, heads="each")
        np.testing.assert_allclose(each, np.stack([full[i, i] for i in range(k)]), rtol=1e-12)
        summed = dlk.ntk_from_weights(Ws, X, multipliers=c)
        np.testing.assert_allclose(summed, each.sum(0), rtol=1e-12)


def _orthonormal(rng, n, m):
    Q, _ = np.linalg.qr(rng.normal(size=(n, m)))
    return Q


def _decoupled_weights(a, U, V, hidden, rng):
    depth, m = a.shape
    R = [None] + [_orthonormal(rng, hidden, m) for _ in range(depth - 1)]
    Ws = []
    for l in range(depth):
        left = U if l == depth - 1 else R[l + 1]
        right = V if l == 0 else R[l]
        Ws.append((left * a[l]) @ right.T)
    return Ws


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_ntk_from_modes_equals_kernel_of_decoupled_weights(depth):
    rng = np.random.default_rng(depth)
    d, k, m, hidden = 6, 3, 2, 7
    a = 0.2 + rng.random((depth, m))          # unbalanced on purpose
    U, V = _orthonormal(rng, k, m), _orthonormal(rng, d, m)
    X = rng.normal(size=(9, d))
    Ws = _decoupled_weights(a, U, V, hidden, rng)
    for heads in ("sum", "each", "full"):
        np.testing.assert_allclose(dlk.ntk_from_modes(a, X, V, U, heads=heads),
                                   dlk.ntk_from_weights(Ws, X, heads=heads), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_rank_one_spike_and_final_alignment_on_whitened_data(depth):
    """The rank-one spike kernel, and A = L / sqrt(L^2 + D - 1) computed directly from it."""
    rng = np.random.default_rng(3)
    n, D, u = 50, 8, 2.3
    Z = rng.normal(size=(n, D))
    Q, _ = np.linalg.qr(Z)
    X = np.sqrt(n) * Q                      # X^T X = n I
    v = _orthonormal(rng, D, 1)
    K = dlk.ntk_from_modes(dlm.balanced_strengths([u], depth), X, v, np.ones((1, 1)))
    Xv = X @ v
    D3 = u ** (2 * (depth - 1) / depth) * (X @ X.T + (depth - 1) * Xv @ Xv.T)
    np.testing.assert_allclose(K, D3, rtol=1e-10)
    y = (X @ v)[:, 0] * u
    assert alignment(K, y, centered=False) == pytest.approx(dlk.final_alignment(depth, D),
                                                            rel=1e-12)
    assert dlk.final_alignment(depth, D) == pytest.approx(depth / np.sqrt(depth ** 2 + D - 1))
    bulk = 0.7
    assert alignment(K + bulk * X @ X.T, y, centered=False) == pytest.approx(
        float(dlk.alignment_whitened(depth, D, u, bulk)), rel=1e-12)
    assert alignment(X @ X.T, y, centered=False) == pytest.approx(1 / np.sqrt(D), rel=1e-12)


def test_alignment_limits_and_general_formula():
    # small strength (or L = 1): 1/sqrt(D); large strength: L / sqrt(L^2 + D - 1)
    for depth in (1, 2, 4):
        assert float(dlk.alignment_whitened(depth, 20, 1e-8, bulk=1.0)) == pytest.approx(
            1 / np.sqrt(20), rel=1e-6)
        assert float(dlk.alignment_whitened(depth, 20, 1e8, bulk=1.0)) == pytest.approx(
            dlk.final_alignment(depth, 20), rel=1e-6)
    np.testing.assert_allclose(dlk.final_alignment([2, 3, 4], 20),
                               [0.41702883, 0.56694671, 0.67612340], rtol=1e-7)
    # non-whitened: the closed form equals the direct alignment of G + (L-1) S
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 5)) * np.array([3.0, 2.0, 1.0, 0.5, 0.2])
    beta = rng.normal(size=5)
    y = X @ beta
    G = X @ X.T
    b = np.linalg.norm(beta)
    for depth in (1, 2, 4):
        direct = alignment(G + (depth - 1) * np.outer(y, y) / b ** 2, y, centered=False)
        assert dlk.alignment_general(G, y, b, depth) == pytest.approx(direct, rel=1e-10)


def test_initial_kernel_scale_matches_monte_carlo():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(5, 4))
    G = X @ X.T
    for widths, sigma, par in (([4, 40, 40, 1], 0.3, "standard"), ([4, 60, 1], 1.0, "ntk")):
        depth = len(widths) - 1
        c = (1 / np.sqrt(widths[:-1])) if par == "ntk" else np.ones(depth)
        Ks = []
        for _ in range(200):
            Ws = [sigma * rng.normal(size=(widths[l + 1], widths[l])) for l in range(depth)]
            Ks.append(dlk.ntk_from_weights(Ws, X, multipliers=c))
        ratio = np.mean(Ks, axis=0) / (dlk.initial_kernel_scale(widths, sigma, par) * G)
        assert np.median(ratio) == pytest.approx(1.0, abs=0.05)


def test_observables():
    ob = dlk.observables(np.array([1e-6, 1.0, 100.0]), 3, 20, bulk=1e-3)
    assert ob["alignment"][0] == pytest.approx(1 / np.sqrt(20), rel=1e-3)
    assert ob["alignment"][-1] == pytest.approx(dlk.final_alignment(3, 20), rel=1e-4)
    assert np.all(np.diff(ob["alignment"]) > 0)


# ------------------------------------------------------------------ one formula, two defaults
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_parameterizations_match_the_network_kernel(depth):
    """``parameterization`` gives the empirical NTK of an MLP built with the same one; the
    default is the standard parameterization (c_l = 1), as documented."""
    rng = np.random.default_rng(20 + depth)
    X = rng.normal(size=(7, 5))
    widths = [5] + [6] * (depth - 1) + [3]
    for par in ("ntk", "standard"):
        net = MLP(widths, "linear", parameterization=par, init_scale=0.7)
        params = net.init(depth)
        for heads in ("sum", "each", "full"):
            K = empirical_ntk(net, params, X, heads=heads)
            np.testing.assert_allclose(dlk.ntk_from_weights(params, X, heads=heads,
                                                            parameterization=par),
                                       K, rtol=1e-10, atol=1e-12 * np.abs(K).max())
            np.testing.assert_array_equal(
                dlk.ntk_from_weights(params, X, multipliers=net.multipliers, heads=heads),
                dlk.ntk_from_weights(params, X, heads=heads, parameterization=par))
        if par == "standard":
            np.testing.assert_array_equal(dlk.ntk_from_weights(params, X),
                                          dlk.ntk_from_weights(params, X, parameterization=par))


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_head_mixture_is_the_per_head_kernel(depth):
    rng = np.random.default_rng(30 + depth)
    X = rng.normal(size=(8, 4))
    widths = [4] + [5] * (depth - 1) + [3]
    Ws = [rng.normal(size=(widths[l + 1], widths[l])) for l in range(depth)]
    for par in ("ntk", "standard"):
        weights, shared = dlk.linear_head_kernels(Ws, X, parameterization=par)
        np.testing.assert_allclose(np.einsum("il,lab->iab", weights, shared),
                                   dlk.ntk_from_weights(Ws, X, heads="each", parameterization=par),
                                   rtol=1e-12, atol=1e-14)
    # linear_head_kernels defaults to the NTK parameterization, ntk_from_weights to the standard
    np.testing.assert_array_equal(dlk.linear_head_kernels(Ws, X)[1],
                                  dlk.linear_head_kernels(Ws, X, parameterization="ntk")[1])


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="init_scale"):
        dlk.initial_kernel_scale([3, 4, 1], -0.1)
    with pytest.raises(ValueError, match="heads"):
        dlk.ntk_from_weights([np.eye(2)], np.eye(2), heads="diag")
    with pytest.raises(ValueError, match="parameterization"):
        dlk.ntk_from_weights([np.eye(2)], np.eye(2), parameterization="mean-field")
    with pytest.raises(ValueError, match="multipliers"):
        dlk.ntk_from_weights([np.eye(2)], np.eye(2), multipliers=[1.0, 1.0])
    with pytest.raises(ValueError, match="multipliers"):
        dlk.linear_head_kernels([np.eye(2)], np.eye(2), multipliers=[-1.0])
    with pytest.raises(TypeError, match="weights"):
        dlk.ntk_from_weights([], np.eye(2))
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        dlk.ntk_from_weights([np.eye(2), np.ones((2, 3))], np.eye(2))
    with pytest.raises(ValueError, match="X must have 2 columns"):
        dlk.ntk_from_weights([np.eye(2)], np.eye(3))
    with pytest.raises(ValueError, match="orthonormal"):
        dlk.ntk_from_modes(np.ones((2, 1)), np.eye(3), np.ones((3, 1)), np.ones((1, 1)))
