"""The experiment contract: every experiment's smoke run holds its targets and rejects its
controls; a wrong theory makes the run fail; typed targets; the cache follows the code;
every executor gives the same bits."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ntkdyn.figures import cli
from ntkdyn.figures import experiment as ex
from ntkdyn.figures import registry
from ntkdyn.figures.runner import compute_result, run_experiment

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", registry.EXPERIMENT_MODULES)
def test_smoke_config_holds_its_targets_and_rejects_its_controls(path, tmp_path):
    experiment = registry._load(path)
    record = run_experiment(experiment.name, out=tmp_path, config_name="smoke", verbose=False,
                            scheduler="serial", use_cache=False)
    assert record["failures"] == [] and record["ok"], record["failures"]
    declared = experiment.declared(experiment.config("smoke"))
    assert set(record["agreement"]) == set(declared) == set(record["kinds"])
    assert all(record["holds"].values())
    if any(n.kind == "agreement" for n in declared.values()):
        assert record["controls"], "agreement numbers without a negative control"
    for name, control in record["controls"].items():
        assert control["fails"], f"control {name} was not rejected"
    # every configuration declares the same kinds of numbers and has the same keys
    for config_name in ex.CONFIG_NAMES:
        assert set(experiment.config(config_name)) == set(experiment.config("smoke"))
    written = json.loads((tmp_path / f"{experiment.name}.json").read_text())
    assert written["ok"] is True and written["kinds"] == record["kinds"]


def test_registered_names_are_unique_and_loadable():
    names = list(registry.experiments())
    assert len(names) == len(set(names)) == len(registry.EXPERIMENT_MODULES)


# ---------------------------------------------------------------------- a wrong theory fails
def test_a_wrong_theory_makes_the_run_exit_1(tmp_path, monkeypatch, capsys):
    from ntkdyn.figures import ntk_width

    true_ntk = ntk_width.infinite_ntk
    monkeypatch.setattr(ntk_width, "infinite_ntk", lambda *a, **k: 1.03 * true_ntk(*a, **k))
    code = cli.main(["run", "ntk-width", "--config", "smoke", "--out", str(tmp_path),
                     "--scheduler", "serial", "--no-cache", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "slope_fit_minus_theory" in err and "misses its target" in err
    record = json.loads((tmp_path / "ntk-width.json").read_text())
    assert record["ok"] is False and record["failures"]


def _toy_experiment(numbers=None, controls=None, measure=None):
    numbers = numbers or {"gap": ex.agreement(ex.at_most(0.1)),
                          "seen": ex.observation(ex.is_true())}
    return ex.Experiment(
        name="toy", description="toy", configs={k: {"seed": 0} for k in ex.CONFIG_NAMES},
        numbers=numbers,
        measure=measure or (lambda r: {"gap": abs(float(r["sim"]) - float(r["theory"])),
                                       "seen": 1.0}),
        plot=lambda r: None,
        controls=controls if controls is not None else (
            ex.Control("shifted", "theory + 1", lambda r, c: dict(r, theory=r["theory"] + 1.0)),),
        compute=lambda config, seed: {"sim": np.array(1.0), "theory": np.array(1.02)})


def test_evaluate_passes_a_good_result_and_records_the_control():
    toy = _toy_experiment()
    verdict = ex.evaluate(toy, toy.config(), toy.compute_serial(toy.config()))
    assert verdict.ok and verdict.controls["shifted"]["fails"] == ["gap"]


def test_a_control_that_no_target_rejects_fails_the_run():
    toy = _toy_experiment(controls=(ex.Control("same", "unchanged theory", lambda r, c: dict(r)),))
    verdict = ex.evaluate(toy, toy.config(), toy.compute_serial(toy.config()))
    assert not verdict.ok and any("control same" in f for f in verdict.failures)


@pytest.mark.parametrize("measured,reason", [
    ({"gap": 0.0}, "seen: declared but missing"),
    ({"gap": 0.0, "seen": 1.0, "extra": 2.0}, "extra: measured but not declared"),
    ({"gap": float("nan"), "seen": 1.0}, "gap: not finite"),
    ({"gap": 0.5, "seen": 1.0}, "gap: 0.5 misses its target <= 0.1"),
    ({"gap": 0.0, "seen": 0.0}, "seen: 0 misses its target true"),
])
def test_missing_undeclared_nan_and_missed_numbers_fail(measured, reason):
    toy = _toy_experiment(measure=lambda r: dict(measured))
    verdict = ex.evaluate(toy, toy.config(), {"sim": 1.0, "theory": 1.0})
    assert any(reason in f for f in verdict.failures), verdict.failures


def test_agreement_without_a_control_is_refused_at_declaration():
    with pytest.raises(TypeError, match="negative control"):
        _toy_experiment(controls=())


def test_typed_targets():
    assert ex.at_least(1.0).bounds() == [1.0, None] and ex.at_most(2.0).bounds() == [None, 2.0]
    assert ex.around(-0.5, 0.1).holds(-0.45) and not ex.around(-0.5, 0.1).holds(-0.35)
    assert ex.is_true().holds(1.0) and not ex.is_true().holds(0.0)
    assert not ex.interval(0, 1).holds(float("nan"))
    with pytest.raises(TypeError):
        ex.interval(1.0, 0.0)
    with pytest.raises(TypeError):
        ex.Target("interval", float("inf"), None)
    json.dumps(ex.at_least(3).bounds(), allow_nan=False)  # null, never a sentinel


def test_point_seeds_depend_on_the_point_and_the_config_seed_only():
    a = ex.point_seed({"seed": 3}, {"width": 8, "seed": 3})
    assert a.entropy == 3
    assert a.spawn_key == ex.point_seed({"seed": 3}, {"width": 8}).spawn_key
    assert a.spawn_key != ex.point_seed({"seed": 3}, {"width": 16}).spawn_key
    assert ex.point_seed({"seed": 4}, {"width": 8}).entropy == 4


# ------------------------------------------------------------------------------- exit status
def test_all_stops_at_the_first_failure_unless_keep_going(tmp_path, monkeypatch, capsys):
    from ntkdyn.figures import ntk_width

    monkeypatch.setattr(registry, "EXPERIMENT_MODULES", ["ntkdyn.figures.ntk_width"] * 1)
    true_ntk = ntk_width.infinite_ntk
    monkeypatch.setattr(ntk_width, "infinite_ntk", lambda *a, **k: 1.03 * true_ntk(*a, **k))
    args = ["all", "--config", "smoke", "--out", str(tmp_path), "--scheduler", "serial",
            "--quiet", "--no-cache"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "ntk-width failed; stopping" in err and "check(s) failed" in err
    assert cli.main(args + ["--keep-going"]) == 1
    assert "stopping" not in capsys.readouterr().err


# -------------------------------------------------------------------------- cache and code
def test_cache_key_follows_the_code(tmp_path):
    """Install a copy of the package, run, edit a theory module of the copy, run again: the
    edit is computed (not served from the cache)."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("ntkdyn", "base", "theory", "numerics", "figures", "benchmarks"):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--target", str(site), str(src)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"could not install a copy here: {res.stderr.strip().splitlines()[-1:]}")
    out = tmp_path / "out"
    code = ("import json, sys\n"
            "from ntkdyn.figures.runner import run_experiment\n"
            "import ntkdyn.theory.relu_ntk as t\n"
            "assert t.__file__.startswith(sys.argv[2]), t.__file__\n"
            "r = run_experiment('ntk-width', out=sys.argv[1], config_name='smoke',"
            " verbose=False, scheduler='serial')\n"
            "print(json.dumps([r['cached'], r['agreement']['slope_fit_minus_theory']]))\n")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}

    def run():
        done = subprocess.run([sys.executable, "-c", code, str(out), str(site)], env=env,
                              cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, again = run(), run()
    assert first[0] is False and again == [True, first[1]]
    module = site / "ntkdyn" / "theory" / "relu_ntk.py"
    module.write_text(module.read_text().replace("NTK_FLUCTUATION_EXPONENT = -0.5",
                                                 "NTK_FLUCTUATION_EXPONENT = -0.4"))
    edited = run()
    assert edited[0] is False and abs(edited[1] - (first[1] - 0.1)) < 1e-9


# -------------------------------------------------------------------------- determinism
def _is_sweep(path):
    try:
        return registry._load(path).is_sweep
    except TypeError:  # not a declared experiment: the smoke test above reports it
        return False


SWEEPS = [p for p in registry.EXPERIMENT_MODULES if _is_sweep(p)]


@pytest.mark.parametrize("path", SWEEPS)
def test_serial_and_process_pool_give_the_same_bits(path, tmp_path):
    experiment = registry._load(path)
    config = experiment.config("smoke")
    serial, kind = compute_result(experiment, config, tmp_path / "a", scheduler="serial")
    pooled, kind2 = compute_result(experiment, config, tmp_path / "b", scheduler="process",
                                   workers=2)
    assert (kind, kind2) == ("serial", "process")
    assert set(serial) == set(pooled)
    for key in serial:
        a, b = np.asarray(serial[key]), np.asarray(pooled[key])
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), key
