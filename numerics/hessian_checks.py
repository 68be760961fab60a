"""Argument checks shared by the Hessian modules (operator, two-layer closed form, norms).

Hessians need ``phi''``: an activation without a callable ``d2phi`` is refused with a message
naming it, before any pass over the weights. Errors follow docs/conventions.md (``TypeError``
for a wrong type, ``ValueError`` for a wrong value, naming the argument).
"""
from __future__ import annotations

import numpy as np

from ..base.activations import Activation
from ..base.validation import as_array, positive_int
from .networks import MLP

__all__ = ["check_hessian_net", "check_head", "require_second_derivative", "single_input"]


def require_second_derivative(act: Activation, argument: str) -> None:
    """Raise ``ValueError`` unless ``act.d2phi`` is callable; ``argument`` names the role.

    Parameters
    ----------
    act : Activation
        The activation to check (its ``d2phi`` attribute).
    argument : str
        The role it plays, named in the error message (``"activation"``,
        ``"output_activation"``).

    Raises
    ------
    ValueError
        When ``act`` has no callable ``d2phi``.
    """
    d2 = getattr(act, "d2phi", None)
    if d2 is None or not callable(d2):
        raise ValueError(
            f"{argument} {act.name!r} has no second derivative (d2phi is {d2!r}); Hessians of "
            "the network need phi''. Give the Activation a d2phi (zero for piecewise-linear "
            "functions) or use a name from ntkdyn.base.activations.ACTIVATIONS")


def check_hessian_net(net, need_hidden: bool = True) -> MLP:
    """``net`` as an :class:`MLP` whose activations have the second derivatives a Hessian needs.

    ``need_hidden=False`` checks only the output activation (for gradients of ``f``).

    Parameters
    ----------
    net : MLP
        The network.
    need_hidden : bool
        Whether the hidden activation needs ``d2phi`` too (only checked when
        ``net.depth > 1``); the output activation, when there is one, always does.

    Returns
    -------
    MLP
        ``net`` itself.

    Raises
    ------
    TypeError
        When ``net`` is not an :class:`MLP`.
    ValueError
        When a needed activation has no second derivative.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a numerics.networks.MLP, got {type(net).__name__}")
    if need_hidden and net.depth > 1:
        require_second_derivative(net.activation, "activation")
    if net.output_activation is not None:
        require_second_derivative(net.output_activation, "output_activation")
    return net


def check_head(net: MLP, head) -> int:
    """``head`` as an output index in ``[0, net.output_dim)``.

    Parameters
    ----------
    net : MLP
        The network (its ``output_dim``).
    head : int
        The output index to check.

    Returns
    -------
    int
        ``head`` as a Python int.

    Raises
    ------
    ValueError
        When ``head`` is negative or at least ``net.output_dim``.
    """
    head = positive_int(head, "head", minimum=0)
    if head >= net.output_dim:
        raise ValueError(f"head must be < {net.output_dim} (the number of outputs), got {head}")
    return head


def single_input(net: MLP, x) -> np.ndarray:
    """One input of shape ``(d,)`` or ``(1, d)`` as a finite float array of shape ``(d,)``.

    Parameters
    ----------
    net : MLP
        The network (its ``input_dim`` is ``d``).
    x : array_like, shape (d,) or (1, d)
        One input.

    Returns
    -------
    numpy.ndarray, shape (d,)
        The input as a finite float array.

    Raises
    ------
    ValueError
        When ``x`` is not one input of ``net.input_dim`` finite entries.
    """
    x = as_array(x, "x", ndim=(1, 2))
    if x.ndim == 2:
        if x.shape[0] != 1:
            raise ValueError(f"x must be one input, shape ({net.input_dim},) or "
                             f"(1, {net.input_dim}), got {x.shape}")
        x = x[0]
    if x.shape[0] != net.input_dim:
        raise ValueError(f"x must have {net.input_dim} entries (the input dimension), "
                         f"got {x.shape}")
    return x
