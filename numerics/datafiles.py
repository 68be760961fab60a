"""Real image-classification data from local files: MNIST (IDX), CIFAR-10 (python batches), digits.

Nothing here downloads. The data directory is the ``data_dir`` argument or, when that is
``None`` or empty, the ``NTKDYN_DATA`` environment variable. Expected layout (either
directly in the data directory or in the sub-folder named in brackets):

* MNIST [``mnist/``]: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally gzipped
  (``.gz``; detected from the file's first bytes, not its name), as distributed by
  LeCun, Cortes & Burges (http://yann.lecun.com/exdb/mnist/).
* CIFAR-10 [``cifar-10-batches-py/``]: ``data_batch_1`` .. ``data_batch_5`` and
  ``test_batch``, the "CIFAR-10 python version" of Krizhevsky (2009)
  (https://www.cs.toronto.edu/~kriz/cifar.html). These are pickles; they are read with a
  restricted unpickler that only builds NumPy arrays, lists, dicts and strings.
* scikit-learn's bundled 8x8 digits, when scikit-learn is installed (an optional extra,
  not a dependency of ntkdyn).

The preparation of the alignment experiments (after Shan & Bordelon 2021): balanced class
subsets, inputs normalised to ``||x||^2 = d``, centred one-hot targets ``y - 1/C``. Missing or
malformed files raise ``FileNotFoundError`` / ``ValueError`` naming the file and the problem.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import zlib
from pathlib import Path

import numpy as np

from ..base.validation import as_generator, one_of, positive_int
from .synthetic import Dataset, gaussian_mixture_classes, one_hot

ENV_VAR = "NTKDYN_DATA"
DATASETS = ("synthetic", "mnist", "cifar10", "digits")
NORMALIZATIONS = ("sphere", "standardize", "none")

# IDX type codes (third byte of the magic number) -> big-endian NumPy dtype.
_IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_CIFAR_ROW = 3 * 32 * 32


# ------------------------------------------------------------------------- locations
def resolve_data_dir(data_dir=None) -> Path:
    """The data directory: ``data_dir`` if given (non-empty), else ``$NTKDYN_DATA``."""
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a path or None, got {type(data_dir).__name__}")
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(ENV_VAR, "")
        if not data_dir:
            raise FileNotFoundError(
                f"no data directory: pass data_dir (or --set data_dir=PATH) or set the {ENV_VAR} "
                "environment variable to a folder holding the data files (nothing is downloaded)")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"data directory {str(path)!r} does not exist or is not a folder")
    return path


def _find(root: Path, subdirs, name: str, gz: bool):
    """First existing ``root/sub/name`` (or ``name.gz`` when ``gz``); ``None`` if absent."""
    for sub in subdirs:
        for candidate in ([name, name + ".gz"] if gz else [name]):
            path = root / sub / candidate
            if path.is_file():
                return path
    return None


def _missing(dataset: str, root: Path, subdirs, names, hint: str) -> FileNotFoundError:
    where = ", ".join(str(root / s) if s else str(root) for s in subdirs)
    return FileNotFoundError(f"{dataset}: file(s) {', '.join(names)} not found in {where}; {hint}")


# ----------------------------------------------------------------------------- MNIST
def _read_bytes(path: Path) -> bytes:
    """File contents, gunzipped when the file starts with the gzip magic ``1f 8b``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file {str(path)!r} not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"file {str(path)!r}: corrupt or truncated gzip data ({exc})") from None
    return raw


