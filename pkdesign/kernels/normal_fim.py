"""Batched normal-model FIM in numba, and the fused FO/FOI kernel built on it.

    FIM_ac = ∂μᵀ/∂α_a V⁻¹ ∂μ/∂α_c  (a, c < q)  +  ½ tr(V⁻¹ ∂V/∂α_a V⁻¹ ∂V/∂α_c)

``row_fim_work`` does one batch row: V⁻¹ from a Cholesky factorisation, M_a = V⁻¹ dV_a once per
parameter (skipped when dV_a is zero), then the trace term Σ_ij M_a[i,j] M_c[j,i].  A row whose
V is not positive definite gets NaN (the caller reports it).

``normal_fim_kernel``: dmu (B, n, q), V (B, n, n), dV (B, p, n, n) -> out (B, p, p).
``fo_fim_kernel``: builds V and ∂V of a linearisation (FO/FOI at η = 0, FOCE/FOCEI at draws) from
the prediction derivatives row by row (no (B, p, n, n) temporaries), then ``row_fim_work``.

Each is one serial kernel over a row range (``lo, hi``), compiled with its array arguments declared ``noalias``
(:class:`NoAliasCompiler`: ~8% faster per row, what numba's ``prange`` body gets); large batches are split into
row ranges across pkdesign's thread pool.  (Until issue 15's last step they had ``prange`` twins, whose compilation
took 11 s, up to 23 s on a busy machine, once per installation, for the same speed.)
"""

import numpy as np

from .jit import CachedJit, GuardedKernel, NoAliasCompiler
from .threads import split

#: this module's numba cache files are verified before first use (see pkdesign.kernels.jit)
_GUARD = CachedJit(label="FIM kernels")


def _cached(**options):
    return lambda f: _GUARD.jit(f, **options)


@_cached(nogil=True, error_model="numpy", inline="always")
def cholesky_inverse(V, C, Ci, Vi):  # pragma: no cover - compiled
    """V = C Cᵀ (Cholesky, C lower triangular), Ci = C⁻¹ (lower triangular) and Vi = V⁻¹ = Ciᵀ Ci, all (n, n), the
    upper triangles of C and Ci neither written nor read; False (the arrays partly written) when V is not positive
    definite."""
    n = V.shape[0]
    for j in range(n):
        s = V[j, j]
        for k in range(j):
            s -= C[j, k] * C[j, k]
        if s <= 0.0:
            return False
        C[j, j] = np.sqrt(s)
        for i in range(j + 1, n):
            s = V[i, j]
            for k in range(j):
                s -= C[i, k] * C[j, k]
            C[i, j] = s / C[j, j]
    for i in range(n):
        Ci[i, i] = 1.0 / C[i, i]
        for j in range(i):
            s = 0.0
            for k in range(j, i):
                s -= C[i, k] * Ci[k, j]
            Ci[i, j] = s / C[i, i]
    for i in range(n):
        for j in range(i + 1):
            s = 0.0
            for k in range(i, n):
                s += Ci[k, i] * Ci[k, j]
            Vi[i, j] = s
            Vi[j, i] = s
    return True


@_cached(nogil=True, error_model="numpy", inline="always")
def unit_variance_if_silent(dmu, V, dV, kind):  # pragma: no cover - compiled
    """Set to 1 the variance of each observation that carries no information: zero variance, zero covariances and
    no derivative (a pre-dose sample with a proportional-only error: y = 0 whatever the parameters), instead of
    leaving V singular.  dmu (n, q), V (n, n), dV (p, n, n) with ``kind`` as in ``row_fim_work``.  It changes
    neither the FIM nor the FO likelihood's optimum: the observation's term (½ e² with e = 0 when simulated) does not
    depend on the parameters."""
    n, q = dmu.shape
    p = dV.shape[0]
    for i in range(n):
        if V[i, i] != 0.0:
            continue
        silent = True
        for c in range(q):
            if dmu[i, c] != 0.0:
                silent = False
        for j in range(n):
            if V[i, j] != 0.0:
                silent = False
        for a in range(p):
            if kind[a] == 3:
                continue
            if kind[a] == 1:
                if dV[a, i, i] != 0.0:
                    silent = False
            elif kind[a] == 2:
                if dV[a, 0, i] != 0.0:
                    silent = False
            else:
                for j in range(n):
                    if dV[a, i, j] != 0.0 or dV[a, j, i] != 0.0:
                        silent = False
        if silent:
            V[i, i] = 1.0


