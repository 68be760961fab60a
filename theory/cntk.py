"""Infinite-width NNGP and NTK of serial networks: CNNs with pooling (the CNTK) and ResNets.

A serial network description (duck-typed: ``ntkdyn.numerics.serial.SerialNetwork`` or any
object with ``layers``, ``input_shape`` and ``parameterization``; the theory layer never imports
the numerics) is a sequence of :mod:`ntkdyn.base.layers` layers. As the channel counts (and
widths) grow, every channel of every pre-activation is a Gaussian process over inputs and
positions, independent across channels, and the tangent kernel converges (Arora et al. 2019,
"On exact computation with an infinitely wide neural net", sec. 4 and appendix; Novak et al.
2019; neural-tangents' ``stax``). The recursion tracks, for inputs ``x, x'`` and positions
``p, q``,

    Sigma(x, x')_{pq} = E[a_p(x) a_q(x')]            (one channel; a second moment),
    Theta(x, x')_{pq} = <d a_p(x) / d theta, d a_q(x') / d theta>,

and the variances ``Sigma(x, x)_{pp}``. Starting from ``Sigma_{pq} = x_p . x'_q / C`` (the mean
over the input channels) and ``Theta = 0``, with ``(c, s, beta, t)`` of
:func:`ntkdyn.base.layers.weight_scales` and ``C_in`` input channels:

* ``Conv`` (offsets ``o`` of the kernel, zero padding: a position outside the input adds
  nothing) and ``Dense`` (one offset; on a flat input the sum over units is ``fan_in`` times
  their mean)::

      Sigma'_{pq} = c^2 s^2 C_in sum_o Sigma_{p+o, q+o} + beta^2 t^2,
      Theta'_{pq} = c^2 C_in sum_o Sigma_{p+o, q+o}  [W]  + beta^2  [b]
                    + c^2 s^2 C_in sum_o Theta_{p+o, q+o};

* ``Activation`` ``phi`` (the dual kernels of :mod:`ntkdyn.theory.dual_kernels`: closed forms
  for ReLU, erf, GELU, sin, ABReLU and linear, Gaussian quadrature for any other)::

      Sigma'_{pq} = E[phi(u) phi(v)],   Theta'_{pq} = E[phi'(u) phi'(v)] Theta_{pq},
      (u, v) ~ N(0, [[Sigma(x, x)_{pp}, Sigma_{pq}], [., Sigma(x', x')_{qq}]]);

* ``AvgPool`` (window ``w``, stride ``r``): both kernels become
  ``mean_{o, o'} K_{r p + o, r q + o'}``; ``GlobalAvgPool``: ``mean_{p, q} K_{pq}`` (the CNTK-GAP
  of Arora et al. 2019); ``Flatten``: the diagonal ``K_{pp}`` (distinct positions become
  distinct units, and a following ``Dense`` averages over them);
* ``Residual`` ``skip(x) + alpha branch(x)`` (Yang & Schoenholz 2017; Huang et al. 2020): both
  kernels are ``K_skip + alpha^2 K_branch``, where the skip is the identity (the input's
  kernels) or a projection (a ``Dense`` layer). The cross terms vanish because the branch ends
  with a weight layer whose weights are independent of everything else and have mean zero
  (required: a branch ending otherwise is refused).

An activation needs a zero-mean Gaussian input: the output of a ``Dense`` or ``Conv`` layer,
possibly pooled, flattened or summed with another such one in a residual block (an activation
applied to the data itself, or to a residual sum whose skip carries a post-activation, is
refused with an error naming the layer).

The kernels are those of one output head (every head of a final ``Dense`` layer has the same
kernel; for any other final layer the mean over the heads): the empirical NTK with ``k`` heads
summed converges to ``k`` times :func:`infinite_ntk`. In the NTK parameterization the channel
counts cancel; in the standard one ``Theta`` keeps the factors ``C_in`` of the finite network
(as :mod:`ntkdyn.theory.infinite_width` does for MLPs). ``per_layer=True`` splits the NTK into
the terms ``"W_l"``, ``"b_l"`` of the parameterised layers, numbered as in
``SerialNetwork.param_names`` (pre-order, a residual projection after its branch): each term is
created by its layer and propagated linearly by the later ones, and the terms sum to the NTK.

The recursion runs on blocks of input pairs (``(b, b2, P, P)`` arrays for ``P`` positions), so
memory is bounded by ``block_bytes``; with ``X2=None`` only the upper blocks are computed.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..base import layers as L
from ..base.validation import as_array, one_of, positive_int
from .dual_kernels import DEFAULT_ORDER, gaussian_expectations, second_moments

__all__ = ["infinite_nngp", "infinite_ntk", "layer_names", "serial_kernels"]

_BLOCK_BYTES = 2**28  # default memory of one block pair's arrays (256 MiB)


# --------------------------------------------------------------------------- description
def _check_net(net):
    missing = [a for a in ("layers", "input_shape", "parameterization") if not hasattr(net, a)]
    if missing:
        raise TypeError(f"net must describe a serial network (an ntkdyn SerialNetwork or an "
                        f"object with layers, input_shape and parameterization); "
                        f"{type(net).__name__} lacks {', '.join(missing)}")
    layers = tuple(net.layers)
    parameterization = one_of(net.parameterization, "net.parameterization",
                              L.PARAMETERIZATIONS)
    shapes = L.infer_shapes(layers, net.input_shape)
    if len(shapes[-1]) != 1:
        raise ValueError(f"the network's output must be flat (k,), got shape {shapes[-1]}")
    return layers, shapes[0], parameterization


def layer_names(net) -> list[str]:
    """Keys of :func:`infinite_ntk` with ``per_layer=True``: ``["W_1", "b_1", "W_2", ...]``.

    Parameters
    ----------
    net : serial network description
        An object with ``layers``, ``input_shape`` and ``parameterization``.

    Returns
    -------
    list of str
        ``b_l`` only for layers with ``b_std > 0``.
    """
    layers, shape, _ = _check_net(net)
    names = []

    def walk(seq, shape):
        for layer in seq:
            out = L.output_shape(layer, shape)
            if isinstance(layer, L.Residual):
                walk(layer.branch, shape)
                proj = L.projection(layer, shape, out)
                if proj is not None:
                    add(proj)
            elif layer.has_weights:
                add(layer)
            shape = out

    def add(layer):
        number = sum(name.startswith("W_") for name in names) + 1
        names.append(f"W_{number}")
        if layer.b_std > 0:
            names.append(f"b_{number}")

    walk(layers, shape)
    return names


# --------------------------------------------------------------------------- pair tensors
class _State:
    """Kernels of one block pair: ``cross`` ``(b, b2, *S, *S)`` or ``(b, b2, U)``, the self
    second moments ``self1``/``self2`` (``(b, *S, *S)`` or the variances ``(b, U)``), the NTK
    terms (cross-shaped) and whether the layer's output is a zero-mean Gaussian process."""

    def __init__(self, spatial, cross, self1, self2, theta, gaussian):
        self.spatial = spatial  # tuple of spatial extents, () for a flat state
        self.cross, self.self1, self.self2 = cross, self1, self2
        self.theta = theta  # dict name -> array, or None for the NNGP alone
        self.gaussian = gaussian


