"""deep-linear-alignment at reduced scale: 1/sqrt(D) at initialisation, L / sqrt(L^2 + D - 1)
after training from a small init, the deviation growing with sigma, silent alignment."""
import matplotlib.figure
import numpy as np

from ntkdyn.figures import deep_linear_alignment as exp


def test_reduced_config_meets_targets():
    config = dict(exp.QUICK, depths=[1, 2, 3], sigmas=[[0.01], [0.003, 0.03], [0.003, 0.03]],
                  lrs=[0.5, 0.1, 0.08])
    result = exp.compute(config)
    numbers = exp.agreement(result)
    for name in ("init_dev_L1", "init_dev_L2", "final_rel_dev_L1", "final_rel_dev_L2",
                 "final_rel_dev_L3", "dev_shrinks_with_sigma", "silent_loss_frac_L2",
                 "silent_loss_frac_L3"):
        low, high = exp.TARGETS[name]
        assert low <= numbers[name] <= high, (name, numbers[name])
    # the deviation at the larger sigma is clearly negative: the random bulk lowers alignment
    assert numbers["final_rel_dev_largest_sigma_L2"] < -0.01
    # the measured initial kernel scale is the expected L sigma^(2(L-1)) N^(L-1) to ~20%
    for j in range(2):
        ratio = result[f"bulk_L3_s{j}"] / result[f"bulk_expected_L3_s{j}"]
        assert 0.6 < ratio < 1.4
    assert isinstance(exp.plot(result), matplotlib.figure.Figure)
    assert np.all(np.isfinite(result["A_L3_s0"]))
