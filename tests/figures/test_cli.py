"""The ntkdyn command line: list, run, errors with exit status 2, and the JSON record."""
import json

import numpy as np
import pytest

from ntkdyn.figures import cli
from ntkdyn.figures.registry import EXPERIMENT_MODULES, experiments, get_experiment
from ntkdyn.figures.runner import resolve_config, run_experiment

SMALL = ["--config", "smoke"]


def test_every_registered_module_follows_the_protocol():
    registry = experiments()
    assert len(registry) == len(EXPERIMENT_MODULES)
    for name, experiment in registry.items():
        configs = [experiment.config(c) for c in ("smoke", "quick", "paper")]
        assert all(set(c) == set(configs[0]) for c in configs)
        assert "seed" in configs[0], f"{name} must be seeded by config['seed']"
        for config in configs:
            assert experiment.declared(config), f"{name} declares no numbers"


def test_list_prints_names_one_per_line(capsys):
    assert cli.main(["list"]) == 0
    assert capsys.readouterr().out.split() == list(experiments())
    assert cli.main(["list", "--long"]) == 0
    assert "width^(-1/2)" in capsys.readouterr().out


def test_run_writes_png_and_json(tmp_path, capsys):
    assert cli.main(["run", "ntk-width", "--out", str(tmp_path), *SMALL]) == 0
    record = json.loads((tmp_path / "ntk-width.json").read_text())
    assert {"experiment", "config", "agreement", "kinds", "targets", "target_types", "holds",
            "controls", "regimes", "failures", "ok"} <= set(record)
    assert record["experiment"] == "ntk-width" and record["config_name"] == "smoke"
    assert record["config"] == get_experiment("ntk-width").config("smoke")
    assert np.isfinite(record["agreement"]["slope_fit_minus_theory"])
    assert record["kinds"]["slope_fit_minus_theory"] == "agreement"
    assert record["targets"]["slope_fit_minus_theory"] == [-0.05, 0.05]
    assert record["targets"]["rel_err_widest_times_sqrt_width"] == [None, 5.0]
    assert record["executor"] == "process" and record["ok"] is True
    assert all(c["fails"] for c in record["controls"].values())
    assert (tmp_path / "ntk-width.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "slope_fit_minus_theory" in capsys.readouterr().out
    # the second run is served from the cache and gives the same numbers
    again = run_experiment("ntk-width", out=tmp_path, config_name="smoke", verbose=False)
    assert again["cached"] and again["agreement"] == record["agreement"]


def test_corrupt_cache_is_recomputed(tmp_path, capsys):
    overrides = {"log2_widths": [5, 6], "seeds": 1, "n": 6, "d": 3}
    first = run_experiment("ntk-width", out=tmp_path, overrides=overrides, verbose=False,
                           scheduler="serial")
    # the combined result, not a run
    (cache,) = (tmp_path / ".cache").glob("ntk-width-[0-9a-f]*.npz")
    cache.write_bytes(cache.read_bytes()[:40])
    second = run_experiment("ntk-width", out=tmp_path, overrides=overrides, verbose=False,
                            scheduler="serial")
    assert not second["cached"] and second["agreement"] == first["agreement"]
    captured = capsys.readouterr()  # reported on stderr, never on stdout
    assert "unusable cache entry" in captured.err and "cache" not in captured.out


@pytest.mark.parametrize("argv,message", [
    (["run", "no-such-experiment"], "unknown experiment 'no-such-experiment'"),
    (["run", "ntk-width", "--set", "widths=3"], "unknown configuration key 'widths'"),
    (["run", "ntk-width", "--set", "seeds=lots"], "configuration key 'seeds'"),
    (["run", "ntk-width", "--set", "seeds"], "--set expects KEY=VALUE"),
    (["run", "ntk-width", "--set", "n=5", "--scheduler", "tcp://127.0.0.1:9"],
     "cannot reach the Dask scheduler at tcp://127.0.0.1:9"),
    (["run", "ntk-width", "--scheduler", "cloud"], "scheduler must be"),
])
def test_bad_input_is_one_line_and_exit_status_2(argv, message, capsys, tmp_path):
    assert cli.main(argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.glob("*.json"))


def test_unknown_command_exits_2():
    with pytest.raises(SystemExit) as info:
        cli.main(["frobnicate"])
    assert info.value.code == 2


def test_resolve_config_rejects_wrong_types():
    module = get_experiment("ntk-width")
    assert resolve_config(module, overrides={"seeds": 4})["seeds"] == 4
    with pytest.raises(ValueError, match="expects a value like"):
        resolve_config(module, overrides={"depths": 3})


def test_bench_rejects_an_unknown_filter(capsys):
    assert cli.main(["bench", "--only", "no-such-benchmark"]) == 2
    assert "no benchmark matches --only 'no-such-benchmark'" in capsys.readouterr().err


def test_derive_prints_the_derivations(capsys):
    assert cli.main(["derive"]) == 0
    out = capsys.readouterr().out
    assert "balanced" in out and "verified" in out
