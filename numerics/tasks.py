"""Ready-made training problems: a network, its initial parameters and train/test data.

Experiments that share a problem build it here, from one seed, so they train on exactly the
same data and initialisation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..base.validation import positive_int
from .networks import MLP
from .synthetic import single_index_hermite


@dataclass(frozen=True)
class Problem:
    """A network with initial parameters and train/test data (``X`` ``(n, d)``, ``Y`` ``(n, k)``).
    """

    net: MLP
    params: list
    X: np.ndarray
    Y: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray

    def __iter__(self):
        """Unpack as ``net, params, X, Y, X_test, Y_test``."""
        return iter((self.net, self.params, self.X, self.Y, self.X_test, self.Y_test))


def single_index_problem(d: int, n_train: int, n_test: int, width: int, activation: str = "relu",
                         seed=(0,)) -> Problem:
    """A two-layer ``MLP([d, width, 1])`` on the single-index task ``y = He_2(w . x) / sqrt(2)``.

    The task of the iterative-linearisation experiments (Goldwaser & Ge 2022, sec. 5): it needs
    feature learning, so the frozen NTK generalises worse than gradient descent. The data come
    from :func:`ntkdyn.numerics.synthetic.single_index_hermite` seeded ``[*seed, 0]`` (the first
    ``n_train`` points train, the rest test) and the weights from ``[*seed, 1]``.

    Parameters
    ----------
    d, n_train, n_test, width : int
        Input dimension, train and test set sizes, hidden width.
    activation : str
        Hidden activation (a name from :data:`ntkdyn.base.activations.ACTIVATIONS`).
    seed : sequence of non-negative int
        E.g. ``(base_seed, replicate)``.
    """
    d, n_train = positive_int(d, "d"), positive_int(n_train, "n_train")
    n_test, width = positive_int(n_test, "n_test"), positive_int(width, "width")
    seed = [int(s) for s in seed]
    data = single_index_hermite(n_train + n_test, d, seed=seed + [0])
    net = MLP([d, width, 1], activation=activation)
    params = net.init(seed=seed + [1])
    return Problem(net, params, data.X[:n_train], data.Y[:n_train], data.X[n_train:],
                   data.Y[n_train:])
