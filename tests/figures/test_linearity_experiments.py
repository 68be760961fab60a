"""Experiments of the transition to linearity: reduced-scale targets, smoke runs, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ntkdyn.figures import hessian_width, kernel_change, weight_change
from ntkdyn.figures.cli import main
from ntkdyn.figures.registry import experiments
from ntkdyn.numerics.memory import MemoryBudgetError

MODULES = (hessian_width, kernel_change, weight_change)


def test_registered_with_matching_configurations():
    registry = experiments()
    for module in MODULES:
        assert registry[module.NAME] is module
        assert set(module.QUICK) == set(module.PAPER)


def test_hessian_width_reduced_scale():
    config = dict(hessian_width.QUICK, widths=[2 ** k for k in range(6, 15)],
                  activations=["tanh", "relu"], seeds=3, fit_from=2 ** 9,
                  deep_widths=[64, 128, 256, 512], deep_activations=["tanh"], deep_seeds=2,
                  deep_fit_from=64)
    result = hessian_width.compute(config)
    agr = hessian_width.agreement(result)
    assert agr["relu_exact_rel_err"] < 1e-12
    assert abs(agr["slope_raw_relu"] + 0.5) < 1e-9
    assert 0.85 < agr["law_ratio_tanh"] < 1.15
    assert abs(agr["slope_sqrtlog_tanh"] + 0.5) < 0.1
    assert agr["grad_variation_tanh"] < 0.05 and agr["grad_variation_relu"] < 0.05
    assert abs(agr["frobenius_slope_tanh"]) < 0.05
    # Claim: three layers, slope within 0.1 of -1/2 while ||grad f|| varies by under 10 %.
    assert abs(agr["slope_three_layer_tanh"] + 0.5) < 0.1
    assert agr["grad_variation_three_layer_tanh"] < 0.1
    fig = hessian_width.plot(result)
    assert len(fig.axes) == 4


def test_kernel_change_reduced_scale():
    """Linear output: the change falls at least like m^(-1/2); tanh output: it does not fall."""
    config = dict(kernel_change.QUICK, n=30, widths=[64, 128, 256, 512], seeds=1, fit_from=64,
                  variants=["linear-tanh", "output-tanh", "bottleneck"])
    result = kernel_change.compute(config)
    agr = kernel_change.agreement(result)
    assert agr["all_converged"] == 1.0
    assert agr["slope_linear-tanh"] <= -0.5
    assert abs(agr["slope_output-tanh"]) < 0.25
    assert agr["kernel_change_widest_output-tanh"] > 10 * agr["kernel_change_widest_linear-tanh"]
    assert agr["kernel_change_widest_bottleneck"] > 0.2
    losses = result["losses"]
    assert np.all(losses[..., -1] <= config["fraction"])
    kernel_change.plot(result)


def test_weight_change_reduced_scale_and_lazy_prediction():
    config = dict(weight_change.QUICK, n=30, widths=[64, 256, 1024, 4096], seeds=1,
                  variants=["linear-relu"])
    result = weight_change.compute(config)
    agr = weight_change.agreement(result)
    assert -0.6 < agr["slope_relative_linear-relu"] < -0.4
    assert abs(agr["slope_absolute_linear-relu"]) < 0.1
    assert abs(agr["prediction_ratio_widest_linear-relu"] - 1) < 0.05
    # ||w_0|| ~ sqrt(#params) = sqrt(m (d + 1)).
    P = np.asarray(config["widths"]) * (config["d"] + 1)
    np.testing.assert_allclose(result["weight_norm"][0, :, 0], np.sqrt(P), rtol=0.05)
    weight_change.plot(result)
    with pytest.raises(ValueError, match="variants"):
        weight_change.runs(dict(config, variants=["output-tanh"]))


def test_configurations_that_cannot_be_fitted_are_refused():
    with pytest.raises(ValueError, match="fit_from"):
        hessian_width.runs(dict(hessian_width.QUICK, widths=[64, 128], fit_from=128))
    with pytest.raises(ValueError, match="variants"):
        kernel_change.runs(dict(kernel_change.QUICK, variants=["linear-sigmoid"]))
    with pytest.raises(ValueError, match="widths"):
        weight_change.runs(dict(weight_change.QUICK, widths=[64]))


def test_too_wide_is_refused_before_allocating():
    point = dict(hessian_width.runs(hessian_width.QUICK)[0], width=2 ** 40)
    with pytest.raises(MemoryBudgetError, match="needs about"):
        hessian_width.run(point)
    deep = dict(point, depth=3, width=2 ** 20)  # 2^40 weights in the middle layer
    with pytest.raises(MemoryBudgetError):
        hessian_width.run(deep)
    with pytest.raises(MemoryBudgetError):
        kernel_change.run(dict(kernel_change.runs(kernel_change.QUICK)[0], width=2 ** 36))


def test_cli_reports_a_too_wide_network_in_one_line(tmp_path, capsys):
    code = main(["run", "hessian-width", "--out", str(tmp_path), "--quiet",
                 "--set", f"widths=[{2 ** 40}, {2 ** 41}]", "--set", "seeds=1",
                 "--set", "activations=[\"tanh\"]", "--set", "deep_widths=[8, 16]",
                 "--set", "deep_fit_from=8", "--set", "deep_seeds=1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "needs about" in err and "Traceback" not in err
    assert not (tmp_path / "hessian-width.png").exists()


def test_dataset_targets_are_reachable_by_a_tanh_output():
    from ntkdyn.numerics.synthetic import sphere_tanh_teacher
    data = sphere_tanh_teacher(50, 10, 3)
    X, Y = data.X, data.Y
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), math.sqrt(10))
    assert np.all(np.abs(Y) < 0.5)
