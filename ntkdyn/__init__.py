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
    net = ntkdyn.MLP([10, 512, 1])
    K = ntkdyn.empirical_ntk(net, net.init(0), X)
"""
from __future__ import annotations

import importlib

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
    "empirical_ntk": "ntkdyn.numerics.kernels",
    "gradient_descent": "ntkdyn.numerics.training",
    "Trajectory": "ntkdyn.numerics.training",
    "infinite_ntk": "ntkdyn.theory.relu_ntk",
    "infinite_nngp": "ntkdyn.theory.relu_ntk",
}
_SUBPACKAGES = ("base", "theory", "numerics", "figures")

__all__ = ["__version__", *_SUBPACKAGES, *sorted(_API)]


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
