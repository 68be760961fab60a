"""`ntkdyn show NAME`, and the output options of `ntkdyn run`: --format, --dpi, --tag, the
names of a changed configuration's outputs, and progress on a terminal only.

The output options are checked on a toy experiment (registered for the test) whose figure and
computation take milliseconds; tests/figures/test_api.py writes a real experiment's figures."""
import json
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from ntkdyn.figures import cli, progress, registry, runner
from ntkdyn.figures.experiment import CONFIG_NAMES, Experiment, at_most, observation
from ntkdyn.figures.registry import get_experiment

SMOKE = ["--config", "smoke", "--scheduler", "serial"]


def _toy_compute(config, seed):
    advance = progress.counter(4, "run")
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(4):
        rows.append(rng.normal(size=config["n"]) / np.sqrt(config["n"]))
        advance()
    return {"x": np.array(rows), "mean": np.array(np.mean(rows))}


def _toy_plot(result):
    fig, ax = plt.subplots(figsize=(3.0, 2.0))
    ax.plot(result["x"].T)
    return fig


TOY = Experiment(
    name="toy", description="a toy: the mean of standard normals is small",
    configs={c: {"n": 8 * 2 ** i, "seed": 0} for i, c in enumerate(CONFIG_NAMES)},
    numbers={"mean_abs": observation(at_most(1.0), "|mean|")},
    measure=lambda r: {"mean_abs": abs(float(r["mean"]))}, plot=_toy_plot,
    compute=_toy_compute)


@pytest.fixture
def toy(monkeypatch):
    """Register the toy experiment as ``toy`` (beside the real ones)."""
    real = registry.get_experiment

    def lookup(name):
        return TOY if name == "toy" else real(name)
    monkeypatch.setattr(registry, "get_experiment", lookup)
    monkeypatch.setattr(runner, "get_experiment", lookup)
    return TOY


