"""Ready-made problems: reproducible from the seed, split as asked, independent data and weights."""
import numpy as np
import pytest

from ntkdyn.numerics.tasks import Problem, single_index_problem


def test_single_index_problem_is_reproducible_and_split():
    a = single_index_problem(5, 30, 20, 16, seed=(3, 1))
    b = single_index_problem(5, 30, 20, 16, seed=(3, 1))
    assert isinstance(a, Problem)
    net, params, X, Y, X_test, Y_test = a
    assert net.widths == (5, 16, 1)
    assert X.shape == (30, 5) and Y.shape == (30, 1)
    assert X_test.shape == (20, 5) and Y_test.shape == (20, 1)
    for u, v in zip(a, b):
        if isinstance(u, np.ndarray):
            assert np.array_equal(u, v)
    assert all(np.array_equal(p, q) for p, q in zip(a.params, b.params))
    # another replicate draws other data and other weights
    c = single_index_problem(5, 30, 20, 16, seed=(3, 2))
    assert not np.array_equal(c.X, a.X) and not np.array_equal(c.params[0], a.params[0])


def test_single_index_problem_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_test"):
        single_index_problem(5, 30, 0, 16)


# ------------------------------------------------------------------ the data convention
from ntkdyn.numerics import tasks  # noqa: E402
from ntkdyn.numerics.datafiles import DATASETS, DataSplit  # noqa: E402
from ntkdyn.numerics.synthetic import low_rank_task, single_index_hermite  # noqa: E402


def _config(**kw):
    base = {"dataset": "synthetic-low-rank", "classes": None, "n_train": 30, "n_test": 10,
            "preprocessing": "none"}
    return dict(base, **kw)


def test_task_names_cover_the_data_files_and_the_synthetic_tasks():
    names = tasks.task_names()
    assert set(DATASETS) <= set(names)
    assert {"synthetic-single-index", "synthetic-low-rank"} <= set(names)


def test_synthetic_tasks_are_the_generators_split_in_order():
    split = tasks.load_task(_config(), seed=[4, 0], d=6)
    ds = low_rank_task(40, 6, seed=[4, 0])
    assert isinstance(split, DataSplit)
    np.testing.assert_array_equal(split.X, ds.X[:30])
    np.testing.assert_array_equal(split.X_test, ds.X[30:])
    np.testing.assert_array_equal(split.Y_test, ds.Y[30:])
    np.testing.assert_array_equal(split.info["U"], ds.info["U"])
    assert split.info["dataset"] == "synthetic-low-rank" and split.info["source"] == "generated"
    again = tasks.load_task(_config(), seed=[4, 0], d=6)
    assert again.info["checksum"] == split.info["checksum"]
    other = tasks.load_task(_config(), seed=[4, 1], d=6)
    assert other.info["checksum"] != split.info["checksum"]
    single = tasks.load_task(_config(dataset="synthetic-single-index", n_test=0), 3, d=5)
    np.testing.assert_array_equal(single.Y, single_index_hermite(30, 5, seed=3).Y)
    assert single.X_test.shape == (0, 5)


def test_single_index_problem_is_scalar_problem_on_the_synthetic_task():
    config = _config(dataset="synthetic-single-index", d=5, n_test=20)
    a = tasks.scalar_problem(config, 16, seed=(3, 1))
    b = single_index_problem(5, 30, 20, 16, seed=(3, 1))
    for u, v in zip(a, b):
        if isinstance(u, np.ndarray):
            np.testing.assert_array_equal(u, v)
    assert a.data.info["dataset"] == "synthetic-single-index"


def test_bad_data_keys_name_the_key():
    with pytest.raises(ValueError, match="classes"):
        tasks.load_task(_config(classes=[0, 1]), 0, d=5)
    with pytest.raises(ValueError, match="preprocessing"):
        tasks.load_task(_config(preprocessing="sphere"), 0, d=5)
    with pytest.raises(ValueError, match="dataset"):
        tasks.load_task(_config(dataset="imagenet"), 0, d=5)
    with pytest.raises(ValueError, match="n_train"):
        tasks.load_task({"dataset": "digits"}, 0)
    with pytest.raises(ValueError, match="d"):
        tasks.load_task(_config(), 0)


def test_real_data_through_the_convention_digits():
    pytest.importorskip("sklearn")
    config = _config(dataset="digits", classes="odd-even", preprocessing="sphere", d=7)
    problem = tasks.scalar_problem(config, 8, seed=(0,))
    assert problem.X.shape == (30, 64) and problem.Y.shape == (30, 1)
    assert set(np.unique(problem.Y)) <= {-1.0, 1.0}
    np.testing.assert_allclose(np.sum(problem.X ** 2, axis=1), 64.0)
    entries = tasks.data_entries(problem.data)
    assert str(entries["data_name"]) == "digits" and str(entries["data_classes"]) == "odd-even"
    assert str(entries["data_preprocessing"]) == "sphere"
    assert len(str(entries["data_checksum"])) == 64
    with pytest.raises(ValueError, match="scalar target"):
        tasks.scalar_problem(dict(config, classes=[0, 1, 2]), 8)
    many = tasks.data_entries([problem.data, tasks.load_task(config, 1)])
    assert many["data_checksum"].shape == (2,)
