"""weight-change: training moves the weights by O(1) while the relative change falls like m^(-1/2).

Liu, Zhu & Belkin (2020) present the transition to linearity as distinct from lazy training
(abstract); this experiment measures both sides: the distance the weights move stays ``O(1)``,
while the relative change ``||w_T - w_0|| / ||w_0||`` (laziness) falls like ``m^(-1/2)``.
Two-layer networks with a linear output in the NTK parameterization, trained by full-batch GD on
the MSE loss to ``fraction`` of the initial loss (the runs of ``kernel-change``,
:func:`ntkdyn.figures.kernel_change.train_run`). Theory
(:func:`ntkdyn.theory.linearity.linearized_weight_change`): on the linearised model the same
steps move the weights by
``||w_T - w_0||^2 = sum_i (1 - (1 - lr lambda_i / n)^T)^2 (u_i . r_0)^2 / lambda_i`` (eigenpairs
of ``K_0``), a width-independent ``O(1)``, while ``||w_0|| ~ sqrt(#params) ~ sqrt(m)``
(:func:`ntkdyn.theory.linearity.initial_weight_norm`); the exponents are
``SCALING_EXPONENTS["weight_change"]`` and ``["relative_weight_change"]``.
"""
from __future__ import annotations

import numpy as np

from ..base.fitting import loglog_slope
from ..theory import linearity as lin
from . import config_types as ct
from . import style
from .experiment import Control, Experiment, agreement, around, is_true, observation
from .kernel_change import train_run

NAME = "weight-change"
DESCRIPTION = ("||w_T - w_0|| = O(1) while ||w_T - w_0|| / ||w_0|| ~ m^(-1/2); "
               "linearised-model prediction")

SMOKE = {
    "n": 30, "d": 10, "widths": [64, 256, 1024, 4096], "seeds": 1,
    "variants": ["linear-tanh", "linear-relu"], "fraction": 1e-3, "lr_factor": 1.5,
    "max_steps": 20000, "seed": 0,
}
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
KEYS = ("weight_change", "weight_norm", "predicted_weight_change", "kernel_change", "steps",
        "converged")


def runs(config) -> list[dict]:
    keys = ("n", "d", "fraction", "lr_factor", "max_steps")
    for v in config["variants"]:
        if not str(v).startswith("linear"):
            raise ValueError(f"variants must be linear-output variants ('linear-tanh', "
                             f"'linear-relu'), got {v!r}")
    if len(config["widths"]) < 2:
        raise ValueError(f"widths must hold at least two widths for the slope fit, "
                         f"got {config['widths']}")
    return [dict({k: config[k] for k in keys}, variant=v, width=int(m), replicate=r)
            for v in config["variants"] for m in config["widths"] for r in range(config["seeds"])]


def run(point, seed) -> dict:
    r = train_run(point, seed)
    return {k: r[k] for k in KEYS}


def combine(config, results) -> dict:
    """Stack the runs; the theory side is the linearised prediction of each run (from its
    ``K_0`` and ``r_0``), ``E||w_0||`` per width and the predicted exponents."""
    shape = (len(config["variants"]), len(config["widths"]), int(config["seeds"]))

    def grab(key):
        return np.array([float(r[key]) for r in results]).reshape(shape)

    widths = np.asarray(config["widths"])
    d = int(config["d"])
    return {"variants": np.array(config["variants"]), "widths": widths,
            **{k: grab(k) for k in KEYS},
            "theory_weight_norm": np.array([lin.initial_weight_norm([d, int(m), 1])
                                            for m in widths]),
            "predicted_exponent_absolute": np.array(lin.SCALING_EXPONENTS["weight_change"]),
            "predicted_exponent_relative": np.array(
                lin.SCALING_EXPONENTS["relative_weight_change"])}


def measure(result) -> dict:
    """Slopes minus theory's exponents; measured over predicted weight change and initial norm."""
    widths = result["widths"]
    out = {}
    for i, v in enumerate(str(v) for v in result["variants"]):
        dw, w0 = result["weight_change"][i], result["weight_norm"][i]
        out[f"slope_absolute_minus_theory_{v}"] = (
            loglog_slope(widths, dw.mean(axis=-1))
            - float(result["predicted_exponent_absolute"]))
        out[f"slope_relative_minus_theory_{v}"] = (
            loglog_slope(widths, (dw / w0).mean(axis=-1))
            - float(result["predicted_exponent_relative"]))
        out[f"prediction_ratio_widest_{v}"] = float(
            np.mean(dw[-1] / result["predicted_weight_change"][i, -1]))
        out[f"weight_norm_ratio_{v}"] = float(np.exp(np.mean(np.log(
            w0 / result["theory_weight_norm"][:, None]))))
    out["all_converged"] = float(np.all(result["converged"] == 1.0))
    return out


