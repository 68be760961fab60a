"""Real classification data: validated readers, a ``.npy`` cache and :func:`load_dataset`.

Data sets (:data:`DATASETS`):

* ``synthetic-mixture``: :func:`numerics.synthetic.gaussian_mixture_classes` in dimension ``d``.
* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, 64 features in 0..16).
* ``mnist1d``: MNIST-1D (Greydanus & Kobak 2024), made locally by the ``mnist1d`` package's
  procedural generator with its default arguments (4000 training and 1000 test signals of
  length 40); nothing is downloaded, the arrays are cached as ``.npy`` in the data home.
* ``mnist``, ``fashion-mnist`` (IDX files, LeCun et al. 1998; Xiao et al. 2017), ``cifar10``,
  ``cifar100`` (the python batches of Krizhevsky 2009) and ``svhn`` (the cropped-digit ``.mat``
  files of Netzer et al. 2011): files located by :func:`numerics.fetch.local_files`
  (fetched once with ``ntkdyn data fetch NAME``; nothing here downloads). After the first parse
  the arrays are cached as ``.npy`` beside the files and memory-mapped on later loads.

Every file is validated before use, and each problem is a one-line ``ValueError`` naming the
file: IDX data must be uint8 unless the caller declares another type; NaN or inf are refused;
labels must lie in the class range and be as many as the images; a header's size claim beyond
what the file can hold is refused before anything is allocated; gzip data are inflated
incrementally up to :data:`MAX_DECOMPRESSED_BYTES` (a gzip bomb is refused, never inflated);
every length claim in a CIFAR pickle is checked against the file before unpickling, and the
unpickler only builds arrays, lists, dicts and strings.

The preparation of the alignment experiments (after Shan & Bordelon 2021): balanced class
subsets, inputs centred and projected to the sphere ``||x||^2 = d``, centred one-hot targets
``e_c - 1/C`` (or ``y = +-1`` for the odd/even task of their Fig. 1).

The older entry points (:func:`load_mnist`, :func:`load_cifar10`, :func:`image_classification`,
:func:`classification_task`) read files from ``data_dir`` or ``$NTKDYN_DATA`` in the layout
documented at :func:`load_mnist` and :func:`load_cifar10`, through the same validated readers.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import pickletools
import random
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base.validation import as_generator, one_of, positive_int
from .synthetic import Dataset, gaussian_mixture_classes, one_hot

ENV_VAR = "NTKDYN_DATA"
DATASETS = ("synthetic-mixture", "digits", "mnist1d", "mnist", "fashion-mnist", "cifar10",
            "cifar100", "svhn")
PREPROCESSING = ("sphere", "center", "none")
NORMALIZATIONS = ("sphere", "standardize", "none")
# Names accepted by the older entry points image_classification / classification_task.
LEGACY_DATASETS = ("synthetic", "mnist", "cifar10", "digits")

#: Largest number of bytes a data file may hold once decompressed (the largest real file,
#: MNIST's training images, holds 47 MB).
MAX_DECOMPRESSED_BYTES = 1 << 30
# Deflate cannot compress better than about 1032:1 (RFC 1951: a 258-byte match in at most
# 2 bits), so a gzip file claiming more than this ratio times its size is lying.
_DEFLATE_MAX_RATIO = 1032
_CHUNK = 1 << 24

# IDX type codes (third byte of the magic number) -> big-endian NumPy dtype.
_IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_CIFAR_ROW = 3 * 32 * 32


@dataclass(frozen=True)
class _Spec:
    """What is known of a data set before reading it (for the checks of bad input)."""

    num_classes: int
    dim: int | None          # input dimension (None: chosen by ``d``)
    min_train: int | None    # smallest class count in the training split (None: unbounded)
    min_test: int | None     # smallest class count in the test split (None: shared pool)
    scale: float             # raw values are divided by this (pixels to [0, 1])


# Class counts: MNIST's smallest class is digit 5 (5421 train, 892 test; LeCun et al. 1998);
# Fashion-MNIST and CIFAR-10 are exactly balanced; digits' smallest class has 174 images;
# MNIST-1D's default generator gives at least 394 (train) and 89 (test) per class; CIFAR-100 has
# 500 + 100 per class; SVHN's smallest class is digit 9 (4659 train, 1595 test). The counts
# are checked again exactly once the labels are read.
_SPECS = {
    "synthetic-mixture": _Spec(4, None, None, None, 1.0),
    "digits": _Spec(10, 64, 174, None, 16.0),
    "mnist1d": _Spec(10, 40, 394, 89, 1.0),
    "mnist": _Spec(10, 784, 5421, 892, 255.0),
    "fashion-mnist": _Spec(10, 784, 6000, 1000, 255.0),
    "cifar10": _Spec(10, _CIFAR_ROW, 5000, 1000, 255.0),
    "cifar100": _Spec(100, _CIFAR_ROW, 500, 100, 255.0),
    "svhn": _Spec(10, _CIFAR_ROW, 4659, 1595, 255.0),
}


# ------------------------------------------------------------------------- locations
def resolve_data_dir(data_dir=None) -> Path:
    """The data folder of the older entry points: ``data_dir`` if given, else ``$NTKDYN_DATA``.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The folder; ``None`` or ``""`` reads ``$NTKDYN_DATA``.

    Returns
    -------
    pathlib.Path
        The existing folder.

    Raises
    ------
    FileNotFoundError
        If no folder is given or set, or it does not exist.
    """
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


# ------------------------------------------------------------------- bounded reading
def _bad(path, problem: str) -> ValueError:
    return ValueError(f"file {str(path)!r}: {problem}")


class _Stream:
    """A data file opened for bounded reading: plain, or gunzipped incrementally.

    gzip is detected from the first bytes (``1f 8b``), not the name. ``size`` is the size of
    the file on disk; ``gz`` says whether it is compressed.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"file {str(self.path)!r} not found")
        self.size = self.path.stat().st_size
        self._fh = open(self.path, "rb")
        self.gz = self._fh.read(2) == b"\x1f\x8b"
        self._fh.seek(0)
        self._reader = gzip.GzipFile(fileobj=self._fh, mode="rb") if self.gz else self._fh

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.gz:
            self._reader.close()
        self._fh.close()

    def read(self, n: int) -> bytes:
        """At most ``n`` bytes (fewer only at the end of the data)."""
        try:
            chunks, left = [], n
            while left > 0:
                chunk = self._reader.read(min(left, _CHUNK))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        except (OSError, EOFError, zlib.error) as exc:
            raise _bad(self.path, f"corrupt or truncated gzip data ({exc})") from None

    def check_claim(self, nbytes: int, what: str) -> None:
        """Refuse a claim of ``nbytes`` decompressed bytes the file cannot hold."""
        if nbytes > MAX_DECOMPRESSED_BYTES:
            raise _bad(self.path, f"{what} claims {nbytes} bytes, more than the limit of "
                                  f"{MAX_DECOMPRESSED_BYTES} bytes (MAX_DECOMPRESSED_BYTES); "
                                  "refused before reading")
        if self.gz and nbytes > _DEFLATE_MAX_RATIO * self.size:
            raise _bad(self.path, f"{what} claims {nbytes} bytes, more than a gzip file of "
                                  f"{self.size} bytes can hold (a gzip bomb or a corrupt file)")

    def read_all(self) -> bytes:
        """The whole (decompressed) content, refused once it exceeds the bound."""
        if not self.gz:
            self.check_claim(self.size, "the file")
        data = self.read(MAX_DECOMPRESSED_BYTES + 1)
        if len(data) > MAX_DECOMPRESSED_BYTES:
            raise _bad(self.path, f"decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes "
                                  "(MAX_DECOMPRESSED_BYTES; a gzip bomb?); refused")
        return data


