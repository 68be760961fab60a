"""Frozen-kernel (linearised-network) dynamics in closed form.

A network linearised around its initial parameters,
``f_lin(x; theta) = f_0(x) + J(x)(theta - theta_0)``
(Lee et al. 2019, arXiv:1902.06720, section 2.2), trained on the MSE loss
``L = 1/(2n) ||f(X) - Y||^2`` (docs/conventions.md) evolves through its frozen empirical NTK
``K = J(X) J(X)^T`` only. With ``K = U diag(lambda) U^T`` and residual ``r = f - Y``:

* gradient descent with step ``lr``:  ``r_{s+1} = (I - lr K / n) r_s``, so
  ``r_s = U diag((1 - lr lambda / n)^s) U^T r_0``;
* gradient flow (``t = lr * s``, ``lr -> 0``):  ``dr/dt = -(1/n) K r``, so
  ``r_t = U diag(exp(-lambda t / n)) U^T r_0``;
* any other input ``x``:  ``f_t(x) = f_0(x) - K(x, X) U diag(g_t(lambda)) U^T r_0`` with
  ``g_t(lambda) = (1 - exp(-lambda t / n)) / lambda`` (flow) or
  ``(1 - (1 - lr lambda / n)^s) / lambda``
  (gradient descent); both tend to ``t / n`` (``lr s / n``) as ``lambda -> 0``;
* ``t -> infinity``:  kernel regression with the initial network as prior mean,
  ``f_inf(x) = f_0(x) + K(x, X) K^+ (Y - f_0(X))``.

The gradient-descent coefficient is the spectral filter of iterative linearisation
(Goldwaser & Ge 2022, arXiv:2211.12345, derived here from its definition of the algorithm):
``s`` steps of gradient descent on a least-squares problem with Gram matrix ``G`` apply
``h_s(mu) = (1 - (1 - lr mu)^s) / mu`` to each eigenvalue ``mu`` of ``G``; here ``G = K / n`` and
``g = h_s(lambda / n) / n``.

Kernels are ``(n, n)`` (one kernel shared by every output column, ``Theta_ij = delta_ij K``) or
``(k, k, n, n)`` (the full multi-output kernel ``Theta_ij``, as from
``numerics.kernels.empirical_ntk(..., heads="full")``).
"""
from __future__ import annotations

import numbers

import numpy as np

from ..base.losses import mse
from ..base.validation import as_array, positive_float

__all__ = [
    "FrozenKernelRegime",
    "gradient_flow_filter",
    "kernel_regression",
    "rescaled_kernel_time",
    "rescaled_kernel_time_inverse",
    "spectral_filter",
    "time_to_loss",
    "train_loss_curve",
]


def _steps_value(steps, name="steps"):
    if isinstance(steps, bool) or not isinstance(steps, numbers.Real):
        raise TypeError(f"{name} must be a non-negative integer or inf, got {steps!r}")
    if np.isinf(steps) and steps > 0:
        return float("inf")
    if np.isnan(steps) or np.isinf(steps) or steps < 0 or steps != int(steps):
        raise ValueError(f"{name} must be a non-negative integer or inf, got {steps!r}")
    return int(steps)


def spectral_filter(eigenvalues, lr, steps):
    """``h_K(mu) = (1 - (1 - lr mu)^K) / mu``: the filter of ``K`` gradient steps on least squares.

    ``K`` steps of gradient descent with step ``lr`` on ``1/2 ||r + A delta||^2`` from ``delta = 0``
    give ``delta_K = -A^T h_K(A A^T) r`` (the filter of Goldwaser & Ge 2022; module docstring).
    ``h_K(0) = lr K``; ``K = inf`` gives ``1 / mu`` where ``0 < lr mu < 2`` (``inf`` at ``mu = 0``,
    ``nan`` where the iteration diverges). ``1 - (1 - lr mu)^K`` is evaluated as
    ``-expm1(K log1p(-lr mu))`` where ``|lr mu| < 1``, so small eigenvalues keep full precision.

    Parameters
    ----------
    eigenvalues : array_like
        The eigenvalues ``mu`` of ``A A^T``; any shape.
    lr : float
        The step size, ``> 0``.
    steps : int or float
        ``K``, a non-negative integer or ``inf``.

    Returns
    -------
    numpy.ndarray
        ``h_K(mu)``, of the shape of ``eigenvalues``.
    """
    mu = as_array(eigenvalues, "eigenvalues")
    lr = positive_float(lr, "lr")
    steps = _steps_value(steps)
    x = lr * mu
    out = np.empty_like(mu)
    zero = mu == 0
    if steps == float("inf"):
        stable = (x > 0) & (x < 2)
        out[stable] = 1.0 / mu[stable]
        out[zero] = np.inf
        out[~stable & ~zero] = np.nan
        return out
    small = (np.abs(x) < 1) & ~zero
    out[small] = -np.expm1(steps * np.log1p(-x[small])) / mu[small]
    big = ~small & ~zero
    out[big] = (1.0 - (1.0 - x[big]) ** steps) / mu[big]
    out[zero] = lr * steps
    return out


