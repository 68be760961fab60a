"""Infinite-width kernels of network descriptions: against theory.relu_ntk (MLP), a layer-wise
Monte Carlo of the recursion (10^6 Gaussian samples), the per-layer split, and the mean
empirical NTK / NNGP of wide finite networks; duck typing and bad input."""
from __future__ import annotations

import numpy as np
import pytest

from ntkdyn.base.activations import ACTIVATIONS, Activation, abrelu
from ntkdyn.numerics.kernels import empirical_ntk, layer_names
from ntkdyn.numerics.networks import MLP, Network
from ntkdyn.theory import dual_kernels as dk
from ntkdyn.theory import relu_ntk
from ntkdyn.theory.infinite_width import infinite_nngp, infinite_ntk

ALL = sorted(ACTIVATIONS)


def _sphere(n, d, seed=0, radius=None):
    """``n`` Gaussian inputs rescaled to norm ``sqrt(d)`` (one variance group per layer)."""
    X = np.random.default_rng(seed).standard_normal((n, d))
    radius = np.sqrt(d) if radius is None else radius
    return X * radius / np.linalg.norm(X, axis=1, keepdims=True)


class Description:
    """A duck-typed network description (what the theory reads), e.g. a truncated network."""

    def __init__(self, widths, scales, activation, output_activation=None, has_bias=False):
        self.widths, self._scales = tuple(widths), list(scales)
        self.depth = len(self._scales)
        self.activation, self.output_activation = activation, output_activation
        self.has_bias = has_bias

    def layer_scales(self):
        return list(self._scales)


def _truncated(net, depth):
    """The first ``depth`` layers of ``net``, without output activation."""
    return Description(net.widths[:depth + 1], net.layer_scales()[:depth], net.activation,
                       None, net.has_bias)


# ------------------------------------------------------------------ MLP = theory.relu_ntk
@pytest.mark.parametrize("activation", ["relu", "erf", "linear"])
@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_mlp_matches_relu_ntk(activation, depth):
    """Both kernels equal theory.relu_ntk to 1e-12 (relative to the largest entry): every entry
    with ``X2``, the off-diagonal entries without it. On the diagonal relu_ntk evaluates
    arccos(1 - 1e-16) ~ 1e-8 for ReLU (its Sigma_ii and variances are rounded separately); here
    the diagonal is exact: E[step^2] = 1/2 gives Theta_ii to 1e-14 of the 1-D recursion."""
    rng = np.random.default_rng(depth)
    X, X2 = rng.standard_normal((7, 5)), rng.standard_normal((4, 5))
    net = MLP([5] + [50] * (depth - 1) + [3], activation=activation, init_scale=1.3)
    off = ~np.eye(7, dtype=bool)
    for ours, ref in ((infinite_ntk, relu_ntk.infinite_ntk), (infinite_nngp,
                                                              relu_ntk.infinite_nngp)):
        K2 = ref(X, X2, depth=depth, activation=activation, init_scale=1.3)
        np.testing.assert_allclose(ours(net, X, X2), K2, rtol=0, atol=1e-12 * np.abs(K2).max())
        K = ref(X, depth=depth, activation=activation, init_scale=1.3)
        np.testing.assert_allclose(ours(net, X)[off], K[off], rtol=0,
                                   atol=1e-12 * np.abs(K).max())
    # the diagonal: q_l = sigma^2 E[phi(u)^2], Theta_l = E[phi^2] + sigma^2 E[phi'^2] Theta_{l-1}
    q = 1.69 * np.einsum("ij,ij->i", X, X) / 5
    theta = q / 1.69
    for _ in range(depth - 1):
        e_phi, e_dphi = dk.second_moments(activation, q)
        theta = e_phi + 1.69 * e_dphi * theta
        q = 1.69 * e_phi
    np.testing.assert_allclose(np.diag(infinite_ntk(net, X)), theta, rtol=1e-14)
    np.testing.assert_allclose(np.diag(infinite_nngp(net, X)), q, rtol=1e-14)


