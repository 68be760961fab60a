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
few hundredths; for ``L >= 3`` the simulated alignment lags it (``curve_err_L*`` reported, no
target): at the same ``u`` the random initial layers are not yet balanced, which the spike
assumes. Silent alignment (Atanasov, Bordelon & Pehlevan 2021) is measured as the fraction of the
initial loss left when ``A`` has made 90% of its gain (``silent_loss_frac_L*``; above 0.5 means
the kernel aligned before the loss halved).

Measured limits: at width 100 the initial alignment deviates from ``1/sqrt(D)`` by a finite-width
amount that grows with depth (40 seeds, D = 20: mean -0.010/-0.009/-0.031/-0.042 and std
0.014/0.023/0.029/0.034 for L = 2/3/4/6; at width 400 the means are -0.001/-0.003/-0.007/-0.010),
so the 0.04 bound is held for ``L = 2`` only and the deeper values are reported. The final
deviation from ``A_inf`` scales like ``sigma^2 N`` (fitted exponent of ``sigma``:
``dev_sigma_slope_L*``, about 2).

Simulation: full-batch GD of ``MLP([D, N, ..., N, 1], activation="linear",
parameterization="standard", init_scale=sigma)`` (``numerics.training.gradient_descent`` with a
plateau learning-rate schedule and a stopping rule checked every ``chunk_steps`` steps) until the
loss has fallen by ``loss_drop``; the empirical NTK (``numerics.kernels.empirical_ntk``) and its
alignment (``numerics.kernels.alignment``) are recorded along the way. For whitened inputs GD
depends on the data only through ``Sigma_xx = I`` and ``Sigma_yx``, and the alignment only through
``X^T X = n I``, so the quick configuration uses ``n = D`` points (the paper configuration
``n = 100``).
"""
from __future__ import annotations

import numpy as np

from ..base.validation import as_generator
from ..numerics.deep_linear import mode_strengths
from ..numerics.kernels import alignment, empirical_ntk
from ..numerics.networks import MLP
from ..numerics.synthetic import linear_teacher
from ..numerics.training import gradient_descent
from ..theory.deep_linear_kernels import alignment_whitened, final_alignment, initial_kernel_scale

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
PAPER = dict(QUICK, n=100, sigmas=[[0.003], [0.001, 0.003, 0.01, 0.03], [0.001, 0.003, 0.01, 0.03],
                                   [0.003, 0.005, 0.01, 0.02], [0.01, 0.012, 0.02, 0.03]],
             max_steps=40000)
TARGETS = {
    "init_dev_L1": (0.0, 1e-10),
    "init_dev_L2": (0.0, 0.04),
    "final_rel_dev_L1": (-1e-10, 1e-10),
    "final_rel_dev_L2": (-0.01, 0.01),
    "final_rel_dev_L3": (-0.01, 0.01),
    "final_rel_dev_L4": (-0.01, 0.01),
    "final_rel_dev_L6": (-0.01, 0.01),
    "dev_shrinks_with_sigma": (1.0, 1.0),
    "silent_loss_frac_L2": (0.5, 1.0),
    "silent_loss_frac_L3": (0.5, 1.0),
    "silent_loss_frac_L4": (0.5, 1.0),
    "silent_loss_frac_L6": (0.5, 1.0),
}


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


def _run(L, sigma, lr, config, X, Y, U, V, rng):
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


def compute(config) -> dict:
    rng = as_generator(config["seed"])
    D = int(config["d"])
    data = linear_teacher(config["n"], D, 1, [config["beta_norm"]], seed=rng)
    X, Y, U, V = data.X, data.Y, data.info["U"], data.info["V"]
    s = float(config["beta_norm"])
    out = {"depths": np.asarray(config["depths"]), "d": np.array(D), "s": np.array(s)}
    for L, sigmas, lr in zip(config["depths"], config["sigmas"], config["lrs"]):
        out[f"sigmas_L{L}"] = np.asarray(sigmas, dtype=np.float64)
        for j, sigma in enumerate(sigmas):
            t, A, u, loss_t, loss, c0 = _run(L, sigma, lr, config, X, Y, U, V, rng)
            key = f"L{L}_s{j}"
            out[f"t_{key}"], out[f"A_{key}"], out[f"u_{key}"] = t, A, u
            out[f"losst_{key}"], out[f"loss_{key}"] = loss_t, loss
            widths = [D] + [config["width"]] * (L - 1) + [1]
            out[f"bulk_expected_{key}"] = np.array(initial_kernel_scale(widths, sigma))
            out[f"bulk_{key}"] = np.array(c0)
            # theory along the trajectory: the isotropic initial kernel (its measured scale c0)
            # plus the rank-one spike u^(2-2/L) [X X^T + (L-1)(X v)(X v)^T] of the current u(t) >= 0
            out[f"Atheory_{key}"] = alignment_whitened(L, D, np.maximum(u, 0.0), c0)
            out[f"Afinal_bulk_{key}"] = np.array(float(alignment_whitened(L, D, s, c0)))
    return out


def agreement(result) -> dict:
    D = int(result["d"])
    out = {}
    shrinks = True
    for L in result["depths"]:
        L = int(L)
        sigmas = result[f"sigmas_L{L}"]
        A_inf = final_alignment(L, D)
        devs = []
        init = []
        for j in range(len(sigmas)):
            key = f"L{L}_s{j}"
            A = result[f"A_{key}"]
            init.append(abs(A[0] - 1.0 / np.sqrt(D)))
            devs.append(A[-1] / A_inf - 1.0)
        order = np.argsort(sigmas)
        devs = np.asarray(devs)[order]
        out[f"init_dev_L{L}"] = float(max(init))
        out[f"final_rel_dev_L{L}"] = float(devs[0])
        if L >= 2 and len(devs) > 1:
            shrinks &= bool(np.all(np.diff(np.abs(devs)) >= 0))
            out[f"final_rel_dev_largest_sigma_L{L}"] = float(devs[-1])
            out[f"dev_sigma_slope_L{L}"] = float(np.polyfit(np.log(np.sort(sigmas)),
                                                            np.log(np.abs(devs)), 1)[0])
            key = f"L{L}_s{int(order[0])}"
            gap = result[f"A_{key}"] - result[f"Atheory_{key}"]
            out[f"curve_err_L{L}"] = float(np.max(np.abs(gap)))
            out[f"silent_loss_frac_L{L}"] = _silent(result, key)
    out["dev_shrinks_with_sigma"] = float(shrinks)
    return out


def _silent(result, key) -> float:
    """Fraction of the initial loss left when A has made 90% of its gain (silent: > 0.5)."""
    t, A = result[f"t_{key}"], result[f"A_{key}"]
    gain = A - A[0]
    i = int(np.nonzero(gain >= 0.9 * gain[-1])[0][0])
    loss_t, loss = result[f"losst_{key}"], result[f"loss_{key}"]
    return float(np.interp(t[i], loss_t, loss) / loss[0])


def plot(result):
    import matplotlib.pyplot as plt

    D = int(result["d"])
    depths = [int(L) for L in result["depths"]]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    axes = axes.ravel()
    for i, L in enumerate(depths[:5]):
        ax = axes[i]
        for j, sigma in enumerate(result[f"sigmas_L{L}"]):
            key = f"L{L}_s{j}"
            line, = ax.plot(result[f"t_{key}"], result[f"A_{key}"], lw=2, alpha=0.7,
                            label=f"GD sigma={sigma:g}")
            ax.plot(result[f"t_{key}"], result[f"Atheory_{key}"], "--", color="k", lw=0.8)
        ax.axhline(1 / np.sqrt(D), color="gray", ls=":", lw=1)
        ax.axhline(final_alignment(L, D), color="r", ls=":", lw=1, label="L/sqrt(L^2+D-1)")
        ax.set(title=f"L = {L}: NTK alignment (dashed: bulk + rank-one spike at u(t))",
               xlabel="t = lr x steps", ylabel="A(K, y)")
        if L == 1:
            ax.set_ylim(0.15, 0.3)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.legend(fontsize=7)
    ax = axes[5]
    Ls = np.arange(1, max(depths) + 1)
    ax.plot(Ls, final_alignment(Ls, D), "k-", label="L / sqrt(L^2 + D - 1)")
    for L in depths:
        for j, sigma in enumerate(result[f"sigmas_L{L}"]):
            ax.plot(L, result[f"A_L{L}_s{j}"][-1], "o", ms=4 + 2 * j, mfc="none",
                    color=f"C{j}")
    ax.axhline(1 / np.sqrt(D), color="gray", ls=":", label="1/sqrt(D)")
    ax.set(title="final alignment vs depth (markers: init scales, small to large)",
           xlabel="depth L", ylabel="final A")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
