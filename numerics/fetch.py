"""Download of the remote image data sets (MNIST, Fashion-MNIST, CIFAR-10/100, SVHN), verified.

Files are fetched with ``pooch`` (mirrors tried in order, a read timeout in seconds) into the
data home: the ``data_dir`` argument, else ``$NTKDYN_DATA``, else the platform cache folder
(``pooch.os_cache("ntkdyn")``, e.g. ``~/.cache/ntkdyn``); each data set has its own sub-folder.
Every file has a pinned MD5 checksum (its source is cited beside it). A file is checked once,
after its download (or the first time a file put there by hand is used), and the result is
recorded in a small marker file (``.ntkdyn-verified.json``, holding each file's size and
modification time); later loads only compare those, never re-hash. A failed, timed-out or
corrupt download leaves nothing in the folder (pooch streams into a temporary file and moves it
into place only once the checksum matches) and raises :class:`DataUnavailable`, one line naming
the file, the URLs tried and where to put the file by hand. Archives (CIFAR) are extracted after
verification, member by member: only regular files with relative names inside the folder.

Nothing here is called implicitly: loaders use :func:`local_files`, which never downloads.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pooch

ENV_VAR = "NTKDYN_DATA"
MARKER = ".ntkdyn-verified.json"
FETCH_COMMAND = "ntkdyn data fetch"


class DataUnavailable(FileNotFoundError):
    """A remote data set's file is missing or could not be downloaded (a one-line message)."""


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file.

    Parameters
    ----------
    name : str
        File name in the data set's folder.
    md5 : str
        The published MD5 checksum (hex).
    urls : tuple of str
        Mirrors, tried in order.
    size : int, optional
        Size in bytes (``None`` if unknown), for ``ntkdyn data list``.
    members : tuple of str, optional
        For an archive (``.tar.gz``), the paths inside it that are extracted and used; empty
        for a plain file.
    """

    name: str
    md5: str
    urls: tuple[str, ...]
    size: int | None = None
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class RemoteDataset:
    """A downloadable data set: its files, its folder under the data home, its checksums' source.

    Parameters
    ----------
    name : str
        The data set's name (``ntkdyn data fetch NAME``).
    files : tuple of RemoteFile
        Its files.
    subdir : str
        Its folder under the data home.
    description : str
        One line for ``ntkdyn data list``.
    citation : str
        Where the pinned checksums come from.
    """

    name: str
    files: tuple[RemoteFile, ...]
    subdir: str
    description: str
    citation: str


def _mirrored(bases, name, md5, size) -> RemoteFile:
    return RemoteFile(name, md5, tuple(base + name for base in bases), size)


# MNIST (LeCun, Cortes & Burges 1998). Checksums and mirrors: torchvision's dataset source
# (torchvision/datasets/mnist.py, class MNIST: `mirrors` and `resources`); sizes as served.
_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                  "https://storage.googleapis.com/cvdf-datasets/mnist/",
                  "http://yann.lecun.com/exdb/mnist/")
# Fashion-MNIST (Xiao, Rasul & Vollgraf 2017). Checksums: torchvision (class FashionMNIST) and
# the data set's README (github.com/zalandoresearch/fashion-mnist, "Get the Data").
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
                    "data/fashion/")
# CIFAR-10/100 (Krizhevsky 2009): the "python version" archives of
# https://www.cs.toronto.edu/~kriz/cifar.html; checksums from that page and torchvision
# (torchvision/datasets/cifar.py, `tgz_md5`). Second mirror: cave.cs.toronto.edu, where the
# ~kriz pages are reported to have moved (the pinned md5 guards either).
_CIFAR_MIRRORS = ("https://www.cs.toronto.edu/~kriz/", "https://cave.cs.toronto.edu/kriz/")
# SVHN (Netzer et al. 2011), cropped digits: torchvision (torchvision/datasets/svhn.py,
# `split_list`); the 1.3 GB "extra" split is not listed.
_SVHN_MIRRORS = ("http://ufldl.stanford.edu/housenumbers/",)

_CIFAR10_MEMBERS = tuple(f"cifar-10-batches-py/{n}" for n in (
    "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
    "test_batch", "batches.meta"))
_CIFAR100_MEMBERS = tuple(f"cifar-100-python/{n}" for n in ("train", "test", "meta"))

REMOTE: dict[str, RemoteDataset] = {
    "mnist": RemoteDataset(
        "mnist", (
            _mirrored(_MNIST_MIRRORS, "train-images-idx3-ubyte.gz",
                      "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
            _mirrored(_MNIST_MIRRORS, "train-labels-idx1-ubyte.gz",
                      "d53e105ee54ea40749a09fcbcd1e9432", 28881),
            _mirrored(_MNIST_MIRRORS, "t10k-images-idx3-ubyte.gz",
                      "9fb629c4189551a2d022fa330f9573f3", 1648877),
            _mirrored(_MNIST_MIRRORS, "t10k-labels-idx1-ubyte.gz",
                      "ec29112dd5afa0611ce80d1b7f02629c", 4542)),
        "mnist", "MNIST handwritten digits, 60000 + 10000 images 28x28 (IDX, gzipped)",
        "torchvision/datasets/mnist.py (MNIST.resources)"),
    "fashion-mnist": RemoteDataset(
        "fashion-mnist", (
            _mirrored(_FASHION_MIRRORS, "train-images-idx3-ubyte.gz",
                      "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
            _mirrored(_FASHION_MIRRORS, "train-labels-idx1-ubyte.gz",
                      "25c81989df183df01b3e8a0aad5dffbe", 29515),
            _mirrored(_FASHION_MIRRORS, "t10k-images-idx3-ubyte.gz",
                      "bef4ecab320f06d8554ea6380940ec79", 4422102),
            _mirrored(_FASHION_MIRRORS, "t10k-labels-idx1-ubyte.gz",
                      "bb300cfdad3c16e7a12a480ee83cd310", 5148)),
        "fashion-mnist", "Fashion-MNIST clothing images, 60000 + 10000 28x28 (IDX, gzipped)",
        "torchvision/datasets/mnist.py (FashionMNIST.resources); the data set's README"),
    "cifar10": RemoteDataset(
        "cifar10", (
            RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                       tuple(b + "cifar-10-python.tar.gz" for b in _CIFAR_MIRRORS), 170498071,
                       _CIFAR10_MEMBERS),),
        "cifar10", "CIFAR-10 colour images, 50000 + 10000 32x32x3 (python batches, tar.gz)",
        "https://www.cs.toronto.edu/~kriz/cifar.html; torchvision/datasets/cifar.py"),
    "cifar100": RemoteDataset(
        "cifar100", (
            RemoteFile("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                       tuple(b + "cifar-100-python.tar.gz" for b in _CIFAR_MIRRORS), 169001437,
                       _CIFAR100_MEMBERS),),
        "cifar100", "CIFAR-100 colour images, 50000 + 10000 32x32x3 (python, tar.gz)",
        "https://www.cs.toronto.edu/~kriz/cifar.html; torchvision/datasets/cifar.py"),
    "svhn": RemoteDataset(
        "svhn", (
            _mirrored(_SVHN_MIRRORS, "train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373",
                      182040794),
            _mirrored(_SVHN_MIRRORS, "test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3",
                      64275384)),
        "svhn", "SVHN house-number digits, 73257 + 26032 images 32x32x3 (MATLAB .mat)",
        "torchvision/datasets/svhn.py (SVHN.split_list)"),
}


# ------------------------------------------------------------------------------ places
def data_home(data_dir=None, *, create: bool = True) -> Path:
    """The data home: ``data_dir``, else ``$NTKDYN_DATA``, else ``pooch.os_cache("ntkdyn")``.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The folder; ``None`` or ``""`` counts as not given.
    create : bool, optional
        Create the folder (with parents) when it does not exist (default ``True``).

    Returns
    -------
    pathlib.Path
        The data home.
    """
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a path or None, got {type(data_dir).__name__}")
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(ENV_VAR, "") or pooch.os_cache("ntkdyn")
    path = Path(data_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"data_dir {str(path)!r} exists and is not a folder")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def _dataset(name, registry=None) -> RemoteDataset:
    if isinstance(name, RemoteDataset):
        return name
    registry = REMOTE if registry is None else registry
    if not isinstance(name, str) or name not in registry:
        raise ValueError(f"unknown data set {name!r} (name); downloadable: "
                         f"{', '.join(sorted(registry))}")
    return registry[name]


def _folder(dataset: RemoteDataset, data_dir, create: bool) -> Path:
    return data_home(data_dir, create=create) / dataset.subdir


# ------------------------------------------------------------------------------ marker
def _read_marker(folder: Path) -> dict:
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def _write_marker(folder: Path, marker: dict) -> None:
    """Atomic write (temporary file in the same folder, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".marker-", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(marker, fh, indent=1, sort_keys=True)
        os.replace(tmp, folder / MARKER)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _same_stamp(path: Path, entry) -> bool:
    try:
        return isinstance(entry, dict) and {k: entry.get(k) for k in ("size", "mtime_ns")} \
            == _stamp(path)
    except OSError:
        return False


def _is_verified(folder: Path, rf: RemoteFile, marker: dict) -> bool:
    """``rf`` lies in ``folder`` and was verified (same checksum pin, size and mtime)."""
    entry = marker.get("files", {}).get(rf.name)
    return isinstance(entry, dict) and entry.get("md5") == rf.md5 \
        and _same_stamp(folder / rf.name, entry)


def _members_ready(folder: Path, rf: RemoteFile, marker: dict) -> bool:
    """An archive's members were extracted from the verified archive and are unchanged."""
    entry = marker.get("members", {}).get(rf.name)
    if not isinstance(entry, dict) or entry.get("md5") != rf.md5:
        return False
    stamps = entry.get("stamps", {})
    return all(_same_stamp(folder / m, stamps.get(m)) for m in rf.members)


def _record(marker: dict, dataset: RemoteDataset, folder: Path, rf: RemoteFile) -> None:
    marker["dataset"] = dataset.name
    marker.setdefault("files", {})[rf.name] = {"md5": rf.md5, **_stamp(folder / rf.name)}


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------ messages
def _by_hand(dataset: RemoteDataset, folder: Path, rf: RemoteFile) -> str:
    return (f"run `{FETCH_COMMAND} {dataset.name}`, or download it by hand from "
            f"{' or '.join(rf.urls)} (md5 {rf.md5}) into {folder}")


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ------------------------------------------------------------------------------ archives
def _safe_member(info: tarfile.TarInfo, archive: Path) -> None:
    parts = PurePosixPath(info.name).parts
    if info.name.startswith(("/", "\\")) or ".." in parts or not parts or ":" in parts[0]:
        raise ValueError(f"archive {str(archive)!r}: member {info.name!r} has an unsafe path; "
                         "refusing to extract")
    if not info.isreg():
        raise ValueError(f"archive {str(archive)!r}: member {info.name!r} is not a regular "
                         "file; refusing to extract")


def _extract(archive: Path, folder: Path, members: tuple[str, ...]) -> None:
    """Extract ``members`` of the (verified) tar archive into ``folder``, all or nothing.

    Only the named members are read; each must be a regular file with a relative path without
    ``..``. They are written into a temporary folder beside, then renamed into place.
    """
    wanted = set(members)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=folder))
    try:
        with tarfile.open(archive, "r:*") as tar:
            for info in tar:
                if info.name not in wanted:
                    continue
                _safe_member(info, archive)
                target = tmp / info.name
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(info)
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                wanted.discard(info.name)
        if wanted:
            raise ValueError(f"archive {str(archive)!r} lacks {', '.join(sorted(wanted))}")
        for member in members:
            dest = folder / member
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / member, dest)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(f"archive {str(archive)!r}: cannot be extracted "
                         f"({_one_line(exc)})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------ local files
def _usable(dataset, folder, rf, marker) -> tuple[dict[str, Path], bool]:
    """The paths of ``rf`` (its members for an archive) and whether ``marker`` changed."""
    changed = False
    if rf.members and _members_ready(folder, rf, marker):
        return {PurePosixPath(m).name: folder / m for m in rf.members}, False
    path = folder / rf.name
    if not _is_verified(folder, rf, marker):
        if not path.is_file():
            raise DataUnavailable(f"{dataset.name}: file {rf.name} not found in {folder} "
                                  f"(not downloaded); {_by_hand(dataset, folder, rf)}")
        found = _md5(path)  # a file put there by hand: verified once, then recorded
        if found != rf.md5:
            raise DataUnavailable(f"{dataset.name}: file {path} has md5 {found}, expected "
                                  f"{rf.md5} (corrupt or a different file); delete it and "
                                  f"{_by_hand(dataset, folder, rf)}")
        _record(marker, dataset, folder, rf)
        changed = True
    if not rf.members:
        return {rf.name: path}, changed
    _extract(path, folder, rf.members)
    marker.setdefault("members", {})[rf.name] = {
        "md5": rf.md5, "stamps": {m: _stamp(folder / m) for m in rf.members}}
    return {PurePosixPath(m).name: folder / m for m in rf.members}, True


def local_files(name, data_dir=None, *, registry=None) -> dict[str, Path]:
    """The data set's files already present and verified, by name; nothing is downloaded.

    Parameters
    ----------
    name : str or RemoteDataset
        A key of ``registry`` (default :data:`REMOTE`) or a data set.
    data_dir : str or os.PathLike, optional
        The data home (see :func:`data_home`).
    registry : dict, optional
        ``{name: RemoteDataset}`` (default :data:`REMOTE`).

    Returns
    -------
    dict
        ``{file name: pathlib.Path}``; for an archive its extracted members by base name
        (CIFAR-10: ``"data_batch_1"`` ... ``"test_batch"``, ``"batches.meta"``).

    Raises
    ------
    DataUnavailable
        A file is missing or fails its checksum (the message names the file, the URLs and
        ``ntkdyn data fetch NAME`` / the folder to put it in by hand).
    """
    dataset = _dataset(name, registry)
    folder = _folder(dataset, data_dir, create=False)
    marker = _read_marker(folder)
    paths, changed = {}, False
    try:
        for rf in dataset.files:
            found, updated = _usable(dataset, folder, rf, marker)
            paths.update(found)
            changed |= updated
    finally:
        if changed:
            _write_marker(folder, marker)
    return paths


# ------------------------------------------------------------------------------ download
def _reason(exc: BaseException, timeout: float) -> str:
    import requests

    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection cut mid-transfer"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"connection failed ({_one_line(exc, 80)})"
    if isinstance(exc, ValueError):
        return "checksum mismatch"
    return f"{type(exc).__name__}: {_one_line(exc, 80)}"


def _download(dataset, folder: Path, rf: RemoteFile, timeout: float, progress: bool) -> None:
    """Fetch ``rf`` into ``folder`` from its first mirror that serves it with the right md5."""
    import requests

    downloader = pooch.HTTPDownloader(timeout=timeout, progressbar=progress)
    tried = []
    logger = pooch.get_logger()
    level = logger.level
    if not progress:
        logger.setLevel(logging.WARNING)
    try:
        for url in rf.urls:
            try:
                pooch.retrieve(url, known_hash=f"md5:{rf.md5}", fname=rf.name, path=folder,
                               downloader=downloader)
                return
            except (ValueError, OSError, requests.exceptions.RequestException) as exc:
                (folder / rf.name).unlink(missing_ok=True)
                tried.append(f"{url} ({_reason(exc, timeout)})")
    finally:
        logger.setLevel(level)
    raise DataUnavailable(f"{dataset.name}: could not download {rf.name}: tried "
                          f"{'; '.join(tried)}; nothing was kept. Retry `{FETCH_COMMAND} "
                          f"{dataset.name}` (--timeout S), or download it by hand (md5 "
                          f"{rf.md5}) into {folder}")


def fetch(name, data_dir=None, timeout: float = 30.0, progress: bool = False, *,
          registry=None) -> dict[str, Path]:
    """Download what is missing of a data set, verify it, and return :func:`local_files`.

    Files already verified are not fetched again; a file present but unverified is checked
    and, when its checksum is wrong, replaced. Mirrors are tried in order; a mirror failing
    (HTTP error, connection error or cut, timeout, wrong checksum) is followed by the next.

    Parameters
    ----------
    name : str or RemoteDataset
        A key of ``registry`` (default :data:`REMOTE`) or a data set.
    data_dir : str or os.PathLike, optional
        The data home (see :func:`data_home`).
    timeout : float, optional
        Seconds to wait for the connection or for each read from the server.
    progress : bool, optional
        Show pooch's progress bar (and its log lines).
    registry : dict, optional
        ``{name: RemoteDataset}`` (default :data:`REMOTE`).

    Returns
    -------
    dict
        :func:`local_files` of the data set, ``{file name: pathlib.Path}``.

    Raises
    ------
    DataUnavailable
        No mirror delivered a file with the pinned checksum (nothing of that file is left in
        the folder).
    """
    dataset = _dataset(name, registry)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    folder = _folder(dataset, data_dir, create=True)
    folder.mkdir(exist_ok=True)
    marker = _read_marker(folder)
    for rf in dataset.files:
        if (rf.members and _members_ready(folder, rf, marker)) or \
                _is_verified(folder, rf, marker):
            continue
        path = folder / rf.name
        if not (path.is_file() and _md5(path) == rf.md5):
            path.unlink(missing_ok=True)  # unverifiable: never left where it would be used
            _download(dataset, folder, rf, float(timeout), progress)
        _record(marker, dataset, folder, rf)
        _write_marker(folder, marker)
    return local_files(dataset, data_dir)


# ------------------------------------------------------------------------------ status
def status(data_dir=None, *, registry=None) -> list[dict]:
    """What is known and what is cached, for ``ntkdyn data list`` (nothing is hashed).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The data home (see :func:`data_home`).
    registry : dict, optional
        ``{name: RemoteDataset}`` (default :data:`REMOTE`).

    Returns
    -------
    list of dict
        One per data set: ``name``, ``description``, ``folder``, ``cached`` (every file
        verified), ``download_bytes`` (sum of the known sizes), ``cached_bytes`` and ``files``:
        a list of dicts ``name``, ``size``, ``state`` (``"verified"``, ``"unverified"`` for a
        file present but not yet checked, or ``"missing"``), ``path``.
    """
    registry = REMOTE if registry is None else registry
    home = data_home(data_dir, create=False)
    rows = []
    for dataset in registry.values():
        folder = home / dataset.subdir
        marker = _read_marker(folder)
        files, cached_bytes = [], 0
        for rf in dataset.files:
            path = folder / rf.name
            if _is_verified(folder, rf, marker) or (rf.members
                                                    and _members_ready(folder, rf, marker)):
                state = "verified"
            elif path.is_file():
                state = "unverified"
            else:
                state = "missing"
            if path.is_file():
                cached_bytes += path.stat().st_size
            if rf.members and _members_ready(folder, rf, marker):
                cached_bytes += sum((folder / m).stat().st_size for m in rf.members)
            files.append({"name": rf.name, "size": rf.size, "state": state, "path": str(path)})
        rows.append({
            "name": dataset.name, "description": dataset.description, "folder": str(folder),
            "cached": all(f["state"] == "verified" for f in files),
            "download_bytes": sum(rf.size or 0 for rf in dataset.files),
            "cached_bytes": cached_bytes, "files": files})
    return rows