def numbers(config) -> dict:
    out = {}
    # Measured at smoke, config seeds 0-3 / quick, seed 0; control values in brackets.
    for v in config["variants"]:
        # tanh 0.07, 0.06, -0.08, 0.03 / 0.02; relu -0.05, 0.03, -0.04, -0.04 / 0.00
        out[f"slope_absolute_minus_theory_{v}"] = agreement(
            around(0.0, 0.12), f"{v}: log-log slope of ||w_T - w_0|| on the width, minus "
            "theory's 0")
        # tanh 0.06, 0.06, -0.07, 0.02 / 0.02; relu -0.05, 0.04, -0.05, -0.03 / 0.01
        # [weight_norm_like_m: 0.43 to 0.56]
        out[f"slope_relative_minus_theory_{v}"] = agreement(
            around(0.0, 0.12), f"{v}: log-log slope of ||w_T - w_0|| / ||w_0||, minus theory's "
            "-1/2")
        # 1.0004 to 1.0026 (smoke), 1.0005 / 1.0028 (quick)  [prediction_scaled_1.03: 0.971
        # to 0.974]
        out[f"prediction_ratio_widest_{v}"] = agreement(
            around(1.0, 0.01), f"{v}: ||w_T - w_0|| over the linearised prediction, widest")
        # 0.987 to 1.013 (smoke), 1.003 / 1.006 (quick)  [weight_norm_like_m: 0.35]
        out[f"weight_norm_ratio_{v}"] = agreement(
            around(1.0, 0.03), f"{v}: ||w_0|| over sqrt(#params), geometric mean over widths")
    out["all_converged"] = observation(is_true(), "every run reached the loss fraction")
    return out


def _prediction_scaled(result, config):
    return dict(result, predicted_weight_change=1.03 * result["predicted_weight_change"])


def _relative_like_deep(result, config):
    """``||w_0|| ~ m`` (as for networks with ``m^2`` weights), so laziness ``~ 1/m``."""
    widths = result["widths"].astype(float)
    return dict(result, predicted_exponent_relative=np.array(-1.0),
                theory_weight_norm=result["theory_weight_norm"][0] * widths / widths[0])


CONTROLS = (
    Control("prediction_scaled_1.03", "the linearised weight change scaled by 1.03",
            _prediction_scaled),
    Control("weight_norm_like_m", "||w_0|| ~ m, hence ||w_T - w_0|| / ||w_0|| ~ 1/m",
            _relative_like_deep),
)


@style.styled
def plot(result):
    widths = result["widths"]
    nums = measure(result)
    rel_exp = float(result["predicted_exponent_relative"])
    fig, axes = style.panels(2)
    for i, v in enumerate(str(v) for v in result["variants"]):
        dw, w0 = result["weight_change"][i], result["weight_norm"][i]
        slope = nums[f"slope_absolute_minus_theory_{v}"] + float(
            result["predicted_exponent_absolute"])
        line, = axes[0].plot(widths, dw.mean(axis=-1), "o", label=f"{v}: slope {slope:.3f}")
        axes[0].plot(widths, result["predicted_weight_change"][i].mean(axis=-1), "-",
                     color=line.get_color(), lw=1)
        slope = nums[f"slope_relative_minus_theory_{v}"] + rel_exp
        axes[1].plot(widths, (dw / w0).mean(axis=-1), "o-", color=line.get_color(),
                     label=f"{v}: slope {slope:.3f}")
    axes[0].plot([], [], "k-", lw=1, label="theory: linearised GD, same steps")
    axes[0].set(xscale="log", xlabel="width m", ylabel=r"$\|w_T - w_0\|$")
    axes[0].set_ylim(0, None)
    style.title(axes[0], "distance travelled: O(1), independent of width")
    rel0 = (result["weight_change"][:, 0] / result["weight_norm"][:, 0]).mean()
    axes[1].plot(widths, rel0 * (widths / widths[0]) ** rel_exp, "k:",
                 label=f"theory: m^({rel_exp:g})")
    axes[1].set(xscale="log", yscale="log", xlabel="width m",
                ylabel=r"$\|w_T - w_0\| / \|w_0\|$")
    style.title(axes[1], "relative change: lazy weights")
    style.legend(axes[0], loc="lower left")
    style.legend(axes[1], loc="lower left")
    return fig


EXPERIMENT = Experiment(
    name=NAME, description=DESCRIPTION,
    configs={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    config_types={"variants": ct.ListOf(ct.Choice(("linear-tanh", "linear-relu")), distinct=True)},
    numbers=numbers, measure=measure, plot=plot, controls=CONTROLS,
    runs=runs, run=run, combine=combine)