def _read_bytes(path: Path) -> bytes:
    """File contents, gunzipped when the file starts with the gzip magic, bounded in size."""
    with _Stream(path) as stream:
        return stream.read_all()


# ------------------------------------------------------------------------------- IDX
def read_idx(path, expected_ndim: int | None = None, dtype=np.uint8) -> np.ndarray:
    """Read an IDX file (gzipped or not) into an array of its stored type and shape.

    Format (LeCun et al. 1998): magic number ``0x0000 TT DD`` (``TT`` the type code, ``DD``
    the number of dimensions), then ``DD`` big-endian ``int32`` sizes, then the data in C
    order. ``dtype`` is the stored type the caller accepts (default uint8, the type of the
    MNIST files; ``None`` accepts any). The size the header declares is checked against the
    file before anything is read; float data must be finite.

    Parameters
    ----------
    path : str or os.PathLike
        The IDX file, gzipped or not.
    expected_ndim : int, optional
        The number of dimensions the data must have.
    dtype : numpy.dtype or None, optional
        The stored type accepted (default uint8; ``None`` accepts any).

    Returns
    -------
    numpy.ndarray
        The data, of the shape the header declares, in native byte order.
    """
    path = Path(path)
    with _Stream(path) as stream:
        head = stream.read(4)
        if len(head) < 4:
            raise _bad(path, f"truncated IDX file ({len(head)} bytes, no header)")
        zero, type_code, ndim = int.from_bytes(head[:2], "big"), head[2], head[3]
        magic = int.from_bytes(head, "big")
        if zero != 0 or type_code not in _IDX_TYPES or ndim == 0:
            raise _bad(path, f"wrong magic number 0x{magic:08x} "
                             "(not an IDX file; expected 0x000008DD for unsigned-byte data)")
        if expected_ndim is not None and ndim != expected_ndim:
            raise _bad(path, f"wrong magic number 0x{magic:08x}: {ndim}-dimensional data where "
                             f"{expected_ndim} dimensions were expected "
                             f"(0x{0x800 + expected_ndim:08x})")
        stored = _IDX_TYPES[type_code]
        if dtype is not None:
            wanted = np.dtype(dtype)
            if (stored.kind, stored.itemsize) != (wanted.kind, wanted.itemsize):
                raise _bad(path, f"IDX data of type {stored.newbyteorder('=').name} "
                                 f"(code 0x{type_code:02x}) where {wanted.name} was expected "
                                 "(declare dtype= to read it)")
        sizes = stream.read(4 * ndim)
        if len(sizes) < 4 * ndim:
            raise _bad(path, "truncated IDX header")
        shape = tuple(int.from_bytes(sizes[4 * i: 4 * i + 4], "big") for i in range(ndim))
        count = 1
        for s in shape:
            count *= s
        expected = count * stored.itemsize
        stream.check_claim(expected, f"the header (shape {shape})")
        if not stream.gz:
            found = stream.size - 4 - 4 * ndim
            if found < expected:
                raise _bad(path, f"truncated file: header declares shape {shape} "
                                 f"({expected} bytes of data), found {found} bytes")
            if found > expected:
                raise _bad(path, f"{found - expected} unexpected trailing bytes after the data "
                                 f"of shape {shape}")
        raw = stream.read(expected)
        if len(raw) < expected:
            raise _bad(path, f"truncated file: header declares shape {shape} "
                             f"({expected} bytes of data), found {len(raw)} bytes")
        if stream.read(1):
            raise _bad(path, f"more data than the header declares (shape {shape}, "
                             f"{expected} bytes); refused")
    data = np.frombuffer(raw, dtype=stored, count=count).reshape(shape)
    data = data.astype(stored.newbyteorder("="))
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise _bad(path, f"{bad} non-finite values (NaN or inf) in the data")
    return data


