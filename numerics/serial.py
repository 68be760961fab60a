"""Serial (convolutional and residual) networks with hand-written forward and backward passes.

A :class:`SerialNetwork` applies the layers of :mod:`ntkdyn.base.layers` (``Dense``, ``Conv``,
``Activation``, ``AvgPool``, ``GlobalAvgPool``, ``Flatten``, ``Residual``) to inputs ``X`` of
shape ``(n, *input_shape)`` (channels last) and returns ``(n, k)``. A layer with weights and
``fan_in`` inputs per output computes (module docstring of :mod:`ntkdyn.base.layers`)

    h_p = c W^T P_p(a) + beta b,     W ~ N(0, s^2),  b ~ N(0, t^2),

where ``P_p(a)`` is the patch of the input ``a`` seen by output position ``p`` (the ``K``
kernel offsets times ``C_in`` channels of a convolution; the ``C_in`` channels at ``p`` for a
``Dense`` layer) and ``(c, s, beta, t)`` are :func:`ntkdyn.base.layers.weight_scales`: the NTK
parameterization (Jacot et al. 2018; ``stax``) ``c = W_std / sqrt(fan_in)``, ``s = 1``,
``beta = b_std``, ``t = 1``, or the standard one ``c = 1``, ``s = W_std / sqrt(fan_in)``,
``beta = 1``, ``t = b_std``. ``b_std = 0``: no bias.

Convolutions are correlations with stride 1 computed by im2col (the patches of every output
position as rows of one matrix, :func:`patches`) and one BLAS product, in chunks of examples
holding at most 16 MiB of patches; the input gradient is the correlation of the zero-padded
output gradient with the flipped kernel, by the same im2col and one product per chunk. Measured
before the choice (``benchmarks/bench_serial.py``, section 3, one BLAS thread, n = 256 8x8
inputs): the im2col forward took 1.15 to 1.3 times one GEMM of the im2col size at 64 and 256
channels (4 times at 16 channels, where the patch copy dominates a small GEMM), per-offset
shifted products of the 4-D arrays 1.1 to 3.2 times the im2col time (they fall off BLAS at wide
channels); for the input gradient of 2560 signals (8x8, 16 channels) im2col took 0.22 s against
0.25 s for per-offset products scattered back. No Numba kernel was needed.

**Parameters** are a flat list: the weights of the parameterised layers in their order
(pre-order: a residual block's branch, then its projection), then the biases of those that have
one, in the same order (as :class:`~ntkdyn.numerics.networks.Network`, so a stack of ``Dense``
layers draws the same parameters as the ``Network`` of the same widths). Parameterised layer
``l`` (1-based, in that order) owns ``W_l`` and, with a bias, ``b_l``
(:attr:`SerialNetwork.param_names`). A ``Dense`` weight has shape ``(out, in)`` (as in
``Network``), a ``Conv`` weight ``(*kernel, C_in, C_out)`` (``stax``'s HWIO).

**Forward record** (:class:`SerialForward`): the input and output of every node (every layer,
nested residual branches and projections included, in pre-order, :attr:`SerialNetwork.nodes`),
so that kernels, Hessian-vector products and feature metrics can read the stored inputs,
pre-activations (the outputs of ``Dense``/``Conv`` nodes) and patches. :meth:`SerialNetwork.
signals` back-propagates any number of cotangents of the output and returns the signal
``d <v, f> / d (node output)`` at every node that is asked for.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..base import layers as L
from ..base.validation import as_array, as_generator, check_float_dtype, one_of
from .networks import ParameterListModel

__all__ = ["Node", "SerialForward", "SerialNetwork", "patches"]


@dataclass(frozen=True)
class Node:
    """One layer of a :class:`SerialNetwork`, resolved against its input shape.

    Parameters
    ----------
    index : int
        Position in :attr:`SerialNetwork.nodes` (pre-order).
    path : str
        Where the layer sits, e.g. ``"layers[2].branch[0]"``; a projection is
        ``"layers[2].skip"``.
    layer : ntkdyn.base.layers.Layer
        The description (a projection is the ``Dense`` it amounts to).
    in_shape, out_shape : tuple of int
        Shapes of one example, channels last.
    number : int
        ``l`` of a parameterised layer (1-based), 0 for the others.
    weight, bias : int or None
        Indices of ``W_l`` and ``b_l`` in the parameter list.
    scales : tuple of float
        ``(c, s, beta, t)`` (:func:`ntkdyn.base.layers.weight_scales`).
    fan_in : int
        Inputs per output unit (``K C_in``).
    window : tuple of int
        Kernel (``Conv``) or window (``AvgPool``) extent per spatial axis.
    stride : tuple of int
        ``AvgPool`` stride per spatial axis.
    pad : tuple of tuple of int
        ``Conv`` zero padding ``(before, after)`` per spatial axis.
    branch : tuple of int
        Node indices of a residual block's branch, in order.
    skip : int or None
        Node index of a residual block's projection (``None``: identity skip).
    weight_shape : tuple of int
        Shape of ``W_l``.
    """

    index: int
    path: str
    layer: L.Layer
    in_shape: tuple
    out_shape: tuple
    number: int = 0
    weight: int | None = None
    bias: int | None = None
    scales: tuple = (0.0, 0.0, 0.0, 0.0)
    fan_in: int = 0
    window: tuple = ()
    stride: tuple = ()
    pad: tuple = ()
    branch: tuple = ()
    skip: int | None = None
    weight_shape: tuple = ()

    @property
    def kind(self) -> str:
        """The layer's class name (``"Conv"``, ``"Dense"``, ...)."""
        return type(self.layer).__name__

    @property
    def positions(self) -> int:
        """Output positions ``P`` (1 for a flat output)."""
        return math.prod(self.out_shape[:-1])


