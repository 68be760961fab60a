"""toy-kernel-evolution at smoke scale: ODE vs closed forms, lam(inf), the frozen kernel's closed
form, acceleration, alignment; each control fails an agreement target."""
import matplotlib.figure
import numpy as np

from ntkdyn.figures import toy_kernel_evolution as exp
from ntkdyn.figures.experiment import evaluate

E = exp.EXPERIMENT


def test_smoke_meets_targets_and_controls_are_rejected():
    config = E.config("smoke")
    result = E.compute_serial(config)
    verdict = evaluate(E, config, result)
    assert verdict.ok, verdict.failures
    assert all(c["fails"] for c in verdict.controls.values())
    # the evolving kernel concentrates on the target more than the frozen one
    assert result["overlap_eta2"][-1] > result["overlap_eta0"][-1]
    assert np.all(np.isfinite(result["loss_eta2"]))
    assert isinstance(E.plot(result), matplotlib.figure.Figure)


def test_controls_leave_the_result_unchanged():
    config = E.config("smoke")
    result = E.compute_serial(config)
    before = {k: np.array(v, copy=True) for k, v in result.items()}
    for control in E.controls:
        control.apply(dict(result), config)
    for key, value in before.items():
        np.testing.assert_array_equal(result[key], value)
