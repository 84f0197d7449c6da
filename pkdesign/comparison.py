"""Comparing designs: efficiency of one design against another, and a side-by-side table.

``efficiency(a, b)`` is the relative efficiency of design a to design b under a criterion:
for D, (det F_a / det F_b)^(1/p) — design b needs 1/efficiency times as many subjects to match
design a's precision; for Ds the power is 1/s (s parameters of interest), for A it is
tr(F_b⁻¹)/tr(F_a⁻¹).  ``compare(model, {"ref": d1, "opt": d2})`` evaluates every design under the
same approximation and FIM type and returns a DataFrame: RSE% per parameter and design, ln det,
the criterion and the efficiency against the first design.
"""

from __future__ import annotations

import numpy as np

from .criteria import make_criterion
from .errors import DesignError


def _fim_of(x):
    """A FIMResult from a FIMResult or a DesignResult (the rounded design's FIM when there is one)."""
    if hasattr(x, "matrix") and hasattr(x, "names"):
        return x
    info = getattr(x, "info", None)
    if isinstance(info, dict) and info.get("rounded_fim") is not None:
        return info["rounded_fim"]
    fim = getattr(x, "fim", None)
    if fim is None:
        raise DesignError(f"efficiency: expected a FIMResult or a DesignResult, got {type(x).__name__}")
    return fim


def efficiency(a, b, criterion="D", *, subset=None, a_weights=None, spec=None) -> float:
    """Relative efficiency of ``a`` to ``b`` (FIMResults or DesignResults; same parameters).

    criterion : "D" (default), "Ds" (with ``subset`` names), "A" (optional ``a_weights``), "c:QUANTITY" /
    "L:..." (with the model's ``spec``) or a ``Criterion``.  Above 1: a is better; the number of subjects b needs to match a is 1/efficiency
    times a's (for D).
    """
    fa, fb = _fim_of(a), _fim_of(b)
    if tuple(fa.names) != tuple(fb.names):
        raise DesignError(f"efficiency: the two FIMs have different parameters ({list(fa.names)} vs "
                          f"{list(fb.names)}); evaluate both with the same model, approximation and FIM type")
    crit = (make_criterion(criterion, list(fa.names), subset, a_weights, spec=spec) if isinstance(criterion, str)
            else criterion)
    va, vb = crit.safe_value(fa.matrix), crit.safe_value(fb.matrix)
    if not np.isfinite(vb):
        return np.inf if np.isfinite(va) else np.nan
    if not np.isfinite(va):
        return 0.0
    return crit.efficiency(va, vb, fa.p)


def compare(model, designs: dict, approximation: str = "fo", fim: str | None = None, *, criterion="D",
            subset=None, a_weights=None, **evaluate_options):
    """Side-by-side table of designs (a dict name -> Design, DesignResult or FIMResult).

    Returns a pandas DataFrame with one column per design and rows: the RSE% of every parameter
    (``RSE% CL``, ...), ``ln det``, ``criterion`` and ``efficiency`` (against the first design).
    ``attrs`` carries the approximation, FIM type, criterion and the units of the parameters.
    Other keywords (``draws``, ``seed``, ...) go to ``evaluate_fim``.
    """
    import pandas as pd

    from .fim.api import evaluate_fim

    if not isinstance(designs, dict) or not designs:
        raise DesignError("compare: expected a dict name -> design with at least one entry")
    fims = {}
    for name, d in designs.items():
        if hasattr(d, "groups"):
            fims[str(name)] = evaluate_fim(model, d, approximation, fim, check=False, **evaluate_options)
        else:
            fims[str(name)] = _fim_of(d)
    first = next(iter(fims.values()))
    crit = (make_criterion(criterion, list(first.names), subset, a_weights, spec=model)
            if isinstance(criterion, str) else criterion)
    cols = {}
    for name, f in fims.items():
        if tuple(f.names) != tuple(first.names):
            raise DesignError(f"compare: design {name!r} has parameters {list(f.names)}, the first has "
                              f"{list(first.names)}")
        rse = f.to_frame()["rse_percent"].to_numpy()
        cols[name] = list(rse) + [f.logdet, crit.safe_value(f.matrix), efficiency(f, first, crit)]
    index = [f"RSE% {n}" for n in first.names] + ["ln det", f"criterion {crit.name}", "efficiency"]
    frame = pd.DataFrame(cols, index=pd.Index(index, name="quantity"))
    frame.attrs.update(approximation=approximation, fim=fim, criterion=crit.name,
                       units=dict(zip(first.names, first.units)) if first.units else {})
    return frame
