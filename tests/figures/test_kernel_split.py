"""kernel-split: the numerics-side K_V / K_W, the controls' effect and bad input."""
import numpy as np
import pytest

from ntkdyn.figures import kernel_split as ks
from ntkdyn.figures.cli import main
from ntkdyn.figures.experiment import evaluate
from ntkdyn.numerics.kernels import empirical_ntk
from ntkdyn.numerics.networks import MLP
from ntkdyn.theory.two_layer_ntk import two_layer_ntk_terms

E = ks.EXPERIMENT


def test_layer_kernels_are_the_two_ntk_terms():
    X, _ = ks.random_label_task(20, 5, 0)
    net = MLP([5, 30, 1], "relu")
    params = net.init(np.random.default_rng(1))
    K_V, K_W = ks.layer_kernels(net, params, X)
    np.testing.assert_allclose(K_V + K_W, empirical_ntk(net, params, X), rtol=1e-12)
    feature, gated = two_layer_ntk_terms(*params, X)
    np.testing.assert_allclose(K_V, feature, rtol=1e-12, atol=1e-14)


def test_random_labels_are_balanced_and_independent_of_inputs():
    X, Y = ks.random_label_task(30, 4, 3)
    assert Y.shape == (30, 1) and Y.sum() == 0 and set(np.unique(Y)) == {-1.0, 1.0}
    X2, Y2 = ks.random_label_task(30, 4, 4)
    assert not np.array_equal(Y, Y2) and not np.array_equal(X, X2)


@pytest.fixture(scope="module")
def small():
    config = dict(E.config("smoke"), n_train=40, d=12, width=64, steps=40, num_records=4,
                  seeds=1)
    return config, E.compute_serial(config)


def test_controls_move_the_agreement_numbers(small):
    config, result = small
    verdict = evaluate(E, config, result)
    declared = E.declared(config)
    for task in ks.TASKS:
        key = f"rate_fd_over_theory_dev_{task}"
        assert declared[key].target.holds(verdict.numbers[key])
        assert not declared[key].target.holds(
            verdict.controls["rates_scaled_1.05"]["agreement"][key])
        key = f"anisotropy_V_fd_over_theory_dev_{task}"
        assert not declared[key].target.holds(verdict.controls["swap_V_W"]["agreement"][key])
    # the theory rates of B_V(y) and B_W(y) coincide (exact for ReLU at t = 0)
    th = result["rate_theory"]
    np.testing.assert_allclose(th[..., 0], th[..., 2], rtol=1e-10)


def test_bad_input_one_line_exit_2_and_non_binary_task_refused(tmp_path, capsys):
    code = main(["run", "kernel-split", "--config", "smoke", "--out", str(tmp_path / "o"),
                 "--set", "dataset=imagenet"])
    err = capsys.readouterr().err
    assert code == 2 and "dataset" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="binary"):  # before any work
        E.runs(dict(E.config("smoke"), classes=None))
