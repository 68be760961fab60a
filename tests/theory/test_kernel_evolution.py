"""Toy kernel-evolution model: closed forms against the integrated ODE, conservation laws,
the normative derivation of the kernel rule (finite differences of psi^T psi), the frozen-kernel
limit, acceleration, limits and bad input."""
import numpy as np
import pytest

from ntkdyn.theory import kernel_evolution as ke


@pytest.fixture(scope="module")
def reference():
    """The reference case: P = 30, lam_k = k^-1.5, target y = v_5 (unit norm)."""
    K0, _, lam, Q = ke.power_law_problem(30, b=1.5, a=2.0, seed=0)
    return K0, lam, Q


@pytest.mark.parametrize("variant", ke.VARIANTS)
def test_closed_form_matches_integration(reference, variant):
    K0, lam, Q = reference
    y = Q[:, 4]
    eta = 0.5
    t = np.linspace(0, 40, 201)
    traj = ke.integrate(K0, y, t, eta, variant)
    U = np.sum(traj.residual ** 2, axis=1)
    lam_t, U_cf = ke.closed_form(t, lam[4], 1.0, eta, variant)
    keep = U_cf >= 1e-6
    assert keep.sum() > 20
    assert np.max(np.abs(U[keep] / U_cf[keep] - 1)) < 1e-6
    # the residual is integrated directly: far below ||y||^2 the relative error stays small
    deep = (U_cf < 1e-6) & (U_cf > 1e-12)
    assert deep.any() and np.max(np.abs(U[deep] / U_cf[deep] - 1)) < 1e-4
    np.testing.assert_allclose(np.einsum("i,tij,j->t", y, traj.kernel, y), lam_t, rtol=1e-8)
    lam_inf = ke.final_eigenvalue(lam[4], 1.0, eta, variant)
    assert lam_t[-1] == pytest.approx(lam_inf, rel=1e-10)
    assert y @ traj.kernel[-1] @ y == pytest.approx(lam_inf, rel=1e-8)
    if variant == "multiplicative":
        assert lam_inf == pytest.approx(0.589443, abs=1e-6)   # lam0 + eta ||y||^2
    else:
        assert lam_inf == pytest.approx(np.sqrt(lam[4] ** 2 + eta), rel=1e-12)
    # other eigen-directions untouched
    other = Q[:, [0, 10, 29]]
    np.testing.assert_allclose(other.T @ traj.kernel[-1] @ other, other.T @ K0 @ other, atol=1e-10)
    inv = ke.invariant(np.einsum("i,tij,j->t", y, traj.kernel, y), U, eta, variant)
    np.testing.assert_allclose(inv, inv[0], rtol=1e-9)


@pytest.mark.parametrize("variant", ke.VARIANTS)
def test_closed_form_limits(variant):
    lam0, u0, eta = 0.2, 2.0, 0.7
    lam_t, U = ke.closed_form(np.array([0.0, 1e3]), lam0, u0, eta, variant)
    assert lam_t[0] == pytest.approx(lam0, rel=1e-12) and U[0] == pytest.approx(u0, rel=1e-12)
    assert lam_t[1] == pytest.approx(ke.final_eigenvalue(lam0, u0, eta, variant), rel=1e-12)
    assert U[1] == 0.0 or U[1] < 1e-300
    # eta -> 0 is the frozen kernel
    lam_s, U_s = ke.closed_form(np.array([1.0, 3.0]), lam0, u0, 1e-12, variant)
    np.testing.assert_allclose(U_s, u0 * np.exp(-2 * lam0 * np.array([1.0, 3.0])), rtol=1e-9)
    lam_z, U_z = ke.closed_form(np.array([1.0]), lam0, u0, 0.0, variant)
    assert U_z[0] == pytest.approx(u0 * np.exp(-2 * lam0))
    # training is accelerated: the late decay rate is 2 lam(inf) > 2 lam0
    t = np.array([50.0, 51.0])
    _, U = ke.closed_form(t, lam0, u0, eta, variant)
    rate = -np.log(U[1] / U[0])
    assert rate == pytest.approx(2 * ke.final_eigenvalue(lam0, u0, eta, variant), rel=1e-6)
    assert rate > 2 * lam0


def test_multiplicative_rule_is_the_optimal_feature_velocity():
    """dpsi/dt = eta psi D D^T gives d(psi^T psi)/dt = eta (K D D^T + D D^T K)."""
    rng = np.random.default_rng(0)
    psi = rng.normal(size=(7, 5))
    D = rng.normal(size=5)
    eta, h = 0.3, 1e-6
    K = psi.T @ psi
    dpsi = eta * psi @ np.outer(D, D)
    fd = ((psi + h * dpsi).T @ (psi + h * dpsi) - (psi - h * dpsi).T @ (psi - h * dpsi)) / (2 * h)
    np.testing.assert_allclose(ke.kernel_rate(K, D, eta), fd, rtol=1e-7)
    # the additive rule is the velocity dK = eta D D^T
    np.testing.assert_allclose(ke.kernel_rate(K, D, eta, "additive"), eta * np.outer(D, D))
    # trace normalisation removes exactly the trace
    for variant in ke.VARIANTS:
        rate = ke.kernel_rate(K, D, eta, variant, normalise=True)
        assert np.trace(rate) == pytest.approx(0, abs=1e-12)