@_cached(nogil=True, error_model="numpy", pipeline_class=NoAliasCompiler)
def row_fim_work(dmu, V, dV, out, C, Ci, Vi, M, nz, kind):  # pragma: no cover - compiled
    """The FIM of one row, dmu (n, q), V (n, n), dV (p, n, n) -> out (p, p), with caller-supplied work arrays C, Ci,
    Vi (n, n; C zeroed once: its upper triangle is never written), M (p, n, n), nz (p,).  kind[a] = 1 declares
    dV[a] diagonal, kind[a] = 2 rank one, dV[a] = u uᵀ with u given in the row dV[a, 0] (the rest of dV[a] is not
    read), kind[a] = 3 zero (dV[a] is not read: the fixed effects of a reduced FIM), else dense.  M's rows
    M[c, 0] hold C⁻¹ dmu_c first (q <= p).  No argument may overlap another (compiled ``noalias``).  A rank-one
    derivative (the variance of one random effect under FO/FOCE: L_k L_kᵀ) costs V⁻¹u (n²) instead of V⁻¹ dV[a]
    (n³): ½ tr(V⁻¹ dV_a V⁻¹ dV_c) is ½ (u_aᵀ V⁻¹ u_c)² against another rank-one one, ½ Σ_i (V⁻¹u_a)_i² d_i
    against a diagonal one and ½ (V⁻¹u_a)ᵀ dV_c (V⁻¹u_a) against a dense one.

    An observation with zero variance, zero covariances and no derivative carries no information: its variance
    is set to 1 in ``V`` (:func:`unit_variance_if_silent`; the FIM is unchanged) instead of making V singular."""
    n, q = dmu.shape
    p = dV.shape[0]
    unit_variance_if_silent(dmu, V, dV, kind)
    if not cholesky_inverse(V, C, Ci, Vi):
        for a in range(p):
            for c in range(p):
                out[a, c] = np.nan
        return
    for a in range(p):
        for c in range(a + 1):
            out[a, c] = 0.0
    # the mean part dmuᵀ V⁻¹ dmu = (C⁻¹ dmu)ᵀ (C⁻¹ dmu); C⁻¹ dmu_c is kept in M[c, 0] (M is filled only below)
    for c in range(q):
        for i in range(n):
            s = 0.0
            for j in range(i + 1):
                s += Ci[i, j] * dmu[j, c]
            M[c, 0, i] = s
    for c in range(q):
        for a in range(c, q):
            s = 0.0
            for i in range(n):
                s += M[a, 0, i] * M[c, 0, i]
            out[a, c] = s
    has_dense = False  # a dense derivative pairs with a diagonal one through M; without one, M of a diagonal is skipped
    for a in range(p):
        if kind[a] == 0:
            has_dense = True
    for a in range(p):
        nz[a] = False
        if kind[a] == 3:
            continue
        if kind[a] == 2:  # y = V⁻¹u in M[a, 0]
            for i in range(n):
                if dV[a, 0, i] != 0.0:
                    nz[a] = True
            if nz[a]:
                for i in range(n):
                    s = 0.0
                    for k in range(n):
                        s += Vi[i, k] * dV[a, 0, k]
                    M[a, 0, i] = s
            continue
        if kind[a] == 1:
            for i in range(n):
                if dV[a, i, i] != 0.0:
                    nz[a] = True
            if nz[a] and has_dense:
                for i in range(n):
                    for j in range(n):
                        M[a, i, j] = Vi[i, j] * dV[a, j, j]
            elif nz[a]:  # w_i = Σ_j (V⁻¹)_ij² d_a,j in M[a, 0] (every diagonal–diagonal pair with a uses it)
                for i in range(n):
                    w = 0.0
                    for j in range(n):
                        w += Vi[i, j] * Vi[i, j] * dV[a, j, j]
                    M[a, 0, i] = w
            continue
        for i in range(n):
            for j in range(n):
                if dV[a, i, j] != 0.0:
                    nz[a] = True
        if nz[a]:
            for i in range(n):
                for j in range(n):
                    s = 0.0
                    for k in range(n):
                        s += Vi[i, k] * dV[a, k, j]
                    M[a, i, j] = s
    for a in range(p):
        if not nz[a]:
            continue
        for c in range(a + 1):
            if not nz[c]:
                continue
            s = 0.0
            if kind[a] == 2 and kind[c] == 2:
                for i in range(n):
                    s += dV[a, 0, i] * M[c, 0, i]
                s = s * s
            elif kind[a] == 2 or kind[c] == 2:
                r, o = (a, c) if kind[a] == 2 else (c, a)  # r rank one, o the other
                if kind[o] == 1:
                    for i in range(n):
                        s += M[r, 0, i] * M[r, 0, i] * dV[o, i, i]
                else:
                    for i in range(n):
                        w = 0.0
                        for j in range(n):
                            w += dV[o, i, j] * M[r, 0, j]
                        s += M[r, 0, i] * w
            elif kind[a] == 1 and kind[c] == 1:  # tr(V⁻¹D_a V⁻¹D_c) = Σ_ij (V⁻¹)_ij² d_a,j d_c,i
                if has_dense:
                    for i in range(n):
                        w = 0.0
                        for j in range(n):
                            w += Vi[i, j] * Vi[i, j] * dV[a, j, j]
                        s += w * dV[c, i, i]
                else:
                    for i in range(n):
                        s += M[a, 0, i] * dV[c, i, i]
            else:
                for i in range(n):
                    for j in range(n):
                        s += M[a, i, j] * M[c, j, i]
            out[a, c] += 0.5 * s
    for a in range(p):
        for c in range(a):
            out[c, a] = out[a, c]


