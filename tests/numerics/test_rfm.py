"""Tests of numerics.rfm: the Laplace kernel, the predictor's AGOP and subspace recovery.

References: the kernel's direct formula and central finite differences of the fitted predictor.
"""
import numpy as np
import pytest

from ntkdyn.numerics.features import principal_cosines
from ntkdyn.numerics.rfm import RecursiveFeatureMachine, laplace_kernel
from ntkdyn.numerics.synthetic import low_rank_task


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_laplace_kernel_matches_direct_formula():
    rng = np.random.default_rng(0)
    X, Z = rng.standard_normal((5, 3)), rng.standard_normal((4, 3))
    A = rng.standard_normal((3, 3))
    M = A @ A.T
    direct = np.array([[np.exp(-np.sqrt((x - z) @ M @ (x - z)) / 2.0) for z in Z] for x in X])
    assert np.allclose(laplace_kernel(X, Z, M, bandwidth=2.0), direct, rtol=1e-12, atol=0)
    assert np.allclose(np.diag(laplace_kernel(X, None, M)), 1.0)


def test_rfm_agop_matches_finite_differences_of_the_predictor(fd_jacobian):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 4))
    Y = np.stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]], axis=1)
    A = rng.standard_normal((4, 4))
    rfm = RecursiveFeatureMachine(bandwidth=3.0, iterations=0, M0=A @ A.T + np.eye(4)).fit(X, Y)
    # Central differences cancel the symmetric cone of the zero-distance term, which the
    # AGOP formula drops (eps = 1e-4 keeps the expanded-form distances accurate).
    J = fd_jacobian(rfm.predict, X, eps=1e-4)
    direct = np.einsum("ikd,ike->de", J, J) / X.shape[0]
    assert _rel(rfm._agop(X, rfm.alpha, rfm.M), direct) < 1e-6


def test_rfm_recovers_the_planted_subspace():
    ds = low_rank_task(600, seed=0)
    X, Y, Xt, Yt = ds.X[:400], ds.Y[:400], ds.X[400:], ds.Y[400:]
    rfm = RecursiveFeatureMachine(iterations=3).fit(X, Y)
    assert len(rfm.history) == 4
    assert np.all(principal_cosines(rfm.M, ds.info["U"]) > 0.9)
    plain = RecursiveFeatureMachine(iterations=0).fit(X, Y)
    assert np.mean((rfm.predict(Xt) - Yt) ** 2) < 0.5 * np.mean((plain.predict(Xt) - Yt) ** 2)


def test_bad_input_names_the_argument():
    X = np.random.default_rng(2).standard_normal((9, 5))
    with pytest.raises(ValueError, match="iterations"):
        RecursiveFeatureMachine(iterations=-1)
    with pytest.raises(ValueError, match="ridge"):
        RecursiveFeatureMachine(ridge=0.0)
    with pytest.raises(ValueError, match="fit"):
        RecursiveFeatureMachine().predict(X)
    with pytest.raises(ValueError, match="M"):
        laplace_kernel(X, M=np.eye(2))
    with pytest.raises(ValueError, match="Y must have"):
        RecursiveFeatureMachine().fit(X, np.ones(4))
