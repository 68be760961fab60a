"""The Python API (ntkdyn.run / ntkdyn.load / Result): record and arrays, figures in several
formats, names that keep a changed configuration apart, silence, a plain script without a
``__main__`` guard, the xarray and CSV exports, and the progress hook."""
import csv
import io
import json
import re
import subprocess
import sys
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pytest

import ntkdyn
from ntkdyn.figures import progress
from ntkdyn.figures.api import Result
from ntkdyn.figures.registry import get_experiment
from ntkdyn.figures.report import build_report

SIGNATURES = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF", "svg": b"<?xml"}


@pytest.fixture(scope="module")
def smoke():
    """ntk-width at smoke scale, in memory (a sweep: its runs go through the serial executor)."""
    return ntkdyn.run("ntk-width", config="smoke")


def test_run_returns_the_record_and_the_arrays_behind_it(smoke):
    experiment = get_experiment("ntk-width")
    config = experiment.config("smoke")
    assert isinstance(smoke, Result) and ntkdyn.Result is Result
    assert smoke.name == smoke.stem == "ntk-width" and smoke.config == config
    assert smoke.config_name == "smoke" and smoke.folder is None
    assert smoke.arrays["kernels"].shape == (len(config["depths"]), len(config["log2_widths"]),
                                             config["seeds"], config["n"], config["n"])
    # the numbers are those of the arrays: measured again, independently of the runner
    assert experiment.measure(smoke.arrays) == pytest.approx(smoke.numbers, rel=0, abs=0)
    assert set(smoke.numbers) == set(experiment.declared(config))
    assert smoke.holds is True and smoke.ok is True and smoke.failures == []
    assert set(smoke.controls) == {c.name for c in experiment.controls}
    assert all(c["fails"] for c in smoke.controls.values())
    assert "slope_fit_minus_theory" in smoke.summary() and "4/4 targets met" in repr(smoke)
    fig = smoke.plot()
    assert fig.axes
    plt.close(fig)


def test_holds_is_false_when_a_target_is_missed(smoke):
    record = json.loads(json.dumps(smoke.record))
    record["holds"]["slope_fit_minus_theory"] = False
    assert Result(record, smoke.arrays).holds is False
    del record["holds"]["slope_fit_minus_theory"]  # a missing number meets no target
    assert Result(record, smoke.arrays).holds is False


def test_the_library_prints_nothing(capfd, tmp_path):
    ntkdyn.run("ntk-width", config="smoke", out=tmp_path)  # computed, cached, plotted, written
    ntkdyn.run("ntk-width", config="smoke", out=tmp_path)  # from the cache
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_save_writes_each_format_and_load_gives_back_record_and_arrays(smoke, tmp_path):
    paths = smoke.save(tmp_path, formats=("png", "pdf", "svg"))
    assert sorted(p.name for p in paths) == sorted(
        f"ntk-width.{s}" for s in ("png", "pdf", "svg", "json", "npz", "csv"))
    for fmt, signature in SIGNATURES.items():
        assert (tmp_path / f"ntk-width.{fmt}").read_bytes().startswith(signature)
    again = ntkdyn.load(tmp_path, "ntk-width")
    assert again.record == smoke.record and again.folder == tmp_path
    assert set(again.arrays) == set(smoke.arrays)
    for key, value in smoke.arrays.items():
        assert again.arrays[key].dtype == value.dtype and np.array_equal(again.arrays[key], value)
    plt.close(again.plot())
    assert smoke.save(tmp_path / "none", formats=())[0].suffix == ".npz"  # no figure asked


