"""Closed forms, sympy derivations, ODE systems and infinite-width kernels.

Never trains a network; imports numpy, scipy and sympy only. Submodules are imported on
use (``from theory import relu_ntk``), so ``import theory`` stays cheap (no sympy).
"""
__all__ = [
    "alignment",
    "deep_linear",
    "kernel_evolution",
    "kernel_regime",
    "linearity",
    "nfa",
    "relu_ntk",
    "symbolic",
    "two_layer_alignment",
    "validation",
]
