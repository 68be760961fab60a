"""deep-linear-modes: singular-mode dynamics of deep linear networks, ODE against gradient descent.

Theory: :func:`ntkdyn.theory.deep_linear_modes.mode_dynamics`, the balanced mode ODE
``du/dt = L u^(2-2/L) (s - u)`` (Saxe, McClelland & Ganguli 2014) in gradient-flow time
``t = lr * steps`` of the loss ``1/(2n) sum ||f - y||^2``. Simulation: full-batch GD
(:func:`ntkdyn.numerics.training.gradient_descent`) of
``MLP([d, N, ..., N, k], activation="linear", parameterization="standard")`` on whitened Gaussian
inputs with a linear teacher of singular values ``s``
(:func:`ntkdyn.numerics.synthetic.linear_teacher`).

Two starts:

* the decoupled balanced initialisation ``W_1 = R_2 a0 V^T``, ``W_l = R_{l+1} a0 R_l^T``,
  ``W_L = U a0 R_L^T``: GD stays decoupled and every mode follows the scalar map
  ``a <- a + lr a^(L-1)(s - a^L)`` exactly (an identity); its distance to the ODE is the
  explicit-Euler error, of order ``lr^1`` (``theory.deep_linear_modes.GD_ERROR_EXPONENT``),
  fitted on a log-log plot over ``lr_L x {8, 4, 2, 1}``;
* small random initialisation (``sigma``): the initial projection of the weights is no usable
  ``u0`` (it can be negative), so the rate is tested without any fitted parameter by the rise
  time from ``u = s/5`` to ``u = 4s/5`` against :func:`ntkdyn.theory.deep_linear_modes.mode_time`;
  for depth 2 the whole trajectory is also compared with the logistic solution from the
  theoretical ``u0`` of the growing component
  (:func:`ntkdyn.theory.deep_linear_modes.growing_component_u0`). The plot shows, for shape
  only, the ODE shifted in time per mode (:func:`ntkdyn.numerics.deep_linear.fit_time_shifts`);
  a fitted shift absorbs a rate error, so no number is taken from it.
"""
from __future__ import annotations

import numpy as np

from ..base.fitting import loglog_slope
from ..numerics.deep_linear import decoupled_init, fit_time_shifts, mode_strengths
from ..numerics.networks import MLP
from ..numerics.synthetic import linear_teacher
from ..numerics.training import gradient_descent
from ..theory.deep_linear_modes import (GD_ERROR_EXPONENT, closed_form, growing_component_u0,
                                        mode_dynamics, mode_time)
from . import config_types as ct
from . import footprint as fp
from . import style
from .experiment import Control, Experiment, agreement, around, at_most, identity
from .progress import counter

NAME = "deep-linear-modes"
DESCRIPTION = "deep linear nets: mode strengths u(t)/s from the ODE vs full-batch GD (depths 1-6)"

#: Levels (fractions of the fixed point) between which the rise time is measured.
RISE_LEVELS = (0.2, 0.8)

SMOKE = {
    "n": 32, "d": 4, "singular_values": [3.0, 2.0, 1.0, 0.5], "width": 8, "a0": 0.5,
    "depths": [1, 2, 3], "lrs": [0.03, 0.015, 0.0035], "lr_factors": [8, 4, 2, 1],
    "t_final": 8.0, "num_records": 150, "random_depths": [2], "random_width": 30,
    "random_sigma": 0.01, "random_lrs": [0.01], "random_t_final": [15.0], "seed": 0,
}
QUICK = {
    "n": 32, "d": 4, "singular_values": [3.0, 2.0, 1.0, 0.5], "width": 8, "a0": 0.5,
    "depths": [1, 2, 3, 4, 6], "lrs": [0.03, 0.015, 0.0035, 0.0015, 0.0005],
    "lr_factors": [8, 4, 2, 1], "t_final": 12.0, "num_records": 300,
    "random_depths": [2, 3], "random_width": 50, "random_sigma": 0.01,
    "random_lrs": [0.01, 0.01], "random_t_final": [15.0, 45.0], "seed": 0,
}
PAPER = dict(QUICK, random_width=100, random_sigma=0.003, random_t_final=[20.0, 120.0],
             num_records=600)


