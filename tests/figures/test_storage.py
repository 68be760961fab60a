"""Output folder checked before any work, atomic writes under faults (a full disk simulated by
making the write fail with ENOSPC after part of the file was written), and cache entries that
cannot be used (wrong keys, wrong shapes, truncated, not an archive, a folder at the path)
reported on stderr and recomputed."""
import errno
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import matplotlib.figure
import numpy as np
import pytest

from ntkdyn.figures import cli, report, runner, storage
from ntkdyn.figures.runner import run_experiment
from ntkdyn.figures.storage import (OutputError, atomic_path, check_output_dir, load_result,
                                    quiet_notices, save_result, write_text)

SMALL = {"log2_widths": [5, 6], "seeds": 1, "n": 6, "d": 3}
SMALL_ARGS = [arg for k, v in SMALL.items() for arg in ("--set", f"{k}={v}")]
RUN = ["run", "ntk-width", "--config", "smoke", *SMALL_ARGS, "--scheduler", "serial"]
RAN = (0, 1)  # computed and written (this tiny configuration misses targets: exit status 1)


def _enospc():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _one_line(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or "write-test" in p.name]


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if the experiment is computed."""
    def refuse(*args, **kwargs):
        raise AssertionError("computed although the output folder is unusable")
    monkeypatch.setattr(runner, "compute_result", refuse)


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody can write in: mode 0555, and immutable (chattr +i) when running as root
    (root ignores the mode); skipped where neither works."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    try:
        (folder / "probe").touch()
    except PermissionError:
        pass
    else:
        (folder / "probe").unlink()
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(folder)],
                                            capture_output=True).returncode != 0:
            folder.chmod(0o755)
            pytest.skip("cannot make a read-only folder here (root without chattr +i)")
        immutable = True
    try:
        yield folder
    finally:
        if immutable:
            subprocess.run([shutil.which("chattr"), "-i", str(folder)], check=True)
        folder.chmod(0o755)


# ----------------------------------------------------------------------- the output folder

def test_check_output_dir_creates_the_folder_and_leaves_no_probe(tmp_path):
    folder = check_output_dir(tmp_path / "a" / "b", "--out")
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_out_on_a_read_only_folder_is_one_line_before_any_work(read_only_dir, capsys,
                                                               no_compute):
    for out in (read_only_dir, read_only_dir / "sub"):
        assert cli.main([*RUN, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert _one_line(err) and f"--out {out}" in err, err
        assert "Permission denied" in err or "Operation not permitted" in err
    assert list(read_only_dir.iterdir()) == []


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_out_on_a_regular_file_is_one_line_before_any_work(tmp_path, capsys, no_compute, where):
    regular = tmp_path / "results"
    regular.write_text("not a folder")
    out = regular if where == "file" else regular / "sub"
    assert cli.main([*RUN, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and f"--out {out}" in err, err
    assert ("is not a folder" if where == "file" else "Not a directory") in err
    assert regular.read_text() == "not a folder"


def test_out_on_a_full_disk_is_one_line_before_any_work(tmp_path, capsys, no_compute,
                                                        monkeypatch):
    def full(fd, data):
        raise _enospc()
    monkeypatch.setattr(storage.os, "write", full)
    assert cli.main([*RUN, "--out", str(tmp_path / "out")]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert _one_line(err) and f"--out {tmp_path / 'out'} is not writable" in err
    assert "No space left on device" in err
    assert _leftovers(tmp_path) == []


def test_a_full_disk_while_writing_the_figure_leaves_nothing_partial(tmp_path, capsys,
                                                                     monkeypatch):
    def savefig(self, fname, **kwargs):  # part of the file reaches the disk, then ENOSPC
        Path(fname).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        raise _enospc()
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    out = tmp_path / "out"
    assert cli.main([*RUN, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "--out" in err and "No space left on device" in err, err
    assert ".png" in err and "nothing was left there" in err
    assert _leftovers(out) == [] and not list(out.glob("*.png"))
    assert not list(out.glob("*.json")), "a record was written for a run without its figure"
    # the result finished before the disk filled up: cached whole, and served on the rerun
    (cache,) = (out / ".cache").glob("ntk-width-[0-9a-f]*.npz")
    assert load_result(cache, quiet=True) is not None
    monkeypatch.undo()
    assert cli.main([*RUN, "--out", str(out), "--quiet"]) in RAN
    assert list(out.glob("*.png")) and list(out.glob("*.json"))


def test_a_full_disk_while_writing_the_cache_leaves_nothing_partial(tmp_path, capsys,
                                                                    monkeypatch):
    real_savez = np.savez

    def savez(file, **arrays):
        real_savez(file, **arrays)
        file.truncate(max(0, file.tell() // 2))
        raise _enospc()
    monkeypatch.setattr(np, "savez", savez)
    out = tmp_path / "out"
    assert cli.main([*RUN, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "No space left on device" in err and ".npz" in err, err
    assert _leftovers(out) == [] and not list((out / ".cache").glob("*.npz"))


def test_an_atomic_write_that_fails_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "record.json"
    write_text(path, "old\n")

    def write_half(self, text, *args, **kwargs):
        with open(self, "w") as fh:
            fh.write(text[:len(text) // 2])
        raise _enospc()
    monkeypatch.setattr(Path, "write_text", write_half)
    with pytest.raises(OutputError, match="No space left on device") as info:
        write_text(path, "new contents\n")
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert path.read_text() == "old\n" and _leftovers(tmp_path) == []
    with pytest.raises(KeyboardInterrupt):  # an interrupt also leaves nothing behind
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old\n" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_report_on_a_missing_folder_refuses_instead_of_running_the_suite(
        tmp_path, capsys, monkeypatch, kind):
    def refuse(*args, **kwargs):
        raise AssertionError("the report ran")
    monkeypatch.setattr(report, "build_report", refuse)
    out = tmp_path / "reslts"
    if kind == "file":
        out.write_text("")
    assert cli.main(["report", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and f"--out {out} is not a folder of results" in err
    assert f"ntkdyn all --out {out}" in err
    assert out.exists() == (kind == "file")


# ------------------------------------------------------------------------------ the cache

def _arrays():
    return {"K": np.arange(9.0).reshape(3, 3), "X": np.ones((3, 2)), "name": np.array("relu")}


def _rewrite_member(path: Path, member: str, array: np.ndarray):
    """Replace one array inside an archive, keeping its manifest (the zip comment)."""
    with zipfile.ZipFile(path) as old:
        items = {n: old.read(n) for n in old.namelist()}
        comment = old.comment
    tmp = path.with_suffix(".new")
    np.save(tmp, array)
    items[member] = Path(str(tmp) + ".npy").read_bytes()
    with zipfile.ZipFile(path, "w") as new:
        for name, data in items.items():
            new.writestr(name, data)
        new.comment = comment


def _wrong_keys(path):
    np.savez(path, a=np.zeros(2))  # a valid .npz that ntkdyn did not write


def _wrong_shapes(path):
    save_result(path, _arrays())
    _rewrite_member(path, "K.npy", np.zeros((2, 2)))


def _extra_key(path):
    save_result(path, _arrays())
    np.save(path.with_name("extra.npy"), np.zeros(2))
    with zipfile.ZipFile(path, "a") as archive:  # appending keeps the comment
        archive.write(path.with_name("extra.npy"), "extra.npy")
    path.with_name("extra.npy").unlink()


def _truncated(path):
    save_result(path, _arrays())
    path.write_bytes(path.read_bytes()[:60])


def _not_an_archive(path):
    np.save(path.with_suffix(""), np.zeros(3))  # a .npy, not an .npz
    path.with_suffix(".npy").rename(path)


def _text(path):
    path.write_text("hello")


def _folder(path):
    path.mkdir()
    (path / "keep.txt").write_text("user data")


@pytest.mark.parametrize("corrupt,reason", [
    (_wrong_keys, "no manifest (keys ['a']"),
    (_wrong_shapes, "array 'K' is <f8 of shape (2, 2), its manifest says ['<f8', [3, 3]]"),
    (_extra_key, "holds keys ['K', 'X', 'extra', 'name'], its manifest lists ['K', 'X', 'name']"),
    (_truncated, "BadZipFile"),
    (_not_an_archive, "not an .npz archive"),
    (_text, "ValueError"),
    (_folder, "is a folder, not a file; moved it to"),
])
def test_an_unusable_cache_entry_is_reported_on_stderr_and_treated_as_missing(
        tmp_path, capsys, corrupt, reason):
    path = tmp_path / "entry.npz"
    corrupt(path)
    assert load_result(path) is None
    captured = capsys.readouterr()
    assert captured.out == "" and _one_line(captured.err) and reason in captured.err
    assert str(path) in captured.err and captured.err.rstrip().endswith("recomputing")
    assert not path.exists()
    if corrupt is _folder:  # set aside, contents kept
        (moved,) = tmp_path.glob("entry.npz.not-a-cache-*")
        assert (moved / "keep.txt").read_text() == "user data"
    save_result(path, _arrays())  # the slot is free for the recomputed result
    loaded = load_result(path)
    assert set(loaded) == set(_arrays()) and np.array_equal(loaded["K"], _arrays()["K"])
    corrupt(tmp_path / "quiet.npz")
    with quiet_notices():
        assert load_result(tmp_path / "quiet.npz") is None
    assert load_result(tmp_path / "missing.npz") is None
    assert capsys.readouterr().err == ""


def test_a_saved_result_round_trips_and_numpy_sees_only_its_arrays(tmp_path):
    path = tmp_path / "r.npz"
    save_result(path, _arrays())
    with np.load(path) as data:
        assert sorted(data.files) == ["K", "X", "name"]
    loaded = load_result(path)
    assert all(np.array_equal(loaded[k], v) for k, v in _arrays().items())


def test_unusable_cache_entries_are_recomputed_by_the_runner(tmp_path, capsys):
    first = run_experiment("ntk-width", out=tmp_path, overrides=SMALL, scheduler="serial")
    cache = tmp_path / ".cache"
    (combined,) = cache.glob("ntk-width-[0-9a-f]*.npz")
    runs = sorted(cache.glob("ntk-width-run-*.npz"))
    assert len(runs) == 4
    _wrong_keys(combined)
    runs[0].unlink()
    _folder(runs[0])
    _truncated(runs[1])
    _wrong_shapes(runs[2])
    capsys.readouterr()
    second = run_experiment("ntk-width", out=tmp_path, overrides=SMALL, scheduler="serial")
    captured = capsys.readouterr()
    assert not second["cached"] and second["agreement"] == first["agreement"]
    assert captured.out == "" and captured.err.count("recomputing") == 4, captured.err
    assert "Traceback" not in captured.err
    # the command line with --quiet: reported nowhere, recomputed all the same
    _wrong_keys(combined)
    _truncated(runs[3])
    assert cli.main([*RUN, "--out", str(tmp_path), "--quiet"]) in RAN
    captured = capsys.readouterr()
    assert captured.out == "" and "cache" not in captured.err and "Traceback" not in captured.err
    assert load_result(combined) is not None and load_result(runs[3]) is not None
