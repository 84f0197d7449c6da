"""First-order (Fedorov–Wynn) algorithm for approximate designs over a candidate set.

Each iteration computes the sensitivity d_i = tr(∇Φ(M) μ_i) of every candidate, then takes the
better of a forward step (towards the candidate with the largest d) and a backward, "away" step
(away from the support point with the smallest d; Atwood 1973), with the step length chosen by a
bounded line search on Φ.  Weights below ``drop`` are removed (merged into the rest).  Stops when
the equivalence theorem holds to ``tol``: max_i d_i ≤ tr(∇Φ M)·(1 + tol).  After each step the
weights of the current support are re-balanced by a few multiplicative iterations (the
"cocktail" combination of Yu 2011, Stat Comput 21:475-481), and a support of at most
``FULLY_CORRECTIVE_MAX`` points then gets its weights re-optimised exactly (SLSQP on the simplex with
the exact gradient d: a fully corrective step), which turns the slow zig-zag of the plain first-order
method near the optimum into fast convergence: on singular c-optimal designs the multiplicative step
alone left a sublinear rate (Atkinson's AUC, tmax, Cmax: 1,830 / 1,240 / 870 iterations; now 23 / 6 / 20).
"""

from __future__ import annotations

import numpy as np

from ..equivalence import criterion_value, information, sensitivity
from .engine import IterativeSearch, run
from .result import Status


class WeightSearch(IterativeSearch):
    """What the weight algorithms share: the state is the weight vector with its information M, the
    sensitivities d and the bound tr(∇Φ M); the stopping rule is the equivalence theorem,
    max_i d_i ≤ bound·(1 + tol); ``history`` keeps Φ of every state."""

    def __init__(self, mus, criterion, weights=None, *, tol: float = 1e-6, offset=None):
        self.mus, self.criterion, self.tol, self.offset = mus, criterion, tol, offset
        C = mus.shape[0]
        self.w0 = np.full(C, 1.0 / C) if weights is None else np.asarray(weights, dtype=float).copy()
        self.history = []

    def evaluate(self, w, mus=None) -> dict:
        mus = self.mus if mus is None else mus
        M = information(w, self.mus, self.offset)
        d, b = sensitivity(self.criterion, M, mus, self.offset)
        self.history.append(criterion_value(self.criterion, M))
        return {"w": w, "M": M, "d": d, "bound": b}

    def init(self):
        return self.evaluate(self.w0)

    def terminate(self, state):
        return Status.CONVERGED if state["d"].max() <= state["bound"] * (1 + self.tol) else None

    def report(self, state) -> dict:
        return {"criterion_value": self.history[-1], "sensitivity_max": float(state["d"].max()),
                "bound": state["bound"]}


class FedorovWynn(WeightSearch):
    """Forward/away steps with a line search, then multiplicative and (small supports) fully corrective
    re-weighting on the support."""

    phase = "fedorov-wynn"

    def __init__(self, mus, criterion, weights=None, *, tol=1e-6, drop=1e-9, corrective=20, offset=None):
        super().__init__(mus, criterion, weights, tol=tol, offset=offset)
        self.drop, self.corrective = drop, corrective

    def step(self, state):
        w, d, b = state["w"], state["d"], state["bound"]
        jp = int(np.argmax(d))
        supp = np.flatnonzero(w > 0)
        jm = supp[np.argmin(d[supp])]
        if d[jp] - b >= b - d[jm] or w[jm] >= 1.0:
            direction = -w.copy()
            direction[jp] += 1.0
            amax = 1.0
        else:  # away step: move weight off the worst support point
            direction = w.copy()
            direction[jm] -= 1.0
            amax = w[jm] / (1.0 - w[jm])
        a = _line_search(self.criterion, state["M"], information(direction, self.mus), amax,
                         exact_log_det=self.offset is None)
        w = w + a * direction
        w[w < self.drop] = 0.0
        w /= w.sum()
        if self.corrective:
            supp = np.flatnonzero(w > 0)
            sub = self.mus if supp.size == w.size else self.mus[supp]  # the whole set: a view, not a copy
            w[supp] = _reweight(self.criterion, sub, w[supp], self.corrective, self.offset)
            if supp.size <= FULLY_CORRECTIVE_MAX:
                w[supp] = _fully_corrective(self.criterion, sub, w[supp], self.offset)
            w[w < self.drop] = 0.0
            w /= w.sum()
        return self.evaluate(w)