def _normal_rows(lo, hi, dmu, V, dV, out):  # pragma: no cover - compiled
    """Rows lo .. hi - 1 of the normal-model FIM: dmu (B, n, q), V (B, n, n), dV (B, p, n, n) -> out (B, p, p), every
    ∂V dense; one set of work arrays for all the rows (``row_fim_work`` writes C's lower triangle only)."""
    n = dmu.shape[1]
    p = dV.shape[1]
    C, Ci, Vi, M = np.zeros((n, n)), np.empty((n, n)), np.empty((n, n)), np.empty((p, n, n))
    nz = np.zeros(p, dtype=np.bool_)
    kind = np.zeros(p, dtype=np.int64)
    for b in range(lo, hi):
        row_fim_work(dmu[b], V[b], dV[b], out[b], C, Ci, Vi, M, nz, kind)


@_cached(nogil=True, error_model="numpy", inline="always")
def row_work(n, E, p):  # pragma: no cover - compiled
    """Work arrays for one row's V and ∂V and their factors: LO (n, E), V (n, n), Sd (n,), dV (p, n, n), C (n, n)
    (zeroed: its upper triangle is never written), Ci (n, n), Vi (n, n)."""
    return (np.zeros((n, E)), np.empty((n, n)), np.empty(n), np.zeros((p, n, n)), np.zeros((n, n)),
            np.empty((n, n)), np.empty((n, n)))


