"""Atomic writes and the ``.npz`` result cache keyed by a hash of the configuration."""
from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import __version__

_UMASK = os.umask(0)
os.umask(_UMASK)


def library_version() -> str:
    return __version__


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hex digest of every ``.py`` file of the installed ``ntkdyn`` package and of the numpy and
    scipy versions: an edit to any module, or another numpy/scipy, changes every cache key."""
    import scipy

    import ntkdyn

    digest = hashlib.sha256()
    roots = []
    for name in ("ntkdyn", "ntkdyn.base", "ntkdyn.theory", "ntkdyn.numerics", "ntkdyn.figures"):
        roots += [Path(p) for p in importlib.import_module(name).__path__]
    for root in sorted(set(roots)):
        for path in sorted(root.glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"numpy {np.__version__} scipy {scipy.__version__} "
                  f"ntkdyn {ntkdyn.__version__}".encode())
    return digest.hexdigest()[:16]


def config_hash(name: str, config: dict) -> str:
    """Hex digest of the experiment name, its configuration and the code
    (:func:`code_fingerprint`)."""
    payload = json.dumps({"experiment": name, "config": config, "code": code_fingerprint()},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary files
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, allow_nan=False, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def save_result(path: Path, result: dict) -> None:
    """Write a dict of arrays as ``.npz`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in result.items()})


def load_result(path: Path) -> dict | None:
    """Read a cached result; ``None`` (after deleting it) when missing or corrupt."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        print(f"ntkdyn: discarding corrupt cache file {path} ({exc.__class__.__name__}); "
              "recomputing")
        path.unlink(missing_ok=True)
        return None
