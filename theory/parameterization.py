"""Layer multipliers ``c_l`` of the NTK and standard parameterizations (docs/conventions.md).

A network with weights ``W_l`` of shape ``(n_l, n_{l-1})`` computes ``h_l = c_l W_l a_{l-1}``
with

* ``"ntk"`` (Jacot et al. 2018): ``c_l = 1 / sqrt(n_{l-1})``, the layer's fan-in;
* ``"standard"`` (Saxe, McClelland & Ganguli 2014): ``c_l = 1``.

The theory's closed forms take their multipliers from :func:`layer_multipliers`, so that they
use the same floating-point values as ``ntkdyn.numerics.networks.MLP``.
"""
from __future__ import annotations

import numpy as np

from ..base.validation import one_of, positive_int

__all__ = ["PARAMETERIZATIONS", "layer_multipliers"]

PARAMETERIZATIONS = ("ntk", "standard")


def layer_multipliers(fan_ins, parameterization: str = "ntk") -> tuple[float, ...]:
    """Multipliers ``(c_1, ..., c_L)`` for layers with fan-ins ``(n_0, ..., n_{L-1})``.

    Parameters
    ----------
    fan_ins : sequence of int
        Input width of each weight matrix, ``n_0 = d`` first.
    parameterization : {"ntk", "standard"}
        ``"ntk"``: ``c_l = 1 / sqrt(n_{l-1})``; ``"standard"``: ``c_l = 1``.

    Returns
    -------
    tuple of float
        ``c_l``, one per layer.
    """
    one_of(parameterization, "parameterization", PARAMETERIZATIONS)
    fan_ins = [positive_int(n, f"fan_ins[{l}]") for l, n in enumerate(fan_ins)]
    if parameterization == "standard":
        return tuple(1.0 for _ in fan_ins)
    return tuple(float(1.0 / np.sqrt(n)) for n in fan_ins)
