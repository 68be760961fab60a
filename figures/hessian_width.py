"""hessian-width: the output Hessian's norm falls like sqrt(log m)/sqrt(m), the gradient stays O(1).

Liu, Zhu & Belkin (2020, abstract): the transition to linearity of wide networks comes
from the scaling of the Hessian's norm with width. Simulation: the spectral norm of the Hessian of
``f(x)`` with respect to all weights at initialization, at one input on the sphere of radius
``sqrt(d)``: for two-layer networks by the exact block-diagonal closed form streamed over ``W_1``
(:func:`ntkdyn.numerics.hessian_two_layer.two_layer_hessian`, widths to 10^7 in the paper
configuration), for three-layer networks by Lanczos on exact Hessian-vector products.

Theory (:mod:`ntkdyn.theory.linearity`): for two layers the Hessian is block-diagonal over the
hidden units, so ``||H|| = max_j G_j / sqrt(m)`` and its mean at initialization has an exact law
(:func:`~ntkdyn.theory.linearity.hessian_norm_mean`), ``Theta(sqrt(log m) / sqrt(m))`` for smooth
activations; for ReLU ``||H|| = |x| / sqrt(m d)`` exactly (an identity, not agreement);
``||grad f||`` and ``||H||_F`` tend to width-independent limits
(:func:`~ntkdyn.theory.linearity.gradient_norm_limit`,
:func:`~ntkdyn.theory.linearity.frobenius_norm_sq_limit`). For three layers the prediction is the
exponent ``-1/2`` (``SCALING_EXPONENTS["hessian_norm"]``).
"""
from __future__ import annotations

import math

import numpy as np

from ..base.activations import get_activation
from ..base.samplers import sphere_inputs
from ..numerics.hessian_norm import output_gradient_norm, output_hessian_norm
from ..numerics.hessian_two_layer import two_layer_hessian
from ..numerics.memory import estimate_bytes, require_memory
from ..numerics.networks import MLP
from ..theory import linearity as lin
from . import config_types as ct
from . import footprint as fp
from . import style
from .experiment import Control, Experiment, agreement, around, at_most, identity, observation

NAME = "hessian-width"
DESCRIPTION = ("Hessian spectral norm ~ sqrt(log m)/sqrt(m) while ||grad f|| = O(1) "
               "(transition to linearity)")

SMOKE = {
    "d": 10, "widths": [2 ** k for k in range(6, 14)], "activations": ["tanh", "softplus", "relu"],
    "seeds": 10, "fit_from": 2 ** 9,
    "deep_widths": [2 ** k for k in range(6, 9)], "deep_activations": ["tanh", "relu"],
    "deep_seeds": 2, "deep_fit_from": 2 ** 6, "lanczos_tol": 1e-6, "seed": 0,
}
QUICK = {
    "d": 10, "widths": [2 ** k for k in range(6, 21)], "activations": ["tanh", "softplus", "relu"],
    "seeds": 10, "fit_from": 2 ** 12,
    "deep_widths": [2 ** k for k in range(6, 10)], "deep_activations": ["tanh", "relu"],
    "deep_seeds": 3, "deep_fit_from": 2 ** 6, "lanczos_tol": 1e-6, "seed": 0,
}
PAPER = {
    "d": 10, "widths": [2 ** k for k in range(6, 24)] + [10 ** 7],
    "activations": ["tanh", "softplus", "erf", "sigmoid", "relu"],
    "seeds": 10, "fit_from": 2 ** 12,
    "deep_widths": [2 ** k for k in range(6, 12)], "deep_activations": ["tanh", "relu"],
    "deep_seeds": 8, "deep_fit_from": 2 ** 8, "lanczos_tol": 1e-6, "seed": 0,
}


