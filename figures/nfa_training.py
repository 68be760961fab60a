"""nfa-training: uncentred and centred neural feature correlations per layer during training.

Beaglehole, Mitliagkas & Agarwala (2024), arXiv:2402.05271, after the MLP experiment of the
authors' public code. A bias-free ReLU MLP with five hidden layers is
trained by full-batch gradient descent on the MSE loss; at log-spaced steps we record, for each
of the five weight matrices that feed a hidden layer,

    UC-NFC = rho(W^T W, W^T K W),   C-NFC = rho(dW^T dW, dW^T K dW),   dW = W - W_0,

(``rho`` the Pearson correlation of the entries, ``K`` the current PTK covariance, see
:mod:`ntkdyn.numerics.features`), the relative weight change ``||dW||_F / ||W_0||_F`` and the loss.
Data: the synthetic low-rank task ``y = z_1 z_2 + relu(z_3)``, ``z = U^T x``
(:func:`ntkdyn.numerics.synthetic.low_rank_task`), and balanced subsets of scikit-learn's bundled
digits (where scikit-learn is installed) and of MNIST (where its IDX files are in ``data_dir`` or
``$NTKDYN_DATA``), with pixels standardised and centred one-hot labels
(:func:`ntkdyn.numerics.datafiles.image_classification`); an unavailable real data set is left out.
Claim: the centred correlation is high from the first steps, while the uncentred one is set by the
initialisation (falling with depth) and lags behind; the paper attributes the alignment of trained
networks to the weight changes interacting with the pre-activation features, i.e. to the centred
correlation (abstract).
"""
from __future__ import annotations

import numpy as np

from ..numerics.datafiles import image_classification, load_digits, load_mnist
from ..numerics.features import nfa_observable
from ..numerics.networks import MLP
from ..numerics.synthetic import low_rank_task
from ..numerics.training import gradient_descent, record_schedule

NAME = "nfa-training"
DESCRIPTION = "UC-NFA and C-NFA per layer vs training time (5 hidden ReLU layers, low-rank task)"

QUICK = {
    "datasets": ["lowrank"], "n": 512, "d": 20, "width": 128, "hidden_layers": 5, "lr": 0.5,
    "steps": 600, "num_records": 20, "early_step": 10, "seeds": 1, "seed": 0, "data_dir": "",
}
PAPER = {
    "datasets": ["lowrank", "digits", "mnist"], "n": 512, "d": 20, "width": 128,
    "hidden_layers": 5, "lr": 0.5, "steps": 2000, "num_records": 30, "early_step": 10,
    "seeds": 3, "seed": 0, "data_dir": "",
}
TARGETS = {
    # claim: centred above uncentred at every layer early in training (step <= 50)
    "c_minus_uc_min_early": (0.0, 2.0),
    "c_min_early": (0.75, 1.0),
    "loss_ratio": (0.0, 0.5),
}

DATASETS = ("lowrank", "digits", "mnist")


def available(name: str, data_dir: str = "") -> bool:
    """Whether a data set can be read here (scikit-learn for digits, local files for MNIST)."""
    try:
        if name == "digits":
            load_digits()
        elif name == "mnist":
            load_mnist(data_dir or None)
    except FileNotFoundError:
        return False
    return True


def load_dataset(name: str, n: int, d: int, seed, data_dir: str = ""):
    """``(X, Y)`` of the named data set with ``n`` examples."""
    if name == "lowrank":
        ds = low_rank_task(n, d=d, seed=seed)
    elif name in ("digits", "mnist"):
        ds = image_classification(name, n, data_dir=data_dir or None, seed=seed,
                                  normalize="standardize")
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {list(DATASETS)}")
    return ds.X, ds.Y


def runs(config) -> list[dict]:
    """One run per (data set, seed); a real data set that cannot be read here is left out."""
    for name in config["datasets"]:
        if name not in DATASETS:
            raise ValueError(f"datasets: unknown {name!r}; expected names from {list(DATASETS)}")
    names = [s for s in config["datasets"] if available(s, config["data_dir"])]
    if not names:
        raise ValueError(f"datasets: none of {config['datasets']} is available here")
    keys = ("n", "d", "width", "hidden_layers", "lr", "steps", "num_records", "early_step",
            "seed", "data_dir")
    return [dict({k: config[k] for k in keys}, dataset=name, replicate=r)
            for name in names for r in range(config["seeds"])]


