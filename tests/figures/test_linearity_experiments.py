"""Experiments of the transition to linearity: theory sides, seeding, reduced runs, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ntkdyn.figures import hessian_width, kernel_change, weight_change
from ntkdyn.figures.cli import main
from ntkdyn.figures.experiment import evaluate, point_seed
from ntkdyn.figures.registry import experiments
from ntkdyn.numerics.memory import MemoryBudgetError
from ntkdyn.theory import linearity as lin

MODULES = (hessian_width, kernel_change, weight_change)


def _target(experiment, config, name):
    return experiment.declared(config)[name].target


def test_registered_with_matching_configurations():
    registry = experiments()
    for module in MODULES:
        E = module.EXPERIMENT
        assert registry[E.name] is E
        assert set(E.config("smoke")) == set(E.config("quick")) == set(E.config("paper"))


def test_hessian_width_reduced_run_relu_identity_and_theory_side():
    E = hessian_width.EXPERIMENT
    config = dict(E.config("smoke"), widths=[2 ** k for k in range(6, 11)],
                  activations=["tanh", "relu"], seeds=2, fit_from=2 ** 8,
                  deep_widths=[16, 32], deep_activations=["relu"], deep_seeds=1,
                  deep_fit_from=16)
    result = E.compute_serial(config)
    verdict = evaluate(E, config, result)
    assert _target(E, config, "relu_exact_rel_err").holds(verdict.numbers["relu_exact_rel_err"])
    assert E.declared(config)["relu_exact_rel_err"].kind == "identity"
    # The theory side comes from theory code alone.
    np.testing.assert_array_equal(
        result["theory_norm"][1], lin.relu_hessian_norm(result["widths"], 10, math.sqrt(10)))
    assert float(result["predicted_exponent"]) == lin.SCALING_EXPONENTS["hessian_norm"]
    assert len(E.plot(result).axes) == 4


def test_kernel_change_reduced_run_meets_the_declared_targets():
    """Linear output: a small change inside the bound; tanh output: the predicted Theta(1)."""
    E = kernel_change.EXPERIMENT
    config = dict(E.config("smoke"), n=20, widths=[64, 128, 256], seeds=1, fit_from=64,
                  variants=["linear-tanh", "output-tanh"])
    result = E.compute_serial(config)
    verdict = evaluate(E, config, result)
    for name in ("all_converged", "change_over_bound_widest_linear-tanh",
                 "change_minus_theory_widest_output-tanh"):
        assert verdict.holds[name], (name, verdict.numbers[name])
    assert np.all(result["losses"][..., -1] <= config["fraction"])
    assert verdict.controls["constant_kernel"]["fails"]
    E.plot(result)


def test_train_run_shares_the_data_and_draws_its_own_weights():
    config = dict(kernel_change.EXPERIMENT.config("smoke"), n=8, widths=[16, 32], fit_from=16,
                  variants=["linear-tanh"])
    points = kernel_change.runs(config)[:2]
    a, b = (kernel_change.train_run(p, point_seed(config, p)) for p in points)
    np.testing.assert_array_equal(a["targets"], b["targets"])
    assert a["weight_norm"] != b["weight_norm"]
    again = kernel_change.train_run(points[0], point_seed(config, points[0]))
    assert again["kernel_change"] == a["kernel_change"]


def test_weight_change_reduced_run_and_lazy_prediction():
    E = weight_change.EXPERIMENT
    config = dict(E.config("smoke"), n=20, widths=[64, 256, 1024], variants=["linear-relu"])
    result = E.compute_serial(config)
    verdict = evaluate(E, config, result)
    # ||w_0|| ~ sqrt(#params) = sqrt(m (d + 1)); the weights move as the linearised model's.
    np.testing.assert_allclose(result["theory_weight_norm"], np.sqrt(config["widths"])
                               * math.sqrt(config["d"] + 1), rtol=1e-12)
    for name in ("prediction_ratio_widest_linear-relu", "weight_norm_ratio_linear-relu"):
        assert _target(E, config, name).holds(verdict.numbers[name]), verdict.numbers[name]
    E.plot(result)
    with pytest.raises(ValueError, match="variants"):
        E.runs(dict(config, variants=["output-tanh"]))


def test_controls_leave_the_result_alone():
    E = weight_change.EXPERIMENT
    config = dict(E.config("smoke"), n=10, widths=[16, 32], variants=["linear-tanh"])
    result = E.compute_serial(config)
    before = {k: np.array(v, copy=True) for k, v in result.items()}
    for control in E.controls:
        control.apply(dict(result), config)
    for k, v in before.items():
        np.testing.assert_array_equal(result[k], v)


def test_configurations_that_cannot_be_fitted_are_refused():
    with pytest.raises(ValueError, match="fit_from"):
        hessian_width.runs(dict(hessian_width.QUICK, widths=[64, 128], fit_from=128))
    with pytest.raises(ValueError, match="variants"):
        kernel_change.runs(dict(kernel_change.QUICK, variants=["linear-sigmoid"]))
    with pytest.raises(ValueError, match="widths"):
        weight_change.runs(dict(weight_change.QUICK, widths=[64]))


def test_too_wide_is_refused_before_allocating():
    config = hessian_width.QUICK
    point = dict(hessian_width.runs(config)[0], width=2 ** 40)
    with pytest.raises(MemoryBudgetError, match="needs about"):
        hessian_width.run(point, point_seed(config, point))
    deep = dict(point, depth=3, width=2 ** 20)  # 2^40 weights in the middle layer
    with pytest.raises(MemoryBudgetError):
        hessian_width.run(deep, point_seed(config, deep))
    wide = dict(kernel_change.runs(kernel_change.QUICK)[0], width=2 ** 36)
    with pytest.raises(MemoryBudgetError):
        kernel_change.run(wide, point_seed(kernel_change.QUICK, wide))


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


def test_tanh_output_kernel_change_is_zero_when_the_outputs_do_not_move():
    K = np.array([[2.0, 0.5], [0.5, 1.0]])
    g = np.array([0.3, -0.2])
    assert lin.tanh_output_kernel_change(K, g, g) == 0.0
    # Outputs moving from 0 to y = +-1/2 scale the kernel by (3/4)^2: change 7/16.
    assert lin.tanh_output_kernel_change(K, [0.0, 0.0], [0.5, -0.5]) == pytest.approx(7 / 16)
