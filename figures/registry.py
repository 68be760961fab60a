"""The registry of experiments and the protocol every experiment module follows.

An experiment is a module in ``figures/`` that defines

``NAME``         the CLI name (``ntkdyn run NAME``), lower-case with dashes;
``DESCRIPTION``  one line for ``ntkdyn list --long``;
``QUICK``        a dict: the quick configuration (``ntkdyn all``; seconds to tens of seconds);
``PAPER``        a dict: the paper-scale configuration (``--paper``); same keys as ``QUICK``;
``TARGETS``      ``{agreement name: (low, high)}``, the interval each agreement number is held to;
``compute(config) -> dict[str, np.ndarray]``
                 theory and simulation; returns plain arrays (cached as ``.npz``), seeded by
                 ``config["seed"]`` so the same config gives the same arrays;
``agreement(result) -> dict[str, float]``
                 named numbers saying how well theory and simulation agree;
``plot(result) -> matplotlib.figure.Figure``
                 theory beside simulation.

Register a module by adding its import path to ``EXPERIMENT_MODULES`` (one line each).
"""
from __future__ import annotations

import importlib
import math
from types import ModuleType

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
]

_REQUIRED = ("NAME", "DESCRIPTION", "QUICK", "PAPER", "TARGETS", "compute", "agreement", "plot")


def _load(path: str) -> ModuleType:
    module = importlib.import_module(path)
    missing = [attr for attr in _REQUIRED if not hasattr(module, attr)]
    if missing:
        raise TypeError(f"experiment module {path} lacks {missing}")
    if set(module.QUICK) != set(module.PAPER):
        raise TypeError(f"experiment module {path}: QUICK and PAPER must have the same keys")
    for key, target in module.TARGETS.items():
        # finite bounds only: the JSON records must stay standard JSON (no Infinity)
        finite = len(target) == 2 and all(math.isfinite(b) for b in target)
        if not (finite and target[0] <= target[1]):
            raise TypeError(f"experiment module {path}: TARGETS[{key!r}] must be a finite "
                            f"interval (low, high), got {target!r}")
    return module


def experiments() -> dict[str, ModuleType]:
    """All registered experiments, by name, in registration order."""
    out = {}
    for path in EXPERIMENT_MODULES:
        module = _load(path)
        if module.NAME in out:
            raise TypeError(f"experiment name {module.NAME!r} registered twice")
        out[module.NAME] = module
    return out


def get_experiment(name: str) -> ModuleType:
    """The experiment module registered as ``name``."""
    registry = experiments()
    if name not in registry:
        raise ValueError(f"unknown experiment {name!r}; expected one of {sorted(registry)} "
                         "(see `ntkdyn list`)")
    return registry[name]
