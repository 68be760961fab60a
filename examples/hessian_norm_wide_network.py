"""The Hessian norm of a two-layer network with 10^7 hidden units, beside its exact law.

Liu, Zhu & Belkin (2020) explain why wide networks train like their linearisation: the spectral
norm of the output Hessian at initialisation falls like ``sqrt(log m) / sqrt(m)`` with the width
``m`` while the gradient stays of order one. For ``f(x) = (1/sqrt(m)) sum_j v_j tanh(w_j . x /
sqrt(d))`` the Hessian is block-diagonal over hidden units, so its norm is a maximum over ``m``
closed-form 2 x 2 blocks; :func:`ntkdyn.numerics.hessian_two_layer.two_layer_hessian` streams
once over ``W_1`` (no Hessian is ever formed: at ``m = 10^7, d = 16`` it would have 1.7e8 rows) and
returns ``||H||``, ``||H||_F``, ``||grad f||`` and ``f(x)``. Beside each measurement is the median
of the exact law of ``||H||`` (:func:`ntkdyn.theory.linearity.hessian_norm_quantile`) and the
leading order ``sqrt(2 log m) sup|phi''| |x|^2 / (d sqrt(m))``
(:func:`ntkdyn.theory.linearity.hessian_norm_asymptotic`).

Run ``python examples/hessian_norm_wide_network.py`` (widths 10^2 .. 10^7; the widest network's
weights take 1.3 GB); the figure goes to ``$NTKDYN_EXAMPLE_OUT`` (default ``./examples_out``).
``NTKDYN_EXAMPLE_SMOKE=1`` stops at 10^4 units (what the test suite runs).
"""
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import ntkdyn
from ntkdyn.base.samplers import sphere_inputs
from ntkdyn.numerics.hessian_two_layer import two_layer_hessian
from ntkdyn.theory import linearity

SMOKE = os.environ.get("NTKDYN_EXAMPLE_SMOKE") == "1"
OUT = Path(os.environ.get("NTKDYN_EXAMPLE_OUT", "examples_out"))

D = 16
LOG10_WIDTHS = [2, 3, 4] if SMOKE else [2, 3, 4, 5, 6, 7]
# The Numba pass streams 10^7 rows in a fraction of a second but takes seconds to compile; the
# smoke run uses the blocked NumPy pass (the same closed form) instead.
BACKEND = "numpy" if SMOKE else "auto"


def main():
    act = ntkdyn.ACTIVATIONS["tanh"]
    x = sphere_inputs(1, D, seed=0)[0]                  # |x|^2 = d
    x_norm = float(np.linalg.norm(x))
    sup_d2phi = 4.0 / (3.0 * np.sqrt(3.0))                # max |tanh''|
    widths = [10 ** p for p in LOG10_WIDTHS]
    measured, grads, median = [], [], []
    for m in widths:
        net = ntkdyn.MLP([D, m, 1], activation="tanh")
        params = net.init(seed=m)
        h = two_layer_hessian(net, params, x, backend=BACKEND)
        measured.append(h.norm)
        grads.append(h.grad_norm)
        median.append(linearity.hessian_norm_quantile(m, act.dphi, act.d2phi, x_norm, D))
        print(f"m = {m:>9,d}: ||H|| = {h.norm:.4g} (exact-law median {median[-1]:.4g}), "
              f"||grad f|| = {h.grad_norm:.4g}")
        del params
    leading = linearity.hessian_norm_asymptotic(np.array(widths), sup_d2phi, x_norm, D)
    limit = linearity.gradient_norm_limit(act.phi, act.dphi, x_norm, D)

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), constrained_layout=True)
    axes[0].loglog(widths, measured, "o", label="measured (one network each)")
    axes[0].loglog(widths, median, "-", label="exact law: median")
    axes[0].loglog(widths, leading, "--", label="sqrt(2 log m) leading order")
    axes[0].set(xlabel="width m", ylabel="||H|| at initialisation")
    axes[0].legend(fontsize=8)
    axes[1].semilogx(widths, grads, "o", label="measured")
    axes[1].axhline(limit, color="k", ls="--", label="infinite-width limit")
    axes[1].set(xlabel="width m", ylabel="||grad f||")
    axes[1].legend(fontsize=8)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "hessian_norm_wide_network.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
    return {"widths": widths, "measured": measured, "median": median}


if __name__ == "__main__":
    main()
