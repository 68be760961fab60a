"""Full-batch gradient descent with recorded observables.

Step ``s`` with learning rate ``lr`` is gradient-flow time ``t = lr * s`` (DESIGN.md), so
trajectories share one time axis with the ODEs of ``theory``. Any model with
``loss_and_gradients(params, X, Y) -> (loss, grads)`` can be trained, which lets wrappers
(centred/rescaled outputs, linearisations) reuse this loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ..base.validation import positive_float, positive_int

from ..base.errors import DivergenceError

Observable = Callable[[object, list, np.ndarray, np.ndarray], object]


@dataclass
class Trajectory:
    """The record of one training run.

    ``times[s] = lr * s`` and ``losses[s]`` for every step ``s = 0..steps``;
    ``observables[name]`` holds one value per entry of ``record_steps``
    (``record_times = lr * record_steps``); ``params`` are the final parameters and
    ``snapshots`` the parameters at ``record_steps`` when requested.
    """

    lr: float
    times: np.ndarray
    losses: np.ndarray
    record_steps: np.ndarray
    observables: dict[str, np.ndarray] = field(default_factory=dict)
    params: list = field(default_factory=list)
    snapshots: list | None = None

    @property
    def steps(self) -> np.ndarray:
        return np.arange(len(self.losses))

    @property
    def record_times(self) -> np.ndarray:
        return self.lr * self.record_steps


def record_schedule(steps: int, every: int | None = None, num: int | None = None,
                    log: bool = False) -> np.ndarray:
    """Steps at which to record: ``every`` k steps, or ``num`` points (log-spaced with ``log``).

    Always includes step 0 and the final step.
    """
    steps = positive_int(steps, "steps", minimum=0)
    if every is not None:
        grid = np.arange(0, steps + 1, positive_int(every, "every"))
    elif num is not None:
        num = positive_int(num, "num", minimum=2)
        if log and steps > 0:
            grid = np.unique(np.round(np.geomspace(1, steps, num - 1)).astype(int))
            grid = np.concatenate([[0], grid])
        else:
            grid = np.unique(np.round(np.linspace(0, steps, num)).astype(int))
    else:
        grid = np.array([0])
    return np.unique(np.concatenate([grid, [0, steps]])).astype(int)


def recording_plan(steps: int, record=None, every: int | None = None,
                   record_steps=None) -> tuple[dict, np.ndarray]:
    """Check ``record`` (name -> callable) and resolve the recorded steps: ``every`` k steps or the
    explicit ``record_steps`` (0 and ``steps`` always included)."""
    if record is not None and not isinstance(record, Mapping):
        raise TypeError("record must be a mapping from names to callables fn(net, params, X, Y)")
    record = dict(record or {})
    for name, fn in record.items():
        if not callable(fn):
            raise TypeError(f"record[{name!r}] must be callable, got {type(fn).__name__}")
    if record_steps is None:
        return record, record_schedule(steps, every=every)
    schedule = np.unique(np.concatenate([np.asarray(record_steps, dtype=int).ravel(), [0, steps]]))
    if schedule.min() < 0 or schedule.max() > steps:
        raise ValueError(f"record_steps must lie in [0, {steps}], got {np.asarray(record_steps)}")
    return record, schedule


def sgd_update(params, grads, lr):
    """Plain gradient step ``W <- W - lr * dL/dW``."""
    return [W - lr * g for W, g in zip(params, grads)]


def gradient_descent(net, params, X, Y, lr, steps, record: Mapping[str, Observable] | None = None,
                     every: int | None = None, record_steps=None, snapshots: bool = False,
                     update: Callable = sgd_update, divergence_factor: float = 1e8) -> Trajectory:
    """Full-batch gradient descent on the MSE loss ``1/(2n) sum ||f(x_i) - y_i||^2``.

    Parameters
    ----------
    net : model with ``loss_and_gradients(params, X, Y)`` (e.g. :class:`numerics.networks.MLP`).
    lr : float
        Learning rate; step ``s`` is gradient-flow time ``lr * s``.
    steps : int
        Number of gradient steps.
    record : mapping name -> ``fn(net, params, X, Y)``
        Observables evaluated at the recorded steps (e.g. an empirical NTK).
    every, record_steps :
        Record every ``every`` steps, or at the given explicit steps (0 and ``steps`` always).
    snapshots : bool
        Keep a copy of the parameters at every recorded step.
    update : callable ``(params, grads, lr) -> params``
        The parameter update (plain gradient descent by default).
    divergence_factor : float
        Raise :class:`DivergenceError` when the loss is not finite or exceeds
        ``divergence_factor`` times the initial loss (plus one, for a zero initial loss).
    """
    lr = positive_float(lr, "lr")
    steps = positive_int(steps, "steps", minimum=0)
    positive_float(divergence_factor, "divergence_factor")
    record, schedule = recording_plan(steps, record, every, record_steps)
    params = [np.array(W, copy=True) for W in params]
    recorded = {name: [] for name in record}
    saved = [] if snapshots else None
    losses = np.empty(steps + 1)
    to_record = set(schedule.tolist())
    limit = None
    for s in range(steps + 1):
        loss, grads = net.loss_and_gradients(params, X, Y)
        if limit is None:
            limit = divergence_factor * (loss + 1.0)
        if not np.isfinite(loss) or loss > limit:
            raise DivergenceError(s, loss, f"gradient descent diverged (lr = {lr})")
        losses[s] = loss
        if s in to_record:
            for name, fn in record.items():
                recorded[name].append(fn(net, params, X, Y))
            if saved is not None:
                saved.append([W.copy() for W in params])
        if s < steps:
            params = update(params, grads, lr)
    return Trajectory(
        lr=lr, times=lr * np.arange(steps + 1), losses=losses, record_steps=schedule,
        observables={name: np.asarray(v) for name, v in recorded.items()},
        params=params, snapshots=saved)