def _check_labels(labels: np.ndarray, num_classes: int, path) -> np.ndarray:
    """Integer labels in ``0..num_classes-1`` as int64 (a one-line error naming ``path``)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise _bad(path, f"labels must be a 1-D list of integers, got {labels.dtype} "
                         f"{labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise _bad(path, f"labels must lie in 0..{num_classes - 1}, found values in "
                         f"{int(labels.min())}..{int(labels.max())}")
    return labels.astype(np.int64)


def read_idx_pair(images_path, labels_path, num_classes: int = 10):
    """Images and labels from two IDX files, validated.

    Parameters
    ----------
    images_path : str or os.PathLike
        The 3-D uint8 image file.
    labels_path : str or os.PathLike
        The 1-D uint8 label file.
    num_classes : int, optional
        Labels must lie in ``0..num_classes-1``.

    Returns
    -------
    images : numpy.ndarray, shape (n, rows, cols)
        uint8 images.
    labels : numpy.ndarray, shape (n,)
        int64 labels.
    """
    images = read_idx(images_path, expected_ndim=3)
    labels = _check_labels(read_idx(labels_path, expected_ndim=1), num_classes, labels_path)
    if len(labels) != len(images):
        raise ValueError(f"label count mismatch: {str(labels_path)!r} holds {len(labels)} "
                         f"labels but {str(images_path)!r} holds {len(images)} images")
    return images, labels


def load_mnist(data_dir=None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST images ``(n, 28, 28)`` uint8 and labels ``(n,)`` int64 from local IDX files.

    Looks in ``data_dir`` (or ``$NTKDYN_DATA``) and its sub-folders ``mnist/``, ``MNIST/``,
    ``MNIST/raw/`` for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally gzipped.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The data folder (default ``$NTKDYN_DATA``).
    split : {"train", "test"}, optional
        The official split.

    Returns
    -------
    images : numpy.ndarray, shape (n, 28, 28)
        uint8 images.
    labels : numpy.ndarray, shape (n,)
        int64 labels ``0..9``.
    """
    one_of(split, "split", tuple(_MNIST_FILES))
    root = resolve_data_dir(data_dir)
    subdirs = ("", "mnist", "MNIST", "MNIST/raw")
    names = _MNIST_FILES[split]
    paths = [_find(root, subdirs, name, gz=True) for name in names]
    if any(p is None for p in paths):
        missing = [f"{n}[.gz]" for n, p in zip(names, paths) if p is None]
        raise _missing("MNIST", root, subdirs, missing,
                       "put the IDX files of http://yann.lecun.com/exdb/mnist/ there "
                       "(gzipped or not), or run `ntkdyn data fetch mnist`")
    return read_idx_pair(paths[0], paths[1])


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