@_cached(nogil=True, error_model="numpy", inline="always")
def derivative_kinds(p, pt, om_i, om_j, interaction, full):  # pragma: no cover - compiled
    """The structure of each ∂V/∂α_a for ``row_fim_work`` (p,): 1 diagonal for the residual variances (after the
    pt fixed effects and the Ω entries om_i/om_j), 2 rank one for a random effect's variance (L_k L_kᵀ; not with
    the FOI interaction), 3 zero for the fixed effects of a reduced FIM, else 0 (dense)."""
    n_om = om_i.shape[0]
    kind = np.zeros(p, dtype=np.int64)
    for r in range(pt + n_om, p):
        kind[r] = 1
    for k in range(n_om):
        if om_i[k] == om_j[k] and not interaction:
            kind[pt + k] = 2
    if not full:
        for m in range(pt):
            kind[m] = 3
    return kind


@_cached(nogil=True, error_model="numpy", inline="always")
def linearised_variance(L, omega, LO, V, Sd):  # pragma: no cover - compiled
    """One row's V = L Ω Lᵀ (n, n; its lower triangle computed, mirrored) from L (n, E) = ∂f/∂η and Ω (E, E);
    LO = L Ω (n, E) and Sd = diag(V) (n,) are kept (the derivatives and the FOI interaction use them)."""
    n, E = L.shape
    for i in range(n):
        for e in range(E):
            s = 0.0
            for k in range(E):
                s += L[i, k] * omega[k, e]
            LO[i, e] = s
    for i in range(n):
        for j in range(i + 1):
            s = 0.0
            for e in range(E):
                s += LO[i, e] * L[j, e]
            V[i, j] = s
            V[j, i] = s
        Sd[i] = V[i, i]


@_cached(nogil=True, error_model="numpy", inline="always")
def clear_derivatives(dV, kind):  # pragma: no cover - compiled
    """Zero the entries of dV (p, n, n) that ``row_fim_work`` reads and the builders below only add to: all of a
    dense derivative, the diagonal of a diagonal one (kind 1); rank-one (2) and zero (3) ones are left alone."""
    p, n = dV.shape[0], dV.shape[1]
    for a in range(p):
        if kind[a] == 2 or kind[a] == 3:
            continue  # rank one: written by omega_derivatives (its row 0 only); zero: never read
        if kind[a] == 1:  # diagonal: only the diagonal is read
            for i in range(n):
                dV[a, i, i] = 0.0
            continue
        for i in range(n):
            for j in range(n):
                dV[a, i, j] = 0.0


@_cached(nogil=True, error_model="numpy", inline="always")
def add_residual_variance(V, f, Sd, idx, err_out, err_prop, err_var, err_ab,
                          interaction):  # pragma: no cover - compiled
    """Add the residual variance of each observation to the diagonal of V (n, n): σ² (additive), σ² f² + 2ρab f
    (proportional, ``err_ab`` the combined-error cross term), plus σ² Sd under the FOI interaction."""
    n = V.shape[0]
    for t in range(err_out.shape[0]):
        for i in range(n):
            if idx[i] == err_out[t]:
                if err_prop[t]:
                    V[i, i] += err_var[t] * f[i] * f[i] + 2.0 * err_ab[t] * f[i]
                    if interaction:
                        V[i, i] += err_var[t] * Sd[i]
                else:
                    V[i, i] += err_var[t]


@_cached(nogil=True, error_model="numpy", inline="always")
def theta_derivatives(dV, Lth, LO, f, fth, idx, err_out, err_prop, err_var, err_ab,
                      interaction):  # pragma: no cover - compiled
    """Add ∂V/∂θ_m (m < pt, rows 0 .. pt-1 of dV) of the full FIM: Lθ Ω Lᵀ + L Ω Lθᵀ with Lth (n, E, pt) and
    LO = L Ω, plus the θ-derivative of proportional residual variances (fth (n, pt) = ∂f/∂θ)."""
    n, E, pt = Lth.shape
    for m in range(pt):
        for i in range(n):
            for j in range(n):
                s = 0.0
                for e in range(E):
                    s += Lth[i, e, m] * LO[j, e]
                dV[m, i, j] += s
                dV[m, j, i] += s
        for t in range(err_out.shape[0]):
            if err_prop[t]:
                for i in range(n):
                    if idx[i] == err_out[t]:
                        dV[m, i, i] += 2.0 * (err_var[t] * f[i] + err_ab[t]) * fth[i, m]
                        if interaction:
                            s = 0.0
                            for e in range(E):
                                s += Lth[i, e, m] * LO[i, e]
                            dV[m, i, i] += 2.0 * err_var[t] * s


