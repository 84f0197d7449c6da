"""One iterative search engine: a small base class and the one loop that drives every algorithm.

An algorithm is an ``IterativeSearch`` (after optimistix's iterative solvers): ``init`` returns the
starting state, ``terminate`` says whether the state meets the algorithm's stopping rule (a
``Status`` or ``None`` to go on), ``step`` returns the next state, ``report`` the few numbers a
callback sees.  ``run`` owns the loop, the iteration limit and the callback, so every algorithm
stops, counts and reports the same way:

    state = init()
    repeat up to max_iter times:
        terminate(state) -> stop with that status
        callback({"iteration", "phase", **report(state)}) returns True -> stop, STOPPED
        state = step(state)
    otherwise MAX_ITERATIONS

The coordinate exchange (``exchange.py``), Fedorov–Wynn (``fedorov_wynn.py``) and the
multiplicative algorithm (``multiplicative.py``) are such searches.  The continuous phase of exact
searches is scipy's SLSQP, whose loop is its own: it reports through the same callback with phase
"slsqp" and the same statuses (``continuous.py``).
"""

from __future__ import annotations

from .result import Status


class IterativeSearch:
    """Base of the iterative algorithms; subclasses set ``phase`` and implement the four methods."""

    phase = "search"

    def init(self):
        """The starting state."""
        raise NotImplementedError

    def terminate(self, state):
        """``Status.CONVERGED`` (or another ``Status``) when the stopping rule holds, else ``None``."""
        raise NotImplementedError

    def step(self, state):
        """The state after one iteration."""
        raise NotImplementedError

    def report(self, state) -> dict:
        """What the callback sees besides ``iteration`` and ``phase`` (e.g. ``criterion_value``)."""
        return {}


def run(search: IterativeSearch, *, max_iter: int, callback=None, first_iteration: int = 0):
    """Drive ``search``: returns ``(state, status, steps)``; ``steps`` iterations were taken.

    ``callback(state_dict)`` is called before every step with ``iteration`` (counted from
    ``first_iteration`` + 1, so phases of one search number on), ``phase`` and the search's
    ``report``; returning True stops the search with ``Status.STOPPED``.
    """
    state = search.init()
    for steps in range(max_iter):
        status = search.terminate(state)
        if status is not None:
            return state, status, steps
        if callback is not None and callback({"iteration": first_iteration + steps + 1, "phase": search.phase,
                                              **search.report(state)}):
            return state, Status.STOPPED, steps
        state = search.step(state)
    status = search.terminate(state)
    return state, status if status is not None else Status.MAX_ITERATIONS, max_iter