def runs(config) -> list[dict]:
    """One run per (depth, activation, width, replicate)."""
    for key, start in (("widths", "fit_from"), ("deep_widths", "deep_fit_from")):
        if sum(int(m) >= int(config[start]) for m in config[key]) < 2:
            raise ValueError(f"{key} must hold at least two widths >= {start} = {config[start]} "
                             f"for the slope fit, got {config[key]}")
    base = {"d": int(config["d"]), "lanczos_tol": float(config["lanczos_tol"])}
    out = [dict(base, depth=2, activation=a, width=int(m), replicate=r)
           for a in config["activations"] for m in config["widths"] for r in range(config["seeds"])]
    out += [dict(base, depth=3, activation=a, width=int(m), replicate=r)
            for a in config["deep_activations"] for m in config["deep_widths"]
            for r in range(config["deep_seeds"])]
    return out


def run(point, seed) -> dict:
    """``||H||``, ``||grad f||`` (and for two layers ``||H||_F``) of one network at one input.

    The input is drawn from the configuration seed alone (``seed.entropy``, one input for every
    run: the laws depend on ``|x|`` only), the weights from the run's own stream.
    """
    d, m, L = point["d"], point["width"], point["depth"]
    widths = [d] + [m] * (L - 1) + [1]
    # Refuse widths that do not fit before drawing any weight (weights + one Gaussian buffer).
    method = "closed_form" if L == 2 else "lanczos"
    require_memory(estimate_bytes(widths, method) + 8 * widths[0] * widths[1],
                   f"a depth-{L} network of width {m}")
    x = sphere_inputs(1, d, np.random.SeedSequence(seed.entropy))[0]
    net = MLP(widths, activation=point["activation"])
    params = net.init(seed=np.random.default_rng(seed))
    if L == 2:
        st = two_layer_hessian(net, params, x)
        return {"norm": st.norm, "grad_norm": st.grad_norm, "frobenius": st.frobenius}
    norm = output_hessian_norm(net, params, x, tol=point["lanczos_tol"])
    return {"norm": norm, "grad_norm": output_gradient_norm(net, params, x),
            "frobenius": np.nan}


def _theory_mean(activation: str, m: int, d: int) -> float:
    act = get_activation(activation)
    if activation == "relu":
        return float(lin.relu_hessian_norm(m, d, math.sqrt(d)))
    return lin.hessian_norm_mean(m, act.dphi, act.d2phi, math.sqrt(d), d)


def combine(config, results) -> dict:
    """Stack the runs (in the order of :func:`runs`) and add the theory side: the exact mean
    law of ``||H||`` per (activation, width), the limits of ``||grad f||`` and ``||H||_F``,
    and the predicted three-layer exponent, all computed without any simulated value."""
    acts, widths, S = config["activations"], np.asarray(config["widths"]), int(config["seeds"])
    dacts, dwidths = config["deep_activations"], np.asarray(config["deep_widths"])
    DS = int(config["deep_seeds"])
    n2 = len(acts) * len(widths) * S

    def grab(rs, key, shape):
        return np.array([float(r[key]) for r in rs]).reshape(shape)

    two, three = results[:n2], results[n2:]
    shape2, shape3 = (len(acts), len(widths), S), (len(dacts), len(dwidths), DS)
    d = int(config["d"])
    x_norm = math.sqrt(d)
    return {
        "activations": np.array(acts), "widths": widths, "d": np.array(d),
        "norm": grab(two, "norm", shape2), "grad_norm": grab(two, "grad_norm", shape2),
        "frobenius": grab(two, "frobenius", shape2),
        "deep_activations": np.array(dacts), "deep_widths": dwidths,
        "deep_norm": grab(three, "norm", shape3),
        "deep_grad_norm": grab(three, "grad_norm", shape3),
        "fit_from": np.array(config["fit_from"]),
        "deep_fit_from": np.array(config["deep_fit_from"]),
        "theory_norm": np.array([[_theory_mean(a, int(m), d) for m in widths] for a in acts]),
        "theory_grad_norm": np.array([
            lin.gradient_norm_limit(get_activation(a).phi, get_activation(a).dphi, x_norm, d)
            for a in acts]),
        "theory_frobenius": np.array([
            math.sqrt(lin.frobenius_norm_sq_limit(get_activation(a).dphi,
                                                  get_activation(a).d2phi, x_norm, d))
            for a in acts]),
        "predicted_exponent": np.array(lin.SCALING_EXPONENTS["hessian_norm"]),
    }


