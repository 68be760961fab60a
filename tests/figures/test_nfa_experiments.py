"""The neural-feature-ansatz experiments at reduced scale: targets, plots, runner."""
import json

import matplotlib.figure
import numpy as np
import pytest

from ntkdyn.figures import nfa_early_time, nfa_rule, nfa_training
from ntkdyn.figures.registry import experiments
from ntkdyn.figures.runner import run_experiment

MODULES = (nfa_training, nfa_early_time, nfa_rule)


def _holds(module, numbers, name):
    low, high = module.TARGETS[name]
    return low <= numbers[name] <= high


def test_registered():
    names = experiments()
    for module in MODULES:
        assert names[module.NAME] is module


def test_training_centred_above_uncentred_early_reduced():
    config = dict(nfa_training.QUICK, n=256, width=64, steps=120, num_records=8)
    result = nfa_training.compute(config)
    numbers = nfa_training.agreement(result)
    for name in ("c_minus_uc_min_early", "c_min_early"):
        assert _holds(nfa_training, numbers, name), numbers
    assert numbers["loss_ratio"] < 0.9  # 120 steps: training has begun
    assert result["lowrank_uc"].shape == (1, len(result["lowrank_steps"]), 5)
    assert 10 in result["lowrank_steps"] and np.all(np.isfinite(result["lowrank_c"]))
    # uncentred correlation at init falls with depth (set by the initialisation)
    assert numbers["uc_first_layer_early"] > numbers["uc_last_layer_early"] + 0.3
    assert isinstance(nfa_training.plot(result), matplotlib.figure.Figure)


def test_training_on_digits_where_scikit_learn_is_installed():
    pytest.importorskip("sklearn")
    config = dict(nfa_training.QUICK, datasets=["digits"], n=200, width=32, steps=20,
                  num_records=4)
    result = nfa_training.compute(config)
    assert result["digits_uc"].shape[-1] == 5 and np.all(np.isfinite(result["digits_c"]))


def _write_idx(path, array, code):
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape)
    path.write_bytes(header + array.astype(">u1").tobytes())


def test_training_on_mnist_from_local_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte",
               rng.integers(0, 256, size=(200, 28, 28)), 0x08)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(200) % 10, 0x08)
    config = dict(nfa_training.QUICK, datasets=["mnist", "lowrank"], data_dir=str(tmp_path),
                  n=100, width=16, steps=12, num_records=4)
    result = nfa_training.compute(config)
    assert list(result["datasets"]) == ["lowrank", "mnist"]
    assert result["mnist_uc"].shape == (1, len(result["mnist_steps"]), 5)
    assert "mnist_c_min_early" in nfa_training.agreement(result)
    # without the files, MNIST is left out rather than failing the run
    missing = dict(config, data_dir=str(tmp_path / "nowhere"))
    assert [p["dataset"] for p in nfa_training.runs(missing)] == ["lowrank"]


def test_early_time_prediction_within_five_percent_reduced():
    config = dict(nfa_early_time.QUICK, n=128, width=32, init_scales=[0.5, 2.0], steps=60,
                  num_records=8, wide_width=1024, wide_steps=20)
    result = nfa_early_time.compute(config)
    numbers = nfa_early_time.agreement(result)
    assert _holds(nfa_early_time, numbers, "max_rel_error_small_t"), numbers
    assert _holds(nfa_early_time, numbers, "two_layer_arccos_abs_error"), numbers
    assert result["pred"].shape == (2, 5) and result["c"].shape[0] == 2
    assert isinstance(nfa_early_time.plot(result), matplotlib.figure.Figure)


def test_rule_raises_the_target_layer_and_rfm_recovers_the_subspace_reduced():
    config = dict(nfa_rule.QUICK, n=256, n_test=256, width=64, steps=300, target_layers=[3],
                  rfm_iterations=2, num_records=6)
    result = nfa_rule.compute(config)
    numbers = nfa_rule.agreement(result)
    assert _holds(nfa_rule, numbers, "uc_gain_min"), numbers
    assert _holds(nfa_rule, numbers, "rfm_subspace_cos_min"), numbers
    assert np.isfinite(numbers["c_change_layer4"])
    # RFM beats the plain Laplace kernel on the low-rank task
    assert numbers["rfm_test_error"] < numbers["kernel_probe_error_identity"]
    assert isinstance(nfa_rule.plot(result), matplotlib.figure.Figure)


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
                            scheduler="serial")
    assert (tmp_path / "nfa-early-time.png").stat().st_size > 0
    saved = json.loads((tmp_path / "nfa-early-time.json").read_text())
    assert saved["agreement"] == record["agreement"]
    assert record["holds"]["max_rel_error_small_t"]


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
def test_paper_scale_targets(module):
    numbers = module.agreement(module.compute(module.PAPER))
    for name in module.TARGETS:
        assert _holds(module, numbers, name), (name, numbers)
