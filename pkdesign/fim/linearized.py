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
from ..kernels.normal_fim import UNUSED_4D, fo_fim_kernel, mean_derivative_rows
from .residual import zero_variance_error
from .structured import StructuredFIM, structured_fims

#: subjects with more observations than this use the structured O(n) path (Woodbury); below it the
#: dense numba kernel is faster (measured crossover on warfarin: ~48 observations)
STRUCTURED_ABOVE = 48
#: linearisations (rows) from which ``mean_derivative`` runs compiled (FOCE/FOCEI: draws x schedules)
MEAN_KERNEL_ROWS = 64




def linearized_fims(pp, idx, P0, Ps, eta_star, *, interaction: bool, resid_at_star: bool, full: bool,
                    where: str = "", times=None) -> np.ndarray:
    """Per-subject FIMs (B, p, p) of the linearised model, one per linearisation point.

    Parameters
    ----------
    pp : PopulationParameters
    idx : ndarray of int (n,)
        Output of each observation.
    P0 : Predictions at η = 0 (batch 1 or B)
    Ps : Predictions at the linearisation points η* (batch B; may be P0 itself)
    eta_star : ndarray (B, n_eta) or None (η* = 0)

    The mean derivative is computed here; V, ∂V and the normal FIM by the fused numba kernel for batches, by
    numpy for one linearisation (:meth:`StructuredFIM.dense`: the same FIM to rounding, and no compilation: the
    first FIM of an installation compiles only the model's kernel), by the structured O(n) path for many samples.
    """
    B, n = Ps.f.shape
    if n > STRUCTURED_ABOVE:  # O(n) through the structure of V instead of O(n^3) dense algebra
        return _structured(pp, idx, P0, Ps, eta_star, interaction=interaction, resid_at_star=resid_at_star,
                           full=full, where=where, times=times)
    mu_th = mean_derivative(Ps, eta_star)
    ref = Ps if resid_at_star else P0
    if B == 1:
        F = StructuredFIM(pp, full=full, interaction=interaction).dense(
            idx, mu_th[0], ref.f[0], ref.fth[0], Ps.L[0], Ps.Lth[0] if full else None,
            None if times is None else np.asarray(times, dtype=float).reshape(-1), where)
        if F is not None:
            return F[None]
        # not positive definite (or not finite): the kernel's path below explains it
    # (a writable contiguous array: numba compiles read-only broadcast views separately, and slower)
    f_ref = ref.f if ref.f.shape[0] == B else np.repeat(ref.f, B, axis=0)
    fth_ref = ref.fth if ref.fth.shape[0] == B else np.repeat(ref.fth, B, axis=0)
    Lth = Ps.Lth if full else UNUSED_4D  # (read only for the full FIM)
    out = np.empty((B, pp.p, pp.p))
    finite = fo_fim_kernel(np.ascontiguousarray(mu_th), np.ascontiguousarray(f_ref), np.ascontiguousarray(fth_ref),
                           np.ascontiguousarray(Ps.L), np.ascontiguousarray(Lth), *pp.variance_kernel_arrays(),
                           np.asarray(idx, dtype=np.int64), full, interaction, out)
    if not finite and np.isnan(out).any():
        singular_covariance(pp, idx, f_ref, Ps.L, mu_th, times, where)
    return out


def mean_derivative(Ps, eta_star) -> np.ndarray:
    """∂E[y]/∂θ of the linearisation at η* (B, n, p_theta): ∂f/∂θ − Σ_e ∂²f/∂η_e∂θ η*_e, the sum taken over e in
    order, element by element (the same numbers whatever the batch: a stacked ``matmul`` rounds differently
    with the number of rows); batches of ``MEAN_KERNEL_ROWS`` rows or more by the compiled twin
    (``kernels.normal_fim.mean_derivative_rows``: the same operations, bit for bit, across threads)."""
    if eta_star is None or not eta_star.shape[1] or not np.any(eta_star):
        return Ps.fth
    if Ps.fth.shape[0] >= MEAN_KERNEL_ROWS:
        out = np.empty(Ps.fth.shape)
        mean_derivative_rows(np.ascontiguousarray(Ps.fth), np.ascontiguousarray(Ps.Lth),
                             np.ascontiguousarray(eta_star, dtype=float), out)
        return out
    shift = Ps.Lth[:, :, 0, :] * eta_star[:, None, 0, None]
    for e in range(1, eta_star.shape[1]):
        shift += Ps.Lth[:, :, e, :] * eta_star[:, None, e, None]
    return Ps.fth - shift


def _structured(pp, idx, P0, Ps, eta_star, *, interaction, resid_at_star, full, where, times):
    mu_th = mean_derivative(Ps, eta_star)
    ref = Ps if resid_at_star else P0
    f_ref = np.broadcast_to(ref.f, Ps.f.shape)
    fth_ref = np.broadcast_to(ref.fth, Ps.fth.shape)
    Lth = Ps.Lth if full else None
    return structured_fims(pp, np.asarray(idx), mu_th, f_ref, fth_ref, Ps.L, Lth, full=full, interaction=interaction,
                           times=times, where=where)


def singular_covariance(pp, idx, f_ref, L, dmu, times, where: str):
    """Raise the error that explains why the covariance of the observations is singular, naming the
    first sample whose variance is zero although its prediction depends on the parameters."""
    S = np.einsum("bne,ef,bnf->bn", L, np.asarray(pp.omega, dtype=float), L) if L.shape[2] else 0.0
    vdiag = pp.residual.variance(idx, f_ref ** 2, f_ref) + S
    moves = (np.abs(dmu).sum(axis=2) > 0) | (np.abs(L).sum(axis=2) > 0)
    hit = np.argwhere((vdiag <= 0) & moves)
    if hit.size:
        b, i = hit[0]
        t = None if times is None else np.asarray(times, dtype=float)
        raise zero_variance_error(where, idx[i], None if t is None else (t[b, i] if t.ndim == 2 else t[i]), f_ref[b, i])
    raise NonIdentifiableError(
        f"{where}: the covariance of the observations is singular (no residual error and more samples "
        "than random effects, or replicate samples without residual error)")


def fo_fims(pp, idx, P, *, interaction: bool, full: bool, where: str = "", times=None) -> np.ndarray:
    """FO/FOI per-subject FIMs (B, p, p) at η = 0."""
    return linearized_fims(pp, idx, P, P, None, interaction=interaction, resid_at_star=False, full=full, where=where,
                           times=times)
