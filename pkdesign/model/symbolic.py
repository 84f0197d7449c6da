"""Symbolic derivatives of a ``ModelSpec``: the step between the spec and code generation.

For each *response* (superposed over doses) the contribution of one dose is written as a
function of the observation time ``T``, the dose time ``TD``, the amount ``AMT`` and the
infusion duration ``TINF``, with ``t = T - TD - lag(ψ)`` and ``DOSE = F(ψ)·AMT``.  We
differentiate it with respect to every individual parameter ψ_k (first and second order) and
with respect to ``T``.  Declared removable singularities (e.g. ``KA == K``) get a second
branch: a Taylor series in ``d = a - b`` whose coefficients sympy computes, used where
``|d|`` is small, so that values and derivatives stay finite and accurate at the limit.

Outputs are functions g(T, ψ, R) of the summed responses R; their derivatives follow by the
chain rule, written with placeholder symbols for R and its derivatives so that code generation
can fill them in from the dose loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..errors import ModelSpecError
from .spec import ModelSpec

#: Observation time, dose time, dose amount and infusion duration in generated code.
T, TD, AMT, TINF = sp.symbols("T_obs T_dose AMT_dose TINF_dose")
#: Switch to the series branch when |a - b| * t < SERIES_DT and |a - b| < SERIES_REL * (|a| + |b|).
SERIES_DT = 0.01
SERIES_REL = 0.1
#: Number of series terms (powers d**0 .. d**(SERIES_ORDER-1)).  A second derivative in d keeps
#: SERIES_ORDER - 2 orders: truncation ~ (|d| t)**5 / 5! < 1e-12 at the switch, while the closed form
#: loses ~eps / (|d| t)**3 ~ 1e-10 to cancellation just outside it.
SERIES_ORDER = 7


@dataclass
class Derivs:
    """Value, first derivatives (list over ψ), second derivatives (dict (k, l), k <= l) and d/dT."""

    f: sp.Expr
    d1: list
    d2: dict
    dt: sp.Expr


@dataclass
class Branch:
    condition: object  # sympy Boolean, or None for the default branch
    derivs: Derivs


@dataclass
class ResponseDerivs:
    name: str
    branches: list  # evaluated in order; the last has condition None


@dataclass
class OutputDerivs:
    name: str
    branches: list  # of Branch; Derivs in T, ψ and the placeholders of assignments and responses


@dataclass
class Inner:
    """An intermediate quantity x(ψ[, T]) with placeholder symbols for its derivatives.

    ``d1[k]`` is the symbol standing for dx/dψ_k, or 0 where x does not depend on ψ_k;
    ``d2[(k, l)]`` likewise for k <= l; ``dt`` for dx/dT (0 if time-independent).
    """

    name: str
    sym: sp.Symbol
    d1: list
    d2: dict
    dt: object = sp.Integer(0)


@dataclass
class ModelDerivs:
    """Everything the code generator needs.

    assignments : list of (Inner, Derivs)  -- per parameter vector, in order; Derivs in ψ and the
                  placeholders of earlier assignments
    responses   : list of (Inner, ResponseDerivs) -- per dose; Derivs in ψ, T, dose symbols
                  and assignment placeholders
    outputs     : list of OutputDerivs -- per observation
    lag         : sympy expression (ψ and assignment symbols) of the lag time
    active      : indices (into the parameter vector) of the parameters differentiated; derivative
                  position k in ``Derivs`` is parameter ``active[k]``
    """

    assignments: list
    responses: list
    outputs: list
    lag: object
    active: list


LAG_NAME, BIO_NAME = "_LAG", "_F"  # user names cannot start with "_"


def finite_powers(expr):
    """Rewrite the 0/0 forms that differentiating a power with a parameter exponent leaves, so that the
    generated code is finite where the base is 0 (a pre-dose concentration in a Hill model); a base that
    is a product (A/V) is split into its factors first:

    - b**e · b**(−k) (sympy writes ∂(C**γ)/∂C as γ·C**γ/C) becomes b**(e − k): 0 at b = 0 when e > k;
    - a product with a factor b**e that also contains log(b) (∂(C**γ)/∂γ = C**γ log C and its derivatives)
      becomes (that product if b > 0 else 0): its limit at b = 0 for exponents > 0.
    """
    if not isinstance(expr, sp.Basic) or not expr.has(sp.Pow):
        return expr
    bases = {p.base for p in expr.atoms(sp.Pow) if not p.exp.is_number}
    if not bases:
        return expr
    if any(b.is_Mul for b in bases):  # (A/V)**γ -> A**γ V**-γ and log(A/V) -> log A - log V (positive factors)
        expr = expr.replace(lambda x: x.is_Pow and x.base.is_Mul and not x.exp.is_number,
                            lambda x: sp.expand_power_base(x, force=True))
        expr = expr.replace(lambda x: isinstance(x, sp.log) and x.args[0] in bases,
                            lambda x: sp.expand_log(x, force=True))

    def merge_target(m):
        if not m.is_Mul:
            return False
        seen = {}
        for a in m.args:
            b, e = a.as_base_exp()
            seen.setdefault(b, []).append(e)
        return any(len(es) > 1 and any(not e.is_number for e in es) for es in seen.values())

    expr = expr.replace(merge_target, lambda m: sp.powsimp(m, deep=False, combine="exp"))

    def vanishing_base(m):
        """The base b of a power b**e (parameter exponent) that is a factor of the product m, where m also
        contains log(b) and vanishes once the powers b**e are 0 (so m → 0 as b → 0+), else None."""
        if not m.is_Mul:
            return None
        for a in m.args:
            if not (a.is_Pow and not a.exp.is_number and m.has(sp.log(a.base))):
                continue
            b = a.base
            at0 = m.replace(lambda x: x.is_Pow and x.base == b and not x.exp.is_number, lambda x: sp.Integer(0))
            if at0 == 0:
                return b
        return None

    def log_target(m):
        return vanishing_base(m) is not None

    def guard(m):
        return sp.Piecewise((m, sp.StrictGreaterThan(vanishing_base(m), 0)), (sp.Integer(0), True))

    return expr.replace(log_target, guard)


def expand_assignments(spec: ModelSpec) -> dict:
    """Map each assignment symbol to its expression in the parameters only."""
    sub = {}
    for name, expr in spec.assignments:
        sub[sp.Symbol(name)] = expr.xreplace(sub)
    return sub


def _is_singular_at(expr: sp.Expr, a: sp.Symbol, b: sp.Expr) -> bool:
    at = expr.xreplace({a: b})
    return at.has(sp.zoo, sp.nan, sp.oo)


def series_branch(expr: sp.Expr, a: sp.Symbol, b: sp.Expr, order: int = SERIES_ORDER) -> sp.Expr:
    """Taylor expansion of ``expr`` around ``a == b`` in ``d = a - b``, re-expressed in ``a`` and ``b``.

    The result has no singular denominator in ``a - b`` and agrees with ``expr`` up to
    O(d**order).  ``a`` and ``b`` are symbols (parameters or assignments, kept opaque), which
    keeps the expansion small.
    """
    d = sp.Dummy("d")
    shifted = expr.xreplace({a: b + d})
    ser = sp.series(shifted, d, 0, order).removeO()
    return ser.xreplace({d: a - b})


def response_branches(spec: ModelSpec, name: str, expr: sp.Expr) -> list:
    """Split a response into (condition, expression) branches for its removable singularities.

    Expressions are in terms of parameter and assignment symbols and the response's own
    ``t``, ``DOSE`` and ``TINF``.  The series branch is taken where
    ``|a - b|·t < SERIES_DT`` and ``|a - b| < SERIES_REL·(|a| + |b|)``: there the truncation
    error is below ~1e-10 relative, and outside it the closed form loses at most ~1e-10 to
    cancellation even in second derivatives.
    """
    t = sp.Symbol("t")
    branches = []
    for a, b in spec.singularities:
        if not isinstance(a, sp.Symbol):
            raise ModelSpecError(
                f"{spec.origin}: model.removable_singularities: the first entry of each pair must be a name, got {a}"
            )
        if not _is_singular_at(expr, a, b):
            continue
        ser = series_branch(expr, a, b)
        if ser.has(sp.zoo, sp.nan, sp.oo):
            raise ModelSpecError(
                f"{spec.origin}: response {name}: the singularity at {a} == {b} is not removable (series diverges)"
            )
        dd = a - b
        cond = sp.And(sp.Abs(dd) * t < SERIES_DT, sp.Abs(dd) < SERIES_REL * (sp.Abs(a) + sp.Abs(b)))
        branches.append((cond, ser))
    branches.append((None, expr))
    return branches


def _inner(name: str, sym, depends: list, pairs: list, with_time: bool = False) -> Inner:
    d1 = [sp.Symbol(f"d_{name}_{k}") if dep else sp.Integer(0) for k, dep in enumerate(depends)]
    d2 = {(k, l): (sp.Symbol(f"d2_{name}_{k}_{l}") if depends[k] and depends[l] else sp.Integer(0))
          for k, l in pairs}
    return Inner(name, sym, d1, d2, sp.Symbol(f"dt_{name}") if with_time else sp.Integer(0))


def _chain(g: sp.Expr, psi: list, inner: list, pairs: list | None) -> Derivs:
    """Total derivatives of g(T, ψ, x(ψ, T)) by the chain rule; x's derivatives are placeholders.

    Partial derivatives hold the intermediates x fixed; the placeholders of ``inner`` carry
    their own derivatives, so large intermediates are differentiated once, not in every use.
    Second derivatives for the position pairs ``pairs`` (``(k, l)``, k <= l; None: first order only).
    """
    used = [x for x in inner if g.has(x.sym)]
    gx = {x.name: sp.diff(g, x.sym) for x in used}
    n = len(psi)
    d1 = []
    for k in range(n):
        d1.append(sp.diff(g, psi[k]) + sum((gx[x.name] * x.d1[k] for x in used), sp.Integer(0)))
    d2 = {}
    if pairs is not None:
        gxp = {(x.name, k): sp.diff(gx[x.name], psi[k]) for x in used for k in range(n)}
        gxy = {(x.name, y.name): sp.diff(gx[x.name], y.sym) for x in used for y in used}
        for k, l in pairs:
            e = sp.diff(g, psi[k], psi[l])
            for x in used:
                e += gxp[(x.name, k)] * x.d1[l] + gxp[(x.name, l)] * x.d1[k] + gx[x.name] * x.d2[(k, l)]
                for y in used:
                    e += gxy[(x.name, y.name)] * x.d1[k] * y.d1[l]
            d2[(k, l)] = e
    dt = sp.diff(g, T) + sum((gx[x.name] * x.dt for x in used), sp.Integer(0))
    return Derivs(g, d1, d2, dt)


def derive_model(spec: ModelSpec, with_second: bool = True) -> ModelDerivs:
    """All symbolic derivatives needed by the kernels (see :class:`ModelDerivs`)."""
    active = spec.derivative_indices()
    psi = [spec.psi_symbols[k] for k in active]
    n = len(psi)
    pairs = spec.second_order_pairs() if with_second else None
    # intermediates evaluated once per parameter vector: assignments, lag time, bioavailability
    # Each intermediate is differentiated in terms of the earlier ones (chain rule), so that
    # nested assignments (eigenvalues of a 3-compartment model) never get expanded.
    items = [(name, sp.Symbol(name), expr) for name, expr in spec.assignments]
    lag = spec.dosing.lag
    bio = spec.dosing.bioavailability
    if spec.responses:
        if lag != 0:
            items.append((LAG_NAME, sp.Symbol(LAG_NAME), lag))
        if bio != 1:
            items.append((BIO_NAME, sp.Symbol(BIO_NAME), bio))
    assignments, inner = [], []
    for name, sym, expr in items:
        dv = _chain(expr, psi, inner, pairs)
        x = _inner(name, sym, [dv.d1[k] != 0 for k in range(n)], pairs or [])
        assignments.append((x, dv))
        inner.append(x)
    lag_sym = sp.Symbol(LAG_NAME) if (spec.responses and lag != 0) else sp.Integer(0)
    bio_sym = sp.Symbol(BIO_NAME) if (spec.responses and bio != 1) else sp.Integer(1)
    dose_sub = {sp.Symbol("t"): T - TD - lag_sym, sp.Symbol("DOSE"): AMT * bio_sym, sp.Symbol("TINF"): TINF}

    responses = []
    for c, (name, expr) in enumerate(spec.responses):
        branches = []
        for cond, e in response_branches(spec, name, expr):
            c_expr = None if cond is None else cond.xreplace(dose_sub)
            branches.append(Branch(c_expr, _chain(e.xreplace(dose_sub), psi, inner, pairs)))
        depends = [any(b.derivs.d1[k] != 0 for b in branches) for k in range(n)]
        responses.append((_inner(f"R{c}", sp.Symbol(name), depends, pairs or [], with_time=True),
                          ResponseDerivs(name, branches)))

    all_inner = inner + [x for x, _ in responses]
    outputs = []
    for o in spec.outputs:
        branches = []
        for cond, e in response_branches(spec, o.name, o.expression):
            c_expr = None if cond is None else cond.xreplace({sp.Symbol("t"): T})
            branches.append(Branch(c_expr, _chain(e.xreplace({sp.Symbol("t"): T}), psi, all_inner, pairs)))
        outputs.append(OutputDerivs(o.name, branches))
    return ModelDerivs(assignments, responses, outputs, lag_sym, active)
