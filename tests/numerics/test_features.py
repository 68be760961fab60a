"""Tests of numerics.features: NFM, PTK covariance, AGOP, NFA correlations and SLO.

References are independent of the fast paths: explicit per-example Jacobian products (a chain
of dense matrices with explicit derivative masks), central finite differences, dense
parameter Jacobians (``MLP.jacobian``) and direct formulas.
"""
import numpy as np
import pytest

from ntkdyn.numerics import features as F
from ntkdyn.numerics.networks import MLP, Network
from ntkdyn.numerics.synthetic import low_rank_task
from ntkdyn.numerics.training import gradient_descent

NETS = [
    dict(widths=[5, 7, 6, 3], activation="relu"),
    dict(widths=[4, 6, 5, 4, 2], activation="tanh", output_activation="tanh"),
    dict(widths=[6, 8, 1], activation="softplus", parameterization="standard", init_scale=0.5),
    # hidden widths above k n = 18: the (B W)^T (B W) route that never forms K
    dict(widths=[4, 40, 30, 2], activation="erf"),
]


def _net_and_data(spec, n=9, seed=0):
    net = MLP(**spec)
    params = net.init(seed)
    X = np.random.default_rng(seed + 100).standard_normal((n, net.input_dim))
    return net, params, X


def _input_jacobians(net, params, X, layer):
    """Per-example ``d f / d a_layer`` (``(n, k, d)``) as an explicit product of dense matrices."""
    fwd = net.forward(params, X)
    out = []
    for i in range(X.shape[0]):
        J = np.eye(net.output_dim)
        if net.output_activation is not None:
            J = np.diag(net.output_activation.dphi(fwd.preactivations[-1][i])) @ J
        for l in range(net.depth - 1, layer - 1, -1):
            J = J @ (net.multipliers[l] * params[l])
            if l > layer:
                J = J @ np.diag(net.activation.dphi(fwd.preactivations[l - 1][i]))
        out.append(J)
    return np.array(out)


def _apply_from(net, params, layer, A, preactivation=False):
    """Outputs of the sub-network from the input (or pre-activation) of weight matrix ``layer``."""
    if preactivation:
        h = A
    else:
        h = net.multipliers[layer] * (A @ params[layer].T)
    for l in range(layer + 1, net.depth):
        h = net.multipliers[l] * (net.activation.phi(h) @ params[l].T)
    return h if net.output_activation is None else net.output_activation.phi(h)


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# ----------------------------------------------------------------------- AGOP and K
@pytest.mark.parametrize("spec", NETS)
def test_agop_equals_sum_of_per_example_gradient_outer_products(spec):
    net, params, X = _net_and_data(spec)
    for layer in range(net.depth):
        J = _input_jacobians(net, params, X, layer)
        direct = np.einsum("ikd,ike->de", J, J)
        assert _rel(F.agop(net, params, X, layer), direct) < 1e-10


@pytest.mark.parametrize("spec", NETS[1:])
def test_reference_input_jacobians_match_finite_differences(spec, fd_jacobian):
    net, params, X = _net_and_data(spec)
    fwd = net.forward(params, X)
    for layer in range(net.depth):
        fd = fd_jacobian(lambda A: _apply_from(net, params, layer, A), fwd.activations[layer])
        assert _rel(_input_jacobians(net, params, X, layer), fd) < 1e-7


@pytest.mark.parametrize("spec", NETS[1:])
def test_tangent_covariance_matches_finite_differences_at_the_preactivation(spec, fd_jacobian):
    net, params, X = _net_and_data(spec)
    fwd = net.forward(params, X)
    Ks = F.tangent_feature_covariance(net, params, X, None)
    for layer in range(net.depth):
        g = fd_jacobian(lambda H: _apply_from(net, params, layer, H, preactivation=True),
                         fwd.preactivations[layer])
        K_fd = np.einsum("ika,ikb->ab", g, g)
        assert _rel(Ks[layer], K_fd) < 1e-6
        assert np.allclose(F.tangent_feature_covariance(net, params, X, layer), Ks[layer],
                           rtol=1e-13, atol=0)


