"""Progress of long in-process computations: an optional callback that the runner installs.

A sweep experiment shows its progress run by run (:func:`ntkdyn.figures.sweep.run_cached`); an
experiment computed in one process (``compute(config, seed)``) reports its own steps instead::

    advance = progress.counter(seeds * len(ACTIVATIONS), "run")
    for s in range(seeds):
        for act in ACTIVATIONS:
            ...           # one training run
            advance()

Without an installed callback :func:`counter` returns a no-op, so a compute function costs
nothing extra when nobody watches (the Python API by default, a pipe, ``--quiet``). The runner
installs a tqdm bar on stderr (:func:`showing`) only when progress was asked for; the command
line asks for it on a terminal only.
"""
from __future__ import annotations

import contextvars
import sys
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

__all__ = ["counter", "reporting", "showing", "track"]

#: ``callback(done, total, unit)`` of the computation running in this context, or ``None``.
_CALLBACK: contextvars.ContextVar[Callable[[int, int, str], None] | None] = \
    contextvars.ContextVar("ntkdyn_progress", default=None)


def _noop(steps: int = 1) -> None:
    return None


def counter(total: int, unit: str = "step") -> Callable[[int], None]:
    """A function ``advance(steps=1)`` that reports ``steps`` more of ``total`` done.

    Parameters
    ----------
    total : int
        How many steps the computation takes (at least 1).
    unit : str
        What one step is (``"run"``, ``"step"``), shown beside the count.

    Returns
    -------
    callable
        ``advance(steps=1)``; a no-op when no callback is installed (:func:`reporting`).
    """
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"total must be a positive int, got {total!r}")
    callback = _CALLBACK.get()
    if callback is None:
        return _noop
    done = 0
    callback(0, total, unit)

    def advance(steps: int = 1) -> None:
        nonlocal done
        done = min(total, done + int(steps))
        callback(done, total, unit)

    return advance


def track(items: Iterable, total: int | None = None, unit: str = "step") -> Iterator:
    """Yield ``items``, reporting one step after each (``total`` defaults to ``len(items)``)."""
    items = list(items) if total is None and not hasattr(items, "__len__") else items
    n = len(items) if total is None else int(total)
    if n < 1:
        yield from items
        return
    advance = counter(n, unit)
    for item in items:
        yield item
        advance()


@contextmanager
def reporting(callback: Callable[[int, int, str], None] | None):
    """Install ``callback(done, total, unit)`` for the computations run inside the block
    (``None`` installs nothing)."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {callback!r}")
    token = _CALLBACK.set(callback)
    try:
        yield
    finally:
        _CALLBACK.reset(token)


class _Bar:
    """A tqdm bar on stderr, made at the first report (so nothing shows for a cached result)."""

    def __init__(self, desc: str):
        self.desc, self.bar = desc, None

    def __call__(self, done: int, total: int, unit: str) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=self.desc, unit=unit, file=sys.stderr)
        if total != self.bar.total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def showing(desc: str, enabled: bool = True):
    """A tqdm bar on stderr named ``desc`` for the computations inside the block, when
    ``enabled``; nothing otherwise."""
    if not enabled:
        yield
        return
    bar = _Bar(desc)
    try:
        with reporting(bar):
            yield
    finally:
        bar.close()
