"""deep-linear-alignment: NTK alignment of deep linear networks against time, depth and init scale.

Theory (Shan & Bordelon 2021, sec. 5; ``theory.deep_linear_kernels``): with whitened inputs
(``X^T X = n I_D``) and a scalar linear teacher ``y = X beta*``, the NTK of a balanced network
whose mode has strength ``u`` is ``u^(2-2/L) [X X^T + (L-1)(X v)(X v)^T]`` (a rank-one spike) on
top of the isotropic kernel left by the random initialisation,
``E K_0 = L sigma^(2(L-1)) N^(L-1) X X^T`` (``theory.deep_linear_kernels.initial_kernel_scale``;
the measured scale ``c0 = Tr K_0 / Tr X X^T`` is used). Its alignment
``A = y^T K y / (||K||_F ||y||^2)`` (``theory.deep_linear_kernels.alignment_whitened``) goes from
``1/sqrt(D)`` to ``A_inf = L / sqrt(L^2 + D - 1)``. The theory curve evaluates it at the
simulated end-to-end strength ``u(t) = beta(t) . beta_hat*`` (the time course of ``u`` against
the mode ODE is the subject of ``deep-linear-modes``). For ``L = 2`` it tracks the simulation to a
few hundredths; for ``L >= 3`` the simulated alignment lags it (``curve_err_L*``, a target that
states the disagreement): at the same ``u`` the random initial layers are not yet balanced, which
the spike assumes. Silent alignment (Atanasov, Bordelon & Pehlevan 2021) is measured as the
fraction of the initial loss left when ``A`` has made 90% of its gain (``silent_loss_frac_L*``;
above 0.5 means the kernel aligned before the loss halved).

Measured limits: at width 100 the initial alignment deviates from ``1/sqrt(D)`` by a finite-width
amount that grows with depth (40 seeds, D = 20: mean -0.010/-0.009/-0.031/-0.042 and std
0.014/0.023/0.029/0.034 for L = 2/3/4/6; at width 400 the means are -0.001/-0.003/-0.007/-0.010),
so the 0.04 bound holds for ``L = 2`` and the deeper depths get a finite-width interval. The final
deviation from ``A_inf`` scales like ``sigma^2 N`` (fitted exponent of ``sigma``:
``dev_sigma_slope_L*``, about 2); for ``L = 2`` the learned kernel plus the initial kernel left in
place (``alignment_whitened(2, D, s, c0)``) predicts it at every ``sigma``, for ``L >= 3`` only the
``sigma -> 0`` limit ``A_inf`` is held (at the smallest ``sigma``).

Simulation: full-batch GD of ``MLP([D, N, ..., N, 1], activation="linear",
parameterization="standard", init_scale=sigma)`` (``numerics.training.gradient_descent`` with a
plateau learning-rate schedule and a stopping rule checked every ``chunk_steps`` steps) until the
loss has fallen by ``loss_drop``; the empirical NTK (``numerics.kernels.empirical_ntk``) and its
alignment (``numerics.kernels.alignment``) are recorded along the way. For whitened inputs GD
depends on the data only through ``Sigma_xx = I`` and ``Sigma_yx``, and the alignment only through
``X^T X = n I``, so the quick configuration uses ``n = D`` points (the paper configuration
``n = 100``). One run per (depth, sigma); the data are drawn from the configuration seed alone.
"""
from __future__ import annotations

import numpy as np

from ..numerics.deep_linear import mode_strengths
from ..numerics.kernels import alignment, empirical_ntk
from ..numerics.networks import MLP
from ..numerics.synthetic import linear_teacher
from ..numerics.training import gradient_descent
from ..theory.deep_linear_kernels import alignment_whitened, final_alignment, initial_kernel_scale
from . import config_types as ct
from . import style
from .experiment import (Control, Experiment, agreement, around, at_least, at_most, identity,
                         interval, is_true, observation)

NAME = "deep-linear-alignment"
DESCRIPTION = ("deep linear nets: NTK alignment vs time for depths 1-6 and init scales; "
               "final A vs L/sqrt(L^2+D-1)")

