"""Layer descriptions of serial networks: pure data, validated, shared by theory and numerics.

A serial network is a sequence of layers applied to inputs of shape ``input_shape`` (channels
last): ``(d,)`` for vectors, ``(L, C)`` for 1-D signals and ``(H, W, C)`` for images. The
layers follow neural-tangents' ``stax`` (Novak et al. 2020) in their arguments and in the meaning
of ``W_std`` and ``b_std``:

* :class:`Dense` ``(out)``: an affine map of the last (channel) axis, applied at every position
  of a spatial input (a 1x1 convolution), ``fan_in`` = input channels;
* :class:`Conv` ``(out_channels, kernel_size, padding)``: a 1-D or 2-D correlation with stride 1,
  ``'same'`` (zero padding, output of the input's size; for an even kernel the extra zero is on
  the right/bottom, as in TensorFlow and ``stax``) or ``'valid'`` (no padding), ``fan_in`` =
  input channels x kernel positions;
* :class:`Activation` ``(name)``: a point-wise non-linearity of the registry
  (:mod:`ntkdyn.base.activations`);
* :class:`AvgPool` ``(size, stride=None)``: average over windows of ``size`` (``stride``
  defaults to ``size``: non-overlapping windows; ``stax.AvgPool`` defaults to stride 1), no
  padding;
* :class:`GlobalAvgPool`: the mean over all positions, ``(..., C) -> (C,)``;
* :class:`Flatten`: ``(..., C) -> (prod,)`` in row-major order;
* :class:`Residual` ``(*branch, branch_weight=1.0)``: ``skip(x) + branch_weight * branch(x)``,
  the skip being the identity when the branch keeps the channel count and a projection (a
  :class:`Dense`, i.e. a 1x1 convolution, with the residual's own ``W_std`` and ``b_std``)
  when it changes it (``project=True`` forces the projection, ``project=False`` forbids it).

Parameterization of a layer with weights (``Dense``, ``Conv``, a residual projection) and
``fan_in`` inputs per output (as ``stax``, and :class:`ntkdyn.numerics.networks.Network`):

* ``"ntk"``: ``h = (W_std / sqrt(fan_in)) omega * a + b_std beta``, ``omega, beta ~ N(0, 1)``;
* ``"standard"``: ``h = W * a + b``, ``W ~ N(0, W_std^2 / fan_in)``, ``b ~ N(0, b_std^2)``;

``*`` is the correlation (or matrix product). ``b_std = 0`` means no bias parameter at all.
:func:`weight_scales` returns the four numbers ``(c, s, beta, t)`` with
``h = c W * a + beta b``, ``W ~ N(0, s^2)``, ``b ~ N(0, t^2)``.

Shapes are checked before any work: :func:`infer_shapes` walks a layer sequence and raises a
``ValueError`` naming the layer (its position, e.g. ``layers[2].branch[0]``) and the shapes
(kernel larger than the input, a spatial layer on a flat input, a residual branch that changes
the spatial shape or the channel count with ``project=False``, an output that is not flat).
Imports numpy only (through :mod:`ntkdyn.base.validation` and the activation registry).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

from .activations import Activation as _Fn
from .activations import get_activation
from .validation import positive_float, positive_int

__all__ = [
    "PADDINGS",
    "PARAMETERIZATIONS",
    "Activation",
    "AvgPool",
    "Conv",
    "Dense",
    "Flatten",
    "GlobalAvgPool",
    "Layer",
    "Residual",
    "check_input_shape",
    "infer_shapes",
    "output_shape",
    "projection",
    "weight_scales",
]

PADDINGS = ("same", "valid")
PARAMETERIZATIONS = ("ntk", "standard")


def _stds(layer, W_std, b_std):
    name = type(layer).__name__
    object.__setattr__(layer, "W_std", positive_float(W_std, f"{name} W_std"))
    object.__setattr__(layer, "b_std", positive_float(b_std, f"{name} b_std", allow_zero=True))


def _window(value, name):
    """A positive int or a tuple of 1 or 2 positive ints (kept as given, ints as ints)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return positive_int(value, name)
    if not isinstance(value, (tuple, list)) or not 1 <= len(value) <= 2:
        raise TypeError(f"{name} must be a positive int or a tuple of 1 or 2 positive ints, "
                        f"got {value!r}")
    return tuple(positive_int(v, f"{name}[{i}]") for i, v in enumerate(value))


