"""One entry point for exact-design searches: ``optimize_design``.

Algorithms:
- ``exchange``: coordinate exchange on a grid (``exchange.py``);
- ``continuous``: the same exchange as a cheap global phase, then SLSQP on the sampling times off the
  grid from its end point (``continuous.py``) — like the random/line search PopED's ``poped_optim``
  runs before its gradient step.
Each of ``starts`` starts (the given design, then random feasible schedules from ``seed``) runs
both phases; the best end point wins.

Approximate designs over candidate schedules are ``optimize_approximate`` (``approximate.py``).
"""

from __future__ import annotations

import numpy as np

from ..choices import EXACT_ALGORITHMS
from ..criteria import check_options
from ..errors import SearchError
from ..executors import check_executor, gather, submit
from ..fim.api import evaluate_fim
from .continuous import polish
from ..space import exact_spaces
from .allocation import allocate_sizes, check_total, set_sizes
from .exact import ScheduleProblem
from .exchange import exchange_from
from .result import DesignResult, Status



def optimize_design(model, design=None, criterion="D", algorithm: str = "continuous", *, approximation="fo",
                    fim=None, space=None, window=None, windows=None, min_spacing=0.0, fixed=None, grid=None,
                    starts=4, seed=0,
                    prior=None, prior_draws=16, subset=None, a_weights=None, max_iter=300,
                    callback=None, throw: bool = False, prior_fim=None, draws: int | None = None, doses=None,
                    total_n=None, executor=None) -> DesignResult:
    """Optimise the sampling times of ``design`` (default: the model's), and optionally its doses and group sizes.

    Parameters
    ----------
    criterion : "D" | "Ds" | "A" | "ED" | "ELD" | "c:QUANTITY" | "L:..." or a ``Criterion``
    algorithm : "continuous" | "exchange"
    space : ``SamplingSpace`` (every group) or dict group name -> ``SamplingSpace``: windows, minimum spacing,
        fixed samples and candidate grid of the free samples (the same object as for approximate designs; its
        ``n_samples`` is taken from the design).  Or, as shorthands for the same thing (``space.exact_spaces``):
    window : (lo, hi) for all free samples (default: the design's ``window``, else 0 to the latest time of
        the group)
    windows : dict group name -> list of (lo, hi), one per free sample
    min_spacing : minimum distance between consecutive samples of a group and output
    fixed : dict group name -> times that are not moved
    grid : candidate times for the exchange algorithm (default: 121 points across the windows)
    starts : number of starts; seed : random starts (same seed, same design)
    prior : ``Prior`` for ED (``prior_draws`` draws)
    subset : names of interest for Ds; a_weights : weights for A
    callback : called with a state dict (iteration, criterion_value, x, phase "exchange" or "slsqp") after every
        exchange sweep and every SLSQP iteration; return True to stop (status STOPPED)
    max_iter : SLSQP iterations per start
    prior_fim : FIMResult or (p, p) array: information from a previous study, added to every candidate's FIM
    draws : FOCE/FOCEI linearisation points; the same draws (from ``seed``) for every candidate, so the
        criterion is a smooth function of the times
    throw : raise ``SearchError`` when the search ends FAILED or at MAX_ITERATIONS (default: return the best
        design with that status; ``result.status.advice`` says what to do)
    doses : dict group name -> (lo, hi) or [levels]: the amount of every dose of the group is a decision too,
        continuous within the bounds or one of the levels (``search/doses.py``)
    total_n : a whole number of subjects: the group sizes are a decision too (integer allocation by exchange,
        each group at least one subject), alternated with the times and doses until the sizes settle
    executor : a ``concurrent.futures.Executor`` (process pool with spawn, a Dask client's executor): the starts
        run there as independent tasks, with the same starting points and results as serially (the callback is
        not called from workers)
    """
    design = design if design is not None else model.spec.default_design
    check_options(criterion, subset, a_weights, prior)
    if design is None:
        raise SearchError(f"model {model.spec.name!r} has no default design; give one")
    if algorithm not in EXACT_ALGORITHMS:
        raise SearchError(f"algorithm: expected one of {list(EXACT_ALGORITHMS)} for exact designs, got {algorithm!r}")
    spaces = exact_spaces(design, model.spec.output_names, space=space, window=window, windows=windows,
                          min_spacing=min_spacing, fixed=fixed, grid=grid)
    prior_values = None
    crit_name = criterion if isinstance(criterion, str) else criterion.name
    if (str(crit_name).upper() in ("ED", "ELD") or str(crit_name)[:3].lower() in ("ec:", "el:")
            or getattr(criterion, "stacked", False)):
        if prior is None:
            raise SearchError(f"criterion {crit_name} needs a prior on the fixed effects")
        prior.check(model.spec.parameter_names)
        prior_values = prior.draws(prior_draws, seed)
    problem = ScheduleProblem(model, design, criterion, spaces=spaces, approximation=approximation, fim=fim,
                              prior_values=prior_values, subset=subset, a_weights=a_weights, prior_fim=prior_fim,
                              draws=draws, seed=seed, doses=doses)
    if total_n is not None:
        check_total(total_n, len(design.groups))
    grid = problem.grid()
    rng = np.random.default_rng(seed)
    x_start = problem.repair(problem.x0())
    start_value = problem.value(x_start)
    best_x, value, iters, history = None, -np.inf, 0, []
    status, detail = Status.CONVERGED, ""
    starts = max(1, starts)
    if executor is not None and starts > 1:  # the starts as independent tasks (same starting points as serially)
        check_executor(executor)
        x0s = [x_start] + [problem.feasible_start(rng) for _ in range(starts - 1)]
        runs = gather([submit(executor, _one_start, problem, grid, x0, algorithm, max_iter) for x0 in x0s],
                      "search starts")
    else:
        runs = []
        for k in range(starts):
            x0 = x_start if k == 0 else problem.feasible_start(rng)
            runs.append(_one_start(problem, grid, x0, algorithm, max_iter, callback, iters))
            iters = sum(r[2] for r in runs)
            if runs[-1][3] == Status.STOPPED:
                break
    for x, v, nit, st, why, evaluations in runs:
        history.append(v)
        if v > value or best_x is None:
            best_x, value, status, detail = x, v, st, why
        if st == Status.STOPPED:
            status = Status.STOPPED
    iters = sum(r[2] for r in runs)
    if executor is not None and starts > 1:
        problem.evaluations += sum(r[5] for r in runs)
    x = best_x
    if not np.isfinite(value):
        raise SearchError("the search found no design with a non-singular FIM: " + _diagnose(problem, x_start))
    allocation = ""
    if total_n is not None and status != Status.STOPPED:  # sizes, then times and doses again, until settled
        for _ in range(4):
            sizes, v, moves = allocate_sizes(problem, x, total_n)
            changed = sizes != [int(b.group.n) for b in problem.blocks] or moves
            set_sizes(problem, sizes)
            value = v
            if not changed:
                break
            if algorithm == "continuous":
                x, value, nit, st, detail = polish(problem, x, max_iter=max_iter, callback=callback, iteration=iters)
                iters += nit
        allocation = f"; group sizes {sizes} (total {total_n})"
    best = problem.to_design(x)
    res_fim = evaluate_fim(model, best, approximation, fim, check=False, prior_fim=prior_fim, draws=draws, seed=seed)
    note = "" if np.isfinite(start_value) else f" (the starting design was singular: {_diagnose(problem, x_start)})"
    why = "" if status == Status.CONVERGED else f" ({detail}; {status.advice})"
    msg = (f"{algorithm}: {status.value}{why}{note}; criterion {crit_name} from {start_value:.6g} (start) to "
           f"{value:.6g}{allocation}; {problem.evaluations} schedule FIMs")
    if throw and status in (Status.FAILED, Status.MAX_ITERATIONS):
        raise SearchError(msg)
    return DesignResult(best, res_fim, problem.criterion.name, float(value), status, msg, iters, problem.evaluations,
                        history=history, info={"start_value": float(start_value), "algorithm": algorithm,
                                               "min_spacing": float(max((sp.min_spacing for sp in spaces.values()), default=0.0))})


def _one_start(problem, grid, x0, algorithm, max_iter, callback=None, iteration=0):
    """One start: exchange on the grid (the global phase), then, for "continuous", the gradient polish off the
    grid.  Returns (x, value, iterations, status, message, schedule FIMs evaluated)."""
    before = problem.evaluations
    x, v, sweeps, st = exchange_from(problem, grid, x0, callback=callback, iteration=iteration)
    nit, why = sweeps, f"exchange: {sweeps} sweeps"
    if algorithm == "continuous" and st != Status.STOPPED and np.isfinite(v):
        x, v, n2, st, why = polish(problem, x, max_iter=max_iter, callback=callback, iteration=iteration + sweeps)
        nit += n2
    return x, v, nit, st, why, problem.evaluations - before


def _diagnose(problem, x) -> str:
    from ..fim.result import describe_null

    text = describe_null(problem.names, problem.total_fims(x)[0])
    return f"not identifiable along {text}; add samples, widen the windows or fix parameters"
