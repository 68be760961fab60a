"""hessian-width: the output Hessian's norm falls like sqrt(log m)/sqrt(m), the gradient stays O(1).

Liu, Zhu & Belkin (2020, abstract): the transition to linearity of wide networks comes from the
scaling of the Hessian's norm with width. Simulation: the spectral norm of the Hessian of ``f(x)``
with respect to all weights at initialization, one input on the sphere of radius ``sqrt(d)``: for
two-layer networks by the exact block-diagonal closed form streamed over ``W_1``
(:func:`ntkdyn.numerics.hessian_two_layer.two_layer_hessian`, widths to 10^7 in the paper
configuration), for three-layer networks by Lanczos on exact Hessian-vector products. Theory
(derived here; for two layers the Hessian is block-diagonal over the hidden units, one 2 x 2 block
per unit on ``span(x, e_v)``): the exact law of ``||H|| = max_j G_j / sqrt(m)`` at initialization
(:func:`ntkdyn.theory.linearity.hessian_norm_mean`) and, for ReLU, ``||H|| = |x| / sqrt(m d)``
exactly; ``||grad f||`` and ``||H||_F`` tend to width-independent limits. Agreement numbers: fitted
log-log slopes of ``||H|| / sqrt(log m)`` on the large widths, the ratio of measured to predicted
mean norms, and the spread of ``||grad f||`` across widths.
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

NAME = "hessian-width"
DESCRIPTION = ("Hessian spectral norm ~ sqrt(log m)/sqrt(m) while ||grad f|| = O(1) "
               "(transition to linearity)")

QUICK = {
    "d": 10, "widths": [2 ** k for k in range(6, 21)], "activations": ["tanh", "softplus", "relu"],
    "seeds": 4, "fit_from": 2 ** 12,
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
TARGETS = {
    "slope_sqrtlog_tanh": (-0.55, -0.45),
    "slope_sqrtlog_softplus": (-0.55, -0.45),
    "slope_raw_relu": (-0.5 - 1e-9, -0.5 + 1e-9),
    "relu_exact_rel_err": (0.0, 1e-12),
    "law_ratio_tanh": (0.9, 1.1),
    "law_ratio_softplus": (0.9, 1.1),
    "grad_variation_tanh": (0.0, 0.05),
    "grad_variation_softplus": (0.0, 0.05),
    "grad_variation_relu": (0.0, 0.05),
    "frobenius_slope_tanh": (-0.05, 0.05),
    "frobenius_ratio_tanh": (0.9, 1.1),
    "slope_three_layer_tanh": (-0.6, -0.4),
    "slope_three_layer_relu": (-0.6, -0.4),
    "grad_variation_three_layer_tanh": (0.0, 0.1),
    "grad_variation_three_layer_relu": (0.0, 0.1),
}


def runs(config) -> list[dict]:
    """One run per (depth, activation, width, replicate); all share the replicate's input."""
    for key, start in (("widths", "fit_from"), ("deep_widths", "deep_fit_from")):
        if sum(int(m) >= int(config[start]) for m in config[key]) < 2:
            raise ValueError(f"{key} must hold at least two widths >= {start} = {config[start]} "
                             f"for the slope fit, got {config[key]}")
    base = {"d": int(config["d"]), "seed": int(config["seed"]),
            "lanczos_tol": float(config["lanczos_tol"])}
    out = [dict(base, depth=2, activation=a, width=int(m), replicate=r)
           for a in config["activations"] for m in config["widths"] for r in range(config["seeds"])]
    out += [dict(base, depth=3, activation=a, width=int(m), replicate=r)
            for a in config["deep_activations"] for m in config["deep_widths"]
            for r in range(config["deep_seeds"])]
    return out


