"""Typed configuration: every key of every experiment has a declared type and range; values are
checked before any work, in one line naming the experiment, the key, the value and what is
expected; memory is estimated from the configuration and refused before allocating."""
import math
import tracemalloc

import pytest

from ntkdyn.figures import cli
from ntkdyn.figures import config_types as ct
from ntkdyn.figures import experiment as ex
from ntkdyn.figures import footprint, runner
from ntkdyn.figures.registry import experiments, get_experiment
from ntkdyn.figures.runner import check_memory, resolve_config
from ntkdyn.numerics import memory

REGISTRY = experiments()


# ------------------------------------------------------------------ every key has a type
@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_key_of_every_config_has_a_type_its_default_passes(name):
    experiment = REGISTRY[name]
    for config_name in ex.CONFIG_NAMES:
        for key, value in experiment.config(config_name).items():
            kind = experiment.config_type(key)
            assert kind is not None, f"{name}: {config_name} key {key!r} has no declared type"
            assert isinstance(kind, ct.ConfigType)
            checked = kind.check(key, value)
            assert checked == value, f"{name}: {key} = {value!r} normalised to {checked!r}"
            assert kind.check(key, checked) == checked  # normalising is idempotent
            text = kind.describe()
            assert text and "\n" not in text
    # resolving a named configuration changes nothing
    for config_name in ex.CONFIG_NAMES:
        assert resolve_config(experiment, config_name) == experiment.config(config_name)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_named_config_has_a_finite_memory_estimate(name):
    experiment = REGISTRY[name]
    for config_name in ex.CONFIG_NAMES:
        need = experiment.memory_bytes(experiment.config(config_name))
        assert isinstance(need, int) and 0 < need < 64 * 2**30, (config_name, need)
    smoke = experiment.config("smoke")
    assert experiment.memory_bytes(smoke) < 256 * 2**20  # the test suite runs every smoke one


def test_config_types_must_name_existing_keys_and_be_types():
    configs = {k: {"seed": 0, "n": 3} for k in ex.CONFIG_NAMES}
    base = dict(name="toy", description="toy", configs=configs, numbers={},
                measure=lambda r: {}, plot=lambda r: None, compute=lambda c, s: {})
    assert ex.Experiment(**base, config_types={"n": ct.Int(2)}).config_type("n").low == 2
    with pytest.raises(TypeError, match="names keys no configuration has"):
        ex.Experiment(**base, config_types={"m": ct.positive_int()})
    with pytest.raises(TypeError, match="must be a ConfigType"):
        ex.Experiment(**base, config_types={"n": int})


# ------------------------------------------------------------------------------ the types
def _rejects(kind, value):
    with pytest.raises(ct.ConfigValueError) as info:
        kind.check("key", value)
    message = str(info.value)
    assert "\n" not in message and message.startswith("key expects ")
    return message


def test_integers():
    kind = ct.positive_int()
    assert kind.check("k", 3) == 3 and kind.check("k", 2.0) == 2 and kind.check("k", 1e8) == 10**8
    assert isinstance(kind.check("k", 1e8), int)
    for bad in (0, -1, 2.5, float("nan"), float("inf"), -float("inf"), True, "3", None, [3],
                2**63, 1e300):
        assert "an integer >= 1" in _rejects(kind, bad)
    assert ct.non_negative_int().check("k", 0) == 0
    assert "an integer in [0, 62]" in _rejects(ct.Int(0, 62), 63)


def test_floats():
    kind = ct.positive_float()
    assert kind.check("k", 1) == 1.0 and isinstance(kind.check("k", 1), float)
    for bad in (0, 0.0, -1e-3, float("nan"), float("inf"), False, "0.1", None, 10**400):
        assert "a finite number > 0" in _rejects(kind, bad)
    assert ct.non_negative_float().check("k", 0) == 0.0
    assert ct.finite_float().check("k", -3.5) == -3.5
    _rejects(ct.finite_float(), float("-inf"))
    assert ct.probability().check("k", 1) == 1.0 and ct.probability().check("k", 0) == 0.0
    assert "in [0, 1]" in _rejects(ct.probability(), 1.5)
    assert "in (0, 1)" in _rejects(ct.open_fraction(), 1.0)
    _rejects(ct.open_fraction(), 0)


