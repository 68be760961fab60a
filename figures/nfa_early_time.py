"""nfa-early-time: the early-time prediction of the centred NFA against simulation.

Beaglehole, Mitliagkas & Agarwala (2024) give an early-time theory of the centred neural feature
correlation in terms of simple statistics of the inputs and labels (abstract). Theory here
(:mod:`ntkdyn.theory.nfa`, derived from the definitions): to first order in t the weight change of
layer ``l`` is ``dW = -(t c / n) B^T M`` (``B`` the pre-activation tangent features, ``M`` the rows
``r_ij a_i``), so the centred correlation tends to

    C-NFC(0+) = rho(M^T Theta M, M^T Theta^2 M),    Theta = B B^T (the PTK Gram at t = 0),

a function of the layer inputs, the residuals ``f_0 - y`` and the initial PTK only, with error
``O(t)``. Simulation: a bias-free ReLU MLP (five hidden layers) on the low-rank task, trained
by gradient descent with learning rate ``lr / max(init_scale, 1)^(2 H)`` (the NTK grows like
``init_scale^(2 H)`` for ``H`` hidden layers; a small init scale keeps ``lr``, as its larger
relative steps would diverge), C-NFC recorded at log-spaced steps.

A second check uses no hidden weights at all: for a wide two-layer ReLU network the PTK is
replaced by its infinite-width limit, the degree-0 arc-cosine kernel of the inputs
(:func:`ntkdyn.theory.nfa.relu_ptk_two_layer`). It trains with a smaller ``wide_lr``: a two-layer
network's residuals, which the theory freezes, change faster than a deep one's.
"""
from __future__ import annotations

import numpy as np

from ..numerics.features import nfa_observable, ptk_gram
from ..numerics.networks import MLP
from ..numerics.synthetic import low_rank_task
from ..numerics.training import gradient_descent, record_schedule
from ..theory.nfa import early_centered_nfc, relu_ptk_two_layer

NAME = "nfa-early-time"
DESCRIPTION = "early-time C-NFA theory (inputs, labels, initial PTK) vs GD, across init scales"

QUICK = {
    "n": 256, "d": 20, "width": 64, "hidden_layers": 5, "init_scales": [0.5, 1.0, 2.0],
    "lr": 0.5, "steps": 300, "num_records": 16, "small_step": 5, "wide_width": 2048,
    "wide_lr": 0.05, "wide_steps": 100, "seed": 0,
}
PAPER = {
    "n": 512, "d": 20, "width": 128, "hidden_layers": 5, "init_scales": [0.5, 1.0, 2.0, 4.0],
    "lr": 0.5, "steps": 2000, "num_records": 30, "small_step": 5, "wide_width": 8192,
    "wide_lr": 0.05, "wide_steps": 300, "seed": 0,
}
TARGETS = {
    # claim: the prediction is within 5 % of the simulation at small t
    "max_rel_error_small_t": (0.0, 0.05),
    "two_layer_arccos_abs_error": (0.0, 0.05),
    # O(t) approach: log-log slope of the mean |error| over the early steps
    "error_slope": (0.5, 1.5),
}


def runs(config) -> list[dict]:
    if not 1 <= config["small_step"] <= min(config["steps"], config["wide_steps"]):
        raise ValueError(f"small_step must lie in [1, min(steps, wide_steps)], "
                         f"got {config['small_step']}")
    keys = ("n", "d", "width", "hidden_layers", "lr", "steps", "num_records", "small_step", "seed")
    points = [dict({k: config[k] for k in keys}, kind="deep", init_scale=float(s))
              for s in config["init_scales"]]
    points.append(dict({k: config[k] for k in keys}, kind="two-layer",
                       width=config["wide_width"], lr=config["wide_lr"], steps=config["wide_steps"],
                       init_scale=1.0))
    return points


def run(point) -> dict:
    ds = low_rank_task(point["n"], d=point["d"], seed=point["seed"])
    X, Y = ds.X, ds.Y
    s = point["init_scale"]
    n_hidden = point["hidden_layers"] if point["kind"] == "deep" else 1
    net = MLP([point["d"]] + [point["width"]] * n_hidden + [1], activation="relu", init_scale=s)
    p0 = net.init([point["seed"], int(1000 * s), n_hidden])
    fwd = net.forward(p0, X)
    R = fwd.output - Y
    pred = np.array([early_centered_nfc(fwd.activations[l], R, ptk_gram(net, p0, X, l))
                     for l in range(n_hidden)])
    steps = point["steps"]
    schedule = np.union1d(record_schedule(steps, num=point["num_records"], log=True),
                          [point["small_step"]])
    lr = point["lr"] / max(s, 1.0) ** (2 * n_hidden)
    tr = gradient_descent(net, p0, X, Y, lr=lr, steps=steps, record_steps=schedule,
                          record={"nfa": nfa_observable(p0, layers=range(n_hidden))})
    obs = tr.observables["nfa"]
    out = {"pred": pred, "steps": tr.record_steps[1:], "times": tr.record_times[1:],
           "c": obs[1:, 1], "uc": obs[1:, 0], "uc_init": obs[0, 0]}
    if point["kind"] == "two-layer":
        # inputs, labels, initial outputs and the infinite-width PTK only
        out["pred_arccos"] = np.array(early_centered_nfc(X, R, relu_ptk_two_layer(X)))
    return out