def gradient_flow_filter(eigenvalues, t):
    """``g_t(mu) = (1 - exp(-mu t)) / mu``, the gradient-flow limit of :func:`spectral_filter`.

    ``g_t(0) = t``; ``t = inf`` gives ``1 / mu`` for ``mu > 0`` (``inf`` at ``mu = 0``).

    Parameters
    ----------
    eigenvalues : array_like
        The eigenvalues ``mu``; any shape.
    t : float
        The time, ``>= 0`` (``inf`` allowed).

    Returns
    -------
    numpy.ndarray
        ``g_t(mu)``, of the shape of ``eigenvalues``.
    """
    mu = as_array(eigenvalues, "eigenvalues")
    t = positive_float(t, "t", allow_zero=True, allow_inf=True)
    out = np.empty_like(mu)
    zero = mu == 0
    if np.isinf(t):
        out[mu > 0] = 1.0 / mu[mu > 0]
        out[zero] = np.inf
        out[mu < 0] = np.nan
        return out
    out[~zero] = -np.expm1(-mu[~zero] * t) / mu[~zero]
    out[zero] = t
    return out


# ------------------------------------------------------------------------ kernel layout
def _flatten_kernel(K, name, n_rows=None, n_cols=None, k=None):
    """A kernel in head-major layout ``M[(i, a), (j, b)] = Theta_ij(x_a, x_b)``, ``(k n, k n')``.

    Returns ``(M, shared)``: ``shared`` is True for an ``(n, n')`` kernel given once for all heads,
    in which case ``M`` is that ``(n, n')`` matrix itself.
    """
    K = as_array(K, name, ndim=(2, 4))
    if K.ndim == 4:
        if K.shape[0] != K.shape[1]:
            raise ValueError(f"{name} must have shape (k, k, n, n'), got {K.shape}")
        if k is not None and K.shape[0] != k:
            raise ValueError(f"{name} has {K.shape[0]} heads but the targets have {k} columns")
    n_in, n_out = K.shape[-2:]
    if n_rows is not None and n_in != n_rows:
        raise ValueError(f"{name} must have {n_rows} rows per head, got shape {K.shape}")
    if n_cols is not None and n_out != n_cols:
        raise ValueError(f"{name} must have {n_cols} columns per head, got shape {K.shape}")
    if K.ndim == 2:
        return K, True
    kk = K.shape[0]
    return K.transpose(0, 2, 1, 3).reshape(kk * n_in, kk * n_out), False


def _outputs(F, name, n=None, k=None):
    F = as_array(F, name, ndim=(1, 2))
    if F.ndim == 1:
        F = F[:, None]
    if n is not None and F.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows, got shape {F.shape}")
    if k is not None and F.shape[1] != k:
        raise ValueError(f"{name} must have {k} columns, got shape {F.shape}")
    return F


