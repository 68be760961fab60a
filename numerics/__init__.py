"""Finite networks: models, gradient descent and optimisers, empirical kernels, Hessians,
feature metrics.

The most used names are re-exported here; each lives in the module named beside it.
"""
from ..base.activations import ACTIVATIONS, Activation, get_activation
from ..base.errors import DivergenceError
from .datafiles import DataSplit, load_dataset
from .deep_linear import decoupled_init, fit_time_shifts, mode_strengths
from .features import SpeedLimited, agop, nfa_correlation, nfm
from .fetch import DataUnavailable
from .hessian_norm import output_gradient_norm, output_hessian_norm
from .hessian_operator import (hvp, loss_hessian_dense, loss_hessian_operator,
                               loss_hessian_top_eigs, output_hessian_dense, output_hessian_operator,
                               output_hessian_top_eigs)
from .hessian_two_layer import (TwoLayerHessian, two_layer_hessian, two_layer_hessian_norm,
                                two_layer_unit_blocks)
from .kernels import (alignment, eigenvector_target_overlap, empirical_ntk, relative_change,
                      specialization, specialization_index)
from .laziness import linearity_network, measure_laziness
from .linearised import iterative_linearised_training
from .memory import MemoryBudgetError, estimate_bytes, require_memory
from .networks import MLP, Network
from .optimizers import Optimizer, adam, apply_updates, sgd
from .rfm import RecursiveFeatureMachine, laplace_kernel
from .tasks import Problem, single_index_problem
from .training import Trajectory, gradient_descent

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "DataSplit",
    "DataUnavailable",
    "DivergenceError",
    "MLP",
    "MemoryBudgetError",
    "Network",
    "Optimizer",
    "Problem",
    "RecursiveFeatureMachine",
    "SpeedLimited",
    "Trajectory",
    "TwoLayerHessian",
    "adam",
    "agop",
    "alignment",
    "apply_updates",
    "decoupled_init",
    "eigenvector_target_overlap",
    "empirical_ntk",
    "estimate_bytes",
    "fit_time_shifts",
    "get_activation",
    "gradient_descent",
    "hvp",
    "iterative_linearised_training",
    "laplace_kernel",
    "linearity_network",
    "load_dataset",
    "loss_hessian_dense",
    "loss_hessian_operator",
    "loss_hessian_top_eigs",
    "measure_laziness",
    "mode_strengths",
    "nfa_correlation",
    "nfm",
    "output_gradient_norm",
    "output_hessian_dense",
    "output_hessian_norm",
    "output_hessian_operator",
    "output_hessian_top_eigs",
    "relative_change",
    "require_memory",
    "sgd",
    "single_index_problem",
    "specialization",
    "specialization_index",
    "two_layer_hessian",
    "two_layer_hessian_norm",
    "two_layer_unit_blocks",
]