def test_ptk_gram_rebuilds_the_dense_ntk_layer_by_layer():
    net, params, X = _net_and_data(NETS[1], n=6)
    J = net.jacobian(params, X)  # (n, k, P)
    ntk = np.einsum("iap,jbp->abij", J, J)
    fwd = net.forward(params, X)
    rebuilt = sum(net.multipliers[l] ** 2 * F.ptk_gram(net, params, X, l)
                  * (fwd.activations[l] @ fwd.activations[l].T)[None, None]
                  for l in range(net.depth))
    assert _rel(rebuilt, ntk) < 1e-12
    theta = F.ptk_gram(net, params, X, 1)
    K = F.tangent_feature_covariance(net, params, X, 1)
    assert np.isclose(np.einsum("jjii->", theta), np.trace(K), rtol=1e-12)


@pytest.mark.parametrize("spec", [NETS[0], NETS[3]])
def test_agop_is_the_sandwich_of_the_tangent_covariance(spec):
    net, params, X = _net_and_data(spec)
    Ks = F.tangent_feature_covariance(net, params, X, None)
    for layer in range(net.depth):
        W, c = params[layer], net.multipliers[layer]
        assert _rel(F.agop(net, params, X, layer), c * c * W.T @ Ks[layer] @ W) < 1e-12


def test_nfm_and_float32_are_kept():
    net, params, X = _net_and_data(NETS[0])
    W = params[1]
    assert np.array_equal(F.nfm(W), W.T @ W)
    p32 = [W.astype(np.float32) for W in params]
    G = F.agop(net, p32, X.astype(np.float32), 0)
    assert G.dtype == np.float32
    assert _rel(G, F.agop(net, params, X, 0)) < 1e-5


# ----------------------------------------------------------------------- correlations
def test_matrix_correlation_properties():
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((6, 6)), rng.standard_normal((6, 6))
    for kind in F.KINDS:
        r = F.matrix_correlation(A, B, kind)
        assert -1 <= r <= 1
        assert F.matrix_correlation(B, A, kind) == pytest.approx(r, abs=1e-12)
        assert F.matrix_correlation(3.0 * A, 0.2 * B, kind) == pytest.approx(r, abs=1e-12)
        assert F.matrix_correlation(A, 2.5 * A, kind) == pytest.approx(1.0, abs=1e-12)
        assert F.matrix_correlation(A, -A, kind) == pytest.approx(-1.0, abs=1e-12)
    pearson = np.corrcoef(A.ravel(), B.ravel())[0, 1]
    assert F.matrix_correlation(A, B, "pearson") == pytest.approx(pearson, abs=1e-12)
    cosine = np.dot(A.ravel(), B.ravel()) / np.linalg.norm(A) / np.linalg.norm(B)
    assert F.matrix_correlation(A, B, "cosine") == pytest.approx(cosine, abs=1e-12)
    # Pearson is invariant to adding a constant; cosine is not.
    assert F.matrix_correlation(A + 5, B, "pearson") == pytest.approx(pearson, abs=1e-12)
    assert abs(F.matrix_correlation(A + 5, B, "cosine") - cosine) > 1e-3


@pytest.mark.parametrize("kind", F.KINDS)
@pytest.mark.parametrize("shape", [(30, 20), (12, 25)])
def test_svd_identity(kind, shape):
    rng = np.random.default_rng(4)
    W = rng.standard_normal(shape)
    Z = rng.standard_normal((shape[0], shape[0] + 3))
    K = Z @ Z.T
    direct = F.matrix_correlation(W.T @ W, W.T @ K @ W, kind)
    assert F.svd_alignment(W, K, kind) == pytest.approx(direct, abs=1e-12)
    # U^T K U = c I (K arbitrary off span(U)): perfect alignment at power 1 ...
    U, s, _ = np.linalg.svd(W, full_matrices=False)
    P = np.eye(shape[0]) - U @ U.T
    K1 = 2.0 * U @ U.T + P @ K @ P
    assert F.svd_alignment(W, K1, kind) == pytest.approx(1.0, abs=1e-12)
    # ... while U^T K U = diag(s^2) aligns perfectly only at power 1/2 (W^T K W = (W^T W)^2).
    K2 = U @ np.diag(s ** 2) @ U.T
    assert F.svd_alignment(W, K2, kind) < 0.99
    root = F.psd_power(W.T @ K2 @ W, 0.5)
    assert F.matrix_correlation(W.T @ W, root, kind) == pytest.approx(1.0, abs=1e-10)