class FrozenKernelRegime:
    """Closed-form training dynamics of a model with a frozen kernel (the linearised network).

    Times follow docs/conventions.md: gradient-flow time ``t``; with ``lr`` given, gradient
    descent after ``s = t / lr`` steps (``t`` must be a whole number of steps).

    Parameters
    ----------
    k_train_train : array_like, shape (n, n) or (k, k, n, n)
        The frozen (empirical) NTK on the training inputs.
    y_train : array_like, shape (n,) or (n, k)
        Training targets.
    f0_train : array_like, shape of ``y_train``, optional
        Initial outputs on the training inputs (zero by default).
    k_test_train : array_like, shape (n', n) or (k, k, n', n), optional
        Kernel between test and training inputs, for :meth:`test_predictions`.
    f0_test : array_like, shape (n',) or (n', k), optional
        Initial outputs on the test inputs (zero by default).
    rcond : float, optional
        Eigenvalues below ``rcond * max(lambda)`` count as zero in the ``t -> inf`` limit
        (the pseudo-inverse ``K^+``); finite times need no cut-off.

    Attributes
    ----------
    n, k : int
        The number of training points and of outputs.
    eigenvalues : numpy.ndarray, shape (modes,)
        The training kernel's eigenvalues, descending (``modes = n`` for an ``(n, n)`` kernel,
        ``k n`` for a ``(k, k, n, n)`` one).
    eigenvectors : numpy.ndarray, shape (modes, modes)
        The matching eigenvectors, one per column.
    """

    def __init__(self, k_train_train, y_train, f0_train=None, k_test_train=None, f0_test=None,
                 rcond: float = 1e-12):
        self.y_train = _outputs(y_train, "y_train")
        self.n, self.k = self.y_train.shape
        self.f0_train = (np.zeros_like(self.y_train) if f0_train is None
                         else _outputs(f0_train, "f0_train", self.n, self.k))
        M, self._shared = _flatten_kernel(k_train_train, "k_train_train", self.n, self.n, self.k)
        if not np.allclose(M, M.T, rtol=1e-10, atol=1e-12 * np.abs(M).max()):
            raise ValueError("k_train_train must be symmetric")
        self.rcond = positive_float(rcond, "rcond", allow_zero=True)
        self._k_train = M
        lam, U = np.linalg.eigh(0.5 * (M + M.T))
        self.eigenvalues, self.eigenvectors = lam[::-1], U[:, ::-1]
        self._r0_modes = self.eigenvectors.T @ self._vec(self.f0_train - self.y_train)
        self._k_test = None
        if k_test_train is not None:
            Kt, shared = _flatten_kernel(k_test_train, "k_test_train", n_cols=self.n, k=self.k)
            if shared != self._shared:
                raise ValueError("k_test_train must have the same layout as k_train_train "
                                 "((n', n) with (n, n), or (k, k, n', n) with (k, k, n, n))")
            self._k_test = Kt
            n_test = Kt.shape[0] if shared else Kt.shape[0] // self.k
            self.f0_test = (np.zeros((n_test, self.k)) if f0_test is None
                            else _outputs(f0_test, "f0_test", n_test, self.k))
        elif f0_test is not None:
            raise ValueError("f0_test needs k_test_train")

    # ----------------------------------------------------------------- layout helpers
    def _vec(self, F):
        """``(n, k)`` outputs -> mode coordinates: ``(n, k)`` (shared kernel) or ``(k n,)``."""
        return F if self._shared else F.T.ravel()

    def _unvec(self, v, rows):
        return v if self._shared else v.reshape(self.k, rows).T

    def _times(self, t, lr):
        t_arr = np.atleast_1d(as_array(t, "t", ndim=(0, 1), finite=False))
        if np.any(np.isnan(t_arr)):
            raise ValueError(f"t must not be NaN, got {t!r}")
        if np.any(t_arr < 0):
            raise ValueError(f"t must be >= 0, got {t!r}")
        if lr is None:
            return t_arr, None
        lr = positive_float(lr, "lr")
        steps = t_arr / lr
        whole = np.round(steps)
        finite = np.isfinite(steps)
        if np.any(np.abs(steps[finite] - whole[finite]) > 1e-9 * np.maximum(1.0, whole[finite])):
            raise ValueError(f"with lr = {lr}, t must be a whole number of steps (t = lr * s), "
                             f"got t = {t!r}")
        return whole, lr

    # ----------------------------------------------------------------- coefficients
    def decay(self, t, lr=None) -> np.ndarray:
        """Per-mode residual factor ``exp(-lambda t / n)`` or ``(1 - lr lambda / n)^s``.

        Parameters
        ----------
        t : float or array_like, shape (T,)
            Gradient-flow times ``>= 0`` (``inf`` allowed).
        lr : float, optional
            Learning rate of gradient descent (gradient flow if omitted).

        Returns
        -------
        numpy.ndarray, shape (T, modes)
            The factor of every mode at every time.
        """
        times, lr = self._times(t, lr)
        lam = self.eigenvalues / self.n
        out = np.empty((len(times), len(lam)))
        for i, s in enumerate(times):
            if np.isinf(s):
                out[i] = np.where(lam > self._cutoff / self.n, 0.0, 1.0)
            elif lr is None:
                out[i] = np.exp(-lam * s)
            else:
                out[i] = (1.0 - lr * lam) ** int(s)
        return out

    def coefficients(self, t, lr=None) -> np.ndarray:
        """Per-mode filter ``g_t(lambda)`` of the test predictions.

        Parameters
        ----------
        t : float or array_like, shape (T,)
            Gradient-flow times ``>= 0`` (``inf`` allowed).
        lr : float, optional
            Learning rate of gradient descent (gradient flow if omitted).

        Returns
        -------
        numpy.ndarray, shape (T, modes)
            ``g_t`` of every mode at every time.
        """
        times, lr = self._times(t, lr)
        lam = self.eigenvalues / self.n
        out = np.empty((len(times), len(lam)))
        for i, s in enumerate(times):
            if np.isinf(s):
                keep = self.eigenvalues > self._cutoff
                out[i] = np.where(keep, 1.0 / np.where(keep, self.eigenvalues, 1.0), 0.0)
            elif lr is None:
                out[i] = gradient_flow_filter(lam, s) / self.n
            else:
                out[i] = spectral_filter(lam, lr, int(s)) / self.n
        return out

    @property
    def _cutoff(self) -> float:
        return self.rcond * max(float(self.eigenvalues[0]), 0.0)

    # ----------------------------------------------------------------- predictions
    def _single(self, t):
        return np.ndim(t) == 0

    def _train_outputs(self, t, lr):
        """Training outputs at every time of ``t``, ``(T, n, k)``."""
        D = self.decay(t, lr)
        return np.stack([self.y_train + self._unvec(self._modes_to_space(d), self.n) for d in D])

    def _test_outputs(self, t, lr):
        """Test outputs at every time of ``t``, ``(T, n', k)``."""
        if self._k_test is None:
            raise ValueError("test_predictions needs k_test_train (and f0_test)")
        G = self.coefficients(t, lr)
        n_test = self.f0_test.shape[0]
        return np.stack([self.f0_test - self._unvec(self._k_test @ self._modes_to_space(g), n_test)
                         for g in G])

    def train_predictions(self, t, lr=None) -> np.ndarray:
        """Outputs on the training inputs at time ``t``.

        Parameters
        ----------
        t : float or array_like, shape (T,)
            Gradient-flow times ``>= 0`` (``inf`` allowed).
        lr : float, optional
            Learning rate of gradient descent (gradient flow if omitted).

        Returns
        -------
        numpy.ndarray, shape (n, k) or (T, n, k)
            ``f_t(X)``; one ``(n, k)`` array for a scalar ``t``.
        """
        out = self._train_outputs(t, lr)
        return out[0] if self._single(t) else out

    def test_predictions(self, t, lr=None) -> np.ndarray:
        """Outputs on the test inputs at time ``t``.

        Parameters
        ----------
        t : float or array_like, shape (T,)
            Gradient-flow times ``>= 0`` (``inf`` allowed).
        lr : float, optional
            Learning rate of gradient descent (gradient flow if omitted).

        Returns
        -------
        numpy.ndarray, shape (n', k) or (T, n', k)
            ``f_t(X')``; one ``(n', k)`` array for a scalar ``t``.
        """
        out = self._test_outputs(t, lr)
        return out[0] if self._single(t) else out

    def _modes_to_space(self, coeff):
        """``U diag(coeff) U^T r_0`` from the stored mode coordinates of ``r_0``."""
        c = coeff[:, None] if self._shared else coeff
        return self.eigenvectors @ (c * self._r0_modes)

    def train_loss(self, t, lr=None):
        """``1/(2n) ||f_t(X) - Y||^2`` (scalar, or one value per entry of ``t``).

        ``ntkdyn.base.losses.mse`` of the stacked residuals ``(T, n, k)``.

        Parameters
        ----------
        t : float or array_like, shape (T,)
            Gradient-flow times ``>= 0`` (``inf`` allowed).
        lr : float, optional
            Learning rate of gradient descent (gradient flow if omitted).

        Returns
        -------
        float or numpy.ndarray, shape (T,)
            The training loss (a float for a scalar ``t``).
        """
        loss = mse(self._train_outputs(t, lr) - self.y_train)
        return float(loss[0]) if self._single(t) else loss

    def test_loss(self, t, y_test, lr=None):
        """``1/(2n') ||f_t(X') - Y'||^2`` on the test inputs (``ntkdyn.base.losses.mse``).

        Parameters
        ----------
        t : float or array_like, shape (T,)
            Gradient-flow times ``>= 0`` (``inf`` allowed).
        y_test : array_like, shape (n',) or (n', k)
            The test targets.
        lr : float, optional
            Learning rate of gradient descent (gradient flow if omitted).

        Returns
        -------
        float or numpy.ndarray, shape (T,)
            The test loss (a float for a scalar ``t``).
        """
        F = self._test_outputs(t, lr)
        Y = _outputs(y_test, "y_test", *F.shape[-2:])
        loss = mse(F - Y)
        return float(loss[0]) if self._single(t) else loss

    def limit_train(self) -> np.ndarray:
        """``t -> inf`` training outputs: ``Y`` plus the residual outside the kernel's range.

        Returns
        -------
        numpy.ndarray, shape (n, k)
            The limiting training outputs.
        """
        return self.train_predictions(np.inf)

    def limit_test(self) -> np.ndarray:
        """``t -> inf`` test outputs: ``f_0(x) + K(x, X) K^+ (Y - f_0(X))``.

        Returns
        -------
        numpy.ndarray, shape (n', k)
            The limiting test outputs (kernel regression).
        """
        return self.test_predictions(np.inf)

    def ode_rhs(self, t, f_flat):
        """Gradient-flow right-hand side ``df/dt = -(1/n) K (f - Y)`` on flattened outputs.

        Parameters
        ----------
        t : float
            Time (unused: the flow is autonomous; the argument ``solve_ivp`` passes).
        f_flat : array_like, shape (n * k,)
            The training outputs, row-major ``(n, k)``.

        Returns
        -------
        numpy.ndarray, shape (n * k,)
            ``df/dt``, flattened like ``f_flat``.
        """
        F = np.asarray(f_flat).reshape(self.n, self.k)
        R = self._vec(F - self.y_train)
        return -(self._unvec(self._k_train @ R, self.n) / self.n).ravel()