# ------------------------------------------------------------------ Monte Carlo
CUSTOM = Activation("xtanh", lambda x: x * np.tanh(x),
                    lambda x: np.tanh(x) + x * (1 - np.tanh(x) ** 2), lambda x: 0 * x)


def _mc_moments(act, S, Z):
    """Sample means of phi(u_i) phi(u_j), phi'(u_i) phi'(u_j) for u = L z ~ N(0, S = L L^T)
    (``Z``: M standard normal rows), with their standard errors."""
    M = Z.shape[0]
    U = Z @ np.linalg.cholesky(S).T
    out = []
    for f in (act.phi, act.dphi):
        F = f(U)
        mean = F.T @ F / M
        F *= F
        var = F.T @ F / M - mean * mean  # E[(f_i f_j)^2] - E[f_i f_j]^2
        out += [mean, np.sqrt(np.maximum(var, 0.0) / M)]
    return out


MC_NAMES = ALL + ["abrelu", "custom"]
MC_CASES = [(name, *(("ntk", 0.0) if i % 2 else ("standard", 0.4)))
            for i, name in enumerate(MC_NAMES)]
MC_CASES_OTHER = [(name, *(("standard", 0.4) if i % 2 else ("ntk", 0.0)))
                  for i, name in enumerate(MC_NAMES)]


@pytest.fixture(scope="module")
def normal_samples():
    """10^6 standard normal triples, shared by the Monte Carlo tests."""
    return np.random.default_rng(2).standard_normal((10 ** 6, 3))


def _check_monte_carlo(name, parameterization, b_std, Z):
    act = {"abrelu": abrelu(-0.3, 1.5), "custom": CUSTOM}.get(name, name)
    net = Network([4, 30, 30, 2], activation=act, W_std=1.2, b_std=b_std,
                  parameterization=parameterization, output_activation="tanh")
    X = np.random.default_rng(1).standard_normal((3, 4))
    for depth in range(2, net.depth + 2):
        last = depth > net.depth  # the output activation, on Sigma_L
        prev = _truncated(net, min(depth - 1, net.depth))
        S_prev, T_prev = infinite_nngp(prev, X), infinite_ntk(prev, X)
        if last:
            psi = net.output_activation
            m_phi, se_phi, m_dphi, se_dphi = _mc_moments(psi, S_prev, Z)
            S_mc, T_mc = m_phi, m_dphi * T_prev
            S_se, T_se = se_phi, se_dphi * np.abs(T_prev)
            S_th, T_th = infinite_nngp(net, X), infinite_ntk(net, X)
        else:
            c, s, beta, t = net.layer_scales()[depth - 1]
            fan = net.widths[depth - 1]
            a_s, a_w = c * c * s * s * fan, c * c * fan
            m_phi, se_phi, m_dphi, se_dphi = _mc_moments(net.activation, S_prev, Z)
            S_mc = a_s * m_phi + beta ** 2 * t ** 2
            T_mc = a_w * m_phi + beta ** 2 * net.has_bias + a_s * m_dphi * T_prev
            S_se, T_se = a_s * se_phi, a_w * se_phi + a_s * se_dphi * np.abs(T_prev)
            cur = _truncated(net, depth)
            S_th, T_th = infinite_nngp(cur, X), infinite_ntk(cur, X)
        assert np.all(np.abs(S_mc - S_th) <= 5 * S_se + 1e-12), (depth, S_mc - S_th, S_se)
        assert np.all(np.abs(T_mc - T_th) <= 5 * T_se + 1e-12), (depth, T_mc - T_th, T_se)


@pytest.mark.parametrize("name,parameterization,b_std", MC_CASES)
def test_recursion_matches_a_monte_carlo_of_each_layer(name, parameterization, b_std,
                                                       normal_samples):
    """Layer by layer (depth 3, three inputs, output tanh): Sigma_l and Theta_l from 10^6
    Gaussian samples of the previous layer's pre-activations, with the exact Sigma_{l-1},
    Theta_{l-1}, agree with the recursion within 5 standard errors of the sample means (a
    relative accuracy of about 1e-3). Every activation (and an ABReLU and a custom one), the
    two parameterizations alternating (the other combination is the slow test)."""
    _check_monte_carlo(name, parameterization, b_std, normal_samples)


