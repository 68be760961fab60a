"""Readers, validation, the .npy cache and load_dataset: tiny files in the real formats."""
import gzip
import json
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
    f_path = write(tmp_path / "f.idx", idx_bytes(f, 0x0D), gz)
    np.testing.assert_array_equal(read_idx(f_path, dtype=np.float32), f)
    np.testing.assert_array_equal(read_idx(f_path, dtype=None), f)
    s = np.array([-300, 5, 1000], dtype=np.int16)
    s_path = write(tmp_path / "s.idx", idx_bytes(s, 0x0B), gz)
    np.testing.assert_array_equal(read_idx(s_path, dtype=np.int16), s)


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


# ---------------------------------------------------------------- file validation
def test_idx_dtype_must_be_declared(tmp_path):
    f = np.linspace(0, 1, 8, dtype=np.float32).reshape(2, 2, 2)
    path = write(tmp_path / "train-images-idx3-ubyte", idx_bytes(f, 0x0D))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte'.*float32.*uint8 was expected"):
        read_idx(path)
    make_mnist(tmp_path / "m", gz=False)
    write(tmp_path / "m" / "train-images-idx3-ubyte", idx_bytes(f, 0x0D))
    with pytest.raises(ValueError, match="float32"):
        load_mnist(tmp_path / "m")


def test_idx_nan_refused(tmp_path):
    f = np.ones((3, 2, 2), dtype=np.float32)
    f[1, 0, 1] = np.nan
    f[2, 1, 1] = np.inf
    path = write(tmp_path / "nan.idx", idx_bytes(f, 0x0D), gz=True)
    with pytest.raises(ValueError, match=r"nan.idx'.*2 non-finite values"):
        read_idx(path, dtype=np.float32)


def test_labels_out_of_range(tmp_path):
    make_mnist(tmp_path, n=40, gz=True)
    labels = (np.arange(40) % 10).astype(np.uint8)
    labels[7] = 12
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(labels), gz=True)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz'.*0\.\.9.*0\.\.12"):
        load_mnist(tmp_path)


def test_idx_size_claim_beyond_file(tmp_path):
    # A 20-byte raw file claiming 10^9 bytes: refused from the file size, nothing allocated.
    header = struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">iii", 1000, 1000, 1000)
    path = write(tmp_path / "claim.idx", header + b"\x00" * 4)
    with pytest.raises(ValueError, match=r"claim.idx'.*truncated.*found 4 bytes"):
        read_idx(path)
    # A claim over the decompression bound (2^31-1 cubed bytes): refused before reading.
    header = struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">iii", *(3 * [2 ** 31 - 1]))
    for gz in (False, True):
        path = write(tmp_path / f"huge{gz}.idx", header + b"\x00" * 16, gz)
        with pytest.raises(ValueError, match=r"huge.*claims \d+ bytes, more than the limit"):
            read_idx(path)


def test_gzip_bomb_refused(tmp_path, monkeypatch):
    # Header claims 5e7 bytes in a gzip file of ~50 bytes: more than deflate can hold.
    header = struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">iii", 50, 1000, 1000)
    path = write(tmp_path / "bomb.idx.gz", header + b"\x00" * 100, gz=True)
    with pytest.raises(ValueError, match=r"bomb.idx.gz'.*more than a gzip file of \d+ bytes"):
        read_idx(path)
    # A small claim followed by 64 MB of zeros (a 64 KB file): only claim + 1 bytes inflated.
    header = struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">iii", 1, 28, 28)
    path = write(tmp_path / "bomb2.gz", header + bytes(64 << 20), gz=True)
    assert path.stat().st_size < 200_000
    with pytest.raises(ValueError, match=r"bomb2.gz'.*more data than the header declares"):
        read_idx(path)
    # A file without a header claim (a CIFAR batch) is inflated up to the bound, then refused.
    monkeypatch.setattr(datafiles, "MAX_DECOMPRESSED_BYTES", 1 << 20)
    path = write(tmp_path / "data_batch_1", bytes(8 << 20), gz=True)
    with pytest.raises(ValueError, match=r"data_batch_1'.*decompresses to more than 1048576"):
        read_cifar_batch(path)
    header = struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">iii", 2, 1024, 1024)
    path = write(tmp_path / "big.idx", header + bytes(2 << 20))
    with pytest.raises(ValueError, match="more than the limit of 1048576"):
        read_idx(path)


def test_cifar_size_claim_beyond_file(tmp_path):
    # 12 bytes: protocol 4, BINBYTES8 claiming 2^62 bytes, STOP.
    path = write(tmp_path / "data_batch_1", b"\x80\x04\x8e" + struct.pack("<Q", 2 ** 62) + b".")
    assert path.stat().st_size == 12
    with pytest.raises(ValueError, match=r"data_batch_1'.*size claim beyond the file's 12 bytes"):
        read_cifar_batch(path)


