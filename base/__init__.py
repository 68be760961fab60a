"""The layer below both ``ntkdyn.theory`` and ``ntkdyn.numerics``: what both sides share, once.

Input validation, the activation registry, kernel-target metrics, the loss, samplers and the
errors. Imports numpy and scipy only; never the theory, numerics or figures layers.
"""
from .activations import ACTIVATIONS, Activation, get_activation
from .alignment import (CORRELATION_KINDS, alignment, center, eigenvector_target_overlap,
                        kernel_specialization_matrix, matrix_correlation, relative_change,
                        specialization, specialization_index)
from .errors import DivergenceError
from .linalg import psd_power
from .losses import mse, mse_and_output_gradient
from .samplers import orthonormal_frame, sphere_inputs

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "CORRELATION_KINDS",
    "DivergenceError",
    "alignment",
    "center",
    "eigenvector_target_overlap",
    "get_activation",
    "kernel_specialization_matrix",
    "matrix_correlation",
    "mse",
    "mse_and_output_gradient",
    "orthonormal_frame",
    "psd_power",
    "relative_change",
    "specialization",
    "specialization_index",
    "sphere_inputs",
]