def fedorov_wynn(mus, criterion, weights=None, *, max_iter: int = 20000, tol: float = 1e-6, drop: float = 1e-9,
                 corrective: int = 20, callback=None, offset=None):
    """Optimise weights over candidates.

    Parameters
    ----------
    mus : ndarray (C, K, p, p)   information of each candidate (K = 1 unless ED)
    criterion : Criterion
    weights : ndarray (C,), optional   start (default uniform)
    corrective : int   multiplicative re-weighting iterations on the support after each step
        (0: the plain first-order algorithm)

    Returns ``(weights, status, iterations, history)``.
    """
    search = FedorovWynn(mus, criterion, weights, tol=tol, drop=drop, corrective=corrective, offset=offset)
    state, status, steps = run(search, max_iter=max_iter, callback=callback)
    return state["w"], status, steps, search.history


def _reweight(criterion, mus, w, iterations, offset=None):
    """Multiplicative re-weighting on the current support (the "cocktail" step of Yu 2011)."""
    for _ in range(iterations):
        M = information(w, mus, offset)
        d, b = sensitivity(criterion, M, mus, offset)
        if d.max() - d.min() <= 1e-12 * b:
            break
        w = w * np.clip(d, 0, None) / b
        w /= w.sum()
    return w


#: supports up to this size get their weights re-optimised exactly after each step (:func:`_fully_corrective`)
FULLY_CORRECTIVE_MAX = 30


def _fully_corrective(criterion, mus, w, offset=None):
    """The weights on the current support re-optimised: max Φ(Σ w_i μ_i) over the simplex by SLSQP with the exact
    gradient (∂Φ/∂w_i = d_i, the sensitivities); ``w`` itself unless that is better."""
    from scipy.optimize import minimize  # lazy: keeps `import pkdesign` fast

    M = information(w, mus, offset)
    base = criterion_value(criterion, M)
    if not np.isfinite(base) or w.size < 2:
        return w
    scale = max(abs(base), 1e-12)  # the objective ~1 at the start: SLSQP's ftol is absolute

    def fun(x):
        Mx = information(x, mus, offset)
        v = criterion_value(criterion, Mx)
        if not np.isfinite(v):
            return 1e300, np.zeros_like(x)
        d, _ = sensitivity(criterion, Mx, mus, offset)
        return -v / scale, -d / scale

    res = minimize(fun, w, jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * w.size,
                   constraints=({"type": "eq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones_like(x)},),
                   options={"ftol": 1e-15, "maxiter": 100})
    x = np.clip(res.x, 0.0, None)
    if x.sum() <= 0:
        return w
    x /= x.sum()
    return x if criterion_value(criterion, information(x, mus, offset)) > base else w


def _line_search(criterion, M, dM, amax, exact_log_det: bool = True):
    """argmax over α in [0, amax] of Φ(M + α dM)."""
    from scipy.optimize import minimize_scalar  # lazy: keeps `import pkdesign` fast

    if criterion.log_det and M.shape[0] == 1 and exact_log_det:
        # ln det(M + α dM) − ln det M = Σ ln(1 + α λ_i), λ = eig(M^-1/2 dM M^-1/2): Newton on α
        C = np.linalg.cholesky(M[0])
        Ci = np.linalg.inv(C)
        lam = np.linalg.eigvalsh(Ci @ dM[0] @ Ci.T)
        lo, hi = 0.0, amax
        with np.errstate(divide="ignore", invalid="ignore"):
            if np.all(1 + hi * lam > 0) and np.sum(lam / (1 + hi * lam)) >= 0:
                return hi
        a = 0.5 * (lo + hi)
        for _ in range(100):
            den = 1 + a * lam
            g = np.sum(lam / den)
            if g > 0:
                lo = a
            else:
                hi = a
            h = -np.sum((lam / den) ** 2)
            step = a - g / h if h < 0 else 0.5 * (lo + hi)
            a_new = step if lo < step < hi else 0.5 * (lo + hi)
            if abs(a_new - a) <= 1e-15 * max(1.0, a):
                return a_new
            a = a_new
        return a

    def neg(a):
        v = criterion_value(criterion, M + a * dM)
        return -v if np.isfinite(v) else 1e300

    return minimize_scalar(neg, bounds=(0.0, amax), method="bounded", options={"xatol": 1e-12 * max(amax, 1e-12)}).x
