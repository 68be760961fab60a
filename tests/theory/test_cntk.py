"""Infinite-width kernels of serial networks (ntkdyn.theory.cntk).

Checked against (1) a slow direct implementation of the recursion written here with explicit
loops over input pairs, positions and kernel offsets and its own closed forms of the ReLU and erf
dual kernels, to 1e-12; (2) the MLP recursion of ntkdyn.theory.infinite_width for stacks of Dense
layers; (3) Monte Carlo averages of wide finite networks (tolerances stated at each test, set
between the measured agreement and the negative controls' errors).
"""
import itertools
import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import ntkdyn
from ntkdyn.base.layers import (Activation, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Residual,
                                weight_scales)
from ntkdyn.numerics.networks import Network
from ntkdyn.numerics.serial import SerialNetwork
from ntkdyn.numerics.serial_ntk import serial_ntk
from ntkdyn.theory import cntk, infinite_width


# --------------------------------------------------------------------------- slow reference
def _relu_duals(c, a, b):
    norm = math.sqrt(a * b)
    if norm == 0:
        return 0.0, 0.5
    rho = max(-1.0, min(1.0, c / norm))
    theta = math.acos(rho)
    return (norm / (2 * math.pi) * (math.sin(theta) + (math.pi - theta) * math.cos(theta)),
            (math.pi - theta) / (2 * math.pi))


def _erf_duals(c, a, b):
    s = (1 + 2 * a) * (1 + 2 * b)
    return 2 / math.pi * math.asin(2 * c / math.sqrt(s)), 4 / math.pi / math.sqrt(s - 4 * c * c)


DUALS = {"relu": _relu_duals, "erf": _erf_duals}


class _Pair:
    """Kernels of one pair of inputs as dicts over position pairs (tuples), or scalars."""

    def __init__(self, K, Kx, Ky, T, positions):
        self.K, self.Kx, self.Ky, self.T, self.positions = K, Kx, Ky, T, positions


def _direct_pair(layers, x, y, parameterization):
    spatial = x.shape[:-1]
    positions = list(itertools.product(*(range(s) for s in spatial)))
    C = x.shape[-1]

    def dot(u, v):
        return {(p, q): float(u[p] @ v[q]) / C for p in positions for q in positions}

    state = _Pair(dot(x, y), dot(x, x), dot(y, y), {k: 0.0 for k in dot(x, y)}, positions)
    state = _direct_run(layers, state, C, spatial, parameterization)
    return state.K, state.T


def _direct_run(layers, st, C, spatial, parameterization):
    for layer in layers:
        st, C, spatial = _direct_layer(layer, st, C, spatial, parameterization)
    return st


