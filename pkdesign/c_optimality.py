"""c- and L-optimality: the variance of estimated linear combinations cᵀθ (derived quantities such as AUC,
or parameters), with singular optimal designs handled (ridge-regularised value, generalised-inverse
variances); see :mod:`pkdesign.criteria` for the conventions every criterion shares."""

from __future__ import annotations

import numpy as np

from .criteria import VarianceCriterion
from .errors import SearchError
from .numerics import SINGULAR_RTOL


class LCriterion(VarianceCriterion):
    """−Σ_k w_k c_kᵀ M⁻ c_k (L-optimality over the rows of C); with one row, c-optimality.

    C (k, p) rows c_k, weights (k,) > 0; ``labels`` name the rows (derived quantities or parameters).

    c-optimal designs are often singular (fewer support points than parameters), and then c ∈ range(M)
    holds only exactly at the optimum: on a grid, or during a search, the designs next to it are either
    non-singular with tiny weights or not estimable.  The value is therefore taken with a ridge,
    Φ(M) = −Σ w_k c_kᵀ (M + δ S)⁻¹ c_k, S = diag of the first information matrix the criterion sees (the
    starting design: fixed for the whole search, so Φ stays concave and its gradient exact) and δ = 1e-9:
    finite and smooth everywhere, equal to the generalised-inverse value to ~δ relative where c is
    estimable.  ``variances(M)`` gives c_kᵀ M⁻ c_k without the ridge (inf where not estimable) and
    ``estimable(M)`` says whether every c_kᵀθ is.
    """

    name = "L"
    ridge = 1e-9

    def __init__(self, C, weights=None, labels=None):
        self.C = np.atleast_2d(np.asarray(C, dtype=float))
        self.weights = np.ones(self.C.shape[0]) if weights is None else np.asarray(weights, dtype=float)
        if self.weights.shape != (self.C.shape[0],) or np.any(~(self.weights > 0)):
            raise SearchError(f"criterion {self.name}: expected one weight > 0 per vector, got {self.weights!r}")
        self.labels = list(labels) if labels is not None else [f"c{k}" for k in range(self.C.shape[0])]
        self.name = f"{type(self).name}:" + ",".join(f"{n}={w:g}" for n, w in zip(self.labels, self.weights))
        self.scale = None

    def _ridged_inverse(self, M):
        if self.scale is None:
            d = np.abs(np.diag(M)).astype(float)
            self.scale = np.where(d > 0, d, max(d.max(), 1.0) if d.size else 1.0)
        return np.linalg.inv(0.5 * (M + M.T) + self.ridge * np.diag(self.scale))

    def value(self, M):
        P = self._ridged_inverse(M)
        return float(-np.sum(self.weights * np.einsum("kp,pq,kq->k", self.C, P, self.C)))

    def safe_value(self, M) -> float:
        try:
            v = self.value(M)
        except np.linalg.LinAlgError:
            return -np.inf
        return v if np.isfinite(v) else -np.inf

    def gradient(self, M):
        PC = self._ridged_inverse(M) @ self.C.T    # (p, k)
        return (PC * self.weights) @ PC.T

    def _pinv(self, M):
        """(M⁻, every c_k in the range of M?), judged after diagonal scaling with the one threshold."""
        M = 0.5 * (M + M.T)
        d = np.diag(M).copy()
        live = d > 0
        if np.any(self.C[:, ~live] != 0):
            return None, False
        s = 1.0 / np.sqrt(d[live])
        w, U = np.linalg.eigh(M[np.ix_(live, live)] * np.outer(s, s))
        keep = w > SINGULAR_RTOL * max(w.max(), 1e-300)
        Uk, Sk = U[:, keep] * s[:, None], U[:, keep] / s[:, None]
        P = np.zeros_like(M)
        P[np.ix_(live, live)] = (Uk / w[keep]) @ Uk.T
        Cl = self.C[:, live]
        resid = Cl - (Cl @ Uk) @ Sk.T          # c minus M M⁻ c
        return P, bool(np.all(np.linalg.norm(resid, axis=1) <= 1e-6 * np.linalg.norm(Cl, axis=1)))

    def estimable(self, M) -> bool:
        return self._pinv(M)[1]

    def variances(self, M) -> np.ndarray:
        """c_kᵀ M⁻ c_k of each row (the asymptotic variance of c_kᵀθ̂ per unit of information; inf where
        not estimable)."""
        P, ok = self._pinv(M)
        return np.einsum("kp,pq,kq->k", self.C, P, self.C) if ok else np.full(self.C.shape[0], np.inf)


class CCriterion(LCriterion):
    """c-optimality: −cᵀ M⁻ c, the variance of the estimate of cᵀθ (e.g. AUC through c = ∇AUC)."""

    name = "c"

    def __init__(self, c, label: str = "c"):
        super().__init__(np.atleast_2d(c), None, [label])
        self.name = f"c:{label}"


def parse_weighted(text: str) -> tuple:
    """``"AUC=1,tmax=2"`` (or ``"AUC,tmax"``: weight 1) -> (names, weights)."""
    names, weights = [], []
    for part in str(text).split(","):
        name, _, w = part.partition("=")
        name = name.strip()
        if not name:
            raise SearchError(f"criterion L: expected NAME[=WEIGHT],... got {text!r}")
        try:
            weights.append(float(w) if w.strip() else 1.0)
        except ValueError:
            raise SearchError(f"criterion L: weight of {name!r} is not a number: {w!r}") from None
        names.append(name)
    return names, weights


class BayesianLCriterion(LCriterion):
    """E_θ[−Σ_k w_k c_k(θ)ᵀ M(θ)⁻ c_k(θ)] over prior draws θ_j: the stack of per-draw FIMs (J, p, p) and the
    vectors at each draw, C (J, k, p) (e.g. ∇AUC at θ_j), averaged with equal weights ("Ec:AUC")."""

    stacked = True

    def __init__(self, C_draws, weights=None, labels=None):
        C_draws = np.asarray(C_draws, dtype=float)
        super().__init__(C_draws[0], weights, labels)
        self.C_draws = C_draws
        self.name = f"Ec:{self.labels[0]}" if C_draws.shape[1] == 1 and weights is None else "E" + self.name
        self._draw = [LCriterion(C, weights, labels) for C in C_draws]

    def value(self, Ms):
        Ms = np.asarray(Ms)
        return float(np.mean([c.value(M) for c, M in zip(self._draw, Ms)]))

    def values(self, Ms):
        """(B, J, p, p) -> (B,)."""
        return np.array([self.safe_value(M) for M in Ms])

    def gradient(self, Ms):
        Ms = np.asarray(Ms)
        return np.stack([c.gradient(M) for c, M in zip(self._draw, Ms)]) / Ms.shape[0]

    def variances(self, Ms) -> np.ndarray:
        """Mean over the draws of c_k(θ_j)ᵀ M(θ_j)⁻ c_k(θ_j), per row k."""
        return np.mean([c.variances(M) for c, M in zip(self._draw, np.asarray(Ms))], axis=0)

    def estimable(self, Ms) -> bool:
        return all(c.estimable(M) for c, M in zip(self._draw, np.asarray(Ms)))