def kernel_regression(k_train_train, y_train, k_test_train, f0_train=None, f0_test=None,
                      ridge: float = 0.0):
    """``f(x) = f_0(x) + K(x, X) (K + ridge I)^{-1} (Y - f_0(X))`` by a direct solve.

    The ``t -> inf`` limit of the frozen-kernel dynamics for ``ridge = 0`` and an invertible ``K``;
    an independent check of :meth:`FrozenKernelRegime.limit_test`.

    Parameters
    ----------
    k_train_train : array_like, shape (n, n) or (k, k, n, n)
        The kernel on the training inputs.
    y_train : array_like, shape (n,) or (n, k)
        Training targets.
    k_test_train : array_like, shape (n', n) or (k, k, n', n)
        The kernel between test and training inputs, in the layout of ``k_train_train``.
    f0_train : array_like, shape (n, k), optional
        The prior mean on the training inputs (zero by default).
    f0_test : array_like, shape (n', k), optional
        The prior mean on the test inputs (zero by default).
    ridge : float, optional
        The ridge ``>= 0`` added to the kernel's diagonal.

    Returns
    -------
    numpy.ndarray, shape (n', k)
        The predictions on the test inputs.
    """
    Y = _outputs(y_train, "y_train")
    n, k = Y.shape
    F0 = np.zeros_like(Y) if f0_train is None else _outputs(f0_train, "f0_train", n, k)
    M, shared = _flatten_kernel(k_train_train, "k_train_train", n, n, k)
    Kt, shared_t = _flatten_kernel(k_test_train, "k_test_train", n_cols=n, k=k)
    if shared != shared_t:
        raise ValueError("k_test_train must have the same layout as k_train_train")
    n_test = Kt.shape[0] if shared else Kt.shape[0] // k
    F0t = np.zeros((n_test, k)) if f0_test is None else _outputs(f0_test, "f0_test", n_test, k)
    ridge = positive_float(ridge, "ridge", allow_zero=True)
    R = Y - F0
    rhs = R if shared else R.T.ravel()
    alpha = np.linalg.solve(M + ridge * np.eye(M.shape[0]), rhs)
    pred = Kt @ alpha
    return F0t + (pred if shared else pred.reshape(k, n_test).T)


