"""Synthetic data generators: exact statistics and seeding."""
import numpy as np
import pytest

from ntkdyn.numerics import synthetic


def test_linear_teacher_is_whitened_with_the_requested_singular_values():
    ds = synthetic.linear_teacher(50, 6, 4, [3.0, 2.0, 1.0, 0.5], seed=3)
    np.testing.assert_allclose(ds.X.T @ ds.X / 50, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(np.linalg.svd(ds.Y.T @ ds.X / 50, compute_uv=False)[:4],
                               [3, 2, 1, 0.5], rtol=1e-12)


def test_generators_are_seeded():
    for make in (lambda s: synthetic.power_law_gaussian(20, 5, 1.5, seed=s),
                 lambda s: synthetic.gaussian_mixture_classes(20, 8, seed=s),
                 lambda s: synthetic.two_layer_teacher(20, 5, 3, seed=s),
                 lambda s: synthetic.single_index_hermite(20, 5, seed=s),
                 lambda s: synthetic.low_rank_task(20, seed=s)):
        a, b, c = make(1), make(1), make(2)
        assert np.array_equal(a.X, b.X) and np.array_equal(a.Y, b.Y)
        assert not np.array_equal(a.X, c.X)


def test_power_law_spectrum():
    ds = synthetic.power_law_gaussian(200000, 4, exponent=2.0, seed=0)
    evals = np.sort(np.linalg.eigvalsh(ds.X.T @ ds.X / 200000))[::-1]
    np.testing.assert_allclose(evals, [1, 1 / 4, 1 / 9, 1 / 16], rtol=0.02)


def test_mixture_is_balanced_with_centred_one_hot_targets():
    ds = synthetic.gaussian_mixture_classes(40, 10, num_classes=4, seed=0)
    assert np.bincount(ds.info["labels"]).tolist() == [10] * 4
    np.testing.assert_allclose(ds.Y.sum(axis=1), 0, atol=1e-14)
    np.testing.assert_allclose(ds.Y[np.arange(40), ds.info["labels"]], 0.75)
    assert abs(ds.info["means"] @ ds.info["offset"]).max() < 1e-12


def test_single_index_and_low_rank_targets():
    ds = synthetic.single_index_hermite(5, 3, seed=0)
    z = ds.X @ ds.info["w"]
    np.testing.assert_allclose(ds.Y[:, 0], (z**2 - 1) / np.sqrt(2), rtol=1e-14)
    ds = synthetic.low_rank_task(5, d=6, seed=0)
    z = ds.X @ ds.info["U"]
    np.testing.assert_allclose(ds.Y[:, 0], z[:, 0] * z[:, 1] + np.maximum(z[:, 2], 0), rtol=1e-14)
    np.testing.assert_allclose(ds.info["U"].T @ ds.info["U"], np.eye(3), atol=1e-14)


def test_bad_arguments():
    with pytest.raises(ValueError, match="singular_values must be non-negative"):
        synthetic.linear_teacher(10, 3, 3, [1, -1])
    with pytest.raises(ValueError, match="at most min"):
        synthetic.linear_teacher(10, 3, 2, [1, 1, 1])
    with pytest.raises(ValueError, match="at least one entry"):
        synthetic.linear_teacher(10, 3, 2, [])
    with pytest.raises(ValueError, match="cannot be whitened|at least as many rows"):
        synthetic.whiten(np.ones((2, 3)))
    with pytest.raises(ValueError, match="labels must lie"):
        synthetic.one_hot(np.array([0, 3]), 2)
    with pytest.raises(ValueError, match="n must be >= 1"):
        synthetic.gaussian_mixture_classes(0, 5)


def test_frames_are_the_shared_sampler_continuing_the_stream():
    """The Haar frames come from base.samplers.orthonormal_frame on the generator's stream."""
    from ntkdyn.base.samplers import orthonormal_frame
    ds = synthetic.low_rank_task(7, d=6, seed=4)
    rng = np.random.default_rng(4)
    U = orthonormal_frame(6, 3, rng)
    assert np.array_equal(ds.info["U"], U)
    assert np.array_equal(ds.X, rng.standard_normal((7, 6)))
