"""Which FIM approximation to trust for a design: every approximation beside the exact-MC reference.

``approximation_report(model, design)`` evaluates FO, FOI, FOCE, FOCEI and MC (full or reduced)
and the exact-MC FIM, and returns a pandas DataFrame with each one's ln det, its difference from
exact-MC in units of exact-MC's Monte-Carlo standard error, and the largest relative deviation of
its predicted RSE% from exact-MC's.  An approximation is marked ``trusted`` when its ln det lies
within ``z`` Monte-Carlo standard errors of exact-MC and every RSE% within ``rse_tol``.
"""

from __future__ import annotations

import numpy as np

from .fim.api import evaluate_fim

COMPARED = ("fo", "foi", "foce", "focei", "mc")


def approximation_report(model, design, fim: str = "full", *, seed=0, draws: int | None = None, z: float = 2.0,
                         rse_tol: float = 0.1):
    """DataFrame indexed by approximation with ``logdet``, ``logdet_z``, ``max_rse_deviation``,
    ``trusted``, and one ``rse%`` column per parameter; exact-MC is the last row."""
    import pandas as pd

    ref = evaluate_fim(model, design, "exact-mc", "full", seed=seed, draws=draws, check=False)
    se = ref.info.get("logdet_mc_se", np.nan)
    rows = {}
    for approx in COMPARED:
        r = evaluate_fim(model, design, approx, fim, seed=seed, check=False)
        dev = float(np.max(np.abs(r.rse_percent / ref.rse_percent - 1)))
        zval = (r.logdet - ref.logdet) / se if se > 0 else np.nan
        rows[approx] = {"logdet": r.logdet, "logdet_z": zval, "max_rse_deviation": dev,
                        "trusted": bool(abs(zval) <= z and dev <= rse_tol),
                        **{f"rse%({n})": v for n, v in zip(r.names, r.rse_percent)}}
    rows["exact-mc"] = {"logdet": ref.logdet, "logdet_z": 0.0, "max_rse_deviation": 0.0, "trusted": True,
                        **{f"rse%({n})": v for n, v in zip(ref.names, ref.rse_percent)}}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "approximation"
    frame.attrs["logdet_mc_se"] = se
    return frame
