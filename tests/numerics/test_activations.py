"""Activation derivatives against central finite differences."""
import numpy as np
import pytest

from ntkdyn.base.activations import ACTIVATIONS, Activation, get_activation

X = np.linspace(-3, 3, 61) + 0.013  # avoids ReLU's kink at 0
H = 1e-5


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_first_and_second_derivatives_match_finite_differences(name):
    act = ACTIVATIONS[name]
    fd1 = (act.phi(X + H) - act.phi(X - H)) / (2 * H)
    fd2 = (act.dphi(X + H) - act.dphi(X - H)) / (2 * H)
    np.testing.assert_allclose(act.dphi(X), fd1, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(act.d2phi(X), fd2, rtol=1e-7, atol=1e-8)


def test_at_least_the_required_activations():
    assert {"linear", "relu", "tanh", "erf", "softplus"} <= set(ACTIVATIONS)


def test_lookup_by_name_or_object_and_bad_names():
    assert get_activation("tanh") is ACTIVATIONS["tanh"]
    custom = Activation("cube", lambda x: x**3, lambda x: 3 * x**2, lambda x: 6 * x)
    assert get_activation(custom) is custom
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        get_activation("swish")
    with pytest.raises(TypeError, match="activation must be"):
        get_activation(3)


# ------------------------------------------------------------ GELU, sin, ABReLU / leaky ReLU
from ntkdyn.base.activations import LEAKY_RELU_SLOPE, abrelu  # noqa: E402

GRID = np.linspace(-40, 40, 800001)  # spacing 1e-4, reaching the asymptotes of softplus


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_sup_bounds_match_a_dense_grid(name):
    """``sup |phi'|`` and ``sup |phi''|`` equal the maxima on a 1e-4 grid over [-40, 40]."""
    act = ACTIVATIONS[name]
    for sup, fn in ((act.sup_dphi, act.dphi), (act.sup_d2phi, act.d2phi)):
        assert sup is not None
        top = float(np.max(np.abs(fn(GRID))))
        assert top <= sup * (1 + 1e-12) + 1e-300
        assert top >= sup * (1 - 1e-7)


def test_gelu_is_x_times_the_normal_cdf_in_erf_form():
    from scipy.special import erfc
    x = np.linspace(-8, 8, 1601)
    gelu = ACTIVATIONS["gelu"]
    # Phi(x) = erfc(-x / sqrt(2)) / 2 (the erfc form keeps the relative accuracy for x < 0)
    np.testing.assert_allclose(gelu.phi(x), 0.5 * x * erfc(-x / np.sqrt(2)), rtol=5e-14,
                               atol=1e-300)
    assert gelu.code is None and ACTIVATIONS["sin"].code is None


def test_abrelu_family():
    x = np.linspace(-3, 3, 61) + 0.013
    relu, linear = ACTIVATIONS["relu"], ACTIVATIONS["linear"]
    for act, ref in ((abrelu(0.0, 1.0), relu), (abrelu(1.0, 1.0), linear)):
        np.testing.assert_array_equal(act.phi(x), ref.phi(x))
        np.testing.assert_array_equal(act.dphi(x), ref.dphi(x))
    act = abrelu(-0.5, 2.0)
    np.testing.assert_array_equal(act.phi(x), np.where(x > 0, 2.0 * x, -0.5 * x))
    assert act.slopes == (-0.5, 2.0) and act.name == "abrelu(-0.5,2)"
    assert act.sup_dphi == 2.0 and act.sup_d2phi == 0.0 and not act.smooth and act.code is None
    leaky = ACTIVATIONS["leaky_relu"]
    assert leaky.slopes == (LEAKY_RELU_SLOPE, 1.0) == (0.01, 1.0)
    np.testing.assert_array_equal(leaky.phi(x), np.where(x > 0, x, 0.01 * x))
    x32 = x.astype(np.float32)
    assert act.phi(x32).dtype == np.float32 and act.dphi(x32).dtype == np.float32


def test_abrelu_bad_slopes():
    with pytest.raises(ValueError, match="a must be finite"):
        abrelu(float("nan"), 1.0)
    with pytest.raises(TypeError, match="b must be a real number"):
        abrelu(0.1, "1")


def test_activations_without_a_compiled_code_take_the_numpy_hessian():
    """``code=None`` (GELU, sin, leaky ReLU): the two-layer Hessian falls back to its NumPy
    pass (equal to ``backend="numpy"``); ``backend="numba"`` is refused, naming it."""
    from ntkdyn.numerics.hessian_two_layer import two_layer_hessian
    from ntkdyn.numerics.networks import MLP
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5)
    for name in ("gelu", "sin", "leaky_relu"):
        net = MLP([5, 64, 1], activation=name)
        params = net.init(1)
        auto = two_layer_hessian(net, params, x)
        numpy_pass = two_layer_hessian(net, params, x, backend="numpy")
        assert auto == numpy_pass and np.isfinite(auto.norm)
        with pytest.raises(ValueError, match=name):
            two_layer_hessian(net, params, x, backend="numba")
