"""Monte-Carlo NTK and NNGP: averages of the empirical kernels over random initialisations.

Over ``S`` independent initialisations ``theta_s`` of a network (``net.init``), the estimates are
the sample means and standard deviations of

    NTK:   Theta_s(x, x') = J_s(x) J_s(x')^T              (:func:`~.kernels.empirical_ntk`),
    NNGP:  K_s(x, x')     = f(x; theta_s) f(x'; theta_s)^T,

the finite-width counterparts of the infinite-width NTK (Jacot et al. 2018) and NNGP kernel
(Lee et al. 2018; Matthews et al. 2018), in the manner of neural-tangents'
``monte_carlo_kernel_fn`` (Novak et al. 2020). Head conventions follow ``heads``
(docs/conventions.md): the NTK of ``heads="sum"`` is ``sum_i Theta_ii`` (as in
:func:`~.kernels.empirical_ntk`), its NNGP the head *average* ``(1/k) sum_i f_i(x) f_i(x')``
(the covariance of one output, as in neural-tangents); ``"each"`` gives ``f_i(x) f_i(x')`` per
head ``(k, n, n2)`` and ``"full"`` ``f_i(x) f_j(x')`` ``(k, k, n, n2)``.

Sample ``s`` is drawn from child ``s`` of ``numpy.random.SeedSequence(seed).spawn(n_samples)``
(from ``seed.spawn`` for a Generator or SeedSequence), so samples are independent, a seed gives
bitwise-identical results, and the first ``S'`` samples of a run with ``S > S'`` are those of
a run with ``S'``. Means and variances are accumulated one sample at a time (Welford's update),
so memory does not grow with ``n_samples``.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..base.validation import as_generator, one_of, positive_int
from .kernels import HEADS, empirical_ntk
from .networks import MLP

__all__ = ["MonteCarloKernels", "monte_carlo_kernels", "sample_seeds"]


@dataclass(frozen=True)
class MonteCarloKernels:
    """Sample means and standard deviations (``ddof=1``) of the empirical NTK and NNGP.

    Every array has the shape of the ``heads`` mode (``(n, n2)``, ``(k, n, n2)`` or
    ``(k, k, n, n2)``) and is read-only; :func:`monte_carlo_kernels` builds it.

    Parameters
    ----------
    ntk_mean, ntk_std : ndarray
        Mean and standard deviation over samples of the empirical NTK.
    nngp_mean, nngp_std : ndarray
        The same for the empirical NNGP ``f(x) f(x')^T`` (the head average for ``"sum"``).
    n_samples : int
        Number of initialisations ``S``.
    ntk_layers_mean, ntk_layers_std : dict or None
        With ``per_layer=True``: ``{"W_1": ..., "b_1": ..., ...}`` as in
        :func:`~.kernels.empirical_ntk`; the means sum to ``ntk_mean``. ``None`` otherwise.
    """

    ntk_mean: np.ndarray
    ntk_std: np.ndarray
    nngp_mean: np.ndarray
    nngp_std: np.ndarray
    n_samples: int
    ntk_layers_mean: dict | None = None
    ntk_layers_std: dict | None = None

    @property
    def ntk_sem(self) -> np.ndarray:
        """Standard error of the NTK mean, ``ntk_std / sqrt(n_samples)``."""
        return self.ntk_std / np.sqrt(self.n_samples)

    @property
    def nngp_sem(self) -> np.ndarray:
        """Standard error of the NNGP mean, ``nngp_std / sqrt(n_samples)``."""
        return self.nngp_std / np.sqrt(self.n_samples)


class _RunningMoments:
    """Welford's running mean and sum of squared deviations of equally shaped arrays."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, None, None

    def add(self, x: np.ndarray) -> None:
        self.count += 1
        if self.count == 1:
            self.mean, self.m2 = np.array(x, dtype=np.float64), np.zeros(x.shape)
            return
        delta = x - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (x - self.mean)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        std = np.sqrt(self.m2 / (self.count - 1))
        for a in (self.mean, std):
            a.setflags(write=False)
        return self.mean, std


def sample_seeds(seed, n_samples: int, name: str = "seed") -> list:
    """``n_samples`` independent child seeds of ``seed`` (each accepted by ``net.init``).

    Parameters
    ----------
    seed : int, list of int, SeedSequence or Generator
        An int or list of non-negative ints gives ``SeedSequence(seed).spawn(n_samples)``; a
        ``SeedSequence`` or ``Generator`` spawns its children (continuing its own spawn count).
    n_samples : int
        Number of children.
    name : str
        Name of the argument in error messages.

    Returns
    -------
    list of SeedSequence or Generator
        Child ``s`` is the same for every ``n_samples > s``.
    """
    n_samples = positive_int(n_samples, "n_samples")
    if isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return seed.spawn(n_samples)
    as_generator(seed, name)  # validates: an int or a list of non-negative ints
    entropy = int(seed) if isinstance(seed, numbers.Integral) else [int(s) for s in seed]
    return np.random.SeedSequence(entropy).spawn(n_samples)


def _nngp(f, f2, heads, symmetric):
    """Empirical NNGP of one sample in the shape of ``heads`` (module docstring)."""
    if heads == "sum":
        return (f @ f.T if symmetric else f @ f2.T) / f.shape[1]
    if heads == "each":
        return np.einsum("ai,bi->iab", f, f2)
    return np.einsum("ai,bj->ijab", f, f2)


def monte_carlo_kernels(net: MLP, X, X2=None, n_samples: int = 100, seed=0, heads: str = "sum",
                        per_layer: bool = False) -> MonteCarloKernels:
    """Mean and standard deviation of the empirical NTK and NNGP over ``n_samples`` inits.

    ``Theta = (1/S) sum_s J_s(x) J_s(x')^T`` and ``K = (1/S) sum_s f_s(x) f_s(x')^T`` over
    independent initialisations ``theta_s = net.init(child_s)`` (module docstring; Novak et
    al. 2020's ``monte_carlo_kernel_fn``).

    Parameters
    ----------
    net : MLP
        The network (an :class:`~ntkdyn.numerics.networks.MLP` or ``Network``), whose
        ``init`` draws the initialisations.
    X : array_like, shape (n, d)
        Inputs.
    X2 : array_like, shape (n2, d), optional
        Second inputs; ``None`` for ``X`` itself.
    n_samples : int
        Number of initialisations ``S`` (at least 2, for the standard deviation).
    seed : int, list of int, SeedSequence or Generator
        Spawned into ``n_samples`` independent child seeds (:func:`sample_seeds`).
    heads : {"sum", "each", "full"}
        Head mode of both kernels (module docstring: the NNGP of ``"sum"`` is the head mean).
    per_layer : bool
        Also accumulate the per-layer NTK terms (:func:`~.kernels.empirical_ntk`).

    Returns
    -------
    MonteCarloKernels
        Means and standard deviations (``ddof=1``), float64, in the shape of ``heads``.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net must be an MLP or Network, got {type(net).__name__}")
    one_of(heads, "heads", HEADS)
    if not isinstance(per_layer, (bool, np.bool_)):
        raise TypeError(f"per_layer must be a bool, got {per_layer!r}")
    n_samples = positive_int(n_samples, "n_samples", minimum=2)
    X = net.check_inputs(X)
    symmetric = X2 is None
    X2 = X if symmetric else net.check_inputs(X2, "X2")
    seeds = sample_seeds(seed, n_samples)
    ntk, nngp, layers = _RunningMoments(), _RunningMoments(), None
    for child in seeds:
        params = net.init(child)
        f = net.apply(params, X)
        f2 = f if symmetric else net.apply(params, X2)
        nngp.add(_nngp(f, f2, heads, symmetric))
        K = empirical_ntk(net, params, X, None if symmetric else X2, heads=heads,
                          per_layer=bool(per_layer))
        if per_layer:
            if layers is None:
                layers = {name: _RunningMoments() for name in K}
            for name, K_l in K.items():
                layers[name].add(K_l)
            K = sum(K.values())
        ntk.add(K)
    ntk_mean, ntk_std = ntk.result()
    nngp_mean, nngp_std = nngp.result()
    layer_mean = layer_std = None
    if layers is not None:
        moments = {name: acc.result() for name, acc in layers.items()}
        layer_mean = {name: m for name, (m, _) in moments.items()}
        layer_std = {name: s for name, (_, s) in moments.items()}
    return MonteCarloKernels(ntk_mean, ntk_std, nngp_mean, nngp_std, n_samples,
                             layer_mean, layer_std)