@_cached(nogil=True, error_model="numpy", inline="always")
def omega_derivatives(dV, L, om_i, om_j, kind, pt, idx, err_out, err_prop, err_var,
                      interaction):  # pragma: no cover - compiled
    """∂V/∂Ω_ac into rows pt .. pt + n_om - 1 of dV: L_a L_cᵀ (+ its transpose off the diagonal of Ω); a rank-one
    one (kind 2) as its vector L_a in row 0; under the FOI interaction plus σ² L_a L_c on proportional
    observations."""
    n = L.shape[0]
    for k in range(om_i.shape[0]):
        a, c = om_i[k], om_j[k]
        if kind[pt + k] == 2:
            for i in range(n):
                dV[pt + k, 0, i] = L[i, a]
            continue
        for i in range(n):
            for j in range(n):
                v = L[i, a] * L[j, c]
                if a != c:
                    v += L[i, c] * L[j, a]
                dV[pt + k, i, j] = v
        if interaction:
            for t in range(err_out.shape[0]):
                if err_prop[t]:
                    for i in range(n):
                        if idx[i] == err_out[t]:
                            dV[pt + k, i, i] += err_var[t] * L[i, a] * L[i, c] * (1.0 if a == c else 2.0)


@_cached(nogil=True, error_model="numpy", inline="always")
def residual_derivatives(dV, f, Sd, r, idx, err_out, err_prop, err_var, err_free, err_ab,
                         interaction):  # pragma: no cover - compiled
    """∂V/∂σ²_t of the estimated residual terms into the diagonals of rows r, r + 1, ... of dV: 1 (additive),
    f² (+ Sd under the interaction) for proportional ones, plus (ab/σ²_t) f for a combined error's cross term."""
    n = f.shape[0]
    for t in range(err_out.shape[0]):
        if not err_free[t]:
            continue
        for i in range(n):
            if idx[i] == err_out[t]:
                if err_prop[t]:
                    dV[r, i, i] = f[i] * f[i] + (Sd[i] if interaction else 0.0)
                else:
                    dV[r, i, i] = 1.0
                if err_ab[t] != 0.0:  # ∂(2ab f)/∂σ²_t = (ab / σ²_t) f
                    dV[r, i, i] += err_ab[t] / err_var[t] * f[i]
        r += 1


