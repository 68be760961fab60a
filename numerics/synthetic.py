"""Seeded synthetic tasks: teachers, mixtures and low-dimensional targets drawn in memory.

Every generator takes ``seed`` (an int, a list of ints or a ``numpy.random.Generator``,
docs/conventions.md) and returns a :class:`Dataset` with inputs ``X`` of shape ``(n, d)`` and
targets ``Y`` of shape ``(n, k)``. Data sets read from files are :mod:`numerics.datafiles`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..base.activations import get_activation
from ..base.samplers import orthonormal_frame, sphere_inputs
from ..base.validation import as_array, as_generator, positive_float, positive_int


@dataclass
class Dataset:
    """Inputs, targets and whatever defines the task.

    Parameters
    ----------
    X : numpy.ndarray, shape (n, d)
        Inputs, one per row.
    Y : numpy.ndarray, shape (n, k)
        Targets.
    info : dict, optional
        What defines the task (teacher weights, labels, class means, ...).
    """

    X: np.ndarray
    Y: np.ndarray
    info: dict = field(default_factory=dict)


def whiten(X) -> np.ndarray:
    """Exactly whitened inputs: ``X^T X / n = I`` (requires ``n >= d``).

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs with a non-singular covariance, ``n >= d``.

    Returns
    -------
    numpy.ndarray, shape (n, d)
        ``X Sigma^(-1/2)`` with ``Sigma = X^T X / n``.
    """
    X = as_array(X, "X", ndim=2)
    n, d = X.shape
    if n < d:
        raise ValueError(f"X must have at least as many rows as columns to be whitened, "
                         f"got {X.shape}")
    cov = X.T @ X / n
    evals, evecs = np.linalg.eigh(cov)
    if evals.min() <= 1e-12 * evals.max():
        raise ValueError("X has a singular covariance and cannot be whitened")
    return X @ evecs @ np.diag(evals ** -0.5) @ evecs.T


def linear_teacher(n, d, k, singular_values, seed=0, whitened=True) -> Dataset:
    """Whitened Gaussian inputs and a linear teacher ``Y = X W*^T`` with chosen singular values.

    ``W* = U diag(s) V^T`` (``k x d``, Haar ``U``, ``V``); with ``X^T X / n = I`` the input-output
    covariance ``Sigma_yx = Y^T X / n`` equals ``W*`` exactly, so the mode strengths of
    Saxe et al. (2014) are the given ``singular_values``.

    Parameters
    ----------
    n, d, k : int
        The number of examples, the input and the output dimensions.
    singular_values : array_like, shape (m,)
        ``s``, non-negative, ``m <= min(d, k)``.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream.
    whitened : bool, optional
        Whiten the inputs exactly (default ``True``).

    Returns
    -------
    Dataset
        ``X (n, d)``, ``Y (n, k)`` and ``info`` with ``W_star (k, d)``, ``U (k, m)``,
        ``V (d, m)`` and ``singular_values``.
    """
    n, d, k = positive_int(n, "n"), positive_int(d, "d"), positive_int(k, "k")
    s = as_array(singular_values, "singular_values", ndim=1)
    if len(s) == 0:
        raise ValueError("singular_values must hold at least one entry")
    if len(s) > min(d, k):
        raise ValueError(f"singular_values may have at most min(d, k) = {min(d, k)} entries, "
                         f"got {len(s)}")
    if np.any(s < 0):
        raise ValueError("singular_values must be non-negative")
    rng = as_generator(seed)
    X = rng.standard_normal((n, d))
    if whitened:
        X = whiten(X)
    U, V = orthonormal_frame(k, len(s), rng), orthonormal_frame(d, len(s), rng)
    W_star = (U * s) @ V.T
    return Dataset(X, X @ W_star.T, {"W_star": W_star, "U": U, "V": V, "singular_values": s})


def power_law_gaussian(n, d, exponent=1.0, seed=0, k=1, target_exponent=None) -> Dataset:
    """Gaussian inputs with covariance eigenvalues ``lambda_j = j^{-exponent}`` and a linear target.

    The target weights have power ``beta_j^2 = j^{-target_exponent}`` in the eigenbasis
    (default: isotropic), the setting of power-law kernel-regression learning curves.

    Parameters
    ----------
    n, d : int
        The number of examples and the input dimension.
    exponent : float, optional
        The spectrum's exponent, ``>= 0``.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream.
    k : int, optional
        The number of outputs.
    target_exponent : float, optional
        The target's exponent in the eigenbasis (default: isotropic).

    Returns
    -------
    Dataset
        ``X (n, d)``, ``Y (n, k)`` and ``info`` with ``spectrum (d,)``, ``basis (d, d)`` and
        ``beta (d, k)``.
    """
    n, d, k = positive_int(n, "n"), positive_int(d, "d"), positive_int(k, "k")
    exponent = positive_float(exponent, "exponent", allow_zero=True)
    rng = as_generator(seed)
    spectrum = np.arange(1, d + 1, dtype=float) ** -exponent
    basis = orthonormal_frame(d, d, rng)
    X = (rng.standard_normal((n, d)) * np.sqrt(spectrum)) @ basis.T
    scale = (np.ones(d) if target_exponent is None
             else np.arange(1, d + 1) ** (-0.5 * target_exponent))
    beta = basis @ (scale[:, None] * rng.standard_normal((d, k)))
    return Dataset(X, X @ beta, {"spectrum": spectrum, "basis": basis, "beta": beta})


def two_layer_teacher(n, d, width=1, k=1, activation="relu", seed=0) -> Dataset:
    """Gaussian inputs and a random two-layer teacher ``y = a^T phi(W x / sqrt(d)) / sqrt(width)``.

    ``W`` is ``(width, d)``, ``a`` is ``(k, width)``, both i.i.d. ``N(0, 1)``.

    Parameters
    ----------
    n, d : int
        The number of examples and the input dimension.
    width : int, optional
        The teacher's width.
    k : int, optional
        The number of outputs.
    activation : str, optional
        The teacher's activation.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream.

    Returns
    -------
    Dataset
        ``X (n, d)``, ``Y (n, k)`` and ``info`` with ``W``, ``a`` and ``activation``.
    """
    n, d = positive_int(n, "n"), positive_int(d, "d")
    width, k = positive_int(width, "width"), positive_int(k, "k")
    act = get_activation(activation)
    rng = as_generator(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((width, d))
    a = rng.standard_normal((k, width))
    Y = act.phi(X @ W.T / np.sqrt(d)) @ a.T / np.sqrt(width)
    return Dataset(X, Y, {"W": W, "a": a, "activation": act.name})


def one_hot(labels, num_classes=None, centered=True) -> np.ndarray:
    """One-hot targets; with ``centered`` each row has its class mean ``1/C`` removed.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
        Labels in ``0..C-1``.
    num_classes : int, optional
        ``C`` (default: the largest label plus one).
    centered : bool, optional
        Subtract ``1/C`` from every entry (default ``True``).

    Returns
    -------
    numpy.ndarray, shape (n, C)
        The targets.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got dtype {labels.dtype} "
                         f"shape {labels.shape}")
    C = int(labels.max()) + 1 if num_classes is None else positive_int(num_classes, "num_classes")
    if labels.min() < 0 or labels.max() >= C:
        raise ValueError(f"labels must lie in [0, {C}), got range [{labels.min()}, {labels.max()}]")
    Y = np.eye(C)[labels]
    return Y - 1.0 / C if centered else Y


