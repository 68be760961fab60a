"""relu-alignment, specialization, depth-alignment: targets at reduced scale, real-data path.

The default suite runs each experiment with one seed (and fewer gammas / depths); the full
quick configurations, which assert every TARGETS interval, are marked slow.
"""
import gzip
import struct

import matplotlib
import matplotlib.figure
import numpy as np
import pytest

from ntkdyn.figures import depth_alignment, relu_alignment, specialization
from ntkdyn.figures.cli import main

matplotlib.use("Agg")


def holds(module, numbers, keys=None):
    for key in keys or module.TARGETS:
        low, high = module.TARGETS[key]
        assert low <= numbers[key] <= high, \
            f"{module.NAME}: {key} = {numbers[key]} not in [{low}, {high}]"


def test_specialization_one_seed():
    """ReLU xi >= 0.10 while |xi_linear| <= 0.01; |xi| <= 0.02 at initialisation
    (measured, seed 0: 0.134, 0.0027, 0.0055)."""
    config = dict(specialization.QUICK, seeds=1, num_records=6)
    result = specialization.compute(config)
    numbers = specialization.agreement(result)
    holds(specialization, numbers)
    assert numbers["xi_rate_relu_theory"] != 0.0
    assert isinstance(specialization.plot(result), matplotlib.figure.Figure)


def test_relu_alignment_reduced():
    """Gains along gamma in {1, 3, 30} (seed 0, measured 0.008, 0.036, 0.123) and the exact
    initial rate within 10% of GD."""
    config = dict(relu_alignment.QUICK, gammas=[1.0, 3.0, 30.0], seeds=1, num_records=8)
    result = relu_alignment.compute(config)
    numbers = relu_alignment.agreement(result)
    holds(relu_alignment, numbers)
    assert isinstance(relu_alignment.plot(result), matplotlib.figure.Figure)


def test_depth_alignment_reduced():
    config = dict(depth_alignment.QUICK, depths=[2, 5], seeds=1, num_records=8)
    result = depth_alignment.compute(config)
    numbers = depth_alignment.agreement(result)
    holds(depth_alignment, numbers)
    assert numbers["gain_depth5"] > 3 * numbers["gain_depth2"]
    assert isinstance(depth_alignment.plot(result), matplotlib.figure.Figure)


@pytest.mark.slow
@pytest.mark.parametrize("module", [relu_alignment, specialization, depth_alignment])
def test_quick_configuration_meets_every_target(module):
    result = module.compute(module.QUICK)
    holds(module, module.agreement(result))


def test_same_config_same_result():
    config = dict(specialization.QUICK, n=40, steps=5, seeds=1, num_records=3, width=16, gamma=1.0)
    a, b = specialization.compute(config), specialization.compute(config)
    np.testing.assert_array_equal(a["xi"], b["xi"])


# ------------------------------------------------------------------------ real data
def write_mnist(root, n=100, seed=0):
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    for name, arr in (("train-images-idx3-ubyte.gz", images),
                      ("train-labels-idx1-ubyte.gz", labels)):
        header = struct.pack(">HBB", 0, 8, arr.ndim)
        header += b"".join(struct.pack(">i", s) for s in arr.shape)
        (root / name).write_bytes(gzip.compress(header + arr.tobytes()))


def test_experiments_run_on_mnist_files(tmp_path):
    write_mnist(tmp_path)
    config = dict(specialization.QUICK, dataset="mnist", data_dir=str(tmp_path), n=24,
                  num_classes=3, width=16, steps=5, seeds=1, num_records=3, gamma=1.0)
    result = specialization.compute(config)
    assert result["S_final"].shape == (2, 1, 3, 3)
    config = dict(depth_alignment.QUICK, dataset="mnist", data_dir=str(tmp_path), n=24,
                  num_classes=3, width=16, steps=5, seeds=1, num_records=3, depths=[2, 3])
    assert depth_alignment.compute(config)["alignment_centered"].shape == (2, 1, 3)


def test_missing_data_is_a_clear_error_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NTKDYN_DATA", raising=False)
    out = tmp_path / "out"
    code = main(["run", "specialization", "--out", str(out), "--set", "dataset=mnist",
                 "--set", f"data_dir={tmp_path / 'empty'}"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    code = main(["run", "specialization", "--out", str(out), "--set", "dataset=cifar10",
                 "--set", f"data_dir={tmp_path / 'empty'}"])
    assert code == 2
    assert "data_batch_1" in capsys.readouterr().err
    assert not out.exists()
    # Fallback only when asked: the synthetic task then runs.
    config = dict(specialization.QUICK, dataset="mnist", data_dir=str(tmp_path / "empty"),
                  fallback_synthetic=True, n=24, width=16, steps=3, seeds=1, num_records=2,
                  gamma=1.0)
    assert specialization.compute(config)["xi"].shape[:2] == (2, 1)
