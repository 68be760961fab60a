"""infinite-width: every activation's wide-network mean NTK/NNGP meets the infinite-width
kernels of the same description, and every plausible wrong theory is rejected."""
import matplotlib.figure
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from ntkdyn.base.samplers import sphere_inputs
from ntkdyn.figures import infinite_width as iw
from ntkdyn.figures.config_types import ConfigValueError
from ntkdyn.figures.experiment import evaluate, point_seed
from ntkdyn.figures.runner import resolve_config
from ntkdyn.numerics.kernels import empirical_ntk
from ntkdyn.numerics.networks import Network
from ntkdyn.theory.infinite_width import infinite_nngp, infinite_ntk

E = iw.EXPERIMENT


@pytest.fixture(scope="module")
def smoke():
    config = E.config("smoke")
    with threadpool_limits(1):  # as the runner computes it
        result = E.compute_serial(config)
    return config, result, evaluate(E, config, result)


def test_smoke_meets_every_target_and_rejects_every_control(smoke):
    config, result, verdict = smoke
    assert verdict.ok, verdict.failures
    assert set(verdict.controls) == {c.name for c in iw.CONTROLS}
    for name, control in verdict.controls.items():
        assert control["fails"], f"control {name} not rejected"
    # every agreement number rejects at least one plausible wrong theory
    agreements = [k for k, n in verdict.declared.items() if n.kind == "agreement"]
    for key in agreements:
        assert any(key in c["fails"] for c in verdict.controls.values()), key
    # the sharpest controls by name: the bias-free theory fails the per-layer shares, a 3%
    # scale fails the error in standard errors, the NNGP fails the NTK
    fails = {name: set(c["fails"]) for name, c in verdict.controls.items()}
    assert "layer_fraction_err_max" in fails["no_bias_theory"]
    assert "ntk_err_in_sem_max" in fails["theory_scaled_1.03"]
    assert "ntk_rel_err_max" in fails["nngp_for_ntk"]
    assert {"ntk_rel_err_max_quadrature", "ntk_rel_err_max_closed_form"} <= set(verdict.numbers)
    assert isinstance(E.plot(result), matplotlib.figure.Figure)


def test_the_grid_holds_every_activation_bias_parameterization_and_depth(smoke):
    config, result, _ = smoke
    shape = (8, 2, 2, len(config["depths"]))
    assert set(config["activations"]) == {"relu", "erf", "tanh", "softplus", "sigmoid", "gelu",
                                          "sin", "linear"}
    assert result["ntk"].shape == result["k_inf"].shape == shape + (config["n"],) * 2
    assert result["traces"].shape == shape + (2 * max(config["depths"]),)
    np.testing.assert_allclose(iw.fractions(result["traces"]).sum(-1), 1.0, rtol=1e-12)
    # the bias groups are empty exactly without biases, on both sides
    b0 = config["b_stds"].index(0.0)
    assert np.all(result["traces"][:, b0, ..., 1::2] == 0)
    assert np.all(result["traces_inf"][:, b0, ..., 1::2] == 0)
    assert np.all(result["traces_inf"][:, 1 - b0, ..., 1] > 0)


def test_the_theory_is_the_same_descriptions_kernel(smoke):
    config, result, _ = smoke
    a, b, p, L = "tanh", 0.5, "standard", max(config["depths"])
    net = Network.mlp(config["d"], config["width"], L, activation=a, b_std=b, parameterization=p)
    assert net == iw.description(config["d"], config["width"], L, a, b, p, config["W_std"])
    index = (config["activations"].index(a), config["b_stds"].index(b),
             config["parameterizations"].index(p), config["depths"].index(L))
    X = result["X"]
    np.testing.assert_allclose(result["k_inf"][index], infinite_ntk(net, X), rtol=1e-9)
    np.testing.assert_allclose(result["nngp_inf"][index], infinite_nngp(net, X), rtol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), np.sqrt(config["d"]), rtol=1e-12)


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("b_std", [0.0, 0.7])
def test_conditional_nngp_is_the_last_layers_exact_average(parameterization, b_std):
    """``s_L^2 K_{W_L} + t_L^2 K_{b_L}`` is ``c_L^2 s_L^2 a a^T + beta_L^2 t_L^2`` (explicit
    activations), and the average of ``f f^T`` over fresh last layers tends to it."""
    net = Network.mlp(5, 40, 3, activation="tanh", W_std=1.3, b_std=b_std,
                      parameterization=parameterization)
    X = sphere_inputs(6, 5, 1)
    params = net.init(2)
    layers = empirical_ntk(net, params, X, per_layer=True)
    a = net.forward(params, X).activations[-1]
    c, s, beta, t = net.layer_scales()[-1]
    exact = c * c * s * s * a @ a.T + beta * beta * t * t
    np.testing.assert_allclose(iw.conditional_nngp(net, layers), exact, rtol=1e-12, atol=1e-14)
    rng = np.random.default_rng(3)
    draws, total = 4000, np.zeros((6, 6))
    for _ in range(draws):
        fresh = list(params)
        fresh[net.depth - 1] = s * rng.standard_normal(params[net.depth - 1].shape)
        if net.has_bias:
            fresh[-1] = t * rng.standard_normal(params[-1].shape)
        f = net.apply(fresh, X)
        total += f @ f.T
    # sampling error of a mean of 4000 products: about sqrt(2 / 4000) = 2% of the scale
    assert np.abs(total / draws - exact).max() <= 0.08 * np.abs(exact).max()