def test_nfa_correlation_definitions_and_power():
    net, params, X = _net_and_data(NETS[0], n=20)
    params0 = net.init(7)
    for layer in range(net.depth):
        K = F.tangent_feature_covariance(net, params, X, layer)
        c, W, dW = net.multipliers[layer], params[layer], params[layer] - params0[layer]
        uc = F.matrix_correlation(W.T @ W, c * c * W.T @ K @ W, "cosine")
        cc = F.matrix_correlation(dW.T @ dW, c * c * dW.T @ K @ dW, "pearson")
        assert F.nfa_correlation(net, params, X, layer, kind="cosine") == pytest.approx(
            uc, abs=1e-12)
        assert F.nfa_correlation(net, params, X, layer, params0, centered=True) == pytest.approx(
            cc, abs=1e-12)
        # power 1/2: the principal square root of the AGOP.
        G = F.agop(net, params, X, layer)
        w, V = np.linalg.eigh(G)
        root = (V * np.sqrt(np.clip(w, 0, None))) @ V.T
        assert F.nfa_correlation(net, params, X, layer, power=0.5) == pytest.approx(
            F.matrix_correlation(W.T @ W, root), abs=1e-10)
    both = F.nfa_correlations(net, params, X, params0, layers=[0, 2])
    assert np.allclose(both["uncentered"], [F.nfa_correlation(net, params, X, l) for l in (0, 2)],
                       atol=1e-12)
    assert np.allclose(both["centered"], [F.nfa_correlation(net, params, X, l, params0, True)
                                          for l in (0, 2)], atol=1e-12)
    assert np.all(np.isnan(F.nfa_correlations(net, params, X, params)["centered"]))


def test_linear_two_layer_network_has_unit_centred_correlation_after_one_step():
    ds = low_rank_task(64, d=10, seed=1)
    net = MLP([10, 30, 1], activation="linear")
    p0 = net.init(2)
    p1 = gradient_descent(net, p0, ds.X, ds.Y, lr=0.1, steps=1).params
    assert F.nfa_correlation(net, p1, ds.X, 0, p0, centered=True) == pytest.approx(1.0, abs=1e-10)
    p5 = gradient_descent(net, p0, ds.X, ds.Y, lr=0.01, steps=5).params
    assert F.nfa_correlation(net, p5, ds.X, 0, p0, centered=True) > 1 - 1e-3


def test_centred_exceeds_uncentred_early_on_the_low_rank_task():
    # The target at reduced scale: 5 hidden ReLU layers, no bias, lr 0.5, step 10.
    ds = low_rank_task(256, seed=0)
    net = MLP([20] + [64] * 5 + [1], activation="relu")
    p0 = net.init(0)
    p10 = gradient_descent(net, p0, ds.X, ds.Y, lr=0.5, steps=10).params
    r = F.nfa_correlations(net, p10, ds.X, p0, layers=range(5))
    assert np.all(r["centered"] > r["uncentered"])
    assert np.all(r["centered"] > 0.8)
    # The uncentred correlation is set by the initialisation and falls with depth.
    assert r["uncentered"][0] > r["uncentered"][-1] + 0.3


def test_nfa_observable_records_uc_c_and_weight_change():
    ds = low_rank_task(64, seed=0)
    net = MLP([20, 16, 16, 1])
    p0 = net.init(0)
    tr = gradient_descent(net, p0, ds.X, ds.Y, lr=0.5, steps=3, every=3,
                          record={"nfa": F.nfa_observable(p0, layers=[0, 1])})
    obs = tr.observables["nfa"]
    assert obs.shape == (2, 3, 2)
    assert np.all(np.isnan(obs[0, 1])) and np.all(obs[0, 2] == 0)
    r = F.nfa_correlations(net, tr.params, ds.X, p0, [0, 1])
    assert np.allclose(obs[1, 0], r["uncentered"]) and np.allclose(obs[1, 1], r["centered"])
    assert np.allclose(obs[1, 2], F.relative_weight_change(tr.params, p0)[:2])


