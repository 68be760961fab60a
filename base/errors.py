"""Exceptions raised by the numerics layer."""
from __future__ import annotations


class DivergenceError(RuntimeError):
    """Gradient descent produced a non-finite or exploding loss.

    Parameters
    ----------
    step : int
        The step at which the divergence was detected (0 is the initial point).
    loss : float
        The offending loss value (may be ``inf`` or ``nan``).
    reason : str, optional
        What diverged; the message reads ``"{reason} at step {step}: loss = {loss}"``.

    Attributes
    ----------
    step : int
        The step at which the divergence was detected (0 is the initial point).
    loss : float
        The offending loss value (may be ``inf`` or ``nan``).
    reason : str
        What diverged.
    """

    def __init__(self, step: int, loss: float, reason: str = "loss diverged"):
        self.step = int(step)
        self.loss = float(loss)
        self.reason = reason
        super().__init__(f"{reason} at step {self.step}: loss = {self.loss!r}")

    def __reduce__(self):
        # rebuilt from (step, loss, reason), so it survives a process pool's pickling
        return (type(self), (self.step, self.loss, self.reason))
