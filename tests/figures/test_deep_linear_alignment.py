"""deep-linear-alignment: 1/sqrt(D) at initialisation, L / sqrt(L^2 + D - 1) after training from
a small init, the L = 2 deviation at larger sigma predicted by the initial kernel."""
import matplotlib.figure
import numpy as np

from ntkdyn.figures import deep_linear_alignment as exp
from ntkdyn.figures.experiment import evaluate


def test_smoke_numbers_plot_and_initial_kernel_scale():
    E = exp.EXPERIMENT
    config = E.config("smoke")
    result = E.compute_serial(config)
    verdict = evaluate(E, config, result)
    assert verdict.ok, verdict.failures
    # the deviation at the larger sigma is clearly negative: the random bulk lowers alignment,
    # by more than the smallest-sigma bound allows
    bound = E.declared(config)["final_rel_dev_L2"].target
    assert result["A_L2_s1"][-1] / float(result["Ainf_L2"]) - 1.0 < bound.low
    # the measured initial kernel scale is the expected L sigma^(2(L-1)) N^(L-1) to ~20%
    for j in range(2):
        ratio = result[f"bulk_L3_s{j}"] / result[f"bulk_expected_L3_s{j}"]
        assert 0.6 < ratio < 1.4
    assert np.all(np.isfinite(result["A_L3_s0"]))
    assert isinstance(E.plot(result), matplotlib.figure.Figure)


def test_runs_share_the_data_and_differ_in_weights():
    E = exp.EXPERIMENT
    config = E.config("smoke")
    from ntkdyn.figures.experiment import point_seed
    a, b = exp.runs(config)[1:3]
    Xa = exp._data(a, point_seed(config, a))[0]
    Xb = exp._data(b, point_seed(config, b))[0]
    np.testing.assert_array_equal(Xa, Xb)
    assert point_seed(config, a).spawn_key != point_seed(config, b).spawn_key
