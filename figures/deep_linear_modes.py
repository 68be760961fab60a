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
  ``a <- a + lr a^(L-1)(s - a^L)`` exactly (checked to 1e-10); its distance to the ODE is the
  O(lr) discretisation error, fitted on a log-log plot over ``lr_L x {8, 4, 2, 1}``;
* small random initialisation (``sigma``): the end-to-end strengths
  ``u_alpha = u_alpha^T W_L...W_1 v_alpha`` follow the ODE up to a time shift per mode (the
  initial projection is unusable as ``u0``: it can be negative); for depth 2 the theoretical
  ``u0`` of the growing component
  (:func:`ntkdyn.theory.deep_linear_modes.growing_component_u0`) is also used without any shift.
"""
from __future__ import annotations

import numpy as np

from ..base.fitting import loglog_slope
from ..base.validation import as_generator
from ..numerics.deep_linear import decoupled_init, fit_time_shifts, mode_strengths
from ..numerics.networks import MLP
from ..numerics.synthetic import linear_teacher
from ..numerics.training import gradient_descent
from ..theory.deep_linear_modes import closed_form, growing_component_u0, mode_dynamics

NAME = "deep-linear-modes"
DESCRIPTION = "deep linear nets: mode strengths u(t)/s from the ODE vs full-batch GD (depths 1-6)"

QUICK = {
    "n": 32, "d": 4, "singular_values": [3.0, 2.0, 1.0, 0.5], "width": 8, "a0": 0.5,
    "depths": [1, 2, 3, 4, 6], "lrs": [0.03, 0.015, 0.0035, 0.0015, 0.0005],
    "lr_factors": [8, 4, 2, 1], "t_final": 12.0, "num_records": 300,
    "random_depths": [2, 3], "random_width": 50, "random_sigma": 0.01,
    "random_lrs": [0.02, 0.01], "random_t_final": [15.0, 45.0], "seed": 0,
}
PAPER = dict(QUICK, random_width=100, random_sigma=0.003, random_t_final=[20.0, 120.0],
             num_records=600)
TARGETS = {
    "scalar_map_err": (0.0, 1e-10),
    "balanced_max_err_L1": (0.0, 0.005),
    "balanced_max_err_L2": (0.0, 0.005),
    "balanced_max_err_L3": (0.0, 0.005),
    "balanced_max_err_L4": (0.0, 0.005),
    "balanced_max_err_L6": (0.0, 0.005),
    "lr_slope_L1": (0.9, 1.1),
    "lr_slope_L2": (0.9, 1.1),
    "lr_slope_L3": (0.9, 1.1),
    "lr_slope_L4": (0.9, 1.1),
    "lr_slope_L6": (0.9, 1.1),
    "random_shift_err_L2": (0.0, 0.03),
    "random_shift_err_L3": (0.0, 0.03),
}


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


def compute(config) -> dict:
    rng = as_generator(config["seed"])
    s = np.asarray(config["singular_values"], dtype=np.float64)
    d, m = int(config["d"]), len(s)
    data = linear_teacher(config["n"], d, m, s, seed=rng)
    X, Y, U, V = data.X, data.Y, data.info["U"], data.info["V"]
    out = {"s": s, "depths": np.asarray(config["depths"]),
           "lr_factors": np.asarray(config["lr_factors"])}
    map_err = 0.0
    for L, lr in zip(config["depths"], config["lrs"]):
        widths = [d] + [config["width"]] * (L - 1) + [m]
        net = MLP(widths, activation="linear", parameterization="standard")
        errs = []
        for factor in config["lr_factors"]:
            params = decoupled_init(L, U, V, config["width"], config["a0"], rng)
            t, u, steps = _train(net, params, X, Y, lr * factor, config["t_final"],
                                 config["num_records"], U, V)
            ode = mode_dynamics(s, config["a0"] ** L, L, t)
            errs.append(np.max(np.abs(u - ode)) / s.max())
            if factor == 1:
                ref = scalar_map(s, config["a0"], L, lr, int(steps[-1]))[steps]
                map_err = max(map_err, float(np.max(np.abs(u - ref))))
                out[f"t_L{L}"], out[f"u_gd_L{L}"], out[f"u_ode_L{L}"] = t, u, ode
        out[f"lr_err_L{L}"] = np.asarray(errs)
        out[f"lrs_L{L}"] = lr * np.asarray(config["lr_factors"], dtype=np.float64)
    out["scalar_map_err"] = np.array(map_err)
    # small random initialisation
    random_runs = zip(config["random_depths"], config["random_lrs"], config["random_t_final"])
    for L, lr, t_final in random_runs:
        widths = [d] + [config["random_width"]] * (L - 1) + [m]
        net = MLP(widths, activation="linear", init_scale=config["random_sigma"],
                  parameterization="standard")
        params = net.init(rng)
        t, u, _ = _train(net, params, X, Y, lr, t_final, config["num_records"], U, V)
        shifts, shifted, errs = fit_time_shifts(s, L, t, u)
        out[f"rt_L{L}"], out[f"ru_gd_L{L}"], out[f"ru_ode_L{L}"] = t, u, shifted
        out[f"rshift_err_L{L}"], out[f"rshift_L{L}"] = errs, shifts
        if L == 2:
            u0 = growing_component_u0(params[0], params[1], U, V)
            noshift = closed_form(s, u0, 2, t)
            out["ru_noshift_L2"] = noshift
            out["rnoshift_err_L2"] = np.max(np.abs(u - noshift), axis=0) / s
    return out


def agreement(result) -> dict:
    out = {"scalar_map_err": float(result["scalar_map_err"])}
    for L in result["depths"]:
        L = int(L)
        errs = result[f"lr_err_L{L}"]
        out[f"balanced_max_err_L{L}"] = float(errs[-1])
        out[f"lr_slope_L{L}"] = loglog_slope(result[f"lrs_L{L}"], errs)
    for key in result:
        if key.startswith("rshift_err_L"):
            out[f"random_shift_err_L{key[len('rshift_err_L'):]}"] = float(np.max(result[key]))
    if "rnoshift_err_L2" in result:
        out["random_noshift_err_L2"] = float(np.max(result["rnoshift_err_L2"]))
    return out


def plot(result):
    import matplotlib.pyplot as plt

    s = result["s"]
    depths = [int(L) for L in result["depths"]]
    rdepths = sorted(int(k[len("rt_L"):]) for k in result if k.startswith("rt_L"))
    fig, axes = plt.subplots(2, 4, figsize=(17, 8))
    axes = axes.ravel()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, L in enumerate(depths[:5]):
        ax = axes[i]
        t = result[f"t_L{L}"]
        for a in range(len(s)):
            c = colors[a % len(colors)]
            ax.plot(t, result[f"u_ode_L{L}"][:, a] / s[a], color=c, lw=1.5,
                    label=f"ODE s={s[a]:g}" if i == 0 else None)
            ax.plot(t[::10], result[f"u_gd_L{L}"][::10, a] / s[a], "o", ms=3, color=c, mfc="none")
        err = result[f"lr_err_L{L}"][-1]
        ax.set(title=f"balanced start, L = {L}: max err {100 * err:.2f}% of s_max",
               xlabel="t = lr x steps", ylabel=r"$u_\alpha(t) / s_\alpha$")
        if i == 0:
            ax.legend(fontsize=7)
    ax = axes[5]
    for L in depths:
        lrs, errs = result[f"lrs_L{L}"], result[f"lr_err_L{L}"]
        slope = np.polyfit(np.log(lrs), np.log(errs), 1)[0]
        ax.loglog(lrs, errs, "o-", label=f"L = {L}: slope {slope:.3f}")
    ax.set(title="GD vs ODE: error is O(lr)", xlabel="learning rate",
           ylabel="max |u_GD - u_ODE| / s_max")
    ax.legend(fontsize=7)
    for j, L in enumerate(rdepths[:2]):
        ax = axes[6 + j]
        t = result[f"rt_L{L}"]
        for a in range(len(s)):
            c = colors[a % len(colors)]
            ax.plot(t, result[f"ru_ode_L{L}"][:, a] / s[a], color=c, lw=1.5)
            ax.plot(t[::8], result[f"ru_gd_L{L}"][::8, a] / s[a], "o", ms=3, color=c, mfc="none")
            if L == 2 and "ru_noshift_L2" in result:
                ax.plot(t, result["ru_noshift_L2"][:, a] / s[a], ":", color=c, lw=1)
        err = np.max(result[f"rshift_err_L{L}"])
        extra = "\n(dotted: growing-component u0, no shift)" if L == 2 else ""
        ax.set(title=f"random init, L = {L}: shifted ODE, max err {100 * err:.1f}%{extra}",
               xlabel="t", ylabel=r"$u_\alpha / s_\alpha$")
        ax.title.set_fontsize(9)
    fig.tight_layout()
    return fig
