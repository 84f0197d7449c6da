"""Dose regimens and time vectors: the inputs every model evaluates (a leaf module: the model layer uses
it without knowing about designs).

``Regimen`` holds the dose events of one group (times, amounts, infusion durations); ``check_times``
validates a vector of times (finite, >= 0, sorted); ``as_float_array`` turns user input into a float array
with a message that names where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import DesignError, fmt

#: bound on dose events of one group (a typo must not allocate gigabytes); stated in the message
MAX_DOSES = 100_000


def _as_float_array(values, where: str) -> np.ndarray:
    """A flat float64 array from a number, a list of numbers or a numeric array (no strings, booleans,
    nested lists); the error names ``where`` and the first offending entry."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "fiu":
            raise DesignError(f"{where}: expected numbers, got an array of {values.dtype}")
        arr = np.atleast_1d(values.astype(float, copy=False))
    else:
        items = values if isinstance(values, (list, tuple)) else [values]
        if any(isinstance(v, (list, tuple, np.ndarray)) for v in items):
            raise DesignError(f"{where}: expected a flat list of numbers, got a nested list")
        bad = [v for v in items if isinstance(v, (bool, str, bytes)) or
               not isinstance(v, (int, float, np.integer, np.floating))]
        if bad:
            raise DesignError(f"{where}: expected a number or a list of numbers, got {fmt(bad[0])} "
                              f"({type(bad[0]).__name__})")
        try:
            arr = np.atleast_1d(np.asarray(items, dtype=float))
        except OverflowError:
            raise DesignError(f"{where}: {fmt(values)} has a number too large for a float") from None
    if arr.ndim != 1:
        raise DesignError(f"{where}: expected a flat list of numbers, got shape {arr.shape}")
    return arr


def check_times(times, where: str) -> np.ndarray:
    """Validate sampling times: finite, non-negative, sorted non-decreasingly.

    Returns the times as a float64 array of shape (n,).  Raises ``DesignError`` naming the
    index of the first bad entry.
    """
    arr = _as_float_array(times, where)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise DesignError(f"{where}: time at index {bad[0]} is {fmt(arr[bad[0]])}; times must be finite numbers")
    neg = np.flatnonzero(arr < 0)
    if neg.size:
        raise DesignError(f"{where}: time at index {neg[0]} is {fmt(arr[neg[0]])}; times must be >= 0")
    down = np.flatnonzero(np.diff(arr) < 0)
    if down.size:
        i = down[0] + 1
        raise DesignError(
            f"{where}: times must be sorted in increasing order; index {i} ({fmt(arr[i])}) comes after "
            f"{fmt(arr[i - 1])}"
        )
    return arr