def _pair_conv(T, lead, window, pad, out_spatial):
    """``sum_o T_{p+o, q+o}`` over the kernel offsets ``o`` (zero padding ``pad``)."""
    if any(lo or hi for lo, hi in pad):
        T = np.pad(T, ((0, 0),) * lead + tuple(pad) * 2)
    out = np.zeros(T.shape[:lead] + tuple(out_spatial) * 2)
    for offset in itertools.product(*(range(k) for k in window)):
        sl = tuple(slice(o, o + e) for o, e in zip(offset, out_spatial))
        out += T[(slice(None),) * lead + sl + sl]
    return out


def _pool_axes(T, first, window, stride):
    """Mean over windows along the ``len(window)`` axes starting at ``first``."""
    d = len(window)
    view = sliding_window_view(T, window, axis=tuple(range(first, first + d)))
    view = view[(slice(None),) * first + tuple(slice(None, None, r) for r in stride)]
    return view.mean(axis=tuple(range(-d, 0)))


def _pair_pool(T, lead, window, stride):
    d = len(window)
    return _pool_axes(_pool_axes(T, lead, window, stride), lead + d, window, stride)


def _pair_diagonal(T, lead, spatial):
    """``T_{pp}`` of a pair tensor: ``(lead..., P)``."""
    P = math.prod(spatial)
    flat = T.reshape(T.shape[:lead] + (P, P))
    return np.diagonal(flat, axis1=-2, axis2=-1).copy()