def _train(net, params, X, Y, lr, t_final, num_records, U, V):
    steps = int(round(t_final / lr))
    every = max(1, steps // num_records)
    traj = gradient_descent(net, params, X, Y, lr, steps, every=every,
                            record={"u": lambda _n, p, _x, _y: mode_strengths(p, U, V)})
    return traj.record_times, traj.observables["u"], traj.record_steps


def scalar_map(s, a0, depth, lr, steps):
    """Iterates ``u = a^L`` of ``a <- a + lr a^(L-1) (s - a^L)`` (GD on one balanced mode)."""
    a = np.full(len(s), float(a0))
    out = np.empty((steps + 1, len(s)))
    out[0] = a ** depth
    for k in range(steps):
        a = a + lr * a ** (depth - 1) * (s - a ** depth)
        out[k + 1] = a ** depth
    return out


def crossing_times(t, u, levels):
    """First time each column of ``u`` ``(T, m)`` reaches ``levels`` ``(m,)`` (linear
    interpolation); NaN where it never does or already does at ``t[0]``."""
    out = np.full(u.shape[1], np.nan)
    for a in range(u.shape[1]):
        above = np.nonzero(u[:, a] >= levels[a])[0]
        if above.size and above[0] > 0:
            i = above[0]
            out[a] = np.interp(levels[a], u[i - 1:i + 1, a], t[i - 1:i + 1])
    return out


def _theory(result, rate=1.0):
    """The theory side, every curve evaluated at ``rate * t`` (``rate = 1``: the mode ODE)."""
    s = result["s"]
    out = {}
    for L in result["depths"]:
        L = int(L)
        u0 = float(result["a0"]) ** L
        for j in range(len(result["lr_factors"])):
            out[f"u_ode_L{L}_f{j}"] = mode_dynamics(s, u0, L, rate * result[f"t_L{L}_f{j}"])
    lo, hi = RISE_LEVELS
    for L in result["random_depths"]:
        L = int(L)
        out[f"rise_theory_L{L}"] = mode_time(s, lo * s, hi * s, L) / rate
        if L == 2:
            out["ru_noshift_L2"] = closed_form(s, result["ru0_L2"], 2, rate * result["rt_L2"])
    return out


def compute(config, seed) -> dict:
    """GD from the decoupled balanced start (every depth and learning rate) and from small random
    weights, on one data set; the theory curves at the recorded times."""
    data_seed, balanced_seed, random_seed = seed.spawn(3)
    s = np.asarray(config["singular_values"], dtype=np.float64)
    d, m = int(config["d"]), len(s)
    data = linear_teacher(config["n"], d, m, s, seed=np.random.default_rng(data_seed))
    X, Y, U, V = data.X, data.Y, data.info["U"], data.info["V"]
    factors = np.asarray(config["lr_factors"], dtype=np.float64)
    out = {"s": s, "depths": np.asarray(config["depths"]), "lr_factors": factors,
           "a0": np.array(float(config["a0"])),
           "random_depths": np.asarray(config["random_depths"])}
    map_err = 0.0
    depth_seeds = balanced_seed.spawn(len(config["depths"]))
    advance = counter(len(config["depths"]) * len(factors) + len(config["random_depths"]), "run")
    for L, lr, depth_seed in zip(config["depths"], config["lrs"], depth_seeds):
        widths = [d] + [config["width"]] * (L - 1) + [m]
        net = MLP(widths, activation="linear", parameterization="standard")
        for j, (factor, run_seed) in enumerate(zip(factors, depth_seed.spawn(len(factors)))):
            params = decoupled_init(L, U, V, config["width"], config["a0"],
                                    np.random.default_rng(run_seed))
            t, u, steps = _train(net, params, X, Y, lr * factor, config["t_final"],
                                 config["num_records"], U, V)
            out[f"t_L{L}_f{j}"], out[f"u_gd_L{L}_f{j}"] = t, u
            ref = scalar_map(s, config["a0"], L, lr * factor, int(steps[-1]))[steps]
            map_err = max(map_err, float(np.max(np.abs(u - ref))))
            advance()
        out[f"lrs_L{L}"] = lr * factors
    out["scalar_map_err"] = np.array(map_err)
    random_runs = zip(config["random_depths"], config["random_lrs"], config["random_t_final"],
                      random_seed.spawn(len(config["random_depths"])))
    for L, lr, t_final, run_seed in random_runs:
        widths = [d] + [config["random_width"]] * (L - 1) + [m]
        net = MLP(widths, activation="linear", init_scale=config["random_sigma"],
                  parameterization="standard")
        params = net.init(np.random.default_rng(run_seed))
        t, u, _ = _train(net, params, X, Y, lr, t_final, int(round(t_final / lr)), U, V)
        out[f"rt_L{L}"], out[f"ru_gd_L{L}"] = t, u
        advance()
        if L == 2:
            out["ru0_L2"] = growing_component_u0(params[0], params[1], U, V)
    out.update(_theory(out))
    return out


def _rise_times(result, L):
    lo, hi = RISE_LEVELS
    s, t, u = result["s"], result[f"rt_L{L}"], result[f"ru_gd_L{L}"]
    return crossing_times(t, u, hi * s) - crossing_times(t, u, lo * s)


def measure(result) -> dict:
    s = result["s"]
    out = {"scalar_map_err": float(result["scalar_map_err"])}
    for L in result["depths"]:
        L = int(L)
        errs = np.array([np.max(np.abs(result[f"u_gd_L{L}_f{j}"] - result[f"u_ode_L{L}_f{j}"]))
                         for j in range(len(result["lr_factors"]))]) / s.max()
        smallest = int(np.argmin(result[f"lrs_L{L}"]))
        out[f"balanced_max_err_L{L}"] = float(errs[smallest])
        out[f"lr_slope_minus_theory_L{L}"] = (loglog_slope(result[f"lrs_L{L}"], errs)
                                              - GD_ERROR_EXPONENT)
    for L in result["random_depths"]:
        L = int(L)
        ratio = _rise_times(result, L) / result[f"rise_theory_L{L}"]
        out[f"random_rise_time_err_L{L}"] = float(np.max(np.abs(ratio - 1.0)))  # NaN if missed
        if L == 2:
            out["random_noshift_err_L2"] = float(np.max(
                np.max(np.abs(result["ru_gd_L2"] - result["ru_noshift_L2"]), axis=0) / s))
    return out


def numbers(config) -> dict:
    out = {"scalar_map_err": identity(
        at_most(1e-10), "GD on the decoupled balanced start minus the scalar map (exact)")}
    for L in config["depths"]:
        # quick and smoke 0.0042-0.0048; controls rate_1.05: 0.010-0.39, rate_0.97: 0.014-0.24
        out[f"balanced_max_err_L{L}"] = agreement(
            at_most(0.006), f"max |u_GD - u_ODE| / s_max, balanced start, L = {L}, smallest lr")
        # quick and smoke 0.003-0.057; controls rate_1.05: -0.63 to -0.97, rate_0.97: -0.38 to -1.2
        out[f"lr_slope_minus_theory_L{L}"] = agreement(
            around(0.0, 0.15), f"log-log slope of that error on lr minus the Euler order, L = {L}")
    for L in config["random_depths"]:
        # quick 0.0064 (L 2), 0.0053 (L 3), smoke 0.0061, quick seeds 1-2 <= 0.016; controls
        # rate_1.05: 0.050-0.056, rate_0.97: 0.033-0.036
        out[f"random_rise_time_err_L{L}"] = agreement(
            at_most(0.025), f"random start, L = {L}: max over modes |t_rise,GD / t_rise,ODE - 1| "
            f"(rise from {RISE_LEVELS[0]:g} s to {RISE_LEVELS[1]:g} s)")
        if L == 2:
            # quick 0.040, smoke 0.023; control rate_1.05: 0.12-0.13 (rate_0.97: 0.03, passes)
            out["random_noshift_err_L2"] = agreement(
                at_most(0.07), "random start, L = 2: max_t |u_GD - u_logistic(u0 growing)| / s, "
                "no fitted parameter")
    return out


def _rate_control(rate):
    def apply(result, config):
        return dict(result, **_theory(result, rate))
    return apply


CONTROLS = (
    Control("rate_1.05", "the mode ODE's rate 2s (L u^(2-2/L)) scaled by 1.05",
            _rate_control(1.05)),
    Control("rate_0.97", "the mode ODE's rate scaled by 0.97", _rate_control(0.97)),
)


@style.styled
def plot(result):
    s = result["s"]
    depths = [int(L) for L in result["depths"]]
    rdepths = [int(L) for L in result["random_depths"]]
    base = int(np.argmin(result["lr_factors"]))
    shown, random_shown = depths[:5], rdepths[:2]
    n = len(shown) + 1 + len(random_shown)
    fig, axes = style.panels(n + 1)
    colors = [style.color(a) for a in range(len(s))]
    for i, L in enumerate(shown):
        ax = axes[i]
        t, u_gd, u_ode = (result[f"{k}_L{L}_f{base}"] for k in ("t", "u_gd", "u_ode"))
        for a in range(len(s)):
            ax.plot(t, u_ode[:, a] / s[a], color=colors[a], lw=1.2)
            ax.plot(t[::10], u_gd[::10, a] / s[a], "o", ms=2.5, color=colors[a], mfc="none")
        err = np.max(np.abs(u_gd - u_ode)) / s.max()
        ax.plot([], [], " ", label=f"max err {100 * err:.2f}% of $s_{{max}}$")
        ax.set(xlabel="t = lr x steps", ylabel=r"$u_\alpha(t) / s_\alpha$")
        style.time_axis(ax, t)
        style.title(ax, f"balanced start, L = {L}")
        style.legend(ax, loc="center right", handlelength=0)
    ax = axes[len(shown)]
    for L in depths:
        lrs = result[f"lrs_L{L}"]
        errs = np.array([np.max(np.abs(result[f"u_gd_L{L}_f{j}"] - result[f"u_ode_L{L}_f{j}"]))
                         for j in range(len(lrs))]) / s.max()
        ax.loglog(lrs, errs, "o-", ms=3, label=f"L = {L}: slope {loglog_slope(lrs, errs):.3f}")
    ax.set(xlabel="learning rate", ylabel=r"max $|u_{GD} - u_{ODE}| / s_{max}$")
    style.title(ax, f"GD vs ODE: error O(lr^{GD_ERROR_EXPONENT:g})")
    style.legend(ax, loc="lower right")
    for j, L in enumerate(random_shown):
        ax = axes[len(shown) + 1 + j]
        t, u = result[f"rt_L{L}"], result[f"ru_gd_L{L}"]
        _, shifted, _ = fit_time_shifts(s, L, t, u)
        for a in range(len(s)):
            ax.plot(t, shifted[:, a] / s[a], color=colors[a], lw=1.2)
            ax.plot(t[::8], u[::8, a] / s[a], "o", ms=2.5, color=colors[a], mfc="none")
            if L == 2:
                ax.plot(t, result["ru_noshift_L2"][:, a] / s[a], ":", color=colors[a], lw=1)
        ratio = _rise_times(result, L) / result[f"rise_theory_L{L}"]
        ax.plot([], [], " ", label=f"rise-time err {100 * np.max(np.abs(ratio - 1)):.1f}%")
        ax.set(xlabel="t", ylabel=r"$u_\alpha / s_\alpha$")
        style.time_axis(ax, t)
        style.title(ax, f"random init, L = {L}: shifted ODE (shape only)")
        style.legend(ax, loc="center right", handlelength=0)
    handles = [style.proxy(color=c) for c in colors]
    labels = [f"s = {v:g}" for v in s]
    handles += [style.proxy(color="k"), style.proxy(color="k", marker="o", ls="", ms=3,
                                                    mfc="none"),
                style.proxy(color="k", ls=":")]
    labels += ["ODE", "GD", "growing-component u0,\nno shift (L = 2)"]
    style.legend_panel(axes[-1], handles, labels)
    return fig


def memory(config) -> int:
    """Peak bytes: the default estimate plus the loss curve and the reference map
    ``(steps + 1, modes)`` of the longest run, ``steps = t_final / (lr * factor)``."""
    rates = [lr * f for lr in config["lrs"] for f in config["lr_factors"]]
    rates += list(config["random_lrs"])
    t = max([config["t_final"]] + list(config["random_t_final"]))
    steps = int(t / min(rates)) + 1
    modes = len(config["singular_values"])
    return fp.default_memory(config) + 2 * fp.FLOAT64_BYTES * steps * (modes + 1)


EXPERIMENT = Experiment(
    name=NAME, description=DESCRIPTION,
    configs={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    memory=memory,
    config_types={"singular_values": ct.ListOf(ct.positive_float()), "a0": ct.positive_float(),
                  "lr_factors": ct.ListOf(ct.positive_float()),
                  "random_depths": ct.ListOf(ct.positive_int(ct.MAX_DEPTH)),
                  "random_width": ct.positive_int(), "random_sigma": ct.positive_float(),
                  "random_lrs": ct.ListOf(ct.positive_float()),
                  "random_t_final": ct.ListOf(ct.positive_float())},
    numbers=numbers, measure=measure, plot=plot, controls=CONTROLS,
    regimes={"balanced start": "the ODE is gradient flow; GD differs by O(lr), so the bounds "
             "hold at the smallest lr of each depth and the slope states the O(lr) gap"},
    compute=compute)
