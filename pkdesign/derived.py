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
    ``names`` is the FIM's parameter order (fixed effects that are not estimated are not in it)."""
    import sympy as sp

    theta = _values_of(spec, values)
    sub = {sp.Symbol(k): v for k, v in theta.items()}
    out = {}
    for name, expr in spec.derived:
        value = float(expr.xreplace(sub).evalf())
        grad = np.zeros(len(names))
        for i, n in enumerate(names):
            if n in theta:
                grad[i] = float(sp.diff(expr, sp.Symbol(n)).xreplace(sub).evalf())
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            raise DesignError(f"derived quantity {name!r} is not finite at the parameter values (value {value:g})")
        out[name] = (value, grad)
    return out


def c_vector(spec, names, what: str, values: dict | None = None) -> tuple:
    """(c (len(names),), value) for a derived quantity or a FIM parameter named ``what``."""
    names = list(names)
    if what in names:
        c = np.zeros(len(names))
        c[names.index(what)] = 1.0
        return c, float(_values_of(spec, values).get(what, np.nan))
    known = [n for n, _ in spec.derived]
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
        for name, (value, grad) in gradients(spec, fim.names, values).items():
            se = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
            rows.append({"quantity": name, "value": value, "se": se,
                         "rse_percent": 100 * se / abs(value) if value else np.inf})
    return pd.DataFrame(rows, columns=["quantity", "value", "se", "rse_percent"]).set_index("quantity")