def _slope(widths, values):
    return float(np.polyfit(np.log(widths), np.log(values), 1)[0])


def measure(result) -> dict:
    """Simulation over theory (geometric means over widths) and fitted slopes minus theory's."""
    widths, acts = result["widths"], [str(a) for a in result["activations"]]
    big = widths >= int(result["fit_from"])
    d = int(result["d"])
    out = {}
    for i, a in enumerate(acts):
        mean = result["norm"][i].mean(axis=-1)
        theory = result["theory_norm"][i]
        if a == "relu":
            exact = math.sqrt(d) / np.sqrt(widths * d)
            out["relu_exact_rel_err"] = float(np.max(np.abs(result["norm"][i] / exact[:, None]
                                                            - 1)))
        else:
            out[f"law_ratio_{a}"] = float(np.exp(np.mean(np.log(mean / theory))))
            out[f"slope_minus_theory_{a}"] = (_slope(widths[big], mean[big])
                                              - _slope(widths[big], theory[big]))
        grad = result["grad_norm"][i].mean(axis=-1)[big]
        out[f"grad_ratio_{a}"] = float(np.exp(np.mean(np.log(grad
                                                              / result["theory_grad_norm"][i]))))
        fro = result["frobenius"][i].mean(axis=-1)[big]
        out[f"frobenius_ratio_{a}"] = float(np.exp(np.mean(np.log(
            fro / result["theory_frobenius"][i]))))
    dw = result["deep_widths"]
    dbig = dw >= int(result["deep_fit_from"])
    for i, a in enumerate(str(a) for a in result["deep_activations"]):
        mean = result["deep_norm"][i].mean(axis=-1)
        out[f"slope_minus_theory_three_layer_{a}"] = (_slope(dw[dbig], mean[dbig])
                                                      - float(result["predicted_exponent"]))
        g = result["deep_grad_norm"][i].mean(axis=-1)[dbig]
        out[f"grad_variation_three_layer_{a}"] = float(np.ptp(g) / np.mean(g))
    return out


def numbers(config) -> dict:
    out = {}
    for a in config["activations"]:
        if a == "relu":
            out["relu_exact_rel_err"] = identity(
                at_most(1e-12), "ReLU: max relative error of ||H|| against |x|/sqrt(md) (exact "
                "algebra)")
        else:
            # smoke 1.0018 / 0.9996 (tanh / softplus; seeds 0-4: 0.988-1.010), quick 1.0071 /
            # 1.0005 (seeds 0-4: 0.996-1.007); control laws_scaled_1.03: 0.973 / 0.970.
            out[f"law_ratio_{a}"] = agreement(
                around(1.0, 0.02), f"{a}: measured over exact-law mean ||H||, geometric mean "
                "over widths")
            # smoke 0.014 / 0.004 (seeds 0-4: within 0.019), quick -0.002 / 0.000 (within
            # 0.010); control law_without_sqrt_log: 0.05-0.06 smoke, about 0.04 quick.
            out[f"slope_minus_theory_{a}"] = agreement(
                around(0.0, 0.03), f"{a}: log-log slope of mean ||H|| on the large widths, "
                "minus the exact law's")
        # grad / frobenius: smoke within 0.006 of 1 (seeds 0-4), quick within 0.002;
        # controls laws_scaled_1.03: 0.97; gradient_without_first_layer: 1.15-1.48.
        out[f"grad_ratio_{a}"] = agreement(
            around(1.0, 0.01), f"{a}: mean ||grad f|| over its infinite-width limit (large "
            "widths)")
        out[f"frobenius_ratio_{a}"] = agreement(
            around(1.0, 0.01), f"{a}: mean ||H||_F over its infinite-width limit (large widths)")
    for a in config["deep_activations"]:
        # smoke 0.061 / -0.012 (tanh / relu), quick 0.063 / -0.002 (tanh: the sqrt(log m)
        # factor adds about 0.5 / log m); control three_layer_exponent_-1: 0.49-0.56.
        out[f"slope_minus_theory_three_layer_{a}"] = agreement(
            around(0.0, 0.1), f"three layers, {a}: log-log slope of mean ||H|| minus -1/2")
        # smoke 0.043 / 0.077, quick 0.042 / 0.090 (three seeds at m = 64 dominate).
        out[f"grad_variation_three_layer_{a}"] = observation(
            at_most(0.15), f"three layers, {a}: spread of mean ||grad f|| over widths / mean")
    return out


