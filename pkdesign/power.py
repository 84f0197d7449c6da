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


class _Scaling:
    """SE and RSE% of the design's parameters when its groups are scaled to N subjects in total (in proportion):
    the design's information grows as N/N0; a prior FIM (``prior_fim=`` in the options) does not."""

    def __init__(self, model, design, approximation, fim, options):
        from .fim.api import evaluate_fim
        from .fim.bayesian import prior_matrix

        options = dict(options)
        prior = options.pop("prior_fim", None)
        self.res = evaluate_fim(model, design, approximation, fim, check=prior is None, **options)
        self.n0 = design.total_n
        self.values = np.asarray(self.res.values, dtype=float)
        self.prior = None if prior is None else prior_matrix(self.res.names, prior)

    def se(self, n: float) -> np.ndarray:
        f = n / self.n0
        if self.prior is None:
            return np.asarray(self.res.se, dtype=float) / math.sqrt(f)
        M = self.prior + f * self.res.matrix
        try:
            cov = np.linalg.inv(0.5 * (M + M.T))
        except np.linalg.LinAlgError:
            return np.full(self.values.size, np.inf)
        return np.sqrt(np.maximum(np.diag(cov), 0.0))

    def rse(self, n: float) -> np.ndarray:
        return 100 * self.se(n) / np.abs(self.values)


def power_curve(model, design, parameter: str, null: float = 0.0, n=None, alpha: float = 0.05,
                approximation: str = "fo", fim=None, **options):
    """pandas DataFrame (index n) of SE and Wald-test power against the number of subjects, the design's
    groups scaled in proportion (a ``prior_fim`` in the options stays as it is).  n: numbers of subjects
    (default: 10 values from a fifth to three times the design's N).  ``attrs`` holds the parameter, null,
    alpha, effect and the design's N."""
    import pandas as pd

    sc = _Scaling(model, design, approximation, fim, options)
    j = _index(sc.res, parameter)
    n0 = sc.n0
    effect = float(sc.values[j]) - float(null)
    ns = np.asarray(n if n is not None else np.unique(np.round(np.geomspace(n0 / 5, 3 * n0, 10))), dtype=float)
    if ns.ndim != 1 or ns.size == 0 or np.any(~(ns > 0)):
        raise DesignError("power: numbers of subjects must be > 0")
    rows = [{"n": float(k), "se": float(sc.se(k)[j]), "power": wald_power(effect, float(sc.se(k)[j]), alpha)}
            for k in ns]
    frame = pd.DataFrame(rows).set_index("n")
    frame.attrs.update(parameter=parameter, null=float(null), alpha=alpha, effect=effect, n_design=float(n0))
    return frame


def sample_size(model, design, parameter: str | None = None, *, power: float | None = None, null: float = 0.0,
                alpha: float = 0.05, rse: dict | None = None, approximation: str = "fo", fim=None, **options) -> dict:
    """The smallest number of subjects (the design's groups scaled in proportion, each rounded up) that gives
    ``power`` for the Wald test of ``parameter`` against ``null``, and/or RSE% at most ``rse[name]`` for each
    named parameter (with ``prior_fim=``, information from a previous study that does not grow with N).
    Returns {"n": total, "group_n": [...], "power": achieved or None, "rse": {...}, "design": scaled design}.
    """
    from .design import Design

    if power is None and not rse:
        raise DesignError("sample_size: give a target power (with parameter) or target RSE% (rse={name: percent})")
    if power is not None and not (0 < power < 1 and parameter):
        raise DesignError(f"sample_size: power must be between 0 and 1 with a parameter, got {power!r}")
    sc = _Scaling(model, design, approximation, fim, options)
    n0 = sc.n0
    j = _index(sc.res, parameter) if power is not None else None
    effect = float(sc.values[j]) - float(null) if power is not None else None
    if power is not None and effect == 0:
        raise DesignError(f"sample_size: the parameter equals the null value ({null!r}): no power to gain")
    for name, target in (rse or {}).items():
        _index(sc.res, name)
        if not target > 0:
            raise DesignError(f"sample_size: target RSE% of {name!r} must be > 0, got {target!r}")

    def achieved(groups):
        k_total = sum(max(k, 1) for k in groups)
        p = None if power is None else wald_power(effect, float(sc.se(k_total)[j]), alpha)
        r = sc.rse(k_total)
        rses = {name: float(r[_index(sc.res, name)]) for name in (rse or {})}
        return k_total, p, rses, (p is None or p >= power) and all(rses[n] <= rse[n] for n in rses)

    def groups_for(total):
        return [math.ceil(g.n * total / n0 - 1e-9) for g in design.groups]

    # the smallest total whose proportional design meets the targets: doubling, then bisection
    hi = n0
    while not achieved(groups_for(hi))[3]:
        hi *= 2
        if hi > 1e9:
            raise DesignError("sample_size: the targets are not reached with 1e9 subjects (does the prior FIM or "
                              "the design carry information on the parameter?)")
    lo = 0.0
    while hi - lo > 0.5:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if achieved(groups_for(mid))[3] else (mid, hi)
    groups = groups_for(hi)
    while True:  # rounding may leave a hair short: add subjects to the largest group
        k_total, p, rses, ok = achieved(groups)
        if ok:
            scaled = Design(tuple(replace(g, n=float(max(k, 1))) for g, k in zip(design.groups, groups)), design.window)
            return {"n": int(k_total), "group_n": [int(max(k, 1)) for k in groups], "power": p, "rse": rses,
                    "design": scaled}
        groups[int(np.argmax([g.n for g in design.groups]))] += 1
