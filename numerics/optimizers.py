"""Optimisers with state, as ``(init, update)`` pairs (the optax convention).

An :class:`Optimizer` holds ``init(params) -> state`` and
``update(grads, state, params) -> (updates, state)``; the new parameters are
``params + updates`` (:func:`apply_updates`). The learning rate ``lr`` is a float or a schedule
``step -> lr`` (step counted from 0); :func:`numerics.training.gradient_descent` takes an
optimiser in place of a learning rate and measures time as the sum of the step sizes
(docs/conventions.md, "Loss and time").

* :func:`sgd`: heavy-ball momentum ``v_s = mu v_{s-1} + g_s`` (``v_{-1} = 0``, Polyak 1964),
  update ``-lr_s v_s``, or ``-lr_s (g_s + mu v_s)`` with Nesterov momentum (Sutskever et al.
  2013, sec. 2; written as in PyTorch and optax). ``mu = 0`` is plain gradient descent, bitwise
  ``W - lr g``. Beaglehole et al. 2024 train their MLPs by minibatch SGD with batch 128, and
  their convolutional networks with momentum 0.9: ``sgd(lr, momentum=0.9)`` with
  ``gradient_descent(..., batch_size=128)``.
* :func:`adam`: Kingma & Ba 2015, Algorithm 1, with ``eps`` added outside the square root.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from ..base.validation import float_arrays, positive_float

__all__ = [
    "AdamState",
    "Optimizer",
    "SGDState",
    "adam",
    "apply_updates",
    "check_learning_rate",
    "learning_rate",
    "sgd",
]

Schedule = Callable[[int], float]


@dataclass(frozen=True)
class Optimizer:
    """An optimiser: ``init(params) -> state`` and ``update(grads, state, params)``.

    Parameters
    ----------
    init : callable
        ``init(params) -> state``, the state before the first step.
    update : callable
        ``update(grads, state, params) -> (updates, state)``; the new parameters are
        ``params + updates`` (:func:`apply_updates`).
    lr : float or callable
        The learning rate, a float or a schedule ``step -> lr``; it gives the step sizes of the
        time axis in :func:`ntkdyn.numerics.training.gradient_descent`.
    name : str, optional
        The name shown in messages.
    """

    init: Callable[[list], object]
    update: Callable[[list, object, list], tuple[list, object]]
    lr: float | Schedule
    name: str = "optimizer"

    def __repr__(self) -> str:
        return self.name


class SGDState(NamedTuple):
    """State of :func:`sgd`: the step count and the momentum buffers (``None`` without momentum).

    Parameters
    ----------
    count : int
        The number of steps taken.
    velocity : list of numpy.ndarray or None
        One momentum buffer per layer, like the parameters; ``None`` without momentum.
    """

    count: int
    velocity: list | None


class AdamState(NamedTuple):
    """State of :func:`adam`: the step count and the first and second moment estimates.

    Parameters
    ----------
    count : int
        The number of steps taken.
    mu : list of numpy.ndarray
        The first-moment estimates, one per layer.
    nu : list of numpy.ndarray
        The second-moment estimates, one per layer.
    """

    count: int
    mu: list
    nu: list


def learning_rate(lr, step: int) -> float:
    """The step size at ``step``: ``lr`` itself, or ``lr(step)`` for a schedule (checked > 0).

    Parameters
    ----------
    lr : float or callable
        A learning rate or a schedule ``step -> lr``.
    step : int
        The step, counted from 0.

    Returns
    -------
    float
        The step size.
    """
    if callable(lr):
        return positive_float(lr(step), f"lr({step})")
    return lr


def check_learning_rate(lr, name: str = "lr"):
    """A positive finite float, or a callable schedule (its values are checked when used).

    Parameters
    ----------
    lr : float or callable
        A learning rate or a schedule ``step -> lr``.
    name : str, optional
        The argument named in errors.

    Returns
    -------
    float or callable
        ``lr`` as a float, or the schedule itself.
    """
    if callable(lr):
        return lr
    return positive_float(lr, name)


def apply_updates(params, updates, check: bool = True) -> list[np.ndarray]:
    """``params + updates``, one array per layer.

    Parameters
    ----------
    params : list of numpy.ndarray
        The parameters, one array per layer (real, finite floats).
    updates : list of numpy.ndarray
        The updates, shaped like ``params``.
    check : bool
        Validate both lists (the default); ``gradient_descent`` passes ``False`` in its loop,
        where both come from checked parameters and its own gradients.

    Returns
    -------
    list of numpy.ndarray
        The new parameters.

    Raises
    ------
    TypeError
        Either is not a list of real floating arrays (integer, complex, str).
    ValueError
        Non-finite entries, different lengths, or an update not shaped like its parameter.
    """
    if check:
        params = float_arrays(params, "params", keep_float32=True)
        updates = float_arrays(updates, "updates", keep_float32=True)
        if len(updates) != len(params):
            raise ValueError(f"updates must hold one array per parameter array ({len(params)}), "
                             f"got {len(updates)}")
        for i, (W, u) in enumerate(zip(params, updates)):
            if u.shape != W.shape:
                raise ValueError(f"updates[{i}] must have the shape of params[{i}], {W.shape}, "
                                 f"got {u.shape}")
    return [W + u for W, u in zip(params, updates)]


def _momentum(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r}")
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def sgd(lr, momentum: float = 0.0, nesterov: bool = False) -> Optimizer:
    """Stochastic gradient descent with optional (Nesterov) momentum.

    ``v_s = momentum * v_{s-1} + g_s`` from ``v_{-1} = 0``; the update is ``-lr_s v_s``, or
    ``-lr_s (g_s + momentum * v_s)`` with ``nesterov=True``. Without momentum the update is
    ``-lr_s g_s`` and no buffer is kept.

    Parameters
    ----------
    lr : float or callable
        The learning rate, or a schedule ``step -> lr``.
    momentum : float, optional
        In ``[0, 1)``; 0 (the default) is plain gradient descent.
    nesterov : bool, optional
        Nesterov momentum; needs ``momentum > 0``.

    Returns
    -------
    Optimizer
        The optimiser.
    """
    lr = check_learning_rate(lr)
    momentum = _momentum(momentum, "momentum")
    if nesterov and momentum == 0.0:
        raise ValueError("nesterov=True needs momentum > 0")

    def init(params):
        if momentum == 0.0:
            return SGDState(0, None)
        return SGDState(0, [np.zeros_like(W) for W in params])

    def update(grads, state, params=None):
        step = learning_rate(lr, state.count)
        if momentum == 0.0:
            return [-step * g for g in grads], SGDState(state.count + 1, None)
        velocity = [momentum * v + g for v, g in zip(state.velocity, grads)]
        if nesterov:
            updates = [-step * (g + momentum * v) for g, v in zip(grads, velocity)]
        else:
            updates = [-step * v for v in velocity]
        return updates, SGDState(state.count + 1, velocity)

    name = f"sgd(lr={lr!r}" + (f", momentum={momentum!r}" if momentum else "") + (
        ", nesterov=True" if nesterov else "") + ")"
    return Optimizer(init, update, lr, name)


def adam(lr, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam (Kingma & Ba 2015, Algorithm 1).

    With ``t = s + 1`` at step ``s``: ``m_t = b1 m_{t-1} + (1 - b1) g``,
    ``v_t = b2 v_{t-1} + (1 - b2) g^2`` (from zero), ``m_hat = m_t / (1 - b1^t)``,
    ``v_hat = v_t / (1 - b2^t)``; the update is ``-lr_s m_hat / (sqrt(v_hat) + eps)``.

    Parameters
    ----------
    lr : float or callable
        The learning rate, or a schedule ``step -> lr``.
    b1, b2 : float, optional
        Decay rates of the first and second moment estimates, in ``[0, 1)``.
    eps : float, optional
        The positive constant added to ``sqrt(v_hat)``.

    Returns
    -------
    Optimizer
        The optimiser.
    """
    lr = check_learning_rate(lr)
    b1 = _momentum(b1, "b1")
    b2 = _momentum(b2, "b2")
    eps = positive_float(eps, "eps")

    def init(params):
        return AdamState(0, [np.zeros_like(W) for W in params],
                         [np.zeros_like(W) for W in params])

    def update(grads, state, params=None):
        step = learning_rate(lr, state.count)
        t = state.count + 1
        mu = [b1 * m + (1.0 - b1) * g for m, g in zip(state.mu, grads)]
        nu = [b2 * v + (1.0 - b2) * (g * g) for v, g in zip(state.nu, grads)]
        c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        updates = [-step * (m / c1) / (np.sqrt(v / c2) + eps) for m, v in zip(mu, nu)]
        return updates, AdamState(t, mu, nu)

    return Optimizer(init, update, lr, f"adam(lr={lr!r}, b1={b1!r}, b2={b2!r}, eps={eps!r})")
