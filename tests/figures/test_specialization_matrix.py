"""specialization-matrix: whitening, the linear heads' shared structure, controls, bad input."""
import numpy as np
import pytest

from ntkdyn.base.alignment import kernel_specialization_matrix
from ntkdyn.figures import cli
from ntkdyn.figures import specialization_matrix as sm
from ntkdyn.figures.experiment import point_seed
from ntkdyn.numerics.kernels import empirical_ntk
from ntkdyn.numerics.networks import MLP
from ntkdyn.theory.two_layer_alignment import linear_head_kernels


def test_whiten_gives_identity_covariance():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 8)) @ rng.standard_normal((8, 8)) + 3.0
    Xw = sm.whiten(X)
    assert Xw.shape == (50, 8)
    assert np.allclose(Xw.T @ Xw, 50 * np.eye(8), atol=1e-9)
    assert np.allclose(Xw.mean(axis=0), 0.0, atol=1e-12)


def test_linear_heads_are_one_mixture_and_ksm_is_one_for_equal_readout_norms():
    """Independent of the experiment's code path: per-head NTKs by the layer-wise factorisation
    against w_c Phi_1 + Phi_2, and readout rows rescaled to one norm give KSM = 1."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 6))
    Y = np.eye(4)[np.arange(40) % 4] - 0.25
    net = MLP([6, 32, 4], "linear")
    W1, W2 = net.init(rng)
    w, shared = linear_head_kernels([W1, W2], X)
    K = empirical_ntk(net, [W1, W2], X, heads="each")
    assert np.allclose(K, np.einsum("cl,lab->cab", w, shared), rtol=1e-12, atol=1e-12)
    W2eq = W2 / np.linalg.norm(W2, axis=1, keepdims=True)
    Keq = empirical_ntk(net, [W1, W2eq], X, heads="each")
    assert np.allclose(kernel_specialization_matrix(Keq, Y), 1.0, atol=1e-12)
    assert np.max(np.abs(kernel_specialization_matrix(K, Y) - 1.0)) > 1e-4


def _small_result():
    config = dict(sm.SMOKE, datasets=["synthetic-mixture"], seeds=1, n_train=40, width=32,
                  steps=20)
    points = sm.runs(config)
    return config, sm.combine(config, [sm.run(p, point_seed(config, p)) for p in points])


def test_controls_break_the_rate_agreement_and_leave_the_result_alone():
    config, result = _small_result()
    declared = sm.EXPERIMENT.declared(config)
    before = result["ksm_rate_theory"].copy()
    good = sm.measure(result)
    for control in sm.CONTROLS:
        bad = sm.measure(control.apply(dict(result), config))
        for act in ("relu", "linear"):
            key = f"ksm_rate_rel_err_{act}_mixture"
            assert declared[key].target.holds(good[key])
            assert not declared[key].target.holds(bad[key]), (control.name, key)
    assert np.array_equal(result["ksm_rate_theory"], before)


@pytest.mark.parametrize("setting,message", [
    ("datasets=[\"no-such-data\"]", "got ['no-such-data']"),
    ("classes=[0,0]", "classes"),
])
def test_bad_input_is_one_line_and_exit_status_2(setting, message, capsys, tmp_path):
    argv = ["run", "specialization-matrix", "--config", "smoke", "--set", setting, "--out",
            str(tmp_path), "--no-cache"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