def _scaled_laws(factor):
    def apply(result, config):
        return dict(result, **{k: factor * result[k] for k in
                               ("theory_norm", "theory_grad_norm", "theory_frobenius")})
    return apply


def _law_without_sqrt_log(result, config):
    """The smooth-activation law as ``c / sqrt(m)``: matched at the narrowest width, without the
    ``sqrt(log m)`` growth of the maximum over units."""
    widths = result["widths"].astype(float)
    shrink = np.sqrt(np.log(widths[0]) / np.log(widths))
    smooth = np.array([a != "relu" for a in result["activations"].astype(str)])
    factor = np.where(smooth[:, None], shrink[None, :], 1.0)
    return dict(result, theory_norm=result["theory_norm"] * factor)


def _gradient_without_first_layer(result, config):
    """``||grad f||^2 -> E[phi(z)^2]`` only: the output layer's part of the limit."""
    scale = 1.0  # z ~ N(0, |x|^2 / d) with |x| = sqrt(d)
    return dict(result, theory_grad_norm=np.array([
        math.sqrt(lin.gaussian_expectation(lambda z, a=a: get_activation(a).phi(z) ** 2, scale))
        for a in result["activations"].astype(str)]))


def _hessian_like_kernel_change(result, config):
    return dict(result, predicted_exponent=np.array(-1.0))


CONTROLS = (
    Control("laws_scaled_1.03", "the mean law of ||H|| and the limits of ||grad f||, ||H||_F "
            "scaled by 1.03", _scaled_laws(1.03)),
    Control("law_without_sqrt_log", "||H|| ~ c/sqrt(m) without the sqrt(log m) factor",
            _law_without_sqrt_log),
    Control("gradient_without_first_layer", "lim ||grad f||^2 = E[phi(z)^2] (output layer only)",
            _gradient_without_first_layer),
    Control("three_layer_exponent_-1", "three-layer ||H|| ~ 1/m", _hessian_like_kernel_change),
)


