"""Continuous optimisation of sampling times (exact designs) from one start.

SLSQP (scipy) maximises the criterion of the population FIM over the free sampling times, within
their windows and with consecutive samples at least ``min_spacing`` apart (linear constraints),
using the gradient of ``ScheduleProblem``.
"""

from __future__ import annotations

import numpy as np


def polish(problem, x0, *, max_iter: int = 300, tol: float = 1e-10):
    """Local optimum from ``x0``; returns ``(x, value, iterations)``."""
    from scipy.optimize import minimize  # lazy: keeps `import pkdesign` fast

    pairs = problem.spacing_pairs()
    cons = []
    if pairs:
        A = np.zeros((len(pairs), problem.n_free))
        for r, (a, b) in enumerate(pairs):
            A[r, a], A[r, b] = -1.0, 1.0
        s = problem.min_spacing
        cons = [{"type": "ineq", "fun": lambda x: A @ x - s, "jac": lambda x: A}]

    def fun(x):
        v, g = problem.value_and_gradient(x)
        if not np.isfinite(v):
            return 1e10, np.zeros_like(x)
        return -v, -g

    x0 = problem.repair(x0)
    res = minimize(fun, x0, jac=True, method="SLSQP", bounds=list(zip(problem.lower, problem.upper)),
                   constraints=cons, options={"maxiter": max_iter, "ftol": tol})
    x = problem.repair(res.x)
    v = problem.value(x)
    v0 = problem.value(x0)
    if not v >= v0:  # SLSQP may stop at a worse point when started on the boundary
        return x0, v0, int(res.nit)
    return x, v, int(res.nit)
