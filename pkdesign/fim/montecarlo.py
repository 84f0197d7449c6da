"""MC approximation: the marginal mean and covariance of the observations by (quasi-)Monte Carlo.

Leonov & Aliev's Monte-Carlo approximation: with draws η_s ~ N(0, Ω),

    m = E[f(θ, η)],   V = Cov_η[f] + E[diag r(f)],

and their parameter derivatives from the same draws, plugged into the normal-model FIM.  The
derivatives with respect to θ differentiate under the expectation (∂f/∂θ at each draw); those
with respect to Ω use Price's theorem, ∂E[g(η)]/∂Ω_ij = E[∂²g/∂η_i∂η_j] (times ½ on the
diagonal), which needs only the second η-derivatives the kernels already give and has much lower
variance than the score-function estimator.  Unlike FO, the mean depends on Ω, so the full FIM
has Ω–θ cross terms from the mean as well.
"""

from __future__ import annotations

import numpy as np

from .normal import normal_fim


def mc_moments(pp, P, *, full: bool) -> dict:
    """Sums over the draws of predictions ``P`` (batch axis = draws) of everything :func:`mc_fim` averages: the
    moments of one chunk of draws; chunks combine by adding them (:func:`add_moments`)."""
    f, fth, L, Le = P.f, P.fth, P.L, P.Leta
    out = {"S": f.shape[0], "f": f.sum(0), "ff": f.T @ f, "fth": fth.sum(0)}
    if full:
        out["fth_f"] = np.einsum("snm,si->mni", fth, f)  # Σ f_i ∂f_n/∂θ_m -> (m, n, i)
    pairs = list(pp.omega_free)
    out["le"] = np.stack([Le[:, :, i, j].sum(0) for i, j in pairs]) if pairs else np.zeros((0, f.shape[1]))
    # Σ ∂²f_a/∂η_i∂η_j f_b + ∂f_a/∂η_i ∂f_b/∂η_j, per estimated Ω entry (i, j)
    out["le_f"] = (np.stack([Le[:, :, i, j].T @ f + L[:, :, i].T @ L[:, :, j] for i, j in pairs]) if pairs
                   else np.zeros((0, f.shape[1], f.shape[1])))
    return out


def add_moments(a: dict, b: dict) -> dict:
    """The moments of two chunks of draws together."""
    return {k: a[k] + b[k] for k in a}


def mc_fim(pp, idx, P, *, full: bool, where: str = "") -> np.ndarray:
    """Per-subject FIM (p, p) from predictions ``P`` at S draws (batch axis = draws)."""
    return mc_fim_from_moments(pp, idx, mc_moments(pp, P, full=full), full=full, where=where)


def mc_fim_from_moments(pp, idx, mom: dict, *, full: bool, where: str = "") -> np.ndarray:
    """Per-subject FIM (p, p) from the summed moments of all draws (:func:`mc_moments`)."""
    S = mom["S"]
    n = mom["f"].size
    pt = pp.p_theta
    m = mom["f"] / S
    Eff = mom["ff"] / S
    V = Eff - np.outer(m, m)
    res = pp.residual
    prop = res.prop_weight(idx)  # E[r] = additive + σ²_prop E[f²] (+ 2ab E[f]): derivatives follow E[f²]'s
    cross = res.cross_weight(idx)  # (and E[f]'s: combined1)
    Ef2 = np.diag(Eff)
    diag = np.arange(n)
    V[diag, diag] += res.variance(idx, Ef2, m)

    n_om = len(pp.omega_free)
    dmu = np.zeros((n, pt + n_om))
    dV = np.zeros((pp.p, n, n))
    dmu[:, :pt] = mom["fth"] / S
    if full:
        Efth = mom["fth_f"] / S  # E[f_i ∂f_n/∂θ_m] -> (m, n, i)
        dEff = Efth + np.swapaxes(Efth, 1, 2)
        mth = dmu[:, :pt].T
        dV[:pt] = dEff - mth[:, :, None] * m[None, None, :] - m[None, :, None] * mth[:, None, :]
        dV[:pt, diag, diag] += prop * np.diagonal(dEff, axis1=1, axis2=2) + cross * mth
    for k, (i, j) in enumerate(pp.omega_free):
        w = 0.5 if i == j else 1.0
        dm = w * mom["le"][k] / S
        # ∂²(f_a f_b)/∂η_i∂η_j = Le_a f_b + L_ai L_bj + L_aj L_bi + f_a Le_b
        T = mom["le_f"][k] / S
        dEff = w * (T + T.T)
        dC = dEff - np.outer(dm, m) - np.outer(m, dm)
        dC[diag, diag] += prop * np.diag(dEff) + cross * dm
        if full:
            dmu[:, pt + k] = dm
        dV[pt + k] = dC
    k = pt + n_om
    for g in res.columns(idx, Ef2, m):
        dV[k, diag, diag] = g
        k += 1
    return normal_fim(dmu[None], V[None], dV[None], where)[0]