def test_choices_booleans_null_and_unions():
    kind = ct.COMMON["activation"]
    assert kind.check("k", "relu") == "relu"
    assert "'tanh'" in _rejects(kind, "RELU")
    _rejects(kind, 3)
    assert ct.Bool().check("k", False) is False
    for bad in (0, 1, "true", None):
        _rejects(ct.Bool(), bad)
    classes = ct.COMMON["classes"]
    assert classes.check("k", None) is None and classes.check("k", "odd-even") == "odd-even"
    assert classes.check("k", [3, 5.0]) == [3, 5]
    message = _rejects(classes, [3, 3])
    assert "null or one of 'odd-even' or a non-empty list of distinct integers" in message
    _rejects(classes, "even-odd")
    _rejects(classes, [])


def test_lists():
    kind = ct.COMMON["log2_widths"]
    assert kind.check("k", (6, 7.0)) == [6, 7]
    assert "a non-empty list of integers in [0, 62]" in _rejects(kind, [])
    assert "(item 1 is 7.5)" in _rejects(kind, [6, 7.5])
    _rejects(kind, 6)
    _rejects(kind, [6, None])
    nested = ct.ListOf(ct.ListOf(ct.positive_float()))
    assert nested.check("k", [[1], [2, 3]]) == [[1.0], [2.0, 3.0]]
    assert "non-empty lists of finite numbers > 0" in _rejects(nested, [[1], []])
    assert "strictly increasing" in _rejects(ct.ListOf(ct.Int(), increasing=True), [2, 1])
    assert "(3 items)" in _rejects(ct.ListOf(ct.Int(), max_len=2), [1, 2, 3])
    assert "a list of 2 finite numbers" in ct.ListOf(ct.finite_float(), 2, 2).describe()
    huge = _rejects(kind, [0.5] * 10_000)  # a long value is cut, the line stays short
    assert len(huge) < 250


