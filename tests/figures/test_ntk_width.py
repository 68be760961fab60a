"""ntk-width: the error falls like width^(-1/2), and the inputs are shared by every run."""
import matplotlib.figure
import numpy as np

from ntkdyn.figures import ntk_width
from ntkdyn.figures.experiment import evaluate, point_seed
from ntkdyn.theory.relu_ntk import NTK_FLUCTUATION_EXPONENT

E = ntk_width.EXPERIMENT


def test_smoke_slope_is_the_theory_exponent_and_the_plot_draws():
    config = E.config("smoke")
    result = E.compute_serial(config)
    verdict = evaluate(E, config, result)
    target = E.declared(config)["slope_fit_minus_theory"].target
    assert target.holds(verdict.numbers["slope_fit_minus_theory"])
    assert float(result["predicted_exponent"]) == NTK_FLUCTUATION_EXPONENT
    assert isinstance(E.plot(result), matplotlib.figure.Figure)


def test_same_config_same_result_and_shared_inputs():
    config = dict(E.config("smoke"), log2_widths=[5, 6], seeds=2, n=6)
    a, b = E.compute_serial(config), E.compute_serial(config)
    assert np.array_equal(a["kernels"], b["kernels"])
    points = E.runs(config)
    runs = [E.run(p, point_seed(config, p)) for p in points[:2]]
    assert np.array_equal(runs[0]["X"], runs[1]["X"])          # one data set for the sweep
    assert not np.array_equal(runs[0]["K"], runs[1]["K"])      # independent weights per run


def _relu_diagonal(X, depth):
    """Exact ReLU ``Theta_L(x, x) = L q 2^(1 - L)``, ``q = |x|^2 / d`` (NTK parameterization,
    ``W_std = 1``, no bias): ``Sigma_l(x, x) = q 2^(1 - l)``, ``E[step^2] = 1/2``."""
    q = np.einsum("ij,ij->i", X, X) / X.shape[1]
    return depth * q * 2.0 ** (1 - depth)


def test_default_description_is_the_relu_mlp_and_its_kernel_relu_ntks():
    """One description gives both sides; by default it is ``MLP`` bitwise and its kernel is
    :func:`ntkdyn.theory.relu_ntk.infinite_ntk`: off the diagonal to 1e-12; on the diagonal
    relu_ntk loses ~1e-8 to ``arccos`` at a correlation of 1 - ulp (``arccos(1 - e) ~
    sqrt(2 e)``), so both are checked against the exact diagonal: the description's to 1e-12,
    relu_ntk's to 1e-7."""
    from ntkdyn.numerics.networks import MLP
    from ntkdyn.theory import relu_ntk

    config = E.config("quick")
    points = E.runs(config)
    assert "W_std" not in points[0] and "b_std" not in points[0]  # seeds as before
    # the theory side of combine needs the shared inputs only: one cheap run stands for all
    result = E.combine(config, [E.run(p, point_seed(config, p)) for p in points[:1]]
                       * len(points))
    for point in [p for p in points if p["width"] <= 128 and p["replicate"] == 0]:
        net = ntk_width.network(point, point["depth"], point["width"])
        mlp = MLP([point["d"]] + [point["width"]] * (point["depth"] - 1) + [1], "relu")
        assert all(np.array_equal(a, b) for a, b in zip(net.init(5), mlp.init(5)))
    X = result["X"]
    off = ~np.eye(X.shape[0], dtype=bool)
    for k_inf, L in zip(result["k_inf"], result["depths"]):
        old = relu_ntk.infinite_ntk(X, depth=int(L))
        assert np.abs(k_inf - old)[off].max() <= 1e-12 * np.abs(old).max()
        exact = _relu_diagonal(X, int(L))
        new_err, old_err = (np.abs(np.diag(K) - exact).max() for K in (k_inf, old))
        assert new_err <= 1e-12 * exact.max() and old_err <= 1e-7 * exact.max()


def test_biased_descriptions_reach_both_sides():
    config = dict(E.config("smoke"), log2_widths=[5, 6], seeds=2, n=6, b_std=0.4, W_std=1.2)
    point = E.runs(config)[0]
    assert point["b_std"] == 0.4 and point["W_std"] == 1.2
    net = ntk_width.network(point, point["depth"], point["width"])
    assert net.has_bias and net.W_std == 1.2
    result = E.compute_serial(config)
    from ntkdyn.theory.infinite_width import infinite_ntk
    expected = infinite_ntk(ntk_width.network(config, config["depths"][0], 32), result["X"])
    np.testing.assert_allclose(result["k_inf"][0], expected, rtol=1e-13)
