"""Exchange algorithm for exact designs on a grid (coordinate exchange).

Sweep over the free samples; for each, try every grid time inside its window that keeps the
spacing to its neighbours, evaluating all of them in one batched FIM call per group, and move the
sample to the best one.  Repeat until a sweep improves the criterion by less than ``tol``.
"""

from __future__ import annotations

import numpy as np

from .engine import IterativeSearch, run
from .result import Status


def snap_to_grid(problem, grid, x):
    """Nearest grid times (within windows), consecutive samples kept at least the spacing apart; dose
    variables stay where they are."""
    x = np.array(x, dtype=float)
    n = getattr(problem, "n_times", x.size)
    x[:n] = grid[np.clip(np.searchsorted(grid, x[:n]), 0, grid.size - 1)]
    return problem.repair(x)


class Exchange(IterativeSearch):
    """One step is a sweep over the free samples; converged when a sweep improves the criterion by less
    than ``tol`` (relative)."""

    phase = "exchange"

    def __init__(self, problem, grid, x, *, tol: float = 1e-9):
        self.problem, self.tol = problem, tol
        self.grid = np.unique(np.asarray(grid, dtype=float))
        self.x0 = x
        self.prev = {b: (a, s) for (a, b), s in zip(problem.pairs, problem.pair_spacing)}
        self.next = {a: (b, s) for (a, b), s in zip(problem.pairs, problem.pair_spacing)}

    def init(self):
        x = snap_to_grid(self.problem, self.grid, self.x0)
        return {"x": x, "value": self.problem.value(x), "gain": None}

    def terminate(self, state):
        val, gain = state["value"], state["gain"]
        if gain is None:
            return None
        if not np.isfinite(val) or (np.isfinite(gain) and gain <= self.tol * max(1.0, abs(val))):
            return Status.CONVERGED
        return None

    def report(self, state) -> dict:
        return {"criterion_value": state["value"], "x": state["x"]}

    def step(self, state):
        problem, grid, tol = self.problem, self.grid, self.tol
        x, val = state["x"], state["value"]
        start_val = val
        for i in range(problem.n_free):
            cand = problem.candidates(i, grid)
            ok = (cand >= problem.lower[i]) & (cand <= problem.upper[i])
            if i in self.prev:
                a, s = self.prev[i]
                ok &= cand >= x[a] + s - 1e-12
            if i in self.next:
                b, s = self.next[i]
                ok &= cand <= x[b] - s + 1e-12
            cand = cand[ok]
            if cand.size == 0:
                continue
            X = np.repeat(x[None], cand.size, axis=0)
            X[:, i] = cand
            vals = problem.values_varying(X, i)
            j = int(np.argmax(vals))
            better = vals[j] > val + tol * max(1.0, abs(val)) if np.isfinite(val) else np.isfinite(vals[j])
            if better:
                x, val = X[j], float(vals[j])
        gain = val - start_val if np.isfinite(start_val) else np.inf
        return {"x": x, "value": val, "gain": gain}


def exchange_from(problem, grid, x, *, max_sweeps: int = 50, tol: float = 1e-9, callback=None, iteration: int = 0):
    """Coordinate exchange from ``x``; returns ``(x, value, sweeps, status)`` with status CONVERGED (a sweep
    improved by less than ``tol``), MAX_ITERATIONS (``max_sweeps`` sweeps) or STOPPED (the callback)."""
    state, status, sweeps = run(Exchange(problem, grid, x, tol=tol), max_iter=max_sweeps, callback=callback,
                                first_iteration=iteration)
    return state["x"], state["value"], sweeps, status
