"""Readers of MNIST (IDX) and CIFAR-10 (python batches): tiny files in the real formats."""
import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from ntkdyn.numerics import datafiles
from ntkdyn.numerics.datafiles import (balanced_indices, classification_task, image_classification,
                                       load_cifar10, load_mnist, normalize_inputs, read_cifar_batch,
                                       read_idx, resolve_data_dir)


def idx_bytes(array, type_code=0x08):
    """IDX encoding written independently of the reader: magic, big-endian sizes, data."""
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[type_code]
    header = struct.pack(">HBB", 0, type_code, array.ndim)
    header += b"".join(struct.pack(">i", s) for s in array.shape)
    return header + np.asarray(array, dtype=dtype).tobytes()


def write(path, payload, gz=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def make_mnist(root, n=40, gz=True, split="train", seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if gz else ""
    write(root / f"{prefix}-images-idx3-ubyte{suffix}", idx_bytes(images), gz)
    write(root / f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(labels), gz)
    return images, labels


def make_cifar(root, per_batch=20, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    all_data, all_labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        labels[:10] = list(range(10))
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": b"x", b"data": data, b"labels": labels,
                         b"filenames": [b"f"] * per_batch}, fh)
        if name != "test_batch":
            all_data.append(data)
            all_labels += labels
    return np.concatenate(all_data), np.array(all_labels)


# ------------------------------------------------------------------------------ IDX
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = write(tmp_path / "a.idx", idx_bytes(a), gz)
    out = read_idx(path)
    assert out.shape == (2, 3, 4) and np.array_equal(out, a)
    f = np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "f.idx", idx_bytes(f, 0x0D))), f)
    s = np.array([-300, 5, 1000], dtype=np.int16)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "s.idx", idx_bytes(s, 0x0B))), s)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_gz_or_raw(tmp_path, gz, monkeypatch):
    images, labels = make_mnist(tmp_path / "mnist", gz=gz)
    X, y = load_mnist(tmp_path)
    assert X.shape == (40, 28, 28) and X.dtype == np.uint8
    np.testing.assert_array_equal(X, images)
    np.testing.assert_array_equal(y, labels)
    monkeypatch.setenv("NTKDYN_DATA", str(tmp_path))
    np.testing.assert_array_equal(load_mnist()[1], labels)
    np.testing.assert_array_equal(load_mnist("")[1], labels)


def test_mnist_wrong_magic(tmp_path):
    make_mnist(tmp_path, gz=False)
    bad = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(bad.read_bytes())
    raw[2] = 0x07
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*wrong magic number 0x00000703"):
        load_mnist(tmp_path)
    # A labels file where images are expected: a valid IDX file of the wrong dimension.
    write(bad, idx_bytes(np.zeros(5, dtype=np.uint8)))
    with pytest.raises(ValueError, match="wrong magic number 0x00000801"):
        load_mnist(tmp_path)