# ------------------------------------------------------------------------ loss curves and times
def train_loss_curve(regime: FrozenKernelRegime, t, lr=None) -> np.ndarray:
    """``L(t) = 1/(2n) sum_m d_m(t)^2 ||r_0^(m)||^2``: the training loss from the mode coordinates.

    ``d_m`` is :meth:`FrozenKernelRegime.decay` (``exp(-lambda_m t / n)``, or
    ``(1 - lr lambda_m / n)^s`` with ``lr``) and ``r_0^(m)`` the initial residual's coordinate on
    eigenvector ``m``; the same number as :meth:`FrozenKernelRegime.train_loss` without forming
    the outputs, ``O(T modes)`` for ``T`` times instead of ``O(T n^2)``.

    Parameters
    ----------
    regime : FrozenKernelRegime
        The frozen-kernel model.
    t : float or array_like, shape (T,)
        Gradient-flow times ``>= 0`` (``inf`` allowed).
    lr : float, optional
        Learning rate of gradient descent (gradient flow if omitted).

    Returns
    -------
    numpy.ndarray, shape (T,)
        The training loss at every time.
    """
    if not isinstance(regime, FrozenKernelRegime):
        raise TypeError(f"regime must be a FrozenKernelRegime, got {type(regime).__name__}")
    r0 = regime._r0_modes
    power = (r0 * r0).sum(axis=1) if r0.ndim == 2 else r0 * r0
    D = regime.decay(t, lr)
    return (D * D) @ power / (2.0 * regime.n)