def _resolve_window(value, ndim, name, where):
    """``value`` as a tuple of ``ndim`` ints (an int applies to every spatial axis)."""
    if isinstance(value, int):
        return (value,) * ndim
    if len(value) != ndim:
        raise ValueError(f"{where}: {name} {value} has {len(value)} entries but the input has "
                         f"{ndim} spatial axes")
    return tuple(value)


class Layer:
    """Base class of the layer descriptions (frozen dataclasses; :func:`infer_shapes`)."""

    has_weights = False

    def _spec(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._spec()})"


@dataclass(frozen=True, repr=False)
class Dense(Layer):
    """Affine map of the last axis: ``(..., C_in) -> (..., out)`` (``stax.Dense``).

    Parameters
    ----------
    out : int
        Output features (channels).
    W_std : float
        Weight standard deviation (``> 0``), see the module docstring.
    b_std : float
        Bias standard deviation (``>= 0``; ``0``: no bias parameter).
    """

    out: int
    W_std: float = 1.0
    b_std: float = 0.0
    has_weights = True

    def __post_init__(self):
        object.__setattr__(self, "out", positive_int(self.out, "Dense out"))
        _stds(self, self.W_std, self.b_std)

    def _spec(self) -> str:
        return f"{self.out}, W_std={self.W_std:g}, b_std={self.b_std:g}"


@dataclass(frozen=True, repr=False)
class Conv(Layer):
    """Correlation with stride 1 over 1 or 2 spatial axes (``stax.Conv``), channels last.

    ``h_p = c sum_o W_o^T a_{p+o} + beta b`` over kernel offsets ``o``; the weight has shape
    ``(*kernel, C_in, out_channels)``.

    Parameters
    ----------
    out_channels : int
        Output channels.
    kernel_size : int or tuple of int
        Kernel extent per spatial axis (an int: the same on every axis).
    padding : {"same", "valid"}
        ``"same"``: zero padding, output of the input's spatial shape; ``"valid"``: none.
        Upper-case ``"SAME"``/``"VALID"`` (``stax``) are accepted.
    W_std : float
        Weight standard deviation (``> 0``).
    b_std : float
        Bias standard deviation (``>= 0``; ``0``: no bias parameter).
    """

    out_channels: int
    kernel_size: int | tuple = 3
    padding: str = "same"
    W_std: float = 1.0
    b_std: float = 0.0
    has_weights = True

    def __post_init__(self):
        object.__setattr__(self, "out_channels",
                           positive_int(self.out_channels, "Conv out_channels"))
        object.__setattr__(self, "kernel_size", _window(self.kernel_size, "Conv kernel_size"))
        if not isinstance(self.padding, str) or self.padding.lower() not in PADDINGS:
            raise ValueError(f"Conv padding must be one of {list(PADDINGS)}, "
                             f"got {self.padding!r}")
        object.__setattr__(self, "padding", self.padding.lower())
        _stds(self, self.W_std, self.b_std)

    def _spec(self) -> str:
        return (f"{self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding!r}, W_std={self.W_std:g}, b_std={self.b_std:g}")


@dataclass(frozen=True, repr=False)
class Activation(Layer):
    """Point-wise non-linearity ``phi`` (``stax.Relu``, ``stax.Erf``, ...).

    Parameters
    ----------
    name : str or ntkdyn.base.activations.Activation
        A name from ``ntkdyn.base.activations.ACTIVATIONS`` or an activation object.
    """

    name: str | _Fn
    fn: _Fn = field(init=False, compare=False)

    def __post_init__(self):
        fn = get_activation(self.name, "Activation name")
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "name", fn.name)

    def __eq__(self, other):
        return isinstance(other, Activation) and self.fn == other.fn

    def __hash__(self):
        return hash(("Activation", self.fn))

    def _spec(self) -> str:
        return repr(self.fn.name)


@dataclass(frozen=True, repr=False)
class AvgPool(Layer):
    """Average over windows of ``size`` positions, no padding (``stax.AvgPool``).

    Parameters
    ----------
    size : int or tuple of int
        Window extent per spatial axis.
    stride : int, tuple of int or None
        Step between windows; ``None``: ``size`` (non-overlapping windows; note ``stax``'s
        default is 1).
    """

    size: int | tuple
    stride: int | tuple | None = None

    def __post_init__(self):
        object.__setattr__(self, "size", _window(self.size, "AvgPool size"))
        if self.stride is not None:
            object.__setattr__(self, "stride", _window(self.stride, "AvgPool stride"))

    def _spec(self) -> str:
        return f"{self.size}" + ("" if self.stride is None else f", stride={self.stride}")


