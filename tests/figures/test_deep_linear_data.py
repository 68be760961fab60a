"""deep-linear-data: stage-like learning in order of s, the parameter-free depth-2 prediction,
step-wise alignment patterns matching theory (the whitened set overshoots), target placement."""
import matplotlib.figure
import numpy as np

from ntkdyn.base.samplers import orthonormal_frame
from ntkdyn.figures import deep_linear_data as exp
from ntkdyn.figures.experiment import evaluate


def test_smoke_numbers_overshoot_and_plot():
    E = exp.EXPERIMENT
    config = E.config("smoke")
    result = E.compute_serial(config)
    verdict = evaluate(E, config, result)
    assert verdict.ok, verdict.failures
    # the whitened set overshoots (in GD and in theory), the matched one does not
    A1 = result["set1_A_gd"]
    assert A1.max() - A1[-1] > 0.05
    assert verdict.numbers["alignment_rises_set0"] == 1.0
    assert isinstance(E.plot(result), matplotlib.figure.Figure)


def test_a_mode_never_learned_fails_explicitly():
    t = np.linspace(0.0, 1.0, 5)
    u = np.column_stack([t, 0.1 * t])
    half = exp.half_times(t, u, np.array([0.5, 0.5]))
    assert half[0] == 0.5 and np.isnan(half[1])


def test_anisotropic_inputs_have_the_requested_covariance():
    rng = np.random.default_rng(0)
    V = orthonormal_frame(5, 5, rng)
    lam = np.array([3.0, 1.0, 0.5, 0.2, 0.1])
    X = exp.anisotropic_inputs(40, V, lam, rng)
    np.testing.assert_allclose(X.T @ X / 40, (V * lam) @ V.T, atol=1e-12)
