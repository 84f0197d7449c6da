"""Rounding an approximate design to integer group sizes: efficient apportionment
(Pukelsheim & Rieder 1992, Biometrika 79:763-770).

Start from n_i = ⌈(N − l/2) w_i⌉ (l support points), then, while Σn_i < N, increase a group with
the smallest n_j / w_j; while Σn_i > N, decrease one with the largest (n_k − 1) / w_k.  The
result minimises the worst loss of efficiency among roundings (for all criteria at once).
"""

from __future__ import annotations

import numpy as np

from ..errors import DesignError, fmt


def apportion(weights, total: int) -> np.ndarray:
    """Integer sizes (l,) summing to ``total`` for weights (l,) (> 0, normalised here)."""
    w = np.asarray(weights, dtype=float)
    if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or total < 1:
        raise DesignError(f"total number of subjects must be a whole number >= 1, got {fmt(total)}")
    if w.ndim != 1 or w.size == 0 or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise DesignError("weights must be a non-empty vector of non-negative numbers")
    w = w / w.sum()
    pos = w > 0
    n = np.zeros(w.size, dtype=np.int64)
    n[pos] = np.ceil((total - pos.sum() / 2) * w[pos]).astype(np.int64)
    while n.sum() < total:
        ratio = np.where(pos, n / np.where(pos, w, 1), np.inf)
        n[int(np.argmin(ratio))] += 1
    while n.sum() > total:
        ratio = np.where(pos & (n > 0), (n - 1) / np.where(pos, w, 1), -np.inf)
        n[int(np.argmax(ratio))] -= 1
    return n