def _self_variances(state, which):
    """``Sigma(x, x)_{pp}``: ``(b, *S)`` (spatial) or ``(b, U)`` (flat)."""
    S = state.self1 if which == 1 else state.self2
    if not state.spatial:
        return S
    return _pair_diagonal(S, 1, state.spatial).reshape((S.shape[0],) + state.spatial)


# --------------------------------------------------------------------------- layers
def _weight_layer(state, layer, in_shape, out_shape, parameterization, number, where):
    """``Dense`` or ``Conv``: the new state, with the layer's ``W``/``b`` terms added."""
    c_in = in_shape[-1]
    if isinstance(layer, L.Conv):
        d = len(in_shape) - 1
        window = (layer.kernel_size,) * d if isinstance(layer.kernel_size, int) \
            else tuple(layer.kernel_size)
        pad = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in window) \
            if layer.padding == "same" else ((0, 0),) * d
        fan_in = math.prod(window) * c_in
    else:
        window, pad, fan_in = None, None, c_in
    c, s, beta, t = L.weight_scales(layer.W_std, layer.b_std, fan_in, parameterization)
    a_w = c * c * c_in            # weight-gradient term per summed offset
    a_s = c * c * s * s * c_in    # forward and back-propagation factor
    sigma_b, theta_b = beta * beta * t * t, beta * beta
    spatial_out = tuple(out_shape[:-1])

    if state.spatial:
        if window is None:  # a Dense layer at every position: one offset
            def op(T, lead):
                return T
        else:
            def op(T, lead):
                return _pair_conv(T, lead, window, pad, spatial_out)
        cross = op(state.cross, 2)
        self1 = op(state.self1, 1)
        self2 = self1 if state.self2 is state.self1 else op(state.self2, 1)
    else:
        # flat: the sum over fan_in units is c_in times the mean over the unit groups
        def op(T, lead):
            return T.mean(axis=-1, keepdims=True)
        cross = op(state.cross, 2)
        self1 = op(state.self1, 1)
        self2 = self1 if state.self2 is state.self1 else op(state.self2, 1)
    theta = None
    if state.theta is not None:
        theta = {name: a_s * op(T, 2) for name, T in state.theta.items()}
        if "all" in theta:
            theta["all"] += a_w * cross
            if theta_b:
                theta["all"] += theta_b
        else:
            theta[f"W_{number}"] = a_w * cross
            if layer.b_std > 0:
                theta[f"b_{number}"] = np.full(cross.shape, theta_b)
    out = []
    for K in (cross, self1, self2):
        K = K * a_s
        if sigma_b:
            K += sigma_b
        out.append(K)
    if state.self2 is state.self1:
        out[2] = out[1]
    return _State(spatial_out if state.spatial else (), out[0], out[1], out[2], theta, True)