def test_principal_cosines():
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.standard_normal((8, 2)))[0]
    assert np.allclose(F.principal_cosines(U @ np.diag([3.0, 2.0]) @ U.T + 0.1 * np.eye(8), U), 1.0)
    V = np.linalg.qr(np.hstack([U, rng.standard_normal((8, 2))]))[0][:, 2:]
    assert np.allclose(F.principal_cosines(V @ V.T, U), 0.0, atol=1e-12)


# ---------------------------------------------------------------------- the update rule
def test_speed_limited_steps_have_the_prescribed_size():
    net, params, X = _net_and_data(NETS[0])
    grads = [np.random.default_rng(l).standard_normal(W.shape) for l, W in enumerate(params)]
    rule = F.SpeedLimited(net, 1, speed=0.05)
    new = rule(params, grads, lr=0.3)
    assert np.linalg.norm(new[1] - params[1]) == pytest.approx(0.05 * np.linalg.norm(params[1]),
                                                               rel=1e-12)
    for l in (0, 2):
        assert np.allclose(new[l], params[l] - 0.3 * grads[l], rtol=0, atol=1e-15)
    frozen = F.SpeedLimited(net, 1, speed=0.05, others=0.0, relative=False)(params, grads, 0.3)
    assert np.linalg.norm(frozen[1] - params[1]) == pytest.approx(0.05, rel=1e-12)
    assert np.array_equal(frozen[0], params[0]) and np.array_equal(frozen[2], params[2])
    slow = F.SpeedLimited(net, 0, speed=0.05, others=0.1)(params, grads, 0.3)
    assert np.linalg.norm(slow[2] - params[2]) == pytest.approx(
        0.005 * np.linalg.norm(params[2]), rel=1e-12)


def test_speed_limited_steps_raise_the_uncentred_correlation_of_the_target_layer():
    ds = low_rank_task(256, seed=0)
    net = MLP([20] + [64] * 5 + [1], activation="relu")
    p0 = net.init(0)
    target = 3
    gd = gradient_descent(net, p0, ds.X, ds.Y, lr=0.5, steps=300).params
    slo = gradient_descent(net, p0, ds.X, ds.Y, lr=0.5, steps=300,
                           update=F.SpeedLimited(net, target, speed=0.01)).params
    uc_gd = F.nfa_correlation(net, gd, ds.X, target)
    uc_slo = F.nfa_correlation(net, slo, ds.X, target)
    assert uc_slo > uc_gd + 0.1


# ---------------------------------------------------------------------------- bad input
def test_bad_input_names_the_argument():
    net, params, X = _net_and_data(NETS[0])
    with pytest.raises(ValueError, match="layer"):
        F.agop(net, params, X, 3)
    with pytest.raises(ValueError, match="layer"):
        F.nfa_correlation(net, params, X, -1)
    with pytest.raises(TypeError, match="layer"):
        F.agop(net, params, X, True)
    with pytest.raises(ValueError, match="layers"):
        F.nfa_correlations(net, params, X, layers=[0, 5])
    with pytest.raises(ValueError, match="X"):
        F.agop(net, params, X[:, :3], 0)
    with pytest.raises(ValueError, match="params0"):
        F.nfa_correlation(net, params, X, 0, centered=True)
    with pytest.raises(ValueError, match="kind"):
        F.nfa_correlation(net, params, X, 0, kind="spearman")
    with pytest.raises(ValueError, match="power"):
        F.nfa_correlation(net, params, X, 0, power=0.0)
    with pytest.raises(ValueError, match="speed"):
        F.SpeedLimited(net, 0, speed=-1.0)
    with pytest.raises(ValueError, match="layer"):
        F.SpeedLimited(net, 4)
    with pytest.raises(ValueError, match="others"):
        F.SpeedLimited(net, 0, others="adam")
    with pytest.raises(ValueError, match="others"):
        F.SpeedLimited(net, 0, others=-0.5)
    with pytest.raises(ValueError, match="params"):
        F.SpeedLimited(net, 0)(params[:2], params[:2], 0.1)
    with pytest.raises(ValueError, match="K"):
        F.svd_alignment(params[0], np.eye(3))
    with pytest.raises(ValueError, match="constant"):
        F.matrix_correlation(np.ones((3, 3)), np.eye(3))


