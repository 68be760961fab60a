"""mixture-specialization: bad input, the mixture's normalisation, a wrong R_0 fails, controls.

The central contract test runs the smoke configuration; these check what it does not."""
import numpy as np
import pytest

from ntkdyn.figures import cli
from ntkdyn.figures import mixture_specialization as ms
from ntkdyn.figures.experiment import evaluate

E = ms.EXPERIMENT


@pytest.mark.parametrize("value,expected", [("[0.0, 0.01]", "> 0"), ("[-0.1, 0.01]", "> 0"),
                                            ("[0.01, 0.001]", "sigma^2")])
def test_bad_variances_are_one_line_and_exit_2(value, expected, tmp_path, capsys):
    code = cli.main(["run", E.name, "--config", "smoke", "--out", str(tmp_path), "--no-cache",
                     "--quiet", "--scheduler", "serial", "--set", f"variances={value}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "variances" in err and expected in err


def test_mixture_inputs_are_balanced_with_relative_noise_variance():
    n, d, C, var = 4000, 50, 10, 0.01
    seeds = np.random.SeedSequence(5).spawn(2)
    X, Y, centres = ms.mixture_inputs(n, d, C, var, seeds[0], seeds[1])
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 1.0, rtol=1e-12)
    assert np.all(Y.sum(axis=0) == n // C)
    noise = X / np.sqrt(d) - Y @ centres
    assert np.mean(np.sum(noise ** 2, axis=1)) == pytest.approx(var, rel=0.02)
    X2, _, centres2 = ms.mixture_inputs(n, d, C, 0.1, seeds[0], seeds[1])
    np.testing.assert_array_equal(centres, centres2)  # paired across variances
    np.testing.assert_allclose((X2 / np.sqrt(d) - Y @ centres) / np.sqrt(0.1),
                               noise / np.sqrt(var), rtol=1e-9, atol=1e-12)


def test_early_step_skips_step_one_and_refuses_a_loss_that_never_falls():
    assert ms.early_step(np.array([1.0, 0.5, 0.95, 0.85]), 0.9) == 3
    with pytest.raises(ValueError, match="never fell"):
        ms.early_step(np.array([1.0, 0.99, 0.98]), 0.9)


@pytest.fixture(scope="module")
def smoke():
    config = E.config("smoke")
    return config, E.compute_serial(config)


def test_a_three_percent_error_in_R0_fails(smoke, monkeypatch):
    config, _ = smoke
    true = ms.gated_growth_from_rest

    def wrong(*args, **kwargs):
        B0 = true(*args, **kwargs).copy()
        B0[np.diag_indices(B0.shape[0])] *= 1.03
        return B0

    monkeypatch.setattr(ms, "gated_growth_from_rest", wrong)
    verdict = evaluate(E, config, E.compute_serial(config))
    failed = " ".join(verdict.failures)
    assert not verdict.ok
    for v in config["variances"]:
        assert f"early_ratio_over_theory_dev_{ms.tag(v)}" in failed


def test_controls_leave_the_result_alone_and_move_only_the_theory(smoke):
    config, result = smoke
    before = {k: np.array(v, copy=True) for k, v in result.items()}
    declared = E.declared(config)
    for control in E.controls:
        numbers = E.measure(control.apply(result, config))
        failed = [k for k, x in numbers.items()
                  if declared[k].kind == "agreement" and not declared[k].target.holds(x)]
        assert failed, control.name
    for k, v in before.items():
        np.testing.assert_array_equal(result[k], v)
    # the K_V control's ratio is 1: K_V is shared by every head
    np.testing.assert_allclose(result["kv_ratio"], 1.0, rtol=1e-12)