@pytest.mark.slow
@pytest.mark.parametrize("name,parameterization,b_std", MC_CASES_OTHER)
def test_recursion_matches_a_monte_carlo_other_parameterization(name, parameterization, b_std,
                                                                normal_samples):
    _check_monte_carlo(name, parameterization, b_std, normal_samples)


# ------------------------------------------------------------------ per layer
@pytest.mark.parametrize("name", ["relu", "tanh", "gelu"])
def test_per_layer_contributions_sum_to_the_ntk(name):
    X = _sphere(6, 5)
    X2 = _sphere(3, 5, seed=3, radius=2.0)
    for b_std, parameterization in ((0.0, "ntk"), (0.5, "standard")):
        net = Network([5, 20, 20, 20, 2], activation=name, W_std=1.4, b_std=b_std,
                      parameterization=parameterization, output_activation="sigmoid")
        for second in (None, X2):
            parts = infinite_ntk(net, X, second, per_layer=True)
            assert list(parts) == layer_names(net)
            total = infinite_ntk(net, X, second)
            np.testing.assert_allclose(sum(parts.values()), total, rtol=1e-13)
    # the first layer's weight term is c_1^2 x.x' times the later layers' factors: for depth 1
    # and no output activation it is just c_1^2 x.x' (and the bias beta_1^2)
    net = Network([5, 1], activation=name, W_std=1.4, b_std=0.5)
    parts = infinite_ntk(net, X, per_layer=True)
    np.testing.assert_allclose(parts["W_1"], 1.96 * X @ X.T / 5, rtol=1e-14)
    np.testing.assert_allclose(parts["b_1"], 0.25, rtol=1e-14)


# ------------------------------------------------------------------ wide networks
def _empirical(net, X, seeds):
    """Mean over seeds of the per-head empirical NTK (k heads summed / k), the empirical NNGP
    of the last hidden features ``c_L^2 s_L^2 a_{L-1} a_{L-1}^T + beta_L^2 t_L^2``, and the
    per-layer split."""
    c, s, beta, t = net.layer_scales()[-1]
    k = net.widths[-1]
    ntk, nngp, parts = [], [], []
    for seed in seeds:
        params = net.init(seed)
        ntk.append(empirical_ntk(net, params, X) / k)
        parts.append(empirical_ntk(net, params, X, per_layer=True))
        a = net.forward(params, X).activations[-1]
        nngp.append(c * c * s * s * a @ a.T + beta * beta * t * t)
    mean_parts = {key: np.mean([p[key] for p in parts], 0) / k for key in parts[0]}
    return np.mean(ntk, 0), np.mean(nngp, 0), mean_parts


def _rel(A, B):
    return np.linalg.norm(A - B) / np.linalg.norm(B)


WIDE_CASES = [(name, par, b, 3) for name, par, b in zip(
    ALL, ["ntk", "standard"] * 5, [0.0, 0.3, 0.3, 0.0, 0.0, 0.3, 0.3, 0.0, 0.3])]
WIDE_CASES += [("relu", "ntk", 0.3, depth) for depth in (2, 5)]
WIDE_CASES += [("tanh", "standard", 0.0, 4)]
WIDE_TOL = 0.1