def _activation(state, layer, method, order, where):
    if not state.gaussian:
        raise ValueError(f"{where} ({layer!r}): the infinite-width recursion needs a zero-mean "
                         "Gaussian input to an activation (the output of a Dense or Conv layer, "
                         "possibly pooled, flattened or summed with another in a residual "
                         "block); this input is the data or carries a post-activation")
    act = layer.fn
    v1, v2 = _self_variances(state, 1), _self_variances(state, 2)
    derivative = state.theta is not None
    if state.spatial:
        d = len(state.spatial)
        ones = (1,) * d
        b, b2 = v1.shape[0], v2.shape[0]
        e_phi, e_dphi = gaussian_expectations(
            act, state.cross, v1.reshape((b, 1) + state.spatial + ones),
            v2.reshape((1, b2) + ones + state.spatial), derivative, method, order)
        self1 = gaussian_expectations(act, state.self1, v1.reshape((b,) + state.spatial + ones),
                                      v1.reshape((b,) + ones + state.spatial), False, method,
                                      order)[0]
        if state.self2 is state.self1:
            self2 = self1
        else:
            self2 = gaussian_expectations(act, state.self2,
                                          v2.reshape((b2,) + state.spatial + ones),
                                          v2.reshape((b2,) + ones + state.spatial), False,
                                          method, order)[0]
    else:
        e_phi, e_dphi = gaussian_expectations(act, state.cross, v1[:, None, :], v2[None, :, :],
                                              derivative, method, order)
        self1 = second_moments(act, v1, False, method, order)[0]
        self2 = self1 if state.self2 is state.self1 else second_moments(
            act, v2, False, method, order)[0]
    theta = None if state.theta is None else {
        name: T * e_dphi for name, T in state.theta.items()}
    return _State(state.spatial, e_phi, self1, self2, theta, False)


def _linear_map(state, fn_cross, fn_self, spatial, gaussian=None):
    """Apply a linear map of the pair tensors (pooling, flattening) to every kernel."""
    self1 = fn_self(state.self1)
    self2 = self1 if state.self2 is state.self1 else fn_self(state.self2)
    theta = None if state.theta is None else {
        name: fn_cross(T) for name, T in state.theta.items()}
    return _State(spatial, fn_cross(state.cross), self1, self2, theta,
                  state.gaussian if gaussian is None else gaussian)


def _run(seq, state, shape, parameterization, counter, method, order, prefix):
    for i, layer in enumerate(seq):
        where = f"{prefix}[{i}]"
        out = L.output_shape(layer, shape, where)
        if isinstance(layer, (L.Dense, L.Conv)):
            counter[0] += 1
            state = _weight_layer(state, layer, shape, out, parameterization, counter[0], where)
        elif isinstance(layer, L.Activation):
            state = _activation(state, layer, method, order, where)
        elif isinstance(layer, L.AvgPool):
            d = len(shape) - 1
            window = (layer.size,) * d if isinstance(layer.size, int) else tuple(layer.size)
            stride = window if layer.stride is None else (
                (layer.stride,) * d if isinstance(layer.stride, int) else tuple(layer.stride))
            state = _linear_map(state, lambda T: _pair_pool(T, 2, window, stride),
                                lambda T: _pair_pool(T, 1, window, stride), tuple(out[:-1]))
        elif isinstance(layer, L.GlobalAvgPool):
            d = len(shape) - 1
            state = _linear_map(state,
                                lambda T: T.mean(axis=tuple(range(2, 2 + 2 * d)))[..., None],
                                lambda T: T.mean(axis=tuple(range(1, 1 + 2 * d)))[..., None],
                                ())
        elif isinstance(layer, L.Flatten):
            if state.spatial:
                sp = state.spatial
                state = _linear_map(state, lambda T: _pair_diagonal(T, 2, sp),
                                    lambda T: _pair_diagonal(T, 1, sp), ())
        else:
            state = _residual(state, layer, shape, out, parameterization, counter, method,
                              order, where)
        shape = out
    return state