def _fo_rows(lo, hi, dmu, f, fth, L, Lth, omega, om_i, om_j, err_out, err_prop, err_var, err_free, err_ab, idx, full,
             interaction, out):  # pragma: no cover - compiled
    """Per-subject FIMs of a linearisation (FO, FOI, FOCE, FOCEI) for rows lo .. hi - 1 of the batch.

    dmu (B, n, pt) = ∂E[y]/∂θ; f (B, n), fth (B, n, pt): the prediction the residual variance is
    evaluated at and its θ-derivative; L (B, n, E) = ∂f/∂η at the linearisation point; Lth (B, n, E, pt)
    its θ-derivative (used when ``full``); omega (E, E);
    om_i, om_j (n_om,) the estimated Ω entries; err_out, err_prop, err_var, err_free (T,) the residual
    terms (output index, proportional?, variance, estimated?); err_ab (T,) ρ√(σ²_add σ²_prop) of the terms of
    correlated additive and proportional errors (combined1, SD = a + b f, is ρ = 1: the cross term 2ρab·f of the
    variance), 0 otherwise; idx (n,) output of each observation.
    out (B, p, p) with p = pt + n_om + (number of estimated residual terms).  Returns True when the predictions f
    of these rows and their FIMs are finite (a row whose V is not positive definite gets NaN).
    One set of work arrays for all the rows; each row: V and its derivatives by the builders above (one job each;
    inlined at numba IR level, so this compiles as one function, and shared with the SSE likelihood kernel,
    :mod:`pkdesign.kernels.fo_likelihood`), then ``row_fim_work``.  Large batches are split into row ranges
    across threads (:func:`fo_fim_kernel`).
    """
    n = f.shape[1]
    pt = fth.shape[2]
    E = L.shape[2]
    n_om = om_i.shape[0]
    p = out.shape[1]
    LO, V, Sd, dV, C, Ci, Vi = row_work(n, E, p)
    M = np.empty((p, n, n))
    nz = np.zeros(p, dtype=np.bool_)
    kind = derivative_kinds(p, pt, om_i, om_j, interaction, full)
    ok = True
    for b in range(lo, hi):
        for i in range(n):
            ok = ok and np.isfinite(f[b, i])
        linearised_variance(L[b], omega, LO, V, Sd)
        clear_derivatives(dV, kind)
        add_residual_variance(V, f[b], Sd, idx, err_out, err_prop, err_var, err_ab, interaction)
        if full:
            theta_derivatives(dV, Lth[b], LO, f[b], fth[b], idx, err_out, err_prop, err_var, err_ab, interaction)
        omega_derivatives(dV, L[b], om_i, om_j, kind, pt, idx, err_out, err_prop, err_var, interaction)
        residual_derivatives(dV, f[b], Sd, pt + n_om, idx, err_out, err_prop, err_var, err_free, err_ab,
                             interaction)
        row_fim_work(dmu[b], V, dV, out[b], C, Ci, Vi, M, nz, kind)
        for r in range(p):
            for c in range(p):
                ok = ok and np.isfinite(out[b, r, c])
    return ok


normal_rows = GuardedKernel(_GUARD, _GUARD.jit(_normal_rows, nogil=True, error_model="numpy",
                                                pipeline_class=NoAliasCompiler))
fo_rows = GuardedKernel(_GUARD, _GUARD.jit(_fo_rows, nogil=True, error_model="numpy", pipeline_class=NoAliasCompiler))
#: batches with at least this many rows are split across the thread pool; fewer run on the calling thread
PARALLEL_MIN_ROWS = 64
#: what ``fo_rows`` and ``chain_rows`` get for ∂L/∂θ and ∂²f/∂ψ² when they read and write neither (not ``full``): a
#: placeholder of the same type (a zeroed (B, n, E, pt) array cost 1.8 ms of memset per 10,000 schedules)
UNUSED_4D = np.zeros((1, 1, 1, 1))


def _chain_rows(lo, hi, d1, d2, a, b, c, free, ep, full, fth, L, Lth):  # pragma: no cover - compiled
    """``pkdesign.fim.predict.chain_rule`` (without ∂L/∂η) for rows lo .. hi - 1 of B, compiled: the same operations
    in the same order, so the same numbers bit for bit.  d1 (B, n, P), d2 (B, n, P, P) (read only when ``full``); a (K, P),
    b, c (K, E) with K = 1 (one η for every row) or B; free (pt,), ep (E,) ψ indices.  Writes fth (B, n, pt),
    L (B, n, E) and, when ``full``, Lth (B, n, E, pt); returns True when everything it wrote is finite (other
    entries of d1 and d2 may be NaN, "not computed")."""
    n = d1.shape[1]
    K = a.shape[0]
    pt = free.shape[0]
    E = ep.shape[0]
    af = np.empty(pt)
    bb = np.empty(E)
    ab = np.empty((E, pt))
    first = np.full(E, -1)  # the first θ of η_j's parameter (its ∂²ψ/∂θ∂η term), or -1
    for j in range(E):
        for m in range(pt):
            if free[m] == ep[j]:
                first[j] = m
                break
    ok = True
    for r in range(lo, hi):
        q = 0 if K == 1 else r
        if r == lo or K > 1:  # the row's coefficients (once, when every row shares one η)
            for m in range(pt):
                af[m] = a[q, free[m]]
            for j in range(E):
                bb[j] = b[q, j]
                for m in range(pt):
                    ab[j, m] = b[q, j] * a[q, free[m]]
        for i in range(n):
            for m in range(pt):
                fth[r, i, m] = d1[r, i, free[m]] * af[m]
                ok = ok and np.isfinite(fth[r, i, m])
            for j in range(E):
                L[r, i, j] = d1[r, i, ep[j]] * bb[j]
                ok = ok and np.isfinite(L[r, i, j])
            if full:
                for j in range(E):
                    kj = ep[j]
                    for m in range(pt):
                        Lth[r, i, j, m] = d2[r, i, kj, free[m]] * ab[j, m]
                    if first[j] >= 0:  # ∂f/∂ψ · ∂²ψ/∂θ∂η
                        Lth[r, i, j, first[j]] += d1[r, i, kj] * c[q, j]
                    for m in range(pt):
                        ok = ok and np.isfinite(Lth[r, i, j, m])
    return ok


