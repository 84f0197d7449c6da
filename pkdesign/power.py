"""Power of a Wald test and the number of subjects a design needs.

The population FIM is linear in the number of subjects: scaling every group of a design by k multiplies
the FIM by k, so SE(θ̂_j) at N subjects is SE₀·√(N₀/N).  For the Wald test of H₀: θ_j = θ_null at
two-sided level α,

    power(N) = Φ(|θ_j − θ_null| / SE(N) − z_{1−α/2}) + Φ(−|θ_j − θ_null| / SE(N) − z_{1−α/2})

(the second term, the rejection on the wrong side, is negligible but kept: the curve then starts at α),
as PopED's ``evaluate_power`` (Nyberg et al. 2012).  ``sample_size`` gives the smallest N (groups in
the design's proportions, rounded up per group) that reaches a target power, or a target RSE% on
chosen parameters (RSE ∝ 1/√N; PopED's ``optimize_n_rse``).
"""

from __future__ import annotations

from dataclasses import replace

import math

import numpy as np

from .errors import DesignError


def _norm_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _norm_ppf(p):
    from scipy.stats import norm  # lazy: scipy.stats is slow to import

    return float(norm.ppf(p))


def wald_power(effect: float, se: float, alpha: float = 0.05) -> float:
    """Power of the two-sided Wald test of level ``alpha`` for a true difference ``effect`` with standard error
    ``se``."""
    if not 0 < alpha < 1:
        raise DesignError(f"alpha: expected a level between 0 and 1, got {alpha!r}")
    if not se > 0:
        return 1.0 if effect != 0 else alpha
    z = _norm_ppf(1 - alpha / 2)
    d = abs(effect) / se
    return _norm_cdf(d - z) + _norm_cdf(-d - z)


def _index(fim, parameter):
    if parameter not in fim.names:
        raise DesignError(f"power: unknown parameter {parameter!r}; the FIM has {list(fim.names)}")
    return list(fim.names).index(parameter)


def power_curve(model, design, parameter: str, null: float = 0.0, n=None, alpha: float = 0.05,
                approximation: str = "fo", fim=None, **options):
    """pandas DataFrame (index n) of SE and Wald-test power against the number of subjects, the design's
    groups scaled in proportion.  n: numbers of subjects (default: 10 values from a fifth to three times the
    design's N).  ``attrs`` holds the parameter, null, alpha, effect and the design's N."""
    import pandas as pd

    from .fim.api import evaluate_fim

    fim_res = evaluate_fim(model, design, approximation, fim, **options)
    j = _index(fim_res, parameter)
    n0 = design.total_n
    se0 = float(fim_res.se[j])
    effect = float(fim_res.values[j]) - float(null)
    ns = np.asarray(n if n is not None else np.unique(np.round(np.geomspace(n0 / 5, 3 * n0, 10))), dtype=float)
    if ns.ndim != 1 or ns.size == 0 or np.any(~(ns > 0)):
        raise DesignError("power: numbers of subjects must be > 0")
    rows = [{"n": float(k), "se": se0 * math.sqrt(n0 / k), "power": wald_power(effect, se0 * math.sqrt(n0 / k), alpha)}
            for k in ns]
    frame = pd.DataFrame(rows).set_index("n")
    frame.attrs.update(parameter=parameter, null=float(null), alpha=alpha, effect=effect, n_design=float(n0))
    return frame


def sample_size(model, design, parameter: str | None = None, *, power: float | None = None, null: float = 0.0,
                alpha: float = 0.05, rse: dict | None = None, approximation: str = "fo", fim=None, **options) -> dict:
    """The smallest number of subjects (the design's groups scaled in proportion, each rounded up) that gives
    ``power`` for the Wald test of ``parameter`` against ``null``, and/or RSE% at most ``rse[name]`` for each
    named parameter.  Returns {"n": total, "group_n": [...], "power": achieved or None, "rse": {...}}.
    """
    from .design import Design
    from .fim.api import evaluate_fim

    if power is None and not rse:
        raise DesignError("sample_size: give a target power (with parameter) or target RSE% (rse={name: percent})")
    if power is not None and not (0 < power < 1 and parameter):
        raise DesignError(f"sample_size: power must be between 0 and 1 with a parameter, got {power!r}")
    res = evaluate_fim(model, design, approximation, fim, **options)
    n0 = design.total_n
    need = 0.0
    if power is not None:
        j = _index(res, parameter)
        effect = float(res.values[j]) - float(null)
        if effect == 0:
            raise DesignError(f"sample_size: the parameter equals the null value ({null!r}): no power to gain")
        z = _norm_ppf(1 - alpha / 2) + _norm_ppf(power)  # the wrong-side term is negligible here
        need = max(need, n0 * (z * float(res.se[j]) / abs(effect)) ** 2)
    for name, target in (rse or {}).items():
        j = _index(res, name)
        if not target > 0:
            raise DesignError(f"sample_size: target RSE% of {name!r} must be > 0, got {target!r}")
        need = max(need, n0 * (float(res.rse_percent[j]) / target) ** 2)
    scale = need / n0
    groups = [math.ceil(g.n * scale - 1e-9) for g in design.groups]
    while True:  # the rounding may leave the power a hair short: add subjects to the largest group
        scaled = Design(tuple(replace(g, n=float(max(k, 1))) for g, k in zip(design.groups, groups)),
                        design.window)
        k_total = sum(max(k, 1) for k in groups)
        f = k_total / n0
        achieved = None if power is None else wald_power(effect, float(res.se[j]) / math.sqrt(f), alpha)
        rses = {name: float(res.rse_percent[_index(res, name)]) / math.sqrt(f) for name in (rse or {})}
        ok = (achieved is None or achieved >= power) and all(rses[n] <= rse[n] for n in rses)
        if ok:
            return {"n": int(k_total), "group_n": [int(max(k, 1)) for k in groups], "power": achieved, "rse": rses,
                    "design": scaled}
        groups[int(np.argmax([g.n for g in design.groups]))] += 1