def _residual(state, layer, shape, out, parameterization, counter, method, order, where):
    if not isinstance(layer.branch[-1], (L.Dense, L.Conv)):
        raise ValueError(f"{where} ({layer!r}): the infinite-width kernel of a residual block "
                         "needs its branch to end with a Dense or Conv layer (zero-mean "
                         f"weights make the skip and the branch uncorrelated), got "
                         f"{layer.branch[-1]!r}")
    branch = _run(layer.branch, state, shape, parameterization, counter, method, order,
                  f"{where}.branch")
    proj = L.projection(layer, shape, out)
    if proj is None:
        skip = state
    else:
        counter[0] += 1
        skip = _weight_layer(state, proj, shape, out, parameterization, counter[0],
                             f"{where}.skip")
    a2 = layer.branch_weight ** 2
    theta = None
    if state.theta is not None:
        theta = {}
        for name in list(skip.theta) + [n for n in branch.theta if n not in skip.theta]:
            T = skip.theta.get(name)
            B = branch.theta.get(name)
            theta[name] = (0.0 if T is None else T) + (0.0 if B is None else a2 * B)
    self1 = skip.self1 + a2 * branch.self1
    self2 = self1 if state.self2 is state.self1 else skip.self2 + a2 * branch.self2
    return _State(state.spatial, skip.cross + a2 * branch.cross, self1, self2, theta,
                  skip.gaussian and branch.gaussian)


# --------------------------------------------------------------------------- driver
def _initial(X, X2, spatial, ntk, per_layer):
    """Second moments of the data per channel: ``x_p . x'_q / C`` (the mean over channels)."""
    b, b2 = X.shape[0], X2.shape[0]
    C = X.shape[-1]
    if spatial:
        P = math.prod(spatial)
        A = X.reshape(b * P, C)
        B = X2.reshape(b2 * P, C)
        cross = (A @ B.T / C).reshape(b, P, b2, P).transpose(0, 2, 1, 3).reshape(
            (b, b2) + spatial * 2)
        if X2 is X:  # the pair diagonal, bitwise (so that correlations there are exactly 1)
            self1 = self2 = np.einsum("ii...->i...", cross).copy()
        else:
            self1, self2 = ((np.matmul(Z.reshape(-1, P, C), Z.reshape(-1, P, C).transpose(
                0, 2, 1)) / C).reshape((Z.shape[0],) + spatial * 2) for Z in (X, X2))
    else:
        cross = (X @ X2.T / C)[..., None]
        if X2 is X:
            self1 = self2 = np.einsum("ii...->i...", cross).copy()
        else:
            self1, self2 = (np.einsum("ij,ij->i", Z, Z)[:, None] / C for Z in (X, X2))
    theta = None
    if ntk:
        theta = {} if per_layer else {"all": np.zeros(cross.shape)}
    return _State(spatial, cross, self1, self2, theta, False)


def _check_inputs(X, X2, input_shape):
    def check(A, name):
        A = as_array(A, name)
        if A.shape[1:] != tuple(input_shape) or A.ndim != 1 + len(input_shape):
            raise ValueError(f"{name} must have shape (n, {', '.join(map(str, input_shape))}) "
                             f"for input_shape {tuple(input_shape)}, got {A.shape}")
        if A.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one example")
        return A
    return check(X, "X"), (None if X2 is None else check(X2, "X2"))


