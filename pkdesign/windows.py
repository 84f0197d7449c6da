"""Robustness of a design to sampling windows: how much information is lost when samples are taken at
random times inside windows around the nominal times (PopED's ``plot_efficiency_of_windows``).

``window_efficiency(model, design, width=0.5, n=200, seed=0)`` draws, ``n`` times, every sampling time
uniformly in [t - width, t + width] (clipped at 0 and kept in order within each output), evaluates the
population FIM of each perturbed design and returns its efficiency against the nominal design under the
criterion (D by default: (det F / det F_nominal)^(1/p)), with a summary (``WindowEfficiency``).
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


def window_efficiency(model, design, width: float = 0.5, n: int = 200, seed=0, *, approximation: str = "fo",
                      fim=None, criterion="D", outputs=None) -> WindowEfficiency:
    """Efficiency distribution of ``design`` when each sampling time falls uniformly within ±``width`` (model
    time units) of its nominal value; ``outputs`` restricts the windows to these outputs."""
    from .comparison import efficiency
    from .criteria import make_criterion
    from .design import Design
    from .fim.api import evaluate_fim

    if not (np.isfinite(width) and width >= 0):
        raise DesignError(f"width: expected a finite number >= 0, got {width!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 1_000_000:
        raise DesignError(f"n: expected a whole number from 1 to 1000000, got {n!r}")
    nominal = evaluate_fim(model, design, approximation, fim)
    crit = (make_criterion(criterion, list(nominal.names), spec=model.spec) if isinstance(criterion, str)
            else criterion)  # built once, not per draw
    rng = np.random.default_rng(seed)
    out = np.empty(n)
    for k in range(n):
        groups = []
        for g in design.groups:
            times = {}
            for o, t in g.times.items():
                if outputs is not None and o not in outputs:
                    times[o] = t
                    continue
                times[o] = np.sort(np.maximum(t + rng.uniform(-width, width, t.size), 0.0))
            groups.append(replace(g, times=times))
        res = evaluate_fim(model, Design(tuple(groups), design.window), approximation, fim, check=False)
        out[k] = efficiency(res, nominal, crit)
    return WindowEfficiency(out, float(width), crit.name, seed)