def _direct_layer(layer, st, C, spatial, parameterization):
    flat = not isinstance(st.K, dict)
    if isinstance(layer, (Dense, Conv)):
        if isinstance(layer, Dense):
            window, lo, out_spatial = (1,) * len(spatial), (0,) * len(spatial), spatial
            cout = layer.out
        else:
            k = layer.kernel_size
            window = (k,) * len(spatial) if isinstance(k, int) else tuple(k)
            if layer.padding == "same":
                lo, out_spatial = tuple((w - 1) // 2 for w in window), spatial
            else:
                lo = (0,) * len(spatial)
                out_spatial = tuple(s - w + 1 for s, w in zip(spatial, window))
            cout = layer.out_channels
        fan_in = C * math.prod(window)
        c, s, beta, t = weight_scales(layer.W_std, layer.b_std, fan_in, parameterization)
        if flat:  # units: mean over the unit list
            def lin(D):
                return sum(D) / len(D)
            K, Kx, Ky, T = lin(st.K), lin(st.Kx), lin(st.Ky), lin(st.T)
            new = _Pair(K, Kx, Ky, T, None)
            new.K = c * c * s * s * C * K + beta * beta * t * t
            new.Kx = c * c * s * s * C * Kx + beta * beta * t * t
            new.Ky = c * c * s * s * C * Ky + beta * beta * t * t
            new.T = c * c * C * K + beta * beta + c * c * s * s * C * T
            return new, cout, ()
        out_positions = list(itertools.product(*(range(e) for e in out_spatial)))
        offsets = list(itertools.product(*(range(w) for w in window)))

        def conv(D):
            out = {}
            for p in out_positions:
                for q in out_positions:
                    total = 0.0
                    for o in offsets:
                        u = tuple(pi + oi - li for pi, oi, li in zip(p, o, lo))
                        v = tuple(qi + oi - li for qi, oi, li in zip(q, o, lo))
                        if (all(0 <= ui < si for ui, si in zip(u, spatial))
                                and all(0 <= vi < si for vi, si in zip(v, spatial))):
                            total += D[u, v]
                    out[p, q] = total
            return out

        K, Kx, Ky, T = conv(st.K), conv(st.Kx), conv(st.Ky), conv(st.T)
        a_s = c * c * s * s * C
        new = _Pair({k: a_s * v + beta * beta * t * t for k, v in K.items()},
                    {k: a_s * v + beta * beta * t * t for k, v in Kx.items()},
                    {k: a_s * v + beta * beta * t * t for k, v in Ky.items()},
                    {k: c * c * C * K[k] + beta * beta + a_s * T[k] for k in K}, out_positions)
        return new, cout, out_spatial
    if isinstance(layer, Activation):
        duals = DUALS[layer.name]
        if flat:
            pairs = [duals(k, a, b) for k, a, b in zip(st.K, st.Kx, st.Ky)]
            return _Pair([e for e, _ in pairs], [duals(a, a, a)[0] for a in st.Kx],
                         [duals(b, b, b)[0] for b in st.Ky],
                         [d * T for (_, d), T in zip(pairs, st.T)], None), C, spatial
        K, Kx, Ky, T = {}, {}, {}, {}
        for (p, q), value in st.K.items():
            e, d = duals(value, st.Kx[p, p], st.Ky[q, q])
            K[p, q], T[p, q] = e, d * st.T[p, q]
            Kx[p, q] = duals(st.Kx[p, q], st.Kx[p, p], st.Kx[q, q])[0]
            Ky[p, q] = duals(st.Ky[p, q], st.Ky[p, p], st.Ky[q, q])[0]
        return _Pair(K, Kx, Ky, T, st.positions), C, spatial
    if isinstance(layer, AvgPool):
        w = layer.size
        window = (w,) * len(spatial) if isinstance(w, int) else tuple(w)
        r = layer.stride
        stride = window if r is None else ((r,) * len(spatial) if isinstance(r, int) else r)
        out_spatial = tuple((s - k) // t + 1 for s, k, t in zip(spatial, window, stride))
        out_positions = list(itertools.product(*(range(e) for e in out_spatial)))
        offsets = list(itertools.product(*(range(k) for k in window)))

        def pool(D):
            out = {}
            for p in out_positions:
                for q in out_positions:
                    total = 0.0
                    for o in offsets:
                        for o2 in offsets:
                            u = tuple(pi * ti + oi for pi, ti, oi in zip(p, stride, o))
                            v = tuple(qi * ti + oi for qi, ti, oi in zip(q, stride, o2))
                            total += D[u, v]
                    out[p, q] = total / len(offsets) ** 2
            return out

        return (_Pair(pool(st.K), pool(st.Kx), pool(st.Ky), pool(st.T), out_positions), C,
                out_spatial)
    if isinstance(layer, GlobalAvgPool):
        def gap(D):
            return [sum(D.values()) / len(D)]
        return _Pair(gap(st.K), gap(st.Kx), gap(st.Ky), gap(st.T), None), C, ()
    if isinstance(layer, Flatten):
        if flat:
            return st, C, spatial

        def diag(D):
            return [D[p, p] for p in st.positions]
        return (_Pair(diag(st.K), diag(st.Kx), diag(st.Ky), diag(st.T), None),
                C * math.prod(spatial), ())
    assert isinstance(layer, Residual)
    branch = st
    c_b, sp_b = C, spatial
    for inner in layer.branch:
        branch, c_b, sp_b = _direct_layer(inner, branch, c_b, sp_b, parameterization)
    skip = st
    if layer.project or c_b != C:
        skip, _, _ = _direct_layer(Dense(c_b, layer.W_std, layer.b_std), st, C, spatial,
                                   parameterization)
    a2 = layer.branch_weight ** 2

    def add(S, B):
        if isinstance(S, dict):
            return {k: S[k] + a2 * B[k] for k in S}
        if isinstance(S, list):
            return [u + a2 * v for u, v in zip(S, B)]
        return S + a2 * B

    return (_Pair(add(skip.K, branch.K), add(skip.Kx, branch.Kx), add(skip.Ky, branch.Ky),
                  add(skip.T, branch.T), st.positions), c_b, spatial)


def _mean(K):
    if isinstance(K, dict):
        K = list(K.values())
    return float(np.mean(K))


def direct_kernels(net, X, Y):
    """NNGP and NTK of one head by explicit loops (pairs x positions x offsets)."""
    nngp = np.empty((X.shape[0], Y.shape[0]))
    ntk = np.empty_like(nngp)
    for i, x in enumerate(X):
        for j, y in enumerate(Y):
            K, T = _direct_pair(net.layers, x, y, net.parameterization)
            K, T = _mean(K), _mean(T)
            nngp[i, j], ntk[i, j] = K, T
    return nngp, ntk


# --------------------------------------------------------------------------- networks
def _cnn_gap(C=3, act="relu", b=0.0, par="ntk", shape=(4, 4, 2)):
    return SerialNetwork([Conv(C, 3, b_std=b), Activation(act), Conv(C, (2, 3), W_std=1.3),
                          Activation(act), GlobalAvgPool(), Dense(2, b_std=b)], shape, par)


NETWORKS = {
    "cnn-gap-relu": lambda: _cnn_gap(),
    "cnn-gap-erf-bias": lambda: _cnn_gap(act="erf", b=0.4),
    "cnn-gap-standard": lambda: _cnn_gap(b=0.3, par="standard"),
    "pool-valid-flatten": lambda: SerialNetwork(
        [Conv(3, 2, b_std=0.2), Activation("erf"), AvgPool(2, stride=1), Conv(2, 2, "valid"),
         Activation("relu"), Flatten(), Dense(1)], (4, 4, 1)),
    "resnet-1d": lambda: SerialNetwork(
        [Conv(3, 3), Residual(Activation("relu"), Conv(3, 3, b_std=0.3), Activation("erf"),
                              Conv(4, 2), branch_weight=0.6, W_std=0.9, b_std=0.2),
         Residual(Activation("relu"), Conv(4, 3)), AvgPool(2), Activation("relu"),
         GlobalAvgPool(), Dense(2)], (6, 2)),
    "residual-mlp-standard": lambda: SerialNetwork(
        [Dense(5, b_std=0.1), Residual(Activation("relu"), Dense(5), Activation("erf"),
                                       Dense(5, W_std=1.4), branch_weight=0.8),
         Activation("relu"), Dense(1, b_std=0.2)], (3,), "standard"),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_recursion_matches_slow_direct_loops(name):
    net = NETWORKS[name]()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3,) + net.input_shape)
    Y = rng.standard_normal((2,) + net.input_shape)
    nngp, ntk = direct_kernels(net, X, Y)
    np.testing.assert_allclose(cntk.infinite_nngp(net, X, Y), nngp, rtol=1e-12, atol=0)
    np.testing.assert_allclose(cntk.infinite_ntk(net, X, Y), ntk, rtol=1e-12, atol=0)
    # symmetric call: upper blocks mirrored, equal to the direct loops
    nngp_s, ntk_s = direct_kernels(net, X, X)
    np.testing.assert_allclose(cntk.infinite_ntk(net, X), ntk_s, rtol=1e-12, atol=0)
    np.testing.assert_allclose(cntk.infinite_nngp(net, X), nngp_s, rtol=1e-12, atol=0)


def test_per_layer_terms_sum_to_the_ntk_and_match_the_parameter_names():
    net = NETWORKS["resnet-1d"]()
    X = np.random.default_rng(1).standard_normal((4,) + net.input_shape)
    terms = cntk.infinite_ntk(net, X, X[:3], per_layer=True)
    assert list(terms) == cntk.layer_names(net)
    assert set(terms) == set(net.param_names)
    np.testing.assert_allclose(sum(terms.values()), cntk.infinite_ntk(net, X, X[:3]),
                               rtol=1e-13, atol=0)
    sym = cntk.infinite_ntk(net, X, per_layer=True)
    assert all(np.all(np.diag(K) >= 0) for K in sym.values())


def test_blocks_and_symmetry_do_not_change_the_kernel():
    net = NETWORKS["cnn-gap-erf-bias"]()
    X = np.random.default_rng(2).standard_normal((7,) + net.input_shape)
    full = cntk.serial_kernels(net, X)
    small = cntk.serial_kernels(net, X, block_bytes=8 * 16 * 16 * 8)  # 2 x 2 input blocks
    np.testing.assert_allclose(small, full, rtol=1e-13, atol=0)
    np.testing.assert_allclose(cntk.infinite_ntk(net, X, X), full, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(full, full.T)


@pytest.mark.parametrize("par", ["ntk", "standard"])
@pytest.mark.parametrize("act", ["relu", "erf", "tanh"])
def test_dense_stack_equals_the_mlp_recursion(par, act):
    widths = [6, 40, 30, 1]
    mlp = Network(widths, activation=act, W_std=1.2, b_std=0.3, parameterization=par)
    net = SerialNetwork([Dense(40, 1.2, 0.3), Activation(act), Dense(30, 1.2, 0.3),
                         Activation(act), Dense(1, 1.2, 0.3)], (6,), par)
    X = np.random.default_rng(3).standard_normal((5, 6))
    Y = np.random.default_rng(4).standard_normal((3, 6))
    # relu: theory.infinite_width's diagonal (rho = 1) carries ~1e-8 rounding (arccos at 1)
    rtol = 1e-7 if act == "relu" else 1e-12
    np.testing.assert_allclose(cntk.infinite_nngp(net, X), infinite_width.infinite_nngp(mlp, X),
                               rtol=1e-12)
    np.testing.assert_allclose(cntk.infinite_ntk(net, X, Y),
                               infinite_width.infinite_ntk(mlp, X, Y), rtol=rtol)
    np.testing.assert_allclose(cntk.infinite_ntk(net, X), infinite_width.infinite_ntk(mlp, X),
                               rtol=rtol)
    mine = cntk.infinite_ntk(net, X, Y, per_layer=True)
    theirs = infinite_width.infinite_ntk(mlp, X, Y, per_layer=True)
    assert list(mine) == list(theirs)
    for key in mine:
        np.testing.assert_allclose(mine[key], theirs[key], rtol=rtol, atol=1e-14)


def test_quadrature_duals_agree_with_the_closed_form():
    net = SerialNetwork([Conv(2, 3, b_std=0.2), Activation("gelu"), Conv(2, 2),
                         Activation("gelu"), GlobalAvgPool(), Dense(1)], (4, 1))
    X = np.random.default_rng(4).standard_normal((2,) + net.input_shape)
    closed = cntk.infinite_ntk(net, X, method="closed")
    quad = cntk.infinite_ntk(net, X, method="quadrature")
    np.testing.assert_allclose(quad, closed, rtol=1e-9)


# --------------------------------------------------------------------------- Monte Carlo
def _monte_carlo(net, X, samples, seed):
    """Mean empirical NTK per head and mean NNGP (readout taken in expectation) over inits."""
    k = net.output_dim
    last = net.parameterised[-1]
    c, s, beta, t = last.scales
    ntk = np.zeros((X.shape[0], X.shape[0]))
    nngp = np.zeros_like(ntk)
    with threadpool_limits(1):  # many small products: one BLAS thread is the steadiest
        for child in np.random.SeedSequence(seed).spawn(samples):
            params = net.init(np.random.default_rng(child))
            ntk += serial_ntk(net, params, X) / k
            z = net.forward(params, X).inputs[last.index]
            nngp += c * c * s * s * (z @ z.T) + beta * beta * t * t
    return ntk / samples, nngp / samples


def _rel(A, B):
    return np.linalg.norm(A - B) / np.linalg.norm(B)


# Tolerance: relative Frobenius error of the Monte Carlo mean (256 channels, 10 or 16 inits;
# the NNGP takes the readout in expectation). Measured errors are noted at each assertion
# (0.03 to 0.04; fluctuations O(1/sqrt(channels x inits)) and a finite-width bias O(1/channels));
# the controls, a plausible wrong theory through the same measurement, miss by 0.18 to 0.65.
MC_TOL = 0.05


def test_cnn_gap_kernels_match_wide_networks_and_reject_the_flatten_kernel():
    C = 256
    layers = [Conv(C, 3, b_std=0.2), Activation("relu"), Conv(C, 3), Activation("relu"),
              GlobalAvgPool(), Dense(8, b_std=0.1)]
    net = SerialNetwork(layers, (4, 4, 2))
    X = np.random.default_rng(5).standard_normal((4, 4, 4, 2))
    ntk, nngp = _monte_carlo(net, X, 10, 11)
    theory_ntk, theory_nngp = cntk.infinite_ntk(net, X), cntk.infinite_nngp(net, X)
    # control: the same recursion with Flatten for GAP (drops the p != q terms)
    control = SerialNetwork(layers[:4] + [Flatten(), Dense(8, b_std=0.1)], (4, 4, 2))
    assert _rel(ntk, theory_ntk) < MC_TOL  # measured 0.031
    assert _rel(nngp, theory_nngp) < MC_TOL  # measured 0.039
    assert _rel(ntk, cntk.infinite_ntk(control, X)) > 3 * MC_TOL  # measured 0.65
    assert _rel(nngp, cntk.infinite_nngp(control, X)) > 3 * MC_TOL  # measured 0.34


def test_resnet_kernels_match_wide_networks_and_reject_a_linear_branch_weight():
    C = 256

    def layers(alpha):
        return [Conv(C, 3), Residual(Activation("relu"), Conv(C, 3), Activation("relu"),
                                     Conv(C, 3), branch_weight=alpha),
                Residual(Activation("erf"), Conv(C // 2, 3, b_std=0.3), branch_weight=alpha,
                         b_std=0.2),
                Activation("relu"), AvgPool(2), Flatten(), Dense(8)]

    net = SerialNetwork(layers(0.5), (6, 2), "standard")
    X = np.random.default_rng(6).standard_normal((4, 6, 2))
    ntk, nngp = _monte_carlo(net, X, 16, 12)
    # control: the branch added with weight alpha instead of alpha^2 to the kernels
    control = SerialNetwork(layers(math.sqrt(0.5)), (6, 2), "standard")
    assert _rel(ntk, cntk.infinite_ntk(net, X)) < MC_TOL  # measured 0.032
    assert _rel(nngp, cntk.infinite_nngp(net, X)) < MC_TOL  # measured 0.031
    assert _rel(ntk, cntk.infinite_ntk(control, X)) > 2 * MC_TOL  # measured 0.26
    assert _rel(nngp, cntk.infinite_nngp(control, X)) > 2 * MC_TOL  # measured 0.18


# --------------------------------------------------------------------------- bad input
def test_refuses_what_the_recursion_does_not_cover():
    X = np.zeros((2, 4, 4, 1))
    on_data = SerialNetwork([Activation("relu"), Conv(2, 3), GlobalAvgPool(), Dense(1)],
                            (4, 4, 1))
    with pytest.raises(ValueError, match=r"layers\[0\].*Gaussian"):
        cntk.infinite_ntk(on_data, X)
    post = SerialNetwork([Conv(2, 3), Activation("relu"), Residual(Conv(2, 3)),
                          Activation("relu"), GlobalAvgPool(), Dense(1)], (4, 4, 1))
    with pytest.raises(ValueError, match=r"layers\[3\].*Gaussian"):
        cntk.infinite_ntk(post, X)
    ends = SerialNetwork([Conv(2, 3), Residual(Conv(2, 3), Activation("relu")),
                          GlobalAvgPool(), Dense(1)], (4, 4, 1))
    with pytest.raises(ValueError, match=r"layers\[1\].*end with a Dense or Conv"):
        cntk.infinite_nngp(ends, X)
    net = _cnn_gap()
    with pytest.raises(ValueError, match=r"X must have shape \(n, 4, 4, 2\)"):
        cntk.infinite_ntk(net, np.zeros((2, 4, 4)))
    with pytest.raises(TypeError, match="lacks layers"):
        cntk.infinite_ntk(object(), X)
    with pytest.raises(ValueError, match="method"):
        cntk.infinite_ntk(net, np.zeros((1, 4, 4, 2)), method="exact")


def test_the_public_infinite_kernels_dispatch_serial_networks():
    net = _cnn_gap(b=0.2)
    X = np.random.default_rng(7).standard_normal((3,) + net.input_shape)
    K = cntk.infinite_ntk(net, X)
    np.testing.assert_array_equal(infinite_width.infinite_ntk(net, X), K)
    np.testing.assert_array_equal(ntkdyn.theory.infinite_width.infinite_nngp(net, X),
                                  cntk.infinite_nngp(net, X))
    np.testing.assert_array_equal(net.infinite_ntk(X), K)
    np.testing.assert_array_equal(net.infinite_nngp(X, X[:2]), cntk.infinite_nngp(net, X, X[:2]))
    terms = infinite_width.infinite_ntk(net, X, per_layer=True)
    assert list(terms) == ["W_1", "b_1", "W_2", "W_3", "b_3"]
