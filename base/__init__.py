"""The layer below both ``ntkdyn.theory`` and ``ntkdyn.numerics``: what both sides share, once.

Input validation, the activation registry, kernel-target metrics, the loss, samplers and the
errors. Imports numpy and scipy only; never the theory, numerics or figures layers.
"""
from .activations import ACTIVATIONS, Activation, get_activation
from .alignment import (alignment, center, eigenvector_target_overlap, relative_change,
                        specialization, specialization_index)
from .errors import DivergenceError
from .losses import mse, mse_and_output_gradient
from .samplers import orthonormal_frame, sphere_inputs

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "DivergenceError",
    "alignment",
    "center",
    "eigenvector_target_overlap",
    "get_activation",
    "mse",
    "mse_and_output_gradient",
    "orthonormal_frame",
    "relative_change",
    "specialization",
    "specialization_index",
    "sphere_inputs",
]
