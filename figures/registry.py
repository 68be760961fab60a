"""The registry of experiments: one line per experiment module.

Each module in ``EXPERIMENT_MODULES`` defines ``EXPERIMENT``, an
:class:`ntkdyn.figures.experiment.Experiment` (configurations, declared numbers with kinds and
typed targets, negative controls, the computation and the plot). Register a module by adding its
import path here.
"""
from __future__ import annotations

import importlib

from .experiment import Experiment

EXPERIMENT_MODULES = [
    "ntkdyn.figures.ntk_width",
    "ntkdyn.figures.il_sweep",
    "ntkdyn.figures.il_kernel",
    "ntkdyn.figures.il_gauss_newton",
    "ntkdyn.figures.nfa_training",
    "ntkdyn.figures.nfa_early_time",
    "ntkdyn.figures.nfa_rule",
    "ntkdyn.figures.relu_alignment",
    "ntkdyn.figures.specialization",
    "ntkdyn.figures.depth_alignment",
    "ntkdyn.figures.deep_linear_modes",
    "ntkdyn.figures.hessian_width",
    "ntkdyn.figures.kernel_change",
    "ntkdyn.figures.weight_change",
    "ntkdyn.figures.deep_linear_alignment",
    "ntkdyn.figures.toy_kernel_evolution",
    "ntkdyn.figures.deep_linear_data",
    "ntkdyn.figures.optimal_feature_evolution",
    "ntkdyn.figures.kernel_split",
    "ntkdyn.figures.specialization_matrix",
    "ntkdyn.figures.mixture_specialization",
    "ntkdyn.figures.kgd_baselines",
    "ntkdyn.figures.infinite_width",
]


def _load(path: str) -> Experiment:
    module = importlib.import_module(path)
    experiment = getattr(module, "EXPERIMENT", None)
    if not isinstance(experiment, Experiment):
        raise TypeError(f"experiment module {path} must define EXPERIMENT = Experiment(...)")
    return experiment


def experiments() -> dict[str, Experiment]:
    """All registered experiments, by name, in registration order."""
    out = {}
    for path in EXPERIMENT_MODULES:
        experiment = _load(path)
        if experiment.name in out:
            raise TypeError(f"experiment name {experiment.name!r} registered twice")
        out[experiment.name] = experiment
    return out


def get_experiment(name: str) -> Experiment:
    """The experiment registered as ``name``."""
    path = f"ntkdyn.figures.{name.replace('-', '_')}" if isinstance(name, str) else None
    if path in EXPERIMENT_MODULES:  # the module named like the experiment: load only that one
        experiment = _load(path)
        if experiment.name == name:
            return experiment
    registry = experiments()
    if name not in registry:
        raise ValueError(f"unknown experiment {name!r}; expected one of {sorted(registry)} "
                         "(see `ntkdyn list`)")
    return registry[name]
