"""Fully-connected networks with hand-written back-propagation.

Parameterization (docs/conventions.md): with multipliers ``c_l``,

    h_1 = c_1 W_1 x,    h_{l+1} = c_{l+1} W_{l+1} phi(h_l),    f = psi(h_L),

where ``c_l = 1 / sqrt(n_{l-1})`` in the NTK parameterization (Jacot et al. 2018) and
``c_l = 1`` in the standard parameterization (Saxe et al. 2014). ``psi`` is the identity
unless ``output_activation`` is given (the non-linear-output counter-example of
Liu, Zhu & Belkin 2020). Weights start i.i.d. ``N(0, init_scale^2)``.

Every layer is described by four numbers, which is all the kernels (finite and infinite) read:
the forward multiplier ``c_l`` of ``W_l`` and the standard deviation ``s_l`` of its entries at
initialisation, and the same pair ``(beta_l, t_l)`` for the bias, so that

    h_l = c_l W_l a_{l-1} + beta_l b_l,    W_l ~ N(0, s_l^2),    b_l ~ N(0, t_l^2).

:class:`MLP` has no biases and ``s_l = init_scale``; :class:`Network` is the description in
neural-tangents' ``stax.Dense`` convention (``W_std``, ``b_std``).

Parameters are a plain list ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})``, followed
by the biases ``[b_1, ..., b_L]`` (shape ``(n_l,)``) when the network has them; data are
``X`` of shape ``(n, d)``, targets ``Y`` of shape ``(n, k)``; the loss is
``L = 1/(2n) sum_i ||f(x_i) - y_i||^2`` (:mod:`ntkdyn.base.losses`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..base.activations import Activation, get_activation
from ..base.losses import mse, mse_and_output_gradient
from ..base.validation import (as_array, as_generator, check_float_dtype, one_of, positive_float,
                               positive_int)
from .memory import network_bytes, require_memory_if_large

PARAMETERIZATIONS = ("ntk", "standard")


@dataclass
class Forward:
    """Everything the backward pass needs from one forward pass.

    ``activations[l]`` is the input of weight matrix ``l`` (``activations[0] = X``);
    ``preactivations[l]`` is ``h_{l+1} = c_{l+1} activations[l] @ W_{l+1}^T``;
    ``output`` is ``psi(preactivations[-1])``.

    Parameters
    ----------
    activations : list of ndarray
        ``L`` arrays: ``activations[0] = X`` of shape ``(n, d)``, then ``phi(h_l)`` of shape
        ``(n, n_l)`` for ``l = 1, ..., L-1``.
    preactivations : list of ndarray
        ``L`` arrays ``h_1, ..., h_L``, ``h_l`` of shape ``(n, n_l)`` (biases included).
    output : ndarray, shape (n, k)
        The network outputs ``f = psi(h_L)`` (``h_L`` itself without an output activation).
    """

    activations: list[np.ndarray]
    preactivations: list[np.ndarray]
    output: np.ndarray


class ParameterListModel:
    """What a network derives from its shapes and its forward and backward passes.

    A subclass defines ``param_shapes``, ``num_params``, ``output_dim``, ``check_params``,
    ``check_inputs``, ``forward`` (returning an object with ``output``) and ``backward``; this
    class adds the target check, (un)flattening, the outputs, the MSE loss and its gradients and
    the per-example Jacobian, for :class:`MLP` and :class:`ntkdyn.numerics.serial.SerialNetwork`.
    """

    def check_targets(self, Y, n: int, name: str = "Y") -> np.ndarray:
        """Validate targets: a finite real array of shape ``(n, k)`` (or ``(n,)`` when ``k = 1``).

        Parameters
        ----------
        Y : array_like, shape (n, k) or (n,)
            Targets, ``k`` = :attr:`output_dim`; a 1-D array is read as one column.
        n : int
            The number of examples (rows of the inputs).
        name : str, default "Y"
            The argument's name, used in the messages.

        Returns
        -------
        ndarray, shape (n, k)
            In float64 (float32 is kept).

        Raises
        ------
        TypeError
            Not a real numeric array.
        ValueError
            Not of shape ``(n, k)`` after the reshape, or NaN or inf entries.
        """
        Y = as_array(Y, name, ndim=(1, 2), keep_float32=True)
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.shape != (n, self.output_dim):
            raise ValueError(f"{name} must have shape ({n}, {self.output_dim}), got {Y.shape}")
        return Y

    def flatten(self, params) -> np.ndarray:
        """Concatenate the parameter list into one vector ``theta`` (row-major).

        Parameters
        ----------
        params : list of array_like
            A parameter list (not checked).

        Returns
        -------
        ndarray, shape (P,)
            ``theta``, ``P`` = :attr:`num_params` for a list of this network's shapes.
        """
        return np.concatenate([np.ravel(W) for W in params])

    def unflatten(self, theta) -> list[np.ndarray]:
        """Inverse of :meth:`flatten`.

        Parameters
        ----------
        theta : array_like, shape (P,)
            A flat parameter vector, ``P`` = :attr:`num_params`.

        Returns
        -------
        list of ndarray
            Arrays of shapes :attr:`param_shapes` (views of ``theta`` when it is an ndarray).

        Raises
        ------
        ValueError
            ``theta`` does not have shape ``(P,)``.
        """
        theta = np.asarray(theta)
        if theta.shape != (self.num_params,):
            raise ValueError(f"theta must have shape ({self.num_params},), got {theta.shape}")
        out, start = [], 0
        for shape in self.param_shapes:
            size = int(np.prod(shape))
            out.append(theta[start:start + size].reshape(shape))
            start += size
        return out

    def apply(self, params, X) -> np.ndarray:
        """Network outputs ``f(X)``, shape ``(n, k)``.

        Parameters
        ----------
        params : list of ndarray
            Parameters of shapes :attr:`param_shapes`.
        X : array_like, shape (n, d), or (n,) + input_shape for serial networks
            Inputs.

        Returns
        -------
        ndarray, shape (n, k)
        """
        return self.forward(params, X).output

    def loss(self, params, X, Y) -> float:
        """MSE loss ``1/(2n) sum_i ||f(x_i) - y_i||^2``.

        Parameters
        ----------
        params : list of ndarray
            Parameters of shapes :attr:`param_shapes`.
        X : array_like, shape (n, d), or (n,) + input_shape for serial networks
            Inputs.
        Y : array_like, shape (n, k) or (n,)
            Targets (checked by :meth:`check_targets`).

        Returns
        -------
        float
        """
        X = self.check_inputs(X)
        Y = self.check_targets(Y, X.shape[0])
        return mse(self.apply(params, X) - Y)

    def loss_and_gradients(self, params, X, Y) -> tuple[float, list[np.ndarray]]:
        """MSE loss and its gradient with respect to every parameter array.

        Parameters
        ----------
        params : list of ndarray
            Parameters of shapes :attr:`param_shapes`.
        X : array_like, shape (n, d), or (n,) + input_shape for serial networks
            Inputs.
        Y : array_like, shape (n, k) or (n,)
            Targets.

        Returns
        -------
        loss : float
            ``1/(2n) sum_i ||f(x_i) - y_i||^2``.
        gradients : list of ndarray
            ``dL/dW_l`` (then ``dL/db_l``), of shapes :attr:`param_shapes`.
        """
        X = self.check_inputs(X)
        Y = self.check_targets(Y, X.shape[0])
        fwd = self.forward(params, X)
        loss, output_grad = mse_and_output_gradient(fwd.output, Y)
        return loss, self.backward(params, fwd, output_grad)

    def gradients(self, params, X, Y) -> list[np.ndarray]:
        """Gradient of the MSE loss, one array per parameter array.

        Parameters
        ----------
        params : list of ndarray
            Parameters of shapes :attr:`param_shapes`.
        X : array_like, shape (n, d), or (n,) + input_shape for serial networks
            Inputs.
        Y : array_like, shape (n, k) or (n,)
            Targets.

        Returns
        -------
        list of ndarray
            ``dL/dW_l`` (then ``dL/db_l``), of shapes :attr:`param_shapes`.
        """
        return self.loss_and_gradients(params, X, Y)[1]

    def jacobian(self, params, X) -> np.ndarray:
        """Per-example Jacobian ``d f_i(x) / d theta``, shape ``(n, k, P)``.

        A slow reference (one backward pass per example and head) for tests of the
        factorised kernels; never used by the library's fast paths.

        Parameters
        ----------
        params : list of ndarray
            Parameters of shapes :attr:`param_shapes`.
        X : array_like, shape (n, d), or (n,) + input_shape for serial networks
            Inputs.

        Returns
        -------
        ndarray, shape (n, k, P)
            ``J[a, i] = d f_i(x_a) / d theta``, ``theta`` flattened as by :meth:`flatten`.
        """
        params = self.check_params(params)
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


class MLP(ParameterListModel):
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

    def __init__(self, widths: Sequence[int], activation: str | Activation = "relu",
                 output_activation: str | Activation | None = None, init_scale: float = 1.0,
                 parameterization: str = "ntk") -> None:
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
        self.init_stds = (self.init_scale,) * self.depth
        self.has_bias = False
        self.bias_multipliers = (0.0,) * self.depth
        self.bias_stds = (0.0,) * self.depth

    # ------------------------------------------------------------------ shapes
    @property
    def depth(self) -> int:
        """Number of weight matrices ``L``."""
        return len(self.widths) - 1

    @property
    def input_dim(self) -> int:
        """Input dimension ``d = widths[0]``."""
        return self.widths[0]

    @property
    def output_dim(self) -> int:
        """Number of outputs (heads) ``k = widths[-1]``."""
        return self.widths[-1]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """Shapes ``(n_l, n_{l-1})`` of the weight matrices ``W_1, ..., W_L``."""
        return [(self.widths[l + 1], self.widths[l]) for l in range(self.depth)]

    @property
    def bias_shapes(self) -> list[tuple[int]]:
        """Shapes of ``b_1, ..., b_L`` (empty without biases)."""
        return [(self.widths[l + 1],) for l in range(self.depth)] if self.has_bias else []

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the parameter list: the weights, then the biases (if any)."""
        return list(self.shapes) + self.bias_shapes

    @property
    def num_params(self) -> int:
        """Total number of parameters ``P`` (weights and biases)."""
        return sum(int(np.prod(shape)) for shape in self.param_shapes)

    def weights(self, params) -> list[np.ndarray]:
        """``[W_1, ..., W_L]`` from a parameter list.

        Parameters
        ----------
        params : list of ndarray
            A parameter list (weights, then biases if any); not checked.

        Returns
        -------
        list of ndarray
            Its first ``L`` entries, ``W_l`` of shape ``(n_l, n_{l-1})`` (not copied).
        """
        return list(params[:self.depth])

    def biases(self, params) -> list[np.ndarray] | None:
        """``[b_1, ..., b_L]`` from a parameter list, or ``None`` for a network without biases.

        Parameters
        ----------
        params : list of ndarray
            A parameter list (weights, then biases if any); not checked.

        Returns
        -------
        list of ndarray or None
            Its last ``L`` entries, ``b_l`` of shape ``(n_l,)`` (not copied), or ``None``.
        """
        return list(params[self.depth:]) if self.has_bias else None

    def layer_scales(self) -> list[tuple[float, float, float, float]]:
        """``(c_l, s_l, beta_l, t_l)`` for every layer (see the module docstring).

        Returns
        -------
        list of tuple of float
            ``L`` tuples: weight multiplier ``c_l``, initial weight std ``s_l``, bias
            multiplier ``beta_l`` and initial bias std ``t_l`` (``0`` and ``0`` without biases).
        """
        return list(zip(self.multipliers, self.init_stds, self.bias_multipliers, self.bias_stds))

    def __repr__(self) -> str:
        out = ("" if self.output_activation is None
               else f", output_activation={self.output_activation.name!r}")
        return (f"MLP({list(self.widths)}, activation={self.activation.name!r}{out}, "
                f"init_scale={self.init_scale}, parameterization={self.parameterization!r})")

    # ----------------------------------------------------------- parameters
    def init(self, seed=0, dtype=np.float64) -> list[np.ndarray]:
        """Draw ``W_l ~ N(0, s_l^2)`` (then ``b_l ~ N(0, t_l^2)``) i.i.d. from ``seed``.

        Parameters
        ----------
        seed : int, list of int or numpy.random.Generator, default 0
            As accepted by :func:`ntkdyn.base.validation.as_generator`; a Generator is advanced.
        dtype : dtype, default float64
            A real floating dtype.

        Returns
        -------
        list of ndarray
            ``[W_1, ..., W_L]`` (shapes :attr:`shapes`), then ``[b_1, ..., b_L]`` (shapes
            :attr:`bias_shapes`) when the network has biases, in ``dtype``.
        """
        dtype = check_float_dtype(dtype, "dtype")
        rng = as_generator(seed)
        # the parameters and one Gaussian draw of the largest array
        require_memory_if_large(2 * self.num_params * dtype.itemsize, "the parameters",
                                hint="use a smaller width")
        params = [(s * rng.standard_normal(shape)).astype(dtype, copy=False)
                  for s, shape in zip(self.init_stds, self.shapes)]
        params += [(t * rng.standard_normal(shape)).astype(dtype, copy=False)
                   for t, shape in zip(self.bias_stds, self.bias_shapes)]
        return params

    def _param_description(self) -> str:
        what = f"{self.depth} weight matrices"
        return what + f" and {self.depth} bias vectors" if self.has_bias else what

    def check_params(self, params, name: str = "params") -> list[np.ndarray]:
        """Validate a parameter list against this network's shapes (real, finite floats).

        Parameters
        ----------
        params : list or tuple of array_like
            The weights, then the biases (if any), of shapes :attr:`param_shapes`.
        name : str, default "params"
            The argument's name, used in the messages.

        Returns
        -------
        list of ndarray
            The entries as arrays (their floating dtype kept, not copied).

        Raises
        ------
        TypeError
            Not a list or tuple, or an entry that is not a real floating array.
        ValueError
            The wrong number of arrays, a wrong shape, or NaN or inf entries.
        """
        if not isinstance(params, (list, tuple)):
            raise TypeError(f"{name} must be a list of {self._param_description()}, "
                            f"got {type(params).__name__}")
        shapes = self.param_shapes
        if len(params) != len(shapes):
            raise ValueError(f"{name} must hold {self._param_description()} "
                             f"({len(shapes)} arrays), got {len(params)}")
        out = []
        for l, (W, shape) in enumerate(zip(params, shapes)):
            W = np.asarray(W)
            if W.shape != shape:
                raise ValueError(f"{name}[{l}] must have shape {shape}, got {W.shape}")
            if not np.issubdtype(W.dtype, np.floating):
                raise TypeError(f"{name}[{l}] must be a real floating array, got dtype {W.dtype}")
            if not np.all(np.isfinite(W)):
                raise ValueError(f"{name}[{l}] must be finite (found NaN or inf)")
            out.append(W)
        return out

    def check_inputs(self, X, name: str = "X") -> np.ndarray:
        """Validate inputs: a finite, non-empty real array of shape ``(n, d)``.

        Parameters
        ----------
        X : array_like, shape (n, d)
            Inputs, ``d`` = :attr:`input_dim`, ``n >= 1``.
        name : str, default "X"
            The argument's name, used in the messages.

        Returns
        -------
        ndarray, shape (n, d)
            In float64 (float32 is kept).

        Raises
        ------
        TypeError
            Not a real numeric array.
        ValueError
            Not 2-D, the wrong number of columns, no rows, or NaN or inf entries.
        """
        X = as_array(X, name, ndim=2, keep_float32=True)
        if X.shape[1] != self.input_dim:
            raise ValueError(f"{name} must have {self.input_dim} columns (the input dimension), "
                             f"got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one example")
        return X

    # ------------------------------------------------------------- forward
    def forward(self, params, X) -> Forward:
        """Forward pass keeping every layer's input and pre-activation.

        Parameters
        ----------
        params : list of ndarray
            Parameters of shapes :attr:`param_shapes` (checked by :meth:`check_params`).
        X : array_like, shape (n, d)
            Inputs (checked by :meth:`check_inputs`).

        Returns
        -------
        Forward
            The layer inputs, the pre-activations ``h_1, ..., h_L`` and the outputs
            ``(n, k)``.
        """
        params = self.check_params(params)
        X = self.check_inputs(X)
        require_memory_if_large(
            network_bytes(self.widths, X.shape[0], param_copies=0, unit_copies=2,
                          itemsize=X.dtype.itemsize),
            "the forward pass", hint="use fewer inputs or a smaller width")
        activations, preactivations = [X], []
        biases = self.biases(params)
        a = X
        for l, (W, c) in enumerate(zip(params[:self.depth], self.multipliers)):
            h = a @ W.T
            if c != 1.0:
                h *= c
            if biases is not None:
                h += self.bias_multipliers[l] * biases[l]
            preactivations.append(h)
            if l < self.depth - 1:
                a = self.activation.phi(h)
                activations.append(a)
        h_out = preactivations[-1]
        output = h_out if self.output_activation is None else self.output_activation.phi(h_out)
        return Forward(activations, preactivations, output)

    # ------------------------------------------------------------ backward
    def backward(self, params, forward: Forward, output_grad) -> list[np.ndarray]:
        """Vector-Jacobian product: ``sum_i output_grad_i . d f(x_i) / d theta`` per parameter.

        Back-propagation of ``g_L = output_grad * psi'(h_L)`` through
        ``g_{l-1} = c_l (g_l W_l) * phi'(h_{l-1})`` with ``dW_l = c_l g_l^T a_{l-1}`` and
        ``db_l = beta_l sum_i g_l,i``. Returns arrays in the order of the parameter list.

        Parameters
        ----------
        params : list of ndarray
            Parameters of shapes :attr:`param_shapes` (not checked: the ones of ``forward``).
        forward : Forward
            The result of :meth:`forward` with ``params``.
        output_grad : array_like, shape (n, k)
            The cotangent of the outputs, e.g. ``dL/df``.

        Returns
        -------
        list of ndarray
            ``dW_1, ..., dW_L`` (then ``db_1, ..., db_L`` with biases), of shapes
            :attr:`param_shapes`.
        """
        g = np.asarray(output_grad)
        if self.output_activation is not None:
            g = g * self.output_activation.dphi(forward.preactivations[-1])
        grads = [None] * len(self.param_shapes)
        for l in range(self.depth - 1, -1, -1):
            c = self.multipliers[l]
            grads[l] = c * (g.T @ forward.activations[l])
            if self.has_bias:
                grads[self.depth + l] = self.bias_multipliers[l] * g.sum(axis=0)
            if l > 0:
                g = (c * (g @ params[l])) * self.activation.dphi(forward.preactivations[l - 1])
        return grads