def test_static_kernel_limit_and_power_law():
    K0, y, lam, Q = ke.power_law_problem(25, b=1.0, a=2.0, seed=1)
    t = np.geomspace(1e-2, 50, 40)
    traj = ke.integrate(K0, y, t, 0.0)
    np.testing.assert_allclose(traj.loss, ke.static_loss(lam, Q.T @ y, t), rtol=1e-8)
    np.testing.assert_allclose(traj.kernel[-1], K0, atol=1e-14)
    # large P: the frozen-kernel loss is a power law t^(-(a-1)/b) at intermediate times
    P, b, a = 4000, 1.5, 2.5
    k = np.arange(1, P + 1.0)
    tt = np.geomspace(1e1, 1e3, 20)
    loss = ke.static_loss(k ** -b, k ** (-a / 2), tt)
    slope = np.polyfit(np.log(tt), np.log(loss), 1)[0]
    assert slope == pytest.approx(-(a - 1) / b, rel=0.1)


def test_evolving_kernel_accelerates_and_aligns():
    K0, y, _, _ = ke.power_law_problem(30, b=1.0, a=2.0, seed=2)
    t = np.concatenate([[0.0], np.geomspace(1e-2, 100, 30)])
    losses, aligns = [], []
    for eta in (0.0, 0.1, 1.0, 10.0):
        traj = ke.integrate(K0, y, t, eta, rtol=1e-8, atol=1e-12)
        ob = ke.observables(traj)
        losses.append(ob["loss"])
        aligns.append(ob["alignment"])
        assert ob["eigenvalues"].shape == (t.size, 30)
        assert np.all(np.diff(ob["eigenvalues"], axis=1) <= 1e-12)
        A = ob["alignment"]
        drop = np.max(np.maximum.accumulate(A) - A)
        # not exactly monotone: once the residual has rotated onto
        # low-eigenvalue directions the kernel grows there and A(K, y) falls back slightly
        assert drop < 1e-3 * A[0]
        if eta == 1.0:
            assert drop > 1e-5
        np.testing.assert_allclose(traj.kernel, np.swapaxes(traj.kernel, 1, 2), atol=1e-12)
        assert ob["eigenvalues"].min() > -1e-10                       # stays PSD
    for i in range(1, 4):
        assert np.all(losses[i][1:] < losses[i - 1][1:])              # more eta, lower loss
        assert aligns[i][-1] > aligns[i - 1][-1]
    assert aligns[3][-1] > 0.95


def test_single_eigenvector_alignment_is_monotone(reference):
    K0, lam, Q = reference
    traj = ke.integrate(K0, Q[:, 4], np.linspace(0, 20, 41), 0.5)
    A = ke.observables(traj)["alignment"]
    assert np.all(np.diff(A) >= -1e-13) and np.all(np.diff(A[:20]) > 0)
    assert A[0] == pytest.approx(lam[4] / np.linalg.norm(lam), rel=1e-12)
    lam_inf = ke.final_eigenvalue(lam[4], 1.0, 0.5)
    rest = np.sum(lam ** 2) - lam[4] ** 2
    assert A[-1] == pytest.approx(lam_inf / np.sqrt(lam_inf ** 2 + rest), rel=1e-8)


def test_trace_normalisation_keeps_trace():
    K0, y, _, _ = ke.power_law_problem(12, seed=3)
    t = np.linspace(0, 20, 11)
    for variant in ke.VARIANTS:
        traj = ke.integrate(K0, y, t, 2.0, variant, normalise=True)
        np.testing.assert_allclose(np.trace(traj.kernel, axis1=1, axis2=2), np.trace(K0), rtol=1e-9)
        assert ke.observables(traj)["alignment"][-1] > ke.observables(traj)["alignment"][0]


def test_bad_input():
    K0, y, _, _ = ke.power_law_problem(5, seed=0)
    t = np.linspace(0, 1, 3)
    with pytest.raises(ValueError, match="K0"):
        ke.integrate(K0[:4, :4], y, t, 1.0)
    with pytest.raises(ValueError, match="symmetric"):
        ke.integrate(K0 + np.triu(np.ones((5, 5)), 1), y, t, 1.0)
    with pytest.raises(ValueError, match="eta"):
        ke.integrate(K0, y, t, -1.0)
    with pytest.raises(ValueError, match="variant"):
        ke.integrate(K0, y, t, 1.0, variant="exponential")
    with pytest.raises(ValueError, match="non-decreasing"):
        ke.integrate(K0, y, t[::-1], 1.0)
    with pytest.raises(ValueError, match="finite"):
        ke.integrate(K0, np.full(5, np.nan), t, 1.0)
    with pytest.raises(ValueError, match="lam0"):
        ke.closed_form(t, -0.1, 1.0, 1.0)


