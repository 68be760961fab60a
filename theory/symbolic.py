"""Symbolic derivations (sympy) behind the deep-linear and toy-kernel theory.

Every equation used by :mod:`ntkdyn.theory.deep_linear_modes`,
:mod:`ntkdyn.theory.deep_linear_kernels` and :mod:`ntkdyn.theory.kernel_evolution` is
re-derived here from its starting point and checked symbolically, so that the numerical
code rests on algebra a reader can re-run (``ntkdyn derive`` prints it all).

Contents (the toy model of kernel evolution and the deep linear networks of Shan & Bordelon
2021, sec. 5, arXiv:2105.14301; Saxe, McClelland & Ganguli 2014, arXiv:1312.6120):

1. One singular mode of a depth-``L`` linear network in the standard parameterization.
   Per-layer strengths ``a_1..a_L``, end-to-end strength ``u = prod_l a_l``, mode loss
   ``1/2 E(y - u x)^2`` with ``E[x^2] = lam`` and ``E[x y] = s``; gradient flow
   ``da_i/dt = -d loss/d a_i = (u / a_i) (s - lam u)``  (:func:`mode_flow`).
2. Conserved quantities ``a_i^2 - a_j^2`` (:func:`conservation_laws`).
3. Reduction under balance ``a_i = a``: ``du/dt = L u^(2 - 2/L) (s - lam u)``
   (:func:`balanced_reduction`), turned into numpy by :func:`lambdify_balanced_rhs`.
4. The NTK parameterization (``h_1 = W_1 x / sqrt(d)``, ``h_{l+1} = W_{l+1} h_l / sqrt(n_l)``):
   a linear net is then ``f = C W_L ... W_1 x`` with ``C = prod_l n_{l-1}^(-1/2)``
   (``n_0 = d``). In the effective weights ``V_l = W_l / sqrt(n_{l-1})`` gradient flow on
   ``W`` is gradient flow on ``V`` with a per-layer learning rate ``1 / n_{l-1}`` (the layer's
   fan-in; *not* a product over layers). Under balance of the raw weights the end-to-end
   strength obeys the standard-parameterization ODE with time rescaled by the geometric mean
   ``(prod_l 1/n_{l-1})^(1/L) = C^(2/L)`` (:func:`ntk_time_rescaling`).
5. Closed forms checked against their ODEs: depth 1 and depth 2 (Saxe's logistic solution),
   the toy model's single-eigenvector solutions for the multiplicative (T1) and additive (T2)
   kernel rules of :mod:`ntkdyn.theory.kernel_evolution` and their conservation laws, the
   rank-one NTK spike of :mod:`ntkdyn.theory.deep_linear_kernels` and the final whitened
   alignment ``L / sqrt(L^2 + D - 1)``.

Each ``verify_*`` function returns ``True`` only when sympy reduces the residual to zero.
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp

from ..base.validation import one_of, positive_int

__all__ = [
    "mode_flow",
    "conservation_laws",
    "balanced_reduction",
    "lambdify_balanced_rhs",
    "ntk_time_rescaling",
    "depth1_closed_form",
    "depth2_closed_form",
    "toy_closed_form",
    "verify_depth1_closed_form",
    "verify_depth2_closed_form",
    "verify_toy_closed_form",
    "verify_toy_conservation",
    "rank_one_ntk_spike",
    "whitened_final_alignment",
    "verify_all",
    "derivations",
]

# Shared symbols: strengths are positive (the balanced reduction takes u^(1/L)).
t = sp.Symbol("t", nonnegative=True)
s = sp.Symbol("s", positive=True)
lam = sp.Symbol("lambda", positive=True)
u0 = sp.Symbol("u_0", positive=True)
eta = sp.Symbol("eta", positive=True)


def _is_zero(expr) -> bool:
    """True when sympy can reduce ``expr`` to exactly zero."""
    expr = sp.simplify(sp.expand(expr))
    if expr == 0:
        return True
    return sp.simplify(sp.powsimp(sp.expand_power_base(expr, force=True), force=True)) == 0


def _strengths(depth: int):
    return sp.symbols(f"a_1:{depth + 1}", positive=True)


@lru_cache(maxsize=None)
def mode_flow(depth: int):
    """Gradient flow of one singular mode of a depth-``L`` linear network.

    Mode loss ``l(a) = 1/2 E(y - u x)^2 = 1/2 (E y^2 - 2 s u + lam u^2)``, ``u = prod_l a_l``;
    ``da_i/dt = -dl/da_i = (prod_{k != i} a_k) (s - lam u)`` (Saxe et al. 2014, eq. 6).

    Parameters
    ----------
    depth : int
        ``L``, the number of layers.

    Returns
    -------
    a : tuple of sympy.Symbol
        The strengths ``a_1, ..., a_L``.
    u : sympy.Expr
        ``prod_l a_l``.
    loss : sympy.Expr
        The mode loss.
    rhs : list of sympy.Expr
        ``da_i/dt``, one per layer.
    """
    depth = positive_int(depth, "depth")
    a = _strengths(depth)
    u = sp.Mul(*a)
    Eyy = sp.Symbol("E_yy", positive=True)
    loss = sp.Rational(1, 2) * (Eyy - 2 * s * u + lam * u ** 2)
    rhs = [sp.factor(-sp.diff(loss, ai)) for ai in a]
    return a, u, loss, rhs


@lru_cache(maxsize=None)
def conservation_laws(depth: int):
    """``d/dt (a_i^2 - a_j^2) = 0`` along :func:`mode_flow`.

    ``2 a_i da_i/dt = 2 u (s - lam u)`` is the same for every layer, so all pairwise
    differences of squared strengths are conserved (balancedness is preserved).

    Parameters
    ----------
    depth : int
        ``L``, the number of layers.

    Returns
    -------
    list of tuple
        ``(i, j, rate)`` for every pair of layers ``i < j`` (1-based), ``rate`` the simplified
        ``d/dt (a_i^2 - a_j^2)`` (zero).
    """
    a, _, _, rhs = mode_flow(depth)
    out = []
    for i in range(depth):
        for j in range(i + 1, depth):
            rate = sp.simplify(2 * a[i] * rhs[i] - 2 * a[j] * rhs[j])
            out.append((i + 1, j + 1, rate))
    return out


@lru_cache(maxsize=None)
def balanced_reduction(depth: int):
    """Reduce the mode flow under balance ``a_i = a`` to one ODE for ``u = a^L``.

    ``du/dt = sum_i (u / a_i) da_i/dt = L a^(2L-2) (s - lam u) = L u^(2-2/L) (s - lam u)``.

    Parameters
    ----------
    depth : int
        ``L``, the number of layers.

    Returns
    -------
    u_symbol : sympy.Symbol
        ``u``.
    derived_rhs : sympy.Expr
        ``du/dt`` derived from the mode flow, expressed in ``u`` through ``a = u^(1/L)``.
    expected_rhs : sympy.Expr
        ``L u^(2-2/L) (s - lam u)``.
    verified : bool
        Whether the two are identical.
    """
    a_syms, u_expr, _, rhs = mode_flow(depth)
    a = sp.Symbol("a", positive=True)
    U = sp.Symbol("u", positive=True)
    dudt = sum(sp.diff(u_expr, ai) * ri for ai, ri in zip(a_syms, rhs))
    dudt_bal = sp.simplify(dudt.subs({ai: a for ai in a_syms}))
    derived = sp.simplify(dudt_bal.subs(a, U ** sp.Rational(1, depth)))
    expected = depth * U ** (2 - sp.Rational(2, depth)) * (s - lam * U)
    return U, derived, expected, _is_zero(derived - expected)


def lambdify_balanced_rhs(depth: int):
    """Numpy function ``rhs(u, s, lam)`` of the derived balanced ODE ``du/dt``.

    Built with :func:`sympy.lambdify` from :func:`balanced_reduction`, so scipy integrators
    can run the derived expression itself; arguments broadcast like numpy arrays.

    Parameters
    ----------
    depth : int
        ``L``, the number of layers.

    Returns
    -------
    callable
        ``rhs(u, s, lam)``.
    """
    U, derived, _, _ = balanced_reduction(depth)
    return sp.lambdify((U, s, lam), derived, modules="numpy")


@lru_cache(maxsize=None)
def ntk_time_rescaling(depth: int):
    """Time rescaling that the NTK parameterization brings to a deep linear network.

    With ``h_1 = W_1 x / sqrt(n_0)`` (``n_0 = d``) and ``h_{l+1} = W_{l+1} h_l / sqrt(n_l)``,
    one mode has raw strengths ``w_l`` and end-to-end strength ``u = C prod_l w_l`` with
    ``C = prod_l n_{l-1}^(-1/2)``. Two statements are derived:

    * per layer, the effective strength ``a_l = w_l / sqrt(n_{l-1})`` follows
      ``da_l/dt = (1/n_{l-1}) (u / a_l) (s - lam u)``: the standard flow with learning rate
      multiplied by the layer's own ``1/n_{l-1}``;
    * under balance of the raw weights (``w_l = w``, which gradient flow preserves because
      ``w_i^2 - w_j^2`` is conserved), ``du/dt = C^(2/L) L u^(2-2/L) (s - lam u)``: the
      standard ODE in the time ``t_eff = C^(2/L) t``, ``C^(2/L) = (prod_l 1/n_{l-1})^(1/L)``.

    Parameters
    ----------
    depth : int
        ``L``, the number of layers.

    Returns
    -------
    dict
        ``widths`` (the symbols ``n_0 .. n_{L-1}``), ``C``, ``per_layer_rate`` (the factors
        ``1/n_{l-1}``), ``per_layer_verified``, ``u``, ``balanced_rhs``, ``time_factor``
        (``C^(2/L)``) and ``balanced_verified``.
    """
    depth = positive_int(depth, "depth")
    n = sp.symbols(f"n_0:{depth}", positive=True)
    w = sp.symbols(f"w_1:{depth + 1}", positive=True)
    C = sp.Mul(*[1 / sp.sqrt(ni) for ni in n])
    u = C * sp.Mul(*w)
    Eyy = sp.Symbol("E_yy", positive=True)
    loss = sp.Rational(1, 2) * (Eyy - 2 * s * u + lam * u ** 2)
    w_rhs = [-sp.diff(loss, wi) for wi in w]
    # per-layer effective learning rate: a_l = w_l / sqrt(n_{l-1})
    per_layer_ok = []
    for l in range(depth):
        a_l = w[l] / sp.sqrt(n[l])
        da_dt = w_rhs[l] / sp.sqrt(n[l])
        standard = (u / a_l) * (s - lam * u)
        per_layer_ok.append(_is_zero(da_dt - standard / n[l]))
    # balanced raw weights
    wb = sp.Symbol("w", positive=True)
    dudt = sum(sp.diff(u, wi) * ri for wi, ri in zip(w, w_rhs))
    dudt = sp.simplify(dudt.subs({wi: wb for wi in w}))
    U = sp.Symbol("u", positive=True)
    Cb = C
    derived = sp.simplify(dudt.subs(wb, (U / Cb) ** sp.Rational(1, depth)))
    factor = Cb ** sp.Rational(2, depth)
    expected = factor * depth * U ** (2 - sp.Rational(2, depth)) * (s - lam * U)
    return {
        "widths": n,
        "C": C,
        "per_layer_rate": [1 / ni for ni in n],
        "per_layer_verified": all(per_layer_ok),
        "u": U,
        "balanced_rhs": derived,
        "time_factor": sp.simplify(factor),
        "balanced_verified": _is_zero(derived - expected),
    }


# ------------------------------------------------------------------ closed forms
def depth1_closed_form():
    """``u(t) = s/lam + (u0 - s/lam) e^(-lam t)`` solves ``du/dt = s - lam u`` (L = 1).

    Returns
    -------
    sympy.Expr
        ``u(t)`` in the module's symbols ``t, s, lambda, u_0``.
    """
    return s / lam + (u0 - s / lam) * sp.exp(-lam * t)


def depth2_closed_form():
    """``u(t) = s e^(2 s t) / (lam (e^(2 s t) - 1) + s / u0)`` solves ``du/dt = 2 u (s - lam u)``.

    With ``lam = 1`` this is Saxe et al.'s ``u(t) = s e^(2st) / (e^(2st) - 1 + s/u0)``.

    Returns
    -------
    sympy.Expr
        ``u(t)`` in the module's symbols ``t, s, lambda, u_0``.
    """
    e = sp.exp(2 * s * t)
    return s * e / (lam * (e - 1) + s / u0)


def _verify_mode_closed_form(expr, depth: int) -> bool:
    U = sp.Symbol("u", positive=True)
    _, derived, _, _ = balanced_reduction(depth)
    residual = sp.diff(expr, t) - derived.subs(U, expr)
    initial = sp.simplify(expr.subs(t, 0) - u0)
    return _is_zero(residual) and initial == 0


@lru_cache(maxsize=None)
def verify_depth1_closed_form() -> bool:
    """Check symbolically that :func:`depth1_closed_form` solves the derived L = 1 ODE.

    Returns
    -------
    bool
        Whether the ODE residual and the initial condition reduce to zero.
    """
    return _verify_mode_closed_form(depth1_closed_form(), 1)


@lru_cache(maxsize=None)
def verify_depth2_closed_form() -> bool:
    """Check symbolically that :func:`depth2_closed_form` solves the derived L = 2 ODE.

    Returns
    -------
    bool
        Whether the ODE residual and the initial condition reduce to zero.
    """
    return _verify_mode_closed_form(depth2_closed_form(), 2)


def toy_closed_form(variant: str = "multiplicative"):
    """Single-eigenvector solution of the toy kernel model of :mod:`ntkdyn.theory.kernel_evolution`.

    Target ``y`` along an eigenvector of ``K_0`` (eigenvalue ``lam0``), ``U = ||y - f||^2``,
    ``U(0) = u0``. Both rules keep ``y - f`` on that eigenvector, and ``dU/dt = -2 lam U``;

    * multiplicative (T1) ``dK/dt = eta (K D D^T + D D^T K)``: ``dlam/dt = 2 eta lam U``,
      conserved ``lam + eta U = c``; ``U = c u0 / (eta u0 + lam0 e^(2ct))``, ``lam = c - eta U``;
    * additive (T2) ``dK/dt = eta D D^T``: ``dlam/dt = eta U``, conserved
      ``lam^2 + eta U = c2``; ``lam = sqrt(c2) tanh(sqrt(c2) t + atanh(lam0/sqrt(c2)))``,
      ``U = (c2 - lam^2) / eta``.

    Parameters
    ----------
    variant : {"multiplicative", "additive"}, optional
        T1 (default) or T2.

    Returns
    -------
    lam0_symbol : sympy.Symbol
        ``lambda_0``.
    lam_t : sympy.Expr
        ``lam(t)``.
    U_t : sympy.Expr
        ``U(t)``.
    """
    one_of(variant, "variant", ("multiplicative", "additive"))
    lam0 = sp.Symbol("lambda_0", positive=True)
    if variant == "multiplicative":
        c = lam0 + eta * u0
        U = c * u0 / (eta * u0 + lam0 * sp.exp(2 * c * t))
        return lam0, c - eta * U, U
    c2 = lam0 ** 2 + eta * u0
    r = sp.sqrt(c2)
    lam_t = r * sp.tanh(r * t + sp.atanh(lam0 / r))
    return lam0, lam_t, (c2 - lam_t ** 2) / eta


def _toy_rates(variant, lam_t, U):
    dlam = 2 * eta * lam_t * U if variant == "multiplicative" else eta * U
    return dlam, -2 * lam_t * U


@lru_cache(maxsize=None)
def verify_toy_closed_form(variant: str = "multiplicative") -> bool:
    """Check that :func:`toy_closed_form` solves ``dlam/dt``, ``dU/dt`` with the right start.

    Parameters
    ----------
    variant : {"multiplicative", "additive"}, optional
        T1 (default) or T2.

    Returns
    -------
    bool
        Whether both ODE residuals and both initial conditions reduce to zero.
    """
    lam0, lam_t, U = toy_closed_form(variant)
    dlam, dU = _toy_rates(variant, lam_t, U)
    ok_ode = _is_zero(sp.diff(lam_t, t) - dlam) and _is_zero(sp.diff(U, t) - dU)
    ok_init = (_is_zero(lam_t.subs(t, 0) - lam0) and _is_zero(U.subs(t, 0) - u0))
    return ok_ode and ok_init


@lru_cache(maxsize=None)
def verify_toy_conservation(variant: str = "multiplicative") -> bool:
    """Check ``d/dt (lam + eta U) = 0`` (T1) or ``d/dt (lam^2 + eta U) = 0`` (T2) on the ODE.

    Parameters
    ----------
    variant : {"multiplicative", "additive"}, optional
        T1 (default) or T2.

    Returns
    -------
    bool
        Whether the invariant's time derivative reduces to zero.
    """
    one_of(variant, "variant", ("multiplicative", "additive"))
    L_, U_ = sp.symbols("lambda U", positive=True)
    dlam, dU = _toy_rates(variant, L_, U_)
    Q = L_ + eta * U_ if variant == "multiplicative" else L_ ** 2 + eta * U_
    return _is_zero(sp.diff(Q, L_) * dlam + sp.diff(Q, U_) * dU)


@lru_cache(maxsize=None)
def rank_one_ntk_spike(depth: int):
    """Spike weight of the scalar-output NTK on the balanced rank-one solution.

    With ``W_1 = a r_2 v^T``, ``W_l = a r_{l+1} r_l^T``, ``W_L = a r_L^T``, the layer-``l``
    term of the NTK is ``(prod_{k>l} a^2) (prod_{k<l} a^2) Phi_l`` with ``Phi_1 = x.x'`` and
    ``Phi_l = (v.x)(v.x')`` for ``l >= 2``. Summing gives
    ``K = a^(2(L-1)) [x.x' + (L-1)(v.x)(v.x')] = u^(2(L-1)/L) [...]``.

    Parameters
    ----------
    depth : int
        ``L``, the number of layers.

    Returns
    -------
    isotropic_coefficient : sympy.Expr
        The coefficient of ``x.x'``, in terms of ``a``.
    spike_coefficient : sympy.Expr
        The coefficient of ``(v.x)(v.x')``.
    verified : bool
        Whether they are ``a^(2(L-1))`` and ``(L-1) a^(2(L-1))``.
    """
    depth = positive_int(depth, "depth")
    a = sp.Symbol("a", positive=True)
    iso, spike = 0, 0
    for l in range(1, depth + 1):
        coef = a ** (2 * (depth - l)) * a ** (2 * (l - 1))
        if l == 1:
            iso += coef
        else:
            spike += coef
    top = a ** (2 * (depth - 1))
    ok = _is_zero(iso - top) and _is_zero(spike - (depth - 1) * top)
    return sp.simplify(iso), sp.simplify(spike), ok


@lru_cache(maxsize=None)
def whitened_final_alignment():
    """Alignment of ``K = alpha G + gamma S`` with ``y`` for whitened inputs, and its limit.

    Whitened data ``X^T X = n I_D`` (``X`` of shape ``(n, D)``), ``G = X X^T``,
    ``y = X beta``, ``S = (X beta_hat)(X beta_hat)^T``: ``y^T G y = y^T S y = n ||y||^2``,
    ``||G||_F^2 = n^2 D``, ``<G, S> = ||S||_F^2 = n^2``, hence
    ``A = (alpha + gamma) / sqrt(alpha^2 D + 2 alpha gamma + gamma^2)``. On the balanced
    solution ``gamma = (L - 1) alpha`` (:func:`rank_one_ntk_spike`), which gives
    ``A = L / sqrt(L^2 + D - 1)``.

    Returns
    -------
    A_general : sympy.Expr
        ``A`` in the symbols ``alpha, gamma, D``.
    A_final : sympy.Expr
        ``L / sqrt(L^2 + D - 1)``.
    verified : bool
        Whether ``A`` at ``gamma = (L - 1) alpha`` reduces to ``A_final``.
    """
    alpha, gamma, L, D = sp.symbols("alpha gamma L D", positive=True)
    A = (alpha + gamma) / sp.sqrt(alpha ** 2 * D + 2 * alpha * gamma + gamma ** 2)
    A_final = L / sp.sqrt(L ** 2 + D - 1)
    ok = _is_zero(sp.simplify(A.subs(gamma, (L - 1) * alpha)) - A_final)
    return A, A_final, ok


def verify_all(max_depth: int = 4) -> dict:
    """Run every symbolic check (depths ``1..max_depth``).

    Parameters
    ----------
    max_depth : int, optional
        The deepest network checked.

    Returns
    -------
    dict
        ``{check name: verified}``.
    """
    max_depth = positive_int(max_depth, "max_depth")
    out = {}
    for L in range(1, max_depth + 1):
        out[f"balanced_reduction_L{L}"] = balanced_reduction(L)[3]
        out[f"conservation_L{L}"] = all(r == 0 for _, _, r in conservation_laws(L))
        nt = ntk_time_rescaling(L)
        out[f"ntk_per_layer_rate_L{L}"] = nt["per_layer_verified"]
        out[f"ntk_time_rescaling_L{L}"] = nt["balanced_verified"]
        out[f"rank_one_spike_L{L}"] = rank_one_ntk_spike(L)[2]
    out["depth1_closed_form"] = verify_depth1_closed_form()
    out["depth2_closed_form"] = verify_depth2_closed_form()
    for v in ("multiplicative", "additive"):
        out[f"toy_{v}_closed_form"] = verify_toy_closed_form(v)
        out[f"toy_{v}_conservation"] = verify_toy_conservation(v)
    out["whitened_final_alignment"] = whitened_final_alignment()[2]
    return out


# ------------------------------------------------------------------ printing
def derivations(fmt: str = "pretty", max_depth: int = 3) -> str:
    """All derivations as printable text, ``fmt`` in ``{"pretty", "latex"}``.

    This is what ``ntkdyn derive`` prints: each step's equation, then whether sympy
    verified it.

    Parameters
    ----------
    fmt : {"pretty", "latex"}, optional
        Unicode pretty-printing or LaTeX.
    max_depth : int, optional
        The deepest network shown.

    Returns
    -------
    str
        The text.
    """
    one_of(fmt, "fmt", ("pretty", "latex"))
    max_depth = positive_int(max_depth, "max_depth")

    def show(expr) -> str:
        if fmt == "latex":
            return "$$" + sp.latex(expr) + "$$"
        return sp.pretty(expr, use_unicode=True)

    def eq(lhs, rhs) -> str:
        return show(sp.Eq(lhs, rhs, evaluate=False))

    def ok(flag: bool) -> str:
        return "verified by sympy" if flag else "NOT VERIFIED"

    lines = ["ntkdyn derivations (Shan & Bordelon 2021, arXiv:2105.14301; Saxe et al. 2014)", ""]
    lines.append("1. One singular mode of a depth-L linear network (standard parameterization)")
    for L in range(1, max_depth + 1):
        a, u, loss, rhs = mode_flow(L)
        lines.append(f"  depth L = {L}: mode loss")
        lines.append(eq(sp.Symbol("loss"), loss))
        for ai, ri in zip(a, rhs):
            lines.append(eq(sp.Derivative(sp.Function(str(ai))(t), t), ri))
        for i, j, rate in conservation_laws(L):
            lines.append(f"  d/dt (a_{i}^2 - a_{j}^2) = {rate}   ({ok(rate == 0)})")
        U, derived, expected, flag = balanced_reduction(L)
        lines.append("  balanced reduction (a_i = a, u = a^L):")
        lines.append(eq(sp.Derivative(sp.Function("u")(t), t), derived))
        lines.append(f"  equals L u^(2-2/L) (s - lambda u): {ok(flag)}")
        lines.append("")
    lines.append("2. NTK parameterization: time rescaling")
    for L in range(1, max_depth + 1):
        nt = ntk_time_rescaling(L)
        lines.append(f"  depth L = {L}: f = C W_L...W_1 x with")
        lines.append(eq(sp.Symbol("C"), nt["C"]))
        rates = ", ".join(str(r) for r in nt["per_layer_rate"])
        lines.append(f"  per-layer learning-rate factors (fan-in): {rates}  "
                     f"({ok(nt['per_layer_verified'])})")
        lines.append("  balanced raw weights:")
        lines.append(eq(sp.Derivative(sp.Function("u")(t), t), nt["balanced_rhs"]))
        lines.append("  i.e. the standard ODE in time t_eff = C^(2/L) t, with")
        lines.append(eq(sp.Symbol(f"C^(2/{L})"), nt["time_factor"]))
        lines.append(f"  ({ok(nt['balanced_verified'])})")
        lines.append("")
    lines.append("3. Closed forms")
    lines.append("  depth 1:")
    lines.append(eq(sp.Function("u")(t), depth1_closed_form()))
    lines.append(f"  solves du/dt = s - lambda u, u(0) = u0: {ok(verify_depth1_closed_form())}")
    lines.append("  depth 2 (Saxe et al. 2014 for lambda = 1):")
    lines.append(eq(sp.Function("u")(t), depth2_closed_form()))
    lines.append(f"  solves du/dt = 2u(s - lambda u), u(0) = u0: {ok(verify_depth2_closed_form())}")
    lines.append("")
    lines.append("4. Toy kernel model, target on one eigenvector of K_0 (U = ||y - f||^2)")
    for v in ("multiplicative", "additive"):
        lam0, lam_t, U = toy_closed_form(v)
        lines.append(f"  {v} rule:")
        lines.append(eq(sp.Function("lambda")(t), lam_t))
        lines.append(eq(sp.Function("U")(t), U))
        lines.append(f"  solves its ODE: {ok(verify_toy_closed_form(v))}; "
                     f"conservation law: {ok(verify_toy_conservation(v))}")
    lines.append("")
    lines.append("5. NTK alignment of deep linear networks (whitened inputs, scalar output)")
    for L in range(1, max_depth + 1):
        iso, spike, flag = rank_one_ntk_spike(L)
        lines.append(f"  depth {L}: K = {iso} x.x' + {spike} (v.x)(v.x')  ({ok(flag)})")
    A, A_final, flag = whitened_final_alignment()
    lines.append(eq(sp.Symbol("A"), A))
    lines.append(eq(sp.Symbol("A_inf"), A_final))
    lines.append(f"  ({ok(flag)})")
    return "\n".join(lines) + "\n"