def gaussian_mixture_classes(n, d, num_classes=4, radius=5.0, offset=5.0, noise=1.0, seed=0,
                             centered=True) -> Dataset:
    """Balanced classes ``x = r mu_c + b + z`` with centred one-hot targets.

    ``mu_c`` are orthonormal class directions, ``b`` a shared offset of norm ``offset``
    orthogonal to them (bias-free ReLU networks need it to output negative targets), and
    ``z ~ N(0, noise^2 I)``. Labels cycle through the classes, so the classes are balanced.

    Parameters
    ----------
    n, d : int
        The number of examples and the input dimension (``d >= num_classes + 1`` with an
        offset).
    num_classes : int, optional
        ``C >= 2``.
    radius : float, optional
        ``r``, the distance of the class means from the offset.
    offset : float, optional
        ``||b||``.
    noise : float, optional
        The standard deviation of ``z``.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream.
    centered : bool, optional
        Centred one-hot targets (default ``True``).

    Returns
    -------
    Dataset
        ``X (n, d)``, ``Y (n, C)`` and ``info`` with ``labels (n,)``, ``means (C, d)`` and
        ``offset (d,)``.
    """
    n, d = positive_int(n, "n"), positive_int(d, "d")
    C = positive_int(num_classes, "num_classes", minimum=2)
    if d < C + (offset > 0):
        raise ValueError(f"d must be at least num_classes (+1 for the offset), got d = {d}")
    radius = positive_float(radius, "radius", allow_zero=True)
    offset = positive_float(offset, "offset", allow_zero=True)
    noise = positive_float(noise, "noise", allow_zero=True)
    rng = as_generator(seed)
    basis = orthonormal_frame(d, C + 1, rng)
    mu, b = basis[:, :C].T, offset * basis[:, C]
    labels = np.arange(n) % C
    rng.shuffle(labels)
    X = radius * mu[labels] + b + noise * rng.standard_normal((n, d))
    return Dataset(X, one_hot(labels, C, centered), {"labels": labels, "means": mu, "offset": b})


