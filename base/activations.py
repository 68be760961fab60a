"""The activation registry: point-wise non-linearities with their first and second derivatives.

Each entry of :data:`ACTIVATIONS` is an :class:`Activation` holding ``phi``,
``dphi = phi'`` and ``d2phi = phi''`` as vectorised NumPy functions, and the constants the
compiled Hessian kernels need: ``sup_dphi = sup |phi'|``, ``sup_d2phi = sup |phi''|`` over the
real line, and ``code``, the integer by which Numba kernels select the function. Second
derivatives are needed by Hessian-vector products (Liu, Zhu & Belkin 2020); ReLU's is zero
almost everywhere, which is what the closed-form Hessian uses.

The one table of activations in ntkdyn: the finite networks, the theory's flows and the
infinite-width kernels all look activations up here.
"""
from __future__ import annotations

import math
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
    sup_dphi: float | None = None  # sup |phi'| over the real line (None: unbounded or unknown)
    sup_d2phi: float | None = None  # sup |phi''| over the real line
    code: int | None = None  # selects the function inside compiled (Numba) kernels

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
    "linear": Activation("linear", lambda x: x, np.ones_like, np.zeros_like,
                         sup_dphi=1.0, sup_d2phi=0.0, code=0),
    "relu": Activation("relu", _relu, _step, np.zeros_like, smooth=False,
                       sup_dphi=1.0, sup_d2phi=0.0, code=1),
    # tanh'' = -2t(1 - t^2), extreme at t = 1/sqrt(3)
    "tanh": Activation("tanh", np.tanh, _tanh_d1, _tanh_d2,
                       sup_dphi=1.0, sup_d2phi=4.0 / (3.0 * math.sqrt(3.0)), code=2),
    # erf'' = -2z erf'(z), extreme at z = 1/sqrt(2)
    "erf": Activation("erf", special.erf, _erf_d1, _erf_d2,
                      sup_dphi=2.0 / math.sqrt(math.pi),
                      sup_d2phi=4.0 / math.sqrt(2.0 * math.pi * math.e), code=3),
    # softplus(x) = log(1 + e^x); its derivatives are the logistic sigmoid and s(1 - s) <= 1/4.
    "softplus": Activation("softplus", lambda x: np.logaddexp(0.0, x), _sigmoid, _sigmoid_d1,
                           sup_dphi=1.0, sup_d2phi=0.25, code=4),
    # sigmoid'' = s(1 - s)(1 - 2s), extreme at s = 1/2 -+ 1/sqrt(12)
    "sigmoid": Activation("sigmoid", _sigmoid, _sigmoid_d1, _sigmoid_d2,
                          sup_dphi=0.25, sup_d2phi=1.0 / (6.0 * math.sqrt(3.0)), code=5),
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
