"""Deep linear mode dynamics: every closed form against an independent computation
(hand-written ODE integration, adaptive quadrature), its t = 0 and t -> inf limits, and bad
input."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from ntkdyn.theory import deep_linear_modes as dl

S = np.array([3.0, 2.0, 1.0, 0.5])


def _reference_u(s, u0, depth, t, lam=1.0):
    """Independent reference: du/dt = L u^(2-2/L)(s - lam u), mode by mode, tight DOP853."""
    out = np.empty((t.size, len(s)))
    for i, si in enumerate(s):
        sol = solve_ivp(lambda _, u: depth * np.abs(u) ** (2 - 2 / depth) * (si - lam * u),
                        (0, t[-1]), [u0], t_eval=t, method="DOP853", rtol=1e-12, atol=1e-15)
        out[:, i] = sol.y[0]
    return out


# ------------------------------------------------------------------ mode dynamics
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 6])
def test_mode_dynamics_matches_independent_integration(depth):
    t = np.linspace(0, 40, 81)
    for u0 in (1e-3, 5.0):   # below and above the fixed point (s_max = 3)
        u = dl.mode_dynamics(S, u0, depth, t)
        assert u.shape == (t.size, S.size)
        ref = _reference_u(S, u0, depth, t)
        np.testing.assert_allclose(u, ref, rtol=1e-7, atol=1e-9 * S.max())


def test_depth2_is_saxes_solution_and_depth1_is_exponential():
    t = np.linspace(0, 3, 31)[:, None]
    u0 = 0.01
    saxe = S * np.exp(2 * S * t) / (np.exp(2 * S * t) - 1 + S / u0)
    np.testing.assert_allclose(dl.mode_dynamics(S, u0, 2, t[:, 0]), saxe, rtol=1e-12)
    lam = np.array([0.5, 1.0, 2.0, 4.0])
    expo = S / lam + (u0 - S / lam) * np.exp(-lam * t)
    np.testing.assert_allclose(dl.mode_dynamics(S, u0, 1, t[:, 0], lam=lam), expo, rtol=1e-12)


@pytest.mark.parametrize("depth", [3, 4, 6])
def test_implicit_solution_agrees_with_solve_ivp_path(depth):
    t = np.linspace(0, 60, 61)
    u0 = np.array([1e-3, 1e-2, 0.1, 2.0])
    u = dl.mode_dynamics(S, u0, depth, t, lam=np.array([1.0, 0.5, 2.0, 1.0]))
    v = dl.mode_dynamics(S, u0, depth, t, lam=np.array([1.0, 0.5, 2.0, 1.0]), method="DOP853",
                         rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(u, v, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_mode_time_inverts_mode_dynamics(depth):
    """Round trip through the exact implicit time (quadrature for L >= 3)."""
    u0 = 1e-3
    for frac in (0.1, 0.5, 0.99):
        t_hit = dl.mode_time(S, u0, frac * S, depth)
        u = dl.mode_dynamics(S, u0, depth, t_hit)
        np.testing.assert_allclose(np.diag(u), frac * S, rtol=1e-10)
    t_hit = dl.mode_time(S, 2 * S, 1.2 * S, depth)   # from above
    u = dl.mode_dynamics(S, 2 * S, depth, t_hit)
    np.testing.assert_allclose(np.diag(u), 1.2 * S, rtol=1e-10)


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 6])
def test_limits_t0_and_tinf(depth):
    lam = np.array([1.0, 2.0, 0.5, 1.0])
    u0 = np.array([1e-2, 0.3, 10.0, 0.5])
    u = dl.mode_dynamics(S, u0, depth, np.array([0.0, 1e4]), lam=lam)
    np.testing.assert_allclose(u[0], u0, rtol=1e-13)
    np.testing.assert_allclose(u[1], S / lam, rtol=1e-10)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_zero_singular_value_decays(depth):
    t = np.linspace(0, 10, 11)
    u = dl.mode_dynamics([0.0], 0.4, depth, t, lam=2.0)[:, 0]
    ref = _reference_u([0.0], 0.4, depth, t, lam=2.0)[:, 0]
    np.testing.assert_allclose(u, ref, rtol=1e-8)
    assert np.all(np.diff(u) < 0)


def test_unsorted_times_are_returned_in_order():
    t = np.array([5.0, 0.0, 2.0, 40.0, 1.0])
    for depth in (2, 4):
        u = dl.mode_dynamics(S, 1e-2, depth, t)
        for method in ("implicit", "RK45"):
            v = dl.mode_dynamics(S, 1e-2, depth, t, method=method)
            np.testing.assert_allclose(v, u, rtol=1e-5)
        np.testing.assert_allclose(u[1], 1e-2)


def test_escape_time_exponent_and_limit():
    """Exact half-learning time scales as u0^(-(L-2)/L); t* is its small-u0 limit."""
    u0 = np.geomspace(1e-9, 1e-6, 4)
    for depth in (3, 4, 6):
        t_half = np.array([dl.mode_time([1.0], x, [0.5], depth)[0] for x in u0])
        slope = np.polyfit(np.log(u0), np.log(t_half), 1)[0]
        assert slope == pytest.approx(-(depth - 2) / depth, rel=0.1)
        est = dl.escape_time([1.0], u0[0], depth)[0]
        assert est == pytest.approx(t_half[0], rel=0.05)
    u0 = 1e-4
    np.testing.assert_allclose(dl.escape_time(S, u0, 2), dl.mode_time(S, u0, S / 2, 2), rtol=1e-12)


# ------------------------------------------------------------------ per-layer flow
def test_ode_rhs_is_minus_the_gradient_of_the_mode_loss():
    rng = np.random.default_rng(0)
    depth, m = 4, 3
    a = rng.normal(size=(depth, m))
    s, lam = np.array([1.0, 2.0, 0.3]), np.array([1.0, 0.7, 2.0])

    def loss(a):
        u = np.prod(a, axis=0)
        return np.sum(0.5 * lam * u ** 2 - s * u)

    h = 1e-6
    grad = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        e = np.zeros_like(a)
        e[idx] = h
        grad[idx] = (loss(a + e) - loss(a - e)) / (2 * h)
    np.testing.assert_allclose(dl.ode_rhs(0.0, a, s, lam, depth), -grad, rtol=1e-7, atol=1e-9)
    a[1, 0] = 0.0   # zero strengths are fine (no division)
    assert np.all(np.isfinite(dl.ode_rhs(0.0, a, s, lam, depth)))


def test_layer_dynamics_conserves_differences_and_matches_balanced():
    rng = np.random.default_rng(1)
    t = np.linspace(0, 80, 41)
    a0 = 0.1 + 0.3 * rng.random((3, S.size))
    a = dl.layer_dynamics(S, a0, t)
    sq = a ** 2
    for i in range(3):
        for j in range(i + 1, 3):
            np.testing.assert_allclose(sq[:, i] - sq[:, j],
                                       np.broadcast_to(sq[0, i] - sq[0, j], (t.size, S.size)),
                                       atol=1e-9)
    np.testing.assert_allclose(np.prod(a[-1], axis=0), S, rtol=1e-8)
    ab = dl.layer_dynamics(S, dl.initial_state(1e-2, 3, S.size), t)
    np.testing.assert_allclose(np.prod(ab, axis=1), dl.mode_dynamics(S, 1e-2, 3, t), rtol=1e-7)


def test_ntk_parameterization_is_a_time_rescaling():
    """Raw-weight flow of u = C prod w_l, integrated by hand, equals mode_dynamics at c t."""
    widths = [5, 7, 3, 2]
    depth = 3
    C = np.prod(1 / np.sqrt(widths[:-1]))
    s, w0, T = 1.5, 0.8, 400.0

    def rhs(_, w):
        u = C * np.prod(w)
        return np.array([C * np.prod(np.delete(w, l)) * (s - u) for l in range(depth)])

    t = np.linspace(0, T, 21)
    sol = solve_ivp(rhs, (0, T), np.full(depth, w0), t_eval=t, rtol=1e-12, atol=1e-14)
    u_raw = C * np.prod(sol.y, axis=0)
    c = dl.ntk_time_factor(widths, "ntk")
    assert c == pytest.approx(C ** (2 / depth), rel=1e-12)
    u_std = dl.mode_dynamics([s], u_raw[0], depth, c * t)[:, 0]
    np.testing.assert_allclose(u_raw, u_std, rtol=1e-8)
    assert dl.ntk_time_factor(widths, "standard") == 1.0


def test_growing_component_u0_and_task_modes():
    rng = np.random.default_rng(6)
    n, D = 40, 4
    X = np.sqrt(n) * np.linalg.qr(rng.normal(size=(n, D)))[0]
    beta = np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0]])
    Y = X @ beta.T
    s, U, V = dl.task_modes(X, Y)
    np.testing.assert_allclose(s, [2.0, 0.5], rtol=1e-12)
    with pytest.raises(ValueError, match="whitened"):
        dl.task_modes(X * np.array([1.0, 2.0, 1.0, 1.0]), Y)
    W1, W2 = 1e-3 * rng.normal(size=(8, D)), 1e-3 * rng.normal(size=(2, 8))
    u0 = dl.growing_component_u0(W1, W2, U, V)
    p, q = W1 @ V, W2.T @ U
    np.testing.assert_allclose(u0, [np.sum((p[:, i] + q[:, i]) ** 2) / 4 for i in range(2)])
    # the linearised flow dp = s q, dq = s p, solved exactly, has q.p -> u0 e^(2st) at late times
    t = 5.0
    for i in range(2):
        g, h = p[:, i] + q[:, i], p[:, i] - q[:, i]
        pt = 0.5 * (g * np.exp(s[i] * t) + h * np.exp(-s[i] * t))
        qt = 0.5 * (g * np.exp(s[i] * t) - h * np.exp(-s[i] * t))
        assert pt @ qt == pytest.approx(u0[i] * np.exp(2 * s[i] * t), rel=1e-3 if s[i] > 1 else 0.3)


# ------------------------------------------------------------------ bad input
def test_bad_input_raises_clear_errors():
    t = np.linspace(0, 1, 3)
    with pytest.raises(ValueError, match="depth"):
        dl.mode_dynamics(S, 0.1, 0, t)
    with pytest.raises(TypeError, match="depth"):
        dl.mode_dynamics(S, 0.1, 2.5, t)
    for u0 in (0.0, -0.1):
        for depth in (1, 2, 3):
            with pytest.raises(ValueError, match="u0"):
                dl.mode_dynamics(S, u0, depth, t)
    with pytest.raises(ValueError, match="singular values"):
        dl.mode_dynamics([1.0, -0.5], 0.1, 2, t)
    with pytest.raises(ValueError, match="lam"):
        dl.mode_dynamics(S, 0.1, 2, t, lam=0.0)
    with pytest.raises(ValueError, match="t must be >= 0"):
        dl.mode_dynamics(S, 0.1, 2, [-1.0, 0.0])
    with pytest.raises(ValueError, match="finite"):
        dl.mode_dynamics([np.nan], 0.1, 3, t)
    with pytest.raises(ValueError, match="u0"):
        dl.mode_dynamics(S, [0.1, 0.2], 3, t)
    with pytest.raises(ValueError, match="method"):
        dl.mode_dynamics(S, 0.1, 3, t, method="euler")


def test_failed_integration_raises_runtime_error(monkeypatch):
    class Failed:
        success = False
        message = "step size too small"
        y = np.zeros((4, 0))

    monkeypatch.setattr(dl, "_solve_ivp", lambda *a, **k: Failed())
    with pytest.raises(RuntimeError, match="step size too small"):
        dl.mode_dynamics(S, 0.1, 3, np.linspace(0, 1, 3), method="DOP853")
    with pytest.raises(RuntimeError, match="integration failed"):
        dl.layer_dynamics(S, np.ones((2, 4)), np.linspace(0, 1, 3))
