"""Neural feature matrices, the AGOP and the neural feature ansatz (NFA).

Beaglehole, Mitliagkas & Agarwala (2024), "Feature learning as alignment", arXiv:2402.05271
(the centred NFA and the pre-activation tangent features), with Radhakrishnan, Beaglehole,
Pandit & Belkin (2024), Science 383:1461 (the NFA and the AGOP; their kernel machine, the
Recursive Feature Machine, is :mod:`numerics.rfm`).

Every public function takes ``layer``, the 0-based index of a weight matrix ``W = params[layer]``
of shape ``(m, d)``, with multiplier ``c`` (``net.multipliers[layer]``), layer input ``a``
(``forward.activations[layer]``; the data for layer 0) and pre-activation ``h = c W a``:

    NFM                 F = W^T W                                          (d, d)
    PTK covariance      K = sum_x sum_j b_j(x) b_j(x)^T,  b_j = d f_j / d h   (m, m)
    AGOP                G = sum_x sum_j grad_a f_j grad_a f_j^T = c^2 W^T K W  (d, d)

The last line is the chain rule ``grad_a f_j = c W^T b_j``. ``b_j`` are the back-propagated
signals of :func:`numerics.kernels.backprop_signals` (one backward pass per output, batched over
the data as one BLAS product per layer); no per-example Jacobian is formed. The NFA correlations
(UC-NFC and C-NFC of Beaglehole et al. 2024) are

    UC-NFC = rho(W^T W, (c^2 W^T K W)^alpha),   C-NFC = rho(dW^T dW, (c^2 dW^T K dW)^alpha),

with ``dW = W - W_0`` and ``K`` the *current* PTK covariance (as in the authors' code), ``rho``
the Pearson correlation of the matrix entries (the authors' choice) or the cosine similarity,
and ``alpha = 1`` (this paper) or ``1/2`` (RFM's convention).

Biases (:class:`numerics.networks.Network` with ``b_std > 0``; parameters ``[W_1..W_L, b_1..b_L]``):
``h = c W a + beta b``. ``layer`` still indexes the weight matrices, ``W = params[layer]`` is
the weight matrix only, and the NFM, the NFA correlations and the speed limit of
:class:`SpeedLimited` are about ``W`` alone. The pre-activations ``h`` (and so the signals
``b_j`` and ``K``) include the bias; the AGOP with respect to the layer input keeps its form
``c^2 W^T K W``, because ``d h / d a = c W`` whatever the bias. The bias's own tangent features
are the signals themselves, ``d f_j / d b = beta b_j``: its block of the empirical NTK is
``beta^2 Theta`` with the PTK Gram ``Theta`` of :func:`ptk_gram`.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..base.alignment import CORRELATION_KINDS as KINDS
from ..base.alignment import matrix_correlation
from ..base.linalg import psd_power
from ..base.validation import as_array, one_of, positive_float
from .checks import check_network
from .kernels import backprop_signals
from .networks import MLP

__all__ = [
    "nfm",
    "tangent_feature_covariance",
    "agop",
    "ptk_gram",
    "matrix_correlation",
    "psd_power",
    "nfa_correlation",
    "nfa_correlations",
    "nfa_observable",
    "relative_weight_change",
    "svd_alignment",
    "principal_cosines",
    "SpeedLimited",
]


# ------------------------------------------------------------------------------ checks
def _check_layer(net: MLP, layer, name: str = "layer") -> int:
    if isinstance(layer, bool) or not isinstance(layer, numbers.Integral):
        raise TypeError(f"{name} must be an integer weight-matrix index, got {layer!r}")
    if not 0 <= layer < net.depth:
        raise ValueError(f"{name} must be a weight-matrix index in [0, {net.depth - 1}] "
                         f"(the network has {net.depth} weight matrices), got {layer}")
    return int(layer)


def _check_layers(net: MLP, layers) -> list[int]:
    if layers is None:
        return list(range(net.depth))
    if isinstance(layers, numbers.Integral) and not isinstance(layers, bool):
        return [_check_layer(net, layers, "layers")]
    return [_check_layer(net, l, "layers") for l in layers]


# --------------------------------------------------------------- NFM, PTK covariance, AGOP
def nfm(W) -> np.ndarray:
    """Neural feature matrix ``F = W^T W`` of a weight matrix ``W`` of shape ``(m, d)``.

    Parameters
    ----------
    W : array, shape (m, d)
        A weight matrix (float32 is kept as float32).

    Returns
    -------
    numpy.ndarray, shape (d, d)
        ``W^T W``.
    """
    W = as_array(W, "W", ndim=2, keep_float32=True)
    return W.T @ W


def _covariance_from_signals(b) -> np.ndarray:
    """``K = sum_{j, x} b_j(x) b_j(x)^T`` from signals of shape ``(k, n, m)`` (one syrk)."""
    B = b.reshape(-1, b.shape[-1])
    return B.T @ B


def tangent_feature_covariance(net: MLP, params, X, layer):
    """PTK feature covariance ``K = sum_x sum_j b_j(x) b_j(x)^T`` (``b_j = d f_j / d h``), (m, m).

    ``h`` is the pre-activation of weight matrix ``layer``. ``layer=None`` returns the list for
    every layer from one forward and one (batched) backward pass.

    Parameters
    ----------
    net : MLP
        The network (any depth; with or without biases).
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})`` (then ``[b_1, ..., b_L]`` for
        a network with biases).
    X : array, shape (n, d)
        Inputs.
    layer : int or None
        0-based index of the weight matrix, in ``[0, L)``; ``None``: every layer.

    Returns
    -------
    numpy.ndarray, shape (m, m), or list of them
        ``K`` of weight matrix ``layer`` (``m`` its number of rows, ``n_{layer+1}``); with
        ``layer=None`` the list of the ``L`` matrices.
    """
    check_network(net)
    params = net.check_params(params)
    X = net.check_inputs(X)
    if layer is not None:
        layer = _check_layer(net, layer)
    signals = backprop_signals(net, params, net.forward(params, X))
    if layer is not None:
        return _covariance_from_signals(signals[layer])
    return [_covariance_from_signals(b) for b in signals]


def agop(net: MLP, params, X, layer) -> np.ndarray:
    """AGOP with respect to the input ``a`` of weight matrix ``layer``: ``G = c^2 W^T K W``.

    ``G = sum_x sum_j grad_a f_j(x) grad_a f_j(x)^T`` (a sum over the data, not a mean), computed
    through the chain rule ``grad_a f_j = c W^T b_j`` with the PTK covariance ``K``
    (:func:`tangent_feature_covariance`).

    Parameters
    ----------
    net : MLP
        The network (any depth; with or without biases).
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})`` (then ``[b_1, ..., b_L]`` for
        a network with biases).
    X : array, shape (n, d)
        Inputs.
    layer : int
        0-based index of the weight matrix ``W`` of shape ``(m, d_l)``, in ``[0, L)``.

    Returns
    -------
    numpy.ndarray, shape (d_l, d_l)
        ``G``, with ``d_l`` the width of the layer's input (``d`` for ``layer=0``).
    """
    check_network(net)
    params = net.check_params(params)
    X = net.check_inputs(X)
    layer = _check_layer(net, layer)
    b = backprop_signals(net, params, net.forward(params, X))[layer]
    return _Sandwich(b, net.multipliers[layer])(params[layer])


class _Sandwich:
    """``V -> c^2 V^T K V``, ``K = B^T B``, ``B`` the signals ``(k, n, m)`` as ``(k n, m)`` rows.

    With fewer (output, example) pairs than units (``k n < m``, e.g. a wide first layer)
    ``(B V)^T (B V)`` costs ``k n m d`` and ``K`` is never formed; otherwise ``K`` is formed once
    (one syrk, ``k n m^2``) and reused for every ``V`` (``W`` and ``W - W_0``).
    """

    def __init__(self, b, c):
        self.B = b.reshape(-1, b.shape[-1])
        self.c2 = c * c
        self._K = None

    def __call__(self, V) -> np.ndarray:
        if self.B.shape[0] < self.B.shape[1]:
            C = self.B @ V
            G = C.T @ C
        else:
            if self._K is None:
                self._K = self.B.T @ self.B
            G = V.T @ (self._K @ V)
            G = 0.5 * (G + G.T)
        if self.c2 != 1.0:
            G *= self.c2
        return G


def ptk_gram(net: MLP, params, X, layer) -> np.ndarray:
    """PTK Gram matrix ``Theta[j, j', i, i'] = b_j(x_i) . b_j'(x_i')`` at weight matrix ``layer``.

    Shape ``(k, k, n, n)``; the input of :func:`theory.nfa.early_centered_nfc`. The layer-``l``
    block of the empirical NTK is ``c^2 Theta * (A A^T)`` (the layer-wise factorisation of
    :func:`numerics.kernels.empirical_ntk`), so the PTK is the "significant component of the
    empirical NTK" of the first version of Beaglehole et al. (2024). With biases the block of
    ``b_l`` is ``beta^2 Theta`` (the pre-activations, and so ``Theta``, include the bias).

    Parameters
    ----------
    net : MLP
        The network (any depth; with or without biases).
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})`` (then ``[b_1, ..., b_L]`` for
        a network with biases).
    X : array, shape (n, d)
        Inputs.
    layer : int
        0-based index of the weight matrix, in ``[0, L)``.

    Returns
    -------
    numpy.ndarray, shape (k, k, n, n)
        ``Theta`` (``k`` outputs, ``n`` inputs).
    """
    check_network(net)
    params = net.check_params(params)
    X = net.check_inputs(X)
    layer = _check_layer(net, layer)
    b = backprop_signals(net, params, net.forward(params, X))[layer]
    return np.einsum("jia,kla->jkil", b, b, optimize=True)


# ------------------------------------------------------------------------- correlations
def _pair(W, dW, sandwich, centered, kind, power):
    if centered:
        if not np.any(dW):
            return np.nan
        W = dW
    return matrix_correlation(nfm(W), psd_power(sandwich(W), power), kind)


def _signals(net, params, X):
    return backprop_signals(net, params, net.forward(params, net.check_inputs(X)))


def _check_params0(net, params0, centered):
    if params0 is None:
        if centered:
            raise ValueError("params0 (the initial weights W_0) is required when centered=True")
        return None
    return net.check_params(params0, "params0")


def nfa_correlation(net: MLP, params, X, layer, params0=None, centered: bool = False,
                    kind: str = "pearson", power: float = 1.0) -> float:
    """Neural feature correlation of weight matrix ``layer``.

    ``centered=False``: UC-NFC ``rho(W^T W, (c^2 W^T K W)^power)``;
    ``centered=True``: C-NFC ``rho(dW^T dW, (c^2 dW^T K dW)^power)``, ``dW = W - params0[layer]``,
    with ``K`` the PTK covariance at ``params`` in both. ``kind`` is ``"pearson"`` (the authors'
    code) or ``"cosine"``. The C-NFC is ``nan`` when ``dW = 0``.

    Parameters
    ----------
    net : MLP
        The network (any depth; with or without biases).
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})`` (then ``[b_1, ..., b_L]`` for
        a network with biases).
    X : array, shape (n, d)
        Inputs.
    layer : int
        0-based index of the weight matrix, in ``[0, L)``.
    params0 : list of arrays, optional
        The initial parameters ``W_0`` (shaped like ``params``); required when
        ``centered=True``.
    centered : bool
        C-NFC (``True``) or UC-NFC (``False``).
    kind : {"pearson", "cosine"}
        The correlation ``rho`` of the matrix entries.
    power : float
        ``alpha > 0``, the power of the AGOP (1: this paper; 0.5: RFM's convention).

    Returns
    -------
    float
        The correlation, in ``[-1, 1]`` (``nan`` for the C-NFC at ``dW = 0``).
    """
    check_network(net)
    one_of(kind, "kind", KINDS)
    power = positive_float(power, "power")
    params = net.check_params(params)
    layer = _check_layer(net, layer)
    params0 = _check_params0(net, params0, centered)
    sandwich = _Sandwich(_signals(net, params, X)[layer], net.multipliers[layer])
    W = params[layer]
    dW = None if params0 is None else W - params0[layer]
    return float(_pair(W, dW, sandwich, centered, kind, power))


def nfa_correlations(net: MLP, params, X, params0=None, layers=None, kind: str = "pearson",
                     power: float = 1.0) -> dict[str, np.ndarray]:
    """UC-NFC (and C-NFC when ``params0`` is given) of several layers from one backward pass.

    Returns ``{"uncentered": (len(layers),), "centered": (len(layers),)}`` (the latter only with
    ``params0``; ``nan`` where ``W = W_0``). ``layers`` defaults to every weight matrix.

    Parameters
    ----------
    net : MLP
        The network (any depth; with or without biases).
    params : list of arrays
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_l, n_{l-1})`` (then ``[b_1, ..., b_L]`` for
        a network with biases).
    X : array, shape (n, d)
        Inputs.
    params0 : list of arrays, optional
        The initial parameters ``W_0`` (shaped like ``params``); the C-NFC only with them.
    layers : int, iterable of int, or None
        0-based weight-matrix indices; ``None``: all ``L``.
    kind : {"pearson", "cosine"}
        The correlation ``rho`` of the matrix entries.
    power : float
        ``alpha > 0``, the power of the AGOP.

    Returns
    -------
    dict of str to numpy.ndarray
        ``"uncentered"``: shape ``(len(layers),)``; ``"centered"`` (with ``params0``): shape
        ``(len(layers),)``.
    """
    check_network(net)
    one_of(kind, "kind", KINDS)
    power = positive_float(power, "power")
    params = net.check_params(params)
    layers = _check_layers(net, layers)
    params0 = _check_params0(net, params0, False)
    signals = _signals(net, params, X)
    sandwiches = {l: _Sandwich(signals[l], net.multipliers[l]) for l in layers}
    out = {"uncentered": np.array([
        _pair(params[l], None, sandwiches[l], False, kind, power) for l in layers])}
    if params0 is not None:
        out["centered"] = np.array([
            _pair(params[l], params[l] - params0[l], sandwiches[l], True, kind, power)
            for l in layers])
    return out


def relative_weight_change(params, params0) -> np.ndarray:
    """``||W_l - W_l(0)||_F / ||W_l(0)||_F`` for every array of the parameter list.

    One entry per array, in the list's order: the ``L`` weight matrices, then (for a network
    with biases) the ``L`` bias vectors, ``||b_l - b_l(0)|| / ||b_l(0)||``.

    Parameters
    ----------
    params : list of arrays
        The current parameters.
    params0 : list of arrays
        The initial parameters, shaped like ``params``.

    Returns
    -------
    numpy.ndarray, shape (len(params),)
        The relative changes (``inf`` or ``nan`` for an array that starts at zero).
    """
    if len(params) != len(params0):
        raise ValueError(f"params and params0 must hold the same number of matrices, "
                         f"got {len(params)} and {len(params0)}")
    return np.array([np.linalg.norm(np.asarray(W) - W0) / np.linalg.norm(W0)
                     for W, W0 in zip(params, params0)])


def nfa_observable(params0, layers=None, kind: str = "pearson", power: float = 1.0):
    """An observable for :func:`numerics.training.gradient_descent`'s ``record``.

    ``fn(net, params, X, Y)`` returns an array of shape ``(3, len(layers))``: UC-NFC, C-NFC (``nan``
    at ``W = W_0``) and the relative weight change ``||W - W_0||_F / ||W_0||_F``.

    Parameters
    ----------
    params0 : list of arrays
        The initial parameters ``W_0`` (copied).
    layers : int, iterable of int, or None
        0-based weight-matrix indices, checked against the network at each record;
        ``None``: all ``L``.
    kind : {"pearson", "cosine"}
        The correlation ``rho`` of the matrix entries.
    power : float
        ``alpha > 0``, the power of the AGOP.

    Returns
    -------
    callable
        ``fn(net, params, X, Y) -> numpy.ndarray`` of shape ``(3, len(layers))``.
    """
    one_of(kind, "kind", KINDS)
    power = positive_float(power, "power")
    params0 = [np.array(W, copy=True) for W in params0]
    if layers is not None and not isinstance(layers, numbers.Integral):
        layers = list(layers)  # a generator would be spent after the first record

    def observe(net, params, X, Y):
        ls = _check_layers(net, layers)
        r = nfa_correlations(net, params, X, params0, ls, kind, power)
        change = relative_weight_change(params, params0)[ls]
        return np.stack([r["uncentered"], r["centered"], change])

    return observe


def svd_alignment(W, K, kind: str = "cosine") -> float:
    """The NFC through the SVD ``W = U S V^T``: an alignment of ``U S`` with ``K``.

    With ``F = V S^2 V^T`` and ``G = V S (U^T K U) S V^T``,

        cosine:  rho = sum_i s_i^4 (u_i^T K u_i) / (||S^2||_F ||S U^T K U S||_F),

    and the Pearson variant subtracts the mean entries ``Fbar = ||S V^T 1||^2 / d^2``,
    ``Gbar = (1^T V S U^T K U S V^T 1) / d^2``: ``(<F,G> - d^2 Fbar Gbar) /
    sqrt((||F||^2 - d^2 Fbar^2)(||G||^2 - d^2 Gbar^2))``. Equals
    ``matrix_correlation(W^T W, W^T K W, kind)``. By Cauchy-Schwarz on ``(s_i^2)`` and
    ``(s_i^2 q_i)``, the cosine NFC is 1 exactly when ``Q = U^T K U`` is a multiple of the identity:
    ``K`` acts on the left singular vectors of ``W`` (those with ``s_i > 0``) as a scalar. (With
    ``Q`` diagonal, the AGOP^{1/2} variant is 1 exactly when ``q_i`` is proportional to ``s_i^2``.)

    Parameters
    ----------
    W : array, shape (m, d)
        A weight matrix.
    K : array, shape (m, m)
        A symmetric matrix on the rows of ``W`` (e.g. the PTK covariance).
    kind : {"cosine", "pearson"}
        Cosine similarity or Pearson correlation of the entries.

    Returns
    -------
    float
        The alignment, clipped to ``[-1, 1]``.

    Raises
    ------
    ValueError
        When ``K`` does not match ``W``, or ``W^T W`` or ``W^T K W`` is constant (or zero).
    """
    one_of(kind, "kind", KINDS)
    W = as_array(W, "W", ndim=2)
    K = as_array(K, "K", ndim=2)
    if K.shape != (W.shape[0], W.shape[0]):
        raise ValueError(f"K must have shape ({W.shape[0]}, {W.shape[0]}) to match W, "
                         f"got {K.shape}")
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    Q = U.T @ K @ U
    SQS = s[:, None] * Q * s[None, :]
    inner = float(np.sum(s ** 4 * np.diag(Q)))
    nf2, ng2 = float(np.sum(s ** 4)), float(np.sum(SQS * SQS))
    if kind == "pearson":
        d = W.shape[1]
        v = Vt.sum(axis=1)  # V^T 1
        fbar = float(np.sum(s ** 2 * v ** 2)) / d ** 2
        gbar = float(v @ SQS @ v) / d ** 2
        inner -= d * d * fbar * gbar
        nf2 -= d * d * fbar ** 2
        ng2 -= d * d * gbar ** 2
    if nf2 <= 0 or ng2 <= 0:
        raise ValueError(f"the {kind} alignment is undefined for a constant (or zero) "
                         "W^T W or W^T K W")
    return float(np.clip(inner / np.sqrt(nf2 * ng2), -1.0, 1.0))


def principal_cosines(F, U) -> np.ndarray:
    """Cosines of the principal angles between the top-``r`` eigenvectors of ``F`` and ``span(U)``.

    ``U`` is ``(d, r)``; returns ``r`` cosines in descending order (all 1 when the top
    eigenspace of ``F`` is ``span(U)``): how well a feature matrix recovers a planted subspace.

    Parameters
    ----------
    F : array, shape (d, d)
        A feature matrix (symmetrised before its eigendecomposition).
    U : array, shape (d, r)
        A basis (not necessarily orthonormal) of the planted subspace.

    Returns
    -------
    numpy.ndarray, shape (r,)
        The cosines, in ``[0, 1]``, descending.
    """
    F = as_array(F, "F", ndim=2)
    U = as_array(U, "U", ndim=2)
    if F.shape != (U.shape[0], U.shape[0]):
        raise ValueError(f"F must be ({U.shape[0]}, {U.shape[0]}) to match U, got {F.shape}")
    r = U.shape[1]
    evals, evecs = np.linalg.eigh(0.5 * (F + F.T))
    top = evecs[:, np.argsort(evals)[::-1][:r]]
    Q, _ = np.linalg.qr(U)
    return np.sort(np.clip(np.linalg.svd(top.T @ Q, compute_uv=False), 0.0, 1.0))[::-1]


# ------------------------------------------------------------------------ the update rule
class SpeedLimited:
    """Speed-limited optimisation (SLO) at one layer: an ``update`` for ``gradient_descent``.

    A reconstruction of the Speed Limited Optimization of Beaglehole, Mitliagkas & Agarwala
    (2024), whose exact update equation was not available. At the target weight matrix
    ``l = layer``

        W_l <- W_l - speed * ||W_l||_F * g_l / ||g_l||_F      (relative=True; default)
        W_l <- W_l - speed * g_l / ||g_l||_F                   (relative=False)

    (``g_l = dL/dW_l``): every step has a fixed Frobenius size, so ``W_l`` keeps moving at the
    same speed after the loss gradient has become small. The other layers take plain gradient
    steps ``W <- W - lr g`` (``others="gd"``), or speed-limited steps of size
    ``others * speed`` (a float ``others >= 0``; 0 freezes them). With biases the speed limit
    is on the weight matrix ``W_l`` alone: every bias vector, ``b_l`` included, is treated as
    one of the other parameters (plain gradient steps, or speed-limited steps of size
    ``others * speed`` measured against its own norm).

    What is derived: each gradient step's left factor ``B^T M`` lies in the
    range of the PTK covariance ``K``, so while ``K`` moves slowly the accumulated ``dW`` aligns
    with ``K`` (the C-NFC), and a layer that moves far from ``W_0`` carries that alignment into
    the uncentred correlation (``W ≈ dW``). What is a choice: normalising by ``||g||_F``,
    measuring the speed relative to ``||W_l||_F``, and the treatment of the other layers.
    Tested: it raises the target layer's UC-NFC over plain GD; its effect on the C-NFC is
    reported by the ``nfa-rule`` experiment.

    Parameters
    ----------
    net : MLP
        The network trained (its depth and parameter shapes).
    layer : int
        0-based index of the speed-limited weight matrix, in ``[0, L)``.
    speed : float
        ``speed > 0``, the step size (relative to ``||W_l||_F`` when ``relative``).
    others : "gd" or float
        ``"gd"``: plain gradient steps for the other arrays; a float ``>= 0``: speed-limited
        steps of size ``others * speed``.
    relative : bool
        Measure the step against ``||W||_F`` (``True``) or in absolute Frobenius size.
    """

    def __init__(self, net: MLP, layer, speed: float = 0.01, others="gd", relative: bool = True):
        check_network(net)
        self.depth = net.depth
        self.num_arrays = len(net.param_shapes)
        self._what = (f"{self.depth} matrices" if self.num_arrays == self.depth else
                      f"{self.depth} weight matrices and {self.depth} bias vectors")
        self.layer = _check_layer(net, layer)
        self.speed = positive_float(speed, "speed")
        if isinstance(others, str):
            one_of(others, "others", ("gd",))
        else:
            others = positive_float(others, "others", allow_zero=True)
        self.others = others
        if not isinstance(relative, bool):
            raise TypeError(f"relative must be a bool, got {relative!r}")
        self.relative = relative

    def __repr__(self) -> str:
        return (f"SpeedLimited(layer={self.layer}, speed={self.speed}, others={self.others!r}, "
                f"relative={self.relative})")

    def _limited(self, W, g, speed):
        gn = np.linalg.norm(g)
        if gn == 0 or speed == 0:
            return W.copy()
        size = speed * np.linalg.norm(W) if self.relative else speed
        return W - (size / gn) * g

    def __call__(self, params, grads, lr):
        if len(params) != self.num_arrays or len(grads) != self.num_arrays:
            raise ValueError(f"params and grads must hold {self._what}, "
                             f"got {len(params)} and {len(grads)}")
        out = []
        for l, (W, g) in enumerate(zip(params, grads)):
            if l == self.layer:
                out.append(self._limited(W, g, self.speed))
            elif self.others == "gd":
                out.append(W - lr * g)
            else:
                out.append(self._limited(W, g, self.others * self.speed))
        return out
