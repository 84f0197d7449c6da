"""Batched normal-model FIM in numba (one pass per batch row, no temporaries across rows).

    out[b, a, c] = Σ_{k<q} ... mean term  dmu[b,:,a]ᵀ V⁻¹ dmu[b,:,c]  (a, c < q)
                 + ½ tr(V⁻¹ dV[b,a] V⁻¹ dV[b,c])

V⁻¹ from a Cholesky factorisation; M_a = V⁻¹ dV_a once per parameter, then the trace term is
Σ_ij M_a[i,j] M_c[j,i].  A row whose V is not positive definite gets NaN (the caller reports it).
Shapes: dmu (B, n, q), V (B, n, n), dV (B, p, n, n), out (B, p, p).
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def normal_fim_kernel(dmu, V, dV, out):  # pragma: no cover - compiled
    B, n, q = dmu.shape
    p = dV.shape[1]
    for b in prange(B):
        # Cholesky V = C Cᵀ
        C = np.zeros((n, n))
        ok = True
        for j in range(n):
            s = V[b, j, j]
            for k in range(j):
                s -= C[j, k] * C[j, k]
            if s <= 0.0:
                ok = False
                break
            C[j, j] = np.sqrt(s)
            for i in range(j + 1, n):
                s = V[b, i, j]
                for k in range(j):
                    s -= C[i, k] * C[j, k]
                C[i, j] = s / C[j, j]
        if not ok:
            for a in range(p):
                for c in range(p):
                    out[b, a, c] = np.nan
            continue
        # V⁻¹ = C⁻ᵀ C⁻¹
        Ci = np.zeros((n, n))
        for i in range(n):
            Ci[i, i] = 1.0 / C[i, i]
            for j in range(i):
                s = 0.0
                for k in range(j, i):
                    s -= C[i, k] * Ci[k, j]
                Ci[i, j] = s / C[i, i]
        Vi = np.zeros((n, n))
        for i in range(n):
            for j in range(i + 1):
                s = 0.0
                for k in range(i, n):
                    s += Ci[k, i] * Ci[k, j]
                Vi[i, j] = s
                Vi[j, i] = s
        # mean term
        for a in range(q):
            for c in range(a + 1):
                s = 0.0
                for i in range(n):
                    t = 0.0
                    for j in range(n):
                        t += Vi[i, j] * dmu[b, j, c]
                    s += dmu[b, i, a] * t
                out[b, a, c] = s
        for a in range(p):
            for c in range(a + 1):
                if a >= q or c >= q:
                    out[b, a, c] = 0.0
        # trace term
        M = np.empty((p, n, n))
        nz = np.zeros(p, dtype=np.bool_)
        for a in range(p):
            for i in range(n):
                for j in range(n):
                    if dV[b, a, i, j] != 0.0:
                        nz[a] = True
            if nz[a]:
                for i in range(n):
                    for j in range(n):
                        s = 0.0
                        for k in range(n):
                            s += Vi[i, k] * dV[b, a, k, j]
                        M[a, i, j] = s
        for a in range(p):
            if not nz[a]:
                continue
            for c in range(a + 1):
                if not nz[c]:
                    continue
                s = 0.0
                for i in range(n):
                    for j in range(n):
                        s += M[a, i, j] * M[c, j, i]
                out[b, a, c] += 0.5 * s
        for a in range(p):
            for c in range(a):
                out[b, c, a] = out[b, a, c]