def test_cifar_labels_out_of_range(tmp_path):
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as fh:
        pickle.dump({b"data": np.zeros((3, 3072), np.uint8), b"labels": [1, 10, 2]}, fh)
    with pytest.raises(ValueError, match=r"data_batch_1'.*labels must lie in 0\.\.9"):
        read_cifar_batch(path)


def test_errors_are_one_line(tmp_path):
    header = struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">iii", 50, 1000, 1000)
    bad = [write(tmp_path / "a.gz", header, gz=True), write(tmp_path / "b", b"\x1f\x8bgarbage"),
           write(tmp_path / "c", b"\x80\x04\x8e" + struct.pack("<Q", 2 ** 62) + b".")]
    for path, reader in zip(bad, [read_idx, read_idx, read_cifar_batch]):
        with pytest.raises(ValueError) as info:
            reader(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


# -------------------------------------------------------------------- load_dataset
def mark_verified(folder, name):
    """The marker numerics.fetch writes after verifying a download (stamps of the files)."""
    from ntkdyn.numerics import fetch

    def stamp(path):
        st = path.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

    marker = {"dataset": name, "files": {}, "members": {}}
    for rf in fetch.REMOTE[name].files:
        if rf.members:
            marker["members"][rf.name] = {"md5": rf.md5,
                                          "stamps": {m: stamp(folder / m) for m in rf.members}}
        else:
            marker["files"][rf.name] = {"md5": rf.md5, **stamp(folder / rf.name)}
    (folder / fetch.MARKER).write_text(json.dumps(marker))


def fetched_mnist(home, name="mnist", n=120, n_test=60):
    folder = home / name
    train = make_mnist(folder, n=n, gz=True, split="train", seed=1)
    test = make_mnist(folder, n=n_test, gz=True, split="test", seed=2)
    mark_verified(folder, name)
    return train, test


def fetched_cifar(home):
    data, labels = make_cifar(home / "cifar10")
    (home / "cifar10" / "cifar-10-batches-py" / "batches.meta").write_bytes(b"")
    mark_verified(home / "cifar10", "cifar10")
    return data, labels


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_load_dataset_idx(tmp_path, name, monkeypatch):
    (images, labels), (images_t, labels_t) = fetched_mnist(tmp_path, name)
    ds = datafiles.load_dataset(name, n_train=20, n_test=10, classes=[7, 2], seed=3,
                                data_dir=tmp_path)
    assert ds.X.shape == (20, 784) and ds.X_test.shape == (10, 784) and ds.Y.shape == (20, 2)
    assert ds.X.dtype == ds.Y.dtype == np.float64
    np.testing.assert_array_equal(np.bincount(ds.labels), [10, 10])
    np.testing.assert_array_equal(np.array([7, 2])[ds.labels], labels[ds.info["indices"]])
    np.testing.assert_array_equal(np.array([7, 2])[ds.labels_test],
                                  labels_t[ds.info["indices_test"]])
    # sphere: centred by the training mean, then ||x||^2 = d.
    raw = images[ds.info["indices"]].reshape(20, -1) / 255.0
    centred = raw - raw.mean(axis=0)
    np.testing.assert_allclose(ds.X, centred * 28 / np.linalg.norm(centred, axis=1)[:, None],
                               rtol=1e-12)
    np.testing.assert_allclose(np.sum(ds.X_test ** 2, axis=1), 784.0, rtol=1e-12)
    np.testing.assert_allclose(ds.Y[np.arange(20), ds.labels], 0.5)
    assert ds.info["dataset"] == name and ds.info["classes"] == [7, 2]
    assert len(ds.info["checksum"]) == 64 and ds.info["n_test"] == 10
    assert any("t10k-images" in p for p in ds.info["source"])
    # The .npy cache: written on the first parse, memory-mapped later, without re-parsing.
    cached = sorted(p.name for p in (tmp_path / name).glob("*.npy"))
    assert len(cached) == 4 and all(p.startswith(f"{name}-") for p in cached)

    def no_parse(*args):
        raise AssertionError("parsed again")
    monkeypatch.setattr(datafiles, "read_idx_pair", no_parse)
    again = datafiles.load_dataset(name, n_train=20, n_test=10, classes=[7, 2], seed=3,
                                   data_dir=tmp_path)
    np.testing.assert_array_equal(again.X, ds.X)
    assert again.info["checksum"] == ds.info["checksum"]
    images_mm = datafiles._remote_split(name, "train", tmp_path)[0]
    assert isinstance(images_mm, np.memmap)
    monkeypatch.undo()
    # A corrupt .npy is discarded and the files re-parsed.
    npy = next((tmp_path / name).glob(f"{name}-train-images-*.npy"))
    npy.write_bytes(npy.read_bytes()[:200])
    third = datafiles.load_dataset(name, n_train=20, n_test=10, classes=[7, 2], seed=3,
                                   data_dir=tmp_path)
    np.testing.assert_array_equal(third.X, ds.X)
    assert np.load(npy).shape == (120, 28, 28)


def test_load_dataset_cifar10(tmp_path):
    data, labels = fetched_cifar(tmp_path)
    ds = datafiles.load_dataset("cifar10", n_train=20, n_test=2, classes=[0, 1],
                                preprocessing="none", data_dir=tmp_path)
    assert ds.X.shape == (20, 3072) and 0 <= ds.X.min() and ds.X.max() <= 1
    np.testing.assert_array_equal(ds.X, data[ds.info["indices"]] / 255.0)
    assert len(list((tmp_path / "cifar10" / "cifar-10-batches-py").glob("*.npy"))) == 4


def test_load_dataset_cifar100_and_svhn(tmp_path):
    import scipy.io

    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        with open(folder / split, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 256, (200, 3072), dtype=np.uint8),
                         b"fine_labels": [i % 100 for i in range(200)],
                         b"coarse_labels": [i % 20 for i in range(200)]}, fh)
    (folder / "meta").write_bytes(b"")
    mark_verified(tmp_path / "cifar100", "cifar100")
    ds = datafiles.load_dataset("cifar100", n_train=4, n_test=2, classes=[99, 50],
                                data_dir=tmp_path)
    assert ds.Y.shape == (4, 2) and np.array_equal(np.bincount(ds.labels), [2, 2])

    X = rng.integers(0, 256, (32, 32, 3, 30), dtype=np.uint8)
    y = (np.arange(30) % 10 + 1).reshape(-1, 1)  # label 10 is digit 0
    (tmp_path / "svhn").mkdir()
    for split in ("train", "test"):
        scipy.io.savemat(tmp_path / "svhn" / f"{split}_32x32.mat", {"X": X, "y": y})
    mark_verified(tmp_path / "svhn", "svhn")
    images, labels = datafiles.read_svhn_mat(tmp_path / "svhn" / "train_32x32.mat")
    np.testing.assert_array_equal(labels, np.arange(30) % 10 + 1 - 10 * (np.arange(30) % 10 == 9))
    np.testing.assert_array_equal(images[4].reshape(3, 32, 32)[1], X[:, :, 1, 4])
    ds = datafiles.load_dataset("svhn", n_train=10, n_test=10, data_dir=tmp_path)
    assert ds.X.shape == (10, 3072) and ds.Y.shape == (10, 10)
    # A .mat file whose data element claims more than the file holds.
    path = tmp_path / "claim.mat"
    path.write_bytes(b"MATLAB 5.0".ljust(124) + b"\x00\x01IM" + struct.pack("<II", 14, 2 ** 31))
    with pytest.raises(ValueError, match=r"claim.mat'.*claims 2147483648 bytes"):
        datafiles.read_svhn_mat(path)


