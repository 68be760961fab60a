"""ntk-width: the error falls like width^(-1/2), and the inputs are shared by every run."""
import matplotlib.figure
import numpy as np

from ntkdyn.figures import ntk_width
from ntkdyn.figures.experiment import evaluate, point_seed
from ntkdyn.theory.relu_ntk import NTK_FLUCTUATION_EXPONENT

E = ntk_width.EXPERIMENT


def test_smoke_slope_is_the_theory_exponent_and_the_plot_draws():
    config = E.config("smoke")
    result = E.compute_serial(config)
    verdict = evaluate(E, config, result)
    target = E.declared(config)["slope_fit_minus_theory"].target
    assert target.holds(verdict.numbers["slope_fit_minus_theory"])
    assert float(result["predicted_exponent"]) == NTK_FLUCTUATION_EXPONENT
    assert isinstance(E.plot(result), matplotlib.figure.Figure)


def test_same_config_same_result_and_shared_inputs():
    config = dict(E.config("smoke"), log2_widths=[5, 6], seeds=2, n=6)
    a, b = E.compute_serial(config), E.compute_serial(config)
    assert np.array_equal(a["kernels"], b["kernels"])
    points = E.runs(config)
    runs = [E.run(p, point_seed(config, p)) for p in points[:2]]
    assert np.array_equal(runs[0]["X"], runs[1]["X"])          # one data set for the sweep
    assert not np.array_equal(runs[0]["K"], runs[1]["K"])      # independent weights per run
