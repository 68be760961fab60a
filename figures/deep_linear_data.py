"""deep-linear-data: data structure in deep linear nets: stage-like learning, step-wise alignment.

Theory (deep linear networks: Saxe, McClelland & Ganguli 2014; Shan & Bordelon 2021, sec. 5;
:mod:`ntkdyn.theory.deep_linear_modes`). Inputs with covariance ``Sigma_xx = V diag(lam) V^T`` and a
teacher with ``Sigma_yx = U diag(s) V_task^T`` on the same right singular vectors decouple into
modes obeying ``du/dt = L u^(2-2/L) (s - lam u)`` with fixed points ``s / lam`` (whitened inputs,
``lam = 1``, give Saxe et al.'s ODE). For ``L = 2`` from small random weights the linearised start
``dp/dt = s q, dq/dt = s p`` (``p = W_1 v``, ``q = W_2^T u``; it does not involve ``lam``) fixes the
growing component ``u0 = ||p0 + q0||^2 / 4``
(:func:`ntkdyn.theory.deep_linear_modes.growing_component_u0`), so the prediction
``u(t) = s e^(2st) / (lam (e^(2st) - 1) + s/u0)`` has no free parameter: modes are learned one after
another in order of ``s`` (stage-like learning), and the NTK alignment with the targets rises in
steps. The theory kernel is the decoupled NTK of the predicted balanced modes
(:func:`ntkdyn.theory.deep_linear_kernels.ntk_from_modes`) plus the isotropic initial kernel.

Step-wise alignment is not automatic. For ``L = 2`` the head-summed kernel gains a spike
``k s_alpha`` (in units of ``n``) per learned mode plus an isotropic ``sum_beta s_beta / lam_beta``
part, while the target has power ``s_alpha^2 / lam_alpha`` there; the uncentred alignment rises at
every stage only when these stay in proportion (set 0: ``lam`` decreasing with ``s``, low variance
off the task). With whitened inputs (set 1) it overshoots once the first mode is learned and falls
back as the later, weaker modes add kernel power where the target has little: the hypothesis "A
rises in steps, one per mode" does not hold there. The theory curve predicts both.

Second part, scalar targets ``y = X beta*`` on high- or low-variance input directions (or a mix):
the initial alignment is ``A(X X^T, y)`` and after learning
``A_inf = A(G + (L-1) y y^T / ||beta*||^2, y)``
(:func:`ntkdyn.theory.deep_linear_kernels.alignment_general`); the gain ``A_inf / A_0`` is larger
for a target on low-variance directions.

Targets were set from seeds 0-3 of the quick configuration (measured: half-time error
0.051-0.054, GD later than the prediction; no-shift error 0.093-0.097 of ``s / lam``; shifted
0.014; alignment-curve error 0.037-0.065; final scalar alignment within 8e-4 of the formula).

Simulation: full-batch GD of ``MLP([D, N, ..., N, k], activation="linear",
parameterization="standard")`` from ``N(0, sigma^2)`` weights, empirical NTK summed over heads.
"""
from __future__ import annotations

import numpy as np

from ..base.samplers import orthonormal_frame
from ..base.validation import as_generator
from ..numerics.deep_linear import fit_time_shifts, mode_strengths
from ..numerics.kernels import alignment, empirical_ntk
from ..numerics.networks import MLP
from ..numerics.synthetic import whiten
from ..numerics.training import gradient_descent
from ..theory.deep_linear_kernels import alignment_general, ntk_from_modes
from ..theory.deep_linear_modes import balanced_strengths, closed_form, growing_component_u0

NAME = "deep-linear-data"
DESCRIPTION = ("deep linear nets on anisotropic data: stage-like mode learning, step-wise "
               "alignment, target placement")

