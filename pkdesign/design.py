"""Designs: groups of subjects, their dose regimens and sampling times.

Sits between the model and the FIM: a ``Design`` says, for each group, how many subjects
(``n``; a weight in an approximate design), which doses at which times, and when each output is
sampled.  All validation of user-supplied times and doses happens here, with messages that give
the group, the output and the index of the first offending entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import DesignError, fmt


#: upper limits that keep a typo from allocating gigabytes (stated in the messages)
MAX_DOSES = 100_000        # dose events of one group
MAX_SAMPLES = 10_000_000   # sampling times of one output of one group
MAX_SUBJECTS = 1e9         # subjects (or weight) of one group


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


@dataclass(frozen=True)
class Group:
    """A group (arm) of subjects sharing dose regimen and sampling times.

    Attributes
    ----------
    n : float
        Number of subjects (exact design) or weight (approximate design), > 0.
    times : dict of str -> ndarray
        Sampling times per output name, each sorted, >= 0 (model time units).
    regimen : Regimen
        Dose events.
    """

    n: float
    times: dict
    regimen: Regimen = field(default_factory=Regimen)
    name: str = ""

    def __post_init__(self):
        where = f"group {self.name!r}" if self.name else "group"
        if isinstance(self.n, bool) or not isinstance(self.n, (int, float, np.integer, np.floating)):
            raise DesignError(f"{where}: n must be a number > 0, got {fmt(self.n)} ({type(self.n).__name__})")
        if not (np.isfinite(self.n) and 0 < self.n <= MAX_SUBJECTS):
            raise DesignError(f"{where}: n must be > 0 and at most {MAX_SUBJECTS:g}, got {fmt(self.n)}")
        if not isinstance(self.times, dict):
            raise DesignError(f"{where}: times must be a table output -> list of times, got {fmt(self.times)}")
        checked = {}
        for k, v in self.times.items():
            arr = check_times(v, f"{where}, output {k!r}")
            if arr.size > MAX_SAMPLES:
                raise DesignError(f"{where}, output {k!r}: {arr.size} sampling times; the limit is {MAX_SAMPLES}")
            checked[k] = arr
        object.__setattr__(self, "times", checked)

    def observations(self, output_names) -> tuple:
        """Flatten the sampling times: (times (n_obs,), output index (n_obs,) int64), outputs in model order."""
        unknown = sorted(set(self.times) - set(output_names))
        if unknown:
            raise DesignError(
                f"group {self.name!r}: sampling times for unknown output(s) {unknown}; the model has {list(output_names)}"
            )
        ts, idx = [], []
        for k, name in enumerate(output_names):
            if name in self.times:
                ts.append(self.times[name])
                idx.append(np.full(self.times[name].size, k, dtype=np.int64))
        if not ts:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        return np.concatenate(ts), np.concatenate(idx)


def check_window(window, where: str = "window") -> tuple:
    """A sampling window (lo, hi): finite, 0 <= lo < hi (model time units)."""
    arr = _as_float_array(window, where)
    if arr.size != 2 or not np.all(np.isfinite(arr)) or not 0 <= arr[0] < arr[1]:
        raise DesignError(f"{where}: expected [lo, hi] with finite 0 <= lo < hi, got {fmt(list(arr))}")
    return (float(arr[0]), float(arr[1]))


@dataclass(frozen=True)
class Design:
    """A design: a tuple of groups, and optionally the window (lo, hi) in which a search may move
    the sampling times (default: from 0 to the last sampling time)."""

    groups: tuple
    window: tuple | None = None

    def __post_init__(self):
        object.__setattr__(self, "groups", tuple(self.groups))
        if not self.groups:
            raise DesignError("a design needs at least one group")
        if self.window is not None:
            object.__setattr__(self, "window", check_window(self.window))

    @property
    def total_n(self) -> float:
        return float(sum(g.n for g in self.groups))

    @classmethod
    def from_dict(cls, data, output_names=None, where: str = "design") -> "Design":
        """Build from ``{"groups": [{n, times, dose, name}, ...]}`` as in a model or design file.

        ``times`` is a table output -> list, or a plain list for a one-output model (``output_names``
        needed then).
        """
        if not isinstance(data, dict) or "groups" not in data:
            got = f"a table with keys {sorted(data)}" if isinstance(data, dict) else fmt(data)
            raise DesignError(f"{where}: expected a table with a 'groups' list, got {got}")
        unknown = sorted(set(data) - {"groups", "window"})
        if unknown:
            raise DesignError(f"{where}: unknown key(s) {unknown}; allowed: ['groups', 'window']")
        window = check_window(data["window"], f"{where}.window") if "window" in data else None
        groups = data["groups"]
        if not isinstance(groups, list) or not groups:
            raise DesignError(f"{where}.groups: expected a non-empty list of groups")
        out = []
        for i, g in enumerate(groups):
            w = f"{where}.groups[{i}]"
            if not isinstance(g, dict):
                raise DesignError(f"{w}: expected a table, got {fmt(g)}")
            unknown = sorted(set(g) - {"n", "times", "dose", "name"})
            if unknown:
                raise DesignError(f"{w}: unknown key(s) {unknown}; allowed: ['dose', 'n', 'name', 'times']")
            if "n" not in g or "times" not in g:
                raise DesignError(f"{w}: each group needs 'n' and 'times'")
            times = g["times"]
            if not isinstance(times, dict):
                if output_names is None:
                    raise DesignError(f"{w}.times: a plain list needs the model (for its output name); give the "
                                      "model, or write times as a table output -> list")
                if len(output_names) != 1:
                    raise DesignError(
                        f"{w}.times: the model has outputs {list(output_names)}; give times as a table output -> list"
                    )
                times = {output_names[0]: times}
            name = str(g.get("name", f"group{i + 1}"))
            regimen = Regimen.from_dict(g.get("dose"), f"{w}.dose")  # its messages carry the location already
            try:
                out.append(Group(g["n"], times, regimen, name))
            except DesignError as exc:
                raise DesignError(f"{w}: {exc}") from None
        return cls(tuple(out), window)

    @classmethod
    def load(cls, path, model=None) -> "Design":
        """Read the design of a design file (TOML, or JSON by suffix; see ``designfile``).  ``model`` (a
        model or spec) is needed only for times written as plain lists."""
        from .designfile import read_design_file

        spec = getattr(model, "spec", model)
        return read_design_file(path, spec.output_names if spec is not None else None).design

    def save(self, path):
        """Write this design to ``path`` (TOML, or JSON by suffix), atomically; ``Design.load`` reads it back
        exactly.  Returns the path."""
        from .designfile import save_design

        return save_design(self, path)

    # -- how it reads ------------------------------------------------------------------------
    def __repr__(self) -> str:
        groups = "; ".join(f"{g.name or 'group'} n={g.n:g}: " + ", ".join(
            f"{k} x{v.size}" for k, v in g.times.items()) for g in self.groups[:3])
        more = f"; ... ({len(self.groups)} groups)" if len(self.groups) > 3 else ""
        win = f"; window {self.window[0]:g}-{self.window[1]:g}" if self.window is not None else ""
        return f"<Design {len(self.groups)} group(s), {self.total_n:g} subjects: {groups}{more}{win}>"

    def to_frame(self):
        """pandas DataFrame, one row per group and output: n, doses, number of samples, sampling times."""
        import pandas as pd

        from .display import num, times_text

        rows = []
        for g in self.groups:
            r = g.regimen
            dose = "none" if r.times.size == 0 else (
                f"{num(r.amounts[0])} x{r.times.size}" if np.all(r.amounts == r.amounts[0]) else
                "/".join(num(a) for a in r.amounts[:4]) + ("/..." if r.amounts.size > 4 else ""))
            if np.any(r.durations > 0):
                dose += f" over {num(r.durations.max())}"
            for out, t in (g.times.items() or [("", np.zeros(0))]):
                rows.append({"group": g.name, "n": g.n, "dose": dose, "output": out, "samples": int(t.size),
                             "times": times_text(t, 12)})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """Text table of the groups (see ``to_frame``)."""
        return repr(self) + "\n" + self.to_frame().to_string(index=False)

    def _repr_html_(self) -> str:
        from .display import html_table

        return html_table(self.to_frame(), repr(self)[1:-1])

    def to_dict(self) -> dict:
        return ({"window": list(self.window)} if self.window is not None else {}) | {
            "groups": [
                {
                    "name": g.name,
                    "n": g.n,
                    "times": {k: v.tolist() for k, v in g.times.items()},
                    "dose": g.regimen.to_dict(),
                }
                for g in self.groups
            ]
        }
