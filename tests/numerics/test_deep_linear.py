"""Deep linear networks in the mode basis: decoupled initialisation, mode strengths, time shifts."""
import numpy as np
import pytest

from ntkdyn.base.samplers import orthonormal_frame
from ntkdyn.numerics.deep_linear import decoupled_init, fit_time_shifts, mode_strengths
from ntkdyn.theory.deep_linear_modes import mode_dynamics


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_decoupled_init_puts_every_mode_at_a0_to_the_depth(depth):
    rng = np.random.default_rng(0)
    U, V = orthonormal_frame(3, 2, rng), orthonormal_frame(5, 2, rng)
    Ws = decoupled_init(depth, U, V, hidden=6, a0=0.7, seed=rng)
    assert [W.shape for W in Ws] == ([(3, 5)] if depth == 1 else
                                     [(6, 5)] + [(6, 6)] * (depth - 2) + [(3, 6)])
    np.testing.assert_allclose(mode_strengths(Ws, U, V), 0.7 ** depth, rtol=1e-13)
    # the end-to-end map is exactly U diag(a0^L) V^T
    W = Ws[0]
    for Wl in Ws[1:]:
        W = Wl @ W
    np.testing.assert_allclose(W, 0.7 ** depth * U @ V.T, atol=1e-13)


def test_mode_strengths_is_the_projection_of_the_end_to_end_map():
    rng = np.random.default_rng(1)
    Ws = [rng.standard_normal((4, 3)), rng.standard_normal((2, 4))]
    U, V = orthonormal_frame(2, 2, rng), orthonormal_frame(3, 2, rng)
    W = Ws[1] @ Ws[0]
    expected = [U[:, a] @ W @ V[:, a] for a in range(2)]
    np.testing.assert_allclose(mode_strengths(Ws, U, V), expected, rtol=1e-13)


def test_fit_time_shifts_recovers_a_known_shift():
    s, depth = np.array([2.0, 1.0]), 2
    t = np.linspace(0.0, 20.0, 401)
    true_shift = np.array([3.0, 5.0])
    u = np.stack([mode_dynamics([s[a]], 1e-9 * s[a], depth, t + true_shift[a])[:, 0]
                  for a in range(2)], axis=1)
    shifts, shifted, errs = fit_time_shifts(s, depth, t, u)
    np.testing.assert_allclose(shifts, true_shift, atol=1e-4)
    assert np.max(errs) < 1e-4
    np.testing.assert_allclose(shifted, u, atol=1e-4 * s.max())