def test_group_traces_follow_the_parameter_order():
    K = {"W_1": np.eye(2), "b_1": 2 * np.eye(2), "W_2": 3 * np.eye(2)}
    np.testing.assert_array_equal(iw.group_traces(K, 2), [2.0, 4.0, 6.0, 0.0])


def test_controls_do_not_modify_the_result(smoke):
    config, result, _ = smoke
    before = {k: np.array(v) for k, v in result.items()}
    for control in iw.CONTROLS:
        wrong = control.apply(result, config)
        assert any(not np.array_equal(wrong[k], result[k]) for k in iw.THEORY_KEYS)
    for k, v in before.items():
        np.testing.assert_array_equal(result[k], v)


def test_controls_compute_the_theory_a_smaller_grid_lacks(smoke):
    """With only biased networks and no look-alike in the grid, the wrong theories are
    computed, not looked up, and agree with the lookup of the full grid."""
    config, result, _ = smoke
    small = dict(config, activations=["tanh"], b_stds=[0.5], parameterizations=["ntk"],
                 depths=[2])
    index = (config["activations"].index("tanh"), config["b_stds"].index(0.5), 0,
             config["depths"].index(2))
    sub = {k: np.array(result[k])[index][None, None, None, None] for k in
           ("ntk", "nngp", "k_inf", "nngp_inf", "ntk_sem", "nngp_sem")}
    sub["traces"] = result["traces"][index][:4][None, None, None, None]
    sub["traces_inf"] = result["traces_inf"][index][:4][None, None, None, None]
    sub.update(X=result["X"], activations=np.array(["tanh"]))
    for name, full in (("no_bias_theory", iw._no_bias), ("neighbour_activation", iw._neighbour)):
        computed = full(sub, small)
        looked_up = full(result, config)
        np.testing.assert_allclose(computed["k_inf"][0, 0, 0, 0], looked_up["k_inf"][index],
                                   rtol=1e-9, err_msg=name)


def test_runs_share_inputs_and_the_seed_fixes_the_result():
    config = dict(E.config("smoke"), activations=["erf", "sin"], b_stds=[0.0],
                  parameterizations=["ntk"], depths=[2], n=8, width=32, seeds=3)
    points = E.runs(config)
    runs = [E.run(p, point_seed(config, p)) for p in points]
    assert np.array_equal(runs[0]["X"], runs[1]["X"])
    again = E.compute_serial(config)
    np.testing.assert_array_equal(again["ntk"], E.compute_serial(config)["ntk"])


def test_tolerances_follow_the_sampling_error():
    config = E.config("smoke")
    bigger = dict(config, seeds=4 * config["seeds"])
    for kind in ("ntk", "nngp", "fraction"):
        assert iw.tolerance(bigger, kind) == pytest.approx(iw.tolerance(config, kind) / 2)
    deeper = dict(config, depths=[2, 6])
    assert iw.tolerance(deeper, "ntk") == pytest.approx(2 * iw.tolerance(config, "ntk"))
    assert iw.tolerance(bigger, "sem") == iw.TOLERANCE["sem"]


@pytest.mark.parametrize("key, value", [("b_stds", [0.5, 0.5]), ("b_stds", [-0.1]),
                                        ("parameterizations", ["mup"]), ("W_std", 0.0),
                                        ("activations", ["swish"])])
def test_bad_configuration_values_are_refused(key, value):
    with pytest.raises(ConfigValueError, match=key):
        resolve_config(E, "smoke", {key: value})


def test_one_seed_is_refused_before_any_work():
    with pytest.raises(ConfigValueError, match="seeds"):
        resolve_config(E, "smoke", {"seeds": 1})
