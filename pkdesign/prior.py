"""Priors on fixed effects for robust (ED) designs, drawn by scrambled Sobol quasi-Monte Carlo.

``Prior({"CL": ("lognormal", 0.15, 0.3), "KA": ("uniform", 0.5, 2.0), "V": ("normal", 8.0, 1.0)})``:
lognormal(median, sd of log), normal(mean, sd), uniform(low, high).  ``draws(K, seed)`` returns K
dicts of parameter values (the other parameters keep their typical values).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .errors import DesignError, fmt

DISTRIBUTIONS = ("normal", "lognormal", "uniform")


class Prior:
    def __init__(self, spec: dict):
        if not isinstance(spec, dict) or not spec:
            raise DesignError("prior: expected a non-empty table parameter -> (distribution, a, b)")
        self.spec = {}
        for name, entry in spec.items():
            if not (isinstance(entry, (tuple, list)) and len(entry) == 3 and entry[0] in DISTRIBUTIONS):
                raise DesignError(f"prior.{name}: expected (distribution, a, b) with distribution in {DISTRIBUTIONS}, "
                                  f"got {fmt(entry)}")
            nums = entry[1:]
            if any(isinstance(v, (bool, str)) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in nums):
                raise DesignError(f"prior.{name}: a and b must be finite numbers, got {fmt(list(nums))}")
            dist, a, b = entry[0], float(entry[1]), float(entry[2])
            if dist == "uniform" and not b > a:
                raise DesignError(f"prior.{name}: uniform needs low < high, got {a}, {b}")
            if dist != "uniform" and not b >= 0:
                raise DesignError(f"prior.{name}: the spread must be >= 0, got {b}")
            if dist == "lognormal" and not a > 0:
                raise DesignError(f"prior.{name}: lognormal median must be > 0, got {a}")
            self.spec[str(name)] = (dist, a, b)

    def check(self, parameter_names):
        unknown = sorted(set(self.spec) - set(parameter_names))
        if unknown:
            raise DesignError(f"prior: unknown parameter(s) {unknown}; the model has {list(parameter_names)}")

    def draws(self, n: int, seed=0) -> list:
        from scipy.stats import norm, qmc  # lazy: scipy.stats takes ~0.8 s to import

        from .fim.draws import generator

        names = list(self.spec)
        sob = qmc.Sobol(len(names), scramble=True, rng=generator(seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            u = np.clip(sob.random(n), 1e-12, 1 - 1e-12)
        out = []
        for row in u:
            vals = {}
            for k, name in enumerate(names):
                dist, a, b = self.spec[name]
                if dist == "normal":
                    vals[name] = a + b * norm.ppf(row[k])
                elif dist == "lognormal":
                    vals[name] = a * np.exp(b * norm.ppf(row[k]))
                else:
                    vals[name] = a + (b - a) * row[k]
            out.append(vals)
        return out
