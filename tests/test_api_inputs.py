"""Bad input at the public API: every entry point refuses non-finite parameters, non-float
dtypes, complex inputs and wrong types with a ``ValueError`` or ``TypeError`` whose message
names the argument, and accepts nested lists where it accepts arrays (same result).

The sweep covers the curated names of ``ntkdyn``, ``ntkdyn.numerics.__all__`` and the
``__all__`` of the theory modules that have one. Each function gets small valid arguments
(:data:`CASES`); every argument is then perturbed according to its kind:

=========================  ==================================================================
argument                   perturbations (expected: refused, naming the argument)
=========================  ==================================================================
float array                ``nan`` (one entry NaN), ``complex`` (``+ 1j``), ``str``
list of float arrays       ``nan``, ``int_dtype`` (integer arrays), ``complex``, ``str``
float                      ``nan``, ``complex``, ``str``
int                        ``nan``, ``fraction`` (2.5), ``str``
list of int                ``nan`` entry, ``fraction`` entry, ``str``
network                    ``str`` (``"net"``), ``class`` (``MLP`` instead of ``MLP([...])``)
dtype                      ``int_dtype`` (``np.int64``), ``complex_dtype``
a choice (str)             ``unknown`` value
=========================  ==================================================================

and ``list`` (an array or list of arrays as nested Python lists) is expected to give the same
result as the array. The cases that still fail are marked ``xfail`` (not strict) with the file
to fix in the reason (:data:`GAPS`), so the sweep passes today and says what is left.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import ntkdyn
from ntkdyn.base.validation import as_array, float_arrays
from ntkdyn.numerics.checks import check_network
from ntkdyn.numerics.networks import MLP

ROOT = Path(ntkdyn.__file__).resolve().parent.parent


def _rng():
    return np.random.default_rng(0)


def _X(n=5, d=3):
    return _rng().standard_normal((n, d))


def _Y(n=5, k=1):
    return np.random.default_rng(1).standard_normal((n, k))


def _psd(n=5):
    A = np.random.default_rng(2).standard_normal((n, n))
    return A @ A.T + n * np.eye(n)


def _heads(k=2, n=5):
    return np.stack([_psd(n) + i for i in range(k)])


NET = MLP([3, 8, 1])
NET2 = MLP([3, 8, 2])
DEEP = MLP([3, 6, 6, 1])
TANH = MLP([3, 8, 1], activation="tanh")


def _params(net=NET, seed=0):
    return net.init(seed)


@dataclass
class Case:
    """One public callable and small valid keyword arguments for it."""
    target: str                       # "module:name" or "module:Class.method"
    make: Callable[[], dict]          # fresh valid keyword arguments
    skip: tuple = ()                  # arguments not perturbed
    choices: tuple = ()               # string arguments that name a choice
    call: Callable | None = None      # how to call, when not target(**kwargs)
    compare: bool = True              # compare the list variant's result with the array's

    @property
    def function(self):
        module, name = self.target.split(":")
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj

    def run(self, kwargs):
        return (self.call or self.function)(**kwargs)

    @property
    def file(self) -> str:
        try:
            path = Path(inspect.getsourcefile(inspect.unwrap(self.function))).resolve()
            return str(path.relative_to(ROOT))
        except (TypeError, ValueError):
            return self.target


N, T = "ntkdyn.numerics", "ntkdyn.theory"
CASES = [
    # ------------------------------------------------------------ ntkdyn's curated names
    Case("ntkdyn:alignment", lambda: dict(K=_psd(), Y=_Y())),
    Case("ntkdyn:specialization", lambda: dict(K_heads=_heads(), Y=_Y(k=2))),
    Case("ntkdyn:kernel_specialization_matrix", lambda: dict(K_heads=_heads(), Y=_Y(k=2))),
    Case("ntkdyn:MLP", lambda: dict(widths=[3, 8, 1], init_scale=1.0), choices=()),
    Case("ntkdyn:MLP.init", lambda: dict(seed=0, dtype=np.float64), skip=("seed",),
         call=lambda **kw: NET.init(**kw)),
    Case("ntkdyn:empirical_ntk", lambda: dict(net=NET, params=_params(), X=_X(), X2=_X(4)),
         choices=("heads",)),
    Case("ntkdyn:gradient_descent",
         lambda: dict(net=NET, params=_params(), X=_X(), Y=_Y(), lr=0.1, steps=3),
         compare=False),
    Case("ntkdyn:infinite_ntk", lambda: dict(net=NET, X=_X(), X2=_X(4)), choices=("method",)),
    Case("ntkdyn:infinite_nngp", lambda: dict(net=DEEP, X=_X(), X2=_X(4), order=12),
         choices=("method",)),
    # ----------------------------------------------------------------- ntkdyn.numerics
    Case(f"{N}:agop", lambda: dict(net=NET, params=_params(), X=_X(), layer=0)),
    Case(f"{N}:nfa_correlation", lambda: dict(net=DEEP, params=_params(DEEP), X=_X(), layer=1,
                                              power=1.0), choices=("kind",)),
    Case(f"{N}:nfm", lambda: dict(W=_params()[0])),
    Case(f"{N}:alignment", lambda: dict(K=_psd(), Y=_Y())),
    Case(f"{N}:eigenvector_target_overlap", lambda: dict(K=_psd(), Y=_Y())),
    Case(f"{N}:relative_change", lambda: dict(K_t=_psd() + 1.0, K_0=_psd())),
    Case(f"{N}:specialization", lambda: dict(K_heads=_heads(), Y=_Y(k=2))),
    Case(f"{N}:specialization_index", lambda: dict(S=np.array([[0.9, 0.2], [0.1, 0.8]]))),
    Case(f"{N}:apply_updates", lambda: dict(params=_params(), updates=_params(seed=1))),
    Case(f"{N}:sgd", lambda: dict(lr=0.1, momentum=0.5), compare=False),
    Case(f"{N}:adam", lambda: dict(lr=0.1, b1=0.9, b2=0.999, eps=1e-8), compare=False),
    Case(f"{N}:empirical_ntk", lambda: dict(net=NET2, params=_params(NET2), X=_X()),
         choices=("heads",)),
    Case(f"{N}:gradient_descent",
         lambda: dict(net=NET, params=_params(), X=_X(), Y=_Y(), lr=0.1, steps=3),
         compare=False),
    Case(f"{N}:iterative_linearised_training",
         lambda: dict(net=NET, params=_params(), X=_X(), Y=_Y(), lr=0.1, steps=2),
         choices=("loss",), compare=False),
    Case(f"{N}:hvp", lambda: dict(net=TANH, params=_params(TANH), X=_X(), V=_params(TANH, 1),
                                  Y=_Y())),
    Case(f"{N}:loss_hessian_dense", lambda: dict(net=TANH, params=_params(TANH), X=_X(),
                                                 Y=_Y())),
    Case(f"{N}:loss_hessian_top_eigs", lambda: dict(net=TANH, params=_params(TANH), X=_X(),
                                                    Y=_Y(), k=1, tol=1e-10),
         choices=("which",), skip=("seed",)),
    Case(f"{N}:output_gradient_norm", lambda: dict(net=TANH, params=_params(TANH), x=_X()[0])),
    Case(f"{N}:output_hessian_dense", lambda: dict(net=TANH, params=_params(TANH), x=_X()[0])),
    Case(f"{N}:output_hessian_norm",  # lanczos: no Numba compilation in this test
         lambda: dict(net=TANH, params=_params(TANH), x=_X()[0], method="lanczos"),
         choices=("method",)),
    Case(f"{N}:output_hessian_top_eigs",
         lambda: dict(net=TANH, params=_params(TANH), x=_X()[0], k=1), choices=("which",)),
    Case(f"{N}:two_layer_hessian",
         lambda: dict(net=TANH, params=_params(TANH), x=_X()[0], backend="numpy"),
         choices=("backend",), compare=False),
    Case(f"{N}:two_layer_hessian_norm",
         lambda: dict(net=TANH, params=_params(TANH), x=_X()[0], backend="numpy"),
         choices=("backend",)),
    Case(f"{N}:two_layer_unit_blocks", lambda: dict(net=TANH, params=_params(TANH), x=_X()[0])),
    Case(f"{N}:laplace_kernel", lambda: dict(X=_X(), Z=_X(4), M=np.eye(3), bandwidth=2.0)),
    Case(f"{N}:estimate_bytes", lambda: dict(widths=[3, 8, 1], n=2, ncv=5),
         choices=("method",)),
    Case(f"{N}:require_memory", lambda: dict(nbytes=1000.0, what="a test"), skip=("what",)),
    Case(f"{N}:linearity_network", lambda: dict(variant="linear-tanh", d=3, m=8),
         choices=("variant",), compare=False),
    Case(f"{N}:single_index_problem", lambda: dict(d=3, n_train=5, n_test=2, width=8),
         choices=("activation",), compare=False),
    Case(f"{N}:decoupled_init",
         lambda: dict(depth=2, U=np.eye(1, 2), V=np.eye(3, 2), hidden=4, a0=0.1, seed=0),
         skip=("seed",)),
    Case(f"{N}:mode_strengths", lambda: dict(
        params=ntkdyn.numerics.decoupled_init(2, np.eye(1, 2), np.eye(3, 2), 4, 0.1, 0),
        U=np.eye(1, 2), V=np.eye(3, 2))),
    Case(f"{N}:fit_time_shifts", lambda: dict(
        s=np.array([1.0, 2.0]), depth=2, t=np.linspace(0.0, 3.0, 7),
        u=np.stack([1.0 / (1.0 + np.exp(-np.linspace(-3, 3, 7))) * s
                    for s in (1.0, 2.0)], axis=1), lam=1.0)),
    Case(f"{N}:RecursiveFeatureMachine",
         lambda: dict(bandwidth=2.0, ridge=1e-3, iterations=2, power=1.0), compare=False),
    Case(f"{N}:SpeedLimited", lambda: dict(net=DEEP, layer=1, speed=0.01), compare=False),
    Case(f"{N}:get_activation", lambda: dict(activation="relu"), choices=("activation",),
         compare=False),
    # ------------------------------------------------------------------ ntkdyn.theory
    Case(f"{T}.arccos:angle", lambda: dict(cos=np.array([0.1, 0.5]))),
    Case(f"{T}.arccos:arccos_degree0", lambda: dict(theta=np.array([0.1, 1.0]), scale=2.0)),
    Case(f"{T}.arccos:arccos_degree1", lambda: dict(theta=np.array([0.1, 1.0]), norms=2.0)),
    Case(f"{T}.deep_linear_kernels:ntk_from_weights",
         lambda: dict(weights=_params(MLP([3, 4, 1])), X=_X()), choices=("heads",)),
    Case(f"{T}.deep_linear_kernels:linear_head_kernels",
         lambda: dict(params=_params(MLP([3, 4, 2])), X=_X())),
    Case(f"{T}.deep_linear_kernels:initial_kernel_scale",
         lambda: dict(widths=[3, 4, 1], init_scale=0.5), choices=("parameterization",)),
    Case(f"{T}.deep_linear_kernels:alignment_whitened",
         lambda: dict(depth=2, dim=3, u=np.array([0.1, 0.5]), bulk=0.1)),
    Case(f"{T}.deep_linear_kernels:final_alignment", lambda: dict(depth=2, dim=3)),
    Case(f"{T}.deep_linear_kernels:alignment_general",
         lambda: dict(G=_psd(), y=_Y()[:, 0], beta_norm=1.5, depth=2)),
    Case(f"{T}.deep_linear_modes:initial_state",
         lambda: dict(u0=np.array([0.1, 0.2]), depth=2)),
    Case(f"{T}.deep_linear_modes:closed_form", lambda: dict(
        s=np.array([1.0, 2.0]), u0=np.array([0.1, 0.2]), depth=2, t=np.linspace(0, 1, 4),
        lam=1.0)),
    Case(f"{T}.deep_linear_modes:mode_dynamics", lambda: dict(
        s=np.array([1.0, 2.0]), u0=np.array([0.1, 0.2]), depth=3, t=np.linspace(0, 1, 4)),
        choices=("method",)),
    Case(f"{T}.deep_linear_modes:balanced_strengths",
         lambda: dict(u=np.array([0.1, 0.2]), depth=2)),
    Case(f"{T}.deep_linear_modes:escape_time",
         lambda: dict(s=np.array([1.0, 2.0]), u0=np.array([0.01, 0.02]), depth=3)),
    Case(f"{T}.deep_linear_modes:ntk_time_factor", lambda: dict(widths=[3, 4, 1]),
         choices=("parameterization",)),
    Case(f"{T}.kernel_evolution:kernel_rate",
         lambda: dict(K=_psd(), residual=_Y()[:, 0], eta=0.5), choices=("variant",)),
    Case(f"{T}.kernel_evolution:integrate",
         lambda: dict(K0=_psd(3) / 10, y=_Y(3)[:, 0], t=np.linspace(0, 1, 3), eta=0.5),
         choices=("variant", "method"), compare=False),
    Case(f"{T}.kernel_evolution:closed_form",
         lambda: dict(t=np.linspace(0, 1, 3), lam0=1.0, u0=0.5, eta=0.5), choices=("variant",)),
    Case(f"{T}.kernel_evolution:final_eigenvalue", lambda: dict(lam0=1.0, u0=0.5, eta=0.5),
         choices=("variant",)),
    Case(f"{T}.kernel_evolution:static_loss", lambda: dict(
        eigenvalues=np.array([1.0, 0.5]), coefficients=np.array([0.3, 0.2]),
        t=np.linspace(0, 1, 3))),
    Case(f"{T}.kernel_evolution:static_loss_exponent", lambda: dict(a=2.0, b=1.5)),
    Case(f"{T}.kernel_evolution:power_law_problem", lambda: dict(P=4, b=1.5, a=2.0),
         skip=("seed",)),
    Case(f"{T}.kernel_evolution:final_kernel",
         lambda: dict(K0=_psd(3) / 10, y=_Y(3)[:, 0], eta=0.5)),
    Case(f"{T}.kernel_regime:gradient_flow_filter",
         lambda: dict(eigenvalues=np.array([1.0, 0.5]), t=0.3)),
    Case(f"{T}.kernel_regime:kernel_regression", lambda: dict(
        k_train_train=_psd(), y_train=_Y()[:, 0], k_test_train=_psd()[:2], ridge=0.1)),
    Case(f"{T}.kernel_regime:spectral_filter",
         lambda: dict(eigenvalues=np.array([1.0, 0.5]), lr=0.1, steps=3)),
    Case(f"{T}.kernel_regime:FrozenKernelRegime",
         lambda: dict(k_train_train=_psd(), y_train=_Y()[:, 0]), compare=False),
    Case(f"{T}.linearity:relu_hessian_norm", lambda: dict(m=16, d=3, x_norm=1.0)),
    Case(f"{T}.linearity:taylor_remainder_bound", lambda: dict(R=0.5, hessian_sup=2.0)),
    Case(f"{T}.linearity:kernel_matrix_change_bound",
         lambda: dict(eps=0.1, R=0.5, grad_norms=np.array([1.0, 2.0]))),
    Case(f"{T}.linearity:nonlinear_output_kernel",
         lambda: dict(K_f=_psd(), dpsi_fx=np.linspace(0.5, 1.0, 5))),
    Case(f"{T}.linearity:linearized_residuals",
         lambda: dict(K0=_psd() / 20, r0=_Y()[:, 0], lr=0.1, steps=3)),
    Case(f"{T}.linearity:steps_to_loss_fraction",
         lambda: dict(K0=_psd() / 20, r0=_Y()[:, 0], lr=0.5, fraction=0.5)),
    Case(f"{T}.linearity:initial_weight_norm", lambda: dict(widths=[3, 8, 1], init_scale=1.0)),
    Case(f"{T}.linearity:norm_221_at", lambda: dict(
        T=np.random.default_rng(3).standard_normal((2, 3, 2)), a=np.array([0.6, 0.8]),
        b=np.array([1.0, 0.0, 0.0]))),
    Case(f"{T}.parameterization:layer_multipliers", lambda: dict(fan_ins=[3, 8]),
         choices=("parameterization",)),
]


# ------------------------------------------------------------------------ perturbations

def _is_float_array(v) -> bool:
    return isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating)


def _is_array_list(v) -> bool:
    return isinstance(v, list) and bool(v) and all(_is_float_array(a) for a in v)


def _is_int_list(v) -> bool:
    return isinstance(v, list) and bool(v) and all(
        isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in v)


def _with_nan(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.flat[0] = np.nan
    return a


def perturbations(case: Case, name: str, value) -> dict[str, Callable]:
    """``{kind: make(value) -> bad value}`` for one argument (see the module docstring)."""
    if name in case.skip:
        return {}
    if isinstance(value, MLP):
        return {"str": lambda v: "net", "class": lambda v: MLP}
    if isinstance(value, type) and issubclass(value, np.generic):
        return {"int_dtype": lambda v: np.int64, "complex_dtype": lambda v: np.complex128}
    if _is_array_list(value):
        return {"nan": lambda v: [_with_nan(v[0]), *v[1:]],
                "int_dtype": lambda v: [np.round(a).astype(np.int64) for a in v],
                "complex": lambda v: [a + 1j for a in v],
                "str": lambda v: "params",
                "list": lambda v: [a.tolist() for a in v]}
    if _is_float_array(value):
        return {"nan": _with_nan, "complex": lambda v: v + 1j, "str": lambda v: "X",
                "list": lambda v: v.tolist()}
    if _is_int_list(value):
        return {"nan": lambda v: [float("nan"), *v[1:]], "fraction": lambda v: [2.5, *v[1:]],
                "str": lambda v: "3, 4"}
    if isinstance(value, bool) or value is None or callable(value):
        return {}
    if isinstance(value, numbers.Integral):
        return {"nan": lambda v: float("nan"), "fraction": lambda v: 2.5, "str": lambda v: "3"}
    if isinstance(value, numbers.Real):
        return {"nan": lambda v: float("nan"), "complex": lambda v: complex(v, 1.0),
                "str": lambda v: "0.5"}
    if isinstance(value, str) and name in case.choices:
        return {"unknown": lambda v: "no-such-choice"}
    return {}


def _ids():
    out = []
    for case in CASES:
        for name, value in case.make().items():
            for kind in perturbations(case, name, value):
                out.append((case, name, kind))
        for name in case.choices:
            if name not in case.make():
                out.append((case, name, "unknown"))
    return out


#: Cases that still fail: ``"target-argument-kind"``. Left for the owners of the files named
#: in each reason; the test is an xfail (not strict), so a fix turns it into an XPASS.
def _gaps(target: str, *cases: str) -> set[str]:
    return {f"{target}-{case}" for case in cases}


# measured with this file on the tree of 2026-12-01 (103 of 949 cases; 94 fixed since). Left:
# numerics/memory.py, owned by another change (its checks are not part of this one).
GAPS: set[str] = set()


def _param(case, name, kind):
    ident = f"{case.target}-{name}-{kind}"
    if ident in GAPS:
        what = "accepted" if kind == "list" else "not refused naming the argument"
        return pytest.param(case, name, kind, id=ident, marks=pytest.mark.xfail(
            reason=f"{case.file}: {name} ({kind}) {what}", strict=False))
    return pytest.param(case, name, kind, id=ident)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return _same(dataclasses.asdict(a), dataclasses.asdict(b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (np.isnan(a) and np.isnan(b))
    return a == b


@pytest.mark.parametrize("case", CASES, ids=[c.target for c in CASES])
def test_the_valid_arguments_work(case):
    case.run(case.make())


@pytest.mark.parametrize("case,name,kind", [_param(*p) for p in _ids()])
def test_bad_input_is_refused_naming_the_argument(case, name, kind):
    kwargs = case.make()
    if kind == "list":
        expected = case.run(case.make())
        kwargs[name] = perturbations(case, name, kwargs[name])["list"](kwargs[name])
        result = case.run(kwargs)
        if case.compare:
            assert _same(result, expected), f"{name} as a list gave another result"
        return
    kwargs[name] = ("no-such-choice" if kind == "unknown"
                    else perturbations(case, name, kwargs[name])[kind](kwargs[name]))
    try:
        case.run(kwargs)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        assert name in message, f"the message does not name {name!r}: {message}"
        assert "\n" not in message.strip(), f"not one line: {message!r}"
    except Exception as exc:  # noqa: BLE001 - any other kind is the failure under test
        raise AssertionError(f"{name} ({kind}) raised {type(exc).__name__}: {exc}") from None
    else:
        raise AssertionError(f"{name} ({kind}) was accepted silently")


# ----------------------------------------------------------- the helpers this file adds

def test_as_array_refuses_complex_input_instead_of_dropping_the_imaginary_part():
    with pytest.raises(TypeError, match="X must be real, got a complex array"):
        as_array(np.array([[1.0 + 2.0j]]), "X")
    with pytest.raises(TypeError, match="X must be real"):
        as_array([1.0, 2.0 + 0.0j], "X")  # even with zero imaginary parts: the type is wrong
    with pytest.raises(TypeError, match="X must be array-like"):
        as_array([[1.0, 2.0], [3.0]], "X")
    with pytest.raises(TypeError, match="Y must be a numeric array"):
        as_array(["a", "b"], "Y")
    assert as_array([[1, 2]], "X").dtype == np.float64


def test_float_arrays_refuses_integer_complex_and_non_finite_entries_naming_them():
    W32 = np.ones((2, 2), dtype=np.float32)
    out = float_arrays([W32, [[1.0, 2.0]]], "params", keep_float32=True)
    assert out[0] is W32 and out[1].dtype == np.float64
    with pytest.raises(TypeError, match=r"^params must be a list of real floating arrays, got str"):
        float_arrays("params", "params")
    with pytest.raises(TypeError, match=r"^params\[1\] must be a real floating array, got dtype "
                                        r"int64$"):
        float_arrays([W32, np.ones(2, dtype=np.int64)], "params")
    with pytest.raises(TypeError, match=r"^V\[0\] must be real, got a complex array"):
        float_arrays([W32 + 1j], "V")
    with pytest.raises(ValueError, match=r"^updates\[0\] must be finite"):
        float_arrays([np.array([np.nan])], "updates")
    with pytest.raises(ValueError, match=r"^weights\[0\] must be 2-D"):
        float_arrays([np.ones(3)], "weights", ndim=2)


def test_check_network_names_the_argument():
    assert check_network(NET) is NET
    with pytest.raises(TypeError, match=r"^net must be a network \(ntkdyn.numerics.networks.MLP "
                                        r"or Network\), got str 'net'$"):
        check_network("net")
    with pytest.raises(TypeError, match="model must be a network instance such as MLP"):
        check_network(MLP, "model")
    with pytest.raises(TypeError, match="got dict"):
        check_network({"widths": [3, 8, 1]})
    # duck typing, for functions that train any model with the methods they call
    assert check_network(NET, methods=("loss_and_gradients",)) is NET
    with pytest.raises(TypeError, match=r"^net must be a model with loss_and_gradients\(\)"):
        check_network("net", methods=("loss_and_gradients",))
    with pytest.raises(TypeError, match="net must be a network instance"):
        check_network(MLP, methods=("loss_and_gradients",))


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(name=123), TypeError, "name must be an experiment's name, a str"),
    (dict(name="no-such-experiment"), ValueError, "unknown experiment"),
    (dict(name="ntk-width", config="smoke", workers=0), ValueError, "workers"),
    (dict(name="ntk-width", config="smoke", workers=2.5), TypeError, "workers"),
    (dict(name="ntk-width", config="smoke", scheduler=""), ValueError, "scheduler"),
    (dict(name="ntk-width", config="smoke", scheduler="tcp://nowhere"), ValueError,
     "scheduler"),
])
def test_ntkdyn_run_refuses_bad_arguments_naming_them(kwargs, error, message):
    with pytest.raises(error, match=message):
        ntkdyn.run(**kwargs)


def test_ntkdyn_run_refuses_an_output_folder_it_cannot_write(tmp_path):
    regular = tmp_path / "a-file"
    regular.write_text("")
    with pytest.raises(OSError, match="out .*is not a folder"):
        ntkdyn.run("ntk-width", config="smoke", out=regular)
