"""ntkdyn: theory beside simulation for neural-tangent-kernel dynamics.

Subpackages (the arrows are the only imports allowed between them)::

    ntkdyn.figures -> ntkdyn.numerics -> ntkdyn.theory -> ntkdyn.base

``base``: validation, activations, kernel-target metrics, the loss, samplers, errors;
``theory``: closed forms, sympy derivations, ODEs, infinite-width kernels (never trains);
``numerics``: finite networks, gradient descent, empirical kernels, Hessians, feature metrics;
``figures``: the experiments, their runner, the report and the ``ntkdyn`` command line
(the only layer that imports matplotlib).

The most used names are available here and load on first use, so ``import ntkdyn`` stays cheap::

    import ntkdyn
    net = ntkdyn.Network([10, 512, 1], activation="tanh", b_std=0.1)
    K = ntkdyn.empirical_ntk(net, net.init(0), X)   # finite width, at initialisation
    K_inf = ntkdyn.infinite_ntk(net, X)               # the same description at infinite width
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# name -> submodule that defines it; resolved lazily (PEP 562)
_API = {
    "ACTIVATIONS": "ntkdyn.base.activations",
    "Activation": "ntkdyn.base.activations",
    "DivergenceError": "ntkdyn.base.errors",
    "alignment": "ntkdyn.base.alignment",
    "specialization": "ntkdyn.base.alignment",
    "kernel_specialization_matrix": "ntkdyn.base.alignment",
    "MLP": "ntkdyn.numerics.networks",
    "Network": "ntkdyn.numerics.networks",
    "monte_carlo_kernels": "ntkdyn.numerics.monte_carlo",
    "empirical_ntk": "ntkdyn.numerics.kernels",
    "gradient_descent": "ntkdyn.numerics.training",
    "Trajectory": "ntkdyn.numerics.training",
    "infinite_ntk": "ntkdyn.theory.infinite_width",
    "infinite_nngp": "ntkdyn.theory.infinite_width",
    **dict.fromkeys(("run", "load", "Result"), "ntkdyn.figures.api"),
}
_SUBPACKAGES = ("base", "theory", "numerics", "figures", "layers")

__all__ = ["__version__", *_SUBPACKAGES, *sorted(_API)]

if TYPE_CHECKING:  # what type checkers see for the lazily loaded names (py.typed); as in _API
    from .base.activations import ACTIVATIONS, Activation  # noqa: F401
    from .base.alignment import kernel_specialization_matrix  # noqa: F401
    from .base.alignment import alignment, specialization  # noqa: F401
    from .base.errors import DivergenceError  # noqa: F401
    from .figures.api import Result, load, run  # noqa: F401
    from .numerics.kernels import empirical_ntk  # noqa: F401
    from .numerics.monte_carlo import monte_carlo_kernels  # noqa: F401
    from .numerics.networks import MLP, Network  # noqa: F401
    from .numerics.training import Trajectory, gradient_descent  # noqa: F401
    from .theory.infinite_width import infinite_nngp, infinite_ntk  # noqa: F401


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"ntkdyn.{name}")
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ntkdyn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