QUICK = {
    "n": 20, "d": 20, "beta_norm": 2.0, "width": 100, "depths": [1, 2, 3, 4, 6],
    "sigmas": [[0.01], [0.003, 0.01, 0.03], [0.003, 0.01, 0.03], [0.005, 0.01, 0.02],
               [0.012, 0.02, 0.03]],
    "lrs": [0.5, 0.1, 0.08, 0.06, 0.04], "plateau_lr_factor": 3.0, "chunk_steps": 250,
    "record_every": 10, "max_steps": 12000, "loss_drop": 1e-8, "seed": 0,
}
SMOKE = dict(QUICK, depths=[1, 2, 3], sigmas=[[0.01], [0.003, 0.03], [0.003, 0.03]],
             lrs=[0.5, 0.1, 0.08])
PAPER = dict(QUICK, n=100, sigmas=[[0.003], [0.001, 0.003, 0.01, 0.03], [0.001, 0.003, 0.01, 0.03],
                                   [0.003, 0.005, 0.01, 0.02], [0.01, 0.012, 0.02, 0.03]],
             max_steps=40000)
_RUN_KEYS = ("n", "d", "beta_norm", "width", "plateau_lr_factor", "chunk_steps", "record_every",
             "max_steps", "loss_drop")


class _PlateauSchedule:
    """The learning rate and stopping rule of one run, decided every ``chunk`` steps.

    The step size is ``factor * lr`` while the plateau lasts (the loss at every chunk end so far
    above ``0.9 L_0``: the weights are small and the dynamics slow), then ``lr``; the run stops at
    the first chunk end where ``L <= loss_drop * L_0``. ``schedule(step)`` is the learning rate and
    ``stop(step, loss)`` the stopping rule of :func:`numerics.training.gradient_descent`.
    """

    def __init__(self, lr, factor, chunk: int, loss_drop):
        self.lr, self.factor, self.chunk, self.loss_drop = lr, factor, chunk, loss_drop
        self.plateau, self.loss0 = True, None

    def schedule(self, step: int) -> float:
        return self.lr * (self.factor if self.plateau else 1.0)

    def stop(self, step: int, loss: float) -> bool:
        if step == 0:
            self.loss0 = loss
            return False
        if step % self.chunk:
            return False
        self.plateau = self.plateau and loss > 0.9 * self.loss0
        return loss <= self.loss_drop * self.loss0


def _record_steps(chunk: int, every: int, chunks: int) -> np.ndarray:
    """Every ``every`` steps and every chunk end; log-spaced in the first chunk (the early rise)."""
    local = np.union1d(np.arange(0, chunk + 1, every), [chunk])
    first = np.union1d(local, np.unique(np.geomspace(1, chunk, 40).astype(int)))
    later = (chunk * np.arange(1, chunks)[:, None] + local[None, :]).ravel()
    return np.union1d(first, later).astype(int)


