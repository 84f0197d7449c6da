"""Which FIM approximation to trust for a design: every approximation beside the exact-MC reference.

``approximation_report(model, design)`` evaluates FO, FOI, FOCE, FOCEI and MC (full, reduced or
both) and the exact-MC FIM, and returns a pandas DataFrame with each one's ln det, its difference
from exact-MC in units of exact-MC's Monte-Carlo standard error, and the largest relative
deviation of its predicted RSE% from exact-MC's.  An approximation is marked ``trusted`` when its
ln det lies within ``z`` Monte-Carlo standard errors of exact-MC and every RSE% within
``rse_tol``.  ``advice(frame)`` turns the table into one sentence: the cheapest trusted choice.
"""

from __future__ import annotations

import numpy as np

from .choices import APPROXIMATIONS
from .fim.api import evaluate_fim

#: every approximation except the reference itself, in increasing order of cost
COMPARED = tuple(a for a in APPROXIMATIONS if a != "exact-mc")


def approximation_report(model, design, fim=None, *, seed=0, draws: int | None = None, z: float = 2.0,
                         rse_tol: float = 0.1):
    """DataFrame indexed by approximation with ``fim``, ``logdet``, ``logdet_z``, ``max_rse_deviation``,
    ``trusted``, and one ``rse%`` column per parameter; exact-MC is the last row.

    ``fim`` is "full", "reduced", a sequence of both (rows are then labelled e.g. "fo (reduced)"), or None
    (each approximation's default: reduced for the linearisations, full for MC)."""
    import pandas as pd

    fims = (fim,) if fim is None or isinstance(fim, str) else tuple(fim)
    ref = evaluate_fim(model, design, "exact-mc", "full", seed=seed, draws=draws, check=False)
    se = ref.info.get("logdet_mc_se", np.nan)
    rows = {}
    for approx in COMPARED:
        for ft in fims:
            r = evaluate_fim(model, design, approx, ft, seed=seed, check=False)
            dev = float(np.max(np.abs(r.rse_percent / ref.rse_percent - 1)))
            zval = (r.logdet - ref.logdet) / se if se > 0 else np.nan
            label = approx if len(fims) == 1 else f"{approx} ({ft})"
            rows[label] = {"fim": r.fim_type, "logdet": r.logdet, "logdet_z": zval, "max_rse_deviation": dev,
                           "trusted": bool(abs(zval) <= z and dev <= rse_tol),
                           **{f"rse%({n})": v for n, v in zip(r.names, r.rse_percent)}}
    rows["exact-mc"] = {"fim": "full", "logdet": ref.logdet, "logdet_z": 0.0, "max_rse_deviation": 0.0,
                        "trusted": True, **{f"rse%({n})": v for n, v in zip(ref.names, ref.rse_percent)}}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "approximation"
    frame.attrs["logdet_mc_se"] = se
    frame.attrs["z"], frame.attrs["rse_tol"] = z, rse_tol
    return frame


def advice(frame) -> str:
    """One sentence from an ``approximation_report`` table: the cheapest approximation and FIM type
    that agrees with exact-MC (rows are in increasing order of cost), or what to do if none does."""
    z, tol = frame.attrs.get("z", 2.0), frame.attrs.get("rse_tol", 0.1)
    approx = frame.drop(index="exact-mc", errors="ignore")
    trusted = approx[approx["trusted"]]
    if len(trusted):
        label = trusted.index[0]
        row = trusted.iloc[0]
        name = label.split(" (")[0]
        return (f"advice: use approximation {name!r} with the {row['fim']} FIM: its ln det is within {z:g} "
                f"Monte-Carlo SE of exact-MC ({row['logdet_z']:+.2f} SE) and every RSE% within {tol:.0%} of "
                "exact-MC's; it is the cheapest that is.")
    score = approx["logdet_z"].abs().fillna(np.inf) + approx["max_rse_deviation"] / tol * z
    label = score.idxmin()
    row = approx.loc[label]
    return (f"advice: no approximation agrees with exact-MC here (ln det within {z:g} SE and RSE% within {tol:.0%}); "
            f"the closest is {label.split(' (')[0]!r} with the {row['fim']} FIM ({row['logdet_z']:+.2f} SE, RSE% off "
            f"by up to {row['max_rse_deviation']:.0%}). Use exact-mc (with more draws) for decisions on this design.")