def combine(config, results) -> dict:
    deep, wide = results[:-1], results[-1]
    return {
        "init_scales": np.asarray(config["init_scales"], dtype=float),
        "small_step": np.array(config["small_step"]),
        "steps": np.asarray(deep[0]["steps"]),
        "pred": np.stack([r["pred"] for r in deep]),  # (scales, layers)
        "c": np.stack([r["c"] for r in deep]),  # (scales, records, layers)
        "uc": np.stack([r["uc"] for r in deep]),
        "uc_init": np.stack([r["uc_init"] for r in deep]),
        "wide_steps": np.asarray(wide["steps"]),
        "wide_pred": np.asarray(wide["pred"])[0],
        "wide_pred_arccos": np.asarray(wide["pred_arccos"]),
        "wide_c": np.asarray(wide["c"])[:, 0],
    }


def compute(config) -> dict:
    return combine(config, [run(point) for point in runs(config)])


def _errors(result):
    """Relative errors ``|C_sim - pred| / pred``, shape (scales, records, layers)."""
    pred = result["pred"][:, None, :]
    return np.abs(result["c"] - pred) / pred


def agreement(result) -> dict:
    steps = result["steps"]
    small = int(np.searchsorted(steps, result["small_step"]))
    err = _errors(result)
    # fit over the records up to 10x the small step (still "early"), mean over scales and layers
    early = (steps >= steps[0]) & (steps <= 10 * steps[small])
    mean_err = err[:, early].mean(axis=(0, 2))
    slope = np.polyfit(np.log(steps[early]), np.log(mean_err), 1)[0]
    w_small = int(np.searchsorted(result["wide_steps"], result["small_step"]))
    pred = result["pred"]
    return {
        "max_rel_error_small_t": float(err[:, small].max()),
        "mean_rel_error_small_t": float(err[:, small].mean()),
        "max_rel_error_final": float(err[:, -1].max()),
        "error_slope": float(slope),
        "two_layer_arccos_abs_error": float(abs(result["wide_c"][w_small]
                                                - result["wide_pred_arccos"])),
        "two_layer_ptk_abs_error": float(abs(result["wide_c"][w_small] - result["wide_pred"])),
        "pred_spread_across_init_scales": float((pred.max(axis=0) - pred.min(axis=0)).max()),
        "uc_init_spread_across_init_scales": float(np.ptp(result["uc_init"], axis=0).max()),
    }


def plot(result):
    import matplotlib.pyplot as plt

    scales, steps, pred, c = result["init_scales"], result["steps"], result["pred"], result["c"]
    S, n_hidden = pred.shape
    fig, axes = plt.subplots(1, S + 2, figsize=(3.6 * (S + 2), 3.6))
    for a, s in enumerate(scales):
        ax = axes[a]
        for l in range(n_hidden):
            line, = ax.plot(steps, c[a, :, l], label=f"layer {l + 1}")
            ax.axhline(pred[a, l], color=line.get_color(), ls="--", lw=0.9)
        ax.axvline(int(result["small_step"]), color="0.6", lw=0.6)
        ax.set(xscale="log", xlabel="GD step", ylabel="C-NFA",
               title=f"init scale {s:g}: simulation (—), theory (--)")
        ax.legend(fontsize=7)
    ax = axes[S]
    err = _errors(result)
    for a, s in enumerate(scales):
        ax.plot(steps, err[a].mean(axis=-1), marker="o", ms=3, label=f"init scale {s:g}")
    ref = err[:, 0].mean() * steps / steps[0]
    ax.plot(steps, ref, "k--", lw=0.8, label=r"$\propto t$")
    ax.set(xscale="log", yscale="log", xlabel="GD step",
           ylabel="|sim - theory| / theory (mean over layers)", title="approach to t -> 0")
    ax.legend(fontsize=7)
    ax = axes[S + 1]
    small = int(np.searchsorted(steps, result["small_step"]))
    for a, s in enumerate(scales):
        ax.scatter(pred[a], c[a, small], label=f"deep, init scale {s:g}")
    w_small = int(np.searchsorted(result["wide_steps"], result["small_step"]))
    ax.scatter([result["wide_pred_arccos"]], [result["wide_c"][w_small]], marker="*", s=120,
               color="k", label="two-layer, arc-cosine PTK")
    lo = min(pred.min(), float(result["wide_pred_arccos"])) - 0.02
    ax.plot([lo, 1], [lo, 1], "k-", lw=0.7)
    ax.set(xlabel="predicted C-NFA (t -> 0)",
           ylabel=f"simulated C-NFA at step {int(result['small_step'])}",
           title="theory vs simulation at small t")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