chain_rows = GuardedKernel(_GUARD, _GUARD.jit(_chain_rows, nogil=True, error_model="numpy"))


def _mean_rows(lo, hi, fth, Lth, eta, out):  # pragma: no cover - compiled
    """The mean derivative of a linearisation at η* (``pkdesign.fim.linearized.mean_derivative``) for rows lo .. hi - 1:
    out = fth − Σ_e Lth[..., e, :] η*_e with fth, out (B, n, pt), Lth (B, n, E, pt), eta (B, E), E >= 1; the sum over
    e in order, each product added to it as numpy's elementwise form adds them: the same numbers, bit for bit."""
    n, E, pt = Lth.shape[1], Lth.shape[2], Lth.shape[3]
    for r in range(lo, hi):
        for i in range(n):
            for m in range(pt):
                s = Lth[r, i, 0, m] * eta[r, 0]
                for e in range(1, E):
                    s += Lth[r, i, e, m] * eta[r, e]
                out[r, i, m] = fth[r, i, m] - s
    return True


mean_rows = GuardedKernel(_GUARD, _GUARD.jit(_mean_rows, nogil=True, error_model="numpy"))


def _split_rows(kernel, B, *args) -> bool:
    """``kernel(lo, hi, *args)`` over rows 0 .. B - 1: batches of at least ``PARALLEL_MIN_ROWS`` rows in contiguous
    row ranges across the thread pool (the kernels release the GIL; pkdesign.kernels.threads), smaller ones on the
    calling thread.  True when every range's call returned True (the kernels that report finiteness)."""
    ok = []
    split(lambda s: ok.append(kernel(s.start, s.stop, *args)), B, PARALLEL_MIN_ROWS)  # the first call loads
    return all(ok)                                                                      # under the lock


def chain_rule_rows(d1, *args) -> bool:
    """:func:`_chain_rows` over every row of d1 (its arguments without lo and hi); True when everything it wrote
    is finite."""
    return _split_rows(chain_rows, d1.shape[0], d1, *args)


def mean_derivative_rows(fth, Lth, eta, out) -> None:
    """:func:`_mean_rows` over every row of fth (its arguments without lo and hi)."""
    _split_rows(mean_rows, fth.shape[0], fth, Lth, eta, out)


def normal_fim_kernel(dmu, V, dV, out) -> None:
    """The normal-model FIM of every row (:func:`_normal_rows`)."""
    _split_rows(normal_rows, dmu.shape[0], dmu, V, dV, out)


def fo_fim_kernel(dmu, f, *args) -> bool:
    """The linearisation FIM of every row (:func:`_fo_rows`, its arguments without lo and hi); True when the
    predictions f and every FIM are finite."""
    return _split_rows(fo_rows, f.shape[0], dmu, f, *args)
