"""Kernel-target metrics on Gram matrices (Shan & Bordelon 2021; Cristianini et al. 2002).

The (centred) kernel-target alignment of Cristianini et al. (2002) / Cortes et al. (2012),
the specialization matrix ``S_ij = A(K_ii, y_j)`` and index ``xi``, the relative kernel change
and the cumulative target power in the kernel's eigenbasis. Pure closed forms: used by the
theory modules and re-exported by :mod:`numerics.kernels` for empirical kernels.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .validation import as_array, one_of


def center(K):
    """``H K H`` with ``H = I - 1 1^T / n``, over the last two axes.

    Parameters
    ----------
    K : array_like, shape (..., n, n)
        One kernel or a stack of kernels on ``n`` points.

    Returns
    -------
    numpy.ndarray, shape (..., n, n)
        The doubly centred kernel(s): every row and column mean is zero.
    """
    K = K - K.mean(axis=-1, keepdims=True)
    return K - K.mean(axis=-2, keepdims=True)


def as_targets(Y, n, name="Y"):
    """Targets as an ``(n, k)`` array, a vector taken as one column.

    Parameters
    ----------
    Y : array_like, shape (n,) or (n, k)
        The targets.
    n : int
        The number of rows ``Y`` must have (the size of the kernel it is compared with).
    name : str, optional
        The argument's name in error messages.

    Returns
    -------
    numpy.ndarray, shape (n, k)
        ``Y`` as float64, with ``k = 1`` for a vector.

    Raises
    ------
    ValueError
        If ``Y`` is not 1-D or 2-D, not finite, or has other than ``n`` rows.
    """
    Y = as_array(Y, name, ndim=(1, 2))
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows to match the kernel, got shape {Y.shape}")
    return Y


def _square_kernel(K, name="K", ndim=2):
    K = as_array(K, name, ndim=ndim)
    if K.shape[-1] != K.shape[-2]:
        raise ValueError(f"{name} must be square in its last two axes, got shape {K.shape}")
    return K


def alignment(K: npt.ArrayLike, Y: npt.ArrayLike, centered: bool = False) -> float:
    """Kernel-target alignment ``A = <K, Y Y^T>_F / (||K||_F ||Y Y^T||_F)``.

    Cristianini et al. (2002); with ``centered=True`` both ``K`` and ``Y`` are centred
    over the data set first (``H K H``, ``H Y``), as in Cortes et al. (2012).

    Parameters
    ----------
    K : array_like, shape (n, n)
        The kernel (Gram matrix) on the data set.
    Y : array_like, shape (n,) or (n, k)
        The targets.
    centered : bool, optional
        Centre ``K`` and ``Y`` over the data set first (default: uncentred).

    Returns
    -------
    float
        The alignment, in ``[-1, 1]`` (in ``[0, 1]`` for a positive semi-definite ``K``).

    Raises
    ------
    ValueError
        If ``K`` is not square, ``Y`` has other than ``n`` rows, or ``K`` or ``Y Y^T`` is zero.
    """
    K = _square_kernel(K)
    Y = as_targets(Y, K.shape[0])
    if centered:
        K = center(K)
        Y = Y - Y.mean(axis=0)
    kn = np.linalg.norm(K)
    # ||Y Y^T||_F = ||Y^T Y||_F, computed in the k x k space.
    yn = np.linalg.norm(Y.T @ Y)
    if kn == 0 or yn == 0:
        raise ValueError("alignment is undefined for a zero kernel or zero (centred) targets")
    return float(np.einsum("ia,ij,ja->", Y, K, Y) / (kn * yn))


def specialization(K_heads: npt.ArrayLike, Y: npt.ArrayLike, centered: bool = True
                   ) -> np.ndarray:
    """Specialization matrix ``S_ij = A(K_ii, y_j)`` for per-head kernels ``(k, n, n)``.

    Head ``i``'s kernel against class ``j``'s target (Shan & Bordelon 2021, kernel
    specialization). Each head is centred once (``k`` centrings and products rather than
    ``k^2`` calls of :func:`alignment`), with ``||y_j y_j^T||_F = ||y_j||^2``.

    Parameters
    ----------
    K_heads : array_like, shape (k, n, n)
        One kernel per output head.
    Y : array_like, shape (n, k)
        One target column per head (class).
    centered : bool, optional
        Centre the kernels and targets over the data set first (default ``True``).

    Returns
    -------
    numpy.ndarray, shape (k, k)
        ``S[i, j]``, the alignment of head ``i``'s kernel with target column ``j``.
    """
    K_heads = _square_kernel(K_heads, "K_heads", ndim=3)
    Y = as_targets(Y, K_heads.shape[1])
    k = K_heads.shape[0]
    if Y.shape[1] != k:
        raise ValueError(f"Y must have one column per head ({k}), got {Y.shape[1]}")
    if centered:
        Y = Y - Y.mean(axis=0)
    y_norms = np.sum(Y * Y, axis=0)
    if np.any(y_norms == 0):
        raise ValueError("specialization is undefined for a zero (centred) target column")
    S = np.empty((k, k))
    for i, K in enumerate(K_heads):
        if centered:
            K = K - K.mean(axis=1, keepdims=True)
            K -= K.mean(axis=0, keepdims=True)
        kn = np.linalg.norm(K)
        if kn == 0:
            raise ValueError(f"specialization is undefined for a zero (centred) kernel of head {i}")
        S[i] = np.einsum("aj,aj->j", Y, K @ Y) / (kn * y_norms)
    return S


def kernel_specialization_matrix(K_heads: npt.ArrayLike, Y: npt.ArrayLike) -> np.ndarray:
    """Kernel specialization matrix of Shan & Bordelon (2021), Eq. 9.

    ``KSM(c, d) = A(K^{cc}, y_d) / [(1/C) sum_{c'} A(K^{c'c'}, y_d)]`` with the uncentred
    alignment ``A``: head ``c``'s kernel against class ``d``'s target, each column divided by its
    mean over heads, so 1 everywhere means no specialization. The centred matrix of this library
    is :func:`specialization`.

    Parameters
    ----------
    K_heads : array_like, shape (C, n, n)
        One kernel per output head (class).
    Y : array_like, shape (n, C)
        One target column per class.

    Returns
    -------
    numpy.ndarray, shape (C, C)
        ``KSM[c, d]``; each column has mean 1 over the heads ``c``.
    """
    S = specialization(K_heads, Y, centered=False)
    means = S.mean(axis=0)
    if np.any(means == 0):
        raise ValueError("the kernel specialization matrix is undefined when a class's mean "
                         "alignment over heads is zero")
    return S / means


def specialization_index(S) -> float:
    """``xi = mean_i S_ii - mean_{i != j} S_ij``; positive when each head aligns to its own target.

    Parameters
    ----------
    S : array_like, shape (k, k)
        A specialization matrix (:func:`specialization`), ``k >= 2``.

    Returns
    -------
    float
        The mean diagonal entry minus the mean off-diagonal entry.
    """
    S = _square_kernel(S, "S")
    k = S.shape[0]
    if k < 2:
        raise ValueError("S must be at least 2 x 2")
    diag = np.trace(S) / k
    return float(diag - (S.sum() - np.trace(S)) / (k * (k - 1)))


def relative_change(K_t, K_0) -> float:
    """Relative kernel change ``||K_t - K_0||_F / ||K_0||_F``.

    Parameters
    ----------
    K_t, K_0 : array_like
        The kernel at time ``t`` and at initialisation, of one shape (e.g. ``(n, n)``).

    Returns
    -------
    float
        The Frobenius norm of the change relative to that of ``K_0``.
    """
    K_t = as_array(K_t, "K_t")
    K_0 = as_array(K_0, "K_0")
    if K_t.shape != K_0.shape:
        raise ValueError(f"K_t and K_0 must have the same shape, got {K_t.shape} and {K_0.shape}")
    return float(np.linalg.norm(K_t - K_0) / np.linalg.norm(K_0))


def eigenvector_target_overlap(K, Y, centered: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and cumulative target power of the eigenvectors.

    ``C(k) = sum_{k'<=k} ||phi_k'^T Y||^2 / ||Y||^2``.

    ``C`` rises to 1; the faster it does, the more the kernel's top eigenvectors carry the target.
    ``C[0]`` is the top eigenvector's alignment ``(phi_1 . y)^2 / ||y||^2``.

    Parameters
    ----------
    K : array_like, shape (n, n)
        The kernel (symmetrised before the eigendecomposition).
    Y : array_like, shape (n,) or (n, k)
        The targets.
    centered : bool, optional
        Centre ``K`` and ``Y`` over the data set first (default: uncentred).

    Returns
    -------
    evals : numpy.ndarray, shape (n,)
        The eigenvalues of ``K``, descending.
    power : numpy.ndarray, shape (n,)
        ``C(k)``, the cumulative fraction of ``||Y||^2`` in the top ``k + 1`` eigenvectors.
    """
    K = _square_kernel(K)
    Y = as_targets(Y, K.shape[0])
    if centered:
        K = center(K)
        Y = Y - Y.mean(axis=0)
    evals, evecs = np.linalg.eigh(0.5 * (K + K.T))
    order = np.argsort(evals)[::-1]
    evals, evecs = evals[order], evecs[:, order]
    power = np.sum((evecs.T @ Y) ** 2, axis=1)
    total = np.sum(Y * Y)
    if total == 0:
        raise ValueError("Y must not be zero")
    return evals, np.cumsum(power) / total


CORRELATION_KINDS = ("pearson", "cosine")


def matrix_correlation(A, B, kind: str = "pearson") -> float:
    """Correlation ``rho(A, B)`` of two matrices' entries.

    ``kind="pearson"``: ``<A - abar, B - bbar>_F / (||A - abar||_F ||B - bbar||_F)`` with ``abar``
    the mean entry (the ``mat_cov`` of the authors' code, dmbeaglehole/centered_NFA);
    ``kind="cosine"``: ``<A, B>_F / (||A||_F ||B||_F)`` (Radhakrishnan et al. 2024's ``correlate``).
    Symmetric, invariant to positive scalings of either argument, in ``[-1, 1]``.

    Parameters
    ----------
    A, B : array_like, shape (p, q)
        The two matrices, of one shape.
    kind : {"pearson", "cosine"}, optional
        Centre the entries first (``"pearson"``, the default) or not (``"cosine"``).

    Returns
    -------
    float
        The correlation, in ``[-1, 1]``.
    """
    one_of(kind, "kind", CORRELATION_KINDS)
    A = as_array(A, "A", ndim=2)
    B = as_array(B, "B", ndim=2)
    if A.shape != B.shape:
        raise ValueError(f"A and B must have the same shape, got {A.shape} and {B.shape}")
    if kind == "pearson":
        A = A - A.mean()
        B = B - B.mean()
    na, nb = np.linalg.norm(A), np.linalg.norm(B)
    if na == 0 or nb == 0:
        raise ValueError(f"the {kind} correlation is undefined for a constant (or zero) matrix")
    return float(np.clip(np.vdot(A, B) / (na * nb), -1.0, 1.0))
