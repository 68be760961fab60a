"""kgd-baselines: the aKGD time change against an explicit iteration, the hitting-time
interpolation, the controls' effect on a tiny run, and bad input (one line, exit 2)."""
import numpy as np
import pytest

from ntkdyn.figures import cli
from ntkdyn.figures.experiment import evaluate
from ntkdyn.figures.kgd_baselines import (CONTROLS, EXPERIMENT, early_deviation, gamma_view,
                                          network_time_to_loss)
from ntkdyn.theory.kernel_regime import FrozenKernelRegime, rescaled_kernel_time, train_loss_curve

TINY = dict(EXPERIMENT.config("smoke"), n_train=40, width=64, steps=60, num_records=6,
            early_time=8.0)


def test_akgd_is_kgd_on_k0_at_the_rescaled_time():
    """Small-step iteration of dr/dt = -(c(t)/n) K r against the closed form at tau(t)."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((12, 30))
    K, Y = A @ A.T / 30, rng.standard_normal((12, 1))
    times, scales = np.array([0.0, 2.0, 5.0]), np.array([1.0, 1.4, 1.9])
    dt, r = 1e-4, -Y.copy()
    for j in range(int(round(5.0 / dt))):
        c = np.interp((j + 0.5) * dt, times, scales)
        r = r - dt * c * K @ r / 12
    expected = float(np.sum(r * r) / 24)
    got = train_loss_curve(FrozenKernelRegime(K, Y), rescaled_kernel_time(times, scales, [5.0]))
    assert got[0] == pytest.approx(expected, rel=1e-4)  # explicit Euler: O(dt) error


def test_network_time_to_loss_interpolates_log_loss():
    t = np.arange(6.0)
    losses = np.exp(-0.5 * t)
    assert network_time_to_loss(t, losses, np.exp(-0.5 * 2.3)) == pytest.approx(2.3)
    assert network_time_to_loss(t, losses, 1e-9) == np.inf
    assert network_time_to_loss(t, losses, 2.0) == 0.0


def test_controls_replace_the_theory_kernel_and_move_the_early_curve():
    result = EXPERIMENT.compute_serial(TINY)
    v = evaluate(EXPERIMENT, TINY, result)
    assert set(v.controls) == {c.name for c in CONTROLS}
    tol = EXPERIMENT.declared(TINY)["early_loss_rel_dev"].target.high
    assert v.numbers["early_loss_rel_dev"] <= tol
    scaled = CONTROLS[0].apply(result, TINY)
    assert scaled["K_init"] is not result["K_init"]
    np.testing.assert_allclose(scaled["K_init"], 1.05 * result["K_init"])
    assert np.max(early_deviation(gamma_view(scaled, 0))) > tol
    # both gammas start from the same weights, so from the same kernel
    np.testing.assert_array_equal(result["K_init"][0], result["K_init"][1])


@pytest.mark.parametrize("setting,message", [
    ("dataset=\"nope\"", "key 'dataset' of kgd-baselines"),
    ("gammas=[4.0, 1.0]", "gammas must be [network, rich]"),
    ("loss_fraction=0", "'loss_fraction' of kgd-baselines expects"),
    ("lr=100.0", "gradient descent diverges"),
])
def test_bad_input_is_one_line_and_exit_status_2(setting, message, capsys, tmp_path):
    argv = ["run", "kgd-baselines", "--config", "smoke", "--no-cache", "--scheduler", "serial",
            "--set", setting, "--set", "steps=20", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
