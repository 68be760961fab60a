"""Tests of numerics.hessian_checks through every Hessian entry point: bad input names itself."""
from __future__ import annotations

import numpy as np
import pytest

from ntkdyn.base.activations import Activation
from ntkdyn.numerics import (hessian_checks, hessian_norm, hessian_operator, hessian_two_layer,
                             memory)
from ntkdyn.numerics.hessian_norm import output_gradient_norm, output_hessian_norm
from ntkdyn.numerics.hessian_operator import hvp, loss_hessian_top_eigs, output_hessian_top_eigs
from ntkdyn.numerics.hessian_two_layer import two_layer_hessian
from ntkdyn.numerics.networks import MLP


def test_activation_without_second_derivative_is_refused():
    rng = np.random.default_rng(15)
    rough = Activation("rough", np.tanh, lambda z: 1 - np.tanh(z) ** 2, None)
    net = MLP([3, 4, 1], activation=rough)
    params = net.init(rng)
    x = rng.standard_normal(3)
    for call in (lambda: output_hessian_norm(net, params, x),
                 lambda: hvp(net, params, x[None], net.flatten(params)),
                 lambda: two_layer_hessian(net, params, x),
                 lambda: loss_hessian_top_eigs(net, params, x[None], [[1.0]])):
        with pytest.raises(ValueError, match="no second derivative"):
            call()
    out = MLP([3, 4, 1], activation="tanh", output_activation=rough)
    with pytest.raises(ValueError, match="output_activation 'rough'"):
        output_hessian_norm(out, params, x)
    # The gradient norm needs no second derivative.
    assert output_gradient_norm(net, params, x) > 0


def test_bad_arguments_name_themselves():
    rng = np.random.default_rng(16)
    net = MLP([3, 4, 2], activation="tanh")
    params = net.init(rng)
    x = rng.standard_normal(3)
    with pytest.raises(ValueError, match="head"):
        output_hessian_norm(net, params, x, head=2)
    with pytest.raises(ValueError, match="x must"):
        output_hessian_norm(net, params, np.ones(4))
    with pytest.raises(ValueError, match="x must be one input"):
        output_hessian_norm(net, params, np.ones((2, 3)))
    with pytest.raises(ValueError, match="V must have"):
        hvp(net, params, x[None], np.ones(5))
    with pytest.raises(ValueError, match="method"):
        output_hessian_norm(net, params, x, method="power")
    with pytest.raises(ValueError, match="depth"):
        two_layer_hessian(MLP([3, 4, 4, 1]), MLP([3, 4, 4, 1]).init(0), x)
    with pytest.raises(TypeError, match="net"):
        output_hessian_norm("net", params, x)
    with pytest.raises(ValueError, match="k must be"):
        output_hessian_top_eigs(net, params, x, k=net.num_params)
    with pytest.raises(ValueError, match="finite"):
        output_hessian_norm(net, params, np.array([1.0, np.nan, 0.0]))


def test_public_names_exist():
    for module in (hessian_checks, hessian_norm, hessian_operator, hessian_two_layer, memory):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
