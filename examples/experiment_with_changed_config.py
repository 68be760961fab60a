"""Run a registered experiment from Python with a changed configuration, then re-plot it.

``ntk-width`` measures how the empirical NTK of an MLP converges to its infinite-width limit
(the relative Frobenius error falls like ``width^(-1/2)``, Jacot et al. 2018). Its default
activation is ReLU; here it is run with ``erf`` instead through the Python API
(:func:`ntkdyn.run`, serial, silent), which returns a :class:`ntkdyn.figures.api.Result`: the
JSON record (every number with its kind, target and verdict, and the negative controls) and the
arrays behind the figure. The experiment's own figure is saved with ``Result.save`` (outputs of
a changed configuration are named ``ntk-width-<config hash>``, so they never overwrite the
default's ``ntk-width.*``), and a figure of one's own is drawn from ``Result.arrays``.

Run ``python examples/experiment_with_changed_config.py``; everything goes to
``$NTKDYN_EXAMPLE_OUT`` (default ``./examples_out``). ``NTKDYN_EXAMPLE_SMOKE=1`` starts from the
experiment's seconds-long ``smoke`` configuration instead of ``quick``.
"""
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import ntkdyn
from ntkdyn.figures.registry import get_experiment

SMOKE = os.environ.get("NTKDYN_EXAMPLE_SMOKE") == "1"
OUT = Path(os.environ.get("NTKDYN_EXAMPLE_OUT", "examples_out"))


def main():
    # `ntkdyn show ntk-width` lists the keys; a dict of overrides applies to the quick config,
    # so the smoke run passes the whole smoke configuration with the change.
    base = get_experiment("ntk-width").config("smoke" if SMOKE else "quick")
    config = dict(base, activation="erf")
    result = ntkdyn.run("ntk-width", config=config)
    print(result)
    print(result.summary())
    written = result.save(OUT, formats=("png",))
    print("wrote", ", ".join(str(p) for p in written))

    # Re-plot from the arrays: the error of every depth, width and seed against the width.
    arrays = result.arrays
    widths, depths = np.asarray(arrays["widths"]), np.asarray(arrays["depths"])
    K, K_inf = np.asarray(arrays["kernels"]), np.asarray(arrays["k_inf"])
    # kernels: (depth, width, seed, n, n); k_inf: (depth, n, n)
    scale = np.linalg.norm(K_inf, axis=(-2, -1))[:, None, None]
    error = np.linalg.norm(K - K_inf[:, None, None], axis=(-2, -1)) / scale
    fig, ax = plt.subplots(figsize=(4.5, 3.2), constrained_layout=True)
    for a, L in enumerate(depths):
        ax.loglog(widths, error[a].mean(axis=-1), "o-", label=f"erf, depth {L}")
    ax.loglog(widths, error[0, 0].mean() * (widths / widths[0]) ** -0.5, "k--",
              label="width^(-1/2)")
    ax.set(xlabel="width m", ylabel="||K_m - K_inf||_F / ||K_inf||_F")
    ax.legend(fontsize=8)
    path = OUT / "experiment_with_changed_config.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
