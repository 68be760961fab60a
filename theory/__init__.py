"""Closed forms, sympy derivations, ODE systems and infinite-width kernels.

Never trains a network; imports numpy, scipy, sympy and :mod:`ntkdyn.base` only. Submodules
are imported on use (``from ntkdyn.theory import relu_ntk``), so ``import ntkdyn.theory``
stays cheap (no sympy).
"""
__all__ = [
    "arccos",
    "cntk",
    "deep_linear_kernels",
    "deep_linear_modes",
    "dual_kernels",
    "infinite_width",
    "kernel_evolution",
    "kernel_regime",
    "linearity",
    "nfa",
    "parameterization",
    "relu_ntk",
    "symbolic",
    "two_layer_alignment",
    "two_layer_ntk",
]
