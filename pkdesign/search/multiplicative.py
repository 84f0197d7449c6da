"""Multiplicative algorithm for approximate designs (Titterington 1976; Silvey, Titterington &
Torsney 1978), with the candidate-elimination rule of Harman & Pronzato (2007) for D-optimality.

    w_i ← w_i · d_i / Σ_j w_j d_j,   d_i = tr(∇Φ(M) μ_i),

monotone for D-optimality; for D, a candidate with d_i < h(p, ε) (ε = max d / p − 1) cannot
support any D-optimal design and is removed.  Stops when max_i d_i ≤ tr(∇Φ M)(1 + tol).
"""

from __future__ import annotations

import numpy as np

from ..equivalence import criterion_value, information, sensitivity
from .result import Status


def multiplicative(mus, criterion, weights=None, *, max_iter: int = 50000, tol: float = 1e-6, callback=None):
    """Optimise weights over candidates (see ``fedorov_wynn`` for arguments and return value)."""
    C = mus.shape[0]
    w = np.full(C, 1.0 / C) if weights is None else np.asarray(weights, dtype=float).copy()
    active = np.ones(C, dtype=bool)
    history = []
    status = Status.MAX_ITERATIONS
    it = 0
    for it in range(1, max_iter + 1):
        M = information(w, mus)
        d_act, b = sensitivity(criterion, M, mus[active])
        d = np.zeros(C)
        d[active] = d_act
        history.append(criterion_value(criterion, M))
        if d_act.max() <= b * (1 + tol):
            status = Status.CONVERGED
            break
        if callback is not None and callback({"iteration": it, "criterion_value": history[-1],
                                              "sensitivity_max": float(d_act.max()), "bound": b}):
            status = Status.STOPPED
            break
        if criterion.log_det:
            p = b
            eps = d_act.max() / p - 1.0
            h = p * (1 + eps / 2 - np.sqrt(eps * (4 + eps - 4 / p)) / 2)
            gone = active & (d < h)
            if gone.any() and (active & ~gone).sum() >= 1:
                w[gone] = 0.0
                active &= ~gone
        w = np.where(active, w * np.clip(d, 0, None) / b, 0.0)
        w /= w.sum()
    return w, status, it, history
