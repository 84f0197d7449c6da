"""Exact c-optimal designs for rank-one information (Elfving's theorem), as a final polish.

When each candidate's information is rank one, μ(t) = g(t) g(t)ᵀ (one sample, fixed effects, known
error variance), Elfving (1952) gives the c-optimal design: c/h lies on the boundary of the convex
hull of {±g(t)}, c = Σ_j u_j g(t_j) with Σ|u_j| = h minimal; weights |u_j|/h and variance
cᵀM⁻c = h².  Starting from the merged support of the grid search, this solves

    minimise Σ_j s_j u_j   over times t_j (within their windows) and u_j with s_j u_j ≥ 0,
    subject to  Σ_j u_j g(t_j) = c,

(s_j the signs of the start) by SLSQP: smooth, and every feasible point is an estimable design, so a
singular optimum (fewer points than parameters, e.g. the one-point Cmax design) is reached exactly.
"""

from __future__ import annotations

import numpy as np

from ..numerics import SINGULAR_RTOL


def rank_one(mus) -> bool:
    """Whether every matrix of ``mus`` (C, 1, p, p) is rank one (after diagonal scaling)."""
    if mus.shape[1] != 1:
        return False
    M = mus[:, 0]
    d = np.einsum("cii->ci", M)
    s = 1.0 / np.sqrt(np.where(d > 0, d, 1.0))
    w = np.linalg.eigvalsh(M * s[:, :, None] * s[:, None, :])
    return bool(np.all(w[:, -2] <= 1e3 * SINGULAR_RTOL * w[:, -1]))


def directions(mus, ref) -> np.ndarray:
    """g_j with μ_j = g_j g_jᵀ, signed to agree with ``ref`` (p,) or (m, p): (m, p)."""
    M = mus[:, 0]
    ref = np.broadcast_to(ref, (M.shape[0], M.shape[1]))
    Mv = np.einsum("mpq,mq->mp", M, ref)
    norm = np.sqrt(np.maximum(np.einsum("mp,mp->m", ref, Mv), 1e-300))
    return Mv / norm[:, None]


def polish(c, times, bounds, infos):
    """Elfving-optimal support from the start ``times`` (m,) with windows ``bounds`` (m, 2).

    infos(times (m,)) -> (m, 1, p, p).  Returns (times, weights, variance) or None when the start gives
    no feasible point or SLSQP does not converge."""
    from scipy.optimize import minimize  # lazy: keeps `import pkdesign` fast

    m = times.size
    mus0 = infos(times)
    vals, vecs = np.linalg.eigh(mus0[:, 0])
    G0 = vecs[:, :, -1] * np.sqrt(np.maximum(vals[:, -1], 0.0))[:, None]
    u0 = np.linalg.lstsq(G0.T, c, rcond=None)[0]
    if np.linalg.norm(G0.T @ u0 - c) > 0.5 * np.linalg.norm(c):  # far from spanning c: not a start
        return None
    sign = np.where(u0 >= 0, 1.0, -1.0)
    ref = G0

    def G(t):
        return directions(infos(t), ref)

    def eq(x):
        return G(x[:m]).T @ x[m:] - c

    # the objective scaled to ~1 at the start: SLSQP's ftol is absolute, and 1e-15 on Σ|u| ~ 50 asked for the last
    # bits of the value, which some starts never settled (500 iterations, then dropped)
    h0 = max(float(np.sum(np.abs(u0))), 1e-300)
    res = minimize(lambda x: float(sign @ x[m:]) / h0, np.r_[times, u0], jac=lambda x: np.r_[np.zeros(m), sign / h0],
                   method="SLSQP", bounds=list(map(tuple, bounds)) + [(0, None) if s > 0 else (None, 0) for s in sign],
                   constraints=[{"type": "eq", "fun": eq}], options={"ftol": 1e-14, "maxiter": 500})
    if not res.success or np.linalg.norm(eq(res.x)) > 1e-9 * np.linalg.norm(c):
        return None
    t, u = res.x[:m], res.x[m:]
    h = float(np.sum(np.abs(u)))
    keep = np.abs(u) > 1e-12 * h
    t, w = t[keep], np.abs(u[keep]) / h
    order = np.argsort(t)
    t, w = t[order], w[order]
    # points that met (e.g. two starts converging on the one-point optimum) become one
    out_t, out_w = [t[0]], [w[0]]
    for ti, wi in zip(t[1:], w[1:]):
        if abs(ti - out_t[-1]) <= 1e-6 * max(1.0, abs(ti)):
            out_t[-1] = (out_t[-1] * out_w[-1] + ti * wi) / (out_w[-1] + wi)
            out_w[-1] += wi
        else:
            out_t.append(ti)
            out_w.append(wi)
    return np.array(out_t), np.array(out_w), h * h


def rank_one_vectors(mus) -> np.ndarray:
    """g (C, p) with μ = g gᵀ for rank-one information (C, 1, p, p); signs arbitrary."""
    vals, vecs = np.linalg.eigh(mus[:, 0])
    return vecs[:, :, -1] * np.sqrt(np.maximum(vals[:, -1], 0.0))[:, None]


def certificate(c, g, variance: float, tol: float):
    """The equivalence certificate of a design with c-variance ``variance`` against candidates with
    rank-one information g (C, p), by the dual of Elfving's problem (a linear programme, exact):

        max aᵀc  subject to |aᵀg_i| ≤ 1 for every candidate,

    whose value h* gives the c-optimal variance h*² over the candidates.  The efficiency of the design
    is h*²/variance; the returned sensitivity function d_i = variance·(aᵀg_i)²/efficiency has
    max_i d_i = bound/efficiency (bound = the design's variance), so the certificate holds when the
    design is optimal to ``tol``.  Returns (Certificate, d (C,))."""
    from scipy.optimize import linprog  # lazy: keeps `import pkdesign` fast

    from ..equivalence import Certificate

    A = np.vstack([g, -g])
    res = linprog(-c, A_ub=A, b_ub=np.ones(A.shape[0]), bounds=[(None, None)] * c.size, method="highs")
    if not res.success:
        return None
    h = float(-res.fun)
    eff = min(1.0, h * h / variance) if variance > 0 else 0.0
    d = variance * (g @ res.x) ** 2 / max(eff, 1e-300)
    j = int(np.argmax(d))
    return Certificate(float(d[j]), float(variance), float(d[j] - variance), eff, j, bool(d[j] <= variance * (1 + tol)),
                       tol), d