def read_idx(path, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or not) into an array of its stored type and shape.

    Format (LeCun et al.): magic number ``0x0000 TT DD`` (``TT`` the type code, ``DD`` the
    number of dimensions), then ``DD`` big-endian ``int32`` sizes, then the data in C order.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"file {str(path)!r}: truncated IDX file ({len(raw)} bytes, no header)")
    zero, type_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    magic = int.from_bytes(raw[:4], "big")
    if zero != 0 or type_code not in _IDX_TYPES or ndim == 0:
        raise ValueError(f"file {str(path)!r}: wrong magic number 0x{magic:08x} "
                         "(not an IDX file; expected 0x000008DD for unsigned-byte data)")
    if expected_ndim is not None and ndim != expected_ndim:
        raise ValueError(f"file {str(path)!r}: wrong magic number 0x{magic:08x}: "
                         f"{ndim}-dimensional data where {expected_ndim} dimensions were expected "
                         f"(0x{0x800 + expected_ndim:08x})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"file {str(path)!r}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_TYPES[type_code]
    expected = int(np.prod(shape)) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise ValueError(f"file {str(path)!r}: truncated file: header declares shape {shape} "
                         f"({expected} bytes of data), found {found} bytes")
    if found > expected:
        raise ValueError(f"file {str(path)!r}: {found - expected} unexpected trailing bytes after "
                         f"the data of shape {shape}")
    data = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=header)
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(data_dir=None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST images ``(n, 28, 28)`` uint8 and labels ``(n,)`` int64 from local IDX files."""
    one_of(split, "split", tuple(_MNIST_FILES))
    root = resolve_data_dir(data_dir)
    subdirs = ("", "mnist", "MNIST", "MNIST/raw")
    names = _MNIST_FILES[split]
    paths = [_find(root, subdirs, name, gz=True) for name in names]
    if any(p is None for p in paths):
        missing = [f"{n}[.gz]" for n, p in zip(names, paths) if p is None]
        raise _missing("MNIST", root, subdirs, missing,
                       "put the IDX files of http://yann.lecun.com/exdb/mnist/ there "
                       "(gzipped or not)")
    images = read_idx(paths[0], expected_ndim=3)
    labels = read_idx(paths[1], expected_ndim=1)
    if len(labels) != len(images):
        raise ValueError(f"label count mismatch: {str(paths[1])!r} holds {len(labels)} labels but "
                         f"{str(paths[0])!r} holds {len(images)} images")
    return images, labels.astype(np.int64)


# -------------------------------------------------------------------------- CIFAR-10
class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds NumPy arrays and builtin containers (no arbitrary code)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("builtins", "list"), ("builtins", "dict"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: ``data`` ``(n, 3072)`` uint8 (R, G, B planes) and labels."""
    path = Path(path)
    raw = _read_bytes(path)
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as exc:
        raise ValueError(f"file {str(path)!r}: not a readable CIFAR-10 batch "
                         f"(truncated or not a pickle: {exc})") from None
    if not isinstance(batch, dict):
        raise ValueError(f"file {str(path)!r}: a CIFAR-10 batch must be a dict, "
                         f"got {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"file {str(path)!r}: a CIFAR-10 batch needs keys 'data' and 'labels', "
                         f"found {sorted(map(str, batch))}")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.ndim != 2 or data.shape[1] != _CIFAR_ROW or data.dtype != np.uint8:
        raise ValueError(f"file {str(path)!r}: 'data' must be a uint8 array of shape "
                         f"(n, {_CIFAR_ROW}), "
                         f"got {data.dtype} {data.shape}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"file {str(path)!r}: 'labels' must be a list of integers")
    if len(labels) != len(data):
        raise ValueError(f"label count mismatch in {str(path)!r}: {len(labels)} labels for "
                         f"{len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"file {str(path)!r}: labels must lie in 0..9")
    return data, labels.astype(np.int64)


def load_cifar10(data_dir=None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 images ``(n, 3072)`` uint8 and labels ``(n,)`` from the python batch files."""
    one_of(split, "split", tuple(_CIFAR_FILES))
    root = resolve_data_dir(data_dir)
    subdirs = ("", "cifar-10-batches-py", "cifar10")
    names = _CIFAR_FILES[split]
    paths = [_find(root, subdirs, name, gz=False) for name in names]
    if any(p is None for p in paths):
        raise _missing("CIFAR-10", root, subdirs, [n for n, p in zip(names, paths) if p is None],
                       "extract cifar-10-python.tar.gz from "
                       "https://www.cs.toronto.edu/~kriz/cifar.html "
                       "there")
    parts = [read_cifar_batch(p) for p in paths]
    return np.concatenate([d for d, _ in parts]), np.concatenate([l for _, l in parts])


# ---------------------------------------------------------------------------- digits
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits: images ``(1797, 64)`` in 0..16 and labels."""
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:
        raise FileNotFoundError("the 'digits' data set needs scikit-learn (an optional extra: "
                                "pip install scikit-learn); it is not installed") from None
    bunch = _sk_load_digits()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


# --------------------------------------------------------------- subsets and targets
def balanced_indices(labels, classes, n, seed=0) -> np.ndarray:
    """Indices of a class-balanced random sample of size ``n`` from ``classes``.

    Each class contributes ``n // C`` examples (the first ``n % C`` classes one more);
    the result is shuffled.
    """
    labels = np.asarray(labels)
    n = positive_int(n, "n")
    classes = [int(c) for c in classes]
    C = len(classes)
    if C < 1 or len(set(classes)) != C:
        raise ValueError(f"classes must be distinct labels, got {classes}")
    rng = as_generator(seed)
    counts = [n // C + (i < n % C) for i in range(C)]
    chosen = []
    for c, count in zip(classes, counts):
        pool = np.flatnonzero(labels == c)
        if len(pool) < count:
            raise ValueError(f"class {c} has {len(pool)} examples, fewer than the {count} "
                             f"requested (n = {n} over {C} classes)")
        chosen.append(rng.choice(pool, size=count, replace=False))
    idx = np.concatenate(chosen)
    rng.shuffle(idx)
    return idx


def normalize_inputs(X, method: str = "sphere") -> np.ndarray:
    """Normalise rows of ``X (n, d)``.

    ``"sphere"``: ``x -> sqrt(d) x / ||x||`` (so ``||x||^2 = d``; zero rows stay zero);
    ``"standardize"``: each feature to mean 0 and standard deviation 1 over the sample
    (constant features become 0); ``"none"``: unchanged.
    """
    one_of(method, "normalize", NORMALIZATIONS)
    X = np.asarray(X, dtype=np.float64)
    if method == "sphere":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return np.where(norms > 0, X * np.sqrt(X.shape[1]) / np.where(norms > 0, norms, 1.0), 0.0)
    if method == "standardize":
        mu, sd = X.mean(axis=0), X.std(axis=0)
        return np.where(sd > 0, (X - mu) / np.where(sd > 0, sd, 1.0), 0.0)
    return X


def image_classification(dataset: str, n: int, classes=None, data_dir=None, split: str = "train",
                         seed=0, normalize: str = "sphere", centered: bool = True) -> Dataset:
    """A balanced class subset of MNIST, CIFAR-10 or digits with one-hot targets.

    Pixels are scaled to ``[0, 1]`` and flattened, then normalised (:func:`normalize_inputs`);
    labels are remapped to ``0..C-1`` in the order of ``classes`` (default: all ten) and
    turned into (centred) one-hot targets by :func:`numerics.synthetic.one_hot`.
    """
    one_of(dataset, "dataset", DATASETS[1:])
    one_of(normalize, "normalize", NORMALIZATIONS)
    classes = list(range(10)) if classes is None else [int(c) for c in classes]
    if any(c < 0 or c > 9 for c in classes):
        raise ValueError(f"classes must be labels in 0..9, got {classes}")
    if len(classes) < 2:
        raise ValueError(f"classes must hold at least two labels, got {classes}")
    if dataset == "mnist":
        images, labels = load_mnist(data_dir, split)
        scale = 255.0
    elif dataset == "cifar10":
        images, labels = load_cifar10(data_dir, split)
        scale = 255.0
    else:
        images, labels = load_digits()
        scale = 16.0
    idx = balanced_indices(labels, classes, n, seed)
    X = images[idx].reshape(len(idx), -1).astype(np.float64) / scale
    remap = {c: i for i, c in enumerate(classes)}
    y = np.array([remap[int(c)] for c in labels[idx]], dtype=np.int64)
    return Dataset(normalize_inputs(X, normalize), one_hot(y, len(classes), centered),
                   {"labels": y, "classes": np.array(classes), "indices": idx, "source": dataset})


def classification_task(dataset: str = "synthetic", n: int = 300, num_classes: int = 4,
                        data_dir=None, seed=0, d: int = 30, fallback: bool = False,
                        normalize: str = "sphere", **synthetic) -> Dataset:
    """The task of the alignment experiments: synthetic mixture or a real data subset.

    ``"synthetic"`` is :func:`numerics.synthetic.gaussian_mixture_classes` ``(n, d, num_classes,
    **synthetic)``; a real ``dataset`` takes the first ``num_classes`` classes. With
    ``fallback`` a missing real data set falls back to the synthetic task
    (``info["source"]`` says which was used); without it the error propagates.
    """
    one_of(dataset, "dataset", DATASETS)
    num_classes = positive_int(num_classes, "num_classes", minimum=2)
    if dataset != "synthetic":
        try:
            return image_classification(dataset, n, list(range(num_classes)), data_dir,
                                        seed=seed, normalize=normalize)
        except FileNotFoundError:
            if not fallback:
                raise
    ds = gaussian_mixture_classes(n, d, num_classes=num_classes, seed=seed, **synthetic)
    ds.info["source"] = "synthetic"
    return ds