@style.styled
def plot(result):
    widths, acts = result["widths"], [str(a) for a in result["activations"]]
    nums = measure(result)
    big = widths >= int(result["fit_from"])
    fig, axes = style.panels(4, ncols=2, height=5.2)
    ax = axes[0]
    for i, a in enumerate(acts):
        mean = result["norm"][i].mean(axis=-1)
        label = (f"{a}: sim/theory {nums[f'law_ratio_{a}']:.4f}" if a != "relu"
                 else "relu (exact |x|/sqrt(md))")
        line, = ax.plot(widths, mean, "o", ms=3, label=label)
        ax.plot(widths, result["theory_norm"][i], "-", color=line.get_color(), lw=1)
    ax.plot([], [], "k-", lw=1, label="theory: exact law (mean)")
    ax.set(xscale="log", yscale="log", xlabel="width m", ylabel=r"$\|H\|$ (two layers)")
    style.title(ax, "output Hessian spectral norm at init")
    style.legend(ax, loc="lower left")
    ax = axes[1]
    for i, a in enumerate(acts):
        scaled = result["norm"][i] * np.sqrt(widths)[:, None]
        if a != "relu":
            scaled = scaled / np.sqrt(np.log(widths))[:, None]
        line, = ax.plot(widths, scaled.mean(axis=-1), "o-", ms=3, label=a)
        th = result["theory_norm"][i] * np.sqrt(widths)
        ax.plot(widths, th / (np.sqrt(np.log(widths)) if a != "relu" else 1.0), "--",
                color=line.get_color(), lw=1)
    ax.axvline(widths[big][0], color="k", ls=":", lw=0.8)
    ax.plot([], [], "k--", lw=1, label="theory")
    ax.plot([], [], "k:", lw=0.8, label="start of the fits")
    ax.set(xscale="log", xlabel="width m",
           ylabel=r"$\|H\| \sqrt{m / \log m}$  (relu: $\|H\| \sqrt{m}$)")
    style.title(ax, "rescaled norm")
    style.legend(ax)
    ax = axes[2]
    for i, a in enumerate(acts):
        line, = ax.plot(widths, result["grad_norm"][i].mean(axis=-1), "o-", ms=3,
                        label=rf"$\|\nabla f\|$, {a}")
        ax.axhline(result["theory_grad_norm"][i], color=line.get_color(), ls=":", lw=1)
        ax.plot(widths, result["frobenius"][i].mean(axis=-1), "s--", ms=2.5,
                color=line.get_color(), label=rf"$\|H\|_F$, {a}")
        ax.axhline(result["theory_frobenius"][i], color=line.get_color(), ls="-.", lw=0.8)
    ax.set(xscale="log", xlabel="width m", ylabel="norm")
    ax.margins(y=0.4)
    style.title(ax, "gradient and Frobenius norms stay O(1) (lines: infinite width)")
    style.legend(ax, ncol=3, loc="lower center")
    ax = axes[3]
    dw = result["deep_widths"]
    predicted = float(result["predicted_exponent"])
    for i, a in enumerate(str(a) for a in result["deep_activations"]):
        slope = nums[f"slope_minus_theory_three_layer_{a}"] + predicted
        line, = ax.plot(dw, result["deep_norm"][i].mean(axis=-1), "o-", ms=3,
                        label=rf"$\|H\|$, {a}: slope {slope:.3f}")
        ax.plot(dw, result["deep_grad_norm"][i].mean(axis=-1), "s--", ms=3,
                color=line.get_color(), label=rf"$\|\nabla f\|$, {a}")
    ref = result["deep_norm"][:, 0].mean() * (dw / dw[0]) ** predicted
    ax.plot(dw, ref, "k:", label=f"theory: m^({predicted:g})")
    ax.set(xscale="log", yscale="log", xlabel="width m")
    style.title(ax, "three layers (Lanczos on exact HVPs)")
    style.legend(ax)
    return fig


def memory(config) -> int:
    """Peak bytes: the larger of the widest two-layer run (closed form) and the widest deep run
    (Lanczos), as each run checks itself (:func:`ntkdyn.numerics.memory.estimate_bytes` plus
    one Gaussian buffer), plus every run's bookkeeping."""
    d, B = config["d"], fp.FLOAT64_BYTES
    m2, m3 = max(config["widths"]), max(config["deep_widths"])
    two = fp.estimate_bytes([d, m2, 1]) + B * d * m2
    deep = fp.estimate_bytes([d, m3, m3, 1], "lanczos") + B * d * m3
    runs = (len(config["activations"]) * len(config["widths"]) * config["seeds"]
            + len(config["deep_activations"]) * len(config["deep_widths"])
            * config["deep_seeds"])
    return max(two, deep) + runs * fp.RUN_OVERHEAD_BYTES


EXPERIMENT = Experiment(
    name=NAME, description=DESCRIPTION,
    configs={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    memory=memory,
    config_types={"deep_widths": ct.ListOf(ct.positive_int()),
                  "deep_activations": ct.COMMON["activations"],
                  "deep_seeds": ct.positive_int(), "deep_fit_from": ct.positive_int(),
                  "lanczos_tol": ct.positive_float()},
    numbers=numbers, measure=measure, plot=plot, controls=CONTROLS,
    runs=runs, run=run, combine=combine)
