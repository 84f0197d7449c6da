"""The linearised (FO/FOI/FOCE/FOCEI) normal-model FIM of one subject in O(n) memory and time.

For n observations the covariance of a linearisation is

    V = D + U Uᵀ,   D = diag(r) (residual variances, n),   U = L C (n × r),   C Cᵀ = Ω,

so with the capacitance matrix K = I + Uᵀ D⁻¹ U (r × r, r = number of random effects) and
H = K⁻¹, Woodbury gives G = V⁻¹ = D⁻¹ − W H Wᵀ, W = D⁻¹ U.  Every ∂V/∂α of these models is a
low-rank part in the columns Z = [L, ∂L/∂θ_1, …] (n × q) plus a diagonal part:

    ∂V/∂α = Z S_α Zᵀ + diag(d_α)

(S_α: Ω-blocks for θ, unit entries for Ω elements; d_α: the proportional-error and η–ε
interaction terms, and the residual variances themselves).  Then, with Γ = Zᵀ G Z,
Ψ(d) = Zᵀ G diag(d) G Z and G∘G expanded through Kronecker products of the rows of W,

    tr(G ∂V_a G ∂V_b) = tr(S_a Γ S_b Γ) + tr(S_a Ψ(d_b)) + tr(S_b Ψ(d_a)) + d_aᵀ (G∘G) d_b,

and every piece is a sum over observations of small (q × q, r × r) products.  The sums are
accumulated chunk by chunk (:meth:`StructuredFIM.add`), H is applied once at the end
(:meth:`StructuredFIM.result`): cost O(n (q² + r²) m) for m parameters with a diagonal part,
memory O(chunk × q) — no n × n matrix is ever formed.  The result equals the dense computation
(``pkdesign.kernels.normal_fim``) to rounding; it needs every residual variance > 0 (a sample
with zero variance and no derivative carries no information and is dropped, as in the dense path).
"""

from __future__ import annotations

import numpy as np

from .draws import omega_root
from .residual import zero_variance_error