def _train(L, sigma, lr, config, X, Y, U, V, rng):
    """GD until the loss has fallen by ``loss_drop`` (checked every ``chunk_steps`` steps), for at
    most ``max_steps`` steps rounded up to whole chunks, with :class:`_PlateauSchedule`; time is
    the sum of the step sizes."""
    D, N = X.shape[1], int(config["width"])
    net = MLP([D] + [N] * (L - 1) + [1], activation="linear", init_scale=sigma,
              parameterization="standard")
    params = net.init(rng)
    c0 = float(np.trace(empirical_ntk(net, params, X)) / np.trace(X @ X.T))
    record = {
        "A": lambda nt, p, x, y: alignment(empirical_ntk(nt, p, x), y),
        "u": lambda nt, p, x, y: mode_strengths(p, U, V)[0],
    }
    chunk = int(config["chunk_steps"])
    chunks = max(1, -(-int(config["max_steps"]) // chunk))
    plan = _PlateauSchedule(lr, config["plateau_lr_factor"], chunk, config["loss_drop"])
    traj = gradient_descent(net, params, X, Y, plan.schedule, chunks * chunk, record=record,
                            record_steps=_record_steps(chunk, int(config["record_every"]), chunks),
                            stop=plan.stop)
    return (traj.record_times, traj.observables["A"], traj.observables["u"], traj.times,
            traj.losses, c0)


def _data(point, seed):
    """The task, from the configuration seed alone (identical in every run)."""
    data = linear_teacher(point["n"], int(point["d"]), 1, [point["beta_norm"]],
                          seed=np.random.default_rng(np.random.SeedSequence(seed.entropy)))
    return data.X, data.Y, data.info["U"], data.info["V"]


def runs(config) -> list[dict]:
    """One run per (depth, init scale)."""
    return [dict({k: config[k] for k in _RUN_KEYS}, depth=int(L), sigma=float(sigma), lr=float(lr),
                 sigma_index=j)
            for L, sigmas, lr in zip(config["depths"], config["sigmas"], config["lrs"])
            for j, sigma in enumerate(sigmas)]


def run(point, seed) -> dict:
    """GD of one network (weights from the run's own stream), its alignment and mode strength."""
    X, Y, U, V = _data(point, seed)
    t, A, u, loss_t, loss, c0 = _train(point["depth"], point["sigma"], point["lr"], point, X, Y,
                                       U, V, np.random.default_rng(seed))
    return {"t": t, "A": A, "u": u, "losst": loss_t, "loss": loss, "bulk": np.array(c0)}


def _theory(result, config, scale=1.0):
    """The theory side: the spike-plus-bulk alignment along the simulated ``u(t)``, its final
    value at ``u = s`` with the initial bulk, ``1/sqrt(D)`` and ``A_inf`` (all times ``scale``)."""
    D, s = int(result["d"]), float(result["s"])
    out = {}
    for L, sigmas in zip(config["depths"], config["sigmas"]):
        out[f"Ainf_L{L}"] = np.array(scale * final_alignment(L, D))
        for j in range(len(sigmas)):
            key = f"L{L}_s{j}"
            c0 = float(result[f"bulk_{key}"])
            out[f"Atheory_{key}"] = scale * alignment_whitened(
                L, D, np.maximum(result[f"u_{key}"], 0.0), c0)
            out[f"Afinal_bulk_{key}"] = np.array(scale * float(alignment_whitened(L, D, s, c0)))
    out["A0_theory"] = np.array(scale / np.sqrt(D))
    return out


def combine(config, results) -> dict:
    """Name the runs ``L{L}_s{j}`` and add the theory side."""
    D = int(config["d"])
    out = {"depths": np.asarray(config["depths"]), "d": np.array(D),
           "s": np.array(float(config["beta_norm"]))}
    for point, r in zip(runs(config), results):
        L, j = point["depth"], point["sigma_index"]
        key = f"L{L}_s{j}"
        for name, value in r.items():
            out[f"{name}_{key}"] = value
        widths = [D] + [config["width"]] * (L - 1) + [1]
        out[f"bulk_expected_{key}"] = np.array(initial_kernel_scale(widths, point["sigma"]))
    for L, sigmas in zip(config["depths"], config["sigmas"]):
        out[f"sigmas_L{L}"] = np.asarray(sigmas, dtype=np.float64)
    out.update(_theory(out, config))
    return out


def measure(result) -> dict:
    out = {}
    shrinks = True
    for L in result["depths"]:
        L = int(L)
        sigmas = result[f"sigmas_L{L}"]
        order = np.argsort(sigmas)
        keys = [f"L{L}_s{j}" for j in order]            # smallest sigma first
        A_inf = float(result[f"Ainf_L{L}"])
        init = np.array([result[f"A_{k}"][0] for k in keys]) - float(result["A0_theory"])
        devs = np.array([result[f"A_{k}"][-1] for k in keys]) / A_inf - 1.0
        if L == 1:
            out["init_dev_L1"] = float(np.max(np.abs(init)))
            out["final_rel_dev_L1"] = float(np.max(np.abs(devs)))
            continue
        out[f"init_minus_theory_L{L}"] = float(np.mean(init))
        out[f"final_rel_dev_L{L}"] = float(devs[0])
        if L == 2:
            for j, k in zip(order, keys):
                out[f"final_over_bulk_theory_L2_s{j}"] = float(
                    result[f"A_{k}"][-1] / result[f"Afinal_bulk_{k}"] - 1.0)
        if len(devs) > 1:
            shrinks &= bool(np.all(np.diff(np.abs(devs)) >= 0))
            out[f"dev_sigma_slope_L{L}"] = float(np.polyfit(np.log(sigmas[order]),
                                                            np.log(np.abs(devs)), 1)[0])
        gap = result[f"A_{keys[0]}"] - result[f"Atheory_{keys[0]}"]
        out[f"curve_err_L{L}"] = float(np.max(np.abs(gap)))
        out[f"silent_loss_frac_L{L}"] = _silent(result, keys[0])
    out["dev_shrinks_with_sigma"] = float(shrinks)
    return out


def numbers(config) -> dict:
    out = {}
    deep_multi = False
    for L, sigmas in zip(config["depths"], config["sigmas"]):
        if L == 1:
            out["init_dev_L1"] = identity(
                at_most(1e-10), "L = 1: |A(0) - 1/sqrt(D)| (the NTK is X X^T exactly)")
            out["final_rel_dev_L1"] = identity(
                at_most(1e-10), "L = 1: |A_final / A_inf - 1| (the NTK never changes)")
            continue
        if L == 2:
            # quick -0.028, smoke -0.015, quick seeds 1-3 -0.011 to -0.006; controls: scaled_1.03
            # -0.034, lazy_kernel unchanged (its theory side is 1/sqrt(D) too)
            out["init_minus_theory_L2"] = agreement(
                around(0.0, 0.04), "L = 2: mean over runs of A(0) - 1/sqrt(D)")
        else:
            # quick 0.002/-0.023/-0.045 (L 3/4/6), seeds 1-3 -0.025 to +0.016: finite-width bias
            out[f"init_minus_theory_L{L}"] = agreement(
                interval(-0.15, 0.04), f"L = {L}: mean A(0) - 1/sqrt(D); finite width lowers it")
        # quick and smoke, seeds 0-3: -0.0003 to -0.0049 (L 6); controls scaled_1.03: -0.029 to
        # -0.034, lazy_kernel: >= 0.86
        out[f"final_rel_dev_L{L}"] = agreement(
            around(0.0, 0.01), f"L = {L}, smallest sigma: A_final / A_inf - 1")
        if L == 2:
            for j in range(len(sigmas)):
                # quick, smoke, seeds 0-3: -0.0026 to 0.0041; controls scaled_1.03: -0.025 to
                # -0.032, lazy_kernel: >= 0.80
                out[f"final_over_bulk_theory_L2_s{j}"] = agreement(
                    around(0.0, 0.01), f"L = 2, sigma = {sigmas[j]:g}: A_final over the spike "
                    "plus the initial kernel, minus 1")
        if len(sigmas) > 1:
            deep_multi = True
            out[f"dev_sigma_slope_L{L}"] = observation(
                interval(1.5, 2.5), f"L = {L}: exponent of |A_final / A_inf - 1| in sigma "
                "(sigma^2 N)")
        if L == 2:
            # quick 0.057 (seeds 1-3: 0.051-0.054), smoke 0.057; control lazy_kernel: 0.19
            out["curve_err_L2"] = agreement(
                at_most(0.08), "L = 2: max_t |A(t) - A_theory(u(t))| (spike plus initial kernel)")
        else:
            # quick 0.075/0.140/0.222 (L 3/4/6), seeds 1-3 >= 0.080: the simulation lags
            out[f"curve_err_L{L}"] = agreement(
                at_least(0.04), f"L = {L}: max_t |A(t) - A_theory(u(t))|; expected to fail")
        out[f"silent_loss_frac_L{L}"] = observation(
            interval(0.5, 1.0), f"L = {L}: loss fraction left when A has made 90% of its gain")
    out["dev_shrinks_with_sigma"] = observation(
        is_true(), "|A_final / A_inf - 1| grows with sigma at every depth"
        + ("" if deep_multi else " (vacuous: one sigma per depth)"))
    return out


def _scaled_theory(factor):
    def apply(result, config):
        return dict(result, **_theory(result, config, factor))
    return apply


def _lazy_kernel(result, config):
    """The kernel frozen at initialisation: the theory alignment stays 1/sqrt(D)."""
    wrong = dict(result)
    a0 = float(result["A0_theory"])
    for key, value in result.items():
        if key.startswith(("Atheory_", "Afinal_bulk_", "Ainf_")):
            wrong[key] = np.full_like(np.asarray(value, dtype=np.float64), a0)
    return wrong


CONTROLS = (
    Control("scaled_1.03", "every theory alignment scaled by 1.03", _scaled_theory(1.03)),
    Control("lazy_kernel", "the NTK frozen at initialisation (A stays 1/sqrt(D))", _lazy_kernel),
)


def _silent(result, key) -> float:
    """Fraction of the initial loss left when A has made 90% of its gain (silent: > 0.5)."""
    t, A = result[f"t_{key}"], result[f"A_{key}"]
    gain = A - A[0]
    i = int(np.nonzero(gain >= 0.9 * gain[-1])[0][0])
    loss_t, loss = result[f"losst_{key}"], result[f"loss_{key}"]
    return float(np.interp(t[i], loss_t, loss) / loss[0])


@style.styled
def plot(result):
    D = int(result["d"])
    depths = [int(L) for L in result["depths"]]
    shown = depths[:5]
    sigmas = sorted({float(s) for L in depths for s in result[f"sigmas_L{L}"]})
    colors = dict(zip(sigmas, style.sequential(len(sigmas))))
    fig, axes = style.panels(len(shown) + 2, ncols=3)
    for i, L in enumerate(shown):
        ax = axes[i]
        for j, sigma in enumerate(result[f"sigmas_L{L}"]):
            key = f"L{L}_s{j}"
            ax.plot(result[f"t_{key}"], result[f"A_{key}"], lw=1.6, alpha=0.8,
                    color=colors[float(sigma)])
            ax.plot(result[f"t_{key}"], result[f"Atheory_{key}"], "--", color="k", lw=0.7)
        ax.axhline(1 / np.sqrt(D), color="gray", ls=":", lw=1)
        ax.axhline(float(result[f"Ainf_L{L}"]), color=style.OKABE_ITO["vermillion"], ls=":",
                   lw=1)
        ax.set(xlabel="t = lr x steps", ylabel="A(K, y)")
        if L == 1:
            ax.set_ylim(0.15, 0.3)
        style.time_axis(ax, result[f"t_L{L}_s0"], scale="symlog", linthresh=1.0)
        style.title(ax, f"L = {L}: NTK alignment")
    ax = axes[len(shown)]
    Ls = np.arange(1, max(depths) + 1)
    ax.plot(Ls, final_alignment(Ls, D), "-", color=style.OKABE_ITO["vermillion"])
    for L in depths:
        for j, sigma in enumerate(result[f"sigmas_L{L}"]):
            ax.plot(L, result[f"A_L{L}_s{j}"][-1], "o", ms=4, mfc="none",
                    color=colors[float(sigma)])
    ax.axhline(1 / np.sqrt(D), color="gray", ls=":")
    style.integer_ticks(ax, "x")
    ax.set(xlabel="depth L", ylabel="final A")
    style.title(ax, "final alignment vs depth")
    handles = [style.proxy(color=colors[s], lw=1.6) for s in sigmas]
    labels = [f"GD, init scale sigma = {s:g}" for s in sigmas]
    handles += [style.proxy(color="k", ls="--", lw=0.7),
                style.proxy(color=style.OKABE_ITO["vermillion"], ls=":"),
                style.proxy(color="gray", ls=":")]
    labels += ["theory: bulk + rank-one spike at u(t)", "final: L / sqrt(L^2 + D - 1)",
               "1 / sqrt(D)"]
    style.legend_panel(axes[-1], handles, labels)
    return fig


EXPERIMENT = Experiment(
    name=NAME, description=DESCRIPTION,
    configs={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    config_types={"beta_norm": ct.positive_float(),
                  "sigmas": ct.ListOf(ct.ListOf(ct.positive_float())),
                  "plateau_lr_factor": ct.positive_float(),
                  "chunk_steps": ct.positive_int(), "loss_drop": ct.positive_float()},
    numbers=numbers, measure=measure, plot=plot, controls=CONTROLS,
    regimes={
        "L >= 3, finite width": "A(0) is below 1/sqrt(D) by a finite-width amount growing with "
        "depth (init_minus_theory_L3+ held to a wide interval)",
        "L >= 3, during training": "the early layers are not balanced when the spike assumes "
        "it; the theory curve leads the simulation (curve_err_L3+ >= 0.04)",
        "larger sigma": "the random bulk lowers the final alignment like sigma^2 N; predicted "
        "for L = 2 only (final_over_bulk_theory_L2_s*), observed otherwise"},
    runs=runs, run=run, combine=combine)
