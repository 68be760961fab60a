"""How lazy is a training run: kernel change, weight change and the linearised-model prediction.

Liu, Zhu & Belkin (2020) separate the transition to linearity (the tangent kernel stays constant
because the Hessian norm falls like ``1/sqrt(m)``) from lazy training (the weights barely move
relative to their size). :func:`measure_laziness` trains one network by full-batch gradient
descent to a fraction of its initial loss and returns both sides with the linearised-model
prediction of the weight change; :func:`linearity_network` builds the network variants of that
paper (a linear output, a non-linear output, a bottleneck).
"""
from __future__ import annotations

import numpy as np

from ..base.alignment import relative_change
from ..base.validation import one_of, positive_float, positive_int
from ..theory.linearity import linearized_weight_change
from .kernels import empirical_ntk
from .memory import FLOAT64_BYTES, require_memory
from .networks import MLP
from .training import gradient_descent

LINEARITY_VARIANTS = ("linear-tanh", "linear-relu", "output-tanh", "output-relu", "bottleneck")


def linearity_network(variant: str, d: int, m: int, bottleneck: int = 2) -> MLP:
    """The network of one variant at width ``m`` (NTK parameterization).

    ``linear-tanh``/``linear-relu``: ``[d, m, 1]`` with a linear output (the kernel is nearly
    constant); ``output-tanh``/``output-relu``: the same with ``tanh`` on the output (it is not);
    ``bottleneck``: ``[d, m, bottleneck, m, 1]`` tanh networks with a narrow hidden layer (it is
    not either).

    Parameters
    ----------
    variant : {"linear-tanh", "linear-relu", "output-tanh", "output-relu", "bottleneck"}
        The network variant.
    d : int
        The input dimension.
    m : int
        The width.
    bottleneck : int, optional
        The width of the narrow layer of ``"bottleneck"``.

    Returns
    -------
    MLP
        The network.
    """
    one_of(variant, "variant", LINEARITY_VARIANTS)
    if variant == "bottleneck":
        return MLP([d, m, bottleneck, m, 1], activation="tanh")
    hidden, out = {"linear-tanh": ("tanh", None), "linear-relu": ("relu", None),
                   "output-tanh": ("tanh", "tanh"), "output-relu": ("relu", "tanh")}[variant]
    return MLP([d, m, 1], activation=hidden, output_activation=out)


def measure_laziness(net: MLP, X, Y, seed, lr_factor: float, fraction: float,
                     max_steps: int) -> dict:
    """Train ``net`` from ``net.init(seed)`` until ``L <= fraction L_0``; measure how lazy it was.

    The memory the run needs is checked before the weights are drawn
    (:func:`ntkdyn.numerics.memory.require_memory`).

    The learning rate is ``lr_factor / lambda_max(K_0 / n)`` (``K_0`` the initial empirical NTK),
    at most ``max_steps`` steps; divergence (loss above ``1e6 (L_0 + 1)``) raises
    :class:`ntkdyn.base.errors.DivergenceError`.

    Parameters
    ----------
    net : MLP
        The network (one output).
    X : numpy.ndarray, shape (n, d)
        Training inputs.
    Y : numpy.ndarray, shape (n, 1)
        Training targets.
    seed : int, sequence of int or numpy.random.Generator
        The initialisation's random stream.
    lr_factor : float
        The learning rate in units of ``1 / lambda_max(K_0 / n)``.
    fraction : float
        Stop once ``L <= fraction L_0``.
    max_steps : int
        The most steps taken.

    Returns
    -------
    dict
        ``kernel_change`` ``||K_T - K_0||_F / ||K_0||_F``, ``weight_change``
        ``||w_T - w_0||``, ``weight_norm`` ``||w_0||``, ``predicted_weight_change`` (the same
        steps on the linearised model, :func:`ntkdyn.theory.linearity.linearized_weight_change`),
        ``steps``, ``lr``, ``converged`` (1.0 or 0.0), ``losses`` (``L_s / L_0`` per step),
        ``initial_kernel`` ``K_0`` ``(n, n)`` and ``initial_outputs`` ``f(w_0; X)`` ``(n,)``.
    """
    lr_factor = positive_float(lr_factor, "lr_factor")
    fraction = positive_float(fraction, "fraction")
    max_steps = positive_int(max_steps, "max_steps")
    n = X.shape[0]
    require_memory(FLOAT64_BYTES * (net.num_params * 6 + n * sum(net.widths) * 8),
                   f"training a network of width {max(net.widths[1:-1], default=0)}")
    params0 = net.init(seed=seed)
    K0 = empirical_ntk(net, params0, X)
    lr = lr_factor / np.linalg.eigvalsh(K0 / n)[-1]
    traj = gradient_descent(net, params0, X, Y, lr, max_steps, stop_below=fraction,
                            divergence_factor=1e6)
    params, losses = traj.params, traj.losses
    KT = empirical_ntk(net, params, X)
    theta0, theta = net.flatten(params0), net.flatten(params)
    steps = len(losses) - 1
    outputs0 = net.apply(params0, X)[:, 0]
    r0 = outputs0 - Y[:, 0]
    return {
        "kernel_change": relative_change(KT, K0),
        "weight_change": float(np.linalg.norm(theta - theta0)),
        "weight_norm": float(np.linalg.norm(theta0)),
        "predicted_weight_change": linearized_weight_change(K0, r0, lr, steps),
        "steps": steps, "lr": lr,
        "converged": float(losses[-1] <= fraction * losses[0]),
        "losses": losses / losses[0],
        "initial_kernel": K0, "initial_outputs": outputs0,
    }
