"""Iterative linearised training and its damped Gauss-Newton connection.

Goldwaser & Ge 2022, *Understanding Sparse Feature Updates in Deep Networks using Iterative
Linearisation* (arXiv:2211.12345), Algorithm 1. The network's linearisation around a point
``theta_tilde`` (the "features"),

    f_lin(x; theta | theta_tilde) = f(x; theta_tilde) + J(x; theta_tilde) (theta - theta_tilde),

is trained by gradient descent on its weights ``theta``; every ``K`` steps the linearisation point
moves to the current weights (a "feature update"). ``theta`` is every parameter: for a network
with biases (:class:`numerics.networks.Network`, ``b_std > 0``) the biases too, and ``J`` has
their columns (``d h_l / d b_l = beta_l``). ``K = 1`` is ordinary gradient descent,
``K = inf`` is training with the frozen empirical NTK (Lee et al. 2019). ``J v`` is a hand-written
forward-mode pass (:func:`jvp`) and ``J^T g`` is back-propagation (:meth:`MLP.backward`); the
Jacobian is never materialised. The training loop is :func:`numerics.training.gradient_descent`
with a re-linearise-every-``K`` hook.

For the MSE loss and full batches, ``K`` inner steps from ``theta = theta_tilde`` are ``K`` steps
of gradient descent on a least-squares problem, which move the weights by

    delta_K = -(1/n) J^T U diag(h_K(mu)) U^T r,   G = J J^T / n = U diag(mu) U^T,  r = f - Y,

with the spectral filter ``h_K(mu) = (1 - (1 - lr mu)^K) / mu``
(:func:`theory.kernel_regime.spectral_filter`). Damped Gauss-Newton (Levenberg-Marquardt)
``delta = -(1/n) J^T (G + lambda I)^{-1} r`` applies ``1 / (mu + lambda)``; the two filters agree
for ``mu >> 1 / (lr K)`` and for ``mu << 1 / (lr K)`` at the matched damping
``lambda = 1 / (lr K)``: the sense in which Goldwaser & Ge (2022, arXiv:2211.12345v4, abstract)
call iterative linearisation analogous to damped Gauss-Newton.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ..base.errors import DivergenceError
from ..base.losses import mse_and_output_gradient
from ..base.validation import as_array, as_generator, positive_float, positive_int
from ..theory.kernel_regime import spectral_filter
from .kernels import empirical_ntk
from .networks import MLP
from .training import Trajectory, gradient_descent, recording_plan

__all__ = [
    "LOSSES",
    "GaussNewtonDirection",
    "LinearisedMLP",
    "LinearisedTrajectory",
    "Loss",
    "accuracy",
    "damped_gauss_newton",
    "damped_gauss_newton_step",
    "filtered_step",
    "gauss_newton_gram",
    "get_loss",
    "iterative_linearised_training",
    "jvp",
    "matched_damping",
    "minibatch_indices",
    "spectral_filter_step",
]


# ----------------------------------------------------------------------------- losses
@dataclass(frozen=True)
class Loss:
    """A loss averaged over examples: ``value_and_grad(F, Y) -> (L, dL/dF)``, ``F, Y`` (n, k).

    Parameters
    ----------
    name : str
        The loss's name (a key of :data:`LOSSES` for the built-in ones).
    value_and_grad : callable
        ``(F, Y) -> (float, numpy.ndarray of shape (n, k))``: the loss of outputs ``F`` against
        targets ``Y``, both ``(n, k)``, and its gradient with respect to ``F``.
    min_outputs : int
        The fewest outputs ``k`` the loss accepts (2 for cross-entropy).
    """

    name: str
    value_and_grad: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]
    min_outputs: int = 1


def _cross_entropy(F, Y):
    """``L = -1/n sum_i sum_c y_ic log softmax(f_i)_c``,
    ``dL/dF = (softmax(F) sum_c y_c - Y) / n``."""
    n = F.shape[0]
    Z = F - F.max(axis=1, keepdims=True)
    log_p = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    loss = -float(np.sum(Y * log_p)) / n
    return loss, (np.exp(log_p) * Y.sum(axis=1, keepdims=True) - Y) / n


LOSSES: dict[str, Loss] = {
    "mse": Loss("mse", mse_and_output_gradient),
    "cross_entropy": Loss("cross_entropy", _cross_entropy, min_outputs=2),
}


def get_loss(loss: str | Loss) -> Loss:
    """The :class:`Loss` named ``loss`` (or ``loss`` itself).

    Parameters
    ----------
    loss : {"mse", "cross_entropy"} or Loss
        A name from :data:`LOSSES`, or a :class:`Loss`.

    Returns
    -------
    Loss
        The loss.

    Raises
    ------
    TypeError
        When ``loss`` is neither a string nor a :class:`Loss`.
    ValueError
        When ``loss`` is an unknown name.
    """
    if isinstance(loss, Loss):
        return loss
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a name from {sorted(LOSSES)} or a Loss, "
                        f"got {type(loss).__name__}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[loss]


def accuracy(F, Y) -> float:
    """Fraction of correct predictions: arg-max agreement for ``k > 1`` outputs, sign agreement
    for one output.

    Parameters
    ----------
    F : array, shape (n, k)
        Model outputs.
    Y : array, shape (n, k)
        Targets (one-hot for ``k > 1``, signed labels for ``k = 1``).

    Returns
    -------
    float
        The fraction, in ``[0, 1]``.
    """
    F, Y = np.asarray(F), np.asarray(Y)
    if F.shape[1] == 1:
        return float(np.mean(np.sign(F[:, 0]) == np.sign(Y[:, 0])))
    return float(np.mean(np.argmax(F, axis=1) == np.argmax(Y, axis=1)))


# ------------------------------------------------------------------- forward-mode JVP
def _check_net(net):
    if not isinstance(net, MLP):
        raise TypeError(f"net must be an MLP, got {type(net).__name__}")


@dataclass
class _Point:
    """A forward pass at the linearisation point with the derivatives the JVP needs."""

    forward: object
    slopes: list  # phi'(h_l) for hidden layers; psi'(h_L) (or None) last


def _linearisation_point(net: MLP, params, X) -> _Point:
    fwd = net.forward(params, X)
    slopes = [net.activation.dphi(h) for h in fwd.preactivations[:-1]]
    slopes.append(None if net.output_activation is None
                  else net.output_activation.dphi(fwd.preactivations[-1]))
    return _Point(fwd, slopes)


def _jvp_at(net: MLP, params, point: _Point, tangent) -> np.ndarray:
    """Forward-mode pass: ``dh_1 = c_1 X V_1^T``,
    ``dh_l = c_l (phi'(h_{l-1}) dh_{l-1} W_l^T + a_{l-1} V_l^T)``, ``J v = psi'(h_L) dh_L``;
    with biases every ``dh_l`` gains ``beta_l v_{b_l}`` (the tangent of ``b_l``)."""
    acts = point.forward.activations
    L = net.depth
    beta = net.bias_multipliers if net.has_bias else None
    dh = None
    for l, (W, V, c) in enumerate(zip(params[:L], tangent[:L], net.multipliers)):
        step = acts[l] @ V.T
        if dh is not None:
            step += (point.slopes[l - 1] * dh) @ W.T
        dh = step if c == 1.0 else c * step
        if beta is not None:
            dh += beta[l] * tangent[L + l]
    return dh if point.slopes[-1] is None else point.slopes[-1] * dh


def jvp(net: MLP, params, X, tangent) -> tuple[np.ndarray, np.ndarray]:
    """``(f(X; theta), J(X; theta) v)`` by one forward and one forward-mode pass.

    ``tangent`` is a parameter-shaped list ``v = [V_1, ..., V_L]`` (followed by the bias
    tangents ``[v_{b_1}, ..., v_{b_L}]`` for a network with biases); the result ``J v`` has shape
    ``(n, k)``. The Jacobian is never formed.

    Parameters
    ----------
    net : MLP
        The network.
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})`` (then ``[b_1, ..., b_L]`` for
        a network with biases): the point ``theta`` where ``J`` is taken.
    X : array, shape (n, d)
        Inputs.
    tangent : list of arrays shaped like ``params``
        The direction ``v``.

    Returns
    -------
    f : numpy.ndarray, shape (n, k)
        The outputs ``f(X; theta)``.
    jv : numpy.ndarray, shape (n, k)
        ``J(X; theta) v``.
    """
    _check_net(net)
    params = net.check_params(params)
    tangent = net.check_params(tangent, "tangent")
    point = _linearisation_point(net, params, X)
    return point.forward.output, _jvp_at(net, params, point, tangent)


# ------------------------------------------------------------------- the linear model
class LinearisedMLP:
    """The linearisation ``f_lin(x; theta | theta_0) = f(x; theta_0) + J(x; theta_0) delta``,
    ``delta = theta - theta_0``.

    A model object with ``loss_and_gradients(params, X, Y)``, so
    :func:`numerics.training.gradient_descent` trains it (frozen-kernel training). The forward
    pass at ``theta_0`` is cached for the last few input arrays (by identity; do not modify an
    input array in place between calls).

    Parameters
    ----------
    net : MLP
        The network linearised.
    params0 : list of arrays
        The linearisation point ``theta_0`` (copied).
    loss : {"mse", "cross_entropy"} or Loss
        The training loss (:func:`get_loss`); cross-entropy needs ``k >= 2`` outputs.
    """

    _CACHE_SIZE = 4

    def __init__(self, net: MLP, params0, loss="mse"):
        _check_net(net)
        self.net = net
        self.params0 = [np.array(W, dtype=np.float64, copy=True)
                        for W in net.check_params(params0, "params0")]
        self.loss = get_loss(loss)
        if net.output_dim < self.loss.min_outputs:
            raise ValueError(f"loss {self.loss.name!r} needs at least {self.loss.min_outputs} "
                             f"outputs, the network has {net.output_dim}")
        self._cache: dict[int, tuple[np.ndarray, _Point]] = {}

    def __repr__(self) -> str:
        return f"LinearisedMLP({self.net!r}, loss={self.loss.name!r})"

    def point(self, X, cache: bool = True) -> _Point:
        """Forward pass at ``theta_0`` on ``X`` (cached by the identity of ``X``).

        Parameters
        ----------
        X : array, shape (n, d)
            Inputs (not checked here).
        cache : bool
            Store the result for later calls with the same array (the oldest of the last
            four is dropped).

        Returns
        -------
        _Point
            The forward pass at ``theta_0`` and the slopes ``phi'(h_l)`` (and ``psi'(h_L)``)
            the forward-mode pass needs.
        """
        hit = self._cache.get(id(X))
        if hit is not None and hit[0] is X:
            return hit[1]
        point = _linearisation_point(self.net, self.params0, X)
        if cache:
            if len(self._cache) >= self._CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[id(X)] = (X, point)
        return point

    def offset(self, params) -> list[np.ndarray]:
        """``theta - theta_0``, after checking that ``params`` has the network's structure.

        Parameters
        ----------
        params : list of arrays
            ``theta``, shaped like ``params0``.

        Returns
        -------
        list of numpy.ndarray
            ``theta - theta_0``, one array per parameter array.
        """
        params = self.net.check_params(params)
        return [W - W0 for W, W0 in zip(params, self.params0)]

    def jvp(self, tangent, X) -> np.ndarray:
        """``J(X; theta_0) v``, shape ``(n, k)``.

        Parameters
        ----------
        tangent : list of arrays shaped like ``params0``
            The direction ``v``.
        X : array, shape (n, d)
            Inputs.

        Returns
        -------
        numpy.ndarray, shape (n, k)
            ``J(X; theta_0) v``.
        """
        tangent = self.net.check_params(tangent, "tangent")
        return _jvp_at(self.net, self.params0, self.point(X), tangent)

    def vjp(self, output_grad, X) -> list[np.ndarray]:
        """``J(X; theta_0)^T g = sum_i g_i . d f(x_i; theta_0) / d theta``, one array per
        parameter array (weights, then biases).

        Parameters
        ----------
        output_grad : array, shape (n, k)
            ``g``, one row per input.
        X : array, shape (n, d)
            Inputs.

        Returns
        -------
        list of numpy.ndarray
            ``J^T g``, shaped like ``params0``.
        """
        point = self.point(X)
        G = as_array(output_grad, "output_grad", ndim=2)
        if G.shape != point.forward.output.shape:
            raise ValueError(f"output_grad must have shape {point.forward.output.shape}, "
                             f"got {G.shape}")
        return self.net.backward(self.params0, point.forward, G)

    def _outputs(self, params, X, point=None, zero_offset=False) -> np.ndarray:
        point = self.point(X) if point is None else point
        if zero_offset:
            return point.forward.output
        return point.forward.output + _jvp_at(self.net, self.params0, point, self.offset(params))

    def apply(self, params, X) -> np.ndarray:
        """``f_lin(X; params | theta_0)``, shape ``(n, k)``.

        Parameters
        ----------
        params : list of arrays
            ``theta``, shaped like ``params0``.
        X : array, shape (n, d)
            Inputs.

        Returns
        -------
        numpy.ndarray, shape (n, k)
            ``f(X; theta_0) + J(X; theta_0) (theta - theta_0)``.
        """
        return self._outputs(params, X)

    def loss_and_gradients(self, params, X, Y, cache: bool = True, zero_offset: bool = False):
        """The linear model's loss and its gradient ``J^T dL/dF``, one array per parameter array.

        ``zero_offset=True`` asserts ``params == theta_0`` and skips the forward-mode pass.

        Parameters
        ----------
        params : list of arrays
            ``theta``, shaped like ``params0``.
        X : array, shape (n, d)
            Inputs.
        Y : array, shape (n, k) or (n,)
            Targets.
        cache : bool
            Cache the forward pass at ``theta_0`` on ``X`` (:meth:`point`).
        zero_offset : bool
            The caller asserts ``params == theta_0`` (not checked): ``f_lin = f(X; theta_0)``.

        Returns
        -------
        loss : float
            The loss of ``f_lin(X; params | theta_0)`` against ``Y``.
        gradients : list of numpy.ndarray
            ``J(X; theta_0)^T dL/dF``, shaped like ``params``.
        """
        X = self.net.check_inputs(X)
        point = self.point(X, cache=cache)
        Y = self.net.check_targets(Y, X.shape[0])
        F = self._outputs(params, X, point, zero_offset)
        loss, dF = self.loss.value_and_grad(F, Y)
        return loss, self.net.backward(self.params0, point.forward, dF)

    def ntk(self, X, X2=None, heads: str = "sum") -> np.ndarray:
        """The (constant) NTK of the linear model, ``J(X; theta_0) J(X2; theta_0)^T``.

        Parameters
        ----------
        X : array, shape (n, d)
            Inputs.
        X2 : array, shape (n2, d), optional
            Second inputs; ``None``: ``X``.
        heads : {"sum", "each", "full"}
            As in :func:`numerics.kernels.empirical_ntk`.

        Returns
        -------
        numpy.ndarray
            Shape ``(n, n2)``, ``(k, n, n2)`` or ``(k, k, n, n2)`` for ``heads``.
        """
        return empirical_ntk(self.net, self.params0, X, X2, heads=heads)


# -------------------------------------------------------------- iterative linearisation
@dataclass
class LinearisedTrajectory(Trajectory):
    """A :class:`~numerics.training.Trajectory` of iterative linearised training.

    ``params`` are the final weights ``theta`` of the linear model and ``linearisation_point`` the
    final ``theta_tilde``; predict with
    ``LinearisedMLP(net, linearisation_point).apply(params, X)``.
    ``observables`` always hold ``loss`` and ``accuracy`` (linear model, full training set),
    ``network_loss`` (the network itself at ``theta``), ``feature_updates`` (re-linearisations so
    far), and ``test_loss`` / ``test_accuracy`` when a test set is given.
    ``relinearisation_steps`` lists step 0 and every feature update; ``kernels`` holds the
    empirical NTK (heads summed) on ``ntk_inputs`` at each of them, when requested;
    ``loss_before_update[j]`` / ``loss_after_update[j]`` are the full training loss just before and
    just after feature update ``j + 1`` (the jump of the loss at a re-linearisation).

    Parameters
    ----------
    lr : float or callable
        The learning rate as given.
    times : numpy.ndarray, shape (S + 1,)
        Gradient-flow time of each step.
    losses : numpy.ndarray, shape (S + 1,)
        The loss at each step (with minibatches, of that step's batch).
    record_steps : numpy.ndarray of int
        The steps at which the observables were recorded.
    observables : dict of str to numpy.ndarray
        One value per entry of ``record_steps`` for each observable.
    params : list of numpy.ndarray
        The final weights ``theta`` of the linear model.
    snapshots : list or None
        ``theta`` at ``record_steps``, when requested.
    stop_step : int or None
        The step at which a stopping rule fired.
    relinearise_every : int or float
        ``K`` (``inf``: never).
    feature_updates : int
        The number of re-linearisations.
    linearisation_point : list of numpy.ndarray
        The final ``theta_tilde``.
    relinearisation_steps : numpy.ndarray of int, shape (feature_updates + 1,)
        Step 0 and the step of every feature update.
    kernels : numpy.ndarray, shape (feature_updates + 1, m, m), or None
        The empirical NTK (heads summed) on the ``m`` inputs ``ntk_inputs`` at each of
        ``relinearisation_steps``, when requested.
    loss_before_update, loss_after_update : numpy.ndarray, shape (feature_updates,)
        The full training loss just before and just after each feature update.
    """

    relinearise_every: float = float("inf")
    feature_updates: int = 0
    linearisation_point: list = field(default_factory=list)
    relinearisation_steps: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=int))
    kernels: np.ndarray | None = None
    loss_before_update: np.ndarray = field(default_factory=lambda: np.zeros(0))
    loss_after_update: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _period(value) -> float | int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"relinearise_every must be an integer >= 1 or float('inf'), got {value!r}")
    if np.isnan(value) or value < 1:
        raise ValueError("relinearise_every must be an integer >= 1 or float('inf'), "
                         f"got {value!r}")
    if np.isinf(value):
        return float("inf")
    if value != int(value):
        raise ValueError(f"relinearise_every must be a whole number of steps, got {value!r}")
    return int(value)


def minibatch_indices(n: int, batch_size: int | None, steps: int, seed=0):
    """The example indices used at each of ``steps`` steps: ``None`` (full batch) or
    ``batch_size`` indices drawn without replacement, independently at every step, from ``seed``
    (sorted). The batches of :func:`iterative_linearised_training`; for epochs (every example
    once per epoch) see :func:`numerics.training.epoch_batches`.

    Parameters
    ----------
    n : int
        Number of examples.
    batch_size : int or None
        Indices per batch, ``<= n``; ``None``: full batches.
    steps : int
        Number of steps (``>= 0``).
    seed : int or Generator
        Draws the batches.

    Returns
    -------
    iterator
        ``steps`` items: ``None`` each, or sorted int arrays of shape ``(batch_size,)``.
    """
    n = positive_int(n, "n")
    steps = positive_int(steps, "steps", minimum=0)
    if batch_size is None:
        return iter([None] * steps)
    batch_size = positive_int(batch_size, "batch_size")
    if batch_size > n:
        raise ValueError(f"batch_size must be <= the number of examples {n}, got {batch_size}")
    rng = as_generator(seed)
    return (np.sort(rng.choice(n, size=batch_size, replace=False)) for _ in range(steps))


def _test_set(test, net):
    if test is None:
        return None
    if not isinstance(test, (tuple, list)) or len(test) != 2:
        raise TypeError("test must be a pair (X_test, Y_test)")
    X_test = net.check_inputs(test[0], "X_test")
    return X_test, net.check_targets(test[1], X_test.shape[0], "Y_test")


class _BlockModel(LinearisedMLP):
    """The linear model of one block of ``K`` steps, linearised at the weights ``theta_tilde`` of
    its first step. Evaluated at that very parameter list (``at``; the loop never modifies it in
    place) the forward-mode pass ``J (theta - theta_tilde)`` is exactly zero and is skipped.
    Forward passes are cached for ``train_inputs`` only (not for minibatches)."""

    def __init__(self, net: MLP, params0, loss, train_inputs):
        super().__init__(net, params0, loss)
        self.at = params0
        self.train_inputs = train_inputs

    def loss_and_gradients(self, params, X, Y, cache=None, zero_offset=None):
        cache = X is self.train_inputs if cache is None else cache
        zero_offset = params is self.at if zero_offset is None else zero_offset
        return super().loss_and_gradients(params, X, Y, cache=cache, zero_offset=zero_offset)

    def train_outputs(self, params) -> np.ndarray:
        """``f_lin(X_train; params | theta_tilde)``."""
        return self._outputs(params, self.train_inputs, zero_offset=params is self.at)


class _Relinearisation:
    """The re-linearise-every-``K`` hook of :func:`iterative_linearised_training` and the
    observables it records; keeps the model in force and the history of feature updates."""

    BUILT_IN = ("loss", "accuracy", "network_loss", "feature_updates", "test_loss",
                "test_accuracy")

    def __init__(self, net: MLP, theta, X, Y, K, loss: Loss, test, ntk_inputs):
        self.net, self.X, self.Y, self.K, self.loss_fn = net, X, Y, K, loss
        self.test, self.ntk_inputs = test, ntk_inputs
        self.model = _BlockModel(net, theta, loss, X)
        self.updates = 0
        self.steps, self.kernels, self.before, self.after = [0], [], [], []
        if ntk_inputs is not None:
            self.kernels.append(self.model.ntk(ntk_inputs))
        self._memo = None

    def _loss(self, F, Y) -> float:
        return self.loss_fn.value_and_grad(F, Y)[0]

    def __call__(self, step, model, theta):
        """Every ``K`` steps (``step > 0``) move the linearisation point to ``theta``."""
        if step == 0:
            model.at = theta  # the loop's copy of theta_0
            return None
        if step % self.K != 0:
            return None
        self.before.append(self._loss(model.train_outputs(theta), self.Y))
        self.model = _BlockModel(self.net, theta, self.loss_fn, self.X)
        self.updates += 1
        self.steps.append(step)
        self.after.append(self._loss(self.model.train_outputs(theta), self.Y))
        if self.ntk_inputs is not None:
            self.kernels.append(self.model.ntk(self.ntk_inputs))
        return self.model

    def _train_outputs(self, model, theta) -> np.ndarray:
        # loss and accuracy share one evaluation of the linear model per recorded step
        if self._memo is None or self._memo[0] is not model or self._memo[1] is not theta:
            self._memo = (model, theta, model.train_outputs(theta))
        return self._memo[2]

    def observables(self) -> dict[str, Callable]:
        """The built-in observables, ``fn(model, theta, X, Y)`` for ``gradient_descent``."""
        obs = {
            "loss": lambda m, theta, X, Y: self._loss(self._train_outputs(m, theta), self.Y),
            "accuracy": lambda m, theta, X, Y: accuracy(self._train_outputs(m, theta), self.Y),
            "network_loss": lambda m, theta, X, Y: self._loss(self.net.apply(theta, self.X),
                                                              self.Y),
            "feature_updates": lambda m, theta, X, Y: self.updates,
        }
        if self.test is not None:
            X_test, Y_test = self.test
            obs["test_loss"] = lambda m, theta, X, Y: self._loss(m.apply(theta, X_test), Y_test)
            obs["test_accuracy"] = lambda m, theta, X, Y: accuracy(m.apply(theta, X_test), Y_test)
        return obs


def iterative_linearised_training(net: MLP, params, X, Y, lr, steps, relinearise_every=1, *,
                                  loss="mse", batch_size: int | None = None, seed=0, test=None,
                                  record: Mapping[str, Callable] | None = None,
                                  every: int | None = None, record_steps=None,
                                  snapshots: bool = False, ntk_inputs=None,
                                  divergence_factor: float = 1e8) -> LinearisedTrajectory:
    """Train the network's linearisation, moving the linearisation point every ``K`` steps.

    Iterative linearisation (Goldwaser & Ge 2022, Algorithm 1)::

        theta <- theta_0;  theta_tilde <- theta_0
        for s = 0 .. T-1:
            g     <- dL/dF at F = f(B; theta_tilde) + J(B; theta_tilde)(theta - theta_tilde)
            theta <- theta - lr J(B; theta_tilde)^T g          (g already carries 1/|B|)
            if (s + 1) mod K == 0:  theta_tilde <- theta      (a feature update)

    It is :func:`numerics.training.gradient_descent` on a :class:`LinearisedMLP` with a hook
    that re-linearises every ``K`` steps.

    Parameters
    ----------
    net : MLP
    params : list of arrays
        Initial parameters ``theta_0`` (also the first linearisation point).
    X, Y : arrays ``(n, d)``, ``(n, k)``
        Training data (one-hot ``Y`` for cross-entropy).
    lr : float
        Learning rate; step ``s`` is time ``t = lr * s``.
    steps : int
        Number of steps ``T``.
    relinearise_every : int >= 1 or float("inf")
        ``K``; ``1`` is plain gradient descent, ``inf`` never moves the features.
    loss : {"mse", "cross_entropy"} or Loss
        The training loss (:func:`get_loss`).
    batch_size : int, optional
        Minibatch SGD with batches from :func:`minibatch_indices` (``seed``); full batch by default.
        With minibatches ``losses[s]`` (``s < T``) is the loss of step ``s``'s batch; the full
        training loss is ``observables["loss"]``.
    seed : int or Generator
        Draws the minibatches (unused for full batches).
    test : pair ``(X_test, Y_test)``, optional
        Adds ``test_loss`` and ``test_accuracy`` (linear model) to the observables.
    record : mapping name -> ``fn(model, theta, X, Y)``
        Extra observables; ``model`` is the :class:`LinearisedMLP` in force at that step.
    every, record_steps, snapshots, divergence_factor :
        As in :func:`numerics.training.gradient_descent`.
    ntk_inputs : None, "train" or array
        Record the empirical NTK (heads summed) on these inputs at step 0 and every feature update.

    Returns
    -------
    LinearisedTrajectory
        The record of the run, with the final ``theta`` and ``theta_tilde``.

    Raises
    ------
    DivergenceError
        When a loss is not finite or exceeds ``divergence_factor * (initial loss + 1)``.
    """
    _check_net(net)
    theta = [np.array(W, dtype=np.float64, copy=True) for W in net.check_params(params)]
    X = net.check_inputs(X)
    Y = net.check_targets(Y, X.shape[0])
    lr = positive_float(lr, "lr")
    steps = positive_int(steps, "steps", minimum=0)
    K = _period(relinearise_every)
    loss_fn = get_loss(loss)
    test = _test_set(test, net)
    record, _ = recording_plan(steps, record, every, record_steps)
    reserved = sorted(set(record) & set(_Relinearisation.BUILT_IN))
    if reserved:
        raise ValueError(f"record names {reserved} are built-in observables")
    if isinstance(ntk_inputs, str):
        if ntk_inputs != "train":
            raise ValueError(f"ntk_inputs must be None, 'train' or an array, got {ntk_inputs!r}")
        ntk_inputs = X
    elif ntk_inputs is not None:
        ntk_inputs = net.check_inputs(ntk_inputs, "ntk_inputs")
    batches = None if batch_size is None else minibatch_indices(X.shape[0], batch_size, steps,
                                                                seed)
    relinearise = _Relinearisation(net, theta, X, Y, K, loss_fn, test, ntk_inputs)
    try:
        traj = gradient_descent(relinearise.model, theta, X, Y, lr, steps,
                                record=relinearise.observables() | record, every=every,
                                record_steps=record_steps, snapshots=snapshots,
                                divergence_factor=divergence_factor, hook=relinearise,
                                batches=batches)
    except DivergenceError as exc:
        raise DivergenceError(exc.step, exc.loss, f"iterative linearised training diverged "
                                                  f"(lr = {lr}, relinearise_every = {K})") from None
    return LinearisedTrajectory(
        lr=traj.lr, times=traj.times, losses=traj.losses, record_steps=traj.record_steps,
        observables=traj.observables, params=traj.params, snapshots=traj.snapshots,
        relinearise_every=K, feature_updates=relinearise.updates,
        linearisation_point=relinearise.model.params0,
        relinearisation_steps=np.asarray(relinearise.steps),
        kernels=np.asarray(relinearise.kernels) if ntk_inputs is not None else None,
        loss_before_update=np.asarray(relinearise.before, dtype=float),
        loss_after_update=np.asarray(relinearise.after, dtype=float))


# ---------------------------------------------------------------- Gauss-Newton connection
def _mse_setup(net, params, X, Y):
    _check_net(net)
    params = net.check_params(params)
    X = net.check_inputs(X)
    Y = net.check_targets(Y, X.shape[0])
    return params, X, Y


def gauss_newton_gram(net: MLP, params, X) -> np.ndarray:
    """``G = J J^T / n`` in head-major layout ``G[(i, a), (j, b)]``, shape ``(k n, k n)``.

    Built from the layer-wise empirical NTK (``heads="full"``), never from ``J``.

    Parameters
    ----------
    net : MLP
        The network.
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})`` (then ``[b_1, ..., b_L]`` for
        a network with biases): the point ``theta`` where ``J`` is taken.
    X : array, shape (n, d)
        Inputs.

    Returns
    -------
    numpy.ndarray, shape (k n, k n)
        ``G``; row ``a n + i`` is output ``a`` at input ``i``.
    """
    X = net.check_inputs(X)
    n, k = X.shape[0], net.output_dim
    theta = empirical_ntk(net, params, X, heads="full")
    return theta.transpose(0, 2, 1, 3).reshape(k * n, k * n) / n


def filtered_step(net: MLP, params, X, Y, spectral_fn: Callable[[np.ndarray], np.ndarray]):
    """``delta = -(1/n) J^T U diag(h(mu)) U^T r`` for a spectral function ``h`` of
    ``G = J J^T / n``.

    MSE residual ``r = f(X; theta) - Y``; ``J^T`` is applied by back-propagation.

    Parameters
    ----------
    net : MLP
        The network.
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})`` (then ``[b_1, ..., b_L]`` for
        a network with biases): the point ``theta`` where ``J`` is taken.
    X : array, shape (n, d)
        Inputs.
    Y : array, shape (n, k) or (n,)
        Targets.
    spectral_fn : callable
        ``h``: maps the eigenvalues ``mu`` of ``G`` (shape ``(k n,)``) to an array of the same
        shape.

    Returns
    -------
    list of numpy.ndarray
        ``delta``, shaped like ``params``.
    """
    params, X, Y = _mse_setup(net, params, X, Y)
    n, k = Y.shape
    fwd = net.forward(params, X)
    G = gauss_newton_gram(net, params, X)
    mu, U = np.linalg.eigh(G)
    r = (fwd.output - Y).T.ravel()
    v = U @ (spectral_fn(mu) * (U.T @ r))
    return [-g for g in net.backward(params, fwd, v.reshape(k, n).T / n)]


def spectral_filter_step(net: MLP, params, X, Y, lr, steps):
    """The closed form of ``steps`` full-batch MSE steps of the linear model from its linearisation
    point: ``delta_K = -(1/n) J^T h_K(G) r`` (:func:`theory.kernel_regime.spectral_filter`).

    Parameters
    ----------
    net : MLP
        The network.
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})`` (then ``[b_1, ..., b_L]`` for
        a network with biases): the point ``theta`` where ``J`` is taken.
    X : array, shape (n, d)
        Inputs.
    Y : array, shape (n, k) or (n,)
        Targets.
    lr : float
        Learning rate, ``> 0``.
    steps : int
        ``K``, the number of steps.

    Returns
    -------
    list of numpy.ndarray
        ``delta_K``, shaped like ``params``.
    """
    lr = positive_float(lr, "lr")
    return filtered_step(net, params, X, Y, lambda mu: spectral_filter(mu, lr, steps))


def matched_damping(lr, steps) -> float:
    """The damping ``lambda = 1 / (lr K)`` at which damped Gauss-Newton matches ``K`` steps.

    Parameters
    ----------
    lr : float
        Learning rate, ``> 0``.
    steps : float
        ``K``, ``> 0``.

    Returns
    -------
    float
        ``1 / (lr K)``.
    """
    return 1.0 / (positive_float(lr, "lr") * positive_float(steps, "steps"))


def damped_gauss_newton_step(net: MLP, params, X, Y, damping, rcond: float = 1e-12):
    """Damped Gauss-Newton (Levenberg-Marquardt) step in kernel form,
    ``delta = -(1/n) J^T (G + lambda I)^{-1} r = -(J^T J / n + lambda I)^{-1} J^T r / n``.

    ``damping = 0`` gives the minimum-norm Gauss-Newton step ``-(J^T J)^+ J^T r`` (eigenvalues of
    ``G`` below ``rcond * max`` are dropped).

    Parameters
    ----------
    net : MLP
        The network.
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})`` (then ``[b_1, ..., b_L]`` for
        a network with biases): the point ``theta`` where ``J`` is taken.
    X : array, shape (n, d)
        Inputs.
    Y : array, shape (n, k) or (n,)
        Targets.
    damping : float
        ``lambda >= 0``.
    rcond : float
        With ``damping = 0``, the relative cut-off of the eigenvalues of ``G``.

    Returns
    -------
    list of numpy.ndarray
        ``delta``, shaped like ``params``.
    """
    damping = positive_float(damping, "damping", allow_zero=True)
    rcond = positive_float(rcond, "rcond", allow_zero=True)

    def h(mu):
        if damping > 0:
            return 1.0 / (np.maximum(mu, 0.0) + damping)
        keep = mu > rcond * mu.max()
        return np.where(keep, 1.0 / np.where(keep, mu, 1.0), 0.0)

    return filtered_step(net, params, X, Y, h)


class GaussNewtonDirection:
    """A model whose "gradient" is minus the damped Gauss-Newton step, so that
    :func:`numerics.training.gradient_descent` with ``lr = 1`` iterates damped Gauss-Newton.

    Parameters
    ----------
    net : MLP
        The network.
    damping : float
        ``lambda >= 0`` (:func:`damped_gauss_newton_step`).
    rcond : float
        Eigenvalue cut-off for ``damping = 0``.
    """

    def __init__(self, net: MLP, damping, rcond: float = 1e-12):
        self.net = net
        self.damping = positive_float(damping, "damping", allow_zero=True)
        self.rcond = rcond

    def loss_and_gradients(self, params, X, Y):
        """The network's MSE loss and minus the damped Gauss-Newton step.

        Parameters
        ----------
        params : list of arrays
            The network's parameters ``theta``.
        X : array, shape (n, d)
            Inputs.
        Y : array, shape (n, k) or (n,)
            Targets.

        Returns
        -------
        loss : float
            The MSE loss at ``theta``.
        gradients : list of numpy.ndarray
            ``-delta`` (:func:`damped_gauss_newton_step`), shaped like ``params``.
        """
        delta = damped_gauss_newton_step(self.net, params, X, Y, self.damping, self.rcond)
        return self.net.loss(params, X, Y), [-d for d in delta]


def damped_gauss_newton(net: MLP, params, X, Y, damping, steps, **kwargs) -> Trajectory:
    """Iterated damped Gauss-Newton ``theta <- theta + delta_lambda(theta)`` on the MSE loss.

    Returns a :class:`~numerics.training.Trajectory` whose time axis counts iterations
    (``lr = 1``); ``kwargs`` go to :func:`numerics.training.gradient_descent`.

    Parameters
    ----------
    net : MLP
        The network.
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})`` (then ``[b_1, ..., b_L]`` for
        a network with biases): the starting point.
    X : array, shape (n, d)
        Inputs.
    Y : array, shape (n, k) or (n,)
        Targets.
    damping : float
        ``lambda >= 0``.
    steps : int
        Number of iterations.
    **kwargs
        Passed to :func:`numerics.training.gradient_descent` (``record``, ``every``, ...).

    Returns
    -------
    Trajectory
        The record of the iterations.
    """
    params, X, Y = _mse_setup(net, params, X, Y)
    return gradient_descent(GaussNewtonDirection(net, damping), params, X, Y, 1.0, steps, **kwargs)
