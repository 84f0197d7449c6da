"""Robustness of a design to sampling windows: how much information is lost when samples are taken at
random times inside windows around the nominal times (PopED's ``plot_efficiency_of_windows``).

``window_efficiency(model, design, width=0.5, n=200, seed=0)`` draws, ``n`` times, every sampling time
uniformly in [t - width, t + width] (``relative=True``: [t(1 - width), t(1 + width)]; clipped at 0 and kept
in order within each output), evaluates the population FIM of each perturbed design and returns its
efficiency against the nominal design under the criterion (D by default: (det F / det F_nominal)^(1/p)),
with a summary (``WindowEfficiency``).  ``optimize_window_width`` finds the widest windows for which at least
``coverage`` of the simulated studies keep an efficiency of at least ``level``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .errors import DesignError


@dataclass(frozen=True)
class WindowEfficiency:
    """Efficiencies (n,) of designs with sampling times drawn in the windows, against the nominal design."""

    efficiencies: np.ndarray
    width: float
    criterion: str
    seed: object

    def quantile(self, q) -> float:
        return float(np.quantile(self.efficiencies, q))

    def fraction_above(self, level: float) -> float:
        """Share of the simulated studies whose efficiency is at least ``level``."""
        return float(np.mean(self.efficiencies >= level))

    def __repr__(self) -> str:
        e = self.efficiencies
        return (f"<WindowEfficiency ±{self.width:g}: {self.criterion}-efficiency median {np.median(e):.4f}, "
                f"5% {self.quantile(0.05):.4f}, min {e.min():.4f} over {e.size} draws>")

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"efficiency": self.efficiencies})

    def plot(self, ax=None):
        """Histogram of the efficiencies with the 5% quantile marked (a matplotlib Figure)."""
        from .plot import _figure

        fig, (a,) = _figure(ax)
        a.hist(self.efficiencies, bins=30, color="C0", alpha=0.8)
        a.axvline(self.quantile(0.05), color="C3", linestyle="--", label=f"5% quantile {self.quantile(0.05):.3f}")
        a.set_xlabel(f"{self.criterion}-efficiency against the nominal design (unitless)")
        a.set_ylabel("simulated studies")
        a.set_title(f"sampling windows ±{self.width:g}")
        a.legend(fontsize=8)
        return fig


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 1_000_000:
        raise DesignError(f"n: expected a whole number from 1 to 1000000, got {n!r}")


class _Perturbed:
    """Efficiencies of the design with its times moved by ``width`` times fixed uniform draws in [-1, 1] (the
    same draws for every width: common random numbers, so the efficiency is smooth in the width)."""

    def __init__(self, model, design, n, seed, approximation, fim, criterion, outputs):
        from .criteria import make_criterion
        from .fim.api import evaluate_fim

        _check_n(n)
        self.model, self.design, self.approximation, self.fim, self.outputs = model, design, approximation, fim, outputs
        self.nominal = evaluate_fim(model, design, approximation, fim)
        self.crit = (make_criterion(criterion, list(self.nominal.names), spec=model) if isinstance(criterion, str)
                     else criterion)  # built once, not per draw
        rng = np.random.default_rng(seed)
        self.draws = [[{o: rng.uniform(-1.0, 1.0, t.size) for o, t in g.times.items()} for g in design.groups]
                      for _ in range(n)]

    def efficiencies(self, width: float, relative: bool) -> np.ndarray:
        from .comparison import efficiency
        from .design import Design
        from .fim.api import evaluate_fim

        out = np.empty(len(self.draws))
        for k, draw in enumerate(self.draws):
            groups = []
            for g, u in zip(self.design.groups, draw):
                times = {}
                for o, t in g.times.items():
                    if self.outputs is not None and o not in self.outputs:
                        times[o] = t
                        continue
                    half = width * t if relative else width
                    times[o] = np.sort(np.maximum(t + half * u[o], 0.0))
                groups.append(replace(g, times=times))
            res = evaluate_fim(self.model, Design(tuple(groups), self.design.window), self.approximation, self.fim,
                               check=False)
            out[k] = efficiency(res, self.nominal, self.crit)
        return out


def _check_width(width):
    if not (np.isfinite(width) and width >= 0):
        raise DesignError(f"width: expected a finite number >= 0, got {width!r}")


def window_efficiency(model, design, width: float = 0.5, n: int = 200, seed=0, *, approximation: str = "fo",
                      fim=None, criterion="D", outputs=None, relative: bool = False) -> WindowEfficiency:
    """Efficiency distribution of ``design`` when each sampling time falls uniformly within ±``width`` (model
    time units; ``relative=True``: a fraction of each time) of its nominal value; ``outputs`` restricts the
    windows to these outputs."""
    _check_width(width)
    p = _Perturbed(model, design, n, seed, approximation, fim, criterion, outputs)
    return WindowEfficiency(p.efficiencies(width, relative), float(width), p.crit.name, seed)


def optimize_window_width(model, design, level: float = 0.9, coverage: float = 0.95, n: int = 200, seed=0, *,
                          max_width: float | None = None, relative: bool = False, tol: float = 1e-3,
                          approximation: str = "fo", fim=None, criterion="D", outputs=None) -> WindowEfficiency:
    """The widest common window half-width (model time units, or a fraction of each time with ``relative``) for
    which at least ``coverage`` of ``n`` simulated studies keep an efficiency >= ``level`` (bisection to ``tol``
    relative to ``max_width``; default maximum: the design's last time, or 1 when relative).  Returns the
    ``WindowEfficiency`` at that width."""
    if not 0 < level <= 1:
        raise DesignError(f"level: expected an efficiency in (0, 1], got {level!r}")
    if not 0 < coverage <= 1:
        raise DesignError(f"coverage: expected a fraction in (0, 1], got {coverage!r}")
    hi = max_width if max_width is not None else (1.0 if relative else design.last_time)
    _check_width(hi)
    p = _Perturbed(model, design, n, seed, approximation, fim, criterion, outputs)

    def ok(w):
        return float(np.mean(p.efficiencies(w, relative) >= level)) >= coverage

    lo = 0.0
    if ok(hi):
        lo = hi
    else:
        while hi - lo > tol * max(hi, 1e-12):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return WindowEfficiency(p.efficiencies(lo, relative), float(lo), p.crit.name, seed)
