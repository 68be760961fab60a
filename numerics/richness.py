"""The lazy-to-rich family of centred, rescaled networks and per-head kernel recording.

Shan & Bordelon (2021): two-layer ReLU networks swept from lazy to rich, their alignment and
kernel specialization (the centred model is that of Chizat, Oyallon & Bach 2019). For a network
``f(x; theta)`` with initial parameters ``theta_0`` and richness ``gamma > 0`` the model is

    f_gamma(x; theta) = (f(x; theta) - f(x; theta_0)) / gamma,

trained on ``L = 1/(2n) sum_mu ||f_gamma(x_mu) - y_mu||^2`` with the **parameter** learning
rate ``lr * gamma^2``. Under gradient flow (``t = lr * steps``)

    d theta / dt = -gamma^2 grad_theta L = -(gamma / n) J^T r,     r = f_gamma - y,
    d f_gamma / dt = (1 / gamma) J d theta / dt = -(1 / n) K r,    K = J J^T,

where ``J = d f / d theta`` and ``K`` is the empirical NTK of the *raw* network ``f``. The
function-space speed is therefore the same for every ``gamma``; ``f_gamma`` starts at zero;
the parameters move at speed ``O(gamma)``, so the relative kernel change is ``O(gamma / sqrt(m))``
at width ``m``: ``gamma -> 0`` is the frozen-kernel (lazy) limit and large ``gamma`` is rich.
(The uncentred ``f / gamma`` is not lazy at small ``gamma``: its initial output grows like
``1 / gamma``.)

The factor ``gamma^2`` is applied explicitly by :meth:`CenteredModel.update`, which is passed
to :func:`numerics.training.gradient_descent` as its ``update`` rule; the gradients returned by
:meth:`CenteredModel.loss_and_gradients` are the true gradients of ``L`` with respect to
``theta``, and the recorded times ``lr * steps`` are function-space times.

Kernels are recorded through the layer-wise factorisation
(:func:`numerics.kernels.empirical_ntk` with ``heads="each"``); the kernel recorded is the
function-space kernel ``K`` of the raw network, i.e. ``gamma^2`` times the NTK of
``f_gamma``. Every metric recorded (alignment, specialization) is scale invariant.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..base.alignment import (alignment, eigenvector_target_overlap, specialization,
                              specialization_index)
from ..base.losses import mse
from ..base.validation import as_array, positive_float, positive_int
from .kernels import empirical_ntk
from .networks import MLP
from .training import gradient_descent, record_schedule


class CenteredModel:
    """``f_gamma(x; theta) = (f(x; theta) - f(x; theta_0)) / gamma`` around ``params0``.

    Exposes ``loss_and_gradients(params, X, Y)`` (the true gradient of the MSE loss of
    ``f_gamma``) and ``update(params, grads, lr)`` (the step ``theta <- theta - lr gamma^2 grad``),
    so ``gradient_descent(model, params0, X, Y, lr, steps, update=model.update)`` trains it
    with the function-space learning rate ``lr``.

    The initial outputs ``f(X; theta_0)`` are cached for the last input array seen
    (identified by object identity), so training costs one forward and one backward pass
    per step.

    Parameters
    ----------
    net : MLP
        The raw network ``f``.
    params0 : list of numpy.ndarray
        ``theta_0``, the parameters the model is centred at (copied).
    gamma : float
        The richness ``gamma > 0``.
    """

    def __init__(self, net: MLP, params0, gamma: float):
        if not isinstance(net, MLP):
            raise TypeError(f"net must be a numerics.networks.MLP, got {type(net).__name__}")
        self.net = net
        self.params0 = [np.array(W, dtype=np.float64, copy=True)
                        for W in net.check_params(params0, "params0")]
        self.gamma = positive_float(gamma, "gamma")
        self._cache_X = None
        self._cache_f0 = None

    def __repr__(self) -> str:
        return f"CenteredModel({self.net!r}, gamma={self.gamma})"

    @property
    def output_dim(self) -> int:
        """The number of outputs ``k`` of the network."""
        return self.net.output_dim

    def check_params(self, params, name: str = "params"):
        """The network's parameters, checked as :meth:`MLP.check_params` checks them.

        Parameters
        ----------
        params : list of numpy.ndarray
            One array per layer.
        name : str, optional
            The argument named in errors.

        Returns
        -------
        list of numpy.ndarray
            The checked parameters.
        """
        return self.net.check_params(params, name)

    def initial_output(self, X) -> np.ndarray:
        """``f(X; theta_0)``, cached for the last array ``X`` passed.

        Parameters
        ----------
        X : numpy.ndarray, shape (n, d)
            Inputs.

        Returns
        -------
        numpy.ndarray, shape (n, k)
            The raw network's outputs at ``theta_0``.
        """
        if X is not self._cache_X:
            self._cache_f0 = self.net.apply(self.params0, X)
            self._cache_X = X
        return self._cache_f0

    def apply(self, params, X) -> np.ndarray:
        """``f_gamma(X; theta)``; zero at ``theta = theta_0``.

        Parameters
        ----------
        params : list of numpy.ndarray
            ``theta``.
        X : array_like, shape (n, d)
            Inputs.

        Returns
        -------
        numpy.ndarray, shape (n, k)
            The centred, rescaled outputs.
        """
        X = self.net.check_inputs(X)
        return (self.net.apply(params, X) - self.initial_output(X)) / self.gamma

    def loss(self, params, X, Y) -> float:
        """``1/(2n) sum ||f_gamma(x) - y||^2``.

        Parameters
        ----------
        params : list of numpy.ndarray
            ``theta``.
        X : array_like, shape (n, d)
            Inputs.
        Y : array_like, shape (n, k)
            Targets.

        Returns
        -------
        float
            The loss.
        """
        X = self.net.check_inputs(X)
        Y = self.net.check_targets(Y, X.shape[0])
        return mse(self.apply(params, X) - Y)

    def loss_and_gradients(self, params, X, Y):
        """Loss and ``grad_theta L = J^T r / (n gamma)`` (one forward, one backward pass).

        Parameters
        ----------
        params : list of numpy.ndarray
            ``theta``.
        X : array_like, shape (n, d)
            Inputs.
        Y : array_like, shape (n, k)
            Targets.

        Returns
        -------
        loss : float
            The loss.
        grads : list of numpy.ndarray
            The gradient with respect to each parameter array, shaped like ``params``.
        """
        X = self.net.check_inputs(X)
        Y = self.net.check_targets(Y, X.shape[0])
        fwd = self.net.forward(params, X)
        r = (fwd.output - self.initial_output(X)) / self.gamma - Y
        return mse(r), self.net.backward(params, fwd, r / (X.shape[0] * self.gamma))

    def update(self, params, grads, lr):
        """Gradient step with the parameter learning rate ``lr * gamma^2``.

        Parameters
        ----------
        params : list of numpy.ndarray
            ``theta``.
        grads : list of numpy.ndarray
            The gradients, shaped like ``params``.
        lr : float
            The function-space learning rate.

        Returns
        -------
        list of numpy.ndarray
            The parameters after the step.
        """
        step = lr * self.gamma ** 2
        return [W - step * g for W, g in zip(params, grads)]

    def kernel(self, params, X, heads: str = "each") -> np.ndarray:
        """Function-space kernel ``K = J J^T`` of the raw network (``gamma^2`` x NTK of f_gamma).

        Parameters
        ----------
        params : list of numpy.ndarray
            ``theta``.
        X : array_like, shape (n, d)
            Inputs.
        heads : {"each", "sum", "full"}, optional
            The layout, as in :func:`ntkdyn.numerics.kernels.empirical_ntk`.

        Returns
        -------
        numpy.ndarray, shape (k, n, n), (n, n) or (k, k, n, n)
            The kernel.
        """
        return empirical_ntk(self.net, params, X, heads=heads)


def kernel_metrics(K_heads, Y, spectral: bool = True) -> dict:
    """Alignment metrics of per-head kernels against targets.

    Parameters
    ----------
    K_heads : array_like, shape (k, n, n)
        One kernel per head.
    Y : array_like, shape (n, k)
        Targets.
    spectral : bool, optional
        Also compute the spectral metrics (one ``O(n^3)`` eigendecomposition).

    Returns
    -------
    dict
        ``alignment_centered`` ``A_c(sum_i K_ii, Y)``, ``alignment_uncentered``
        ``A(sum_i K_ii, Y)``, ``trace`` ``Tr sum_i K_ii`` (the kernel's magnitude, which Shan &
        Bordelon 2021 track beside the alignment); with ``k >= 2`` heads, ``specialization``
        ``S_ij = A_c(K_ii, y_j)`` (:func:`ntkdyn.base.alignment.specialization`, ``(k, k)``)
        and ``xi`` (mean diagonal minus mean off-diagonal of ``S``); with ``spectral``,
        ``top_overlap`` (the fraction of the centred target power carried by the top ``k``
        eigenvectors of the centred summed kernel) and ``top_eigvec_cosine``
        (``|phi_1 . Y| / ||Y||`` for the top eigenvector alone).
    """
    K_heads = as_array(K_heads, "K_heads", ndim=3)
    Y = as_array(Y, "Y", ndim=2)
    if Y.shape[0] != K_heads.shape[1]:
        raise ValueError(f"Y must have {K_heads.shape[1]} rows, got shape {Y.shape}")
    K = K_heads.sum(axis=0)
    k = Y.shape[1]
    out = {
        "alignment_centered": alignment(K, Y, centered=True),
        "alignment_uncentered": alignment(K, Y, centered=False),
        "trace": float(np.trace(K)),
    }
    if spectral:
        _, cum = eigenvector_target_overlap(K, Y, centered=True)
        out["top_overlap"] = float(cum[min(k, len(cum)) - 1])
        out["top_eigvec_cosine"] = float(np.sqrt(cum[0]))
    if K_heads.shape[0] == k and k >= 2:
        S = specialization(K_heads, Y, centered=True)
        out["specialization"] = S
        out["xi"] = specialization_index(S)
    return out


class KernelRecorder:
    """Observable for :func:`gradient_descent`: per-head kernel metrics at the recorded steps.

    Called as ``recorder(model, params, X, Y)``; computes ``K_ii`` on ``X`` (or on a fixed
    ``probe`` set with targets ``probe_Y``) through the layer-wise factorisation and appends
    :func:`kernel_metrics` to its lists. Returns the centred alignment (so the trajectory's
    observable is that number); :meth:`results` stacks everything recorded.

    Parameters
    ----------
    probe : array_like, shape (p, d), optional
        Fixed inputs to record the kernel on (default: the training inputs).
    probe_Y : array_like, shape (p, k), optional
        Their targets (given with ``probe``).
    keep_kernels : bool, optional
        Keep every recorded kernel ``(k, n, n)``.
    spectral : bool, optional
        Record the spectral metrics of :func:`kernel_metrics`.
    """

    def __init__(self, probe=None, probe_Y=None, keep_kernels: bool = False,
                 spectral: bool = True):
        if (probe is None) != (probe_Y is None):
            raise ValueError("probe and probe_Y must be given together")
        self.probe = None if probe is None else as_array(probe, "probe", ndim=2)
        self.probe_Y = None if probe_Y is None else as_array(probe_Y, "probe_Y", ndim=2)
        self.keep_kernels = bool(keep_kernels)
        self.spectral = bool(spectral)
        self.records: list[dict] = []
        self.kernels: list[np.ndarray] = []

    def __call__(self, model, params, X, Y):
        net = model.net if isinstance(model, CenteredModel) else model
        Xp, Yp = (X, Y) if self.probe is None else (self.probe, self.probe_Y)
        K = empirical_ntk(net, params, Xp, heads="each")
        metrics = kernel_metrics(K, Yp, self.spectral)
        self.records.append(metrics)
        if self.keep_kernels:
            self.kernels.append(K)
        return metrics["alignment_centered"]

    def results(self) -> dict:
        """Everything recorded, stacked over the recorded steps.

        Returns
        -------
        dict
            ``{metric: array of shape (R, ...)}`` for ``R`` recorded steps, plus ``kernels``
            ``(R, k, n, n)`` when kept; empty before the first record.
        """
        if not self.records:
            return {}
        out = {key: np.array([r[key] for r in self.records]) for key in self.records[0]}
        if self.keep_kernels:
            out["kernels"] = np.array(self.kernels)
        return out


@dataclass
class RichnessRun:
    """One training run of :func:`train_centered`.

    Parameters
    ----------
    gamma : float
        The richness.
    lr : float
        The function-space learning rate.
    times : numpy.ndarray, shape (S + 1,)
        Gradient-flow time at every step.
    losses : numpy.ndarray, shape (S + 1,)
        The loss at every step.
    record_steps : numpy.ndarray, shape (R,)
        The (log-spaced) steps at which the kernels were recorded.
    metrics : dict, optional
        ``{name: array (R, ...)}``, one entry per recorded step (see :func:`kernel_metrics`).
    params0 : list of numpy.ndarray, optional
        The initial weights.
    params : list of numpy.ndarray, optional
        The final weights.
    """

    gamma: float
    lr: float
    times: np.ndarray
    losses: np.ndarray
    record_steps: np.ndarray
    metrics: dict = field(default_factory=dict)
    params0: list = field(default_factory=list)
    params: list = field(default_factory=list)

    @property
    def record_times(self) -> np.ndarray:
        """``lr * record_steps``, the gradient-flow times of the records."""
        return self.lr * self.record_steps

    def gain(self, name: str = "alignment_centered") -> float:
        """Final minus initial value of a recorded metric.

        Parameters
        ----------
        name : str, optional
            A scalar metric of :func:`kernel_metrics`.

        Returns
        -------
        float
            Its value at the last record minus that at the first.
        """
        values = self.metrics[name]
        return float(values[-1] - values[0])


def train_centered(net: MLP, X, Y, gamma, lr, steps, seed=0, params0=None, num_records: int = 20,
                   record_steps=None, probe=None, probe_Y=None, keep_kernels: bool = False,
                   spectral: bool = True) -> RichnessRun:
    """Train ``f_gamma`` by full-batch GD with parameter learning rate ``lr * gamma^2``.

    Per-head kernels are recorded at ``num_records`` log-spaced steps (always including step
    0 and the last step), or at the explicit ``record_steps``; ``spectral=False`` skips the
    eigendecomposition behind ``top_overlap`` (see :func:`kernel_metrics`).

    Parameters
    ----------
    net : MLP
        The raw network.
    X : array_like, shape (n, d)
        Training inputs.
    Y : array_like, shape (n, k)
        Training targets.
    gamma : float
        The richness ``gamma > 0``.
    lr : float
        The function-space learning rate.
    steps : int
        The number of steps.
    seed : int, sequence of int or numpy.random.Generator, optional
        The initialisation's random stream (when ``params0`` is not given).
    params0 : list of numpy.ndarray, optional
        The initial parameters (default ``net.init(seed)``).
    num_records : int, optional
        The number of log-spaced records.
    record_steps : sequence of int, optional
        Explicit steps to record at.
    probe, probe_Y : array_like, optional
        Fixed inputs ``(p, d)`` and targets ``(p, k)`` to record the kernel on.
    keep_kernels : bool, optional
        Keep every recorded kernel.
    spectral : bool, optional
        Record the spectral metrics.

    Returns
    -------
    RichnessRun
        The run: losses, times and the recorded metrics.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a numerics.networks.MLP, got {type(net).__name__}")
    X = net.check_inputs(X)
    Y = net.check_targets(Y, X.shape[0])
    gamma = positive_float(gamma, "gamma")
    lr = positive_float(lr, "lr")
    steps = positive_int(steps, "steps", minimum=0)
    params0 = net.init(seed) if params0 is None else net.check_params(params0, "params0")
    model = CenteredModel(net, params0, gamma)
    if record_steps is None:
        record_steps = record_schedule(steps, num=positive_int(num_records, "num_records", 2),
                                       log=True)
    recorder = KernelRecorder(probe, probe_Y, keep_kernels, spectral)
    traj = gradient_descent(model, model.params0, X, Y, lr, steps,
                            record={"alignment_centered": recorder},
                            record_steps=record_steps, update=model.update)
    return RichnessRun(gamma=gamma, lr=lr, times=traj.times, losses=traj.losses,
                       record_steps=traj.record_steps, metrics=recorder.results(),
                       params0=model.params0, params=traj.params)