# -------------------------------------------------------------------------------- biases
BIASED = [
    dict(widths=[5, 7, 6, 3], activation="relu", b_std=0.5),
    dict(widths=[4, 6, 5, 4, 2], activation="tanh", output_activation="tanh", W_std=1.3,
         b_std=0.8),
    dict(widths=[6, 8, 1], activation="softplus", parameterization="standard", W_std=1.5,
         b_std=0.4),
    dict(widths=[4, 40, 30, 2], activation="erf", parameterization="standard", b_std=1.1),
]


def _biased_net_and_data(spec, n=9, seed=0):
    net = Network(**spec)
    assert net.has_bias
    return net, net.init(seed), np.random.default_rng(seed + 100).standard_normal(
        (n, net.input_dim))


def _apply_from_biased(net, params, layer, A, preactivation=False):
    """``_apply_from`` with the biases: ``h_l = c_l W_l a + beta_l b_l``."""
    W, b, beta = net.weights(params), net.biases(params), net.bias_multipliers
    h = A if preactivation else net.multipliers[layer] * (A @ W[layer].T) + beta[layer] * b[layer]
    for l in range(layer + 1, net.depth):
        h = net.multipliers[l] * (net.activation.phi(h) @ W[l].T) + beta[l] * b[l]
    return h if net.output_activation is None else net.output_activation.phi(h)


@pytest.mark.parametrize("spec", BIASED)
def test_agop_and_tangent_covariance_with_biases(spec, fd_jacobian):
    """With biases: AGOP = sum of explicit input-Jacobian outer products = central differences
    of the biased sub-network; K = central differences at the (biased) pre-activation."""
    net, params, X = _biased_net_and_data(spec)
    fwd = net.forward(params, X)
    Ks = F.tangent_feature_covariance(net, params, X, None)
    assert len(Ks) == net.depth
    for layer in range(net.depth):
        J = _input_jacobians(net, params, X, layer)  # the biases enter through fwd only
        fd = fd_jacobian(lambda A: _apply_from_biased(net, params, layer, A),
                         fwd.activations[layer])
        assert _rel(J, fd) < 1e-7
        G = F.agop(net, params, X, layer)
        assert G.shape == (net.widths[layer],) * 2
        assert _rel(G, np.einsum("ikd,ike->de", J, J)) < 1e-10
        g = fd_jacobian(lambda H: _apply_from_biased(net, params, layer, H, preactivation=True),
                        fwd.preactivations[layer])
        assert _rel(Ks[layer], np.einsum("ika,ikb->ab", g, g)) < 1e-6
        W, c = params[layer], net.multipliers[layer]
        assert _rel(G, c * c * W.T @ Ks[layer] @ W) < 1e-12


@pytest.mark.parametrize("spec", BIASED[:3])
def test_ptk_gram_with_biases_rebuilds_the_dense_ntk(spec):
    """``J J^T = sum_l (c_l^2 Theta_l * A_l A_l^T + beta_l^2 Theta_l)`` against ``net.jacobian``:
    the weight and the bias blocks of the explicit Jacobian separately."""
    net, params, X = _biased_net_and_data(spec, n=6)
    J = net.jacobian(params, X)  # (n, k, P): weights first, then biases
    fwd = net.forward(params, X)
    offsets = np.cumsum([0] + [int(np.prod(s)) for s in net.param_shapes])
    for l in range(net.depth):
        theta = F.ptk_gram(net, params, X, l)
        Jw = J[:, :, offsets[l]:offsets[l + 1]]
        Jb = J[:, :, offsets[net.depth + l]:offsets[net.depth + l + 1]]
        A = fwd.activations[l]
        assert _rel(net.multipliers[l] ** 2 * theta * (A @ A.T)[None, None],
                    np.einsum("iap,jbp->abij", Jw, Jw)) < 1e-12
        assert _rel(net.bias_multipliers[l] ** 2 * theta,
                    np.einsum("iap,jbp->abij", Jb, Jb)) < 1e-12


