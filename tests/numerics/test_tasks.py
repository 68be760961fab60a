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