class Network(MLP):
    """One description of a fully-connected network: finite network and infinite-width kernels.

    ``widths = [d, n_1, ..., n_{L-1}, k]`` (``L = depth`` weight matrices). ``W_std`` and
    ``b_std`` mean what they mean in neural-tangents' ``stax.Dense``:

    * ``parameterization="ntk"``: ``h_l = W_std omega_l a_{l-1} / sqrt(n_{l-1}) + b_std beta_l``
      with ``omega_l, beta_l`` i.i.d. standard normal and trained
      (``c_l = W_std / sqrt(n_{l-1})``, ``s_l = 1``, bias multiplier ``b_std``, bias std 1);
    * ``parameterization="standard"``: ``h_l = W_l a_{l-1} + b_l`` with
      ``W_l ~ N(0, W_std^2 / n_{l-1})`` and ``b_l ~ N(0, b_std^2)`` trained directly.

    ``b_std = 0`` means no biases at all (not zero-initialised trained biases), so
    ``Network(widths).init(seed)`` equals ``MLP(widths).init(seed)`` bitwise. The description is
    frozen and hashable; :meth:`infinite_ntk` and :meth:`infinite_nngp` give its kernels at
    infinite width (:mod:`ntkdyn.theory.infinite_width`),
    :func:`ntkdyn.numerics.kernels.empirical_ntk` its finite-width NTK.

    Parameters
    ----------
    widths : sequence of int
        Input dimension, hidden widths and number of outputs (at least two entries).
    activation : str or Activation
        Hidden non-linearity (a name from ``ntkdyn.base.activations.ACTIVATIONS``).
    W_std, b_std : float
        Weight and bias standard deviations (``W_std > 0``, ``b_std >= 0``).
    parameterization : {"ntk", "standard"}
    output_activation : str, Activation or None
        Optional non-linearity applied to every output.
    """

    def __init__(self, widths: Sequence[int], activation: str | Activation = "relu", W_std=1.0,
                 b_std=0.0, parameterization: str = "ntk",
                 output_activation: str | Activation | None = None) -> None:
        W_std = positive_float(W_std, "W_std")
        b_std = positive_float(b_std, "b_std", allow_zero=True)
        super().__init__(widths, activation=activation, output_activation=output_activation,
                         init_scale=1.0, parameterization=parameterization)
        fan_ins = self.widths[:-1]
        depth = self.depth
        if parameterization == "ntk":
            multipliers = tuple(float(W_std / np.sqrt(n)) for n in fan_ins)
            init_stds = (1.0,) * depth
            bias_multipliers, bias_stds = (b_std,) * depth, (1.0,) * depth
        else:
            multipliers = (1.0,) * depth
            init_stds = tuple(float(W_std / np.sqrt(n)) for n in fan_ins)
            bias_multipliers, bias_stds = (1.0,) * depth, (b_std,) * depth
        fields = dict(W_std=W_std, b_std=b_std, multipliers=multipliers, init_stds=init_stds,
                      has_bias=b_std > 0,
                      bias_multipliers=bias_multipliers if b_std > 0 else (0.0,) * depth,
                      bias_stds=bias_stds if b_std > 0 else (0.0,) * depth)
        for key, value in fields.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_frozen", True)

    @classmethod
    def mlp(cls, d, width, depth, heads=1, **kwargs) -> "Network":
        """``depth`` weight matrices: ``Network([d] + [width] * (depth - 1) + [heads], ...)``.

        Parameters
        ----------
        d : int
            Input dimension.
        width : int
            Width of every hidden layer.
        depth : int
            Number of weight matrices ``L`` (``depth = 1``: a linear model ``[d, heads]``).
        heads : int, default 1
            Number of outputs ``k``.
        **kwargs
            ``activation``, ``W_std``, ``b_std``, ``parameterization``, ``output_activation``
            of :class:`Network`.

        Returns
        -------
        Network
        """
        depth = positive_int(depth, "depth")
        return cls([d] + [width] * (depth - 1) + [heads], **kwargs)

    @staticmethod
    def serial(*layers, input_shape, parameterization="ntk"):
        """A serial (convolutional, residual) network of ``ntkdyn.layers`` layers.

        Parameters
        ----------
        *layers : ntkdyn.layers.Layer
            ``Dense``, ``Conv``, ``Activation``, ``AvgPool``, ``GlobalAvgPool``, ``Flatten``,
            ``Residual``, applied in order.
        input_shape : tuple of int
            One example's shape, channels last: ``(d,)``, ``(L, C)`` or ``(H, W, C)``.
        parameterization : {"ntk", "standard"}

        Returns
        -------
        ntkdyn.numerics.serial.SerialNetwork
        """
        from .serial import SerialNetwork
        return SerialNetwork(layers, input_shape, parameterization)

    # ------------------------------------------------------- frozen, hashable
    def __setattr__(self, key, value):
        if getattr(self, "_frozen", False):
            raise AttributeError(f"Network is frozen: cannot set {key!r}")
        object.__setattr__(self, key, value)

    def _key(self):
        out = None if self.output_activation is None else self.output_activation.name
        return (self.widths, self.activation.name, self.W_std, self.b_std, self.parameterization,
                out)

    def __eq__(self, other):
        return isinstance(other, Network) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self) -> str:
        out = ("" if self.output_activation is None
               else f", output_activation={self.output_activation.name!r}")
        return (f"Network({list(self.widths)}, activation={self.activation.name!r}, "
                f"W_std={self.W_std}, b_std={self.b_std}, "
                f"parameterization={self.parameterization!r}{out})")

    # ------------------------------------------------------ infinite width
    def infinite_ntk(self, X, X2=None, per_layer=False):
        """Infinite-width NTK: :func:`ntkdyn.theory.infinite_width.infinite_ntk`.

        Parameters
        ----------
        X : array_like, shape (n, d)
            Inputs.
        X2 : array_like, shape (n2, d), optional
            Second inputs; ``None`` for ``X`` itself.
        per_layer : bool, default False
            Return each parameter group's contribution, ``{"W_1": K, "b_1": K, ...}``.

        Returns
        -------
        ndarray, shape (n, n2), or dict of them
            The NTK of one output head.
        """
        from ..theory.infinite_width import infinite_ntk
        return infinite_ntk(self, X, X2, per_layer=per_layer)

    def infinite_nngp(self, X, X2=None):
        """Infinite-width NNGP: :func:`ntkdyn.theory.infinite_width.infinite_nngp`.

        Parameters
        ----------
        X : array_like, shape (n, d)
            Inputs.
        X2 : array_like, shape (n2, d), optional
            Second inputs; ``None`` for ``X`` itself.

        Returns
        -------
        ndarray, shape (n, n2)
            The NNGP kernel of one output head.
        """
        from ..theory.infinite_width import infinite_nngp
        return infinite_nngp(self, X, X2)
