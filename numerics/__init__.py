"""Finite networks: models, gradient descent, empirical kernels, Hessians, feature metrics.

The most used names are re-exported here; each lives in the module named beside it.
"""
from ..base.activations import ACTIVATIONS, Activation, get_activation
from ..base.errors import DivergenceError
from .features import RecursiveFeatureMachine, SpeedLimited, agop, nfa_correlation, nfm
from .kernels import (alignment, eigenvector_target_overlap, empirical_ntk, relative_change,
                      specialization, specialization_index)
from .linearised import iterative_linearised_training
from .networks import MLP
from .training import Trajectory, gradient_descent

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "DivergenceError",
    "MLP",
    "RecursiveFeatureMachine",
    "SpeedLimited",
    "Trajectory",
    "agop",
    "alignment",
    "eigenvector_target_overlap",
    "empirical_ntk",
    "get_activation",
    "gradient_descent",
    "iterative_linearised_training",
    "nfa_correlation",
    "nfm",
    "relative_change",
    "specialization",
    "specialization_index",
]
