"""Derived quantities: functions of the parameters (AUC, tmax, Cmax, half-life, CL/F, ...).

A model declares them in its ``[derived]`` section (or ``model_from_sympy(..., derived=...)``); each
is a sympy expression in the structural parameters.  ``gradients`` gives their values and exact
(symbolic) gradients in the FIM's parameter order, which serve twice:

- the delta method: Var(g(θ̂)) ≈ ∇gᵀ FIM⁻¹ ∇g  (``derived_table``: value, SE, RSE%);
- c-optimality: the criterion −cᵀ M⁻ c with c = ∇g (``c_vector``, ``criteria.CCriterion``).

A name that is a parameter of the FIM (``CL``, ``omega2(CL)``, ...) stands for that parameter
itself (c = its unit vector).
"""

from __future__ import annotations

import numpy as np

from .errors import DesignError


def _values_of(spec, values):
    theta = {p.name: float(p.value) for p in spec.parameters}
    if values:
        theta.update({k: float(v) for k, v in values.items() if k in theta})
    return theta


def gradients(spec, names, values: dict | None = None) -> dict:
    """``{derived name: (value, gradient (len(names),))}`` at the model's (or the given) parameter values;
    ``names`` is the FIM's parameter order (fixed effects that are not estimated are not in it).  ``spec`` may be
    the compiled model itself, which numerical extrema (``Extremum``: Cmax, tmax of any model) need."""
    import sympy as sp

    from .model.spec import Extremum

    model = spec if hasattr(spec, "evaluate") else None
    spec = getattr(spec, "spec", spec)
    theta = _values_of(spec, values)
    sub = {sp.Symbol(k): v for k, v in theta.items()}
    out = {}
    for name, expr in spec.derived:
        if isinstance(expr, Extremum):
            if model is None:
                raise DesignError(f"derived quantity {name!r} is found numerically from the model's predictions: "
                                  "give the compiled model, not its spec")
            value, grad = extremum(model, expr, names, theta, name)
            out[name] = (value, grad)
            continue
        value = float(expr.xreplace(sub).evalf())
        grad = np.zeros(len(names))
        for i, n in enumerate(names):
            if n in theta:
                grad[i] = float(sp.diff(expr, sp.Symbol(n)).xreplace(sub).evalf())
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            raise DesignError(f"derived quantity {name!r} is not finite at the parameter values (value {value:g})")
        out[name] = (value, grad)
    return out


#: points of the grid on which a numerical extremum is first located
EXTREMUM_GRID = 2001


def extremum(model, ext, names, theta: dict, label: str = "extremum") -> tuple:
    """(value, gradient (len(names),)) of a numerical peak/nadir or its time (``Extremum``) at parameters ``theta``.

    The extremum is located on a grid of the window, then refined as the root of ∂f/∂t (Brent); its gradient
    follows from the implicit function theorem: ∂t*/∂ψ = −(∂²f/∂t∂ψ)/(∂²f/∂t²) and, by the envelope theorem,
    ∂f(t*)/∂ψ = ∂f/∂ψ at t* (at a window edge: t* fixed, ∂t*/∂ψ = 0), with the mixed and second time
    derivatives by central differences of the kernels' exact first derivatives."""
    from scipy.optimize import brentq

    from .regimen import Regimen

    spec = model.spec
    if spec.uses_doses() and not ext.dose > 0:
        raise DesignError(f"derived quantity {label!r}: the model takes doses; give dose = amount (one dose at t = 0)")
    psi = np.array([theta[p] for p in spec.parameter_names], dtype=float)
    regimen = Regimen.single(ext.dose) if ext.dose > 0 else Regimen()
    out = spec.output_names.index(ext.output)

    def ev(t):
        t = np.atleast_1d(np.asarray(t, dtype=float))
        return model.evaluate(psi, t, regimen, np.full(t.size, out, dtype=np.int64), order=1)

    lo, hi = ext.window
    grid = np.linspace(lo, hi, EXTREMUM_GRID)
    f = ev(grid)["f"]
    if not np.all(np.isfinite(f)):
        raise DesignError(f"derived quantity {label!r}: the prediction of {ext.output!r} is not finite in the window")
    sign = 1.0 if ext.kind in ("max", "argmax") else -1.0
    k = int(np.argmax(sign * f))
    t_star, interior = float(grid[k]), 0 < k < grid.size - 1
    if interior:
        a, b = grid[k - 1], grid[k + 1]
        da, db = ev([a, b])["dt"]
        if da * db < 0:
            t_star = brentq(lambda t: float(ev(t)["dt"][0]), a, b, xtol=1e-14 * max(1.0, abs(b)), rtol=1e-14)
    at = ev(t_star)
    value_f = float(at["f"][0])
    d1 = at["d1"][0]
    g_psi = d1
    if ext.kind in ("argmax", "argmin"):
        g_psi = np.zeros_like(d1)
        if interior:
            h = 1e-5 * max(1.0, abs(t_star))
            pm = ev([t_star + h, t_star - h])
            ftt = (pm["dt"][0] - pm["dt"][1]) / (2 * h)
            fth = (pm["d1"][0] - pm["d1"][1]) / (2 * h)
            if ftt == 0 or not np.isfinite(ftt):
                raise DesignError(f"derived quantity {label!r}: the extremum of {ext.output!r} is flat (∂²f/∂t² = 0)")
            g_psi = -fth / ftt
    value = t_star if ext.kind in ("argmax", "argmin") else value_f
    pn = spec.parameter_names
    grad = np.array([float(g_psi[pn.index(n)]) if n in pn else 0.0 for n in names])
    if not np.isfinite(value) or not np.all(np.isfinite(grad)):
        raise DesignError(f"derived quantity {label!r} is not finite at the parameter values")
    return value, grad


def c_vector(spec, names, what: str, values: dict | None = None) -> tuple:
    """(c (len(names),), value) for a derived quantity or a FIM parameter named ``what``."""
    names = list(names)
    if what in names:
        c = np.zeros(len(names))
        c[names.index(what)] = 1.0
        return c, float(_values_of(getattr(spec, "spec", spec), values).get(what, np.nan))
    known = [n for n, _ in getattr(spec, "spec", spec).derived]
    if what not in known:
        raise DesignError(f"c-criterion: unknown quantity {what!r}; the model's derived quantities are {known} and "
                          f"its FIM parameters {names}")
    value, grad = gradients(spec, names, values)[what]
    if not np.any(grad):
        raise DesignError(f"c-criterion: {what!r} does not depend on any estimated parameter")
    return grad, value


def derived_table(model, fim, values: dict | None = None):
    """pandas DataFrame of the model's derived quantities under ``fim`` (a FIMResult): value, SE and RSE%
    by the delta method (SE² = ∇gᵀ FIM⁻¹ ∇g); empty when the model declares none."""
    import pandas as pd

    spec = getattr(model, "spec", model)
    rows = []
    if spec.derived:
        cov = fim.covariance
        for name, (value, grad) in gradients(model, fim.names, values).items():
            se = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
            rows.append({"quantity": name, "value": value, "se": se,
                         "rse_percent": 100 * se / abs(value) if value else np.inf})
    return pd.DataFrame(rows, columns=["quantity", "value", "se", "rse_percent"]).set_index("quantity")