def test_load_dataset_missing_remote(tmp_path):
    from ntkdyn.numerics.fetch import DataUnavailable

    with pytest.raises(DataUnavailable, match=r"mnist.*ntkdyn data fetch mnist"):
        datafiles.load_dataset("mnist", n_train=10, data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="cifar10"):
        datafiles.load_dataset("cifar10", n_train=10, data_dir=tmp_path)


def test_load_dataset_digits():
    ds = datafiles.load_dataset("digits", n_train=30, n_test=20, classes=[0, 1, 2], seed=0)
    assert ds.X.shape == (30, 64) and ds.X_test.shape == (20, 64)
    assert not set(ds.info["indices"]) & set(ds.info["indices_test"])  # disjoint parts
    np.testing.assert_array_equal(np.bincount(ds.labels), [10, 10, 10])
    np.testing.assert_array_equal(np.bincount(ds.labels_test, minlength=3), [7, 7, 6])
    np.testing.assert_allclose(np.sum(ds.X ** 2, axis=1), 64.0, rtol=1e-12)
    assert ds.info["source"] != "generated"
    again = datafiles.load_dataset("digits", n_train=30, n_test=20, classes=[0, 1, 2], seed=0,
                                   preprocessing="center")
    assert again.info["checksum"] == ds.info["checksum"]  # of the raw data, not preprocessed
    np.testing.assert_allclose(again.X.mean(axis=0), 0.0, atol=1e-12)
    other = datafiles.load_dataset("digits", n_train=30, classes=[0, 1, 2], seed=1)
    assert other.info["checksum"] != ds.info["checksum"]
    assert other.X_test.shape == (0, 64) and other.Y_test.shape == (0, 3)
    raw = datafiles.load_dataset("digits", n_train=30, preprocessing="none")
    assert raw.X.min() >= 0 and raw.X.max() <= 1