@dataclass(frozen=True, repr=False)
class GlobalAvgPool(Layer):
    """Mean over every spatial position: ``(..., C) -> (C,)`` (``stax.GlobalAvgPool``)."""


@dataclass(frozen=True, repr=False)
class Flatten(Layer):
    """Row-major flattening ``(..., C) -> (prod,)`` (``stax.Flatten``)."""


@dataclass(frozen=True, init=False, repr=False)
class Residual(Layer):
    """``skip(x) + branch_weight * branch(x)``: a residual block (``stax`` ``FanOut`` /
    ``parallel`` / ``FanInSum``).

    The branch must keep the spatial shape. The skip is the identity when the branch keeps the
    channel count, else a projection: a :class:`Dense` (a 1x1 convolution) to the branch's
    channels with this block's ``W_std`` and ``b_std``.

    Parameters
    ----------
    *branch : Layer
        The branch's layers, applied in order (at least one).
    branch_weight : float
        Multiplier of the branch (``> 0``; not trained).
    W_std, b_std : float
        Standard deviations of the projection (used only when there is one).
    project : bool or None
        ``None``: project exactly when the channel count changes; ``True``: always project;
        ``False``: never (a channel change is then an error).
    """

    branch: tuple
    branch_weight: float
    W_std: float
    b_std: float
    project: bool | None

    def __init__(self, *branch, branch_weight=1.0, W_std=1.0, b_std=0.0, project=None):
        if not branch:
            raise ValueError("Residual needs at least one branch layer")
        for i, layer in enumerate(branch):
            if not isinstance(layer, Layer):
                raise TypeError(f"Residual branch[{i}] must be a layer (Dense, Conv, ...), "
                                f"got {type(layer).__name__}")
        if project is not None and not isinstance(project, bool):
            raise TypeError(f"Residual project must be None, True or False, got {project!r}")
        object.__setattr__(self, "branch", tuple(branch))
        object.__setattr__(self, "branch_weight",
                           positive_float(branch_weight, "Residual branch_weight"))
        object.__setattr__(self, "project", project)
        _stds(self, W_std, b_std)

    def _spec(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.branch)
        extra = "" if self.project is None else f", project={self.project}"
        return (f"{inner}, branch_weight={self.branch_weight:g}, W_std={self.W_std:g}, "
                f"b_std={self.b_std:g}{extra}")


# --------------------------------------------------------------------------- shapes
def check_input_shape(input_shape) -> tuple[int, ...]:
    """Validate an input shape: 1 to 3 positive ints, channels last.

    Parameters
    ----------
    input_shape : tuple of int
        ``(d,)``, ``(L, C)`` or ``(H, W, C)``.

    Returns
    -------
    tuple of int
    """
    if isinstance(input_shape, numbers.Integral) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    if not isinstance(input_shape, (tuple, list)) or not 1 <= len(input_shape) <= 3:
        raise ValueError(f"input_shape must be (d,), (L, C) or (H, W, C), got {input_shape!r}")
    return tuple(positive_int(s, f"input_shape[{i}]") for i, s in enumerate(input_shape))


def projection(block: Residual, in_shape, branch_shape) -> Dense | None:
    """The skip projection of a residual block (``None``: identity skip).

    Parameters
    ----------
    block : Residual
    in_shape, branch_shape : tuple of int
        Shapes of the block's input and of its branch's output.

    Returns
    -------
    Dense or None
    """
    if block.project or (block.project is None and branch_shape[-1] != in_shape[-1]):
        return Dense(branch_shape[-1], W_std=block.W_std, b_std=block.b_std)
    return None