def time_to_loss(regime: FrozenKernelRegime, loss: float, lr=None, rtol: float = 1e-10) -> float:
    """The first time ``t`` with ``L(t) <= loss`` under kernel gradient descent on a frozen kernel.

    Gradient flow: every mode decays like ``exp(-lambda t / n)``, so ``L`` decreases and ``t`` is
    found by bisection to relative precision ``rtol``. Gradient descent with ``lr``: where
    ``0 < lr lambda / n < 2`` for every non-zero mode, ``L`` decreases step by step and ``t = lr s``
    for the first such step ``s``. Returns ``0`` when ``L(0) <= loss`` and ``inf`` when ``loss``
    lies at or below the ``t -> inf`` limit (the residual outside the kernel's range).

    Parameters
    ----------
    regime : FrozenKernelRegime
        The frozen-kernel model.
    loss : float
        The loss level to reach (``>= 0``).
    lr : float, optional
        Learning rate of gradient descent (gradient flow if omitted).
    rtol : float, optional
        Relative precision of the bisection in time (gradient flow).

    Returns
    -------
    float
        The first time ``t`` (``lr s`` with ``lr``) with ``L(t) <= loss``; ``0`` or ``inf`` at
        the extremes.
    """
    loss = positive_float(loss, "loss", allow_zero=True)
    rtol = positive_float(rtol, "rtol")
    if lr is not None:
        lr = positive_float(lr, "lr")
        x = lr * regime.eigenvalues / regime.n
        if np.any(x[regime.eigenvalues > regime._cutoff] >= 2.0):
            raise ValueError(f"gradient descent with lr = {lr} diverges on this kernel "
                             f"(lr lambda_max / n = {x.max():.4g} >= 2)")

    def curve(t):
        return float(train_loss_curve(regime, t, lr)[0])

    if curve(0.0) <= loss:
        return 0.0
    if loss <= float(train_loss_curve(regime, np.inf, lr)[0]):
        return float("inf")
    step = 1.0 if lr is None else lr
    lo, hi = 0.0, step
    while curve(hi) > loss:
        lo, hi = hi, 2.0 * hi
    if lr is None:
        while hi - lo > rtol * hi:
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if curve(mid) > loss else (lo, mid)
        return hi
    s_lo, s_hi = int(round(lo / lr)), int(round(hi / lr))  # L(s_lo) > loss >= L(s_hi)
    while s_hi - s_lo > 1:
        mid = (s_lo + s_hi) // 2
        s_lo, s_hi = (mid, s_hi) if curve(lr * mid) > loss else (s_lo, mid)
    return lr * s_hi