def run(point) -> dict:
    """``||H||``, ``||grad f||`` (and for two layers ``||H||_F``) of one network at one input."""
    d, m, L = point["d"], point["width"], point["depth"]
    widths = [d] + [m] * (L - 1) + [1]
    # Refuse widths that do not fit before drawing any weight (weights + one Gaussian buffer).
    method = "closed_form" if L == 2 else "lanczos"
    require_memory(estimate_bytes(widths, method) + 8 * widths[0] * widths[1],
                   f"a depth-{L} network of width {m}")
    x = sphere_inputs(1, d, [point["seed"], point["replicate"]])[0]
    net = MLP(widths, activation=point["activation"])
    params = net.init(seed=[point["seed"], point["replicate"], L, m])
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
    acts, widths, S = config["activations"], np.asarray(config["widths"]), int(config["seeds"])
    dacts, dwidths = config["deep_activations"], np.asarray(config["deep_widths"])
    DS = int(config["deep_seeds"])
    n2 = len(acts) * len(widths) * S

    def grab(rs, key, shape):
        return np.array([float(r[key]) for r in rs]).reshape(shape)

    two, three = results[:n2], results[n2:]
    shape2, shape3 = (len(acts), len(widths), S), (len(dacts), len(dwidths), DS)
    d = int(config["d"])
    out = {
        "activations": np.array(acts), "widths": widths, "d": np.array(d),
        "norm": grab(two, "norm", shape2), "grad_norm": grab(two, "grad_norm", shape2),
        "frobenius": grab(two, "frobenius", shape2),
        "theory_norm": np.array([[_theory_mean(a, int(m), d) for m in widths] for a in acts]),
        "deep_activations": np.array(dacts), "deep_widths": dwidths,
        "deep_norm": grab(three, "norm", shape3),
        "deep_grad_norm": grab(three, "grad_norm", shape3),
        "fit_from": np.array(config["fit_from"]),
        "deep_fit_from": np.array(config["deep_fit_from"]),
    }
    out["theory_grad_norm"] = np.array([
        lin.gradient_norm_limit(get_activation(a).phi, get_activation(a).dphi, math.sqrt(d), d)
        for a in acts])
    out["theory_frobenius"] = np.array([
        math.sqrt(lin.frobenius_norm_sq_limit(get_activation(a).dphi, get_activation(a).d2phi,
                                              math.sqrt(d), d)) for a in acts])
    return out


def compute(config) -> dict:
    return combine(config, [run(p) for p in runs(config)])


def _slope(widths, values, sqrtlog=False):
    y = np.log(values) - (0.5 * np.log(np.log(widths)) if sqrtlog else 0.0)
    return float(np.polyfit(np.log(widths), y, 1)[0])


def agreement(result) -> dict:
    widths, acts = result["widths"], [str(a) for a in result["activations"]]
    big = widths >= int(result["fit_from"])
    out = {}
    d = int(result["d"])
    for i, a in enumerate(acts):
        mean = result["norm"][i].mean(axis=-1)
        out[f"slope_raw_{a}"] = _slope(widths[big], mean[big])
        out[f"slope_sqrtlog_{a}"] = _slope(widths[big], mean[big], sqrtlog=True)
        # Geometric mean over widths of (mean over seeds) / (predicted mean).
        out[f"law_ratio_{a}"] = float(np.exp(np.mean(np.log(mean / result["theory_norm"][i]))))
        g = result["grad_norm"][i].mean(axis=-1)[widths >= min(256, widths.max())]
        out[f"grad_variation_{a}"] = float(np.ptp(g) / np.mean(g))
        if a == "relu":
            exact = math.sqrt(d) / np.sqrt(widths * d)
            rel_err = np.abs(result["norm"][i] / exact[:, None] - 1)
            out["relu_exact_rel_err"] = float(np.max(rel_err))
        else:
            fro = result["frobenius"][i].mean(axis=-1)
            out[f"frobenius_slope_{a}"] = _slope(widths[big], fro[big])
            out[f"frobenius_ratio_{a}"] = float(fro[-1] / result["theory_frobenius"][i])
    dw = result["deep_widths"]
    dbig = dw >= int(result["deep_fit_from"])
    for i, a in enumerate(str(a) for a in result["deep_activations"]):
        mean = result["deep_norm"][i].mean(axis=-1)
        out[f"slope_three_layer_{a}"] = _slope(dw[dbig], mean[dbig])
        out[f"slope_sqrtlog_three_layer_{a}"] = _slope(dw[dbig], mean[dbig], sqrtlog=True)
        g = result["deep_grad_norm"][i].mean(axis=-1)[dbig]
        out[f"grad_variation_three_layer_{a}"] = float(np.ptp(g) / np.mean(g))
    return out