@pytest.mark.parametrize("name,parameterization,b_std,depth", WIDE_CASES)
def test_mean_empirical_kernels_of_wide_networks(name, parameterization, b_std, depth):
    """Width 1024, 2 heads, mean of 4 seeds, 5 inputs (one of another norm): the empirical NTK
    (per head), the NNGP of the last hidden features and every per-layer term are within 10% of
    the infinite-width kernels (Frobenius; per-layer terms relative to the whole NTK). Measured
    over all activations x both parameterizations x biases x depths 2..5 at this width and
    number of seeds: largest 7.3%, median 3%; the deviations shrink like 1/sqrt(width x seeds)
    (the slow test: 5% at width 4096)."""
    X = _sphere(5, 8, seed=1)
    X[-1] *= 1.5
    net = Network.mlp(8, 1024, depth, heads=2, activation=name, W_std=1.3, b_std=b_std,
                      parameterization=parameterization)
    ntk, nngp, parts = _empirical(net, X, [[seed, depth] for seed in range(4)])
    K = infinite_ntk(net, X)
    assert _rel(ntk, K) < WIDE_TOL
    assert _rel(nngp, infinite_nngp(net, X)) < WIDE_TOL
    theory = infinite_ntk(net, X, per_layer=True)
    for key, Kp in theory.items():
        assert np.linalg.norm(parts[key] - Kp) / np.linalg.norm(K) < WIDE_TOL, key


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_mean_empirical_kernels_of_wide_networks_full_grid(name):
    """Width 4096, 4 seeds, both parameterizations, with and without biases, depths 2 and 5: the
    mean empirical NTK and NNGP deviate from the infinite-width kernels by at most 4 standard
    errors of the seed mean plus 1% (finite-width bias), Frobenius norms. (A fixed 5% fails:
    at depth 5 the common scale of each hidden layer fluctuates by ~3.5% per layer per seed at
    this width, so the seed mean of ReLU's NNGP was seen 7% = 2 standard errors off.)"""
    X = _sphere(5, 8, seed=1)
    X[-1] *= 1.5
    for parameterization in ("ntk", "standard"):
        for b_std in (0.0, 0.3):
            for depth in (2, 5):
                net = Network.mlp(8, 4096, depth, heads=2, activation=name, W_std=1.3,
                                  b_std=b_std, parameterization=parameterization)
                c, s, beta, t = net.layer_scales()[-1]
                ntks, nngps = [], []
                for seed in range(4):
                    params = net.init([seed, depth, ALL.index(name)])
                    ntks.append(empirical_ntk(net, params, X) / 2)
                    a = net.forward(params, X).activations[-1]
                    nngps.append(c * c * s * s * a @ a.T + beta * beta * t * t)
                for samples, K in ((ntks, infinite_ntk(net, X)), (nngps, infinite_nngp(net, X))):
                    samples = np.array(samples)
                    se = np.linalg.norm(samples.std(0, ddof=1)) / np.sqrt(len(samples))
                    dev = np.linalg.norm(samples.mean(0) - K)
                    assert dev <= 4 * se + 0.01 * np.linalg.norm(K), (parameterization, b_std,
                                                                      depth, dev, se)


def test_output_activation_is_the_mean_over_the_gaussian_readout():
    """With an output activation the empirical NTK psi'(h) psi'(h') Theta at initialisation
    does not concentrate (h is random); its mean over 400 seeds (width 256, depth 2) matches
    E[psi' psi'] Theta_L within 4 standard errors plus 3% (finite-width bias)."""
    X = _sphere(4, 6, seed=4)
    net = Network([6, 256, 1], activation="tanh", W_std=1.5, b_std=0.2,
                  output_activation="tanh")
    samples = np.array([empirical_ntk(net, net.init([7, seed]), X) for seed in range(400)])
    mean, se = samples.mean(0), samples.std(0) / np.sqrt(len(samples))
    K = infinite_ntk(net, X)
    assert np.all(np.abs(mean - K) <= 4 * se + 0.03 * np.abs(K).max())
    outs = np.array([net.apply(net.init([8, seed]), X)[:, 0] for seed in range(400)])
    prod = outs[:, :, None] * outs[:, None, :]
    S = infinite_nngp(net, X)
    assert np.all(np.abs(prod.mean(0) - S) <= 4 * prod.std(0) / 20 + 0.03 * np.abs(S).max())