def run(point) -> dict:
    seed = [point["seed"], point["replicate"]]
    X, Y = load_dataset(point["dataset"], point["n"], point["d"], seed, point["data_dir"])
    n_hidden = point["hidden_layers"]
    net = MLP([X.shape[1]] + [point["width"]] * n_hidden + [Y.shape[1]], activation="relu")
    p0 = net.init(seed)
    steps = point["steps"]
    schedule = record_schedule(steps, num=point["num_records"], log=True)
    schedule = np.union1d(schedule, [min(point["early_step"], steps)])
    tr = gradient_descent(net, p0, X, Y, lr=point["lr"], steps=steps, record_steps=schedule,
                          record={"nfa": nfa_observable(p0, layers=range(n_hidden))})
    obs = tr.observables["nfa"]  # (records, 3, layers): UC, C (nan at step 0), dW / W0
    return {"steps": tr.record_steps[1:], "times": tr.record_times[1:], "uc_init": obs[0, 0],
            "uc": obs[1:, 0], "c": obs[1:, 1], "weight_change": obs[1:, 2],
            "losses": tr.losses, "dataset": np.array(point["dataset"])}


def combine(config, results) -> dict:
    """Stack the seeds of each data set: arrays ``{dataset}_{key}`` with a leading seed axis."""
    out = {"datasets": np.array(sorted({str(r["dataset"]) for r in results},
                                       key=list(DATASETS).index))}
    for name in out["datasets"]:
        rs = [r for r in results if str(r["dataset"]) == name]
        out[f"{name}_steps"] = np.asarray(rs[0]["steps"])
        out[f"{name}_times"] = np.asarray(rs[0]["times"])
        for key in ("uc_init", "uc", "c", "weight_change", "losses"):
            out[f"{name}_{key}"] = np.stack([np.asarray(r[key]) for r in rs])
    out["early_step"] = np.array(config["early_step"])
    return out


def compute(config) -> dict:
    return combine(config, [run(point) for point in runs(config)])


def _numbers(result, name) -> dict:
    """Seed means on data set ``name`` at ``early_step`` and at the end."""
    steps = result[f"{name}_steps"]
    early = int(np.searchsorted(steps, result["early_step"]))
    uc, c = result[f"{name}_uc"].mean(axis=0), result[f"{name}_c"].mean(axis=0)
    losses = result[f"{name}_losses"].mean(axis=0)
    change = result[f"{name}_weight_change"].mean(axis=0)
    return {
        "c_minus_uc_min_early": float((c - uc)[early].min()),
        "c_min_early": float(c[early].min()),
        "c_max_early": float(c[early].max()),
        "uc_first_layer_early": float(uc[early, 0]),
        "uc_last_layer_early": float(uc[early, -1]),
        "c_min_final": float(c[-1].min()),
        "uc_max_final": float(uc[-1].max()),
        "weight_change_first_layer_final": float(change[-1, 0]),
        "loss_ratio": float(losses[-1] / losses[0]),
    }


def agreement(result) -> dict:
    """Numbers on the low-rank task (or the first data set run), others prefixed by their name."""
    names = [str(s) for s in result["datasets"]]
    main = "lowrank" if "lowrank" in names else names[0]
    out = _numbers(result, main)
    for name in names:
        if name != main:
            out.update({f"{name}_{k}": v for k, v in _numbers(result, name).items()})
    return out


def plot(result):
    import matplotlib.pyplot as plt

    names = [str(s) for s in result["datasets"]]
    n_hidden = result[f"{names[0]}_uc"].shape[-1]
    fig, axes = plt.subplots(len(names), n_hidden + 2,
                             figsize=(3.0 * (n_hidden + 2), 3.0 * len(names)),
                             squeeze=False)
    for row, name in zip(axes, names):
        t = result[f"{name}_steps"]
        uc, c, change = result[f"{name}_uc"], result[f"{name}_c"], result[f"{name}_weight_change"]
        for l in range(n_hidden):
            ax = row[l]
            for data, color, label in ((uc, "C0", "UC-NFA"), (c, "C2", "C-NFA")):
                mean, std = data[..., l].mean(axis=0), data[..., l].std(axis=0)
                ax.plot(t, mean, color=color, label=label)
                ax.fill_between(t, mean - std, mean + std, color=color, alpha=0.25)
            ax.axhline(result[f"{name}_uc_init"][:, l].mean(), color="C0", ls=":", lw=0.8,
                       label="UC at init")
            ax.axvline(int(result["early_step"]), color="0.6", lw=0.6)
            ax.set(xscale="log", ylim=(0, 1.02), xlabel="GD step",
                   title=f"{name}: layer {l + 1}")
            if l == 0:
                ax.set_ylabel("correlation")
                ax.legend(fontsize=7, loc="lower left")
        ax = row[n_hidden]
        losses = result[f"{name}_losses"]
        ax.plot(np.arange(1, losses.shape[1] + 1), losses.mean(axis=0), color="k")
        ax.set(xscale="log", yscale="log", xlabel="GD step (+1)", title=f"{name}: training loss")
        ax = row[n_hidden + 1]
        for l in range(n_hidden):
            ax.plot(t, change[..., l].mean(axis=0), label=f"layer {l + 1}")
        ax.set(xscale="log", yscale="log", xlabel="GD step",
               title=r"$\|W - W_0\|_F / \|W_0\|_F$")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
