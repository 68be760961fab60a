"""weight-change: training moves the weights by O(1) while the relative change falls like m^(-1/2).

Liu, Zhu & Belkin (2020) present the transition to linearity as distinct from lazy training
(abstract); this experiment measures both sides: the distance the weights move stays ``O(1)``, while
the relative change ``||w_T - w_0|| / ||w_0||`` (laziness) falls like ``m^(-1/2)``. Two-layer
networks with a linear output in the NTK parameterization, trained by full-batch GD on the MSE loss
to ``fraction`` of the initial loss (the runs of ``kernel-change``). Theory (derived here,
:func:`ntkdyn.theory.linearity.linearized_weight_change`): on the linearised model the same steps
move the weights by
``||w_T - w_0||^2 = sum_i (1 - (1 - lr lambda_i / n)^T)^2 (u_i . r_0)^2 / lambda_i`` (eigenpairs of
``K_0``), a width-independent ``O(1)``, while ``||w_0|| ~ sqrt(#params) ~ m``. Agreement numbers:
the fitted slopes of ``||w_T - w_0||`` (about 0) and of ``||w_T - w_0|| / ||w_0||`` (about -1/2),
and measured over predicted weight change at the largest width.
"""
from __future__ import annotations

import numpy as np

from ..base.fitting import loglog_slope
from .kernel_change import train_run

NAME = "weight-change"
DESCRIPTION = ("||w_T - w_0|| = O(1) while ||w_T - w_0|| / ||w_0|| ~ m^(-1/2); "
               "linearised-model prediction")

QUICK = {
    "n": 60, "d": 10, "widths": [2 ** k for k in range(6, 13)], "seeds": 2,
    "variants": ["linear-tanh", "linear-relu"], "fraction": 1e-3, "lr_factor": 1.5,
    "max_steps": 20000, "seed": 0,
}
PAPER = {
    "n": 100, "d": 10, "widths": [2 ** k for k in range(6, 15)], "seeds": 5,
    "variants": ["linear-tanh", "linear-relu"], "fraction": 1e-3, "lr_factor": 1.5,
    "max_steps": 100000, "seed": 0,
}
TARGETS = {
    "slope_relative_linear-tanh": (-0.6, -0.4),
    "slope_relative_linear-relu": (-0.6, -0.4),
    "slope_absolute_linear-tanh": (-0.1, 0.1),
    "slope_absolute_linear-relu": (-0.1, 0.1),
    "prediction_ratio_widest_linear-tanh": (0.95, 1.05),
    "prediction_ratio_widest_linear-relu": (0.95, 1.05),
}


def runs(config) -> list[dict]:
    keys = ("n", "d", "fraction", "lr_factor", "max_steps", "seed")
    for v in config["variants"]:
        if not str(v).startswith("linear"):
            raise ValueError(f"variants must be linear-output variants ('linear-tanh', "
                             f"'linear-relu'), got {v!r}")
    if len(config["widths"]) < 2:
        raise ValueError(f"widths must hold at least two widths for the slope fit, "
                         f"got {config['widths']}")
    return [dict({k: config[k] for k in keys}, variant=v, width=int(m), replicate=r)
            for v in config["variants"] for m in config["widths"] for r in range(config["seeds"])]


def run(point) -> dict:
    r = train_run(point)
    return {k: r[k] for k in ("weight_change", "weight_norm", "predicted_weight_change",
                              "kernel_change", "steps", "converged")}


def combine(config, results) -> dict:
    shape = (len(config["variants"]), len(config["widths"]), int(config["seeds"]))

    def grab(key):
        return np.array([float(r[key]) for r in results]).reshape(shape)

    return {"variants": np.array(config["variants"]), "widths": np.asarray(config["widths"]),
            **{k: grab(k) for k in ("weight_change", "weight_norm", "predicted_weight_change",
                                    "kernel_change", "steps", "converged")}}


def compute(config) -> dict:
    return combine(config, [run(p) for p in runs(config)])


def agreement(result) -> dict:
    widths = result["widths"]
    out = {}
    for i, v in enumerate(str(v) for v in result["variants"]):
        dw, w0 = result["weight_change"][i], result["weight_norm"][i]
        out[f"slope_absolute_{v}"] = loglog_slope(widths, dw.mean(axis=-1))
        out[f"slope_relative_{v}"] = loglog_slope(widths, (dw / w0).mean(axis=-1))
        out[f"prediction_ratio_widest_{v}"] = float(
            np.mean(dw[-1] / result["predicted_weight_change"][i, -1]))
    out["all_converged"] = float(np.all(result["converged"] == 1.0))
    return out


def plot(result):
    import matplotlib.pyplot as plt

    widths = result["widths"]
    agr = agreement(result)
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4))
    for i, v in enumerate(str(v) for v in result["variants"]):
        dw, w0 = result["weight_change"][i], result["weight_norm"][i]
        line, = axes[0].plot(widths, dw.mean(axis=-1), "o", label=(
            f"{v}: slope {agr[f'slope_absolute_{v}']:.3f}"))
        axes[0].plot(widths, result["predicted_weight_change"][i].mean(axis=-1), "-",
                     color=line.get_color(), lw=1)
        axes[1].plot(widths, (dw / w0).mean(axis=-1), "o-", color=line.get_color(),
                     label=f"{v}: slope {agr[f'slope_relative_{v}']:.3f}")
    axes[0].plot([], [], "k-", lw=1, label="theory: linearised GD, same steps")
    axes[0].set(xscale="log", xlabel="width m", ylabel=r"$\|w_T - w_0\|$",
                title="Distance travelled: O(1), independent of width")
    axes[0].set_ylim(0, None)
    rel0 = (result["weight_change"][:, 0] / result["weight_norm"][:, 0]).mean()
    axes[1].plot(widths, rel0 * (widths / widths[0]) ** -0.5, "k:", label="m^(-1/2)")
    axes[1].set(xscale="log", yscale="log", xlabel="width m",
                ylabel=r"$\|w_T - w_0\| / \|w_0\|$", title="Relative change: lazy weights")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