def test_failed_integration_raises(monkeypatch):
    class Failed:
        success = False
        message = "required step size is less than spacing"
        y = np.zeros((30, 0))

    monkeypatch.setattr(ke, "_solve_ivp", lambda *a, **k: Failed())
    K0, y, _, _ = ke.power_law_problem(5, seed=0)
    with pytest.raises(RuntimeError, match="step size"):
        ke.integrate(K0, y, np.linspace(0, 1, 3), 1.0)


# --- optimal feature evolution: matrix conservation law and the discrete feature-gradient toy ---

def _random_target_problem(P=10, seed=3):
    K0, _, _, _ = ke.power_law_problem(P, b=1.0, seed=seed)
    y = np.random.default_rng(seed).standard_normal(P)
    return K0, y / np.linalg.norm(y)


def test_matrix_conservation_law_for_an_arbitrary_target():
    K0, y = _random_target_problem()
    eta = 0.7
    traj = ke.integrate(K0, y, np.linspace(0, 300, 61), eta, rtol=1e-11, atol=1e-15)
    C = ke.conserved_matrix(traj.kernel, traj.residual, eta)
    K_inf = K0 + eta * np.outer(y, y)          # independent of final_kernel
    np.testing.assert_allclose(C, np.broadcast_to(K_inf, C.shape), atol=1e-10)
    np.testing.assert_allclose(ke.final_kernel(K0, y, eta), K_inf, rtol=0, atol=1e-15)
    assert np.linalg.norm(traj.kernel[-1] - K_inf) < 1e-6
    # not merely the eigenvalue law: y is no eigenvector, K_inf has off-diagonal blocks
    lam, Q = np.linalg.eigh(K0)
    off = Q.T @ (K_inf - K0) @ Q
    assert np.abs(off - np.diag(np.diag(off))).max() > 1e-3
    # the additive rule does not conserve it
    add = ke.integrate(K0, y, np.linspace(0, 50, 11), eta, "additive")
    C_add = ke.conserved_matrix(add.kernel, add.residual, eta)
    assert np.abs(C_add[-1] - K_inf).max() > 1e-3


def test_feature_gradient_step_is_the_gradient_of_the_next_step_loss():
    rng = np.random.default_rng(0)
    Psi = rng.standard_normal((7, 5))
    D = rng.standard_normal(5)
    eta, gamma = 0.1, 0.3

    def next_loss(P):
        r = D - eta * P.T @ (P @ D)
        return 0.5 * r @ r

    grad = np.zeros_like(Psi)
    h = 1e-6
    for idx in np.ndindex(Psi.shape):
        E = np.zeros_like(Psi)
        E[idx] = h
        grad[idx] = (next_loss(Psi + E) - next_loss(Psi - E)) / (2 * h)
    np.testing.assert_allclose(ke.feature_gradient_step(Psi, D, eta, gamma), Psi - gamma * grad,
                               atol=1e-8)


def test_feature_toy_approaches_t1_with_rate_2_gamma_at_first_order():
    K0, y = _random_target_problem(P=8)
    gamma, T = 0.5, 40.0
    t = np.linspace(0, T, 5)
    flow = ke.integrate(K0, y, t, ke.feature_toy_rate(gamma), rtol=1e-11, atol=1e-15)
    errs = []
    for eta in (0.02, 0.01):
        steps = int(round(T / eta))
        toy = ke.iterate_feature_toy(K0, y, eta, gamma, steps, every=steps // 4)
        np.testing.assert_allclose(toy.t, t)
        errs.append(np.abs(toy.kernel - flow.kernel).max())
    order = np.log2(errs[0] / errs[1])
    assert order == pytest.approx(ke.FEATURE_TOY_ORDER, abs=0.1)
    assert ke.feature_toy_rate(gamma) == 2 * gamma
    # gamma = 0: plain gradient descent with a frozen kernel
    gd = ke.iterate_feature_toy(K0, y, 0.1, 0.0, 50, every=50)
    D = y.copy()
    for _ in range(50):
        D = D - 0.1 * K0 @ D
    np.testing.assert_allclose(gd.residual[-1], D, atol=1e-12)
    np.testing.assert_allclose(gd.kernel[-1], K0, atol=1e-12)


def test_feature_toy_divergence_and_bad_input():
    from ntkdyn.base.errors import DivergenceError

    K0, y, _, _ = ke.power_law_problem(12, seed=0)
    with pytest.raises(DivergenceError) as info:
        ke.iterate_feature_toy(K0, y, 0.04, 100.0, 3000)
    assert info.value.step >= 1
    assert ke.feature_toy_max_eta(K0, y, 0.0) == pytest.approx(2 / np.linalg.eigvalsh(K0)[-1])
    with pytest.raises(ValueError):
        ke.iterate_feature_toy(K0, y, 0.0, 1.0, 10)
    with pytest.raises(ValueError):
        ke.iterate_feature_toy(-K0, y, 0.1, 1.0, 10)
    with pytest.raises(ValueError):
        ke.conserved_matrix(K0, y[:-1], 1.0)
