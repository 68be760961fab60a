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

No parameter is fitted: the half-learning times, the trajectories and the alignment curves are
compared with the prediction from the initial weights alone (``u0``, and the initial kernel's
scale ``c0``). The learning rate is small enough that GD's delay against gradient flow (about
``lr s / 2`` of the rate in the exponential phase) stays below the tolerances, which a 5% error in
the ODE's rate exceeds (control ``rate_1.05``). The plot also shows the ODE shifted in time per
mode (:func:`ntkdyn.numerics.deep_linear.fit_time_shifts`), for shape only.

Simulation: full-batch GD of ``MLP([D, N, ..., N, k], activation="linear",
parameterization="standard")`` from ``N(0, sigma^2)`` weights, empirical NTK summed over heads.
"""
from __future__ import annotations

import numpy as np

from ..base.samplers import orthonormal_frame
from ..numerics.deep_linear import fit_time_shifts, mode_strengths
from ..numerics.kernels import alignment, empirical_ntk
from ..numerics.networks import MLP
from ..numerics.synthetic import whiten
from ..numerics.training import gradient_descent
from ..theory.deep_linear_kernels import alignment_general, final_alignment, ntk_from_modes
from ..theory.deep_linear_modes import balanced_strengths, closed_form, growing_component_u0
from . import config_types as ct
from . import footprint as fp
from . import style
from .experiment import (Control, Experiment, agreement, around, at_least, at_most, is_true,
                         observation)

NAME = "deep-linear-data"
DESCRIPTION = ("deep linear nets on anisotropic data: stage-like mode learning, step-wise "
               "alignment, target placement")

QUICK = {
    "n": 64, "d": 8, "variance_sets": [[4.0, 1.0, 0.25, 0.1, 0.1, 0.1, 0.1, 0.1],
                                       [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]],
    "singular_values": [3.0, 1.5, 0.75], "width": 50, "sigma": 0.01, "lr": 0.01, "t_final": 30.0,
    "num_records": 200, "scalar_variances": [4.0, 2.0, 1.0, 0.5, 0.25, 0.125],
    "scalar_depth": 2, "scalar_lr": 0.05, "scalar_t_final": 150.0, "scalar_sigma": 0.003,
    "seed": 0,
}
SMOKE = dict(QUICK, num_records=120)
PAPER = dict(QUICK, n=200, width=100, num_records=400)
_CASES = ("high", "low", "mixed")


def anisotropic_inputs(n, V, variances, rng):
    """``X`` with ``X^T X / n = V diag(variances) V^T`` exactly."""
    Z = whiten(rng.standard_normal((n, V.shape[0])))
    return Z @ (np.sqrt(variances)[:, None] * V.T)


def half_times(t, u, half):
    """First time each column of ``u`` ``(T, m)`` reaches ``half`` ``(m,)`` (linear
    interpolation); NaN where it never does or already does at ``t[0]``."""
    out = np.empty(u.shape[1])
    for a in range(u.shape[1]):
        i = np.nonzero(u[:, a] >= half[a])[0]
        if i.size == 0 or i[0] == 0:
            out[a] = np.nan
            continue
        i = i[0]
        out[a] = np.interp(half[a], u[i - 1:i + 1, a], t[i - 1:i + 1])
    return out


def _mode_theory(r, s, rate=1.0):
    """Parameter-free depth-2 theory of one task at the recorded times (ODE time ``rate * t``):
    Saxe's logistic from the growing-component ``u0``, its half-learning times, and the alignment
    of the initial kernel plus the NTK the predicted modes have gained since ``t = 0``."""
    X, Vk, U, Y = r["X"], r["Vk"], r["U"], r["Y"]
    u_th = closed_form(s, r["u0"], 2, rate * r["t"], r["lam"])
    K_start = float(r["c0"]) * (X @ X.T) - ntk_from_modes(balanced_strengths(r["u0"], 2), X, Vk, U)
    A_th = np.array([
        alignment(K_start + ntk_from_modes(balanced_strengths(u, 2), X, Vk, U), Y, centered=False)
        for u in u_th])
    return {"u_theory": u_th, "A_theory": A_th,
            "half_theory": half_times(r["t"], u_th, s / r["lam"] / 2)}


def _modes_run(config, lam_all, rng):
    """One anisotropic multi-output task: GD and the parameter-free theory."""
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
    c0 = float(np.trace(empirical_ntk(net, params, X)) / np.trace(X @ X.T))
    out = {"lam": lam, "t": t, "u_gd": u_gd, "A_gd": traj.observables["A"], "X": X, "Y": Y,
           "Vk": Vk, "U": U, "c0": np.array(c0),
           "u0": growing_component_u0(params[0], params[1], U, Vk),
           "half_gd": half_times(t, u_gd, s / lam / 2)}
    out.update(_mode_theory(out, s))
    return out


def _scalar_theory(result, whitened=False):
    """Initial and final alignment of each scalar target: ``A(X X^T, y)`` and
    ``A(G + (L-1) y y^T / ||beta||^2, y)``; ``whitened``: the whitened-data formulas
    ``1/sqrt(D)`` and ``L / sqrt(L^2 + D - 1)`` instead (a wrong theory for these data)."""
    L, G = int(result["scalar_depth"]), result["scalar_G"]
    D = len(result["scalar_variances"])
    out = {}
    for name in _CASES:
        y = result[f"scalar_y_{name}"]
        out[f"scalar_A0_theory_{name}"] = np.array(
            1.0 / np.sqrt(D) if whitened else alignment_general(G, y, 1.0, 1))
        out[f"scalar_Ainf_theory_{name}"] = np.array(
            final_alignment(L, D) if whitened else alignment_general(G, y, 1.0, L))
    return out


def compute(config, seed) -> dict:
    """Both variance sets (one independent stream each) and the three scalar targets."""
    sets = config["variance_sets"]
    *set_seeds, scalar_seed = seed.spawn(len(sets) + 1)
    out = {"s": np.asarray(config["singular_values"], dtype=np.float64),
           "num_sets": np.array(len(sets))}
    for i, (lam_all, set_seed) in enumerate(zip(sets, set_seeds)):
        run = _modes_run(config, np.asarray(lam_all, dtype=np.float64),
                         np.random.default_rng(set_seed))
        for key, value in run.items():
            out[f"set{i}_{key}"] = value
    # scalar targets on high- / low-variance directions and a mix
    data_seed, *case_seeds = scalar_seed.spawn(1 + len(_CASES))
    rng = np.random.default_rng(data_seed)
    lam_s = np.asarray(config["scalar_variances"], dtype=np.float64)
    Vs = orthonormal_frame(len(lam_s), len(lam_s), rng)
    Xs = anisotropic_inputs(config["n"], Vs, lam_s, rng)
    betas = {"high": Vs[:, 0], "low": Vs[:, -1], "mixed": (Vs[:, 0] + Vs[:, -1]) / np.sqrt(2)}
    L = int(config["scalar_depth"])
    out.update({"scalar_depth": np.array(L), "scalar_variances": lam_s, "scalar_G": Xs @ Xs.T})
    for name, case_seed in zip(_CASES, case_seeds):
        y = Xs @ betas[name]
        net_s = MLP([len(lam_s)] + [config["width"]] * (L - 1) + [1], activation="linear",
                    init_scale=config["scalar_sigma"], parameterization="standard")
        steps = int(round(config["scalar_t_final"] / config["scalar_lr"]))
        tr = gradient_descent(net_s, net_s.init(np.random.default_rng(case_seed)), Xs, y[:, None],
                              config["scalar_lr"], steps, every=max(1, steps // 100),
                              record={"A": lambda nt, p, x, yy: alignment(empirical_ntk(nt, p, x),
                                                                          yy)})
        out[f"scalar_y_{name}"] = y
        out[f"scalar_t_{name}"] = tr.record_times
        out[f"scalar_A_{name}"] = tr.observables["A"]
        out[f"scalar_loss_ratio_{name}"] = np.array(tr.losses[-1] / tr.losses[0])
    out.update(_scalar_theory(out))
    return out


def _set(result, i):
    return {k[len(f"set{i}_"):]: v for k, v in result.items() if k.startswith(f"set{i}_")}


def _step_signs(t, A, half):
    """Signs of the changes of ``A`` across the stages: at the midpoints between consecutive
    half-learning times, then at the end."""
    marks = np.concatenate([np.sort(half), [t[-1]]])
    probe = np.concatenate([0.5 * (marks[1:-1] + marks[:-2]), [t[-1]]])
    return np.sign(np.diff(np.interp(probe, t, A)))


def measure(result) -> dict:
    s = result["s"]
    out = {}
    order, pattern, half_err, noshift, curve = True, True, [], [], []
    for i in range(int(result["num_sets"])):
        r = _set(result, i)
        finite = bool(np.all(np.isfinite(r["half_gd"])))
        order &= finite and bool(np.array_equal(np.argsort(r["half_gd"]), np.argsort(-s)))
        half_err.append(np.abs(r["half_gd"] / r["half_theory"] - 1.0))   # NaN stays NaN
        noshift.append(np.max(np.abs(r["u_gd"] - r["u_theory"]), axis=0) / (s / r["lam"]))
        curve.append(np.max(np.abs(r["A_gd"] - r["A_theory"])))
        # step-wise alignment: the theory's steps are taken at its own half-learning times
        steps_gd = _step_signs(r["t"], r["A_gd"], r["half_gd"])
        steps_th = _step_signs(r["t"], r["A_theory"], r["half_theory"])
        out[f"alignment_rises_set{i}"] = float(finite and np.all(steps_gd > 0))
        out[f"overshoot_minus_theory_set{i}"] = float(
            (r["A_gd"].max() - r["A_gd"][-1]) - (r["A_theory"].max() - r["A_theory"][-1]))
        pattern &= bool(np.array_equal(steps_gd, steps_th))
    out.update({"stage_order_correct": float(order), "stepwise_pattern_agrees": float(pattern),
                "half_time_rel_err_max": float(np.max(half_err)),
                "noshift_err_max": float(np.max(noshift)),
                "alignment_curve_err": float(np.max(curve))})
    gains = {}
    for name in _CASES:
        A_s = result[f"scalar_A_{name}"]
        A_inf = float(result[f"scalar_Ainf_theory_{name}"])
        A_0 = float(result[f"scalar_A0_theory_{name}"])
        out[f"init_alignment_minus_theory_{name}"] = float(A_s[0] - A_0)
        out[f"final_alignment_rel_err_{name}"] = float(A_s[-1] / A_inf - 1.0)
        gains[name] = A_s[-1] / A_s[0]
    out["scalar_loss_ratio_max"] = float(np.max([result[f"scalar_loss_ratio_{n}"]
                                                 for n in _CASES]))
    out["gain_low_over_high"] = float(gains["low"] / gains["high"])
    return out


def numbers(config) -> dict:
    out = {
        "stage_order_correct": observation(
            is_true(), "GD learns every mode (finite half-time), in order of decreasing s"),
        # quick 0.010, smoke 0.009, quick seeds 1-3 0.011-0.019; control rate_1.05: 0.056-0.061
        "half_time_rel_err_max": agreement(
            at_most(0.03), "max over modes and sets of |t_half,GD / t_half,theory - 1|"),
        # quick 0.017, smoke 0.016, seeds 1-3 0.019-0.028; control rate_1.05: 0.097-0.103
        "noshift_err_max": agreement(
            at_most(0.06), "max_t |u_GD - u_theory| / (s / lam), theory from u0 (no fit)"),
        # quick 0.032, smoke 0.022, seeds 1-3 0.044-0.063; control rate_1.05: 0.031-0.037
        "alignment_curve_err": agreement(
            at_most(0.08), "max_t |A_GD - A_theory| (initial kernel plus the predicted modes)"),
        "stepwise_pattern_agrees": agreement(
            is_true(), "signs of the alignment's changes across stages, GD and theory alike"),
        "scalar_loss_ratio_max": observation(
            at_most(1e-6), "scalar targets: final over initial loss (the targets are learned)"),
        "gain_low_over_high": observation(
            at_least(1.0), "simulated gain A_final / A_init: low-variance target over high"),
    }
    for i, lam in enumerate(config["variance_sets"]):
        matched = bool(np.all(np.diff(lam[:len(config["singular_values"])]) < 0))
        out[f"alignment_rises_set{i}"] = observation(
            is_true() if matched else at_most(0.0),
            f"set {i}: A rises at every stage ("
            + ("lam decreasing with s: expected" if matched else "equal lam: expected not to")
            + ")")
        # quick, smoke, seeds 1-3: |.| <= 2.2e-4 (set 1: GD 0.111, theory 0.111; set 0: none)
        out[f"overshoot_minus_theory_set{i}"] = agreement(
            around(0.0, 0.03), f"set {i}: (max A - final A), GD minus theory")
    for name in _CASES:
        # quick and smoke -0.032 to 0.017, seeds 1-3 -0.060 to 0.006 (finite width N = 50);
        # control whitened_formulas: 0.38-0.48
        out[f"init_alignment_minus_theory_{name}"] = agreement(
            around(0.0, 0.1), f"target on {name}-variance directions: A(0) - A(X X^T, y)")
        # quick, smoke, seeds 1-3: |.| <= 5.5e-4; control whitened_formulas: 0.38-0.92
        out[f"final_alignment_rel_err_{name}"] = agreement(
            around(0.0, 0.005), f"target on {name}-variance directions: A_final / A_inf - 1")
    return out


def _rate_control(rate):
    def apply(result, config):
        wrong = dict(result)
        for i in range(int(result["num_sets"])):
            for key, value in _mode_theory(_set(result, i), result["s"], rate).items():
                wrong[f"set{i}_{key}"] = value
        return wrong
    return apply


def _whitened_control(result, config):
    return dict(result, **_scalar_theory(result, whitened=True))


CONTROLS = (
    Control("rate_1.05", "the mode ODE's rate 2s scaled by 1.05", _rate_control(1.05)),
    Control("whitened_formulas", "the scalar targets' alignments from the whitened-data formulas "
            "1/sqrt(D) and L/sqrt(L^2+D-1)", _whitened_control),
)


@style.styled
def plot(result):
    s = result["s"]
    n_sets = int(result["num_sets"])
    ncols = min(n_sets + 1, 4)
    rows = 2 * (-(-(n_sets + 1) // ncols))
    fig, gs = style.grid(rows, ncols, height=2.3 * rows + 0.4)
    cells = [(2 * (k // ncols), k % ncols) for k in range(n_sets + 1)]
    for i in range(n_sets):
        r = _set(result, i)
        lam, t = r["lam"], r["t"]
        _, u_shift, _ = fit_time_shifts(s, 2, t, r["u_gd"], lam)
        row, col = cells[i]
        ax = fig.add_subplot(gs[row, col])
        for a in range(len(s)):
            c = style.color(a)
            fixed = s[a] / lam[a]
            ax.plot(t[::4], r["u_gd"][::4, a] / fixed, "o", ms=2.5, mfc="none", color=c)
            ax.plot(t, r["u_theory"][:, a] / fixed, "-", color=c,
                    label=f"s = {s[a]:g}, lam = {lam[a]:g}")
            ax.plot(t, u_shift[:, a] / fixed, ":", color=c, lw=1)
        ax.set(xlabel="t", ylabel=r"$u_\alpha \lambda_\alpha / s_\alpha$")
        style.time_axis(ax, t)
        style.title(ax, f"set {i}: mode strengths")
        style.legend(ax, loc="lower right")
        ax = fig.add_subplot(gs[row + 1, col])
        ax.plot(t, r["A_gd"], "k-", lw=2, alpha=0.6, label="GD")
        ax.plot(t, r["A_theory"], "--", color="C1", label="theory: decoupled modes")
        for th in r["half_gd"]:
            ax.axvline(th, color="gray", lw=0.6, ls=":")
        ax.set(xlabel="t", ylabel=r"alignment $A(\sum_i K_{ii}, Y)$")
        style.time_axis(ax, t)
        style.title(ax, f"set {i}: alignment")
        style.legend(ax, loc="center right")
    row, col = cells[n_sets]
    ax = fig.add_subplot(gs[row, col])
    for j, name in enumerate(("high", "low", "mixed")):
        c = style.color(j)
        t = result[f"scalar_t_{name}"]
        ax.plot(t, result[f"scalar_A_{name}"], color=c, label=f"target: {name} variance")
        ax.axhline(float(result[f"scalar_Ainf_theory_{name}"]), color=c, ls="--", lw=0.8)
        ax.axhline(float(result[f"scalar_A0_theory_{name}"]), color=c, ls=":", lw=0.8)
    ax.set(xlabel="t", ylabel="A(K, y)")
    style.time_axis(ax, t, scale="symlog")
    style.title(ax, "scalar targets: GD vs formulas")
    style.legend(ax, loc="center right")
    ax = fig.add_subplot(gs[row + 1, col])
    names = ("high", "low", "mixed")
    gains = [float(result[f"scalar_Ainf_theory_{n}"] / result[f"scalar_A0_theory_{n}"])
             for n in names]
    sim = [float(result[f"scalar_A_{n}"][-1] / result[f"scalar_A_{n}"][0]) for n in names]
    x = np.arange(3)
    ax.bar(x - 0.2, gains, 0.4, label=r"theory $A_\infty / A_0$")
    ax.bar(x + 0.2, sim, 0.4, label="GD A_final / A_init")
    ax.set_xticks(x, names)
    ax.set(ylabel="alignment gain", ylim=(0, 1.35 * max(max(gains), max(sim))))
    style.title(ax, "gain by target placement")
    style.legend(ax, loc="upper left", ncol=1)
    style.figure_legend(fig, ncol=3, handles=[
        style.proxy(color="k", marker="o", ls="", mfc="none", ms=3), style.proxy(color="k"),
        style.proxy(color="k", ls=":"), style.proxy(color="k", ls="--", lw=0.8),
        style.proxy(color="gray", ls=":", lw=0.6)],
        labels=["modes: GD", "theory from growing-part u0", "shifted ODE (shape only) / A_0",
                r"$A_\infty$ formula", "half-learning times"])
    return fig


def memory(config) -> int:
    """Peak bytes: the default estimate plus the loss curves of the two trainings,
    ``t_final / lr`` and ``scalar_t_final / scalar_lr`` steps."""
    steps = (int(config["t_final"] / config["lr"])
             + int(config["scalar_t_final"] / config["scalar_lr"]) + 2)
    return fp.default_memory(config) + 2 * fp.FLOAT64_BYTES * steps


EXPERIMENT = Experiment(
    name=NAME, description=DESCRIPTION,
    configs={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    memory=memory,
    config_types={"variance_sets": ct.ListOf(ct.ListOf(ct.positive_float())),
                  "singular_values": ct.ListOf(ct.positive_float()),
                  "sigma": ct.positive_float(),
                  "scalar_variances": ct.ListOf(ct.positive_float()),
                  "scalar_depth": ct.positive_int(ct.MAX_DEPTH), "scalar_lr": ct.positive_float(),
                  "scalar_t_final": ct.positive_float(),
                  "scalar_sigma": ct.positive_float()},
    numbers=numbers, measure=measure, plot=plot, controls=CONTROLS,
    regimes={"whitened inputs (equal lam)": "the hypothesis 'A rises at every stage' fails: A "
             "overshoots after the first mode (alignment_rises_set1 expected false; the theory "
             "predicts the overshoot)"},
    compute=compute)
