"""deep-linear-modes: GD on decoupled balanced weights is the scalar map, within 0.5% of the ODE
with an O(lr) error; from small random weights the rise time follows the ODE's rate."""
import matplotlib.figure
import numpy as np

from ntkdyn.figures import deep_linear_modes as exp
from ntkdyn.figures.experiment import evaluate
from ntkdyn.numerics.deep_linear import decoupled_init, mode_strengths


def test_smoke_numbers_plot_and_a_wrong_rate():
    E = exp.EXPERIMENT
    config = E.config("smoke")
    result = E.compute_serial(config)
    verdict = evaluate(E, config, result)
    assert verdict.ok, verdict.failures
    assert isinstance(E.plot(result), matplotlib.figure.Figure)
    # a 4% error in the rate is caught by the parameter-free rise time
    wrong = E.measure(exp._rate_control(1.04)(result, config))
    target = E.declared(config)["random_rise_time_err_L2"].target
    assert not target.holds(wrong["random_rise_time_err_L2"])


def test_missed_crossing_is_nan_not_dropped():
    t = np.linspace(0.0, 1.0, 5)
    u = np.column_stack([t, 0.1 * t])
    out = exp.crossing_times(t, u, np.array([0.5, 0.5]))
    assert out[0] == 0.5 and np.isnan(out[1])


def test_scalar_map_is_gd_on_one_mode():
    s = np.array([2.0, 0.5])
    u = exp.scalar_map(s, 0.5, 2, 0.01, 3)
    a = 0.5
    for _ in range(3):
        a = a + 0.01 * a * (s - a ** 2)
    np.testing.assert_allclose(u[-1], a ** 2, rtol=1e-14)


def test_ntk_parameterization_follows_the_rescaled_mode_ode():
    """GD on an NTK-parameterised linear net, raw weights decoupled and balanced, tracks
    mode_dynamics in the time ntk_time_factor(widths) * t
    (ntkdyn.theory.symbolic.ntk_time_rescaling)."""
    from ntkdyn.numerics.networks import MLP
    from ntkdyn.numerics.synthetic import linear_teacher
    from ntkdyn.numerics.training import gradient_descent
    from ntkdyn.theory.deep_linear_modes import mode_dynamics, ntk_time_factor

    s = np.array([3.0, 1.0])
    widths = [4, 8, 8, 2]
    data = linear_teacher(16, 4, 2, s, seed=1)
    U, V = data.info["U"], data.info["V"]
    rng = np.random.default_rng(2)
    params = decoupled_init(3, U, V, 8, 2.0, rng)
    net = MLP(widths, activation="linear", parameterization="ntk")
    C = float(np.prod(net.multipliers))
    c = ntk_time_factor(widths, "ntk")
    lr = 0.01 / c
    traj = gradient_descent(net, params, data.X, data.Y, lr, 1500, every=5,
                            record={"u": lambda _n, p, _x, _y: C * mode_strengths(p, U, V)})
    u_gd = traj.observables["u"]
    u_ode = mode_dynamics(s, u_gd[0], 3, c * traj.record_times)
    assert u_gd[-1, 1] > 0.9 * s[1]                     # the run covers the learning
    assert np.max(np.abs(u_gd - u_ode)) < 0.01 * s.max()
    # without the rescaling the same curves are far apart
    assert np.max(np.abs(u_gd - mode_dynamics(s, u_gd[0], 3, traj.record_times))) > 0.1 * s.max()
