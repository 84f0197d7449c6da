"""Dose amounts as decision variables of exact-design searches.

``doses={"group": (lo, hi)}`` lets the amount of every dose of that group move continuously within
[lo, hi]; ``doses={"group": [a1, a2, ...]}`` restricts it to a discrete set (the exchange tries every
level; the gradient phase keeps it).  The variables follow the free sampling times in the search vector.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import SearchError, fmt

#: candidate amounts per continuous dose variable in the exchange phase
EXCHANGE_LEVELS = 9


class DoseVariables:
    """The dose variables of a design: ``blocks`` (index of the group of each variable), ``lower``/``upper``
    (bounds, model amount units), ``levels`` (a sorted array for a discrete set, else None)."""

    def __init__(self, design, doses):
        names = [g.name for g in design.groups]
        doses = doses or {}
        if not isinstance(doses, dict):
            raise SearchError(f"doses: expected a table group name -> (lo, hi) or [levels], got {fmt(doses)}")
        unknown = sorted(set(doses) - set(names))
        if unknown:
            raise SearchError(f"doses names unknown group(s) {unknown}; the design has {names}")
        self.blocks, self.lower, self.upper, self.levels = [], [], [], []
        for gi, g in enumerate(design.groups):
            if g.name not in doses:
                continue
            where = f"doses[{g.name!r}]"
            if g.regimen.times.size == 0:
                raise SearchError(f"{where}: group {g.name!r} has no doses to optimise")
            spec = doses[g.name]
            if isinstance(spec, tuple) and len(spec) == 2:
                lo, hi = (float(v) for v in spec)
                levels = None
            elif isinstance(spec, (list, np.ndarray)) and len(spec) >= 1:
                levels = np.unique(np.asarray(spec, dtype=float))
                lo, hi = float(levels[0]), float(levels[-1])
            else:
                raise SearchError(f"{where}: expected (lo, hi) bounds or a list of dose levels, got {fmt(spec)}")
            if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
                raise SearchError(f"{where}: dose amounts must be finite and > 0 with lo <= hi, got {fmt(spec)}")
            self.blocks.append(gi)
            self.lower.append(lo)
            self.upper.append(hi)
            self.levels.append(levels)
        self.lower, self.upper = np.array(self.lower, dtype=float), np.array(self.upper, dtype=float)

    @property
    def n(self) -> int:
        return len(self.blocks)

    def x0(self, design) -> np.ndarray:
        """The design's own amounts (the first dose of each group), clipped to the bounds."""
        a = np.array([design.groups[gi].regimen.amounts[0] for gi in self.blocks], dtype=float)
        return self.snap(np.clip(a, self.lower, self.upper))

    def snap(self, d) -> np.ndarray:
        """Discrete variables to their nearest level."""
        d = np.array(d, dtype=float)
        for j, lv in enumerate(self.levels):
            if lv is not None:
                d[j] = lv[np.argmin(np.abs(lv - d[j]))]
        return d

    def candidates(self, j) -> np.ndarray:
        lv = self.levels[j]
        return lv if lv is not None else np.linspace(self.lower[j], self.upper[j], EXCHANGE_LEVELS)

    def discrete(self, j) -> bool:
        return self.levels[j] is not None


def with_amount(regimen, amount: float):
    """``regimen`` with every dose of amount ``amount`` (durations, times unchanged)."""
    return replace(regimen, amounts=np.full(regimen.amounts.shape, float(amount)))
