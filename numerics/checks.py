"""Argument checks of the numerics layer that need its classes (the others live in
:mod:`ntkdyn.base.validation`).

Errors follow docs/conventions.md: ``TypeError`` for a wrong type, naming the argument and
saying what was expected, raised before any work.
"""
from __future__ import annotations

from .networks import MLP

__all__ = ["check_network"]


def check_network(net, name: str = "net", methods: tuple[str, ...] = ()):
    """``net`` when it is a network of this package (or, with ``methods``, any model that has
    them); otherwise a ``TypeError`` naming ``name``.

    A network is an :class:`ntkdyn.numerics.networks.MLP` (``Network``, the neural-tangents
    style description, is one). Call it first in every public function that takes a network,
    so that ``empirical_ntk("net", ...)`` says what is wrong instead of failing later with an
    ``AttributeError``. A function that only needs some methods (``gradient_descent`` trains
    any model with ``loss_and_gradients``: linearised models, Gauss-Newton directions) passes
    them as ``methods`` and accepts whatever has them.

    Parameters
    ----------
    net : object
        The argument to check.
    name : str
        The argument's name in the caller (``"net"``, ``"model"``), used in the message.
    methods : tuple of str
        Methods a duck-typed model must have (callable attributes); empty (the default):
        ``net`` must be an ``MLP``.

    Returns
    -------
    object
        ``net`` itself.

    Raises
    ------
    TypeError
        ``net`` is not an ``MLP`` (or lacks one of ``methods``); a class (``MLP`` instead of
        ``MLP([...])``) is named as such.
    """
    if isinstance(net, type):
        raise TypeError(f"{name} must be a network instance such as MLP([d, width, k]), got the "
                        f"class {net.__name__} itself")
    if methods:
        missing = [m for m in methods if not callable(getattr(net, m, None))]
        if not missing:
            return net
        raise TypeError(f"{name} must be a model with {', '.join(m + '()' for m in methods)} "
                        f"(e.g. ntkdyn.numerics.networks.MLP), got {type(net).__name__} "
                        f"{_short(net)}")
    if isinstance(net, MLP):
        return net
    raise TypeError(f"{name} must be a network (ntkdyn.numerics.networks.MLP or Network), got "
                    f"{type(net).__name__} {_short(net)}")


def _short(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
