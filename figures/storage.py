"""Atomic writes, the output-folder check and the ``.npz`` result cache keyed by a hash of the
configuration.

Every file is written to a temporary file beside its destination and renamed over it only when
complete, so an error (disk full, no permission) or an interrupt never leaves a partial file;
an OS error becomes :class:`OutputError`, one line naming the file. :func:`check_output_dir`
creates an output folder and writes (and removes) a probe file in it before any computation.

A cached result is an ``.npz`` with a manifest (its keys, dtypes and shapes, as JSON in the
archive's comment, which ``numpy.load`` ignores); a cache entry that cannot be read or disagrees
with its manifest (truncated, wrong keys, wrong shapes, a folder at its path, no permission) is
reported in one line on stderr (not under :func:`quiet_notices`, which ``--quiet`` sets) and
treated as missing, so the result is recomputed.
"""
from __future__ import annotations

import contextvars
import functools
import hashlib
import importlib
import json
import os
import sys
import tempfile
import time
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import __version__

_UMASK = os.umask(0)
os.umask(_UMASK)

PROBE_BYTES = 4096

#: Whether cache notices are silenced in this context (:func:`quiet_notices`).
_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("ntkdyn_quiet", default=False)


@contextmanager
def quiet_notices(quiet: bool = True):
    """Silence (or, with ``quiet=False``, allow) the cache notices of :func:`load_result` for
    the calls made inside the block."""
    token = _QUIET.set(bool(quiet))
    try:
        yield
    finally:
        _QUIET.reset(token)


class OutputError(OSError):
    """A result folder or file cannot be written (no permission, not a folder, disk full).

    The message is one line naming the path; ``errno`` is that of the underlying error.
    """

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


def _reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


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


def check_output_dir(folder, name: str = "out") -> Path:
    """Create ``folder`` (and its parents) and check that files can be written in it.

    A probe file of :data:`PROBE_BYTES` bytes is written, flushed to disk and removed, so a
    read-only folder, a regular file at the path or a full disk is found before any
    computation.

    Parameters
    ----------
    folder : str or Path
        The output folder.
    name : str
        How the caller calls it (``"out"``, ``"--out"``), used in the message.

    Returns
    -------
    Path
        ``folder`` as a ``Path``.

    Raises
    ------
    OutputError
        One line naming ``name`` and the folder, and why it cannot be written.
    """
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{name} {path} is not a folder (a file of that name exists)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{name} {path}: cannot create the folder ({_reason(exc)})",
                          exc.errno) from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".ntkdyn-write-test-")
    except OSError as exc:
        raise OutputError(f"{name} {path} is not writable ({_reason(exc)})", exc.errno) from None
    try:
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{name} {path} is not writable ({_reason(exc)})", exc.errno) from None
    return path


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    On any error or interrupt the temporary file is removed; an ``OSError`` (disk full, no
    permission, a folder in the way) is raised again as :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {path} ({_reason(exc)})", exc.errno) from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary files
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(f"cannot write {path} ({_reason(exc)}); nothing was left there",
                              exc.errno) from None
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


def _manifest(arrays: dict) -> dict:
    return {k: [v.dtype.str, list(v.shape)] for k, v in arrays.items()}


def _manifest_comment(arrays: dict) -> bytes:
    """The manifest as a zip-archive comment (at most 65535 bytes: past that, its digest)."""
    full = json.dumps({"ntkdyn": 1, "arrays": _manifest(arrays)}, sort_keys=True)
    if len(full) <= 65535:
        return full.encode()
    digest = hashlib.sha256(full.encode()).hexdigest()
    return json.dumps({"ntkdyn": 1, "digest": digest}).encode()


def save_result(path: Path, result: dict) -> None:
    """Write a dict of arrays as ``.npz`` atomically, with a manifest of its keys, dtypes and
    shapes in the archive's comment (checked by :func:`load_result`; ``numpy.load`` ignores
    it)."""
    arrays = {str(k): np.asarray(v) for k, v in result.items()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.comment = _manifest_comment(arrays)


def _read_checked(path: Path) -> dict:
    """The arrays of ``path``; ``ValueError`` saying what disagrees with the manifest."""
    data = np.load(path, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError("not an .npz archive")
    with data:
        comment = data.zip.comment
        arrays = {k: data[k] for k in data.files}
    if not comment:
        raise ValueError(f"no manifest (keys {sorted(arrays)}; not written by ntkdyn)")
    manifest = json.loads(comment.decode())
    if not isinstance(manifest, dict) or manifest.get("ntkdyn") != 1:
        raise ValueError("its comment is not an ntkdyn manifest")
    if "digest" in manifest:
        if _manifest_comment(arrays) != comment:
            raise ValueError("its arrays disagree with the digest of its manifest")
        return arrays
    listed = manifest.get("arrays")
    if not isinstance(listed, dict) or set(listed) != set(arrays):
        names = sorted(listed) if isinstance(listed, dict) else listed
        raise ValueError(f"holds keys {sorted(arrays)}, its manifest lists {names}")
    found = _manifest(arrays)
    for key, entry in sorted(listed.items()):
        if not isinstance(entry, list) or len(entry) != 2 or found[key] != [entry[0],
                                                                            list(entry[1])]:
            raise ValueError(f"array {key!r} is {found[key][0]} of shape "
                             f"{tuple(found[key][1])}, its manifest says {entry}")
    return arrays


def _set_aside(path: Path) -> Path:
    """Rename a folder found at a cache path out of the way (its contents are kept)."""
    target = path.with_name(f"{path.name}.not-a-cache-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, target)
    return target


def load_result(path: Path, quiet: bool | None = None) -> dict | None:
    """Read a cached result; ``None`` when it is missing or unusable.

    An unusable entry (unreadable, truncated, not an ``.npz``, keys or shapes that disagree
    with its manifest, a folder at the path) is reported in one line on stderr unless
    ``quiet`` (``None``: as :func:`quiet_notices` set it; not quiet by default), then removed
    (a folder is renamed aside, keeping its contents), so the caller recomputes and rewrites
    it. Nothing is ever printed on stdout.
    """
    path = Path(path)
    if not os.path.lexists(path):
        return None
    try:
        if path.is_dir():
            moved = _set_aside(path)
            _notice(f"cache entry {path} is a folder, not a file; moved it to {moved.name}",
                    quiet)
            return None
        return _read_checked(path)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
            json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = (f"{exc.__class__.__name__}: {_reason(exc)}" if isinstance(exc, OSError)
                  else f"{exc.__class__.__name__}: {exc}")
        _notice(f"discarding unusable cache entry {path} ({_one_line(reason)})", quiet)
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass  # rewriting it (os.replace) or the output check reports a folder we cannot use
        return None


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _notice(message: str, quiet: bool | None) -> None:
    if not (_QUIET.get() if quiet is None else quiet):
        print(f"ntkdyn: {message}; recomputing", file=sys.stderr, flush=True)
