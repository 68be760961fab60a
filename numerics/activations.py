"""Point-wise activations with their first and second derivatives.

Each entry of :data:`ACTIVATIONS` is an :class:`Activation` holding ``phi``,
``dphi = phi'`` and ``d2phi = phi''`` as vectorised NumPy functions. Second
derivatives are needed by Hessian-vector products (Liu, Zhu & Belkin 2020);
ReLU's is zero almost everywhere, which is what the closed-form Hessian uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special

ArrayFn = Callable[[np.ndarray], np.ndarray]

_TWO_OVER_SQRT_PI = 2.0 / np.sqrt(np.pi)


@dataclass(frozen=True)
class Activation:
    """A named scalar non-linearity ``phi`` with ``dphi`` and ``d2phi``."""

    name: str
    phi: ArrayFn
    dphi: ArrayFn
    d2phi: ArrayFn
    smooth: bool = True  # False where d2phi is only zero almost everywhere (ReLU)

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


def _relu(x):
    return np.maximum(x, 0.0)


def _step(x):
    return (x > 0).astype(x.dtype if np.issubdtype(np.asarray(x).dtype, np.floating) else float)


def _sigmoid(x):
    return special.expit(x)


def _sigmoid_d1(x):
    s = special.expit(x)
    return s * (1.0 - s)


def _sigmoid_d2(x):
    s = special.expit(x)
    return s * (1.0 - s) * (1.0 - 2.0 * s)


def _tanh_d1(x):
    return 1.0 - np.tanh(x) ** 2


def _tanh_d2(x):
    t = np.tanh(x)
    return -2.0 * t * (1.0 - t * t)


def _erf_d1(x):
    return _TWO_OVER_SQRT_PI * np.exp(-x * x)


def _erf_d2(x):
    return -2.0 * x * _erf_d1(x)


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation("linear", lambda x: x, np.ones_like, np.zeros_like),
    "relu": Activation("relu", _relu, _step, np.zeros_like, smooth=False),
    "tanh": Activation("tanh", np.tanh, _tanh_d1, _tanh_d2),
    "erf": Activation("erf", special.erf, _erf_d1, _erf_d2),
    # softplus(x) = log(1 + e^x); its derivatives are the logistic sigmoid and sigma(1 - sigma).
    "softplus": Activation("softplus", lambda x: np.logaddexp(0.0, x), _sigmoid, _sigmoid_d1),
    "sigmoid": Activation("sigmoid", _sigmoid, _sigmoid_d1, _sigmoid_d2),
}


def get_activation(activation: str | Activation, argument: str = "activation") -> Activation:
    """Return the :class:`Activation` named ``activation`` (or ``activation`` itself)."""
    if isinstance(activation, Activation):
        return activation
    if not isinstance(activation, str):
        raise TypeError(
            f"{argument} must be a name from {sorted(ACTIVATIONS)} or an Activation, "
            f"got {type(activation).__name__}"
        )
    try:
        return ACTIVATIONS[activation]
    except KeyError:
        raise ValueError(
            f"unknown {argument} {activation!r}; expected one of {sorted(ACTIVATIONS)}"
        ) from None
