"""A hand-written, structure-aware FO FIM kernel for the warfarin model (the floor ``bench/fim.py`` compares
pkdesign's generic FIM assembly with; not a benchmark itself).

Warfarin, FO, combined residual error r = σ²_add + σ²_prop f², diagonal Ω over the three η's (one per θ);
FIM parameters (θ_1..3, ω_1..3, σ²_prop, σ²_add).  Per schedule, with V = L Ω Lᵀ + diag(r) and its inverse
from a Cholesky factor (no allocation in the loop):

- θθ (mean part): fthᵀ V⁻¹ fth;
- ωω: ∂V/∂ω_k = L_k L_kᵀ is rank one, so ½ tr(V⁻¹ ∂V_k V⁻¹ ∂V_l) = ½ (L_kᵀ V⁻¹ L_l)²;
- σσ and ωσ: ∂V/∂σ² is diagonal (1 or f²): ½ Σ_ij (V⁻¹)_ij² d_i d_j and ½ Σ_i (V⁻¹ L_k)_i² d_i;
- full FIM only, ∂V/∂θ_m = A_m + A_mᵀ + diag(2 σ²_prop f fth_m), A_m = Lth_m Ω Lᵀ: W_m = V⁻¹ ∂V/∂θ_m explicitly,
  then ½ tr(W_m W_m'), ½ (V⁻¹L_k)ᵀ ∂V/∂θ_m (V⁻¹L_k) and ½ Σ_i (W_m V⁻¹)_ii d_i.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def warfarin_fo_floor(f, fth, L, Lth, omega, sp2, sa2, full, out):  # pragma: no cover - compiled
    B = f.shape[0]
    n_chunks = min(B, 64)
    for ch in numba.prange(n_chunks):  # threads over chunks (pkdesign: row ranges on its thread pool), work arrays per chunk
        _rows(f, fth, L, Lth, omega, sp2, sa2, full, out, ch * B // n_chunks, (ch + 1) * B // n_chunks)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _rows(f, fth, L, Lth, omega, sp2, sa2, full, out, lo, hi):  # pragma: no cover - compiled
    n = f.shape[1]
    V = np.empty((n, n))
    Ci = np.empty((n, n))
    Vi = np.empty((n, n))
    X = np.empty((n, 3))
    Y = np.empty((n, 3))
    W = np.empty((3, n, n))
    dV = np.empty((n, n))
    for b in range(lo, hi):
        o = out[b]
        for i in range(8):
            for j in range(8):
                o[i, j] = 0.0
        for i in range(n):
            for j in range(i + 1):
                s = 0.0
                for k in range(3):
                    s += L[b, i, k] * omega[k] * L[b, j, k]
                V[i, j] = s
            V[i, i] += sa2 + sp2 * f[b, i] * f[b, i]
        # Cholesky (lower, in V), then Ci = C⁻¹ and Vi = Ciᵀ Ci
        for j in range(n):
            s = V[j, j]
            for k in range(j):
                s -= V[j, k] * V[j, k]
            d = np.sqrt(s)
            V[j, j] = d
            for i in range(j + 1, n):
                s = V[i, j]
                for k in range(j):
                    s -= V[i, k] * V[j, k]
                V[i, j] = s / d
        for j in range(n):
            for i in range(n):
                Ci[i, j] = 0.0
            Ci[j, j] = 1.0 / V[j, j]
            for i in range(j + 1, n):
                s = 0.0
                for k in range(j, i):
                    s -= V[i, k] * Ci[k, j]
                Ci[i, j] = s / V[i, i]
        for i in range(n):
            for j in range(i + 1):
                s = 0.0
                for k in range(i, n):
                    s += Ci[k, i] * Ci[k, j]
                Vi[i, j] = s
                Vi[j, i] = s
        for i in range(n):
            for a in range(3):
                s = 0.0
                t = 0.0
                for k in range(n):
                    s += Vi[i, k] * fth[b, k, a]
                    t += Vi[i, k] * L[b, k, a]
                X[i, a] = s
                Y[i, a] = t
        for a in range(3):
            for c in range(a + 1):
                s = 0.0
                g = 0.0
                for i in range(n):
                    s += fth[b, i, a] * X[i, c]
                    g += L[b, i, a] * Y[i, c]
                o[a, c] = s
                o[3 + a, 3 + c] = 0.5 * g * g
        for i in range(n):  # σ²_prop (d = f²), σ²_add (d = 1)
            fi2 = f[b, i] * f[b, i]
            for a in range(3):
                y2 = 0.5 * Y[i, a] * Y[i, a]
                o[6, 3 + a] += y2 * fi2
                o[7, 3 + a] += y2
            for j in range(n):
                v2 = 0.5 * Vi[i, j] * Vi[i, j]
                fj2 = f[b, j] * f[b, j]
                o[6, 6] += v2 * fi2 * fj2
                o[7, 6] += v2 * fj2
                o[7, 7] += v2
        if full:
            for m in range(3):
                for i in range(n):
                    for j in range(n):
                        s = 0.0
                        for k in range(3):
                            s += Lth[b, i, k, m] * omega[k] * L[b, j, k] + L[b, i, k] * omega[k] * Lth[b, j, k, m]
                        dV[i, j] = s
                    dV[i, i] += 2.0 * sp2 * f[b, i] * fth[b, i, m]
                for i in range(n):
                    for j in range(n):
                        s = 0.0
                        for k in range(n):
                            s += Vi[i, k] * dV[k, j]
                        W[m, i, j] = s
                for k in range(3):  # θ_m–ω_k: ½ yᵀ ∂V/∂θ_m y, y = V⁻¹ L_k
                    s = 0.0
                    for i in range(n):
                        t = 0.0
                        for j in range(n):
                            t += dV[i, j] * Y[j, k]
                        s += Y[i, k] * t
                    o[3 + k, m] = 0.5 * s
                for i in range(n):  # θ_m–σ²: ½ Σ_i (W_m V⁻¹)_ii d_i
                    s = 0.0
                    for k in range(n):
                        s += W[m, i, k] * Vi[k, i]
                    o[6, m] += 0.5 * s * f[b, i] * f[b, i]
                    o[7, m] += 0.5 * s
            for m in range(3):
                for q in range(m + 1):
                    s = 0.0
                    for i in range(n):
                        for j in range(n):
                            s += W[m, i, j] * W[q, j, i]
                    o[m, q] += 0.5 * s
        for i in range(8):
            for j in range(i):
                o[j, i] = o[i, j]
