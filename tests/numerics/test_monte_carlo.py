"""Monte-Carlo NTK and NNGP: reproducibility, a brute-force loop over stacked samples, and
convergence to the closed-form expectation of a two-layer ReLU network."""
import tracemalloc

import numpy as np
import pytest

from ntkdyn.numerics.kernels import empirical_ntk
from ntkdyn.numerics.monte_carlo import MonteCarloKernels, monte_carlo_kernels, sample_seeds
from ntkdyn.numerics.networks import MLP, Network


def _data(n=5, n2=3, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((n2, d))


def brute_force(net, X, X2, n_samples, seed, heads):
    """Stack every sample's kernels, then ``np.mean`` / ``np.std(ddof=1)``."""
    ntks, nngps, layers = [], [], []
    for child in np.random.SeedSequence(seed).spawn(n_samples):
        params = net.init(child)
        ntks.append(empirical_ntk(net, params, X, X2, heads=heads))
        layers.append(empirical_ntk(net, params, X, X2, heads=heads, per_layer=True))
        f = net.apply(params, X)
        f2 = f if X2 is None else net.apply(params, X2)
        full = np.einsum("ai,bj->ijab", f, f2)
        nngps.append({"full": full, "each": np.einsum("iiab->iab", full),
                      "sum": np.einsum("iiab->ab", full) / f.shape[1]}[heads])
    stats = {"ntk": (np.mean(ntks, axis=0), np.std(ntks, axis=0, ddof=1)),
             "nngp": (np.mean(nngps, axis=0), np.std(nngps, axis=0, ddof=1))}
    for name in layers[0]:
        stack = [K[name] for K in layers]
        stats[name] = (np.mean(stack, axis=0), np.std(stack, axis=0, ddof=1))
    return stats


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("net", [Network([3, 8, 6, 2], "tanh", W_std=1.4, b_std=0.3),
                                 Network([3, 9, 2], "relu", b_std=0.5, output_activation="tanh"),
                                 MLP([3, 7, 3], "erf", parameterization="standard")])
@pytest.mark.parametrize("heads", ["sum", "each", "full"])
def test_matches_a_brute_force_loop_over_stacked_samples(net, heads):
    X, X2 = _data()
    for x2 in (None, X2):
        ref = brute_force(net, X, x2, 6, 11, heads)
        mc = monte_carlo_kernels(net, X, x2, n_samples=6, seed=11, heads=heads, per_layer=True)
        plain = monte_carlo_kernels(net, X, x2, n_samples=6, seed=11, heads=heads)
        assert mc.n_samples == 6 and mc.ntk_mean.shape == ref["ntk"][0].shape
        for got, (mean, std) in [((mc.ntk_mean, mc.ntk_std), ref["ntk"]),
                                 ((plain.ntk_mean, plain.ntk_std), ref["ntk"]),
                                 ((mc.nngp_mean, mc.nngp_std), ref["nngp"])]:
            assert rel_err(got[0], mean) < 1e-12
            assert rel_err(got[1], std) < 1e-10
        assert list(mc.ntk_layers_mean) == list(empirical_ntk(
            net, net.init(0), X, heads=heads, per_layer=True))
        for name in mc.ntk_layers_mean:
            assert rel_err(mc.ntk_layers_mean[name], ref[name][0]) < 1e-12
            np.testing.assert_allclose(mc.ntk_layers_std[name], ref[name][1], rtol=1e-9,
                                       atol=1e-12 * np.abs(ref[name][0]).max())
        assert rel_err(sum(mc.ntk_layers_mean.values()), mc.ntk_mean) < 1e-13
        assert plain.ntk_layers_mean is None and plain.ntk_layers_std is None


def test_bitwise_reproducible_for_a_seed_and_prefix_stable():
    net = Network([3, 10, 2], "tanh", b_std=0.4)
    X, X2 = _data()
    a = monte_carlo_kernels(net, X, X2, n_samples=5, seed=[3, 1], heads="each", per_layer=True)
    b = monte_carlo_kernels(net, X, X2, n_samples=5, seed=[3, 1], heads="each", per_layer=True)
    for field in ("ntk_mean", "ntk_std", "nngp_mean", "nngp_std"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    for name in a.ntk_layers_mean:
        assert np.array_equal(a.ntk_layers_mean[name], b.ntk_layers_mean[name])
        assert np.array_equal(a.ntk_layers_std[name], b.ntk_layers_std[name])
    other = monte_carlo_kernels(net, X, X2, n_samples=5, seed=[3, 2], heads="each")
    assert not np.array_equal(a.ntk_mean, other.ntk_mean)
    # samples are the spawned children: more samples extend the same sequence
    two = monte_carlo_kernels(net, X, n_samples=2, seed=4)
    params = [net.init(c) for c in np.random.SeedSequence(4).spawn(7)[:2]]
    np.testing.assert_allclose(two.ntk_mean, (empirical_ntk(net, params[0], X)
                                              + empirical_ntk(net, params[1], X)) / 2,
                               rtol=1e-14)
    # a Generator's spawn count advances: reproducible from a fresh generator of the same seed
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    r1, r2 = monte_carlo_kernels(net, X, seed=g1, n_samples=3), monte_carlo_kernels(
        net, X, seed=g2, n_samples=3)
    assert np.array_equal(r1.ntk_mean, r2.ntk_mean)
    assert not np.array_equal(monte_carlo_kernels(net, X, seed=g1, n_samples=3).ntk_mean,
                              r1.ntk_mean)


def test_result_is_frozen_and_read_only():
    net = MLP([3, 4, 1])
    mc = monte_carlo_kernels(net, _data()[0], n_samples=3)
    assert isinstance(mc, MonteCarloKernels)
    with pytest.raises(AttributeError):
        mc.n_samples = 4
    with pytest.raises(ValueError, match="read-only"):
        mc.ntk_mean[0, 0] = 1.0
    np.testing.assert_array_equal(mc.ntk_sem, mc.ntk_std / np.sqrt(3))


def _relu_two_layer_expectations(X, W_std, b_std):
    """Exact expectations over the init of a two-layer ReLU ``Network`` (NTK parameterization),
    written out from the arc-cosine integrals (Cho & Saul 2009), per head and per layer:

    ``Sigma = W_std^2 X X^T / d + b_std^2``,  ``E relu(u) relu(v) = |u||v| (sin t + (pi - t)
    cos t) / (2 pi)``,  ``E 1[u>0] 1[v>0] = (pi - t) / (2 pi)``, ``cos t = Sigma_ab / |u||v|``.
    """
    d = X.shape[1]
    S = W_std**2 * X @ X.T / d + b_std**2
    norms = np.sqrt(np.diag(S))
    cos = np.clip(S / np.outer(norms, norms), -1.0, 1.0)
    t = np.arccos(cos)
    e_phi = np.outer(norms, norms) * (np.sin(t) + (np.pi - t) * cos) / (2 * np.pi)
    e_dphi = (np.pi - t) / (2 * np.pi)
    layers = {"W_1": W_std**2 * e_dphi * (W_std**2 * X @ X.T / d), "b_1": W_std**2 * e_dphi
              * b_std**2, "W_2": W_std**2 * e_phi, "b_2": np.full(S.shape, b_std**2)}
    return layers, W_std**2 * e_phi + b_std**2


def test_mean_converges_to_the_exact_expectation_with_one_over_sqrt_samples():
    """Two-layer ReLU, 2 heads: the expected finite-width NTK and NNGP equal closed forms, so the
    error of the mean can be scored in units of the reported standard error."""
    W_std, b_std, k = 1.2, 0.5, 2
    net = Network([3, 32, k], "relu", W_std=W_std, b_std=b_std)
    X = _data(n=6)[0]
    layers, nngp = _relu_two_layer_expectations(X, W_std, b_std)
    ntk = sum(layers.values())
    iu = np.triu_indices(X.shape[0])
    runs = {S: monte_carlo_kernels(net, X, n_samples=S, seed=2, per_layer=True)
            for S in (100, 1600)}
    for S, mc in runs.items():
        # heads="sum": the NTK is the head sum (k x one head), the NNGP the head mean
        for got, sem, exact in [(mc.ntk_mean, mc.ntk_sem, k * ntk),
                                (mc.nngp_mean, mc.nngp_sem, nngp)] + [
                (mc.ntk_layers_mean[name], mc.ntk_layers_std[name] / np.sqrt(S),
                 k * layers[name]) for name in ("W_1", "b_1", "W_2")]:
            z = ((got - exact) / sem)[iu]
            assert np.max(np.abs(z)) < 4.5, (S, np.max(np.abs(z)))
            assert 0.05 < np.mean(z**2) < 4.0, (S, np.mean(z**2))
        # negative control: the same expectations without the bias variance are rejected
        wrong = sum(_relu_two_layer_expectations(X, W_std, 0.0)[0].values())
        assert np.max(np.abs(((mc.ntk_mean - k * wrong) / mc.ntk_sem)[iu])) > 20
        np.testing.assert_array_equal(mc.ntk_layers_mean["b_2"], k * b_std**2)
        np.testing.assert_array_equal(mc.ntk_layers_std["b_2"], 0.0)
    # the spread per sample does not depend on S, so the error of the mean shrinks as S^(-1/2)
    ratio = np.median(runs[1600].ntk_std[iu] / runs[100].ntk_std[iu])
    assert 0.8 < ratio < 1.25, ratio
    err = {S: np.linalg.norm((mc.ntk_mean - k * ntk)[iu]) for S, mc in runs.items()}
    assert err[1600] < 0.6 * err[100], err


def test_memory_does_not_grow_with_samples():
    net = Network([3, 64, 2], "tanh", b_std=0.3)
    X = _data(n=60)[0]
    peaks = []
    for S in (4, 40):
        tracemalloc.start()
        monte_carlo_kernels(net, X, n_samples=S, heads="each", per_layer=True)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.3 * peaks[0], peaks


def test_bad_input():
    net = MLP([3, 4, 1])
    X = _data()[0]
    with pytest.raises(TypeError, match="net must be an MLP or Network, got str"):
        monte_carlo_kernels("relu", X)
    with pytest.raises(ValueError, match="n_samples must be >= 2"):
        monte_carlo_kernels(net, X, n_samples=1)
    with pytest.raises(TypeError, match="n_samples must be an integer"):
        monte_carlo_kernels(net, X, n_samples=2.5)
    with pytest.raises(ValueError, match="heads must be one of"):
        monte_carlo_kernels(net, X, heads="diag")
    with pytest.raises(TypeError, match="per_layer must be a bool"):
        monte_carlo_kernels(net, X, per_layer=1)
    with pytest.raises(TypeError, match="seed must be an int"):
        monte_carlo_kernels(net, X, seed="a")
    with pytest.raises(ValueError, match="seed must be non-negative"):
        monte_carlo_kernels(net, X, seed=-1)
    with pytest.raises(ValueError, match="X2 must have 3 columns"):
        monte_carlo_kernels(net, X, np.ones((2, 4)))
    assert len(sample_seeds(5, 3)) == 3
