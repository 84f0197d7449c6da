"""Linearisation-based approximations: FO, FOI, FOCE, FOCEI (PopED's definitions).

Linearise the model in η around a point η* (η* = 0 for FO/FOI, each of K draws η_i ~ N(0, Ω)
for FOCE/FOCEI):

    E[y] ≈ f(θ, η*) − L η*,   L = ∂f/∂η at η*,
    Var[y] ≈ L Ω Lᵀ + diag(r),

where r is the residual variance, σ²_add + σ²_prop·f², evaluated at η = 0 (FO, FOI, FOCE) or at
η* (FOCEI); with the η–ε interaction (FOI, FOCEI) each proportional term adds
σ²_prop·diag(L Ω Lᵀ), the variance of the product of η and ε.  The normal-model FIM of that
approximation is computed for every linearisation point and averaged (FOCE/FOCEI).

``full=True`` keeps ∂V/∂θ (the full FIM); ``full=False`` drops it (the reduced, block-diagonal
FIM of PopED/PFIM).
"""

from __future__ import annotations

import numpy as np

from ..errors import NonIdentifiableError
from ..kernels.normal_fim import fo_fim_kernel
from .normal import normal_fim


def residual_variance(pp, idx, f_ref, S_diag=None, interaction=False):
    """Residual variance per observation (B, n) at reference predictions ``f_ref`` (B, n)."""
    r = np.zeros(f_ref.shape)
    for e in pp.errors:
        mask = idx == e.output
        if not mask.any():
            continue
        if e.kind == "prop":
            r[:, mask] += e.variance * f_ref[:, mask] ** 2
            if interaction:
                r[:, mask] += e.variance * S_diag[:, mask]
        else:  # add; exp is additive on the log scale
            r[:, mask] += e.variance
    return r


def fo_fims(pp, idx, P, *, interaction: bool, full: bool, where: str = "") -> np.ndarray:
    """FO/FOI per-subject FIMs (B, p, p) at η = 0 by the fused numba kernel (no (B, p, n, n) temporaries)."""
    B, n = P.f.shape
    E = pp.n_eta
    om = np.array(pp.omega_free, dtype=np.int64).reshape(-1, 2)
    errs = pp.errors
    Lth = P.Lth if full else np.zeros((B, n, E, pp.p_theta))
    out = np.empty((B, pp.p, pp.p))
    fo_fim_kernel(np.ascontiguousarray(P.f), np.ascontiguousarray(P.fth), np.ascontiguousarray(P.L),
                  np.ascontiguousarray(Lth), np.ascontiguousarray(pp.omega, dtype=float), om[:, 0].copy(),
                  om[:, 1].copy(), np.array([e.output for e in errs], dtype=np.int64),
                  np.array([e.kind == "prop" for e in errs]), np.array([e.variance for e in errs], dtype=float),
                  np.array([not e.fixed for e in errs]), np.asarray(idx, dtype=np.int64), full, interaction, out)
    if np.isnan(out).any():
        raise NonIdentifiableError(
            f"{where}: the covariance of the observations is singular (no residual error and more samples "
            "than random effects, or replicate samples without residual error)")
    return out


def linearized_fims(pp, idx, P0, Ps, eta_star, *, interaction: bool, resid_at_star: bool, full: bool,
                    where: str = "") -> np.ndarray:
    """Per-subject FIMs (B, p, p) of the linearised model, one per linearisation point.

    Parameters
    ----------
    pp : PopulationParameters
    idx : ndarray of int (n,)
        Output of each observation.
    P0 : Predictions at η = 0 (batch 1 or B)
    Ps : Predictions at the linearisation points η* (batch B; may be P0 itself)
    eta_star : ndarray (B, n_eta) or None (η* = 0)
    """
    B, n = Ps.f.shape
    pt, E = pp.p_theta, pp.n_eta
    Om = pp.omega
    L = Ps.L
    LO = L @ Om
    S = LO @ np.swapaxes(L, 1, 2)
    S_diag = np.einsum("bnj,bnj->bn", LO, L)
    mu_th = Ps.fth
    if eta_star is not None and E and np.any(eta_star):
        mu_th = mu_th - np.einsum("bnjm,bj->bnm", Ps.Lth, eta_star)
    ref = Ps if resid_at_star else P0
    f_ref = np.broadcast_to(ref.f, (B, n))
    r = residual_variance(pp, idx, f_ref, S_diag, interaction)
    V = S.copy()
    V[:, np.arange(n), np.arange(n)] += r

    prop = [(e.variance, idx == e.output) for e in pp.errors if e.kind == "prop"]
    dV = np.zeros((B, pp.p, n, n))
    diag = (slice(None), slice(None), np.arange(n), np.arange(n))
    if full and pt:
        DL = np.einsum("bnjm,bij->bmni", Ps.Lth, LO)  # ∂L/∂θ_m Ω Lᵀ, (B, pt, n, n)
        dV[:, :pt] = DL + np.swapaxes(DL, 2, 3)
        fth_ref = np.broadcast_to(ref.fth, (B, n, pt))
        for s2, mask in prop:
            add = 2 * s2 * f_ref[:, None, :] * np.swapaxes(fth_ref, 1, 2)
            if interaction:
                add = add + 2 * s2 * np.diagonal(DL, axis1=2, axis2=3)
            dV[:, :pt][diag] += add * mask
    k = pt
    for i, j in pp.omega_free:
        outer = L[:, :, i, None] * L[:, None, :, j]
        if i != j:
            outer = outer + np.swapaxes(outer, 1, 2)
        dV[:, k] = outer
        if interaction:
            for s2, mask in prop:
                dV[:, k][:, np.arange(n), np.arange(n)] += s2 * np.diagonal(outer, axis1=1, axis2=2) * mask
        k += 1
    for e in pp.free_errors:
        mask = idx == e.output
        if e.kind == "prop":
            g = f_ref ** 2 + (S_diag if interaction else 0.0)
        else:
            g = np.ones((B, n))
        dV[:, k][:, np.arange(n), np.arange(n)] = g * mask
        k += 1
    return normal_fim(mu_th, V, dV, where)