def test_load_dataset_odd_even():
    ds = datafiles.load_dataset("digits", n_train=40, n_test=20, classes="odd-even", seed=2)
    assert ds.Y.shape == (40, 1) and ds.Y_test.shape == (20, 1)
    np.testing.assert_array_equal(ds.Y[:, 0], np.where(ds.info["original_labels"] % 2, 1.0, -1.0))
    np.testing.assert_array_equal(ds.labels, ds.info["original_labels"] % 2)
    np.testing.assert_array_equal(np.bincount(ds.info["original_labels"]), 10 * [4])
    assert ds.info["classes"] == "odd-even"


def test_load_dataset_mnist1d(tmp_path, monkeypatch):
    state = np.random.get_state()[1].copy()
    ds = datafiles.load_dataset("mnist1d", n_train=50, n_test=20, seed=0, data_dir=tmp_path)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global RNG untouched
    assert ds.X.shape == (50, 40) and ds.X_test.shape == (20, 40) and ds.Y.shape == (50, 10)
    assert np.all(np.isfinite(ds.X)) and ds.info["source"].startswith("generated")
    assert len(list((tmp_path / "mnist1d").glob("mnist1d-*.npy"))) == 4
    import mnist1d.data

    def no_generation(*args, **kwargs):
        raise AssertionError("generated again")
    monkeypatch.setattr(mnist1d.data, "make_dataset", no_generation)
    monkeypatch.setattr(mnist1d.data, "get_dataset", no_generation)
    again = datafiles.load_dataset("mnist1d", n_train=50, n_test=20, seed=0, data_dir=tmp_path)
    np.testing.assert_array_equal(again.X, ds.X)
    assert again.info["checksum"] == ds.info["checksum"]
    arrays = datafiles.mnist1d_arrays(tmp_path)
    assert arrays["x"].shape == (4000, 40) and arrays["x_test"].shape == (1000, 40)


def test_load_dataset_synthetic_mixture():
    from ntkdyn.numerics.synthetic import gaussian_mixture_classes

    ds = datafiles.load_dataset("synthetic-mixture", n_train=40, d=12, seed=5,
                                preprocessing="none")
    ref = gaussian_mixture_classes(40, 12, num_classes=4, seed=5)
    np.testing.assert_array_equal(ds.X, ref.X)
    np.testing.assert_array_equal(ds.Y, ref.Y)
    assert ds.info["source"] == "generated" and ds.info["classes"] == [0, 1, 2, 3]
    split = datafiles.load_dataset("synthetic-mixture", n_train=40, n_test=12, d=12, seed=5,
                                   classes=[0, 1, 2, 3], preprocessing="none")
    np.testing.assert_array_equal(split.X, ref.X)  # the test set does not change training
    assert split.X_test.shape == (12, 12) and np.array_equal(np.bincount(split.labels_test),
                                                             [3, 3, 3, 3])
    # Test inputs lie near their class means (radius 5, offset 5, noise 1).
    means = 5.0 * ref.info["means"] + ref.info["offset"]
    dist = np.linalg.norm(split.X_test[:, None, :] - means[None], axis=2)
    np.testing.assert_array_equal(dist.argmin(axis=1), split.labels_test)
    odd = datafiles.load_dataset("synthetic-mixture", n_train=20, classes="odd-even", seed=1)
    assert odd.Y.shape == (20, 1) and odd.X.shape == (20, 30)


def test_load_dataset_bad_input(tmp_path):
    def load(name="digits", **kw):
        kw.setdefault("n_train", 10)
        return datafiles.load_dataset(name, data_dir=tmp_path, **kw)
    with pytest.raises(ValueError, match="name"):
        load("imagenet")
    with pytest.raises(ValueError, match=r"classes \[3, 11\] lie outside"):
        load(classes=[3, 11])
    with pytest.raises(ValueError, match="classes"):
        load(classes="odd")
    with pytest.raises(ValueError, match="at least two"):
        load(classes=[3])
    with pytest.raises(ValueError, match="n_train \\+ n_test = 2000"):
        load(n_train=1500, n_test=500)
    # Refused before any file is looked for (the data home is empty).
    with pytest.raises(ValueError, match="n_train = 70000 is more than the training split"):
        load("mnist", n_train=70000)
    with pytest.raises(ValueError, match="n_test = 3000"):
        load("cifar10", n_test=3000, classes=[0, 1])
    with pytest.raises(ValueError, match="n_train"):
        load(n_train=0)
    with pytest.raises(ValueError, match="d = 30 does not match"):
        load(d=30)
    with pytest.raises(ValueError, match="preprocessing"):
        load(preprocessing="whiten")
    # A set smaller than the claim of its specification: the exact count after reading.
    fetched_mnist(tmp_path, n=40, n_test=20)
    with pytest.raises(ValueError, match=r"fewer than the 5 requested \(n_train = 50"):
        load("mnist", n_train=50)
