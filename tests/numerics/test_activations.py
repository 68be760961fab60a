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