def test_nfa_correlations_with_biases_are_about_the_weights():
    net, params, X = _biased_net_and_data(BIASED[0], n=20)
    params0 = net.init(7)
    for layer in range(net.depth):
        K = F.tangent_feature_covariance(net, params, X, layer)
        c, W, dW = net.multipliers[layer], params[layer], params[layer] - params0[layer]
        uc = F.matrix_correlation(W.T @ W, c * c * W.T @ K @ W, "cosine")
        cc = F.matrix_correlation(dW.T @ dW, c * c * dW.T @ K @ dW, "pearson")
        assert F.nfa_correlation(net, params, X, layer, kind="cosine") == pytest.approx(
            uc, abs=1e-12)
        assert F.nfa_correlation(net, params, X, layer, params0, centered=True) == pytest.approx(
            cc, abs=1e-12)
    both = F.nfa_correlations(net, params, X, params0)
    assert both["uncentered"].shape == both["centered"].shape == (net.depth,)
    change = F.relative_weight_change(params, params0)
    assert change.shape == (2 * net.depth,)
    assert change[net.depth] == pytest.approx(
        np.linalg.norm(params[net.depth] - params0[net.depth]) / np.linalg.norm(params0[net.depth]))
    with pytest.raises(ValueError, match="layer"):
        F.agop(net, params, X, net.depth)  # a bias index is not a weight-matrix index


def test_nfa_observable_with_biases():
    ds = low_rank_task(64, seed=0)
    net = Network([20, 16, 16, 1], b_std=0.3)
    p0 = net.init(0)
    tr = gradient_descent(net, p0, ds.X, ds.Y, lr=0.5, steps=3, every=3,
                          record={"nfa": F.nfa_observable(p0)})
    obs = tr.observables["nfa"]
    assert obs.shape == (2, 3, net.depth)
    r = F.nfa_correlations(net, tr.params, ds.X, p0)
    assert np.allclose(obs[1, 0], r["uncentered"]) and np.allclose(obs[1, 1], r["centered"])
    assert np.allclose(obs[1, 2], F.relative_weight_change(tr.params, p0)[:net.depth])


def test_speed_limited_with_biases_limits_the_weights_only():
    net, params, X = _biased_net_and_data(BIASED[0])
    L = net.depth
    grads = [np.random.default_rng(l).standard_normal(W.shape) for l, W in enumerate(params)]
    new = F.SpeedLimited(net, 1, speed=0.05)(params, grads, lr=0.3)
    assert len(new) == 2 * L
    assert np.linalg.norm(new[1] - params[1]) == pytest.approx(0.05 * np.linalg.norm(params[1]),
                                                               rel=1e-12)
    for l in [0, 2] + list(range(L, 2 * L)):  # other weights and every bias: plain GD
        assert np.allclose(new[l], params[l] - 0.3 * grads[l], rtol=0, atol=1e-15)
    slow = F.SpeedLimited(net, 0, speed=0.05, others=0.1)(params, grads, 0.3)
    for l in range(1, 2 * L):
        assert np.linalg.norm(slow[l] - params[l]) == pytest.approx(
            0.005 * np.linalg.norm(params[l]), rel=1e-12)
    with pytest.raises(ValueError, match="3 weight matrices and 3 bias vectors"):
        F.SpeedLimited(net, 0)(params[:L], grads[:L], 0.1)
    # It trains a biased network (the loss falls; the target layer moves at the set speed).
    ds = low_rank_task(64, d=5, seed=2)
    Y = np.repeat(ds.Y, 3, axis=1)
    tr = gradient_descent(net, params, ds.X, Y, lr=0.2, steps=20,
                          update=F.SpeedLimited(net, 1, speed=0.01))
    assert tr.losses[-1] < tr.losses[0]
