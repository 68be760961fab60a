"""The one training loop of ntkdyn: gradient descent with recorded observables.

Step ``s`` with learning rate ``lr`` is gradient-flow time ``t = lr * s``; with a schedule
``lr(s)`` (or an optimiser's), ``t`` is the sum of the step sizes taken (docs/conventions.md,
"Loss and time"), so trajectories share one time axis with the ODEs of ``theory``. Any model
with ``loss_and_gradients(params, X, Y) -> (loss, grads)`` can be trained, which lets wrappers
(centred or rescaled outputs, linearisations, Gauss-Newton directions) reuse this loop; a
``hook`` may replace the model between steps (iterative linearisation,
:func:`numerics.linearised.iterative_linearised_training`). One rule detects divergence for
every trainer: a loss that is not finite or exceeds ``divergence_factor * (L_0 + 1)`` raises
:class:`base.errors.DivergenceError` with the step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from ..base.errors import DivergenceError
from ..base.validation import as_generator, positive_float, positive_int
from .checks import check_network
from .optimizers import Optimizer, apply_updates, check_learning_rate, learning_rate

__all__ = [
    "Observable",
    "Trajectory",
    "elapsed_times",
    "epoch_batches",
    "gradient_descent",
    "record_schedule",
    "recording_plan",
    "sgd_update",
]

Observable = Callable[[object, list, np.ndarray, np.ndarray], object]


@dataclass
class Trajectory:
    """The record of one training run.

    ``losses[s]`` for every step ``s = 0..S`` taken (``S = steps``, or the step at which the
    stopping rule fired, ``stop_step``) and ``times[s]``, the gradient-flow time (``lr * s`` for
    a constant ``lr``); ``observables[name]`` holds one value per entry of ``record_steps``
    (``record_times = times[record_steps]``); ``params`` are the final parameters and
    ``snapshots`` the parameters at ``record_steps`` when requested. ``lr`` is the learning rate
    as given (a float, or a schedule ``step -> lr``).

    Parameters
    ----------
    lr : float or callable
        The learning rate, or the schedule ``step -> lr`` (an optimiser's ``lr`` for a run with
        an optimiser).
    times : ndarray, shape (S + 1,)
        Gradient-flow time of every step taken (:func:`elapsed_times`).
    losses : ndarray, shape (S + 1,)
        The loss at every step taken.
    record_steps : ndarray of int, shape (R,)
        The recorded steps, increasing, from 0 to ``S``.
    observables : dict of str to ndarray
        ``observables[name]`` of shape ``(R, ...)``: one value per recorded step.
    params : list of ndarray
        The final parameters (at step ``S``).
    snapshots : list of list of ndarray, optional
        The parameters at each of ``record_steps`` (``None`` unless requested).
    stop_step : int, optional
        The step at which the stopping rule fired (``None``: it did not, ``S = steps``).
    """

    lr: float | Callable[[int], float]
    times: np.ndarray
    losses: np.ndarray
    record_steps: np.ndarray
    observables: dict[str, np.ndarray] = field(default_factory=dict)
    params: list = field(default_factory=list)
    snapshots: list | None = None
    stop_step: int | None = None

    @property
    def steps(self) -> np.ndarray:
        """The steps taken ``0..S``, shape ``(S + 1,)``."""
        return np.arange(len(self.losses))

    @property
    def record_times(self) -> np.ndarray:
        """Gradient-flow times of the recorded steps, ``times[record_steps]``, shape ``(R,)``."""
        return self.times[self.record_steps]


def record_schedule(steps: int, every: int | None = None, num: int | None = None,
                    log: bool = False) -> np.ndarray:
    """Steps at which to record: ``every`` k steps, or ``num`` points (log-spaced with ``log``).

    Always includes step 0 and the final step.

    Parameters
    ----------
    steps : int
        The final step ``S >= 0``.
    every : int, optional
        Record every ``every`` steps (``0, every, 2 every, ...``); takes precedence over ``num``.
    num : int, optional
        About ``num >= 2`` points, evenly spaced over ``[0, S]`` (fewer when rounding merges
        some).
    log : bool, default False
        With ``num``: step 0 and ``num - 1`` log-spaced steps in ``[1, S]``.

    Returns
    -------
    ndarray of int, shape (R,)
        Sorted distinct steps, ``0`` and ``S`` included (only those two when neither ``every``
        nor ``num`` is given).
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
    explicit ``record_steps`` (0 and ``steps`` always included).

    Parameters
    ----------
    steps : int
        The final step ``S``.
    record : mapping of str to callable, optional
        Observables ``fn(net, params, X, Y)`` by name.
    every : int, optional
        Record every ``every`` steps (:func:`record_schedule`); ignored with ``record_steps``.
    record_steps : array_like of int, optional
        Explicit steps in ``[0, S]``.

    Returns
    -------
    record : dict of str to callable
        A copy of ``record`` (empty when ``None``).
    schedule : ndarray of int, shape (R,)
        Sorted distinct recorded steps, ``0`` and ``S`` included.

    Raises
    ------
    TypeError
        ``record`` is not a mapping, or one of its values is not callable.
    ValueError
        A step of ``record_steps`` outside ``[0, S]``.
    """
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
    """Plain gradient step ``W <- W - lr * dL/dW``.

    Parameters
    ----------
    params : list of ndarray
        The parameters (not modified).
    grads : list of ndarray
        The gradients, of the same shapes.
    lr : float
        The step size.

    Returns
    -------
    list of ndarray
        New arrays ``W - lr * g``.
    """
    return [W - lr * g for W, g in zip(params, grads)]


def epoch_batches(n: int, batch_size: int, seed=0) -> Iterator[np.ndarray]:
    """Minibatch indices, endlessly: each epoch is a fresh permutation of ``range(n)`` (drawn from
    ``seed``) cut into consecutive batches of ``batch_size`` (the last one smaller when
    ``batch_size`` does not divide ``n``), so every example is used once per epoch. Indices
    within a batch are sorted.

    Parameters
    ----------
    n : int
        The number of examples.
    batch_size : int
        Examples per batch, ``1 <= batch_size <= n``.
    seed : int, list of int or numpy.random.Generator, default 0
        Seeds the permutations (:func:`ntkdyn.base.validation.as_generator`).

    Returns
    -------
    iterator of ndarray of int
        Endless; each batch of shape ``(batch_size,)`` (the last of an epoch possibly
        shorter), sorted indices into ``range(n)``.

    Raises
    ------
    ValueError
        ``batch_size > n`` (or a non-positive ``n`` or ``batch_size``).
    """
    n = positive_int(n, "n")
    batch_size = positive_int(batch_size, "batch_size")
    if batch_size > n:
        raise ValueError(f"batch_size must be <= the number of examples {n}, got {batch_size}")
    rng = as_generator(seed)

    def batches():
        while True:
            order = rng.permutation(n)
            for start in range(0, n, batch_size):
                yield np.sort(order[start:start + batch_size])

    return batches()


_EXHAUSTED = object()


def elapsed_times(step_sizes) -> np.ndarray:
    """Gradient-flow times ``t_s = sum_{j < s} lr_j``, ``s = 0..S``, of the step sizes
    ``lr_0..lr_{S-1}``.

    Within each run of equal step sizes the sum is formed as ``t_a + lr (s - a)`` (``a`` the start
    of the run), so a constant schedule gives ``lr * s`` bitwise and rounding does not accumulate.

    Parameters
    ----------
    step_sizes : array_like, shape (S,)
        The step sizes ``lr_0..lr_{S-1}`` (flattened).

    Returns
    -------
    ndarray, shape (S + 1,)
        ``t_0 = 0, t_1, ..., t_S`` in float64.
    """
    sizes = np.asarray(step_sizes, dtype=np.float64).ravel()
    times = np.zeros(sizes.size + 1)
    if sizes.size == 0:
        return times
    starts = np.flatnonzero(np.concatenate([[True], sizes[1:] != sizes[:-1]]))
    ends = np.append(starts[1:], sizes.size)
    t = 0.0
    for a, b in zip(starts, ends):
        times[a + 1:b + 1] = t + sizes[a] * np.arange(1, b - a + 1)
        t = times[b]
    return times


def _callable_or_none(value, name: str):
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    return value


def gradient_descent(net, params: Sequence[np.ndarray], X: npt.ArrayLike, Y: npt.ArrayLike,
                     lr: float | Callable[[int], float], steps: int,
                     record: Mapping[str, Observable] | None = None,
                     every: int | None = None, record_steps=None, snapshots: bool = False,
                     update: Callable = sgd_update, divergence_factor: float = 1e8, *,
                     stop_below: float | None = None, stop: Callable | None = None,
                     hook: Callable | None = None, batch_size: int | None = None, seed=0,
                     batches: Iterable | None = None) -> Trajectory:
    """Gradient descent on a model's loss (the MSE ``1/(2n) sum ||f(x_i) - y_i||^2`` of
    docs/conventions.md for an :class:`numerics.networks.MLP`).

    Every step ``s = 0, 1, ..., S`` does, in this order: ``hook(s, net, params)`` (may return a
    replacement model); the loss and gradients on step ``s``'s batch; the divergence check; the
    stopping rule; the observables (at the recorded steps and at ``S``); and, for ``s < S``, the
    update ``params <- update(params, grads, lr_s)`` (``W - lr_s g`` by default) or, with an
    optimiser, ``params <- params + updates``.

    Parameters
    ----------
    net : model with ``loss_and_gradients(params, X, Y)`` (e.g. :class:`numerics.networks.MLP`).
    params : list of arrays
        Initial parameters (copied; never modified).
    X, Y : arrays ``(n, d)``, ``(n, k)``
    lr : float, callable ``step -> lr``, or :class:`numerics.optimizers.Optimizer`
        Learning rate or schedule; step ``s`` is gradient-flow time ``lr * s`` for a constant
        ``lr``, ``sum_{j < s} lr(j)`` for a schedule (:func:`elapsed_times`). An optimiser
        (``sgd(lr, momentum=0.9)``, ``adam(lr)``) computes the updates from its own state; its
        ``lr`` sets the time axis.
    steps : int
        The number of steps ``S`` (the most taken when a stopping rule is given).
    record : mapping name -> ``fn(net, params, X, Y)``
        Observables evaluated, in this order, at the recorded steps on the full data (e.g. an
        empirical NTK); ``net`` is the model in force at that step.
    every, record_steps :
        Record every ``every`` steps, or at the given explicit steps (0 and the last step
        always).
    snapshots : bool
        Keep a copy of the parameters at every recorded step.
    update : callable ``(params, grads, lr) -> params``
        The parameter update (plain gradient descent by default); not with an optimiser.
    divergence_factor : float
        Raise :class:`DivergenceError` (with the step) when the loss is not finite or exceeds
        ``divergence_factor * (L_0 + 1)``, ``L_0`` the loss at step 0.
    stop_below : float, optional
        Stop at the first step whose loss is ``<= stop_below * L_0``.
    stop : callable ``(step, loss) -> bool``, optional
        Stop at the first step where it returns true (called once per step, after the
        divergence check and before the update).
    hook : callable ``(step, net, params) -> net or None``, optional
        Called before the loss at every step; a returned model is trained from that step on.
    batch_size : int, optional
        Minibatches from :func:`epoch_batches` (``seed``); full batch by default. Minibatch SGD
        with batch 128 (and momentum 0.9, ``lr=sgd(lr, momentum=0.9)``) is the training of
        Beaglehole et al. 2024.
    seed : int, list of int or numpy.random.Generator, default 0
        Seeds the minibatch permutations of ``batch_size`` (unused otherwise).
    batches : iterable, optional
        The example indices of each step ``s < steps`` (an index array, or ``None`` for the
        full batch), in place of ``batch_size``.

    Returns
    -------
    Trajectory
        With minibatches ``losses[s]`` is the loss of step ``s``'s batch, except at ``S = steps``
        where it is the loss on the full data.
    """
    check_network(net, "net", methods=("loss_and_gradients",))
    if isinstance(lr, Optimizer):
        if update is not sgd_update:
            raise TypeError("pass either an optimiser as lr or an update rule, not both")
        optimizer, rate = lr, check_learning_rate(lr.lr, "optimizer lr")
    else:
        optimizer, rate = None, check_learning_rate(lr)
    constant = not callable(rate)
    lr_text = repr(optimizer) if optimizer is not None else (rate if constant else "a schedule")
    steps = positive_int(steps, "steps", minimum=0)
    positive_float(divergence_factor, "divergence_factor")
    update = sgd_update if update is None else _callable_or_none(update, "update")
    stop = _callable_or_none(stop, "stop")
    hook = _callable_or_none(hook, "hook")
    if stop_below is not None:
        stop_below = positive_float(stop_below, "stop_below")
    record, schedule = recording_plan(steps, record, every, record_steps)
    if batch_size is not None:
        if batches is not None:
            raise TypeError("pass batch_size or batches, not both")
        X, Y = np.asarray(X), np.asarray(Y)
        batches = epoch_batches(X.shape[0], batch_size, seed)
    if batches is not None:
        X, Y = np.asarray(X), np.asarray(Y)
        batches = iter(batches)
    params = [np.array(W, copy=True) for W in params]
    state = optimizer.init(params) if optimizer is not None else None
    recorded = {name: [] for name in record}
    saved = [] if snapshots else None
    losses = np.empty(steps + 1)
    sizes = []
    to_record = set(schedule.tolist())
    limit = threshold = stop_step = None
    for s in range(steps + 1):
        if hook is not None:
            replacement = hook(s, net, params)
            if replacement is not None:
                net = replacement
        idx = None
        if batches is not None and s < steps:
            idx = next(batches, _EXHAUSTED)
            if idx is _EXHAUSTED:
                raise ValueError(f"batches ran out at step {s} of {steps}")
        if idx is None:
            loss, grads = net.loss_and_gradients(params, X, Y)
        else:
            loss, grads = net.loss_and_gradients(params, X[idx], Y[idx])
        if limit is None:
            limit = divergence_factor * (loss + 1.0)
            if stop_below is not None:
                threshold = stop_below * loss
        if not np.isfinite(loss) or loss > limit:
            raise DivergenceError(s, loss, f"gradient descent diverged (lr = {lr_text})")
        losses[s] = loss
        if (threshold is not None and loss <= threshold) or (stop is not None and stop(s, loss)):
            stop_step = s
        last = stop_step is not None or s == steps
        if s in to_record or last:
            for name, fn in record.items():
                recorded[name].append(fn(net, params, X, Y))
            if saved is not None:
                saved.append([W.copy() for W in params])
        if last:
            break
        step_size = rate if constant else learning_rate(rate, s)
        if optimizer is None:
            params = update(params, grads, step_size)
        else:
            updates, state = optimizer.update(grads, state, params)
            params = apply_updates(params, updates, check=False)
        if not constant:
            sizes.append(step_size)
    taken = s
    if taken < steps:
        losses = losses[:taken + 1].copy()
        schedule = np.union1d(schedule[schedule < taken], [taken]).astype(int)
    times = rate * np.arange(taken + 1) if constant else elapsed_times(sizes)
    return Trajectory(
        lr=rate, times=times, losses=losses, record_steps=schedule,
        observables={name: np.asarray(v) for name, v in recorded.items()},
        params=params, snapshots=saved, stop_step=stop_step)
