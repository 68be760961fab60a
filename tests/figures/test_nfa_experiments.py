"""The neural-feature-ansatz experiments: theory sides, controls, data sets, seeding, plots."""
import json

import matplotlib.figure
import numpy as np
import pytest

from ntkdyn.figures import nfa_early_time, nfa_rule, nfa_training
from ntkdyn.figures.experiment import evaluate, point_seed
from ntkdyn.figures.registry import get_experiment
from ntkdyn.figures.runner import run_experiment
from ntkdyn.theory.nfa import EARLY_TIME_ERROR_ORDER

MODULES = (nfa_training, nfa_early_time, nfa_rule)


def test_registered():
    for module in MODULES:
        assert get_experiment(module.NAME) is module.EXPERIMENT


def test_early_time_theory_side_and_its_controls():
    E = nfa_early_time.EXPERIMENT
    config = dict(E.config("smoke"), init_scales=[1.0], steps=30, num_records=6, wide_steps=10)
    result = E.compute_serial(config)
    assert result["pred"].shape == (1, config["hidden_layers"])
    assert float(result["predicted_error_order"]) == EARLY_TIME_ERROR_ORDER
    verdict = evaluate(E, config, result)
    declared = E.declared(config)
    for key in ("rel_error_small_t_max", "two_layer_ptk_departure_ratio"):
        assert declared[key].target.holds(verdict.numbers[key]), (key, verdict.numbers)
    # a PTK proportional to the identity predicts perfect alignment, whatever the data
    wrong = next(c for c in nfa_early_time.CONTROLS if c.name == "ptk_identity")
    replaced = wrong.apply(dict(result), config)
    assert np.allclose(replaced["pred"], 1.0) and np.isclose(replaced["wide_pred_arccos"], 1.0)
    assert not np.allclose(result["pred"], 1.0)  # the control did not modify the result
    assert verdict.controls["ptk_identity"]["fails"]
    assert isinstance(E.plot(result), matplotlib.figure.Figure)


def test_early_time_data_shared_weights_per_run():
    E = nfa_early_time.EXPERIMENT
    config = dict(E.config("smoke"), n=16, width=8, steps=5, num_records=3, wide_width=16,
                  wide_steps=5)
    points = E.runs(config)
    a, b = (E.run(p, point_seed(config, p)) for p in points[:2])
    assert np.array_equal(a["inputs0"], b["inputs0"])  # one data set for the sweep
    assert not np.allclose(a["theta"][0] / a["theta"][0].max(),
                           b["theta"][0] / b["theta"][0].max())  # independent weights


def test_training_theory_side_and_plot():
    E = nfa_training.EXPERIMENT
    config = dict(E.config("smoke"), steps=40, num_records=5)
    result = E.compute_serial(config)
    assert result["lowrank_uc"].shape == (1, len(result["lowrank_steps"]), 5)
    assert result["lowrank_c_theory"].shape == (1, 5)
    assert 10 in result["lowrank_steps"] and np.all(np.isfinite(result["lowrank_c"]))
    verdict = evaluate(E, config, result)
    key = "c_early_minus_theory_max_abs"
    assert E.declared(config)[key].target.holds(verdict.numbers[key]), verdict.numbers
    assert all(v["fails"] for v in verdict.controls.values())
    assert isinstance(E.plot(result), matplotlib.figure.Figure)


def test_training_on_digits_where_scikit_learn_is_installed():
    pytest.importorskip("sklearn")
    E = nfa_training.EXPERIMENT
    config = dict(E.config("smoke"), datasets=["digits"], n=200, width=32, steps=20,
                  num_records=4)
    result = E.compute_serial(config)
    assert result["digits_uc"].shape[-1] == 5 and np.all(np.isfinite(result["digits_c"]))


def _write_idx(path, array, code):
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape)
    path.write_bytes(header + array.astype(">u1").tobytes())


def test_training_on_mnist_from_local_idx_files_and_missing_files_fail(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte",
               rng.integers(0, 256, size=(200, 28, 28)), 0x08)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(200) % 10, 0x08)
    E = nfa_training.EXPERIMENT
    config = dict(E.config("smoke"), datasets=["mnist", "lowrank"], data_dir=str(tmp_path),
                  n=100, width=16, steps=12, num_records=4)
    result = E.compute_serial(config)
    assert list(result["datasets"]) == ["mnist", "lowrank"]
    assert result["mnist_uc"].shape == (1, len(result["mnist_steps"]), 5)
    assert result["mnist_c_theory"].shape == (1, 5)
    assert set(E.measure(result)) == set(E.declared(config))
    # without the files the run fails, naming the data set, instead of leaving it out
    with pytest.raises(FileNotFoundError, match="mnist"):
        E.runs(dict(config, data_dir=str(tmp_path / "nowhere")))


def test_rule_raises_the_target_layer_and_rfm_recovers_the_subspace():
    E = nfa_rule.EXPERIMENT
    config = dict(E.config("smoke"), target_layers=[3])
    result = E.compute_serial(config)
    verdict = evaluate(E, config, result)
    declared = E.declared(config)
    assert set(verdict.numbers) == set(declared) and "uc_gain_layer4" in declared
    assert all(n.kind == "observation" for n in declared.values())
    assert verdict.ok, verdict.failures
    assert isinstance(E.plot(result), matplotlib.figure.Figure)


def test_rule_runs_share_data_and_initial_weights():
    E = nfa_rule.EXPERIMENT
    config = dict(E.config("smoke"), n=32, n_test=16, width=8, steps=3, num_records=2,
                  rfm_iterations=1, target_layers=[0])
    gd, rule = (E.run(p, point_seed(config, p)) for p in E.runs(config)[:2])
    assert np.array_equal(gd["losses"][:1], rule["losses"][:1])  # same data and weights
    assert not np.array_equal(gd["losses"], rule["losses"])


def test_bad_configurations_name_the_key():
    with pytest.raises(ValueError, match="datasets"):
        nfa_training.runs(dict(nfa_training.QUICK, datasets=["cifar"]))
    with pytest.raises(ValueError, match="target_layers"):
        nfa_rule.runs(dict(nfa_rule.QUICK, target_layers=[5]))
    with pytest.raises(ValueError, match="small_step"):
        nfa_early_time.runs(dict(nfa_early_time.QUICK, wide_steps=3))


def test_runner_writes_png_and_json(tmp_path):
    tiny = {"n": 64, "width": 16, "init_scales": [1.0], "steps": 20, "num_records": 5,
            "wide_width": 256, "wide_steps": 10}
    record = run_experiment("nfa-early-time", out=tmp_path, overrides=tiny, verbose=False,
                            scheduler="serial", config_name="smoke")
    assert (tmp_path / "nfa-early-time.png").stat().st_size > 0
    saved = json.loads((tmp_path / "nfa-early-time.json").read_text())
    assert saved["agreement"] == record["agreement"]
    assert set(record["controls"]) == {c.name for c in nfa_early_time.CONTROLS}


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
def test_paper_scale_targets(module):
    E = module.EXPERIMENT
    config = E.config("paper")
    if module is nfa_training:
        try:
            E.runs(config)
        except FileNotFoundError as error:
            pytest.skip(str(error))
    verdict = evaluate(E, config, E.compute_serial(config))
    assert verdict.ok, verdict.failures
