"""The exact rate of the kernel specialization matrix (Eq. 9) and its Cauchy-Schwarz bound."""
import numpy as np
import pytest

from ntkdyn.base.alignment import kernel_specialization_matrix
from ntkdyn.numerics.kernels import empirical_ntk
from ntkdyn.numerics.networks import MLP
from ntkdyn.numerics.richness import train_centered
from ntkdyn.numerics.synthetic import gaussian_mixture_classes
from ntkdyn.theory import two_layer_alignment as tla


def _heads(k=4, n=30, seed=0):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((k, n, 2 * n))
    dF = rng.standard_normal((k, n, 2 * n))
    K = np.einsum("kab,kcb->kac", F, F) + 5.0  # positive entries: column means far from 0
    dK = np.einsum("kab,kcb->kac", dF, F)
    return K, dK + dK.transpose(0, 2, 1)


def test_rate_matches_central_difference_of_eq9():
    K, dK = _heads()
    Y = np.eye(4)[np.arange(30) % 4] - 0.25
    ksm, rate = tla.kernel_specialization_rate(K, dK, Y)
    h = 1e-6
    fd = (kernel_specialization_matrix(K + h * dK, Y)
          - kernel_specialization_matrix(K - h * dK, Y)) / (2 * h)
    assert np.allclose(ksm, kernel_specialization_matrix(K, Y), rtol=0, atol=1e-14)
    assert np.linalg.norm(rate - fd) <= 1e-7 * np.linalg.norm(fd)


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_initial_rate_matches_gradient_descent(activation):
    ds = gaussian_mixture_classes(60, 12, num_classes=3, seed=1)
    net = MLP([12, 64, 3], activation)
    params0 = net.init(np.random.default_rng(2))
    gamma, t = 10.0, 1e-6
    rates = tla.initial_specialization_rates(*params0, ds.X, ds.Y, gamma, activation)
    short = train_centered(net, ds.X, ds.Y, gamma, t / 10, 10, params0=params0, num_records=2,
                           spectral=False)
    K0 = empirical_ntk(net, params0, ds.X, heads="each")
    Kt = empirical_ntk(net, short.params, ds.X, heads="each")
    fd = (kernel_specialization_matrix(Kt, ds.Y) - kernel_specialization_matrix(K0, ds.Y)) / t
    assert np.allclose(rates["ksm"], kernel_specialization_matrix(K0, ds.Y), atol=1e-12)
    assert np.linalg.norm(fd - rates["ksm_rate"]) <= 1e-4 * np.linalg.norm(rates["ksm_rate"])


def test_bound_holds_and_is_zero_for_proportional_heads():
    K, _ = _heads(seed=3)
    Y = np.eye(4)[np.arange(30) % 4] - 0.25
    excess = np.abs(kernel_specialization_matrix(K, Y) - 1) - tla.kernel_specialization_bound(K, Y)
    assert np.all(excess <= 1e-12)
    same = np.stack([K[0] * s for s in (1.0, 2.0, 0.5, 3.0)])
    assert np.max(tla.kernel_specialization_bound(same, Y)) <= 1e-7
    assert np.allclose(kernel_specialization_matrix(same, Y), 1.0, atol=1e-12)