def single_index_hermite(n, d, seed=0) -> Dataset:
    """``y = He_2(w . x) / sqrt(2) = ((w . x)^2 - 1) / sqrt(2)``, ``x ~ N(0, I_d)``, unit ``w``.

    A target that kernels at initialisation fit poorly, so feature learning matters
    (the default task of the iterative-linearisation experiments).

    Parameters
    ----------
    n, d : int
        The number of examples and the input dimension.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream.

    Returns
    -------
    Dataset
        ``X (n, d)``, ``Y (n, 1)`` and ``info`` with the direction ``w (d,)``.
    """
    n, d = positive_int(n, "n"), positive_int(d, "d")
    rng = as_generator(seed)
    w = rng.standard_normal(d)
    w /= np.linalg.norm(w)
    X = rng.standard_normal((n, d))
    z = X @ w
    return Dataset(X, ((z * z - 1.0) / np.sqrt(2.0))[:, None], {"w": w})


def sphere_tanh_teacher(n, d, seed=0) -> Dataset:
    """``x`` uniform on the sphere of radius ``sqrt(d)``, ``y = tanh(beta . x / sqrt(d)) / 2``.

    ``beta ~ N(0, I_d)`` is drawn after the inputs from the same stream. The targets lie in
    ``(-1/2, 1/2)``, so a network with a ``tanh`` output can fit them (the transition-to-linearity
    experiments, Liu, Zhu & Belkin 2020).

    Parameters
    ----------
    n, d : int
        The number of examples and the input dimension.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream.

    Returns
    -------
    Dataset
        ``X (n, d)``, ``Y (n, 1)`` and ``info`` with ``beta (d,)``.
    """
    n, d = positive_int(n, "n"), positive_int(d, "d")
    rng = as_generator(seed)
    X = sphere_inputs(n, d, rng)
    beta = rng.standard_normal(d)
    return Dataset(X, 0.5 * np.tanh(X @ beta / np.sqrt(d))[:, None], {"beta": beta})


def low_rank_task(n, d=20, seed=0) -> Dataset:
    """``y = z_1 z_2 + relu(z_3)``, ``z = U^T x``, orthonormal ``U (d, 3)``, ``x ~ N(0, I_d)``.

    The synthetic task of the neural-feature-ansatz experiments: the target depends on a
    3-dimensional subspace, which the AGOP should reveal.

    Parameters
    ----------
    n : int
        The number of examples.
    d : int, optional
        The input dimension, ``>= 3``.
    seed : int, sequence of int or numpy.random.Generator, optional
        The random stream.

    Returns
    -------
    Dataset
        ``X (n, d)``, ``Y (n, 1)`` and ``info`` with ``U (d, 3)``.
    """
    n, d = positive_int(n, "n"), positive_int(d, "d", minimum=3)
    rng = as_generator(seed)
    U = orthonormal_frame(d, 3, rng)
    X = rng.standard_normal((n, d))
    z = X @ U
    return Dataset(X, (z[:, 0] * z[:, 1] + np.maximum(z[:, 2], 0.0))[:, None], {"U": U})
