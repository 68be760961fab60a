"""Two-layer NTK decomposition, early-time drift and the linear no-specialization statement."""
import numpy as np
import pytest

from ntkdyn.numerics import kernels as nk
from ntkdyn.numerics.networks import MLP
from ntkdyn.numerics.richness import CenteredModel, train_centered
from ntkdyn.numerics.synthetic import gaussian_mixture_classes
from ntkdyn.theory import two_layer_alignment as tla
from ntkdyn.theory.relu_ntk import infinite_ntk


@pytest.fixture(scope="module")
def task():
    return gaussian_mixture_classes(40, 10, num_classes=3, seed=0)


def random_weights(m=48, d=10, k=3, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((m, d)), scale * rng.standard_normal((k, m))


# ------------------------------------------------------------------------ decomposition
@pytest.mark.parametrize("activation", ["relu", "tanh", "linear"])
def test_terms_sum_to_empirical_per_head_ntk(task, activation):
    W1, W2 = random_weights()
    feature, gated = tla.two_layer_ntk_terms(W1, W2, task.X, activation=activation)
    net = MLP([10, 48, 3], activation)
    K = nk.empirical_ntk(net, [W1, W2], task.X, heads="each")
    np.testing.assert_allclose(feature[None] + gated, K, rtol=1e-12, atol=1e-12)
    # Cross kernel on a second data set, against explicit Jacobians.
    X2 = task.X[:7] + 0.1
    f2, g2 = tla.two_layer_ntk_terms(W1, W2, task.X, X2, activation=activation)
    J, J2 = net.jacobian([W1, W2], task.X), net.jacobian([W1, W2], X2)
    np.testing.assert_allclose(f2[None] + g2, np.einsum("aip,bip->iab", J, J2), rtol=1e-11,
                               atol=1e-11)


def test_gated_term_is_the_second_layer_gradient_part(task):
    """The feature term is the W2-gradient Gram, the gated term the W1-gradient Gram."""
    W1, W2 = random_weights(seed=1)
    net = MLP([10, 48, 3], "relu")
    J = net.jacobian([W1, W2], task.X)  # (n, k, P) with W1 entries first
    P1 = W1.size
    feature, gated = tla.two_layer_ntk_terms(W1, W2, task.X)
    for i in range(3):
        np.testing.assert_allclose(J[:, i, P1:] @ J[:, i, P1:].T, feature, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(J[:, i, :P1] @ J[:, i, :P1].T, gated[i], rtol=1e-12, atol=1e-12)


def test_infinite_width_terms_closed_form(task):
    """Arc-cosine formulas written out here, against the library (which reuses relu_ntk)."""
    sigma = 0.7
    X = task.X
    d = X.shape[1]
    norms = np.linalg.norm(X, axis=1)
    cos = np.clip(X @ X.T / np.outer(norms, norms), -1, 1)
    theta = np.arccos(cos)
    feature = sigma ** 2 * np.outer(norms, norms) / (2 * np.pi * d) * (
        np.sin(theta) + (np.pi - theta) * cos)
    gated = sigma ** 2 * (X @ X.T / d) * (np.pi - theta) / (2 * np.pi)
    f_inf, g_inf = tla.infinite_width_terms(X, activation="relu", init_scale=sigma)
    # arccos near cos = 1 amplifies a rounding error eps to sqrt(2 eps) ~ 2e-8 on the diagonal.
    np.testing.assert_allclose(f_inf, feature, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(g_inf, gated, rtol=1e-7, atol=1e-12)
    off = ~np.eye(len(X), dtype=bool)
    np.testing.assert_allclose(g_inf[off], gated[off], rtol=1e-10)
    np.testing.assert_allclose(f_inf + g_inf, infinite_ntk(X, depth=2, init_scale=sigma),
                               rtol=1e-12)
    f_lin, g_lin = tla.infinite_width_terms(X, activation="linear", init_scale=sigma)
    np.testing.assert_allclose(f_lin, sigma ** 2 * X @ X.T / d, rtol=1e-12)
    np.testing.assert_allclose(g_lin, sigma ** 2 * X @ X.T / d, rtol=1e-12)


def test_infinite_width_terms_monte_carlo(task):
    """A wide random network's terms approach the limit at the Monte-Carlo rate 1/sqrt(m)."""
    X = task.X[:15]
    f_inf, g_inf = tla.infinite_width_terms(X, init_scale=1.0)
    m = 40000
    W1, W2 = random_weights(m=m, d=10, k=2, seed=3)
    feature, gated = tla.two_layer_ntk_terms(W1, W2, X)
    scale = np.sqrt(np.outer(np.diag(f_inf), np.diag(f_inf)))
    assert np.max(np.abs(feature - f_inf) / scale) < 6 / np.sqrt(m) * 2
    for g in gated:
        assert np.max(np.abs(g - g_inf) / np.sqrt(np.outer(np.diag(g_inf), np.diag(g_inf)))) \
            < 6 / np.sqrt(m) * 3


# ----------------------------------------------------------------------- early-time drift
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_flow_velocity_is_minus_gamma_squared_gradient(task, activation):
    net = MLP([10, 32, 3], activation)
    params0 = net.init(2)
    gamma = 4.0
    model = CenteredModel(net, params0, gamma)
    params = [W + 0.2 * np.random.default_rng(1).standard_normal(W.shape) for W in params0]
    residual = task.Y - model.apply(params, task.X)
    dW1, dW2 = tla.flow_velocity(*params, task.X, residual, gamma, activation)
    grads = model.loss_and_gradients(params, task.X, task.Y)[1]
    np.testing.assert_allclose(dW1, -gamma ** 2 * grads[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dW2, -gamma ** 2 * grads[1], rtol=1e-12, atol=1e-14)


def test_units_move_toward_target_weighted_means(task):
    """dw_k/dt = gamma c_2 c_1 sum_i a_ik m_ik, m_ik the target-weighted active-half-space mean."""
    W1, W2 = random_weights(m=32, seed=4)
    gamma = 2.0
    dW1, dW2 = tla.flow_velocity(W1, W2, task.X, task.Y, gamma)
    M = tla.target_weighted_means(W1, task.X, task.Y)  # (k, m, d)
    n, d, m = task.X.shape[0], 10, 32
    # m_ik written as an explicit loop over examples.
    active = task.X @ W1.T > 0
    for i in range(3):
        for k_ in (0, 5, 31):
            mean = sum(task.Y[mu, i] * task.X[mu] for mu in range(n) if active[mu, k_]) / n
            np.testing.assert_allclose(M[i, k_], mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dW1, gamma / np.sqrt(m * d) * np.einsum("ik,ikd->kd", W2, M),
                               rtol=1e-12, atol=1e-15)
    # Readouts grow with the correlation of each unit's activity with each target.
    corr = task.Y.T @ np.maximum(task.X @ W1.T / np.sqrt(d), 0) / n
    np.testing.assert_allclose(dW2, gamma / np.sqrt(m) * corr, rtol=1e-12)


@pytest.mark.parametrize("activation,eps,tol", [("tanh", 1e-5, 1e-8), ("relu", 1e-7, 1e-6)])
def test_kernel_velocity_matches_finite_differences(task, activation, eps, tol):
    W1, W2 = random_weights(m=40, seed=5)
    dW1, dW2 = tla.flow_velocity(W1, W2, task.X, task.Y, 1.0, activation)
    dfeat, dgated = tla.kernel_velocity(W1, W2, task.X, dW1, dW2, activation)
    net = MLP([10, 40, 3], activation)
    plus = nk.empirical_ntk(net, [W1 + eps * dW1, W2 + eps * dW2], task.X, heads="each")
    minus = nk.empirical_ntk(net, [W1 - eps * dW1, W2 - eps * dW2], task.X, heads="each")
    fd = (plus - minus) / (2 * eps)
    exact = dfeat[None] + dgated
    assert np.linalg.norm(exact - fd) / np.linalg.norm(exact) < tol


def test_alignment_rate_matches_finite_differences(task):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 40))
    K, dK = A @ A.T, rng.standard_normal((40, 40))
    dK = dK + dK.T
    for centered in (True, False):
        eps = 1e-6
        fd = (tla.alignment(K + eps * dK, task.Y, centered)
              - tla.alignment(K - eps * dK, task.Y, centered)) / (2 * eps)
        assert tla.alignment_rate(K, dK, task.Y, centered) == pytest.approx(fd, rel=1e-7)
        assert tla.alignment(K, task.Y, centered) == pytest.approx(
            nk.alignment(K, task.Y, centered), rel=1e-13)
    S = tla.specialization_matrix(np.stack([K, K + 1, 2 * K]), task.Y)
    np.testing.assert_allclose(S, nk.specialization(np.stack([K, K + 1, 2 * K]), task.Y),
                               rtol=1e-13)
    assert tla.specialization_index(S) == pytest.approx(nk.specialization_index(S), rel=1e-13)


@pytest.mark.parametrize("gamma,lr,steps", [(1.0, 1e-4, 10), (10.0, 1e-4, 1)])
def test_initial_rate_matches_gradient_descent(gamma, lr, steps):
    """Exact dA_c/dt at t = 0 within 10% of GD's finite difference
    when gamma * lr * steps <= 1e-3 (measured: 0.7% and 0.3%)."""
    ds = gaussian_mixture_classes(80, 12, num_classes=4, seed=0)
    net = MLP([12, 128, 4], "relu")
    params0 = net.init(0)
    rates = tla.initial_rates(*params0, ds.X, ds.Y, gamma)
    run = train_centered(net, ds.X, ds.Y, gamma, lr, steps, params0=params0, num_records=2)
    t = lr * steps
    m = run.metrics
    assert rates["alignment_centered"] == pytest.approx(m["alignment_centered"][0], rel=1e-10)
    for key in ("alignment_centered", "alignment_uncentered", "xi"):
        fd = (m[key][-1] - m[key][0]) / t
        assert fd == pytest.approx(rates[key + "_rate"], rel=0.1), key
    dS = (m["specialization"][-1] - m["specialization"][0]) / t
    assert np.abs(dS - rates["specialization_rate"]).max() < 0.1 * np.abs(dS).max()


def test_rates_scale_with_gamma_and_vanish_when_lazy(task):
    W1, W2 = random_weights(seed=6)
    r1 = tla.initial_rates(W1, W2, task.X, task.Y, 1.0)
    r3 = tla.initial_rates(W1, W2, task.X, task.Y, 3.0)
    for key in ("alignment_centered_rate", "alignment_uncentered_rate", "xi_rate"):
        assert r3[key] == pytest.approx(3 * r1[key], rel=1e-12)
    np.testing.assert_allclose(r3["specialization_rate"], 3 * r1["specialization_rate"], rtol=1e-12)


# ------------------------------------------------------------ linear networks: no specialization
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_linear_heads_mix_shared_kernels(task, depth):
    """K_ii = sum_l w_il Phi_l for a deep linear net, any weights; w_iL = 1."""
    net = MLP([10] + [12] * (depth - 1) + [3], "linear")
    params = net.init(depth)
    weights, shared = tla.linear_head_kernels(params, task.X)
    assert weights.shape == (3, depth) and shared.shape == (depth, 40, 40)
    np.testing.assert_allclose(weights[:, -1], 1.0)
    K = nk.empirical_ntk(net, params, task.X, heads="each")
    np.testing.assert_allclose(np.einsum("il,lab->iab", weights, shared), K, rtol=1e-10, atol=1e-12)
    # Standard parameterization: multipliers 1.
    std = MLP([10] + [12] * (depth - 1) + [3], "linear", parameterization="standard",
              init_scale=0.3)
    p = std.init(0)
    w, s = tla.linear_head_kernels(p, task.X, multipliers=[1.0] * depth)
    np.testing.assert_allclose(np.einsum("il,lab->iab", w, s),
                               nk.empirical_ntk(std, p, task.X, heads="each"),
                               rtol=1e-10, atol=1e-12)
    w2, s2 = tla.linear_head_kernels(p, task.X, parameterization="standard")
    np.testing.assert_array_equal(w2, w)
    np.testing.assert_array_equal(s2, s)


def test_linear_xi_vanishes_for_parallel_head_weights(task):
    """Two-layer linear net with equal-norm readout rows: every head has the same kernel, xi = 0.

    The same weights in a ReLU network give distinct per-head gated terms and xi != 0.
    """
    W1, W2 = random_weights(m=64, seed=7)
    W2 = W2 / np.linalg.norm(W2, axis=1, keepdims=True)
    weights, shared = tla.linear_head_kernels([W1, W2], task.X)
    np.testing.assert_allclose(weights[:, 0], weights[0, 0], rtol=1e-13)
    feature, gated = tla.two_layer_ntk_terms(W1, W2, task.X, activation="linear")
    S_lin = tla.specialization_matrix(feature[None] + gated, task.Y)
    assert abs(tla.specialization_index(S_lin)) < 1e-12
    assert tla.specialization_bound(feature[None] + gated) < 1e-7
    feature, gated = tla.two_layer_ntk_terms(W1, W2, task.X, activation="relu")
    S_relu = tla.specialization_matrix(feature[None] + gated, task.Y)
    assert abs(tla.specialization_index(S_relu)) > 1e-4
    assert tla.specialization_bound(feature[None] + gated) > 1e-3


def test_specialization_bound_holds(task):
    rng = np.random.default_rng(0)
    for trial in range(5):
        heads = []
        for _ in range(3):
            A = rng.standard_normal((40, 5 + trial))
            heads.append(A @ A.T)
        heads = np.stack(heads)
        S = tla.specialization_matrix(heads, task.Y)
        assert abs(tla.specialization_index(S)) <= tla.specialization_bound(heads) + 1e-15
    D = tla.head_dissimilarity(heads)
    np.testing.assert_allclose(np.diag(D), 0.0, atol=1e-7)
    np.testing.assert_allclose(D, D.T)


def test_trained_linear_net_cannot_specialise_relu_does():
    """Rich training (gamma = 30): the linear net's heads stay mixtures of the same kernels,
    so |xi| <= bound <= 0.01, while the ReLU net's xi exceeds 0.1 (measured: 1.4e-4 and
    0.0046 vs 0.14)."""
    ds = gaussian_mixture_classes(120, 30, num_classes=4, seed=1)
    out = {}
    for activation in ("linear", "relu"):
        net = MLP([30, 128, 4], activation)
        run = train_centered(net, ds.X, ds.Y, 30.0, 0.5, 500, seed=1, num_records=2,
                             keep_kernels=True)
        K = run.metrics["kernels"][-1]
        out[activation] = (run.metrics["xi"][-1], tla.specialization_bound(K), run.params)
        assert abs(run.metrics["xi"][-1]) <= tla.specialization_bound(K)
    xi_lin, bound_lin, params_lin = out["linear"]
    weights, shared = tla.linear_head_kernels(params_lin, ds.X)
    K_lin = nk.empirical_ntk(MLP([30, 128, 4], "linear"), params_lin, ds.X, heads="each")
    np.testing.assert_allclose(np.einsum("il,lab->iab", weights, shared), K_lin,
                               rtol=1e-10, atol=1e-10)
    assert abs(xi_lin) <= bound_lin <= 0.01
    assert out["relu"][0] >= 0.1 > bound_lin



def test_flows_use_the_ntk_multipliers(task):
    """The flows' c_1, c_2 are the MLP's NTK multipliers; the activation comes from the registry."""
    W1, W2 = random_weights()
    assert tla.flow_multipliers(W1) == MLP([10, 48, 3]).multipliers
    net = MLP([10, 48, 3], "erf")   # any registered activation, not only relu/tanh/linear
    feature, gated = tla.two_layer_ntk_terms(W1, W2, task.X, activation="erf")
    np.testing.assert_allclose(feature[None] + gated,
                               nk.empirical_ntk(net, [W1, W2], task.X, heads="each"),
                               rtol=1e-12, atol=1e-12)
    dW1, dW2 = tla.flow_velocity(W1, W2, task.X, task.Y, 1.0, "erf")
    assert dW1.shape == W1.shape and dW2.shape == W2.shape


def test_bad_input(task):
    W1, W2 = random_weights()
    with pytest.raises(ValueError, match="W1"):
        tla.two_layer_ntk_terms(W1[:, :5], W2, task.X)
    with pytest.raises(ValueError, match="W2"):
        tla.two_layer_ntk_terms(W1, W2[:, :5], task.X)
    with pytest.raises(ValueError, match="activation"):
        tla.two_layer_ntk_terms(W1, W2, task.X, activation="swish-7")
    with pytest.raises(ValueError, match="activation"):
        tla.flow_velocity(W1, W2, task.X, task.Y, activation="swish-7")
    with pytest.raises(ValueError, match="activation"):
        tla.kernel_velocity(W1, W2, task.X, W1, W2, activation="swish-7")
    with pytest.raises(ValueError, match="activation"):
        tla.target_weighted_means(W1, task.X, task.Y, activation="swish-7")
    with pytest.raises(ValueError, match="residual"):
        tla.flow_velocity(W1, W2, task.X, task.Y[:, :2])
    with pytest.raises(ValueError, match="gamma"):
        tla.flow_velocity(W1, W2, task.X, task.Y, gamma=-1.0)
    with pytest.raises(ValueError, match="dW1"):
        tla.kernel_velocity(W1, W2, task.X, W1[:2], W2)
    with pytest.raises(ValueError, match="activation"):
        tla.infinite_width_terms(task.X, activation="tanh")
    with pytest.raises(ValueError, match="params"):
        tla.linear_head_kernels([W1, W1], task.X)
    with pytest.raises(ValueError, match="dK"):
        tla.alignment_rate(np.eye(40), np.eye(3), task.Y)


# ---------------------------------------------------------------- second order in time
def _flow_kernels(net, model, params0, X, Y, times):
    """Per-head NTKs along the exact gradient flow of f_gamma (DOP853, rtol 1e-12)."""
    from scipy.integrate import solve_ivp

    gamma = model.gamma
    theta0 = net.flatten(params0)

    def rhs(t, theta):
        grads = model.loss_and_gradients(net.unflatten(theta), X, Y)[1]
        return -gamma ** 2 * net.flatten(grads)

    out = []
    for t in times:
        if t == 0:
            params = params0
        else:
            sol = solve_ivp(rhs, (0.0, t), theta0, method="DOP853", rtol=1e-12, atol=1e-14)
            params = net.unflatten(sol.y[:, -1])
        out.append((params, nk.empirical_ntk(net, params, X, heads="each")))
    return out


def test_second_order_flow_matches_integrated_gradient_flow(task):
    """d/dt and d^2/dt^2 of the NTK terms vs central differences of the exact flow (h = 1e-3)."""
    net = MLP([10, 32, 3], "relu")
    params0 = net.init(1)
    gamma, h = 3.0, 1e-3
    model = CenteredModel(net, params0, gamma)
    (pm, Km), (_, K0), (pp, Kp) = _flow_kernels(net, model, params0, task.X, task.Y, [-h, 0.0, h])
    gates = params0[0] @ task.X.T > 0
    assert np.array_equal(pm[0] @ task.X.T > 0, gates)  # no ReLU gate flips within +-h
    assert np.array_equal(pp[0] @ task.X.T > 0, gates)
    flow = tla.flow_second_order(*params0, task.X, task.Y, gamma)
    d1 = flow["dfeature"][None] + flow["dgated"]
    d2 = flow["d2feature"][None] + flow["d2gated"]
    assert np.linalg.norm((Kp - Km) / (2 * h) - d1) / np.linalg.norm(d1) < 1e-5
    assert np.linalg.norm((Kp - 2 * K0 + Km) / h ** 2 - d2) / np.linalg.norm(d2) < 1e-5
    # d f_gamma / dt = K_full Delta / n at t = 0 (function-space dynamics).
    K_full = nk.empirical_ntk(net, params0, task.X, heads="full")
    np.testing.assert_allclose(flow["df"], np.einsum("ijab,bj->ai", K_full, task.Y) / 40,
                               rtol=1e-11, atol=1e-14)


def test_alignment_second_derivative_matches_finite_differences(task):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((40, 40))
    K, d1, d2 = A @ A.T, rng.standard_normal((40, 40)), rng.standard_normal((40, 40))
    d1, d2 = d1 + d1.T, d2 + d2.T
    h = 1e-3  # truncation O(h^2) ~ 5e-7 relative; smaller h loses digits to rounding
    for centered in (True, False):
        path = [tla.alignment(K + t * d1 + 0.5 * t * t * d2, task.Y, centered) for t in (-h, 0, h)]
        fd = (path[0] - 2 * path[1] + path[2]) / h ** 2
        exact = tla.alignment_second_derivative(K, d1, d2, task.Y, centered)
        assert exact == pytest.approx(fd, rel=1e-5)


def test_second_order_expansion_predicts_linear_network_gd():
    """Linear net (no gates), gamma = 1, t = 0.1: A' t + A'' t^2/2 within 3% of GD (measured
    1.5%), while the first-order term alone is off by more than 10% (measured 16%)."""
    ds = gaussian_mixture_classes(300, 30, num_classes=4, seed=0)
    net = MLP([30, 256, 4], "linear")
    params0 = net.init(0)
    t = 0.1
    r1 = tla.initial_rates(*params0, ds.X, ds.Y, 1.0, "linear")["alignment_centered_rate"]
    r2 = tla.initial_second_derivatives(*params0, ds.X, ds.Y, 1.0, "linear")["alignment_centered"]
    sim = train_centered(net, ds.X, ds.Y, 1.0, t / 10, 10, params0=params0, num_records=2).gain()
    assert abs(r1 * t + 0.5 * r2 * t * t - sim) < 0.03 * abs(sim)
    assert abs(r1 * t - sim) > 0.1 * abs(sim)


def test_relu_alignment_is_second_order_when_rich():
    """ReLU, gamma = 30, t = 1: the first-order rate has the wrong sign (A'(0) < 0), the
    second-order expansion is within 25% of GD (measured: -4.6e-4, 1.63e-2 vs 1.48e-2)."""
    ds = gaussian_mixture_classes(300, 30, num_classes=4, seed=0)
    net = MLP([30, 256, 4], "relu")
    params0 = net.init(0)
    gamma, t = 30.0, 1.0
    r1 = tla.initial_rates(*params0, ds.X, ds.Y, gamma)["alignment_centered_rate"]
    r2 = tla.initial_second_derivatives(*params0, ds.X, ds.Y, gamma)
    sim = train_centered(net, ds.X, ds.Y, gamma, t / 100, 100, params0=params0,
                         num_records=2).gain()
    assert r1 < 0 < sim
    assert abs(r1 * t + 0.5 * r2["alignment_centered"] * t * t - sim) < 0.25 * sim
    assert r2["xi"] > 0
    # Scaling: second derivatives of the kernel terms are O(gamma^2) plus an O(gamma) part.
    a = tla.flow_second_order(*params0, ds.X[:50], ds.Y[:50], 1.0)
    b = tla.flow_second_order(*params0, ds.X[:50], ds.Y[:50], 2.0)
    np.testing.assert_allclose(b["dfeature"], 2 * a["dfeature"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b["dW2"], 2 * a["dW2"], rtol=1e-12)