@dataclass
class SerialForward:
    """The record of one forward pass.

    Parameters
    ----------
    inputs, outputs : list of ndarray
        ``inputs[i]``, ``outputs[i]``: input and output of node ``i``, shapes
        ``(n, *node.in_shape)`` and ``(n, *node.out_shape)``. The output of a ``Dense`` or
        ``Conv`` node is its pre-activation ``h``.
    output : ndarray, shape (n, k)
        The network's output.
    """

    inputs: list
    outputs: list
    output: np.ndarray


# --------------------------------------------------------------------------- patch operations
def _spatial_slices(offset, extent):
    return tuple(slice(o, o + e) for o, e in zip(offset, extent))


def patches(node: Node, a) -> np.ndarray:
    """The patches ``P_p(a)`` of a ``Conv`` or ``Dense`` node, one row per output position.

    Parameters
    ----------
    node : Node
        A ``Conv`` or ``Dense`` node.
    a : ndarray, shape (n,) + node.in_shape
        The node's input.

    Returns
    -------
    ndarray, shape (n, P, fan_in)
        Row ``p`` of example ``x``: the kernel offsets (row-major) times the input channels
        (channel fastest), so that ``h = c patches @ W.reshape(fan_in, C_out)``.
    """
    n = a.shape[0]
    if node.kind != "Conv":
        return a.reshape(n, -1, a.shape[-1])
    spatial = len(node.window)
    if any(lo or hi for lo, hi in node.pad):
        a = np.pad(a, ((0, 0),) + tuple(node.pad) + ((0, 0),))
    view = sliding_window_view(a, node.window, axis=tuple(range(1, spatial + 1)))
    # view: (n, *out_spatial, C_in, *kernel) -> (n, *out_spatial, *kernel, C_in)
    order = (0,) + tuple(range(1, spatial + 1)) + tuple(range(spatial + 2, 2 * spatial + 2)) + (
        spatial + 1,)
    return np.ascontiguousarray(view.transpose(order)).reshape(n, node.positions, node.fan_in)


def _weight_matrix(node, W):
    """``(fan_in, C_out)`` with ``h = c patches @ matrix``."""
    return W.T if node.kind == "Dense" else W.reshape(node.fan_in, -1)


_CHUNK_BYTES = 2**24  # im2col patches per chunk of examples (16 MiB): bounded and in cache