@dataclass(frozen=True)
class Regimen:
    """Dose events of one group.

    Attributes
    ----------
    times : ndarray, shape (n_dose,)
        Dose times (time units of the model), sorted.
    amounts : ndarray, shape (n_dose,)
        Amounts (> 0, dose units of the model) before bioavailability.
    durations : ndarray, shape (n_dose,)
        Infusion durations (> 0 for infusions, 0 otherwise).
    """

    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    amounts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    durations: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self):
        """Built directly (``Regimen(times, amounts[, durations])``): the same checks as ``from_dict``; a single
        amount or duration applies to every dose, no durations means bolus doses."""
        where = "Regimen"
        t = check_times(self.times, f"{where}: times")
        a = _as_float_array(self.amounts, f"{where}: amounts")
        d = _as_float_array(self.durations, f"{where}: durations")
        if a.size == 1 and t.size > 1:
            a = np.full(t.size, a[0])
        if d.size == 0 or (d.size == 1 and t.size > 1):
            d = np.full(t.size, d[0] if d.size else 0.0)
        if not (a.size == t.size == d.size):
            raise DesignError(f"{where}: {t.size} dose times, {a.size} amounts and {d.size} durations")
        if np.any(~(a > 0) | ~np.isfinite(a)):
            raise DesignError(f"{where}: amounts must be finite and > 0, got {fmt(a.tolist())}")
        if np.any(~(d >= 0) | ~np.isfinite(d)):
            raise DesignError(f"{where}: durations must be finite and >= 0, got {fmt(d.tolist())}")
        object.__setattr__(self, "times", t)
        object.__setattr__(self, "amounts", a)
        object.__setattr__(self, "durations", d)

    @classmethod
    def single(cls, amount: float, time: float = 0.0, duration: float = 0.0) -> "Regimen":
        return cls.from_dict({"amount": amount, "times": [time], "duration": duration}, "dose")

    @classmethod
    def from_dict(cls, spec, where: str = "dose") -> "Regimen":
        """Build from ``{amount, times | (interval, count[, start]), duration | rate}`` or a number.

        A number means one dose of that amount at time 0.
        """
        if spec is None:
            return cls()
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            spec = {"amount": spec}
        if not isinstance(spec, dict):
            raise DesignError(f"{where}: expected a number or a table with 'amount', got {fmt(spec)}")
        allowed = {"amount", "times", "interval", "count", "start", "duration", "rate"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise DesignError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        if "amount" not in spec:
            raise DesignError(f"{where}: missing 'amount'")
        if "times" in spec and ("interval" in spec or "count" in spec):
            raise DesignError(f"{where}: give either 'times' or 'interval' and 'count', not both")
        if "times" in spec:
            times = _as_float_array(spec["times"], f"{where}.times")
        elif "interval" in spec or "count" in spec:
            if "interval" not in spec or "count" not in spec:
                raise DesignError(f"{where}: 'interval' and 'count' go together")
            count, interval = spec["count"], spec["interval"]
            if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 1 <= count <= MAX_DOSES:
                raise DesignError(f"{where}.count: expected a whole number from 1 to {MAX_DOSES}, got {fmt(count)}")
            if (not isinstance(interval, (int, float)) or isinstance(interval, bool) or not interval > 0
                    or not np.isfinite(interval)):
                raise DesignError(f"{where}.interval: expected a finite number > 0, got {fmt(interval)}")
            start = _as_float_array(spec.get("start", 0.0), f"{where}.start")
            if start.size != 1:
                raise DesignError(f"{where}.start: expected one number, got {start.size}")
            start = float(start[0])
            times = start + interval * np.arange(count, dtype=float)
        else:
            times = _as_float_array(spec.get("start", 0.0), f"{where}.start")
            if times.size != 1:
                raise DesignError(f"{where}.start: expected one number, got {times.size}")
        if times.size > MAX_DOSES:
            raise DesignError(f"{where}.times: {times.size} dose times; the limit is {MAX_DOSES}")
        times = check_times(times, f"{where}.times")
        amounts = _as_float_array(spec["amount"], f"{where}.amount")
        if amounts.size == 1:
            amounts = np.full(times.size, amounts[0])
        if amounts.size != times.size:
            raise DesignError(f"{where}.amount: {amounts.size} amounts for {times.size} dose times")
        bad = np.flatnonzero(~(amounts > 0) | ~np.isfinite(amounts))
        if bad.size:
            raise DesignError(f"{where}.amount: dose at index {bad[0]} is {fmt(amounts[bad[0]])}; doses must be > 0 "
                              "(and finite)")
        if "rate" in spec:  # zero-order infusion given by its rate: duration = amount / rate
            if "duration" in spec:
                raise DesignError(f"{where}: give either 'duration' or 'rate' of the infusion, not both")
            rates = _as_float_array(spec["rate"], f"{where}.rate")
            bad = np.flatnonzero(~(rates > 0) | ~np.isfinite(rates))
            if bad.size:
                raise DesignError(f"{where}.rate: entry {bad[0]} is {fmt(rates[bad[0]])}; rates must be > 0 (and finite)")
            if rates.size not in (1, amounts.size):
                raise DesignError(f"{where}.rate: {rates.size} rates for {amounts.size} doses")
            spec = dict(spec, duration=(amounts / rates).tolist())
        durations = _as_float_array(spec.get("duration", 0.0), f"{where}.duration")
        if durations.size == 1:
            durations = np.full(times.size, durations[0])
        if durations.size != times.size:
            raise DesignError(f"{where}.duration: {durations.size} durations for {times.size} dose times")
        bad = np.flatnonzero(~(durations >= 0) | ~np.isfinite(durations))
        if bad.size:
            raise DesignError(f"{where}.duration: entry {bad[0]} is {fmt(durations[bad[0]])}; durations must be finite "
                              "and >= 0")
        return cls(times, amounts, durations)

    def to_dict(self) -> dict:
        return {"times": self.times.tolist(), "amount": self.amounts.tolist(), "duration": self.durations.tolist()}


def check_occasions(occasions, regimen, where: str):
    """Occasion start times: "doses" (kept as such) or a sorted list of distinct times >= 0, each occasion
    holding at least one dose (returned as a tuple of floats)."""
    if isinstance(occasions, str):
        if occasions != "doses":
            raise DesignError(f'{where}: occasions must be a list of start times or "doses", got {occasions!r}')
        if regimen.times.size == 0:
            raise DesignError(f'{where}: occasions = "doses" but the group has no doses')
        return occasions
    starts = check_times(list(occasions) if isinstance(occasions, tuple) else occasions, f"{where}: occasions")
    if starts.size and np.any(np.diff(starts) <= 0):
        raise DesignError(f"{where}: occasions: start times must be distinct, got {fmt(list(starts))}")
    bounds = np.append(starts, np.inf)
    for k in range(starts.size):
        if not np.any((regimen.times >= bounds[k]) & (regimen.times < bounds[k + 1])):
            raise DesignError(f"{where}: occasion {k + 1} (from t = {starts[k]:g} to {bounds[k + 1]:g}) has no dose; "
                              "each occasion opens with a dose")
    return tuple(float(x) for x in starts)


def occasion_starts(occasions, regimen) -> np.ndarray:
    """Start times of the occasions of checked ``occasions`` ("doses": every dose time; empty: one occasion)."""
    if occasions == "doses":
        return np.unique(regimen.times)
    return np.asarray(occasions, dtype=float)


def occasion_index(starts, times, doses: bool = False) -> np.ndarray:
    """0-based occasion of each time for occasion ``starts``: a sample at an occasion's start (its trough) belongs
    to the occasion before, a dose at it to the occasion it opens; times before the first start to the first."""
    side = "right" if doses else "left"
    return np.maximum(np.searchsorted(starts, times, side=side) - 1, 0)
