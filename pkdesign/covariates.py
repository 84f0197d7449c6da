"""Covariate values of a design group or sampling space: fixed numbers or discrete distributions.

A model's ``[covariates]`` are fixed parameters whose values the design sets per group.  A group states
``{name: value}`` or ``{name: {"values": [...], "proportions": [...]}}``; a distribution splits the group
into cases whose FIMs add up weighted by the proportions (several distributions combine as independent).
"""

from __future__ import annotations

import numpy as np

from .errors import DesignError, fmt
from .regimen import _as_float_array


def check_covariates(covariates, where: str) -> dict:
    """Covariate values of a group: name -> finite number, or {"values": [...], "proportions": [...]} with
    proportions >= 0 summing to 1 (to 1e-9); returned as floats and tuples."""
    if not isinstance(covariates, dict):
        raise DesignError(f"{where}: covariates must be a table name -> value, got {fmt(covariates)}")
    out = {}
    for name, v in covariates.items():
        w = f"{where}, covariate {name!r}"
        if isinstance(v, dict):
            unknown = sorted(set(v) - {"values", "proportions"})
            if unknown or "values" not in v or "proportions" not in v:
                raise DesignError(f"{w}: a distribution is {{values = [...], proportions = [...]}}, got {fmt(v)}")
            values = _as_float_array(v["values"], f"{w}: values")
            props = _as_float_array(v["proportions"], f"{w}: proportions")
            if values.ndim != 1 or values.size == 0 or values.shape != props.shape:
                raise DesignError(f"{w}: values and proportions must be non-empty lists of the same length, got "
                                  f"{values.size} values and {props.size} proportions")
            if not (np.all(np.isfinite(values)) and np.all(np.isfinite(props)) and np.all(props >= 0)):
                raise DesignError(f"{w}: values must be finite and proportions >= 0, got values {fmt(list(values))}, "
                                  f"proportions {fmt(list(props))}")
            if abs(props.sum() - 1.0) > 1e-9:
                raise DesignError(f"{w}: proportions must sum to 1, they sum to {props.sum():.12g}")
            out[name] = {"values": tuple(float(x) for x in values), "proportions": tuple(float(x) for x in props)}
        else:
            x = None if isinstance(v, (list, tuple, np.ndarray)) else _as_float_array(v, w)
            if x is None or not np.isfinite(x[0]):
                raise DesignError(f"{w}: expected a finite number or a distribution {{values = [...], proportions = "
                                  f"[...]}}, got {fmt(v)}")
            out[name] = float(x[0])
    return out


def covariate_combinations(covariates: dict) -> list:
    """``[(proportion, {covariate: value}), ...]``: every combination of the (checked) covariate values, one
    case of proportion 1 without distributions; the proportions sum to 1 and cases of proportion 0 are left out."""
    cases = [(1.0, {})]
    for name, v in covariates.items():
        values, props = (v["values"], v["proportions"]) if isinstance(v, dict) else ((v,), (1.0,))
        cases = [(w * p, {**c, name: x}) for w, c in cases for x, p in zip(values, props) if p > 0]
    return cases
