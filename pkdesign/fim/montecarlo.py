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


def mc_fim(pp, idx, P, *, full: bool, where: str = "") -> np.ndarray:
    """Per-subject FIM (p, p) from predictions ``P`` at S draws (batch axis = draws)."""
    S, n = P.f.shape
    pt = pp.p_theta
    f, fth, L, Le = P.f, P.fth, P.L, P.Leta
    m = f.mean(0)
    Eff = f.T @ f / S
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
    dmu[:, :pt] = fth.mean(0)
    if full:
        Efth = np.einsum("snm,si->mni", fth, f) / S  # E[f_i ∂f_n/∂θ_m] -> (m, n, i)
        dEff = Efth + np.swapaxes(Efth, 1, 2)
        mth = dmu[:, :pt].T
        dV[:pt] = dEff - mth[:, :, None] * m[None, None, :] - m[None, :, None] * mth[:, None, :]
        dV[:pt, diag, diag] += prop * np.diagonal(dEff, axis1=1, axis2=2) + cross * mth
    for k, (i, j) in enumerate(pp.omega_free):
        w = 0.5 if i == j else 1.0
        dm = w * Le[:, :, i, j].mean(0)
        # ∂²(f_a f_b)/∂η_i∂η_j = Le_a f_b + L_ai L_bj + L_aj L_bi + f_a Le_b
        T = Le[:, :, i, j].T @ f / S + L[:, :, i].T @ L[:, :, j] / S
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
