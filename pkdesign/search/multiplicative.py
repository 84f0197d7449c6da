"""Multiplicative algorithm for approximate designs (Titterington 1976; Silvey, Titterington &
Torsney 1978), with the candidate-elimination rule of Harman & Pronzato (2007) for D-optimality.

    w_i ← w_i · d_i / Σ_j w_j d_j,   d_i = tr(∇Φ(M) μ_i),

monotone for D-optimality; for D, a candidate with d_i < h(p, ε) (ε = max d / p − 1) cannot
support any D-optimal design and is removed.  Stops when max_i d_i ≤ tr(∇Φ M)(1 + tol).
"""

from __future__ import annotations

import numpy as np

from .engine import run
from .fedorov_wynn import WeightSearch
from .result import Status


class Multiplicative(WeightSearch):
    """w_i ← w_i d_i / bound on the active candidates; for D, candidates that cannot support an optimum are
    removed (Harman & Pronzato 2007)."""

    phase = "multiplicative"

    def init(self):
        self.active = np.ones(self.mus.shape[0], dtype=bool)
        return self.evaluate(self.w0)

    def evaluate(self, w, mus=None) -> dict:
        state = super().evaluate(w, self.mus[self.active])
        d = np.zeros(w.size)
        d[self.active] = state["d"]
        state["d"] = d
        return state

    def terminate(self, state):
        d = state["d"][self.active]
        return Status.CONVERGED if d.max() <= state["bound"] * (1 + self.tol) else None

    def step(self, state):
        w, d, b = state["w"].copy(), state["d"], state["bound"]
        active = self.active
        if self.criterion.log_det and self.offset is None:  # the elimination bound assumes no fixed information
            eps = d[active].max() / b - 1.0
            h = b * (1 + eps / 2 - np.sqrt(eps * (4 + eps - 4 / b)) / 2)
            gone = active & (d < h)
            if gone.any() and (active & ~gone).sum() >= 1:
                w[gone] = 0.0
                active &= ~gone
        w = np.where(active, w * np.clip(d, 0, None) / b, 0.0)
        return self.evaluate(w / w.sum())


def multiplicative(mus, criterion, weights=None, *, max_iter: int = 50000, tol: float = 1e-6, callback=None,
                   offset=None):
    """Optimise weights over candidates (see ``fedorov_wynn`` for arguments and return value)."""
    search = Multiplicative(mus, criterion, weights, tol=tol, offset=offset)
    state, status, steps = run(search, max_iter=max_iter, callback=callback)
    return state["w"], status, steps, search.history