def _check_pickle_claims(raw: bytes, path) -> None:
    """Walk the pickle's opcodes: every length it claims must fit in the bytes that follow."""
    try:
        for _ in pickletools.genops(io.BytesIO(raw)):
            pass
    except (ValueError, EOFError, OverflowError, MemoryError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _bad(path, f"not a readable CIFAR batch (truncated, or a size claim beyond the "
                         f"file's {len(raw)} bytes: {text})") from None


def read_cifar_batch(path, label_key: str = "labels",
                     num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python batch: ``data`` ``(n, 3072)`` uint8 (R, G, B planes) and labels.

    Parameters
    ----------
    path : str or os.PathLike
        The batch file (a pickle, gzipped or not).
    label_key : str, optional
        ``"labels"`` for CIFAR-10 (``"fine_labels"`` for CIFAR-100's 100 classes).
    num_classes : int, optional
        Labels must lie in ``0..num_classes-1``.

    Returns
    -------
    data : numpy.ndarray, shape (n, 3072)
        uint8 images, the R, G and B planes of 32 x 32 pixels.
    labels : numpy.ndarray, shape (n,)
        int64 labels.
    """
    path = Path(path)
    raw = _read_bytes(path)
    _check_pickle_claims(raw, path)
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError, OverflowError) as exc:
        raise _bad(path, f"not a readable CIFAR-10 batch (truncated or not a pickle: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                   ) from None
    if not isinstance(batch, dict):
        raise _bad(path, f"a CIFAR-10 batch must be a dict, got {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or label_key not in batch:
        raise _bad(path, f"a CIFAR-10 batch needs keys 'data' and {label_key!r}, "
                         f"found {sorted(map(str, batch))}")
    data = np.asarray(batch["data"])
    if data.ndim != 2 or data.shape[1] != _CIFAR_ROW or data.dtype != np.uint8:
        raise _bad(path, f"'data' must be a uint8 array of shape (n, {_CIFAR_ROW}), "
                         f"got {data.dtype} {data.shape}")
    try:
        labels = np.asarray(batch[label_key])
    except (ValueError, TypeError):
        raise _bad(path, f"{label_key!r} must be a list of integers") from None
    labels = _check_labels(labels, num_classes, path)
    if len(labels) != len(data):
        raise ValueError(f"label count mismatch in {str(path)!r}: {len(labels)} labels for "
                         f"{len(data)} images")
    return data, labels


def load_cifar10(data_dir=None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 images ``(n, 3072)`` uint8 and labels ``(n,)`` from the python batch files.

    Looks in ``data_dir`` (or ``$NTKDYN_DATA``) and its sub-folders ``cifar-10-batches-py/``,
    ``cifar10/`` for ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The data folder (default ``$NTKDYN_DATA``).
    split : {"train", "test"}, optional
        The official split.

    Returns
    -------
    images : numpy.ndarray, shape (n, 3072)
        uint8 images.
    labels : numpy.ndarray, shape (n,)
        int64 labels ``0..9``.
    """
    one_of(split, "split", tuple(_CIFAR_FILES))
    root = resolve_data_dir(data_dir)
    subdirs = ("", "cifar-10-batches-py", "cifar10")
    names = _CIFAR_FILES[split]
    paths = [_find(root, subdirs, name, gz=False) for name in names]
    if any(p is None for p in paths):
        raise _missing("CIFAR-10", root, subdirs, [n for n, p in zip(names, paths) if p is None],
                       "extract cifar-10-python.tar.gz from "
                       "https://www.cs.toronto.edu/~kriz/cifar.html there, or run "
                       "`ntkdyn data fetch cifar10`")
    return _read_cifar_batches(paths)


def _read_cifar_batches(paths) -> tuple[np.ndarray, np.ndarray]:
    parts = [read_cifar_batch(p) for p in paths]
    return np.concatenate([d for d, _ in parts]), np.concatenate([l for _, l in parts])


# ---------------------------------------------------------------------- .npy cache
def _atomic_save(path: Path, array: np.ndarray) -> None:
    """``np.save`` to a temporary file in the same folder, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_npy(path: Path) -> np.ndarray | None:
    """A memory-mapped ``.npy`` array, or ``None`` when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None


def _source_key(paths) -> str:
    """A short key of the source files (name, size, modification time) for the cache names."""
    text = "|".join(f"{Path(p).name}:{Path(p).stat().st_size}:{Path(p).stat().st_mtime_ns}"
                    for p in paths)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cached(folder: Path, stem: str, key: str, names, parse, valid):
    """Arrays ``names`` from ``folder/{stem}-{name}-{key}.npy``, else ``parse()`` and save them.

    ``valid(arrays)`` says whether cached arrays are usable; unreadable or invalid cache files
    are discarded and the sources re-parsed. Saving is skipped where the folder is read-only.
    """
    paths = [folder / f"{stem}-{name}-{key}.npy" for name in names]
    arrays = [_load_npy(p) for p in paths]
    if all(a is not None for a in arrays):
        try:
            if valid(arrays):
                return arrays
        except (OSError, ValueError):
            pass
    for p in paths:
        p.unlink(missing_ok=True)
    arrays = parse()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(f"{stem}-*.npy"):
            if old not in paths:
                old.unlink(missing_ok=True)
        for p, a in zip(paths, arrays):
            _atomic_save(p, a)
    except OSError:
        pass
    return arrays


def _valid_images_labels(image_shape, num_classes):
    def valid(arrays):
        images, labels = arrays
        return (images.dtype == np.uint8 and images.shape[1:] == image_shape
                and labels.dtype == np.int64 and labels.ndim == 1
                and len(labels) == len(images)
                and (labels.size == 0 or (labels.min() >= 0 and labels.max() < num_classes)))
    return valid


# ------------------------------------------------------------------------------ SVHN
def _check_mat_claims(path: Path) -> None:
    """Walk a MATLAB v5 file's top-level data elements: each size claim must fit in the file."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        header = fh.read(128)
        if len(header) < 128 or header[126:128] not in (b"IM", b"MI"):
            raise _bad(path, "not a MATLAB v5 .mat file (no 128-byte header with 'IM'/'MI')")
        order = "<" if header[126:128] == b"IM" else ">"
        pos = 128
        while pos < size:
            tag = fh.read(8)
            if len(tag) < 8:
                raise _bad(path, f"truncated .mat file (a data element's tag at byte {pos})")
            nbytes = int(np.frombuffer(tag, dtype=f"{order}u4")[1])
            if nbytes > size - pos - 8:
                raise _bad(path, f"a data element claims {nbytes} bytes, more than the "
                                 f"{size - pos - 8} bytes left in the file")
            pos += 8 + nbytes
            fh.seek(pos)


def read_svhn_mat(path) -> tuple[np.ndarray, np.ndarray]:
    """SVHN cropped digits (Netzer et al. 2011): images ``(n, 3072)`` uint8 and labels ``0..9``.

    The ``.mat`` file holds ``X (32, 32, 3, n)`` and ``y (n, 1)`` with label 10 for digit 0;
    images are returned in the CIFAR order (R, G, B planes of 32 x 32), digit 0 as label 0.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.mat`` file.

    Returns
    -------
    images : numpy.ndarray, shape (n, 3072)
        uint8 images.
    labels : numpy.ndarray, shape (n,)
        int64 labels ``0..9``.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file {str(path)!r} not found")
    if path.stat().st_size > MAX_DECOMPRESSED_BYTES:
        raise _bad(path, f"larger than {MAX_DECOMPRESSED_BYTES} bytes (MAX_DECOMPRESSED_BYTES)")
    _check_mat_claims(path)
    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    except (ValueError, TypeError, OSError, MemoryError, NotImplementedError,
            scipy.io.matlab.MatReadError) as exc:
        raise _bad(path, f"not a readable SVHN .mat file ({str(exc).splitlines()[0]})") from None
    if "X" not in mat or "y" not in mat:
        raise _bad(path, f"an SVHN .mat file needs variables 'X' and 'y', found "
                         f"{sorted(k for k in mat if not k.startswith('__'))}")
    X, y = np.asarray(mat["X"]), np.asarray(mat["y"])
    if X.ndim != 4 or X.shape[:3] != (32, 32, 3) or X.dtype != np.uint8:
        raise _bad(path, f"'X' must be a uint8 array of shape (32, 32, 3, n), got {X.dtype} "
                         f"{X.shape}")
    y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    labels = _check_labels(y, 11, path)
    if labels.size and labels.min() < 1:
        raise _bad(path, f"labels must lie in 1..10, found {int(labels.min())}")
    if len(labels) != X.shape[3]:
        raise ValueError(f"label count mismatch in {str(path)!r}: {len(labels)} labels for "
                         f"{X.shape[3]} images")
    images = np.ascontiguousarray(X.transpose(3, 2, 0, 1)).reshape(X.shape[3], _CIFAR_ROW)
    return images, labels % 10


# ------------------------------------------------------------------- remote sets
# name -> (format, files of each split, label key, number of classes)
_REMOTE_LAYOUT = {
    "mnist": ("idx", _MNIST_FILES, None, 10),
    "fashion-mnist": ("idx", _MNIST_FILES, None, 10),
    "cifar10": ("cifar", _CIFAR_FILES, "labels", 10),
    "cifar100": ("cifar", {"train": ("train",), "test": ("test",)}, "fine_labels", 100),
    "svhn": ("mat", {"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)}, None, 10),
}


def _remote_split(name: str, split: str, data_dir):
    """Images (uint8, memory-mapped from the ``.npy`` cache when possible), labels, paths.

    The files come from :func:`numerics.fetch.local_files` (verified once after download).
    """
    from . import fetch

    files = fetch.local_files(name, data_dir)
    kind, names, label_key, num_classes = _REMOTE_LAYOUT[name]
    found = []
    for base in names[split]:
        path = files.get(base, files.get(base + ".gz"))
        if path is None:
            raise fetch.DataUnavailable(f"{name}: file {base} is not among the fetched files "
                                        f"({', '.join(sorted(files))}); run "
                                        f"`{fetch.FETCH_COMMAND} {name}`")
        found.append(Path(path))
    if kind == "idx":
        parse, shape = (lambda: list(read_idx_pair(*found))), (28, 28)
    elif kind == "cifar":
        def parse():
            parts = [read_cifar_batch(p, label_key, num_classes) for p in found]
            return [np.concatenate([d for d, _ in parts]), np.concatenate([l for _, l in parts])]
        shape = (_CIFAR_ROW,)
    else:
        parse, shape = (lambda: list(read_svhn_mat(found[0]))), (_CIFAR_ROW,)
    images, labels = _cached(found[0].parent, f"{name}-{split}", _source_key(found),
                             ("images", "labels"), parse,
                             _valid_images_labels(shape, num_classes))
    return images, labels, [str(p) for p in found]


# ---------------------------------------------------------------------------- digits
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits.

    Returns
    -------
    images : numpy.ndarray, shape (1797, 64)
        float64 pixels in 0..16.
    labels : numpy.ndarray, shape (1797,)
        int64 labels ``0..9``.
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:
        raise FileNotFoundError("the 'digits' data set needs scikit-learn (pip install "
                                "'ntkdyn[data]'); it is not installed") from None
    bunch = _sk_load_digits()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def _digits_source() -> str:
    try:
        import sklearn.datasets
    except ImportError:
        return "scikit-learn digits"
    path = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
    return str(path) if path.is_file() else "scikit-learn digits"


# --------------------------------------------------------------------------- mnist1d
def mnist1d_arrays(data_dir=None) -> dict:
    """MNIST-1D from the ``mnist1d`` generator (default arguments), cached as ``.npy``.

    ``mnist1d.data.make_dataset`` is called locally (it seeds NumPy's and Python's global
    generators; their states are restored afterwards); the cache is keyed by the generator's
    arguments and the package version.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The data home of :func:`ntkdyn.numerics.fetch.data_home` holding the cache.

    Returns
    -------
    dict
        ``x (4000, 40)``, ``y (4000,)``, ``x_test (1000, 40)``, ``y_test (1000,)`` and
        ``source`` (where the arrays came from).
    """
    try:
        import mnist1d
        from mnist1d.data import get_dataset_args
    except ImportError:
        raise FileNotFoundError("the 'mnist1d' data set needs the mnist1d package (pip install "
                                "'ntkdyn[data]'); it is not installed") from None
    args = get_dataset_args(as_dict=True)
    args.pop("url", None)
    version = getattr(mnist1d, "__version__", "unknown")
    key = hashlib.sha256(json.dumps({"args": args, "version": version},
                                    sort_keys=True).encode()).hexdigest()[:16]
    from . import fetch

    try:
        folder = Path(fetch.data_home(data_dir)) / "mnist1d"
    except OSError:
        folder = None

    def generate():
        from mnist1d.data import make_dataset
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            made = make_dataset(get_dataset_args())
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        return [np.asarray(made["x"], dtype=np.float64), np.asarray(made["y"], dtype=np.int64),
                np.asarray(made["x_test"], dtype=np.float64),
                np.asarray(made["y_test"], dtype=np.int64)]

    def valid(arrays):
        x, y, xt, yt = arrays
        return (x.dtype == xt.dtype == np.float64 and y.dtype == yt.dtype == np.int64
                and x.ndim == xt.ndim == 2 and x.shape[1] == xt.shape[1]
                and len(x) == len(y) and len(xt) == len(yt)
                and bool(np.all(np.isfinite(x))) and bool(np.all(np.isfinite(xt)))
                and y.min() >= 0 and y.max() < 10 and yt.min() >= 0 and yt.max() < 10)

    names = ("x", "y", "x_test", "y_test")
    arrays = generate() if folder is None else _cached(folder, "mnist1d", key, names, generate,
                                                       valid)
    out = dict(zip(names, arrays))
    out["source"] = "generated" if folder is None else f"generated (cached in {folder})"
    return out


# --------------------------------------------------------------- subsets and targets
def balanced_indices(labels, classes, n, seed=0, name: str = "n") -> np.ndarray:
    """Indices of a class-balanced random sample of size ``n`` from ``classes``.

    Each class contributes ``n // C`` examples (the first ``n % C`` classes one more);
    the result is shuffled.

    Parameters
    ----------
    labels : array_like, shape (N,)
        The labels of the pool.
    classes : sequence of int
        The distinct labels to draw, ``C`` of them.
    n : int
        The sample size.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream.
    name : str, optional
        The argument named in errors.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Indices into ``labels``.
    """
    labels = np.asarray(labels)
    n = positive_int(n, name)
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
                             f"requested ({name} = {n} over {C} classes)")
        chosen.append(rng.choice(pool, size=count, replace=False))
    idx = np.concatenate(chosen)
    rng.shuffle(idx)
    return idx


def normalize_inputs(X, method: str = "sphere") -> np.ndarray:
    """Normalise rows of ``X (n, d)`` (the older entry points; see :func:`preprocess_inputs`).

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs, one per row.
    method : {"sphere", "standardize", "none"}, optional
        ``"sphere"``: ``x -> sqrt(d) x / ||x||`` (so ``||x||^2 = d``; zero rows stay zero);
        ``"standardize"``: each feature to mean 0 and standard deviation 1 over the sample
        (constant features become 0); ``"none"``: unchanged.

    Returns
    -------
    numpy.ndarray, shape (n, d)
        The normalised inputs (float64).
    """
    one_of(method, "normalize", NORMALIZATIONS)
    X = np.asarray(X, dtype=np.float64)
    if method == "sphere":
        return _to_sphere(X)
    if method == "standardize":
        mu, sd = X.mean(axis=0), X.std(axis=0)
        return np.where(sd > 0, (X - mu) / np.where(sd > 0, sd, 1.0), 0.0)
    return X


def _to_sphere(X: np.ndarray) -> np.ndarray:
    """Rows projected to the sphere of radius ``sqrt(d)``; zero rows stay zero."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.where(norms > 0, X * np.sqrt(X.shape[1]) / np.where(norms > 0, norms, 1.0), 0.0)


def preprocess_inputs(X, X_test, method: str = "sphere"):
    """Preprocess training inputs ``X (n, d)`` and test inputs ``X_test (m, d)`` alike.

    ``"center"``: subtract the training mean ``mu = mean_i x_i`` from both; ``"sphere"``:
    centre, then project each input to the sphere of radius ``sqrt(d)``,
    ``x -> sqrt(d) (x - mu) / ||x - mu||`` (zero rows stay zero);
    ``"none"``: unchanged.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Training inputs.
    X_test : array_like, shape (m, d)
        Test inputs.
    method : {"sphere", "center", "none"}, optional
        The preprocessing.

    Returns
    -------
    X : numpy.ndarray, shape (n, d)
        The preprocessed training inputs (float64).
    X_test : numpy.ndarray, shape (m, d)
        The preprocessed test inputs (float64).
    """
    one_of(method, "preprocessing", PREPROCESSING)
    X, X_test = np.asarray(X, dtype=np.float64), np.asarray(X_test, dtype=np.float64)
    if method == "none":
        return X, X_test
    mu = X.mean(axis=0)
    X, X_test = X - mu, X_test - mu
    if method == "center":
        return X, X_test
    return _to_sphere(X), _to_sphere(X_test)


def _checksum(*arrays) -> str:
    """sha256 over each array's dtype, shape and bytes (C order), in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


# ---------------------------------------------------------------------- load_dataset
@dataclass
class DataSplit:
    """A training and a test set of one classification task.

    Parameters
    ----------
    X : numpy.ndarray, shape (n_train, d)
        float64 training inputs after preprocessing.
    Y : numpy.ndarray, shape (n_train, C) or (n_train, 1)
        float64 targets: centred one-hot ``e_c - 1/C`` (column ``c`` is class
        ``info["classes"][c]``), or one column with ``+1`` for odd and ``-1`` for even labels
        when ``info["classes"] == "odd-even"``.
    X_test : numpy.ndarray, shape (n_test, d)
        float64 test inputs, preprocessed like ``X``.
    Y_test : numpy.ndarray, shape (n_test, C) or (n_test, 1)
        Test targets, like ``Y``.
    labels : numpy.ndarray, shape (n_train,)
        int64, the hot column (``0..C-1``; for odd-even ``1`` odd, ``0`` even).
    labels_test : numpy.ndarray, shape (n_test,)
        The same for the test set.
    info : dict
        ``dataset``, ``classes``, ``preprocessing``, ``checksum`` (sha256 of the raw arrays
        used, before preprocessing), ``n_train``, ``n_test``, ``source`` (file paths or
        ``"generated"``), ``original_labels``, ``original_labels_test`` (the data set's own
        labels), ``indices`` and ``indices_test``.
    """

    X: np.ndarray
    Y: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    labels: np.ndarray
    labels_test: np.ndarray
    info: dict = field(default_factory=dict)


def _parse_classes(classes, name: str, num_classes: int):
    """(labels drawn from, recorded classes, odd_even) for the ``classes`` argument."""
    if isinstance(classes, str):
        if classes != "odd-even":
            raise ValueError(f"classes must be None, a list of class labels or 'odd-even', "
                             f"got {classes!r}")
        if name == "synthetic-mixture":
            num_classes = 10
        return list(range(num_classes)), "odd-even", True
    if classes is None:
        return list(range(num_classes)), list(range(num_classes)), False
    try:
        labels = [int(c) for c in classes]
        ok = all(int(c) == c for c in classes) and not any(isinstance(c, bool) for c in classes)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"classes must be None, a list of integer class labels or 'odd-even', "
                         f"got {classes!r}")
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"classes must hold at least two distinct labels, got {labels}")
    if name != "synthetic-mixture" and (min(labels) < 0 or max(labels) >= num_classes):
        raise ValueError(f"classes {labels} lie outside the labels of {name!r} "
                         f"(0..{num_classes - 1})")
    if name == "synthetic-mixture" and min(labels) < 0:
        raise ValueError(f"classes must be non-negative labels, got {labels}")
    return labels, labels, False


def _check_sizes(name, spec: _Spec, n_train: int, n_test: int, C: int) -> None:
    """Refuse sizes the data set cannot supply as balanced subsets, before any work."""
    if spec.min_train is None:
        return
    if spec.min_test is None:  # one pool shared by the disjoint training and test sets
        if n_train + n_test > C * spec.min_train:
            raise ValueError(f"n_train + n_test = {n_train + n_test} is more than {name!r} "
                             f"allows for {C} balanced classes (at most {C * spec.min_train} "
                             f"in all)")
        return
    if n_train > C * spec.min_train:
        raise ValueError(f"n_train = {n_train} is more than the training split of {name!r} "
                         f"allows for {C} balanced classes (at most {C * spec.min_train})")
    if n_test > C * spec.min_test:
        raise ValueError(f"n_test = {n_test} is more than the test split of {name!r} "
                         f"allows for {C} balanced classes (at most {C * spec.min_test})")


def _synthetic_mixture(n_train, n_test, d, C, seed):
    """Raw inputs and labels ``0..C-1`` of a Gaussian mixture: training then test set.

    The training set is exactly ``gaussian_mixture_classes(n_train, d, C, seed=seed)``; the
    test set continues the same generator with the same class means and offset.
    """
    rng = as_generator(seed)
    ds = gaussian_mixture_classes(n_train, d, num_classes=C, seed=rng)
    labels_test = np.arange(n_test) % C
    rng.shuffle(labels_test)
    # radius 5, noise 1: the defaults of gaussian_mixture_classes.
    X_test = 5.0 * ds.info["means"][labels_test] + ds.info["offset"] \
        + 1.0 * rng.standard_normal((n_test, d))
    return ds.X, ds.info["labels"], X_test, labels_test


def load_dataset(name: str, *, n_train: int, n_test: int = 0, classes=None,
                 preprocessing: str = "sphere", seed=0, data_dir=None,
                 d: int | None = None) -> DataSplit:
    """A balanced classification task from one of :data:`DATASETS`, split into train and test.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    n_train, n_test : int
        Sizes of the training and test sets (``n_test = 0``: no test set). Balanced subsets
        (each class ``n // C`` examples, the first ``n % C`` classes one more) are drawn with
        ``seed`` from the official training split and test split; for ``digits`` (no official
        split) the test set is drawn from the images not in the training set.
        ``synthetic-mixture`` draws its test set from the same mixture.
    classes : None, sequence of int or "odd-even", optional
        ``None`` (all classes; ``synthetic-mixture``: 4), a list of class labels (the columns
        of ``Y`` in that order), or ``"odd-even"``: the binary task of Shan & Bordelon (2021,
        Fig. 1), ``y = +1`` for odd and ``-1`` for even labels, over all ten classes.
    preprocessing : {"sphere", "center", "none"}, optional
        See :func:`preprocess_inputs`; pixels are first scaled to ``[0, 1]`` (digits: divided
        by 16).
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream of the subsets (docs/conventions.md).
    data_dir : str or os.PathLike, optional
        Data home of :func:`ntkdyn.numerics.fetch.data_home` (``None``: ``$NTKDYN_DATA`` or
        the platform cache). Remote sets are never downloaded here: a missing set raises
        :class:`ntkdyn.numerics.fetch.DataUnavailable` naming the fetch command.
    d : int, optional
        Input dimension of ``synthetic-mixture`` (default 30); for other sets ``None`` or the
        set's own dimension.

    Returns
    -------
    DataSplit
        The training and test sets, their targets and labels, and ``info``.

    Raises
    ------
    ValueError
        For a bad argument, naming it, before any file is read.
    """
    one_of(name, "name", DATASETS)
    one_of(preprocessing, "preprocessing", PREPROCESSING)
    n_train = positive_int(n_train, "n_train")
    n_test = positive_int(n_test, "n_test", minimum=0)
    spec = _SPECS[name]
    drawn, recorded, odd_even = _parse_classes(classes, name, spec.num_classes)
    if spec.dim is None:
        d = positive_int(30 if d is None else d, "d")
    elif d is not None and d != spec.dim:
        raise ValueError(f"d = {d} does not match {name!r}, whose inputs have {spec.dim} "
                         "dimensions (pass d=None)")
    _check_sizes(name, spec, n_train, n_test, len(drawn))
    rng = as_generator(seed)

    if name == "synthetic-mixture":
        C = max(drawn) + 1 if odd_even else len(drawn)
        Xr, yr, Xr_t, yr_t = _synthetic_mixture(n_train, n_test, d, C, rng)
        if not odd_even:  # the mixture's components 0..C-1 carry the labels in `drawn`
            yr, yr_t = np.asarray(drawn)[yr], np.asarray(drawn)[yr_t]
        idx, idx_t = np.arange(n_train), np.arange(n_test)
        source = "generated"
    else:
        if name == "digits":
            images, labels = load_digits()
            idx = balanced_indices(labels, drawn, n_train, rng, "n_train")
            Xr, yr = images[idx], labels[idx]
            if n_test:
                rest = np.setdiff1d(np.arange(len(labels)), idx)
                idx_t = rest[balanced_indices(labels[rest], drawn, n_test, rng, "n_test")]
            else:
                idx_t = np.zeros(0, dtype=np.int64)
            Xr_t, yr_t = images[idx_t], labels[idx_t]
            source = _digits_source()
        else:
            if name == "mnist1d":
                arrays = mnist1d_arrays(data_dir)
                train = (arrays["x"], arrays["y"])
                test = (lambda: (arrays["x_test"], arrays["y_test"]))
                source = arrays["source"]
            else:
                images, labels, paths = _remote_split(name, "train", data_dir)
                train, source = (images, labels), paths

                def test():
                    images_t, labels_t, paths_t = _remote_split(name, "test", data_dir)
                    source.extend(paths_t)
                    return images_t, labels_t
            idx = balanced_indices(train[1], drawn, n_train, rng, "n_train")
            Xr, yr = train[0][idx], train[1][idx]
            if n_test:
                images_t, labels_t = test()
                idx_t = balanced_indices(labels_t, drawn, n_test, rng, "n_test")
                Xr_t, yr_t = images_t[idx_t], labels_t[idx_t]
            else:
                idx_t = np.zeros(0, dtype=np.int64)
                Xr_t, yr_t = train[0][:0], train[1][:0]
    Xr, Xr_t = np.asarray(Xr), np.asarray(Xr_t)
    yr, yr_t = np.asarray(yr, dtype=np.int64), np.asarray(yr_t, dtype=np.int64)
    checksum = _checksum(Xr, yr, Xr_t, yr_t)

    width = int(np.prod(Xr.shape[1:]))
    X = Xr.reshape(len(Xr), width).astype(np.float64)
    X_test = Xr_t.reshape(len(Xr_t), width).astype(np.float64)
    if spec.scale != 1.0:
        X, X_test = X / spec.scale, X_test / spec.scale
    X, X_test = preprocess_inputs(X, X_test, preprocessing)
    if odd_even:
        lab, lab_t = yr % 2, yr_t % 2
        Y = np.where(lab == 1, 1.0, -1.0)[:, None]
        Y_test = np.where(lab_t == 1, 1.0, -1.0)[:, None]
    else:
        remap = np.full(max(drawn) + 1, -1, dtype=np.int64)
        remap[drawn] = np.arange(len(drawn))
        lab, lab_t = remap[yr], remap[yr_t]
        Y = one_hot(lab, len(drawn)) if len(lab) else np.zeros((0, len(drawn)))
        Y_test = one_hot(lab_t, len(drawn)) if len(lab_t) else np.zeros((0, len(drawn)))
    info = {"dataset": name, "classes": recorded, "preprocessing": preprocessing,
            "checksum": checksum, "n_train": n_train, "n_test": n_test, "source": source,
            "original_labels": yr, "original_labels_test": yr_t,
            "indices": idx, "indices_test": idx_t}
    return DataSplit(X, Y, X_test, Y_test, lab.astype(np.int64), lab_t.astype(np.int64), info)


# ------------------------------------------------------------- older entry points
def image_classification(dataset: str, n: int, classes=None, data_dir=None, split: str = "train",
                         seed=0, normalize: str = "sphere", centered: bool = True) -> Dataset:
    """A balanced class subset of MNIST, CIFAR-10 or digits with one-hot targets.

    Pixels are scaled to ``[0, 1]`` and flattened, then normalised (:func:`normalize_inputs`);
    labels are remapped to ``0..C-1`` in the order of ``classes`` (default: all ten) and
    turned into (centred) one-hot targets by :func:`numerics.synthetic.one_hot`. Files are
    read from ``data_dir`` or ``$NTKDYN_DATA`` (:func:`load_mnist`, :func:`load_cifar10`);
    :func:`load_dataset` is the entry point for the fetched data sets.

    Parameters
    ----------
    dataset : {"mnist", "cifar10", "digits"}
        The data set.
    n : int
        The number of examples (balanced over the classes).
    classes : sequence of int, optional
        Labels in ``0..9`` (default all ten).
    data_dir : str or os.PathLike, optional
        The data folder (default ``$NTKDYN_DATA``).
    split : {"train", "test"}, optional
        The official split.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream of the subset.
    normalize : {"sphere", "standardize", "none"}, optional
        See :func:`normalize_inputs`.
    centered : bool, optional
        Centred one-hot targets ``e_c - 1/C`` (default) or plain one-hot.

    Returns
    -------
    ntkdyn.numerics.synthetic.Dataset
        ``X (n, d)``, ``Y (n, C)`` and ``info`` (``labels``, ``classes``, ``indices``,
        ``source``).
    """
    one_of(dataset, "dataset", LEGACY_DATASETS[1:])
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

    Parameters
    ----------
    dataset : {"synthetic", "mnist", "cifar10", "digits"}, optional
        The data set.
    n : int, optional
        The number of examples.
    num_classes : int, optional
        The number of classes, ``>= 2``.
    data_dir : str or os.PathLike, optional
        The data folder of a real data set.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream.
    d : int, optional
        The input dimension of the synthetic task.
    fallback : bool, optional
        Fall back to the synthetic task when a real data set is missing.
    normalize : {"sphere", "standardize", "none"}, optional
        See :func:`normalize_inputs` (real data sets).
    **synthetic
        Further arguments of :func:`ntkdyn.numerics.synthetic.gaussian_mixture_classes`.

    Returns
    -------
    ntkdyn.numerics.synthetic.Dataset
        ``X (n, d)``, ``Y (n, num_classes)`` and ``info``.
    """
    one_of(dataset, "dataset", LEGACY_DATASETS)
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
