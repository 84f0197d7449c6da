"""Exchange algorithm for exact designs on a grid (coordinate exchange).

Sweep over the free samples; for each, try every grid time inside its window that keeps the
spacing to its neighbours, evaluating all of them in one batched FIM call per group, and move the
sample to the best one.  Repeat until a sweep improves the criterion by less than ``tol``.
"""

from __future__ import annotations

import numpy as np


def snap_to_grid(problem, grid, x):
    """Nearest grid times (within windows), consecutive samples kept at least the spacing apart."""
    x = np.asarray(x, dtype=float)
    return problem.repair(grid[np.clip(np.searchsorted(grid, x), 0, grid.size - 1)])


def exchange_from(problem, grid, x, *, max_sweeps: int = 50, tol: float = 1e-9, callback=None):
    """Coordinate exchange from ``x``; returns ``(x, value, sweeps, status)`` with status CONVERGED (a sweep
    improved by less than ``tol``), MAX_ITERATIONS (``max_sweeps`` sweeps) or STOPPED (the callback)."""
    from .result import Status

    grid = np.unique(np.asarray(grid, dtype=float))
    pairs = problem.spacing_pairs()
    prev = {b: a for a, b in pairs}
    nxt = {a: b for a, b in pairs}
    s = problem.min_spacing
    x = snap_to_grid(problem, grid, x)
    val = problem.value(x)
    sweeps = 0
    for _ in range(max_sweeps):
        sweeps += 1
        start_val = val
        for i in range(problem.n_free):
            ok = (grid >= problem.lower[i]) & (grid <= problem.upper[i])
            if i in prev:
                ok &= grid >= x[prev[i]] + s - 1e-12
            if i in nxt:
                ok &= grid <= x[nxt[i]] - s + 1e-12
            cand = grid[ok]
            if cand.size == 0:
                continue
            X = np.repeat(x[None], cand.size, axis=0)
            X[:, i] = cand
            vals = problem.values_varying(X, i)
            j = int(np.argmax(vals))
            better = vals[j] > val + tol * max(1.0, abs(val)) if np.isfinite(val) else np.isfinite(vals[j])
            if better:
                x, val = X[j], float(vals[j])
        if callback is not None and callback({"iteration": sweeps, "criterion_value": val, "x": x,
                                              "phase": "exchange"}):
            return x, val, sweeps, Status.STOPPED
        if not np.isfinite(val) or (np.isfinite(start_val) and val - start_val <= tol * max(1.0, abs(val))):
            return x, val, sweeps, Status.CONVERGED
    return x, val, sweeps, Status.MAX_ITERATIONS
