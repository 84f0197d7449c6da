"""Benchmark: stochastic simulation and estimation (SSE) on warfarin, README design, 200 replicates.

Times the serial run and a run on 2 worker processes (spawn), and prints the agreement of the empirical
RSE% of the fixed effects with the FO reduced FIM's (ratio).  The baseline in the same run is the cost of
one FO FIM evaluation of the design (what the FIM-based answer costs).  One JSON object on the last line.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pkdesign as pk  # noqa: E402
from pkdesign.executors import process_pool  # noqa: E402
from common import best, report, timed  # noqa: E402  (bench/common.py)


def _warm(_):
    pk.compile_model(pk.load_model("warfarin"))
    return 0


def main():
    model = pk.compile_model(pk.load_model("warfarin"))
    design = model.spec.default_design
    fim_s = best(lambda: pk.evaluate_fim(model, design))
    t1, r1 = timed(lambda: pk.sse(model, design, replicates=200, seed=1))
    with process_pool(2) as pool:
        list(pool.map(_warm, range(2)))
        t2, r2 = timed(lambda: pk.sse(model, design, replicates=200, seed=1, executor=pool))
    frame = r1.to_frame()
    out = {"sse_200_serial_s": t1, "sse_200_2proc_s": t2, "sse_speedup": t1 / t2, "fo_fim_s": fim_s,
           "sse_over_fim": t1 / fim_s}
    out |= {f"ratio_{n}": float(frame.loc[n, "ratio"]) for n in ("CL", "V", "KA")}
    assert (r1.estimates == r2.estimates).all()
    report(out)


if __name__ == "__main__":
    main()