class StructuredFIM:
    """Accumulates the per-subject FIM (p, p) of one linearisation over chunks of observations.

    Parameters
    ----------
    pp : PopulationParameters
    full : bool
        Keep ∂V/∂θ (full FIM) or drop it (reduced FIM).
    interaction : bool
        FOI/FOCEI: η–ε interaction terms in the variance of proportional errors.
    """

    def __init__(self, pp, *, full: bool, interaction: bool):
        self.pp, self.full, self.interaction = pp, full, interaction
        self.omega = np.asarray(pp.omega, dtype=float)
        self.E = E = self.omega.shape[0]
        self.pt = pp.p_theta
        self.q = E * (1 + self.pt) if full else E
        self.om = [tuple(x) for x in pp.omega_free]
        self.residual = pp.residual
        self.n_free_errs = len(self.residual.free_terms)
        # parameters with a diagonal part of dV: θ (full, if any proportional error), Ω (FOI, if any
        # proportional error), every free residual term
        has_prop = self.has_prop = self.residual.has_prop
        self.diag_params = []
        if full and has_prop:
            self.diag_params += list(range(self.pt))
        if interaction and has_prop:
            self.diag_params += [self.pt + k for k in range(len(self.om))]
        self.diag_params += [self.pt + len(self.om) + j for j in range(self.n_free_errs)]
        self.n = 0
        self.C = None  # Ω's root and the accumulators: on the first add (the dense contraction needs neither)

    def _start(self) -> None:
        self.C = omega_root(self.omega) if self.E else np.zeros((0, 0))
        self.r = r = self.C.shape[1]
        nd, q = len(self.diag_params), self.q
        self.Kacc = np.zeros((r, r))
        self.WZ = np.zeros((r, q))
        self.ZDZ = np.zeros((q, q))
        self.mDm = np.zeros((self.pt, self.pt))
        self.Wm = np.zeros((r, self.pt))
        self.P1 = np.zeros((nd, q, q))
        self.P2 = np.zeros((nd, q, r))
        self.P3 = np.zeros((nd, r, r))
        self.T1 = np.zeros((nd, nd))
        self.Q = np.zeros((nd, nd, r * r))
        self.Y = np.zeros((nd, r * r))

    # -- accumulation ---------------------------------------------------------------------
    def add(self, idx, dmu, f, fth, L, Lth=None, times=None, where: str = "") -> None:
        """Add a chunk of observations of the subject.

        idx (n,) output of each observation; dmu (n, p_theta) ∂E[y]/∂θ; f (n,) and fth (n, p_theta)
        the prediction the residual variance is evaluated at and its θ-derivative; L (n, E) ∂f/∂η;
        Lth (n, E, p_theta) ∂²f/∂η∂θ (full FIM only); times (n,) for messages.
        """
        if self.C is None:
            self._start()
        idx, dmu, f, fth, L, Lth, D, m2, prop_var = self._informative(idx, dmu, f, fth, L, Lth, times, where)
        n = idx.size
        if n == 0:
            return
        E, pt = self.E, self.pt
        self.n += n
        Dinv = 1.0 / D
        U = L @ self.C if E else np.zeros((n, 0))
        Z = np.concatenate([L] + [Lth[:, :, m] for m in range(pt)], axis=1) if self.full else L
        UD = U * Dinv[:, None]
        ZD = Z * Dinv[:, None]
        self.Kacc += U.T @ UD
        self.WZ += UD.T @ Z
        self.ZDZ += Z.T @ ZD
        self.mDm += dmu.T @ (dmu * Dinv[:, None])
        self.Wm += UD.T @ dmu
        if not self.diag_params:
            return
        Dg = self._diagonals(idx, f, fth, L, Lth, m2, prop_var)  # (n, nd)
        D2 = Dinv * Dinv
        for j in range(Dg.shape[1]):
            b2 = Dg[:, j] * D2
            Zb = Z * b2[:, None]
            self.P1[j] += Zb.T @ Z
            self.P2[j] += Zb.T @ U
            self.P3[j] += (U * b2[:, None]).T @ U
        self.T1 += (Dg * D2[:, None]).T @ Dg
        Ukr = np.einsum("nk,nl->nkl", U, U).reshape(n, -1)  # rows kron(U_i, U_i)
        self.Q += np.einsum("na,nb,nk->abk", Dg * (D2 * Dinv)[:, None], Dg, Ukr)
        self.Y += (Dg * D2[:, None]).T @ Ukr

    def _informative(self, idx, dmu, f, fth, L, Lth, times, where, zero_variance_ok: bool = False) -> tuple:
        """The observations that carry information, with their residual variances D (n,), the second moments m2 the
        proportional errors scale and the proportional weights: (idx, dmu, f, fth, L, Lth, D, m2, prop_var).  A
        sample with zero variance that moves with the parameters raises (Woodbury divides by D) unless
        ``zero_variance_ok`` (the dense contraction, where L Ω Lᵀ may still make V positive definite)."""
        idx = np.asarray(idx)
        n = idx.size
        S = np.einsum("ne,ef,nf->n", L, self.omega, L) if self.E else np.zeros(n)
        m2 = f**2 + S if self.interaction else f**2  # the second moment the proportional error scales
        D = self.residual.variance(idx, m2, f)
        prop_var = self.residual.prop_weight(idx)  # Σ σ²_prop of each observation's output
        zero = D <= 0
        if zero.any():
            moves = np.any(dmu != 0, axis=1) | np.any(L != 0, axis=1) | (f != 0)
            if self.full:
                moves |= np.any(fth != 0, axis=1)
                if Lth is not None:
                    moves |= np.any(Lth != 0, axis=(1, 2))
            bad = np.flatnonzero(zero & moves)
            if bad.size and not zero_variance_ok:
                i = bad[0]
                raise zero_variance_error(where, idx[i], None if times is None else times[i], f[i])
            keep = ~zero | moves  # drop the samples that carry no information at all
            idx, dmu, f, fth, L, D, m2, prop_var = (idx[keep], dmu[keep], f[keep], fth[keep], L[keep], D[keep],
                                                    m2[keep], prop_var[keep])
            Lth = Lth[keep] if Lth is not None else None
        return idx, dmu, f, fth, L, Lth, D, m2, prop_var

    def dense(self, idx, dmu, f, fth, L, Lth=None, times=None, where: str = "") -> np.ndarray | None:
        """The per-subject FIM (p, p) of one subject's observations (same arguments as :meth:`add`) from the same
        representation, contracted densely: V = L Ω Lᵀ + diag(D), ∂V_α = Z S_α Zᵀ + diag(d_α), then
        FIM = ∂μᵀ V⁻¹ ∂μ + ½ tr(V⁻¹ ∂V_a V⁻¹ ∂V_b) through the Cholesky factor of V.  O(n³) in numpy, for a few
        observations: no compiled kernel (what a single FO/FOI FIM uses; batches take the compiled kernels, with
        the same numbers to rounding).  None when V is not positive definite (the caller explains)."""
        idx, dmu, f, fth, L, Lth, D, m2, prop_var = self._informative(idx, dmu, f, fth, L, Lth, times, where,
                                                                      zero_variance_ok=True)
        p, pt, n = self.pp.p, self.pt, idx.size
        F = np.zeros((p, p))
        if n == 0:
            return F
        V = (L @ self.omega) @ L.T if self.E else np.zeros((n, n))
        diag = np.arange(n)
        V[diag, diag] += D
        try:
            C = np.linalg.cholesky(V)
        except np.linalg.LinAlgError:
            return None
        Ci = np.linalg.inv(C)
        Vi = Ci.T @ Ci
        A = Ci @ dmu
        F[:pt, :pt] = A.T @ A
        low = self._low_rank()
        which = [a for a, S in enumerate(low) if S is not None]
        if which:  # the low-rank parts Z S_α Zᵀ of all of them at once
            Z = np.concatenate([L] + [Lth[:, :, m] for m in range(pt)], axis=1) if self.full else L
            dV = (Z @ np.stack([low[a] for a in which])) @ Z.T
        else:
            dV = np.zeros((0, n, n))
        if self.diag_params:  # the diagonal parts d_α
            Dg = self._diagonals(idx, f, fth, L, Lth, m2, prop_var)
            extra = [a for a in self.diag_params if a not in which]
            dV = np.concatenate([dV, np.zeros((len(extra), n, n))])
            which = which + extra
            rows = {a: k for k, a in enumerate(which)}
            for j, a in enumerate(self.diag_params):
                dV[rows[a], diag, diag] += Dg[:, j]
        if which:
            M = Vi @ dV
            w = np.array(which)
            F[w[:, None], w] += 0.5 * np.einsum("aij,bji->ab", M, M)
        F = 0.5 * (F + F.T)
        return F if np.all(np.isfinite(F)) else None

    def _diagonals(self, idx, f, fth, L, Lth, m2, prop_var) -> np.ndarray:
        """The diagonal parts d_α (n, nd) of ∂V/∂α, in ``diag_params`` order."""
        n = idx.size
        cols = []
        pt = self.pt
        has_prop = self.has_prop
        if self.full and has_prop:
            LO = L @ self.omega if self.E else np.zeros((n, 0))
            slope = self.residual.slope(idx, f)  # ∂r/∂f, once for all θ
            for m in range(pt):
                d = slope * fth[:, m]
                if self.interaction and self.E:
                    d = d + 2.0 * prop_var * np.einsum("ne,ne->n", Lth[:, :, m], LO)
                cols.append(d)
        if self.interaction and has_prop:
            for a, c in self.om:
                cols.append(prop_var * L[:, a] * L[:, c] * (1.0 if a == c else 2.0))
        cols += self.residual.columns(idx, m2, f)
        return np.stack(cols, axis=1) if cols else np.zeros((n, 0))

    # -- result ---------------------------------------------------------------------------
    def _low_rank(self) -> list:
        """S_α (q × q) of each parameter, or None."""
        E, pt, q = self.E, self.pt, self.q
        out = []
        for m in range(pt):
            if not self.full or E == 0:
                out.append(None)
                continue
            S = np.zeros((q, q))
            blk = slice(E * (m + 1), E * (m + 2))
            S[blk, :E] = self.omega
            S[:E, blk] = self.omega
            out.append(S)
        for a, c in self.om:
            S = np.zeros((q, q))
            S[a, c] += 1.0
            if a != c:
                S[c, a] += 1.0
            out.append(S)
        out += [None] * self.n_free_errs
        return out

    def result(self) -> np.ndarray:
        """The per-subject FIM (p, p)."""
        if self.C is None:
            self._start()
        p, pt, r = self.pp.p, self.pt, self.r
        F = np.zeros((p, p))
        K = np.eye(r) + self.Kacc
        H = np.linalg.inv(K) if r else np.zeros((0, 0))
        H = 0.5 * (H + H.T)
        F[:pt, :pt] = self.mDm - self.Wm.T @ H @ self.Wm
        Gam = self.ZDZ - self.WZ.T @ H @ self.WZ
        M = H @ self.WZ
        Psi = {}
        for j, a in enumerate(self.diag_params):
            P2M = self.P2[j] @ M
            Psi[a] = self.P1[j] - P2M - P2M.T + M.T @ self.P3[j] @ M
        hv = H.ravel()
        HH = np.kron(H, H)
        pos = {a: j for j, a in enumerate(self.diag_params)}
        GG = self.T1 - 2.0 * self.Q @ hv + self.Y @ HH @ self.Y.T if self.diag_params else None
        Ss = self._low_rank()
        X = [None if S is None else S @ Gam for S in Ss]
        for a in range(p):
            for b in range(a + 1):
                t = 0.0
                if X[a] is not None and X[b] is not None:
                    t += float(np.sum(X[a] * X[b].T))
                if Ss[a] is not None and b in Psi:
                    t += float(np.sum(Ss[a] * Psi[b]))
                if Ss[b] is not None and a in Psi:
                    t += float(np.sum(Ss[b] * Psi[a]))
                if a in pos and b in pos:
                    t += float(GG[pos[a], pos[b]])
                F[a, b] += 0.5 * t
                F[b, a] = F[a, b]
        return F


def structured_fims(pp, idx, dmu, f, fth, L, Lth, *, full: bool, interaction: bool, times=None,
                    where: str = "") -> np.ndarray:
    """Per-subject FIMs (B, p, p) of B linearisations (rows), each through :class:`StructuredFIM`.

    Same inputs as the dense kernel: dmu (B, n, p_theta), f (B, n), fth (B, n, p_theta),
    L (B, n, E), Lth (B, n, E, p_theta) or None (reduced); idx (n,); times (n,) or (B, n) for messages."""
    B = f.shape[0]
    out = np.empty((B, pp.p, pp.p))
    t = None if times is None else np.asarray(times, dtype=float)
    for b in range(B):
        acc = StructuredFIM(pp, full=full, interaction=interaction)
        tb = None if t is None else (t[b] if t.ndim == 2 else t)
        acc.add(idx, dmu[b], f[b], fth[b], L[b], Lth[b] if (full and Lth is not None) else None, tb, where)
        out[b] = acc.result()
    return out