def serial_kernels(net, X, X2=None, ntk=True, per_layer=False, method="auto",
                   order=DEFAULT_ORDER, block_bytes=None):
    """The NNGP or the NTK of a serial network at infinite width (module docstring).

    Parameters
    ----------
    net : serial network description
        An object with ``layers``, ``input_shape`` and ``parameterization``.
    X : array_like, shape (n,) + net.input_shape
    X2 : array_like, shape (n2,) + net.input_shape, optional
        ``None``: ``X`` (symmetric; only the upper blocks are computed).
    ntk : bool
        The NTK (``True``) or the NNGP.
    per_layer : bool
        With ``ntk``: the terms ``{"W_l": K, "b_l": K}`` instead of their sum.
    method : {"auto", "closed", "quadrature"}
        Dual kernels (:func:`ntkdyn.theory.dual_kernels.gaussian_expectations`).
    order : int
        Quadrature order.
    block_bytes : int, optional
        Memory of one block pair's arrays (default 256 MiB).

    Returns
    -------
    ndarray, shape (n, n2), or dict
    """
    layers, input_shape, parameterization = _check_net(net)
    one_of(method, "method", ("auto", "closed", "quadrature"))
    if not isinstance(per_layer, (bool, np.bool_)):
        raise TypeError(f"per_layer must be a bool, got {per_layer!r}")
    per_layer = bool(per_layer) and bool(ntk)
    block_bytes = _BLOCK_BYTES if block_bytes is None else positive_int(block_bytes,
                                                                        "block_bytes")
    X, X2 = _check_inputs(X, X2, input_shape)
    symmetric = X2 is None
    Y = X if symmetric else X2
    n, n2 = X.shape[0], Y.shape[0]
    spatial = tuple(input_shape[:-1])
    P = math.prod(spatial) if spatial else 1
    names = layer_names(net) if per_layer else None
    live = 6 + (len(names) if per_layer else 1)
    b = max(1, int(math.sqrt(block_bytes / (8.0 * P * P * live))))
    keys = names if per_layer else ["all"]
    out = {name: np.empty((n, n2)) for name in keys} if ntk else {"nngp": np.empty((n, n2))}
    for r0 in range(0, n, b):
        r1 = min(n, r0 + b)
        for s0 in range(r0 if symmetric else 0, n2, b):
            s1 = min(n2, s0 + b)
            A = X[r0:r1]
            B = A if (symmetric and s0 == r0) else Y[s0:s1]
            state = _initial(A, B, spatial, ntk, per_layer)
            state = _run(layers, state, input_shape, parameterization, [0], method, order,
                         "layers")
            if ntk:
                blocks = {name: state.theta.get(name) for name in keys}
            else:
                blocks = {"nngp": state.cross}
            for name, K in blocks.items():
                value = np.zeros((r1 - r0, s1 - s0)) if K is None else K.mean(axis=-1)
                if symmetric and s0 == r0:  # exactly symmetric: the upper triangle, mirrored
                    value = np.triu(value) + np.triu(value, 1).T
                out[name][r0:r1, s0:s1] = value
                if symmetric and s0 != r0:
                    out[name][s0:s1, r0:r1] = value.T
    if not ntk:
        return out["nngp"]
    return out if per_layer else out["all"]


def infinite_nngp(net, X, X2=None, *, method="auto", order=DEFAULT_ORDER) -> np.ndarray:
    """Infinite-width NNGP kernel of one output head of a serial network.

    Parameters
    ----------
    net : serial network description
        ``ntkdyn.numerics.serial.SerialNetwork`` or an object with ``layers``,
        ``input_shape`` and ``parameterization``.
    X : array_like, shape (n,) + net.input_shape
    X2 : array_like, shape (n2,) + net.input_shape, optional
        Second inputs (default ``X``).
    method : {"auto", "closed", "quadrature"}
        Dual kernels: closed forms where known, else quadrature.
    order : int
        Quadrature order (:data:`ntkdyn.theory.dual_kernels.ORDER_RANGE`).

    Returns
    -------
    ndarray, shape (n, n2)
    """
    return serial_kernels(net, X, X2, False, False, method, order)


def infinite_ntk(net, X, X2=None, per_layer=False, *, method="auto", order=DEFAULT_ORDER):
    """Infinite-width NTK of one output head of a serial network (the CNTK for CNNs).

    The empirical NTK with ``k`` heads summed converges to ``k`` times this kernel.

    Parameters
    ----------
    net, X, X2, method, order
        As in :func:`infinite_nngp`.
    per_layer : bool
        Return ``{"W_1": K, "b_1": K, ...}`` (:func:`layer_names`), summing to the NTK.

    Returns
    -------
    ndarray, shape (n, n2), or dict
    """
    return serial_kernels(net, X, X2, True, per_layer, method, order)