QUICK = {
    "n": 64, "d": 8, "variance_sets": [[4.0, 1.0, 0.25, 0.1, 0.1, 0.1, 0.1, 0.1],
                                       [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]],
    "singular_values": [3.0, 1.5, 0.75], "width": 50, "sigma": 0.01, "lr": 0.05, "t_final": 30.0,
    "num_records": 200, "scalar_variances": [4.0, 2.0, 1.0, 0.5, 0.25, 0.125],
    "scalar_depth": 2, "scalar_lr": 0.05, "scalar_t_final": 150.0, "scalar_sigma": 0.003,
    "seed": 0,
}
PAPER = dict(QUICK, n=200, width=100, num_records=400)
TARGETS = {
    "stage_order_correct": (1.0, 1.0),
    "half_time_rel_err_max": (0.0, 0.1),
    "noshift_err_max": (0.0, 0.15),
    "shift_err_max": (0.0, 0.03),
    "alignment_curve_err": (0.0, 0.1),
    "stepwise_pattern_agrees": (1.0, 1.0),
    "final_alignment_rel_err_max": (0.0, 0.01),
    "gain_low_over_high": (1.0, 1e12),
}


def anisotropic_inputs(n, V, variances, rng):
    """``X`` with ``X^T X / n = V diag(variances) V^T`` exactly."""
    Z = whiten(rng.standard_normal((n, V.shape[0])))
    return Z @ (np.sqrt(variances)[:, None] * V.T)


def _half_times(t, u, half):
    out = np.empty(u.shape[1])
    for a in range(u.shape[1]):
        i = np.nonzero(u[:, a] >= half[a])[0]
        if i.size == 0 or i[0] == 0:
            out[a] = np.nan
            continue
        i = i[0]
        out[a] = np.interp(half[a], u[i - 1:i + 1, a], t[i - 1:i + 1])
    return out


