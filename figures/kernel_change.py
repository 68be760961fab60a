"""kernel-change: the NTK barely moves in training with a linear output, and moves O(1) without one.

Liu, Zhu & Belkin 2020: the tangent kernel of a wide network is nearly constant when the Hessian
norm is small (a linear output layer, no bottleneck), and not otherwise (the two counter-examples
of its abstract). Full-batch gradient descent on the MSE loss, from the NTK-parameterized
initialization, until the loss is ``fraction`` of its initial value
(``lr = lr_factor / lambda_max(K_0 / n)``; ``numerics.training.gradient_descent`` with
``stop_below=fraction``); the relative kernel change ``||K_T - K_0||_F / ||K_0||_F`` is measured
against the width for

* ``linear-tanh``, ``linear-relu``: two-layer networks with a linear output. The Hessian bound
  gives ``O(R / sqrt(m))``; in the NTK parameterization the change falls faster, close to
  ``1/m`` (measured);
* ``output-tanh``, ``output-relu``: the same networks with ``tanh`` applied to the output.
  ``K_g = psi'(f(x)) psi'(f(z)) K_f`` changes by ``Theta(1)`` as ``f`` moves to the labels
  (the rank-one Hessian term ``psi''(f) grad f grad f^T``);
* ``bottleneck``: ``[d, m, b, m, 1]`` tanh networks with a narrow hidden layer of width ``b``.

Gradient descent converges in every case (the loss curves are shown): linearity is not
needed for optimization. Agreement numbers: fitted log-log slopes of the kernel change,
and whether every run converged.
"""
from __future__ import annotations

import numpy as np

from ..base.fitting import loglog_slope
from ..numerics.laziness import LINEARITY_VARIANTS, linearity_network, measure_laziness
from ..numerics.synthetic import sphere_tanh_teacher

NAME = "kernel-change"
DESCRIPTION = ("relative NTK change after training vs width: falls with a linear output, flat "
               "with a tanh output or a bottleneck")

VARIANTS = LINEARITY_VARIANTS

QUICK = {
    "n": 60, "d": 10, "widths": [2 ** k for k in range(6, 12)], "seeds": 2,
    "variants": list(VARIANTS), "bottleneck": 2, "fraction": 1e-3, "lr_factor": 1.5,
    "max_steps": 20000, "fit_from": 2 ** 8, "seed": 0,
}
PAPER = {
    "n": 100, "d": 10, "widths": [2 ** k for k in range(6, 13)], "seeds": 5,
    "variants": list(VARIANTS), "bottleneck": 2, "fraction": 1e-3, "lr_factor": 1.5,
    "max_steps": 100000, "fit_from": 2 ** 8, "seed": 0,
}
TARGETS = {
    "slope_linear-tanh": (-10.0, -0.5),
    "slope_linear-relu": (-10.0, -0.5),
    "slope_output-tanh": (-0.1, 0.1),
    "slope_output-relu": (-0.25, 0.25),
    "slope_bottleneck": (-0.25, 0.25),
    "all_converged": (1.0, 1.0),
}


def train_run(point) -> dict:
    """Train one network; the kernel change, the weight change and the lazy-regime prediction."""
    data = sphere_tanh_teacher(point["n"], point["d"], point["seed"])
    net = linearity_network(point["variant"], point["d"], point["width"],
                            point.get("bottleneck", 2))
    seed = [point["seed"], point["replicate"], point["width"], VARIANTS.index(point["variant"])]
    return measure_laziness(net, data.X, data.Y, seed, point["lr_factor"], point["fraction"],
                            point["max_steps"])