def test_mnist_truncated(tmp_path):
    make_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*truncated"):
        load_mnist(tmp_path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_mnist_truncated_gzip(tmp_path):
    make_mnist(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz.*truncated"):
        load_mnist(tmp_path)


def test_mnist_label_count_mismatch(tmp_path):
    make_mnist(tmp_path, n=40, gz=False)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(39, dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"label count mismatch.*39 labels.*40 images"):
        load_mnist(tmp_path)


def test_missing_files_and_dirs(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\[.gz\].*yann.lecun"):
        load_mnist(tmp_path, split="test")
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_data_dir(tmp_path / "nowhere")
    monkeypatch.delenv("NTKDYN_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="NTKDYN_DATA"):
        resolve_data_dir(None)
    with pytest.raises(TypeError, match="data_dir"):
        resolve_data_dir(3)
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, split="valid")


# -------------------------------------------------------------------------- CIFAR-10
def test_load_cifar10(tmp_path):
    data, labels = make_cifar(tmp_path)
    X, y = load_cifar10(tmp_path)
    assert X.shape == (100, 3072) and X.dtype == np.uint8
    np.testing.assert_array_equal(X, data)
    np.testing.assert_array_equal(y, labels)
    assert load_cifar10(tmp_path, split="test")[0].shape == (20, 3072)


def test_cifar_malformed(tmp_path):
    make_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"data_batch_3.*truncated"):
        load_cifar10(tmp_path)
    with open(path, "wb") as fh:
        pickle.dump({b"data": np.zeros((3, 3072), np.uint8), b"labels": [1, 2]}, fh)
    with pytest.raises(ValueError,
                       match=r"label count mismatch in .*data_batch_3.*2 labels.*3 images"):
        read_cifar_batch(path)
    with open(path, "wb") as fh:
        pickle.dump({b"data": np.zeros((3, 100), np.uint8), b"labels": [1, 2, 3]}, fh)
    with pytest.raises(ValueError, match=r"data_batch_3.*shape \(n, 3072\)"):
        read_cifar_batch(path)
    with open(path, "wb") as fh:
        pickle.dump({b"labels": [1]}, fh)
    with pytest.raises(ValueError, match="needs keys"):
        read_cifar_batch(path)


def test_cifar_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as fh:
        pickle.dump({b"data": os.getcwd, b"labels": []}, fh)  # a function reference, not data
    with pytest.raises(ValueError, match="not a readable CIFAR-10 batch"):
        read_cifar_batch(path)


# ------------------------------------------------------------ subsets and targets
def test_balanced_indices():
    labels = np.repeat(np.arange(5), 30)
    idx = balanced_indices(labels, [3, 1, 4], 31, seed=0)
    counts = np.bincount(labels[idx], minlength=5)
    # 31 = 3 * 10 + 1: the remainder goes to the first class listed.
    assert counts.tolist() == [0, 10, 0, 11, 10]
    assert len(np.unique(idx)) == 31
    np.testing.assert_array_equal(idx, balanced_indices(labels, [3, 1, 4], 31, seed=0))
    with pytest.raises(ValueError, match="class 1 has 30 examples"):
        balanced_indices(labels, [1, 2], 80)
    with pytest.raises(ValueError, match="distinct"):
        balanced_indices(labels, [1, 1], 4)


def test_normalize_inputs():
    rng = np.random.default_rng(0)
    X = rng.random((6, 5))
    X[2] = 0.0
    S = normalize_inputs(X, "sphere")
    norms = np.sum(S * S, axis=1)
    np.testing.assert_allclose(np.delete(norms, 2), 5.0, rtol=1e-12)
    assert norms[2] == 0.0
    Z = normalize_inputs(np.column_stack([X, np.ones(6)]), "standardize")
    np.testing.assert_allclose(Z[:, :5].mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z[:, :5].std(0), 1.0, rtol=1e-12)
    assert np.all(Z[:, 5] == 0.0)
    np.testing.assert_array_equal(normalize_inputs(X, "none"), X)
    with pytest.raises(ValueError, match="normalize"):
        normalize_inputs(X, "whiten")


def test_image_classification_mnist(tmp_path):
    images, labels = make_mnist(tmp_path, n=60, gz=True)
    ds = image_classification("mnist", 12, classes=[7, 2, 5], data_dir=tmp_path, seed=1)
    assert ds.X.shape == (12, 784) and ds.Y.shape == (12, 3)
    np.testing.assert_allclose(np.sum(ds.X ** 2, axis=1), 784.0, rtol=1e-12)
    np.testing.assert_array_equal(np.bincount(ds.info["labels"]), [4, 4, 4])
    # Remapping: label i of the subset is original class classes[i].
    np.testing.assert_array_equal(np.array([7, 2, 5])[ds.info["labels"]],
                                  labels[ds.info["indices"]])
    raw = images[ds.info["indices"]].reshape(12, -1) / 255.0
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(ds.X, raw * np.sqrt(784) / norms)
    # Centred one-hot targets: rows sum to zero, the own class holds 1 - 1/C.
    np.testing.assert_allclose(ds.Y.sum(axis=1), 0.0, atol=1e-15)
    np.testing.assert_allclose(ds.Y[np.arange(12), ds.info["labels"]], 2.0 / 3.0)
    with pytest.raises(ValueError, match="classes"):
        image_classification("mnist", 12, classes=[3], data_dir=tmp_path)


def test_image_classification_cifar(tmp_path):
    make_cifar(tmp_path)
    ds = image_classification("cifar10", 20, classes=[0, 1], data_dir=tmp_path,
                              normalize="none", centered=False)
    assert ds.X.shape == (20, 3072) and ds.X.min() >= 0 and ds.X.max() <= 1
    np.testing.assert_array_equal(ds.Y.sum(axis=1), 1.0)


def test_classification_task_fallback(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST"):
        classification_task("mnist", 40, 4, data_dir=tmp_path)
    ds = classification_task("mnist", 40, 4, data_dir=tmp_path, fallback=True, d=12)
    assert ds.info["source"] == "synthetic" and ds.X.shape == (40, 12)
    make_mnist(tmp_path, n=100)
    ds = classification_task("mnist", 40, 4, data_dir=tmp_path)
    assert ds.info["source"] == "mnist" and ds.Y.shape == (40, 4)
    # A malformed file is an error even with fallback: only a *missing* data set falls back.
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bgarbage")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        classification_task("mnist", 40, 4, data_dir=tmp_path, fallback=True)
    with pytest.raises(ValueError, match="dataset"):
        classification_task("imagenet", 40)


def test_digits_optional():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        with pytest.raises(FileNotFoundError, match="scikit-learn"):
            datafiles.load_digits()
        return
    ds = image_classification("digits", 30, classes=[0, 1, 2], seed=0)
    assert ds.X.shape == (30, 64)
    np.testing.assert_array_equal(np.bincount(ds.info["labels"]), [10, 10, 10])