def output_shape(layer: Layer, in_shape, where: str = "layer") -> tuple[int, ...]:
    """The output shape of ``layer`` on inputs of shape ``in_shape`` (one example).

    Parameters
    ----------
    layer : Layer
    in_shape : tuple of int
        Channels last.
    where : str
        The layer's position, named in error messages.

    Returns
    -------
    tuple of int
    """
    in_shape = tuple(in_shape)
    spatial = in_shape[:-1]
    what = f"{where} ({layer!r})"
    if isinstance(layer, Dense):
        return spatial + (layer.out,)
    if isinstance(layer, (Activation, Flatten)):
        return in_shape if isinstance(layer, Activation) else (math.prod(in_shape),)
    if isinstance(layer, (Conv, AvgPool, GlobalAvgPool)) and not spatial:
        raise ValueError(f"{what} needs a spatial input (L, C) or (H, W, C), got shape "
                         f"{in_shape}")
    if isinstance(layer, Conv):
        kernel = _resolve_window(layer.kernel_size, len(spatial), "kernel_size", what)
        if any(k > s for k, s in zip(kernel, spatial)):
            raise ValueError(f"{what}: kernel {kernel} is larger than its input's spatial shape "
                             f"{spatial} (input shape {in_shape})")
        out = spatial if layer.padding == "same" else tuple(
            s - k + 1 for s, k in zip(spatial, kernel))
        return out + (layer.out_channels,)
    if isinstance(layer, AvgPool):
        size = _resolve_window(layer.size, len(spatial), "size", what)
        stride = size if layer.stride is None else _resolve_window(
            layer.stride, len(spatial), "stride", what)
        if any(k > s for k, s in zip(size, spatial)):
            raise ValueError(f"{what}: window {size} is larger than its input's spatial shape "
                             f"{spatial} (input shape {in_shape})")
        return tuple((s - k) // t + 1 for s, k, t in zip(spatial, size, stride)) + in_shape[-1:]
    if isinstance(layer, GlobalAvgPool):
        return in_shape[-1:]
    if isinstance(layer, Residual):
        shape = in_shape
        for i, inner in enumerate(layer.branch):
            shape = output_shape(inner, shape, f"{where}.branch[{i}]")
        if shape[:-1] != spatial or len(shape) != len(in_shape):
            raise ValueError(f"{what}: the branch maps shape {in_shape} to {shape}; a residual "
                             "branch must keep the spatial shape")
        if layer.project is False and shape[-1] != in_shape[-1]:
            raise ValueError(f"{what}: mismatched channel counts, the branch maps {in_shape[-1]} "
                             f"channels to {shape[-1]} and project=False forbids a projection")
        return shape
    raise TypeError(f"{where} must be a layer (Dense, Conv, Activation, AvgPool, GlobalAvgPool, "
                    f"Flatten or Residual), got {type(layer).__name__}")


def infer_shapes(layers, input_shape) -> list[tuple[int, ...]]:
    """Shapes after every top-level layer, checking each against its input.

    Parameters
    ----------
    layers : sequence of Layer
    input_shape : tuple of int
        Channels last (:func:`check_input_shape`).

    Returns
    -------
    list of tuple of int
        ``[input_shape, shape after layers[0], ...]``.
    """
    shapes = [check_input_shape(input_shape)]
    for i, layer in enumerate(layers):
        shapes.append(output_shape(layer, shapes[-1], f"layers[{i}]"))
    return shapes


def weight_scales(W_std: float, b_std: float, fan_in: int,
                  parameterization: str) -> tuple[float, float, float, float]:
    """``(c, s, beta, t)`` of ``h = c W * a + beta b``, ``W ~ N(0, s^2)``, ``b ~ N(0, t^2)``.

    Parameters
    ----------
    W_std, b_std : float
        The layer's standard deviations (module docstring).
    fan_in : int
        Inputs per output unit (channels x kernel positions).
    parameterization : {"ntk", "standard"}

    Returns
    -------
    tuple of float
        ``"ntk"``: ``(W_std / sqrt(fan_in), 1, b_std, 1)``; ``"standard"``:
        ``(1, W_std / sqrt(fan_in), 1, b_std)``; ``beta = t = 0`` when ``b_std = 0``.
    """
    root = math.sqrt(fan_in)
    if parameterization == "ntk":
        c, s, beta, t = W_std / root, 1.0, b_std, 1.0
    elif parameterization == "standard":
        c, s, beta, t = 1.0, W_std / root, 1.0, b_std
    else:
        raise ValueError(f"parameterization must be one of {list(PARAMETERIZATIONS)}, "
                         f"got {parameterization!r}")
    if b_std == 0:
        beta = t = 0.0
    return c, s, beta, t
