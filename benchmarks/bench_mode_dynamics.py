"""Mode dynamics of deep linear networks for 10^4 modes x 5 depths, as ratios measured in one run.

``ntkdyn.theory.deep_linear_modes.mode_dynamics`` evaluates closed forms for depths 1 and 2 and,
for depth ``L >= 3``, the exact implicit solution ``I(w(t)) = I(w0) + kappa t`` inverted by
Newton's method (default) or a vectorised ``solve_ivp`` over all modes (``method="DOP853"``).
Reported: the time of each against the depth-2 closed form on the same grid (the reference
measured in the same run), and the largest difference between the implicit solution and DOP853
at tight tolerances.
Target: all five depths for 10^4 modes in under 1 s on the 2-core machine.

Run: ``ntkdyn bench --only mode_dynamics`` (``--quick`` for 10^3 modes) or
``python benchmarks/bench_mode_dynamics.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from ntkdyn.theory.deep_linear_modes import mode_dynamics  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^3 modes instead of 10^4")
    args = parser.parse_args(argv)
    m = 1000 if args.quick else 10000
    rng = np.random.default_rng(0)
    s = rng.uniform(0.1, 5.0, m)
    u0 = rng.uniform(1e-4, 1e-2, m)
    t = np.linspace(0.0, 50.0, 50)
    depths = (1, 2, 3, 4, 6)
    ref = best_time(lambda: mode_dynamics(s, u0, 2, t))
    print(f"{m} modes x {t.size} times; reference: depth-2 closed form {ref * 1e3:.2f} ms")
    total = 0.0
    for L in depths:
        dt = best_time(lambda L=L: mode_dynamics(s, u0, L, t))
        total += dt
        print(f"  depth {L}: default {dt * 1e3:8.1f} ms  ({dt / ref:7.1f} x closed form)")
    print(f"  all five depths: {total:.3f} s (target < 1 s)")
    for L in (3, 6):
        dt = best_time(lambda L=L: mode_dynamics(s, u0, L, t, method="DOP853", rtol=1e-8,
                                                 atol=1e-10), repeats=1)
        a = mode_dynamics(s, u0, L, t)
        b = mode_dynamics(s, u0, L, t, method="DOP853", rtol=1e-12, atol=1e-14)
        err = np.max(np.abs(a - b)) / s.max()
        print(f"  depth {L}: solve_ivp DOP853 (rtol 1e-8) {dt * 1e3:8.1f} ms  ({dt / ref:7.1f} x); "
              f"implicit vs DOP853(1e-12): max |diff| / s_max = {err:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
