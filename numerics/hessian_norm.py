"""The two norms of the transition to linearity at one input: ``||H||`` and ``||grad f||``.

Liu, Zhu & Belkin (2020): a model is close to linear in a ball of radius ``R`` around its
initialisation when ``R ||H||`` (the spectral norm of the output Hessian) is small next to
``||grad_theta f||``. :func:`output_hessian_norm` picks the fastest exact method (the
two-layer closed form of :mod:`numerics.hessian_two_layer`, or Lanczos on the R-operator of
:mod:`numerics.hessian_operator`); :func:`output_gradient_norm` is one backward pass.
"""
from __future__ import annotations

import math

import numpy as np

from ..base.validation import one_of
from .hessian_checks import check_head, check_hessian_net, single_input
from .hessian_operator import output_hessian_dense, output_hessian_top_eigs
from .hessian_two_layer import two_layer_hessian_norm
from .networks import MLP

__all__ = ["output_gradient_norm", "output_hessian_norm"]


def output_gradient_norm(net: MLP, params, x, head: int = 0) -> float:
    """``||grad_theta f_head(x)||`` at one input ``x`` of shape ``(d,)`` (one backward pass).

    ``theta`` is every parameter: the weights and, for a network with biases, the biases.

    Parameters
    ----------
    net : MLP
        The network; an output activation, when it has one, needs ``d2phi``.
    params : list of arrays
        ``[W_1, ..., W_L]`` (then ``[b_1, ..., b_L]`` for a network with biases).
    x : array, shape (d,) or (1, d)
        One input.
    head : int
        Output whose gradient is taken, in ``[0, k)``.

    Returns
    -------
    float
        The Euclidean norm of the gradient over all parameters.
    """
    net = check_hessian_net(net, need_hidden=False)
    x = single_input(net, x)
    head = check_head(net, head)
    fwd = net.forward(params, x[None])
    e = np.zeros((1, net.output_dim))
    e[0, head] = 1.0
    grads = net.backward(net.check_params(params), fwd, e)
    return float(math.sqrt(sum(float(np.vdot(g, g)) for g in grads)))


def output_hessian_norm(net: MLP, params, x, head: int = 0, method: str = "auto",
                        tol: float = 1e-12, seed=0) -> float:
    """Spectral norm (largest ``|eigenvalue|``) of the Hessian of ``f_head`` at one input ``x``.

    Parameters
    ----------
    net : MLP
        The network; its activations need ``d2phi``.
    params : list of arrays
        ``[W_1, ..., W_L]`` (then ``[b_1, ..., b_L]`` for a network with biases).
    x : array, shape (d,) or (1, d)
        One input.
    head : int
        Output whose Hessian is taken, in ``[0, k)``.
    method : {"auto", "closed_form", "lanczos"}
        ``"auto"``: the closed form (:func:`numerics.hessian_two_layer.two_layer_hessian_norm`,
        biases included) for two-layer networks with a linear output, Lanczos on exact HVPs
        (:func:`numerics.hessian_operator.output_hessian_top_eigs`) otherwise.
    tol : float
        Lanczos (ARPACK) relative tolerance; unused by the closed form.
    seed : int or None
        Seed of the Lanczos start vector; unused by the closed form.

    Returns
    -------
    float
        ``||H||_2``, the largest ``|eigenvalue|`` of the ``(P, P)`` Hessian of ``f_head(x)``
        over all ``P`` parameters (for ``P = 1``, the absolute value of the one entry).
    """
    one_of(method, "method", ("auto", "closed_form", "lanczos"))
    net = check_hessian_net(net)
    if method == "closed_form" or (method == "auto" and net.depth == 2
                                   and net.output_activation is None):
        return two_layer_hessian_norm(net, params, x, head)
    if net.num_params == 1:
        H = output_hessian_dense(net, params, x, head)
        return float(abs(H[0, 0]))
    return float(abs(output_hessian_top_eigs(net, params, x, k=1, which="LM", head=head,
                                             tol=tol, seed=seed)[0]))