def _modes_run(config, lam_all, rng):
    """One anisotropic multi-output task: GD, the parameter-free theory and the shifted ODE."""
    d = int(config["d"])
    s = np.asarray(config["singular_values"], dtype=np.float64)
    k = len(s)
    V = orthonormal_frame(d, d, rng)
    U = orthonormal_frame(k, k, rng)
    X = anisotropic_inputs(config["n"], V, lam_all, rng)
    lam = lam_all[:k]
    W_star = (U * (s / lam)) @ V[:, :k].T          # Sigma_yx = W* Sigma_xx = U diag(s) V_k^T
    Y = X @ W_star.T
    net = MLP([d, config["width"], k], activation="linear", init_scale=config["sigma"],
              parameterization="standard")
    params = net.init(rng)
    Vk = V[:, :k]
    steps = int(round(config["t_final"] / config["lr"]))
    traj = gradient_descent(
        net, params, X, Y, config["lr"], steps, every=max(1, steps // config["num_records"]),
        record={"u": lambda _n, p, _x, _y: mode_strengths(p, U, Vk),
                "A": lambda nt, p, x, y: alignment(empirical_ntk(nt, p, x), y)})
    t = traj.record_times
    u_gd = traj.observables["u"]
    u0 = growing_component_u0(params[0], params[1], U, Vk)
    u_th = closed_form(s, u0, 2, t, lam)
    _, u_shift, shift_errs = fit_time_shifts(s, 2, t, u_gd, lam)
    G = X @ X.T
    c0 = float(np.trace(empirical_ntk(net, params, X)) / np.trace(G))
    # initial kernel plus what the modes have learned since t = 0
    K_start = c0 * G - ntk_from_modes(balanced_strengths(u0, 2), X, Vk, U)
    A_th = np.array([
        alignment(K_start + ntk_from_modes(balanced_strengths(u, 2), X, Vk, U), Y, centered=False)
        for u in u_th])
    return {"lam": lam, "t": t, "u_gd": u_gd, "u_theory": u_th, "u_shift": u_shift,
            "shift_errs": shift_errs, "A_gd": traj.observables["A"], "A_theory": A_th,
            "half_gd": _half_times(t, u_gd, s / lam / 2),
            "half_theory": _half_times(t, u_th, s / lam / 2)}


def compute(config) -> dict:
    rng = as_generator(config["seed"])
    out = {"s": np.asarray(config["singular_values"], dtype=np.float64),
           "num_sets": np.array(len(config["variance_sets"]))}
    for i, lam_all in enumerate(config["variance_sets"]):
        for key, value in _modes_run(config, np.asarray(lam_all, dtype=np.float64), rng).items():
            out[f"set{i}_{key}"] = value
    # scalar targets on high- / low-variance directions and a mix
    lam_s = np.asarray(config["scalar_variances"], dtype=np.float64)
    Vs = orthonormal_frame(len(lam_s), len(lam_s), rng)
    Xs = anisotropic_inputs(config["n"], Vs, lam_s, rng)
    cases = {"high": Vs[:, 0], "low": Vs[:, -1], "mixed": (Vs[:, 0] + Vs[:, -1]) / np.sqrt(2)}
    L = int(config["scalar_depth"])
    for name, beta in cases.items():
        y = Xs @ beta
        net_s = MLP([len(lam_s)] + [config["width"]] * (L - 1) + [1], activation="linear",
                    init_scale=config["scalar_sigma"], parameterization="standard")
        steps = int(round(config["scalar_t_final"] / config["scalar_lr"]))
        tr = gradient_descent(net_s, net_s.init(rng), Xs, y[:, None], config["scalar_lr"], steps,
                              every=max(1, steps // 100),
                              record={"A": lambda nt, p, x, yy: alignment(empirical_ntk(nt, p, x),
                                                                          yy)})
        Gs = Xs @ Xs.T
        out[f"scalar_t_{name}"] = tr.record_times
        out[f"scalar_A_{name}"] = tr.observables["A"]
        out[f"scalar_A0_theory_{name}"] = np.array(alignment_general(Gs, y, 1.0, 1))
        out[f"scalar_Ainf_theory_{name}"] = np.array(alignment_general(Gs, y, 1.0, L))
        out[f"scalar_loss_ratio_{name}"] = np.array(tr.losses[-1] / tr.losses[0])
    return out


def agreement(result) -> dict:
    s = result["s"]
    out = {}
    order, pattern, half_err, noshift, shift, curve = True, True, [], [], [], []
    for i in range(int(result["num_sets"])):
        r = {k[len(f"set{i}_"):]: v for k, v in result.items() if k.startswith(f"set{i}_")}
        order &= bool(np.array_equal(np.argsort(r["half_gd"]), np.argsort(-s))
                      and np.array_equal(np.argsort(r["half_theory"]), np.argsort(-s)))
        half_err.append(np.max(np.abs(r["half_gd"] / r["half_theory"] - 1.0)))
        noshift.append(np.max(np.max(np.abs(r["u_gd"] - r["u_theory"]), axis=0) / (s / r["lam"])))
        shift.append(np.max(r["shift_errs"]))
        curve.append(np.max(np.abs(r["A_gd"] - r["A_theory"])))
        # step-wise alignment: A after each learned mode (midpoints between consecutive
        # half-learning times, then the end), for GD and for the theory curve
        t = r["t"]
        marks = np.concatenate([np.sort(r["half_gd"]), [t[-1]]])
        probe = np.concatenate([0.5 * (marks[1:-1] + marks[:-2]), [t[-1]]])
        steps_gd = np.sign(np.diff(np.interp(probe, t, r["A_gd"])))
        steps_th = np.sign(np.diff(np.interp(probe, t, r["A_theory"])))
        out[f"alignment_rises_set{i}"] = float(np.all(steps_gd > 0))
        out[f"alignment_overshoot_set{i}"] = float(r["A_gd"].max() - r["A_gd"][-1])
        pattern &= bool(np.array_equal(steps_gd, steps_th))
    out.update({"stage_order_correct": float(order), "stepwise_pattern_agrees": float(pattern),
                "half_time_rel_err_max": float(max(half_err)),
                "noshift_err_max": float(max(noshift)), "shift_err_max": float(max(shift)),
                "alignment_curve_err": float(max(curve))})
    errs, gains = [], {}
    for name in ("high", "low", "mixed"):
        A_s = result[f"scalar_A_{name}"]
        A_inf = float(result[f"scalar_Ainf_theory_{name}"])
        A_0 = float(result[f"scalar_A0_theory_{name}"])
        out[f"init_alignment_err_{name}"] = float(abs(A_s[0] - A_0))
        out[f"final_alignment_rel_err_{name}"] = float(abs(A_s[-1] / A_inf - 1.0))
        errs.append(out[f"final_alignment_rel_err_{name}"])
        gains[name] = A_inf / A_0
        out[f"gain_{name}"] = float(gains[name])
    out["final_alignment_rel_err_max"] = float(max(errs))
    out["gain_low_over_high"] = float(gains["low"] / gains["high"])
    return out


def plot(result):
    import matplotlib.pyplot as plt

    s = result["s"]
    n_sets = int(result["num_sets"])
    fig, axes = plt.subplots(2, n_sets + 1, figsize=(6 * (n_sets + 1), 9))
    for i in range(n_sets):
        r = {k[len(f"set{i}_"):]: v for k, v in result.items() if k.startswith(f"set{i}_")}
        lam, t = r["lam"], r["t"]
        ax = axes[0, i]
        for a in range(len(s)):
            c = f"C{a}"
            fixed = s[a] / lam[a]
            ax.plot(t[::4], r["u_gd"][::4, a] / fixed, "o", ms=3, mfc="none", color=c)
            ax.plot(t, r["u_theory"][:, a] / fixed, "-", color=c,
                    label=f"s = {s[a]:g}, lam = {lam[a]:g}")
            ax.plot(t, r["u_shift"][:, a] / fixed, ":", color=c, lw=1)
        ax.set(xlabel="t", ylabel=r"$u_\alpha \lambda_\alpha / s_\alpha$",
               title=f"set {i}: GD (o), theory from growing-part u0 (-), shifted ODE (:)")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=8)
        ax = axes[1, i]
        ax.plot(t, r["A_gd"], "k-", lw=2, alpha=0.6, label="GD: A(sum_i K_ii, Y)")
        ax.plot(t, r["A_theory"], "r--", label="theory: decoupled NTK of predicted modes")
        for th in r["half_gd"]:
            ax.axvline(th, color="gray", lw=0.6, ls=":")
        ax.set(xlabel="t", ylabel="alignment",
               title=f"set {i}: alignment (dotted: half-learning times)")
        ax.legend(fontsize=8)
    ax = axes[0, n_sets]
    for j, name in enumerate(("high", "low", "mixed")):
        c = f"C{j}"
        ax.plot(result[f"scalar_t_{name}"], result[f"scalar_A_{name}"], color=c,
                label=f"target on {name}-variance directions")
        ax.axhline(float(result[f"scalar_Ainf_theory_{name}"]), color=c, ls="--", lw=0.8)
        ax.axhline(float(result[f"scalar_A0_theory_{name}"]), color=c, ls=":", lw=0.8)
    ax.set(xscale="symlog", xlabel="t", ylabel="A(K, y)",
           title="scalar targets: A_0 (:) and A_inf (--) formulas vs GD")
    ax.legend(fontsize=8)
    ax = axes[1, n_sets]
    names = ("high", "low", "mixed")
    gains = [float(result[f"scalar_Ainf_theory_{n}"] / result[f"scalar_A0_theory_{n}"])
             for n in names]
    sim = [float(result[f"scalar_A_{n}"][-1] / result[f"scalar_A_{n}"][0]) for n in names]
    x = np.arange(3)
    ax.bar(x - 0.2, gains, 0.4, label="theory A_inf / A_0")
    ax.bar(x + 0.2, sim, 0.4, label="GD A_final / A_init")
    ax.set_xticks(x, names)
    ax.set(ylabel="alignment gain", title="gain by target placement")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