def test_load_refuses_missing_and_malformed_results(tmp_path, smoke):
    with pytest.raises(FileNotFoundError, match="no result .*ntk-width.json"):
        ntkdyn.load(tmp_path, "ntk-width")
    with pytest.raises(ValueError, match="name must be an output file name"):
        ntkdyn.load(tmp_path, "../ntk-width")
    smoke.save(tmp_path, formats=())
    (tmp_path / "ntk-width.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="malformed result file .*ntk-width.npz"):
        ntkdyn.load(tmp_path, "ntk-width")
    (tmp_path / "ntk-width.npz").unlink()  # a record written without its arrays
    bare = ntkdyn.load(tmp_path, "ntk-width")
    assert bare.arrays == {} and bare.numbers == smoke.numbers
    with pytest.raises(ValueError, match="needs the result's arrays"):
        bare.plot()


def test_a_changed_configuration_never_overwrites_the_named_one(tmp_path):
    named = ntkdyn.run("ntk-width", config="smoke", out=tmp_path)
    assert named.stem == "ntk-width" and named.folder == tmp_path
    before = {p.name: p.read_bytes() for p in tmp_path.glob("ntk-width.*")}
    assert set(before) == {"ntk-width.png", "ntk-width.json", "ntk-width.npz", "ntk-width.csv"}

    changed = ntkdyn.run("ntk-width", config="smoke", overrides={"n": 12}, out=tmp_path)
    assert re.fullmatch(r"ntk-width-[0-9a-f]{8}", changed.stem)
    assert json.loads((tmp_path / f"{changed.stem}.json").read_text())["config"]["n"] == 12
    assert (tmp_path / f"{changed.stem}.png").is_file()
    assert {p.name: p.read_bytes() for p in tmp_path.glob("ntk-width.*")} == before
    # the same configuration lands in the same files; a tag names them
    assert ntkdyn.run("ntk-width", config="smoke", overrides={"n": 12}).stem == changed.stem
    tagged = ntkdyn.run("ntk-width", config="smoke", tag="mine", out=tmp_path)
    assert tagged.stem == "ntk-width-mine" and (tmp_path / "ntk-width-mine.json").is_file()
    assert ntkdyn.load(tmp_path, "ntk-width-mine").config == named.config
    # the report reads NAME.json only; a changed configuration's outputs are left out of it
    build_report(tmp_path, quiet=True, run_missing=False)
    stems = {row["stem"] for row in csv.DictReader(io.StringIO(
        (tmp_path / "report.csv").read_text()))}
    assert stems == {"ntk-width"}


def test_config_seed_and_argument_checks(tmp_path):
    smoke = get_experiment("ntk-width").config("smoke")
    as_dict = ntkdyn.run("ntk-width", config=smoke, seed=3)  # overrides of quick
    assert as_dict.config_name == "quick" and as_dict.config == dict(smoke, seed=3)
    assert as_dict.stem.startswith("ntk-width-")
    with pytest.raises(ValueError, match="config must be one of"):
        ntkdyn.run("ntk-width", config="huge")
    with pytest.raises(TypeError, match="config must be None"):
        ntkdyn.run("ntk-width", config=3)
    with pytest.raises(ValueError, match="paper=True contradicts config='smoke'"):
        ntkdyn.run("ntk-width", config="smoke", paper=True)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        ntkdyn.run("ntk-width", config="smoke", seed=-1)
    with pytest.raises(ValueError, match="unknown configuration key 'widths'"):
        ntkdyn.run("ntk-width", config={"widths": [8]})
    with pytest.raises(ValueError, match="tag must be"):
        ntkdyn.run("ntk-width", config="smoke", tag="a/b", out=tmp_path)
    with pytest.raises(ValueError, match="formats must be some of"):
        ntkdyn.run("ntk-width", config="smoke", formats=("bmp",), out=tmp_path)
    with pytest.raises(ValueError, match="dpi must be a number in"):
        ntkdyn.run("ntk-width", config="smoke", dpi=0, out=tmp_path)
    with pytest.raises(TypeError, match="cache must be True or False"):
        ntkdyn.run("ntk-width", config="smoke", cache="yes")
    assert list(tmp_path.iterdir()) == []  # every refusal came before any work


def test_a_plain_script_without_a_main_guard_runs(tmp_path):
    """The process pool (spawn) re-imports __main__; the serial default does not."""
    script = tmp_path / "analysis.py"
    script.write_text(textwrap.dedent("""\
        import json
        import ntkdyn
        r = ntkdyn.run("ntk-width", config="smoke", out="results")
        again = ntkdyn.load("results", "ntk-width")
        print(json.dumps([r.holds, r.arrays["kernels"].shape,
                          again.numbers == r.numbers]))
        """))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and done.stderr == ""
    assert json.loads(done.stdout) == [True, [2, 6, 2, 16, 16], True]  # and nothing else
    assert (tmp_path / "results" / "ntk-width.png").is_file()


def test_numbers_csv_matches_the_record(smoke, tmp_path):
    rows = list(csv.DictReader(io.StringIO(smoke.numbers_csv())))
    assert [r["number"] for r in rows] == list(smoke.numbers)
    for row in rows:
        key = row["number"]
        assert float(row["value"]) == smoke.numbers[key]  # full precision
        low, high = smoke.record["targets"][key]
        assert row["low"] == ("" if low is None else repr(low))
        assert row["high"] == ("" if high is None else repr(high))
        assert row["kind"] == smoke.record["kinds"][key]
        assert row["holds"] == "true" and row["experiment"] == "ntk-width"
    assert rows[-1]["number"] == "rel_err_widest_times_sqrt_width" and rows[-1]["low"] == ""
    smoke.save(tmp_path, formats=())
    assert (tmp_path / "ntk-width.csv").read_text() == smoke.numbers_csv()


def test_to_xarray_names_width_depth_seed(smoke):
    xr = pytest.importorskip("xarray")
    ds = smoke.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert ds["kernels"].dims == ("depth", "width", "seed", "sample", "sample_2")
    config = smoke.config
    assert list(ds["width"].values) == [2 ** w for w in config["log2_widths"]]
    assert list(ds["depth"].values) == config["depths"]
    assert list(ds["seed"].values) == list(range(config["seeds"]))
    width, depth = 2 ** config["log2_widths"][2], config["depths"][1]
    assert np.array_equal(ds["kernels"].sel(width=width, depth=depth, seed=1).values,
                          smoke.arrays["kernels"][1, 2, 1])
    assert json.loads(ds.attrs["agreement"]) == smoke.numbers and ds.attrs["ok"] == 1
    # an array the experiment does not name gets KEY_dim<i>; dims= names it
    renamed = smoke.to_xarray(dims={"X": ("point", "coordinate")})
    assert renamed["X"].dims == ("point", "coordinate")
    with pytest.raises(ValueError, match=r"dims\['X'\] must be 2 distinct names"):
        smoke.to_xarray(dims={"X": ("point",)})
    with pytest.raises(ValueError, match="dimension 'sample' has length 16"):
        smoke.to_xarray(dims={"X": ("sample_2", "sample")})  # 8 features are not 16 samples
    mixture = ntkdyn.run("mixture-specialization", config="smoke").to_xarray()
    assert mixture["B"].dims == ("seed", "variance", "time", "head", "class")
    assert mixture["data_classes"].dims == ("data_classes_dim0",)


def test_to_xarray_without_xarray_says_how_to_install_it(smoke, monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r"pip install 'ntkdyn\[xarray\]'"):
        smoke.to_xarray()


def test_progress_hook_reports_steps_only_when_installed(capfd):
    calls = []
    with progress.reporting(lambda done, total, unit: calls.append((done, total, unit))):
        advance = progress.counter(3, "run")
        for _ in range(3):
            advance()
        assert list(progress.track("ab", unit="item")) == ["a", "b"]
    assert calls == [(0, 3, "run"), (1, 3, "run"), (2, 3, "run"), (3, 3, "run"),
                     (0, 2, "item"), (1, 2, "item"), (2, 2, "item")]
    progress.counter(5)()  # no callback: a no-op
    with pytest.raises(ValueError, match="total must be a positive int"):
        progress.counter(0)
    # asked for, a sweep shows its runs on stderr (2 depths x 6 widths x 2 seeds at smoke
    # scale); an in-process experiment its own steps (tests/figures/test_cli_show.py)
    ntkdyn.run("ntk-width", config="smoke", progress=True)
    out, err = capfd.readouterr()
    assert out == "" and "ntk-width" in err and "24/24" in err