# ------------------------------------------------------------------ consistency
def test_symmetric_and_two_set_calls_agree_and_permutations_commute():
    """``K(X)`` = ``K(X, X)`` (1e-12; 1e-7 for ReLU, whose E[phi' phi'] has slope ~1/sqrt(1-rho)
    at rho = 1), and permuting the inputs permutes the kernel (inputs of three norms, tanh:
    tables and per-entry quadrature)."""
    X = _sphere(7, 5)
    for name, tol in (("relu", 1e-7), ("tanh", 1e-12), ("gelu", 1e-12)):
        net = Network([5, 9, 9, 1], activation=name, W_std=1.2, b_std=0.3)
        np.testing.assert_allclose(infinite_ntk(net, X), infinite_ntk(net, X, X), rtol=tol)
    X[:2] *= 2.0
    X[5] *= 0.5
    net = Network([5, 9, 9, 1], activation="tanh", W_std=1.2, b_std=0.3)
    perm = np.random.default_rng(0).permutation(7)
    K = infinite_ntk(net, X)
    np.testing.assert_allclose(infinite_ntk(net, X[perm]), K[np.ix_(perm, perm)], rtol=1e-12)
    np.testing.assert_allclose(infinite_ntk(net, X, X[perm]), K[:, perm], rtol=1e-12)
    by_norm = np.argsort(np.linalg.norm(X, axis=1), kind="stable")  # X sorted, X2 not
    np.testing.assert_allclose(infinite_ntk(net, X[by_norm], X[perm]), K[np.ix_(by_norm, perm)],
                               rtol=1e-12)
    assert np.array_equal(K, K.T)


def test_method_quadrature_reproduces_the_closed_forms():
    """``method="quadrature"`` (one table per layer for the 64 inputs of equal norm) = the
    closed forms to 1e-10."""
    X = _sphere(64, 6)
    for name in ("gelu", "erf"):
        net = Network([6, 9, 9, 9, 1], activation=name, W_std=1.3, b_std=0.2)
        closed = infinite_ntk(net, X)
        quad = infinite_ntk(net, X, method="quadrature")
        np.testing.assert_allclose(quad, closed, rtol=0, atol=1e-10 * np.abs(closed).max())


def test_zero_input_and_duck_typed_description():
    X = _sphere(4, 3)
    X[0] = 0.0
    net = Network([3, 10, 10, 1], activation="softplus", W_std=1.1)
    K = infinite_ntk(net, X)
    assert np.all(np.isfinite(K))
    desc = Description(net.widths, net.layer_scales(), ACTIVATIONS["softplus"])
    np.testing.assert_array_equal(infinite_ntk(desc, X), K)
    desc_by_name = Description(net.widths, net.layer_scales(), "softplus")
    np.testing.assert_array_equal(infinite_nngp(desc_by_name, X), infinite_nngp(net, X))


# ------------------------------------------------------------------ bad input
def test_bad_input():
    X = _sphere(4, 3)
    net = Network([3, 10, 1], activation="tanh")
    with pytest.raises(TypeError, match="lacks widths, depth, layer_scales"):
        infinite_ntk(object(), X)
    with pytest.raises(ValueError, match=r"X must have 3 columns \(net.widths\[0\]"):
        infinite_ntk(net, X[:, :2])
    with pytest.raises(ValueError, match=r"X2 must have 3 columns"):
        infinite_nngp(net, X, X[:, :2])
    with pytest.raises(ValueError, match="X must be finite"):
        infinite_ntk(net, np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="X must be 2-D"):
        infinite_ntk(net, X[0])
    with pytest.raises(TypeError, match="per_layer must be a bool"):
        infinite_ntk(net, X, per_layer="yes")
    with pytest.raises(ValueError, match="order must be in the validated range"):
        infinite_ntk(net, X, order=4)
    with pytest.raises(ValueError, match="method must be one of"):
        infinite_ntk(net, X, method="mc")
    bare = Description(net.widths, net.layer_scales(), Activation("noderiv", np.tanh, None, None))
    with pytest.raises(ValueError, match="net.activation 'noderiv' has no callable dphi"):
        infinite_ntk(bare, X)
    bad = Description(net.widths, [(1.0, np.nan, 0.0, 0.0), (1.0, 1.0, 0.0, 0.0)], "tanh")
    with pytest.raises(ValueError, match=r"layer_scales\(\)\[0\] must be four finite"):
        infinite_ntk(bad, X)