def _scale_grid(times, scales):
    t = as_array(times, "times", ndim=1)
    c = as_array(scales, "scales", ndim=1)
    if t.shape != c.shape or t.size < 1:
        raise ValueError(f"times and scales must have the same non-empty shape, got {t.shape} "
                         f"and {c.shape}")
    if t[0] != 0.0 or np.any(np.diff(t) <= 0):
        raise ValueError("times must start at 0 and increase strictly")
    if np.any(c <= 0):
        raise ValueError("scales must be > 0")
    tau = np.concatenate([[0.0], np.cumsum(0.5 * (c[1:] + c[:-1]) * np.diff(t))])
    return t, c, tau


def rescaled_kernel_time(times, scales, t=None) -> np.ndarray:
    """``tau(t) = int_0^t c(t') dt'``: kernel gradient descent on ``c(t) K`` is KGD on ``K`` at
    time ``tau``.

    Under ``dr/dt = -(c(t) / n) K r`` the residual is ``r_t = exp(-tau(t) K / n) r_0``, so the
    whole trajectory is that of the frozen kernel ``K`` read at ``tau(t)`` (the aKGD baseline of
    Shan & Bordelon 2021, sec. 3, with ``c(t)`` the network's kernel magnitude over the initial
    one). ``c`` is piecewise linear between the given ``times`` (the trapezoid rule is exact for
    it) and constant at its last value after them.

    Parameters
    ----------
    times : array_like, shape (R,)
        Increasing times, ``times[0] = 0``.
    scales : array_like, shape (R,)
        ``c`` at those times (``> 0``).
    t : float or array_like, shape (T,), optional
        Where to evaluate ``tau`` (``>= 0``); the given ``times`` by default.

    Returns
    -------
    numpy.ndarray, shape (R,) or (T,)
        ``tau`` at ``times`` (or at ``t``).
    """
    grid, c, tau = _scale_grid(times, scales)
    if t is None:
        return tau
    t = np.asarray(as_array(t, "t", ndim=(0, 1)), dtype=float)
    if np.any(t < 0):
        raise ValueError("t must be >= 0")
    i = np.clip(np.searchsorted(grid, t, side="right") - 1, 0, grid.size - 1)
    u = t - grid[i]
    inside = i < grid.size - 1
    h = np.where(inside, grid[np.minimum(i + 1, grid.size - 1)] - grid[i], 1.0)
    slope = np.where(inside, (c[np.minimum(i + 1, grid.size - 1)] - c[i]) / h, 0.0)
    return tau[i] + c[i] * u + 0.5 * slope * u * u


def rescaled_kernel_time_inverse(times, scales, tau) -> np.ndarray:
    """The time ``t`` at which ``int_0^t c = tau``: the inverse of :func:`rescaled_kernel_time`.

    On each interval ``c(t) = c_i + a (t - t_i)`` and ``tau(t) = tau_i + c_i u + a u^2 / 2``, so
    ``u = 2 (tau - tau_i) / (c_i + sqrt(c_i^2 + 2 a (tau - tau_i)))`` (the stable root); after
    the last time ``u = (tau - tau_R) / c_R``. ``tau = inf`` gives ``inf``.

    Parameters
    ----------
    times : array_like, shape (R,)
        Increasing times, ``times[0] = 0``.
    scales : array_like, shape (R,)
        ``c`` at those times (``> 0``).
    tau : float or array_like, shape (T,)
        Rescaled times ``>= 0`` (``inf`` allowed).

    Returns
    -------
    numpy.ndarray
        The times ``t``, of the shape of ``tau``.
    """
    grid, c, cum = _scale_grid(times, scales)
    tau = np.asarray(as_array(tau, "tau", ndim=(0, 1), finite=False), dtype=float)
    if np.any(np.isnan(tau)) or np.any(tau < 0):
        raise ValueError("tau must be >= 0 (not NaN)")
    finite = np.isfinite(tau)
    safe = np.where(finite, tau, 0.0)
    i = np.clip(np.searchsorted(cum, safe, side="right") - 1, 0, grid.size - 1)
    inside = i < grid.size - 1
    j = np.minimum(i + 1, grid.size - 1)
    h = np.where(inside, grid[j] - grid[i], 1.0)
    a = np.where(inside, (c[j] - c[i]) / h, 0.0)
    rest = safe - cum[i]
    u = 2.0 * rest / (c[i] + np.sqrt(np.maximum(c[i] * c[i] + 2.0 * a * rest, 0.0)))
    return np.where(finite, grid[i] + u, np.inf)