def _chunks(rows, row_bytes):
    step = max(1, _CHUNK_BYTES // max(row_bytes, 1))
    return [(r, min(rows, r + step)) for r in range(0, rows, step)]


def _linear_forward(node, W, b, a):
    c, _, beta, _ = node.scales
    n = a.shape[0]
    if node.kind == "Dense":
        h = a @ W.T
    else:
        Wm = W.reshape(node.fan_in, -1)
        h = np.empty((n,) + node.out_shape, dtype=np.result_type(a, W))
        for r0, r1 in _chunks(n, node.positions * node.fan_in * a.itemsize):
            h[r0:r1] = (patches(node, a[r0:r1]).reshape(-1, node.fan_in) @ Wm).reshape(
                (r1 - r0,) + node.out_shape)
    if c != 1.0:
        h *= c
    if b is not None:
        h += beta * b
    return h


def _linear_backward_input(node, W, g):
    """``d/d a`` of ``<g, h(a)>`` for ``g`` of shape ``(M, *out_shape)``.

    For a convolution, the correlation of ``g`` (zero-padded by ``k - 1 - lo`` before and by
    what reaches the input's extent after) with the flipped kernel, transposed in its channels:
    ``d a_u = sum_o c W_o g_{u + lo - o}``, by im2col in chunks of examples and one GEMM each.
    """
    c = node.scales[0]
    if node.kind == "Dense":
        out = g @ W
        return out * c if c != 1.0 else out
    M = g.shape[0]
    d = len(node.window)
    c_in, c_out = node.in_shape[-1], node.out_shape[-1]
    in_spatial, out_spatial = node.in_shape[:-1], node.out_shape[:-1]
    pad = tuple((k - 1 - lo, s - o + lo) for k, (lo, _), s, o
                in zip(node.window, node.pad, in_spatial, out_spatial))
    flipped = np.flip(W, axis=tuple(range(d))).swapaxes(-1, -2).reshape(-1, c_in)
    if c != 1.0:
        flipped = flipped * c
    K = math.prod(node.window)
    P_in = math.prod(in_spatial)
    grad = np.empty((M,) + node.in_shape, dtype=np.result_type(g, W))
    order = (0,) + tuple(range(1, d + 1)) + tuple(range(d + 2, 2 * d + 2)) + (d + 1,)
    for r0, r1 in _chunks(M, P_in * K * c_out * g.itemsize):
        gp = np.pad(g[r0:r1], ((0, 0),) + pad + ((0, 0),))
        view = sliding_window_view(gp, node.window, axis=tuple(range(1, d + 1)))
        cols = np.ascontiguousarray(view.transpose(order)).reshape(-1, K * c_out)
        grad[r0:r1] = (cols @ flipped).reshape((r1 - r0,) + node.in_shape)
    return grad


def _pool_forward(node, a):
    spatial = len(node.window)
    view = sliding_window_view(a, node.window, axis=tuple(range(1, spatial + 1)))
    view = view[(slice(None),) + tuple(slice(None, None, s) for s in node.stride)]
    return view.mean(axis=tuple(range(-spatial, 0)))


def _pool_backward(node, g):
    M = g.shape[0]
    scale = 1.0 / math.prod(node.window)
    grad = np.zeros((M,) + node.in_shape, dtype=g.dtype)
    out_spatial = node.out_shape[:-1]
    for offset in itertools.product(*(range(k) for k in node.window)):
        index = tuple(slice(o, o + s * (e - 1) + 1, s)
                      for o, s, e in zip(offset, node.stride, out_spatial))
        grad[(slice(None),) + index] += g
    grad *= scale
    return grad


# --------------------------------------------------------------------------- the network
class SerialNetwork(ParameterListModel):
    """A serial network of :mod:`ntkdyn.base.layers` layers (module docstring).

    Frozen, hashable and printable; ``Network.serial(*layers, input_shape=...)`` builds one.

    Parameters
    ----------
    layers : sequence of ntkdyn.base.layers.Layer
        The layers, applied in order; the last output must be flat, ``(k,)``.
    input_shape : tuple of int
        One example's shape, channels last: ``(d,)``, ``(L, C)`` or ``(H, W, C)``.
    parameterization : {"ntk", "standard"}
        See :mod:`ntkdyn.base.layers`.
    """

    def __init__(self, layers, input_shape, parameterization="ntk"):
        if isinstance(layers, L.Layer):
            layers = (layers,)
        layers = tuple(layers)
        if not layers:
            raise ValueError("layers must hold at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, L.Layer):
                raise TypeError(f"layers[{i}] must be a layer from ntkdyn.layers (Dense, Conv, "
                                f"...), got {type(layer).__name__}")
        parameterization = one_of(parameterization, "parameterization", L.PARAMETERIZATIONS)
        shapes = L.infer_shapes(layers, input_shape)
        if len(shapes[-1]) != 1:
            raise ValueError(f"the last layer ({layers[-1]!r}) outputs shape {shapes[-1]} per "
                             "example; the network's output must be flat (k,): end with "
                             "GlobalAvgPool or Flatten and a Dense layer")
        nodes, weighted = [], []
        top = self._compile(layers, shapes[0], "layers", parameterization, nodes, weighted)
        n_weights = len(weighted)
        with_bias = [i for i in weighted if nodes[i].scales[2] != 0.0]
        for j, i in enumerate(with_bias):
            nodes[i] = _replace(nodes[i], bias=n_weights + j)
        for key, value in dict(layers=layers, input_shape=shapes[0], output_shape=shapes[-1],
                               parameterization=parameterization, nodes=tuple(nodes),
                               sequence=top, weighted=tuple(weighted)).items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_frozen", True)

    def _compile(self, layers, shape, prefix, parameterization, nodes, weighted):
        """Append the nodes of ``layers`` (pre-order) and return their top-level indices."""
        sequence = []
        for i, layer in enumerate(layers):
            path = f"{prefix}[{i}]"
            out = L.output_shape(layer, shape, path)
            index = len(nodes)
            sequence.append(index)
            if isinstance(layer, L.Residual):
                nodes.append(None)
                branch = self._compile(layer.branch, shape, f"{path}.branch", parameterization,
                                       nodes, weighted)
                proj = L.projection(layer, shape, out)
                skip = None
                if proj is not None:
                    skip = self._weighted_node(len(nodes), f"{path}.skip", proj, shape, out,
                                               parameterization, weighted)
                    nodes.append(skip)
                    skip = skip.index
                nodes[index] = Node(index, path, layer, shape, out, branch=tuple(branch),
                                    skip=skip)
            elif layer.has_weights:
                nodes.append(self._weighted_node(index, path, layer, shape, out,
                                                 parameterization, weighted))
            elif isinstance(layer, L.AvgPool):
                spatial = len(shape) - 1
                size = (layer.size,) * spatial if isinstance(layer.size, int) else layer.size
                stride = size if layer.stride is None else (
                    (layer.stride,) * spatial if isinstance(layer.stride, int) else layer.stride)
                nodes.append(Node(index, path, layer, shape, out, window=tuple(size),
                                  stride=tuple(stride)))
            else:
                nodes.append(Node(index, path, layer, shape, out))
            shape = out
        return tuple(sequence)

    @staticmethod
    def _weighted_node(index, path, layer, shape, out, parameterization, weighted):
        if isinstance(layer, L.Conv):
            spatial = len(shape) - 1
            window = (layer.kernel_size,) * spatial if isinstance(layer.kernel_size, int) \
                else tuple(layer.kernel_size)
            if layer.padding == "same":
                pad = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in window)
            else:
                pad = ((0, 0),) * spatial
            fan_in = math.prod(window) * shape[-1]
            weight_shape = window + (shape[-1], layer.out_channels)
        else:
            window, pad = (), ()
            fan_in = shape[-1]
            weight_shape = (layer.out, shape[-1])
        scales = L.weight_scales(layer.W_std, layer.b_std, fan_in, parameterization)
        weighted.append(index)
        return Node(index, path, layer, shape, out, number=len(weighted),
                    weight=len(weighted) - 1, scales=scales, fan_in=fan_in, window=window,
                    pad=pad, weight_shape=weight_shape)

    # ------------------------------------------------------------------ frozen, hashable
    def __setattr__(self, key, value):
        if getattr(self, "_frozen", False):
            raise AttributeError(f"SerialNetwork is frozen: cannot set {key!r}")
        object.__setattr__(self, key, value)

    def _key(self):
        return (self.layers, self.input_shape, self.parameterization)

    def __eq__(self, other):
        return isinstance(other, SerialNetwork) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return (f"SerialNetwork({inner}, input_shape={self.input_shape}, "
                f"parameterization={self.parameterization!r})")

    # ------------------------------------------------------------------ shapes
    @property
    def output_dim(self) -> int:
        """Number of outputs ``k``."""
        return self.output_shape[0]

    @property
    def depth(self) -> int:
        """Number of parameterised layers (weights ``W_1 ... W_L``)."""
        return len(self.weighted)

    @property
    def has_bias(self) -> bool:
        """Whether any layer has a bias."""
        return any(self.nodes[i].bias is not None for i in self.weighted)

    @property
    def parameterised(self) -> list[Node]:
        """The nodes with weights, in the order of their number ``l``."""
        return [self.nodes[i] for i in self.weighted]

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the parameter list: the weights, then the biases of the layers with one."""
        nodes = self.parameterised
        return ([node.weight_shape for node in nodes]
                + [(node.out_shape[-1],) for node in nodes if node.bias is not None])

    @property
    def param_names(self) -> list[str]:
        """``["W_1", ..., "W_L", "b_l", ...]``, in the order of the parameter list."""
        nodes = self.parameterised
        return ([f"W_{node.number}" for node in nodes]
                + [f"b_{node.number}" for node in nodes if node.bias is not None])

    @property
    def num_params(self) -> int:
        """Total number of scalar parameters."""
        return sum(math.prod(shape) for shape in self.param_shapes)

    def layer_scales(self) -> list[tuple[float, float, float, float]]:
        """``(c_l, s_l, beta_l, t_l)`` of every parameterised layer.

        Returns
        -------
        list of tuple of float
        """
        return [node.scales for node in self.parameterised]

    def weights(self, params) -> list[np.ndarray]:
        """``[W_1, ..., W_L]`` from a parameter list.

        Parameters
        ----------
        params : list of ndarray

        Returns
        -------
        list of ndarray
        """
        return list(params[:self.depth])

    def biases(self, params) -> list:
        """``b_l`` of every parameterised layer (``None`` where it has no bias).

        Parameters
        ----------
        params : list of ndarray

        Returns
        -------
        list of ndarray or None
        """
        return [None if node.bias is None else params[node.bias] for node in self.parameterised]

    # ------------------------------------------------------------------ parameters
    def init(self, seed=0, dtype=np.float64) -> list[np.ndarray]:
        """Draw ``W_l ~ N(0, s_l^2)``, then ``b_l ~ N(0, t_l^2)``, i.i.d. from ``seed``.

        Parameters
        ----------
        seed : int, list of int or numpy.random.Generator
        dtype : floating dtype

        Returns
        -------
        list of ndarray
            In the order of :attr:`param_names`.
        """
        dtype = check_float_dtype(dtype, "dtype")
        rng = as_generator(seed)
        nodes = self.parameterised
        params = [(node.scales[1] * rng.standard_normal(node.weight_shape)).astype(
            dtype, copy=False) for node in nodes]
        params += [(node.scales[3] * rng.standard_normal(node.out_shape[-1])).astype(
            dtype, copy=False) for node in nodes if node.bias is not None]
        return params

    def check_params(self, params, name: str = "params") -> list[np.ndarray]:
        """Validate a parameter list against :attr:`param_shapes` (real, finite floats).

        Parameters
        ----------
        params : list of ndarray
        name : str
            Name of the argument in error messages.

        Returns
        -------
        list of ndarray
        """
        names = self.param_names
        if not isinstance(params, (list, tuple)):
            raise TypeError(f"{name} must be a list of {len(names)} arrays ({', '.join(names)}), "
                            f"got {type(params).__name__}")
        if len(params) != len(names):
            raise ValueError(f"{name} must hold {len(names)} arrays ({', '.join(names)}), "
                             f"got {len(params)}")
        out = []
        for i, (W, shape, label) in enumerate(zip(params, self.param_shapes, names)):
            W = np.asarray(W)
            if W.shape != shape:
                raise ValueError(f"{name}[{i}] ({label}) must have shape {shape}, got {W.shape}")
            if not np.issubdtype(W.dtype, np.floating):
                raise TypeError(f"{name}[{i}] ({label}) must be a real floating array, got "
                                f"dtype {W.dtype}")
            if not np.all(np.isfinite(W)):
                raise ValueError(f"{name}[{i}] ({label}) must be finite (found NaN or inf)")
            out.append(W)
        return out

    def check_inputs(self, X, name: str = "X") -> np.ndarray:
        """Validate inputs of shape ``(n, *input_shape)`` (finite, at least one example).

        Parameters
        ----------
        X : array_like
        name : str
            Name of the argument in error messages.

        Returns
        -------
        ndarray
        """
        X = as_array(X, name, keep_float32=True)
        if X.ndim != 1 + len(self.input_shape) or X.shape[1:] != self.input_shape:
            raise ValueError(f"{name} must have shape (n, {', '.join(map(str, self.input_shape))})"
                             f" for input_shape {self.input_shape}, got {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one example")
        return X

    # ------------------------------------------------------------------ forward
    def forward(self, params, X) -> SerialForward:
        """Forward pass keeping every node's input and output.

        Parameters
        ----------
        params : list of ndarray
        X : array_like, shape (n,) + input_shape

        Returns
        -------
        SerialForward
        """
        params = self.check_params(params)
        X = self.check_inputs(X)
        inputs = [None] * len(self.nodes)
        outputs = [None] * len(self.nodes)
        out = self._forward(self.sequence, params, X, inputs, outputs)
        return SerialForward(inputs, outputs, out)

    def _forward(self, sequence, params, a, inputs, outputs):
        for i in sequence:
            node = self.nodes[i]
            inputs[i] = a
            a = self._node_forward(node, params, a, inputs, outputs)
            outputs[i] = a
        return a

    def _node_forward(self, node, params, a, inputs, outputs):
        layer = node.layer
        if node.weight is not None:
            b = None if node.bias is None else params[node.bias]
            return _linear_forward(node, params[node.weight], b, a)
        if isinstance(layer, L.Activation):
            return layer.fn.phi(a)
        if isinstance(layer, L.AvgPool):
            return _pool_forward(node, a)
        if isinstance(layer, L.GlobalAvgPool):
            return a.mean(axis=tuple(range(1, a.ndim - 1)))
        if isinstance(layer, L.Flatten):
            return a.reshape(a.shape[0], -1)
        # residual block
        branch = self._forward(node.branch, params, a, inputs, outputs)
        if node.skip is None:
            skip = a
        else:
            skip_node = self.nodes[node.skip]
            inputs[node.skip] = a
            skip = self._node_forward(skip_node, params, a, inputs, outputs)
            outputs[node.skip] = skip
        return skip + layer.branch_weight * branch

    # ------------------------------------------------------------------ backward
    def signals(self, params, forward: SerialForward, cotangents, keep=None) -> dict:
        """Back-propagate ``m`` cotangents of the output: ``d <v_j, f> / d (node output)``.

        Parameters
        ----------
        params : list of ndarray
        forward : SerialForward
            The record of ``forward(params, X)``.
        cotangents : array_like, shape (m, n, k)
            ``m`` output cotangents per example (e.g. the heads' unit vectors).
        keep : iterable of int, optional
            Node indices whose signals to return (default: the parameterised nodes).

        Returns
        -------
        dict
            ``{node index: ndarray of shape (m, n, *node.out_shape)}``.
        """
        g = np.asarray(cotangents)
        n = forward.output.shape[0]
        if g.shape[1:] != (n, self.output_dim) or g.ndim != 3:
            raise ValueError(f"cotangents must have shape (m, {n}, {self.output_dim}), "
                             f"got {g.shape}")
        keep = set(self.weighted if keep is None else keep)
        store = {}
        self._backward(self.sequence, params, forward, g, store, keep, None, top=True)
        return store

    def backward(self, params, forward: SerialForward, output_grad) -> list[np.ndarray]:
        """Vector-Jacobian product ``sum_x output_grad(x) . d f(x) / d theta`` per parameter.

        Parameters
        ----------
        params : list of ndarray
        forward : SerialForward
            The record of ``forward(params, X)``.
        output_grad : array_like, shape (n, k)

        Returns
        -------
        list of ndarray
            In the order of the parameter list.
        """
        g = np.asarray(output_grad)
        n = forward.output.shape[0]
        if g.shape != (n, self.output_dim):
            raise ValueError(f"output_grad must have shape ({n}, {self.output_dim}), "
                             f"got {g.shape}")
        grads = [None] * len(self.param_shapes)
        self._backward(self.sequence, params, forward, g[None], {}, (), grads, top=True)
        return grads

    def _backward(self, sequence, params, fwd, g, store, keep, grads, top=False):
        """Back-propagate ``g`` (shape ``(m, n, *shape)``) through ``sequence``.

        At the top level the input gradient of the first layer (the data's) is not computed.
        """
        for i in reversed(sequence):
            node = self.nodes[i]
            if i in keep:
                store[i] = g
            last = top and i == sequence[0] and node.weight is not None
            g = self._node_backward(node, params, fwd, g, store, keep, grads, not last)
        return g

    def _node_backward(self, node, params, fwd, g, store, keep, grads, need_input=True):
        layer = node.layer
        m, n = g.shape[:2]
        a = fwd.inputs[node.index]
        if node.weight is not None:
            W = params[node.weight]
            if grads is not None:  # m == 1: a vector-Jacobian product
                c, _, beta, _ = node.scales
                flat = g.reshape(n, node.positions, node.out_shape[-1])
                dW = np.zeros((node.fan_in, node.out_shape[-1]), dtype=flat.dtype)
                for r0, r1 in _chunks(n, node.positions * node.fan_in * a.itemsize):
                    dW += patches(node, a[r0:r1]).reshape(-1, node.fan_in).T @ flat[
                        r0:r1].reshape(-1, node.out_shape[-1])
                dW *= c
                flat = flat.reshape(-1, node.out_shape[-1])
                grads[node.weight] = dW.T if node.kind == "Dense" else dW.reshape(
                    node.weight_shape)
                if node.bias is not None:
                    grads[node.bias] = beta * flat.sum(axis=0)
            if not need_input:
                return None
            out = _linear_backward_input(node, W, g.reshape((m * n,) + node.out_shape))
            return out.reshape((m, n) + node.in_shape)
        if isinstance(layer, L.Activation):
            return g * layer.fn.dphi(a)
        if isinstance(layer, L.AvgPool):
            out = _pool_backward(node, g.reshape((m * n,) + node.out_shape))
            return out.reshape((m, n) + node.in_shape)
        if isinstance(layer, L.GlobalAvgPool):
            spatial = node.in_shape[:-1]
            shape = (m, n) + (1,) * len(spatial) + node.in_shape[-1:]
            return np.broadcast_to(g.reshape(shape) / math.prod(spatial),
                                   (m, n) + node.in_shape)
        if isinstance(layer, L.Flatten):
            return g.reshape((m, n) + node.in_shape)
        # residual block
        g_in = self._backward(node.branch, params, fwd, layer.branch_weight * g, store, keep,
                              grads)
        if node.skip is None:
            return g_in + g
        skip = self.nodes[node.skip]
        if node.skip in keep:
            store[node.skip] = g
        return g_in + self._node_backward(skip, params, fwd, g, store, keep, grads)

    # ------------------------------------------------------------------ infinite width
    def infinite_ntk(self, X, X2=None, per_layer=False):
        """Infinite-width NTK of one head: :func:`ntkdyn.theory.cntk.infinite_ntk`.

        Parameters
        ----------
        X : array_like, shape (n,) + input_shape
        X2 : array_like, shape (n2,) + input_shape, optional
        per_layer : bool
            Return ``{"W_l": K, "b_l": K}`` instead of the sum.

        Returns
        -------
        ndarray, shape (n, n2), or dict
        """
        from ..theory.cntk import infinite_ntk
        return infinite_ntk(self, X, X2, per_layer=per_layer)

    def infinite_nngp(self, X, X2=None):
        """Infinite-width NNGP of one head: :func:`ntkdyn.theory.cntk.infinite_nngp`.

        Parameters
        ----------
        X : array_like, shape (n,) + input_shape
        X2 : array_like, shape (n2,) + input_shape, optional

        Returns
        -------
        ndarray, shape (n, n2)
        """
        from ..theory.cntk import infinite_nngp
        return infinite_nngp(self, X, X2)


def _replace(node: Node, **changes) -> Node:
    from dataclasses import replace
    return replace(node, **changes)