def test_show_lists_keys_types_values_numbers_and_controls(capsys):
    assert cli.main(["show", "ntk-width"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    experiment = get_experiment("ntk-width")
    configs = {c: experiment.config(c) for c in ("smoke", "quick", "paper")}
    assert experiment.description in lines[0]
    for key in configs["quick"]:
        (row,) = [line for line in lines if line.split()[:1] == [key]]
        kind = experiment.config_type(key)
        assert row.rstrip().endswith(kind.describe() if kind else type(configs["quick"][key])
                                     .__name__)
        for c in ("smoke", "quick", "paper"):
            value = configs[c][key]
            assert (value if isinstance(value, str) else json.dumps(value))[:19] in row
    for key, number in experiment.declared(configs["quick"]).items():
        (row,) = [line for line in lines if line.split()[:1] == [key]]
        assert row.split()[1] == number.kind and str(number.target) in row
    for control in experiment.controls:
        assert f"  {control.name}: {control.description}" in lines
    assert all(len(line) <= 160 or "one of" in line for line in lines)


def test_show_json_and_another_configuration(capsys):
    assert cli.main(["show", "specialization", "--json", "--config", "paper"]) == 0
    info = json.loads(capsys.readouterr().out)
    experiment = get_experiment("specialization")
    assert info["computation"] == "in-process" and info["config_name"] == "paper"
    assert {r["key"]: r["paper"] for r in info["config"]} == experiment.config("paper")
    assert [n["name"] for n in info["numbers"]] == list(
        experiment.declared(experiment.config("paper")))
    assert info["regimes"] == dict(experiment.regimes)


def test_show_of_an_unknown_experiment_is_one_line_exit_2(capsys):
    assert cli.main(["show", "no-such-experiment"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'no-such-experiment'" in err and err.count("\n") == 1


def test_format_and_dpi(tmp_path, capsys, toy):
    assert cli.main(["run", "toy", *SMOKE, "--out", str(tmp_path / "a"),
                     "--format", "png,pdf,svg"]) == 0
    assert "-> " + str(tmp_path / "a" / "toy") + ".{png,pdf,svg,json,npz,csv}" in \
        capsys.readouterr().out
    for fmt, signature in (("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")):
        assert (tmp_path / "a" / f"toy.{fmt}").read_bytes().startswith(signature)
    assert cli.main(["run", "toy", *SMOKE, "--out", str(tmp_path / "b"), "--dpi", "220",
                     "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert not (tmp_path / "b" / "toy.pdf").exists()  # png only by default
    low, high = (Image.open(tmp_path / d / "toy.png") for d in ("a", "b"))
    assert high.info["dpi"][0] == pytest.approx(220, abs=0.05)  # stored as pixels per metre
    assert low.info["dpi"][0] == pytest.approx(110, abs=0.05)
    # the same figure at twice the resolution: twice the pixels on each side (tight bbox: +-2%)
    assert high.size[0] / low.size[0] == pytest.approx(2.0, rel=0.02)
    assert high.size[1] / low.size[1] == pytest.approx(2.0, rel=0.02)


@pytest.mark.parametrize("argv,message", [
    (["--format", "png,bmp"], "formats must be some of png, pdf, svg, eps"),
    (["--format", ""], "formats must be some of"),
    (["--dpi", "0"], "dpi must be a number in [10, 2400]"),
    (["--dpi", "nan"], "dpi must be a number in [10, 2400]"),
    (["--tag", "a/b"], "tag must be 1 to 40 letters"),
])
def test_bad_output_options_are_one_line_exit_2(argv, message, tmp_path, capsys, toy):
    assert cli.main(["run", "toy", *SMOKE, "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_set_and_tag_keep_the_named_outputs(tmp_path, capsys, toy):
    out = str(tmp_path)
    assert cli.main(["run", "toy", *SMOKE, "--out", out, "--quiet"]) == 0
    named = {p.name: p.read_bytes() for p in tmp_path.glob("toy.*")}
    assert set(named) == {"toy.png", "toy.json", "toy.npz", "toy.csv"}
    assert json.loads(named["toy.json"])["stem"] == "toy"
    assert cli.main(["run", "toy", *SMOKE, "--out", out, "--set", "n=12"]) == 0
    (changed,) = tmp_path.glob("toy-*.json")
    assert json.loads(changed.read_text())["config"] == {"n": 12, "seed": 0}
    assert f"-> {tmp_path / changed.stem}." in capsys.readouterr().out
    # the same change again: the same files; a quick run is a named configuration
    assert cli.main(["run", "toy", *SMOKE, "--out", out, "--set", "n=12", "--quiet"]) == 0
    assert cli.main(["run", "toy", "--config", "quick", "--out", out, "--quiet"]) == 0
    assert cli.main(["run", "toy", *SMOKE, "--out", out, "--tag", "v2", "--quiet"]) == 0
    assert json.loads((tmp_path / "toy-v2.json").read_text())["stem"] == "toy-v2"
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == sorted(
        ["toy", changed.stem, "toy-v2"])  # quick overwrote toy.*: named configurations share it
    assert json.loads((tmp_path / "toy.json").read_text())["config_name"] == "quick"


def test_progress_shows_on_a_terminal_only(tmp_path, capsys, monkeypatch, toy):
    argv = ["run", "toy", *SMOKE, "--out", str(tmp_path), "--no-cache"]
    assert cli.main(argv) == 0  # stderr is not a terminal here
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert cli.main(argv + ["--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "toy" in err and "4/4" in err and "run" in err
    assert cli.main(argv[:-1]) == 0  # served from the cache: no bar
    assert capsys.readouterr().err == ""


def test_real_in_process_experiments_report_progress(capfd):
    """deep-linear-modes counts its 13 smoke training runs (4 learning rates x 3 depths, one
    random start) through the runner's bar."""
    from ntkdyn.figures.runner import compute_result
    experiment = get_experiment("deep-linear-modes")
    compute_result(experiment, experiment.config("smoke"), None, progress=True)
    err = capfd.readouterr().err
    assert "deep-linear-modes" in err and "13/13" in err


def test_all_takes_the_output_options(tmp_path, capsys, monkeypatch, toy):
    monkeypatch.setattr(registry, "experiments", lambda: {"toy": TOY})
    assert cli.main(["all", *SMOKE, "--out", str(tmp_path), "--tag", "t1", "--format",
                     "svg,png", "--dpi", "55", "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.glob("toy*")) == [
        "toy-t1.csv", "toy-t1.json", "toy-t1.npz", "toy-t1.png", "toy-t1.svg"]
    assert Image.open(tmp_path / "toy-t1.png").info["dpi"][0] == pytest.approx(55, abs=0.05)
    assert cli.main(["all", *SMOKE, "--out", str(tmp_path), "--format", "gif"]) == 2
    assert "formats must be some of" in capsys.readouterr().err
