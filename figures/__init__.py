"""Experiments (theory beside simulation, with agreement numbers), the runner and the CLI.

The only layer that imports matplotlib. See :mod:`ntkdyn.figures.registry` for the experiment
protocol.
"""
__all__ = [
    "cli",
    "registry",
    "runner",
    "storage",
]
