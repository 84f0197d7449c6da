"""Continuous optimisation of sampling times (exact designs) from one start.

SLSQP (scipy) maximises the criterion of the population FIM over the free sampling times, within
their windows and with consecutive samples at least their space's ``min_spacing`` apart (linear constraints),
using the gradient of ``ScheduleProblem``.
"""

from __future__ import annotations

import numpy as np


#: SLSQP exits that one restart from its last point may cure: 4 inequality constraints incompatible, 6 singular
#: matrix C in the least-squares subproblem, 8 positive directional derivative for linesearch
RESTART_EXITS = (4, 6, 8)


def polish(problem, x0, *, max_iter: int = 300, tol: float = 1e-10, callback=None, iteration: int = 0):
    """Local optimum from ``x0``; returns ``(x, value, iterations, status, message)``.

    ``status`` is SLSQP's own verdict: CONVERGED (its exit 0), MAX_ITERATIONS (exit 9), STOPPED (the
    callback returned True), FAILED (any other exit; ``message`` is SLSQP's).  An exit in ``RESTART_EXITS`` (a
    breakdown of its quasi-Newton model) gets one restart from SLSQP's last point; the verdict is the restart's and
    the message says so."""
    from scipy.optimize import minimize  # lazy: keeps `import pkdesign` fast

    from .result import Status

    pairs = problem.pairs
    cons = []
    if pairs:
        A = np.zeros((len(pairs), problem.n_free))
        for r, (a, b) in enumerate(pairs):
            A[r, a], A[r, b] = -1.0, 1.0
        s = problem.pair_spacing
        cons = [{"type": "ineq", "fun": lambda x: A @ x - s, "jac": lambda x: A}]

    def fun(x):
        v, g = problem.value_and_gradient(x)
        if not np.isfinite(v):
            return 1e10, np.zeros_like(x)
        return -v, -g

    count = [iteration]
    stopped = [False]

    def step(xk):
        count[0] += 1
        if callback is not None and callback({"iteration": count[0], "criterion_value": problem.value(xk), "x": xk,
                                              "phase": "slsqp"}):
            stopped[0] = True
            raise StopIteration

    x0 = problem.repair(x0)
    bounds = problem.polish_bounds(x0) if hasattr(problem, "polish_bounds") else list(zip(problem.lower,
                                                                                           problem.upper))

    def run(start):
        return minimize(fun, start, jac=True, method="SLSQP", bounds=bounds,
                        constraints=cons, options={"maxiter": max_iter, "ftol": tol}, callback=step)

    res = run(x0)
    note = ""
    if not stopped[0] and res.status in RESTART_EXITS:
        # SLSQP's quasi-Newton model can break down near active bounds and spacing constraints ("inequality
        # constraints incompatible", "positive directional derivative for linesearch", "singular matrix"),
        # which rounding at the last bit decides; one restart from its last point resets that model
        first, nit = res, int(res.nit)
        res = run(problem.repair(first.x))
        res.nit = nit + int(res.nit)
        note = f" (after one restart from its last point; first exit: {first.message})"
    if stopped[0]:
        status = Status.STOPPED
    elif res.status == 0:
        status = Status.CONVERGED
    elif res.status == 9:
        status = Status.MAX_ITERATIONS
    else:
        status = Status.FAILED
    x = problem.repair(res.x)
    v = problem.value(x)
    v0 = problem.value(x0)
    if not v >= v0:  # SLSQP may stop at a worse point when started on the boundary
        x, v = x0, v0
    return x, v, int(res.nit), status, f"SLSQP: {res.message}{note}"
