"""The activation registry: point-wise non-linearities with their first and second derivatives.

Each entry of :data:`ACTIVATIONS` is an :class:`Activation` holding ``phi``,
``dphi = phi'`` and ``d2phi = phi''`` as vectorised NumPy functions, and the constants the
compiled Hessian kernels need: ``sup_dphi = sup |phi'|``, ``sup_d2phi = sup |phi''|`` over the
real line, and ``code``, the integer by which Numba kernels select the function (``None``:
no compiled version; the two-layer Hessian of :mod:`ntkdyn.numerics.hessian_two_layer` then takes
its blocked NumPy pass, and ``backend="numba"`` is refused with a message naming the activation).
Second derivatives are needed by Hessian-vector products (Liu, Zhu & Belkin 2020); ReLU's is zero
almost everywhere, which is what the closed-form Hessian uses.

Besides the classical non-linearities the registry holds GELU ``x Phi(x)`` (Hendrycks & Gimpel
2016, the exact erf form, not the tanh approximation), ``sin`` and the leaky ReLU with slope
``0.01`` below zero; :func:`abrelu` makes any member of the piecewise-linear family
``phi(x) = a min(x, 0) + b max(x, 0)`` (``slopes = (a, b)``), whose Gaussian moments are closed
forms (:mod:`ntkdyn.theory.dual_kernels`).

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
    """A named scalar non-linearity ``phi`` with ``dphi`` and ``d2phi``.

    Parameters
    ----------
    name : str
        The name (the key in :data:`ACTIVATIONS` for a registered one).
    phi, dphi, d2phi : callable
        ``phi``, ``phi'`` and ``phi''``: vectorised functions mapping an ndarray to an ndarray
        of the same shape, applied entry-wise.
    smooth : bool, default True
        ``False`` where ``d2phi`` is only zero almost everywhere (ReLU, the ABReLU family).
    sup_dphi, sup_d2phi : float or None, optional
        ``sup |phi'|`` and ``sup |phi''|`` over the real line (``None``: unbounded or unknown).
    code : int or None, optional
        The integer that selects the function inside compiled (Numba) kernels (``None``: no
        compiled version).
    slopes : tuple of float or None, optional
        ``(a, b)`` of ``phi(x) = a min(x, 0) + b max(x, 0)`` for a piecewise-linear activation
        (:func:`abrelu`), else ``None``.
    """

    name: str
    phi: ArrayFn
    dphi: ArrayFn
    d2phi: ArrayFn
    smooth: bool = True  # False where d2phi is only zero almost everywhere (ReLU)
    sup_dphi: float | None = None  # sup |phi'| over the real line (None: unbounded or unknown)
    sup_d2phi: float | None = None  # sup |phi''| over the real line
    code: int | None = None  # selects the function inside compiled (Numba) kernels
    slopes: tuple[float, float] | None = None  # (a, b) of phi = a min(x, 0) + b max(x, 0)

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


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _gelu(x):
    return x * special.ndtr(x)


def _gelu_d1(x):
    return special.ndtr(x) + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x)


def _gelu_d2(x):
    return (2.0 - x * x) * _INV_SQRT_2PI * np.exp(-0.5 * x * x)


def _neg_sin(x):
    return -np.sin(x)


def abrelu(a: float, b: float, name: str | None = None) -> Activation:
    """The piecewise-linear activation ``phi(x) = a min(x, 0) + b max(x, 0)`` (ABReLU).

    ``a = 0, b = 1`` is ReLU, ``a = b = 1`` the identity, ``0 < a < 1 = b`` the leaky ReLU.
    ``phi'' = 0`` almost everywhere (``smooth=False``), ``sup |phi'| = max(|a|, |b|)``; there is
    no compiled code. The Gaussian moments are closed forms
    (:func:`ntkdyn.theory.dual_kernels.abrelu_moments`).

    Parameters
    ----------
    a, b : float
        Slopes below and above zero (finite reals).
    name : str, optional
        Defaults to ``"abrelu(a,b)"``.

    Returns
    -------
    Activation
        With ``smooth=False``, ``sup_dphi = max(|a|, |b|)``, ``sup_d2phi = 0``,
        ``slopes = (a, b)`` and ``code=None``.

    Raises
    ------
    TypeError
        ``a`` or ``b`` is not a real number.
    ValueError
        ``a`` or ``b`` is not finite.
    """
    a, b = (_finite_real(v, arg) for v, arg in ((a, "a"), (b, "b")))

    def phi(x):
        return a * np.minimum(x, 0.0) + b * np.maximum(x, 0.0)

    def dphi(x):
        x = np.asarray(x)
        return np.where(x > 0, b, a).astype(np.result_type(x, 1.0), copy=False)

    return Activation(f"abrelu({a:g},{b:g})" if name is None else name, phi, dphi,
                      np.zeros_like, smooth=False, sup_dphi=max(abs(a), abs(b)), sup_d2phi=0.0,
                      slopes=(a, b))


def _finite_real(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


LEAKY_RELU_SLOPE = 0.01  # the slope below zero of the registered "leaky_relu"

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
    # GELU x Phi(x) (exact erf form): phi' = Phi + x N(x) is largest at x = sqrt(2) (1.1289...),
    # phi'' = (2 - x^2) N(x) at x = 0 (sqrt(2 / pi)). No compiled code.
    "gelu": Activation("gelu", _gelu, _gelu_d1, _gelu_d2, sup_dphi=float(_gelu_d1(math.sqrt(2.0))),
                       sup_d2phi=math.sqrt(2.0 / math.pi)),
    "sin": Activation("sin", np.sin, np.cos, _neg_sin, sup_dphi=1.0, sup_d2phi=1.0),
    "leaky_relu": abrelu(LEAKY_RELU_SLOPE, 1.0, name="leaky_relu"),
}


def get_activation(activation: str | Activation, argument: str = "activation") -> Activation:
    """Return the :class:`Activation` named ``activation`` (or ``activation`` itself).

    Parameters
    ----------
    activation : str or Activation
        A key of :data:`ACTIVATIONS`, or an :class:`Activation` (returned unchanged).
    argument : str, default "activation"
        The caller's argument name, used in the messages.

    Returns
    -------
    Activation

    Raises
    ------
    TypeError
        ``activation`` is neither a string nor an :class:`Activation`.
    ValueError
        ``activation`` is not a registered name.
    """
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
