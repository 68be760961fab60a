"""optimal-feature-evolution: what the central smoke run does not cover (a control's effect, the
up-front refusal of an unstable gamma, exit 2 on the command line)."""
import subprocess
import sys

import numpy as np
import pytest

from ntkdyn.figures.experiment import evaluate
from ntkdyn.figures.optimal_feature_evolution import EXPERIMENT


@pytest.fixture(scope="module")
def smoke():
    config = EXPERIMENT.config("smoke")
    return config, EXPERIMENT.compute_serial(config)


def test_eigen_projection_control_fails_only_the_kernel_end_point(smoke):
    config, result = smoke
    declared = EXPERIMENT.declared(config)
    control = {c.name: c for c in EXPERIMENT.controls}["eigen_projection"]
    wrong = EXPERIMENT.measure(control.apply(result, config))
    right = EXPERIMENT.measure(result)
    for name in ("kinf_rel_err", "kinf_rel_err_random_target", "extrapolated_kinf_rel_err"):
        assert declared[name].target.holds(right[name])
        assert not declared[name].target.holds(wrong[name])
    # the trajectory does not involve K_inf: unchanged
    assert wrong["trajectory_kernel_rel_err"] == right["trajectory_kernel_rel_err"]
    assert "kinf_theory" in result and result["kinf_theory"].flags.writeable


def test_controls_do_not_mutate_the_result(smoke):
    config, result = smoke
    before = {k: np.array(v, copy=True) for k, v in result.items()}
    for control in EXPERIMENT.controls:
        control.apply(result, config)
    for k, v in before.items():
        np.testing.assert_array_equal(result[k], v)
    assert evaluate(EXPERIMENT, config, result).failures == []


def test_unstable_gamma_refused_up_front():
    config = dict(EXPERIMENT.config("smoke"), gammas=[0.0, 1.0, 30.0])
    with pytest.raises(ValueError, match="would diverge"):
        EXPERIMENT.compute_serial(config)


def test_cli_unstable_gamma_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ntkdyn.figures.cli", "run", "optimal-feature-evolution",
         "--config", "smoke", "--no-cache", "--quiet", "--out", str(tmp_path),
         "--set", "gammas=[0,1,30]"], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "would diverge" in lines[0]
