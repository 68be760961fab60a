"""ntk-width at reduced scale: the error falls like width^(-1/2)."""
import matplotlib.figure

from ntkdyn.figures import ntk_width


def test_error_slope_is_minus_one_half_at_reduced_scale():
    config = dict(ntk_width.QUICK, log2_widths=[6, 7, 8, 9, 10, 11, 12], depths=[2, 3], seeds=3)
    result = ntk_width.compute(config)
    numbers = ntk_width.agreement(result)
    low, high = ntk_width.TARGETS["slope_fit"]
    assert low <= numbers["slope_fit"] <= high
    assert isinstance(ntk_width.plot(result), matplotlib.figure.Figure)


def test_same_config_same_result():
    config = dict(ntk_width.QUICK, log2_widths=[5, 6], seeds=2, n=6)
    a, b = ntk_width.compute(config), ntk_width.compute(config)
    assert (a["errors"] == b["errors"]).all()