def plot(result):
    import matplotlib.pyplot as plt

    widths, acts = result["widths"], [str(a) for a in result["activations"]]
    agr = agreement(result)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0, 0]
    for i, a in enumerate(acts):
        mean = result["norm"][i].mean(axis=-1)
        line, = ax.plot(widths, mean, "o", ms=4,
                        label=f"{a}: slope of ||H||/sqrt(log m) {agr[f'slope_sqrtlog_{a}']:.3f}"
                        if a != "relu" else f"relu: slope {agr['slope_raw_relu']:.3f}")
        ax.plot(widths, result["theory_norm"][i], "-", color=line.get_color(), lw=1)
    ax.plot([], [], "k-", lw=1, label="theory: exact law (mean); relu |x|/sqrt(md)")
    ax.set(xscale="log", yscale="log", xlabel="width m", ylabel="||H|| (two layers)",
           title="Output Hessian spectral norm at initialization")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    for i, a in enumerate(acts):
        scaled = result["norm"][i] * np.sqrt(widths)[:, None]
        if a != "relu":
            scaled = scaled / np.sqrt(np.log(widths))[:, None]
        line, = ax.plot(widths, scaled.mean(axis=-1), "o-", ms=4, label=a)
        th = result["theory_norm"][i] * np.sqrt(widths)
        ax.plot(widths, th / (np.sqrt(np.log(widths)) if a != "relu" else 1.0), "--",
                color=line.get_color(), lw=1)
    ax.set(xscale="log", xlabel="width m",
           ylabel="||H|| sqrt(m) / sqrt(log m)   (relu: ||H|| sqrt(m))",
           title="Rescaled norm: flat means sqrt(log m)/sqrt(m) (dashed: theory)")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    for i, a in enumerate(acts):
        line, = ax.plot(widths, result["grad_norm"][i].mean(axis=-1), "o-", ms=4,
                        label=f"||grad f||, {a}")
        ax.axhline(result["theory_grad_norm"][i], color=line.get_color(), ls=":", lw=1)
        if a != "relu":
            ax.plot(widths, result["frobenius"][i].mean(axis=-1), "s--", ms=3,
                    color=line.get_color(), label=f"||H||_F, {a}")
            ax.axhline(result["theory_frobenius"][i], color=line.get_color(), ls="-.", lw=0.8)
    ax.set(xscale="log", xlabel="width m", ylabel="norm",
           title="Gradient and Frobenius norms stay O(1) (lines: infinite-width limits)")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    dw = result["deep_widths"]
    for i, a in enumerate(str(a) for a in result["deep_activations"]):
        line, = ax.plot(dw, result["deep_norm"][i].mean(axis=-1), "o-", ms=4,
                        label=f"||H||, {a}: slope {agr[f'slope_three_layer_{a}']:.3f}")
        ax.plot(dw, result["deep_grad_norm"][i].mean(axis=-1), "s--", ms=4,
                color=line.get_color(), label=f"||grad f||, {a}")
    ref = result["deep_norm"][:, 0].mean() * (dw / dw[0]) ** -0.5
    ax.plot(dw, ref, "k:", label="m^(-1/2)")
    ax.set(xscale="log", yscale="log", xlabel="width m",
           title="Three layers (Lanczos on exact HVPs)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
