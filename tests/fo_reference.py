"""First-order (FO) population Fisher information, full and reduced (block-diagonal).

Sits after the model layer: kernels give f, ∂f/∂ψ and ∂²f/∂ψ² at η = 0; this module builds the
FO marginal model  E[y] = f(θ, 0),  Var[y] = L Ω Lᵀ + diag(residual variance at η = 0),
L = ∂f/∂η,  and the normal-model information

    FIM_ab = ∂μᵀ/∂a V⁻¹ ∂μ/∂b + ½ tr(V⁻¹ ∂V/∂a V⁻¹ ∂V/∂b),

summed over groups with weight N.  The reduced FIM drops ∂V/∂θ (PopED/PFIM "FO block").
Parameter order: fixed effects, Ω variances, Ω covariances, residual variances; fixed
parameters left out.  Everything is on the variance scale.

This is the reference implementation in plain numpy (one group at a time), kept with the tests:
the batched engine (pkdesign.fim) is checked against it.
"""

from __future__ import annotations

import numpy as np

from pkdesign.errors import DesignError, PkdesignError


def parameter_table(spec) -> tuple:
    """Names and values (variance scale) of the estimated population parameters, in FIM order."""
    rows = [(p.name, p.value) for p in spec.parameters if not p.fixed]
    rows += [(f"omega2({v.parameter})", v.variance) for v in spec.variability if not v.fixed]
    rows += [(f"OMEGA({c.first},{c.second})", c.value) for c in spec.covariances if not c.fixed]
    multi = len(spec.outputs) > 1
    for o in spec.outputs:
        for term in o.error_terms:
            if not term.fixed:
                rows.append((f"sigma2_{term.kind}" + (f"({o.name})" if multi else ""), term.variance))
    return [r[0] for r in rows], np.array([r[1] for r in rows], dtype=float)


def parameter_names(spec) -> list:
    """Names of the estimated population parameters, in FIM order."""
    return parameter_table(spec)[0]


def fo_fim(model, design, fim: str = "full") -> tuple:
    """FO population FIM of ``design`` for a compiled model at its typical values.

    Parameters
    ----------
    model : CompiledModel or CallableModel
    design : Design
    fim : {"full", "reduced"}

    Returns
    -------
    (names, matrix) : (list of str, ndarray of shape (p, p))
    """
    if fim not in ("full", "reduced"):
        raise PkdesignError(f"fim: expected 'full' or 'reduced', got {fim!r}")
    spec = model.spec
    names = parameter_names(spec)
    total = np.zeros((len(names), len(names)))
    for g in design.groups:
        total += g.n * _group_fim(model, spec, g, fim == "full")
    return names, total


def _group_fim(model, spec, group, full: bool) -> np.ndarray:
    t, idx = group.observations(spec.output_names)
    if t.size == 0:
        raise DesignError(f"group {group.name!r}: no sampling times")
    theta = spec.theta
    res = model.evaluate(theta, t, group.regimen, idx, order=2 if full else 1)
    f, d1 = res["f"], res["d1"]
    n_obs = d1.shape[0]
    pnames = spec.parameter_names
    free = [k for k, p in enumerate(spec.parameters) if not p.fixed]

    # random effects: L = ∂f/∂η = d1[:, k] * s_k with s_k = ∂ψ_k/∂η_k at η = 0
    var = list(spec.variability)
    eta_par = [pnames.index(v.parameter) for v in var]
    s = np.array([1.0 if v.model == "additive" else theta[k] for v, k in zip(var, eta_par)])
    ds = np.array([0.0 if v.model == "additive" else 1.0 for v in var])  # ∂s_k/∂θ_k
    L = d1[:, eta_par] * s
    omega = spec.omega

    # residual variance per observation and its derivative in f
    resid = np.zeros(n_obs)
    dresid_df = np.zeros(n_obs)
    res_derivs = []  # ∂V/∂(residual variance parameter), diagonal entries
    for oi, o in enumerate(spec.outputs):
        sel = idx == oi
        for term in o.error_terms:
            if term.kind == "add":
                resid[sel] += term.variance
                diag = np.where(sel, 1.0, 0.0)
            elif term.kind == "prop":
                resid[sel] += term.variance * f[sel] ** 2
                dresid_df[sel] += 2 * term.variance * f[sel]
                diag = np.where(sel, f**2, 0.0)
            else:
                raise PkdesignError(
                    f"output {o.name!r}: the exponential error model is not supported by the FO FIM yet"
                )
            if not term.fixed:
                res_derivs.append(diag)

    V = L @ omega @ L.T + np.diag(resid)
    Vinv = np.linalg.inv(V)
    p_theta = len(free)
    dmu = [d1[:, k] for k in free]
    dV = []
    for k in free:
        if not full:
            dV.append(np.zeros((n_obs, n_obs)))
            continue
        # ∂L/∂θ_k: d2[:, e, k] s_e + δ_{e,k} d1[:, e] ∂s_e/∂θ_e
        dL = res["d2"][:, eta_par, k] * s
        for j, e in enumerate(eta_par):
            if e == k:
                dL[:, j] += d1[:, e] * ds[j]
        dLOL = dL @ omega @ L.T
        dV.append(dLOL + dLOL.T + np.diag(dresid_df * d1[:, k]))
    for j, v in enumerate(var):
        if not v.fixed:
            dV.append(np.outer(L[:, j], L[:, j]))
    vn = [v.parameter for v in var]
    for c in spec.covariances:
        if not c.fixed:
            a, b = vn.index(c.first), vn.index(c.second)
            dV.append(np.outer(L[:, a], L[:, b]) + np.outer(L[:, b], L[:, a]))
    for diag in res_derivs:
        dV.append(np.diag(diag))

    p = len(dV)
    out = np.zeros((p, p))
    VdV = [Vinv @ m for m in dV]
    for a in range(p):
        for b in range(a, p):
            val = 0.5 * np.sum(VdV[a] * VdV[b].T)
            if a < p_theta and b < p_theta:
                val += dmu[a] @ Vinv @ dmu[b]
            out[a, b] = out[b, a] = val
    if not full:  # the reduced FIM has no cross terms between θ and the variance parameters
        out[:p_theta, p_theta:] = 0.0
        out[p_theta:, :p_theta] = 0.0
    return out