# ------------------------------------------------------------------- resolve_config and CLI
@pytest.mark.parametrize("pair, key, value", [
    ("seeds=2.5", "seeds", "2.5"), ("n=NaN", "n", "nan"), ("d=1e400", "d", "inf"),
    ("seeds=0", "seeds", "0"), ("seeds=-1", "seeds", "-1"), ("log2_widths=[]", "log2_widths", "[]"),
    ("log2_widths=[6, 7.5]", "log2_widths", "[6, 7.5]"), ("depths=3", "depths", "3"),
    ("activation=swish", "activation", "'swish'"), ("n=true", "n", "True"),
])
def test_bad_values_are_one_line_naming_experiment_key_value_and_expectation(pair, key, value,
                                                                             capsys, tmp_path):
    code = cli.main(["run", "ntk-width", "--config", "smoke", "--set", pair, "--out",
                     str(tmp_path), "--scheduler", "serial", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"configuration key {key!r} of ntk-width expects" in err
    assert f"got {value}" in err
    assert not (tmp_path / ".cache").exists()  # nothing was computed


def test_types_decide_what_replaces_a_default():
    # a list may replace a string where the type allows it
    split = get_experiment("kernel-split")
    assert resolve_config(split, "smoke", {"classes": [3, 5]})["classes"] == [3, 5]
    width = get_experiment("ntk-width")
    config = resolve_config(width, "smoke", {"seeds": 3.0, "log2_widths": [6.0, 7]})
    assert config["seeds"] == 3 and isinstance(config["seeds"], int)
    assert config["log2_widths"] == [6, 7]
    with pytest.raises(ValueError, match="unknown configuration key 'sedes'"):
        resolve_config(width, "smoke", {"sedes": 2})


def test_set_values_that_json_cannot_read_are_one_line(capsys, tmp_path):
    for pair in ("n=" + "9" * 5000, "n=" + "[" * 100_000, "=3", "n"):
        code = cli.main(["run", "ntk-width", "--config", "smoke", "--set", pair, "--out",
                         str(tmp_path), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--set" in err, (pair[:20], err)


# ------------------------------------------------------------------------------ memory
@pytest.mark.parametrize("name, pair, key", [
    ("ntk-width", "log2_widths=[30]", "log2_widths"), ("il-sweep", "width=1e9", "width"),
    ("ntk-width", "seeds=1e8", "seeds"), ("hessian-width", "widths=[1e12, 2e12]", "widths"),
    ("toy-kernel-evolution", "P=1000000", "P"),
])
def test_sizes_that_do_not_fit_are_refused_before_any_work(name, pair, key, capsys, tmp_path,
                                                           monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("computed a configuration that does not fit")

    monkeypatch.setattr(runner, "compute_result", never)
    code = cli.main(["run", name, "--config", "smoke", "--set", pair, "--out", str(tmp_path),
                     "--quiet", "--scheduler", "serial"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "needs about" in err and "available" in err and f"reduce {key} (now" in err


def test_the_budget_is_the_least_limit_and_workers_count(monkeypatch):
    experiment = get_experiment("ntk-width")
    config = experiment.config("smoke")
    need = experiment.memory_bytes(config)
    limits = {"MemAvailable": 100 * need, "RLIMIT_AS": 100 * need, "cgroup": need}
    monkeypatch.setattr(memory, "memory_limits", lambda: dict(limits))
    with pytest.raises(memory.MemoryBudgetError, match="set by cgroup") as info:
        check_memory(experiment, config, "serial")
    assert info.value.needed == need and info.value.available == int(0.8 * need)
    limits["cgroup"] = 2 * need
    assert check_memory(experiment, config, "serial") == need
    # a local pool holds one run per worker, the replicates of the largest size side by side
    with pytest.raises(memory.MemoryBudgetError, match="2 runs at once"):
        check_memory(experiment, config, "process", workers=4)  # smoke: seeds = 2
    limits["cgroup"] = 3 * need
    with pytest.raises(memory.MemoryBudgetError, match="3 runs at once"):
        check_memory(experiment, dict(config, seeds=5), "process", workers=3)
    assert check_memory(experiment, config, "tcp://127.0.0.1:1", workers=4) == need


def test_the_hint_names_the_key_that_was_raised_first():
    experiment = get_experiment("ntk-width")
    config = resolve_config(experiment, "smoke", {"seeds": 10**8})
    assert footprint.memory_hint(experiment, config).startswith("reduce seeds (now 100000000)")
    drivers = footprint.memory_drivers(experiment, experiment.config("paper"))
    assert "log2_widths" in drivers[:2] and "seed" not in drivers


def _peak(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name, overrides", [
    ("ntk-width", {"log2_widths": [11], "depths": [3], "seeds": 1}),
    ("il-sweep", {"width": 2048, "steps": 10, "record_every": 5, "periods": [1]}),
])
def test_estimates_are_within_a_factor_two_of_the_measured_peak(name, overrides):
    experiment = get_experiment(name)
    config = resolve_config(experiment, "smoke", overrides)
    peak = _peak(lambda: experiment.compute_serial(config))
    estimate = experiment.memory_bytes(config)
    assert 0.5 <= estimate / peak <= 2.0, (estimate, peak)


def test_generic_estimate_grows_with_every_size_key():
    base = {"n_train": 100, "n_test": 50, "d": 10, "width": 64, "depths": [2, 3], "seeds": 2,
            "dataset": "synthetic-mixture", "classes": None}
    estimate = footprint.default_memory(base)
    for key, bigger in (("n_train", 1000), ("d", 100), ("width", 640), ("depths", [2, 5]),
                        ("seeds", 20)):
        assert footprint.default_memory(dict(base, **{key: bigger})) > estimate, key
    assert footprint.input_dim(dict(base, dataset="mnist")) == 784
    assert footprint.output_dim(dict(base, dataset="mnist")) == 10
    assert footprint.output_dim(dict(base, dataset="mnist", classes="odd-even")) == 1
    assert footprint.largest_width({"log2_widths": [3, 62]}) == 2**62
    assert math.isfinite(float(footprint.default_memory(dict(base, width=10**9))))