def runs(config) -> list[dict]:
    keys = ("n", "d", "bottleneck", "fraction", "lr_factor", "max_steps", "seed")
    unknown = [v for v in config["variants"] if v not in VARIANTS]
    if unknown:
        raise ValueError(f"variants must be among {list(VARIANTS)}, got {unknown}")
    if sum(int(m) >= int(config["fit_from"]) for m in config["widths"]) < 2:
        raise ValueError(f"widths must hold at least two widths >= fit_from = "
                         f"{config['fit_from']} for the slope fit, got {config['widths']}")
    return [dict({k: config[k] for k in keys}, variant=v, width=int(m), replicate=r)
            for v in config["variants"] for m in config["widths"] for r in range(config["seeds"])]


def run(point) -> dict:
    return train_run(point)


def combine(config, results) -> dict:
    V, W, S = len(config["variants"]), len(config["widths"]), int(config["seeds"])
    shape = (V, W, S)

    def grab(key):
        return np.array([float(r[key]) for r in results]).reshape(shape)

    longest = max(len(r["losses"]) for r in results)
    # Curves padded with their final value; ``steps`` says where each run stopped.
    curves = np.empty((V * W * S, longest))
    for i, r in enumerate(results):
        k = len(r["losses"])
        curves[i, :k] = r["losses"]
        curves[i, k:] = r["losses"][-1]
    return {
        "variants": np.array(config["variants"]), "widths": np.asarray(config["widths"]),
        "fit_from": np.array(config["fit_from"]), "fraction": np.array(config["fraction"]),
        "kernel_change": grab("kernel_change"), "weight_change": grab("weight_change"),
        "weight_norm": grab("weight_norm"),
        "predicted_weight_change": grab("predicted_weight_change"),
        "steps": grab("steps"), "converged": grab("converged"),
        "losses": curves.reshape(shape + (longest,)),
    }


def compute(config) -> dict:
    return combine(config, [run(p) for p in runs(config)])


def agreement(result) -> dict:
    widths = result["widths"]
    out = {}
    for i, v in enumerate(str(v) for v in result["variants"]):
        # Linear outputs fall over the whole range; the flat cases are fitted on the large widths.
        sel = np.ones_like(widths, dtype=bool) if v.startswith("linear") else (
            widths >= int(result["fit_from"]))
        change = result["kernel_change"][i][sel].mean(axis=-1)
        out[f"slope_{v}"] = loglog_slope(widths[sel], change)
        out[f"kernel_change_widest_{v}"] = float(result["kernel_change"][i, -1].mean())
    out["all_converged"] = float(np.all(result["converged"] == 1.0))
    return out


def plot(result):
    import matplotlib.pyplot as plt

    widths, variants = result["widths"], [str(v) for v in result["variants"]]
    agr = agreement(result)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    for i, v in enumerate(variants):
        kc = result["kernel_change"][i]
        line = ax.errorbar(widths, kc.mean(axis=-1), yerr=kc.std(axis=-1), marker="o", capsize=3,
                           label=f"{v}: slope {agr[f'slope_{v}']:.2f}")
        ax.scatter(np.repeat(widths, kc.shape[-1]), kc.ravel(), s=6, alpha=0.35,
                   color=line[0].get_color())
    lin0 = result["kernel_change"][0, 0].mean()
    ax.plot(widths, lin0 * (widths / widths[0]) ** -0.5, "k:", label="bound: m^(-1/2)")
    ax.plot(widths, lin0 * (widths / widths[0]) ** -1.0, "k--", lw=0.8, label="m^(-1)")
    ax.set(xscale="log", yscale="log", xlabel="width m", ylabel=r"$\|K_T - K_0\|_F / \|K_0\|_F$",
           title=f"NTK change after training to {float(result['fraction']):g} of the initial loss")
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, v in enumerate(variants):
        curve = result["losses"][i, -1, 0, :int(result["steps"][i, -1, 0]) + 1]
        ax.plot(np.arange(curve.size), curve, label=f"{v}, m = {widths[-1]}")
    ax.axhline(float(result["fraction"]), color="k", ls=":", lw=0.8)
    ax.set(yscale="log", xlabel="gradient-descent step", ylabel="loss / initial loss",
           title="Gradient descent converges in every case")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
