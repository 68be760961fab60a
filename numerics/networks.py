"""Fully-connected networks with hand-written back-propagation.

Parameterization (docs/conventions.md): with multipliers ``c_l``,

    h_1 = c_1 W_1 x,    h_{l+1} = c_{l+1} W_{l+1} phi(h_l),    f = psi(h_L),

where ``c_l = 1 / sqrt(n_{l-1})`` in the NTK parameterization (Jacot et al. 2018) and
``c_l = 1`` in the standard parameterization (Saxe et al. 2014). ``psi`` is the identity
unless ``output_activation`` is given (the non-linear-output counter-example of
Liu, Zhu & Belkin 2020). Weights start i.i.d. ``N(0, init_scale^2)``.

Parameters are a plain list ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})``;
data are ``X`` of shape ``(n, d)``, targets ``Y`` of shape ``(n, k)``; the loss is
``L = 1/(2n) sum_i ||f(x_i) - y_i||^2`` (:mod:`ntkdyn.base.losses`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..base.activations import Activation, get_activation
from ..base.losses import mse, mse_and_output_gradient
from ..base.validation import as_array, as_generator, one_of, positive_float, positive_int

PARAMETERIZATIONS = ("ntk", "standard")


@dataclass
class Forward:
    """Everything the backward pass needs from one forward pass.

    ``activations[l]`` is the input of weight matrix ``l`` (``activations[0] = X``);
    ``preactivations[l]`` is ``h_{l+1} = c_{l+1} activations[l] @ W_{l+1}^T``;
    ``output`` is ``psi(preactivations[-1])``.
    """

    activations: list[np.ndarray]
    preactivations: list[np.ndarray]
    output: np.ndarray


class MLP:
    """A multi-layer perceptron ``widths = [d, n_1, ..., n_{L-1}, k]`` with ``L`` weight matrices.

    Parameters
    ----------
    widths : sequence of int
        Input dimension, hidden widths and number of outputs (at least two entries).
    activation : str or Activation
        Hidden non-linearity ``phi`` (a name from ``ntkdyn.base.activations.ACTIVATIONS``).
    output_activation : str, Activation or None
        Optional output non-linearity ``psi`` applied to every head.
    init_scale : float
        Standard deviation of the i.i.d. Gaussian initial weights.
    parameterization : {"ntk", "standard"}
        ``"ntk"``: ``c_l = 1/sqrt(fan_in)``; ``"standard"``: ``c_l = 1``.
    """

    def __init__(self, widths, activation="relu", output_activation=None, init_scale=1.0,
                 parameterization="ntk"):
        if isinstance(widths, (str, bytes)) or not hasattr(widths, "__len__"):
            raise TypeError(f"widths must be a sequence of positive integers, got {widths!r}")
        if len(widths) < 2:
            raise ValueError(f"widths must have at least 2 entries [d, ..., k], got {list(widths)}")
        self.widths = tuple(positive_int(w, f"widths[{i}]") for i, w in enumerate(widths))
        self.activation: Activation = get_activation(activation, "activation")
        self.output_activation: Activation | None = (
            None if output_activation is None
            else get_activation(output_activation, "output_activation"))
        self.init_scale = positive_float(init_scale, "init_scale")
        self.parameterization = one_of(parameterization, "parameterization", PARAMETERIZATIONS)
        fan_ins = self.widths[:-1]
        self.multipliers = tuple(
            float(1.0 / np.sqrt(n)) if parameterization == "ntk" else 1.0 for n in fan_ins)

    # ------------------------------------------------------------------ shapes
    @property
    def depth(self) -> int:
        """Number of weight matrices ``L``."""
        return len(self.widths) - 1

    @property
    def input_dim(self) -> int:
        return self.widths[0]

    @property
    def output_dim(self) -> int:
        return self.widths[-1]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [(self.widths[l + 1], self.widths[l]) for l in range(self.depth)]

    @property
    def num_params(self) -> int:
        return sum(a * b for a, b in self.shapes)

    def __repr__(self) -> str:
        out = ("" if self.output_activation is None
               else f", output_activation={self.output_activation.name!r}")
        return (f"MLP({list(self.widths)}, activation={self.activation.name!r}{out}, "
                f"init_scale={self.init_scale}, parameterization={self.parameterization!r})")

    # ----------------------------------------------------------- parameters
    def init(self, seed=0, dtype=np.float64) -> list[np.ndarray]:
        """Draw ``W_l ~ N(0, init_scale^2)`` i.i.d. from ``seed`` (int or Generator)."""
        rng = as_generator(seed)
        return [(self.init_scale * rng.standard_normal(shape)).astype(dtype, copy=False)
                for shape in self.shapes]

    def check_params(self, params, name: str = "params") -> list[np.ndarray]:
        """Validate a parameter list against this network's shapes."""
        if not isinstance(params, (list, tuple)):
            raise TypeError(f"{name} must be a list of {self.depth} weight matrices, "
                            f"got {type(params).__name__}")
        if len(params) != self.depth:
            raise ValueError(f"{name} must hold {self.depth} weight matrices, got {len(params)}")
        out = []
        for l, (W, shape) in enumerate(zip(params, self.shapes)):
            W = np.asarray(W)
            if W.shape != shape:
                raise ValueError(f"{name}[{l}] must have shape {shape}, got {W.shape}")
            out.append(W)
        return out

    def check_inputs(self, X, name: str = "X") -> np.ndarray:
        X = as_array(X, name, ndim=2, keep_float32=True)
        if X.shape[1] != self.input_dim:
            raise ValueError(f"{name} must have {self.input_dim} columns (the input dimension), "
                             f"got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one example")
        return X

    def check_targets(self, Y, n: int, name: str = "Y") -> np.ndarray:
        Y = as_array(Y, name, ndim=(1, 2), keep_float32=True)
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.shape != (n, self.output_dim):
            raise ValueError(f"{name} must have shape ({n}, {self.output_dim}), got {Y.shape}")
        return Y

    def flatten(self, params) -> np.ndarray:
        """Concatenate ``[W_1, ..., W_L]`` into one vector ``theta`` (row-major)."""
        return np.concatenate([np.ravel(W) for W in params])

    def unflatten(self, theta) -> list[np.ndarray]:
        """Inverse of :meth:`flatten`."""
        theta = np.asarray(theta)
        if theta.shape != (self.num_params,):
            raise ValueError(f"theta must have shape ({self.num_params},), got {theta.shape}")
        out, start = [], 0
        for a, b in self.shapes:
            out.append(theta[start:start + a * b].reshape(a, b))
            start += a * b
        return out

    # ------------------------------------------------------------- forward
    def forward(self, params, X) -> Forward:
        """Forward pass keeping every layer's input and pre-activation."""
        params = self.check_params(params)
        X = self.check_inputs(X)
        activations, preactivations = [X], []
        a = X
        for l, (W, c) in enumerate(zip(params, self.multipliers)):
            h = a @ W.T
            if c != 1.0:
                h *= c
            preactivations.append(h)
            if l < self.depth - 1:
                a = self.activation.phi(h)
                activations.append(a)
        h_out = preactivations[-1]
        output = h_out if self.output_activation is None else self.output_activation.phi(h_out)
        return Forward(activations, preactivations, output)

    def apply(self, params, X) -> np.ndarray:
        """Network outputs ``f(X)``, shape ``(n, k)``."""
        return self.forward(params, X).output

    def loss(self, params, X, Y) -> float:
        """MSE loss ``1/(2n) sum_i ||f(x_i) - y_i||^2``."""
        X = self.check_inputs(X)
        Y = self.check_targets(Y, X.shape[0])
        return mse(self.apply(params, X) - Y)

    # ------------------------------------------------------------ backward
    def backward(self, params, forward: Forward, output_grad) -> list[np.ndarray]:
        """Vector-Jacobian product: ``sum_i output_grad_i . d f(x_i) / d theta`` per layer.

        Back-propagation of ``g_L = output_grad * psi'(h_L)`` through
        ``g_{l-1} = c_l (g_l W_l) * phi'(h_{l-1})`` with ``dW_l = c_l g_l^T a_{l-1}``.
        """
        g = np.asarray(output_grad)
        if self.output_activation is not None:
            g = g * self.output_activation.dphi(forward.preactivations[-1])
        grads = [None] * self.depth
        for l in range(self.depth - 1, -1, -1):
            c = self.multipliers[l]
            grads[l] = c * (g.T @ forward.activations[l])
            if l > 0:
                g = (c * (g @ params[l])) * self.activation.dphi(forward.preactivations[l - 1])
        return grads

    def loss_and_gradients(self, params, X, Y) -> tuple[float, list[np.ndarray]]:
        """MSE loss and its gradient with respect to every weight matrix."""
        X = self.check_inputs(X)
        Y = self.check_targets(Y, X.shape[0])
        fwd = self.forward(params, X)
        loss, output_grad = mse_and_output_gradient(fwd.output, Y)
        return loss, self.backward(params, fwd, output_grad)

    def gradients(self, params, X, Y) -> list[np.ndarray]:
        """Gradient of the MSE loss, one array per weight matrix."""
        return self.loss_and_gradients(params, X, Y)[1]

    def jacobian(self, params, X) -> np.ndarray:
        """Per-example Jacobian ``d f_i(x) / d theta``, shape ``(n, k, P)``.

        A slow reference (one backward pass per example and head) for tests of the
        factorised kernels; never used by the library's fast paths.
        """
        X = self.check_inputs(X)
        n, k = X.shape[0], self.output_dim
        J = np.empty((n, k, self.num_params), dtype=np.result_type(X, *params))
        for a in range(n):
            fwd = self.forward(params, X[a:a + 1])
            for i in range(k):
                e = np.zeros((1, k))
                e[0, i] = 1.0
                J[a, i] = self.flatten(self.backward(params, fwd, e))
        return J
