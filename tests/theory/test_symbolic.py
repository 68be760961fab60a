"""Symbolic derivations: each verification passes, and fails for a wrong formula; the derived
(lambdified) ODEs agree with the hand-written numpy right-hand sides and integrators."""
import numpy as np
import pytest
import sympy as sp
from scipy.integrate import solve_ivp

from ntkdyn.theory import deep_linear_kernels as dlk
from ntkdyn.theory import deep_linear_modes as dl
from ntkdyn.theory import kernel_evolution as ke
from ntkdyn.theory import symbolic as sym


def test_every_derivation_verifies():
    checks = sym.verify_all(max_depth=4)
    assert len(checks) == 4 * 5 + 7
    assert all(checks.values()), [k for k, v in checks.items() if not v]


def test_wrong_formulas_are_rejected():
    """The verifiers are not vacuous: perturbed closed forms fail them."""
    t, s, lam, u0 = sym.t, sym.s, sym.lam, sym.u0
    e = sp.exp(3 * s * t)   # wrong rate
    assert not sym._verify_mode_closed_form(s * e / (lam * (e - 1) + s / u0), 2)
    assert not sym._verify_mode_closed_form(sym.depth2_closed_form(), 3)
    assert not sym._verify_mode_closed_form(sym.depth1_closed_form() + sp.exp(-t) - 1, 1)
    a, _, _, rhs = sym.mode_flow(2)
    assert sp.simplify(2 * a[0] * rhs[0] + 2 * a[1] * rhs[1]) != 0   # a1^2 + a2^2 is not conserved
    U = sp.Symbol("u", positive=True)
    _, derived, _, _ = sym.balanced_reduction(3)
    assert not sym._is_zero(derived - 3 * U ** sp.Rational(3, 2) * (s - lam * U))


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 6])
def test_lambdified_rhs_matches_numpy_rhs(depth):
    rhs = sym.lambdify_balanced_rhs(depth)
    rng = np.random.default_rng(depth)
    u = rng.uniform(0.01, 4, 50)
    s = rng.uniform(0, 3, 50)
    lam = rng.uniform(0.2, 2, 50)
    expected = depth * u ** (2 - 2 / depth) * (s - lam * u)
    np.testing.assert_allclose(rhs(u, s, lam), expected, rtol=1e-12)
    # the chain rule through the per-layer flow of theory.deep_linear_modes gives the same
    a = dl.balanced_strengths(u, depth)
    da = dl.ode_rhs(0.0, a, s, lam, depth)
    np.testing.assert_allclose(depth * u / a[0] * da[0], expected, rtol=1e-10)


@pytest.mark.parametrize("depth", [3, 5])
def test_integrating_the_derived_ode_reproduces_mode_dynamics(depth):
    rhs = sym.lambdify_balanced_rhs(depth)
    s = np.array([2.0, 0.7])
    t = np.linspace(0, 30, 31)
    sol = solve_ivp(lambda _, u: rhs(u, s, 1.0), (0, 30), [1e-2, 1e-2], t_eval=t,
                    method="DOP853", rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sol.y.T, dl.mode_dynamics(s, 1e-2, depth, t), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_ntk_time_rescaling_matches_numeric_factor(depth):
    res = sym.ntk_time_rescaling(depth)
    assert res["per_layer_verified"] and res["balanced_verified"]
    widths = [5, 9, 13, 1][: depth] + [1]
    subs = {n: w for n, w in zip(res["widths"], widths[:-1])}
    factor = float(res["time_factor"].subs(subs))
    assert factor == pytest.approx(dl.ntk_time_factor(widths), rel=1e-12)
    # per layer the factor is 1/fan-in, not a product over layers
    assert [str(r) for r in res["per_layer_rate"]] == [f"1/n_{l}" for l in range(depth)]


def test_toy_closed_forms_agree_with_numeric_closed_forms():
    for variant in ke.VARIANTS:
        lam0, lam_t, U = sym.toy_closed_form(variant)
        f = sp.lambdify((sym.t, lam0, sym.u0, sym.eta), (lam_t, U), modules="numpy")
        t = np.linspace(0, 5, 11)
        lam_num, U_num = ke.closed_form(t, 0.3, 1.5, 0.8, variant)
        lam_sym, U_sym = f(t, 0.3, 1.5, 0.8)
        np.testing.assert_allclose(lam_num, lam_sym, rtol=1e-10)
        np.testing.assert_allclose(U_num, U_sym, rtol=1e-9)


def test_alignment_formulas_agree_with_numeric():
    A, A_final, ok = sym.whitened_final_alignment()
    assert ok
    L, D = sp.symbols("L D", positive=True)
    assert float(A_final.subs({L: 3, D: 20})) == pytest.approx(dlk.final_alignment(3, 20),
                                                               rel=1e-14)
    iso, spike, ok = sym.rank_one_ntk_spike(4)
    a = sp.Symbol("a", positive=True)
    assert ok and sp.simplify(spike / iso) == 3 and iso == a ** 6


@pytest.mark.parametrize("fmt", ["pretty", "latex"])
def test_derivations_text(fmt):
    text = sym.derivations(fmt)
    assert "NOT VERIFIED" not in text
    assert text.count("verified by sympy") >= 15
    assert ("\\frac" in text) == (fmt == "latex")
    assert "Saxe" in text and "NTK parameterization" in text


def test_bad_arguments():
    with pytest.raises(ValueError, match="fmt"):
        sym.derivations("html")
    with pytest.raises(ValueError, match="depth"):
        sym.mode_flow(0)
    with pytest.raises(ValueError, match="variant"):
        sym.toy_closed_form("cubic")
