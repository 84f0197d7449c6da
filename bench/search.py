"""Benchmark: design searches on warfarin (combined error, FO reduced FIM, 32 subjects).

(a) continuous optimisation of the 8 sampling times in [0, 120] h from the reference design
    (exchange on a 121-point grid, then SLSQP; 4 starts) — PopED's poped_optim: 14.3 s, ln det 56.717;
(b) Fedorov–Wynn and the multiplicative algorithm over all 4-of-16 sampling sequences of a 16-point
    grid (1,820 candidates), including the batched computation of the 1,820 elementary FIMs.
Baseline measured in the same run: (a) with the gradient by per-time finite differences of a
one-schedule-at-a-time FIM (no batching: 2n + 1 separate FIM calls per gradient), the way an R
implementation differentiates.  Prints one JSON object on its last line (times in seconds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pkdesign as pk  # noqa: E402
from common import report, timed  # noqa: E402  (bench/common.py)
from pkdesign.search.continuous import polish  # noqa: E402
from pkdesign.search.exact import ScheduleProblem  # noqa: E402
from pkdesign.space import exact_spaces  # noqa: E402




class UnbatchedProblem(ScheduleProblem):
    """Same problem, but each perturbed schedule is a separate FIM call (the baseline)."""

    def value_and_gradient(self, x, rel_step=1e-6):
        v = self.value(x)
        g = np.zeros_like(x)
        for i in range(x.size):
            h = rel_step * max(1.0, abs(x[i]))
            hm = min(h, x[i])
            xp, xm = x.copy(), x.copy()
            xp[i] += h
            xm[i] -= hm
            g[i] = (self.value(xp) - self.value(xm)) / (h + hm)
        return v, g


def main():
    spec = pk.load_model(ROOT / "models" / "warfarin.toml")
    model = pk.compile_model(spec)
    design = spec.default_design
    pk.optimize_design(model, design, "D", "continuous", fim="reduced", window=(0, 120), starts=1)  # warm-up
    res = {}
    t, r = timed(lambda: pk.optimize_design(model, design, "D", "continuous", fim="reduced", window=(0, 120)))
    res.update(a_continuous_s=t, a_logdet=r.criterion_value, a_fim_evaluations=r.n_fim_evaluations,
               a_iterations=r.iterations)
    t, r = timed(lambda: pk.optimize_design(model, design, "D", "continuous", fim="reduced", window=(0, 120),
                                            min_spacing=2.0))
    res.update(a_continuous_spacing2_s=t, a_spacing2_logdet=r.criterion_value)
    t, r = timed(lambda: pk.optimize_design(model, design, "D", "exchange", fim="reduced", window=(0, 120)))
    res.update(a_exchange_s=t, a_exchange_logdet=r.criterion_value)

    # baseline: the SLSQP polish from the same starting point, gradient without batching
    spaces = exact_spaces(design, spec.output_names, window=(0, 120))
    fast = ScheduleProblem(model, design, "D", fim="reduced", spaces=spaces)
    slow = UnbatchedProblem(model, design, "D", fim="reduced", spaces=spaces)
    x0 = fast.x0()
    t_fast, (xf, vf, *_) = timed(lambda: polish(fast, x0))
    t_slow, (xs, vs, *_) = timed(lambda: polish(slow, x0))
    res.update(polish_batched_s=t_fast, polish_unbatched_baseline_s=t_slow, polish_speedup=t_slow / t_fast,
               polish_logdet_batched=vf, polish_logdet_baseline=vs)

    grid = [0.5, 1, 2, 4, 6, 8, 12, 24, 36, 48, 72, 96, 120, 144, 168, 192]
    space = pk.SamplingSpace(4, (0.0, 200.0), grid=grid, regimen=design.groups[0].regimen)
    for alg in ("fedorov-wynn", "multiplicative"):
        pk.optimize_approximate(model, space, "D", algorithm=alg, fim="reduced", max_iter=5)  # warm-up
        t, r = timed(lambda alg=alg: pk.optimize_approximate(model, space, "D", algorithm=alg, fim="reduced",
                                                             tol=1e-4))
        key = "b_" + alg.replace("-", "_")
        res.update({f"{key}_s": t, f"{key}_iterations": r.iterations, f"{key}_candidates": r.info["n_candidates"],
                    f"{key}_fim_evaluations": r.n_fim_evaluations,
                    f"{key}_sensitivity_max": r.certificate.sensitivity_max,
                    f"{key}_efficiency_lower_bound": r.certificate.efficiency_lower_bound})
    t, _ = timed(lambda: pk.schedule_fims(model, pk.candidate_schedules(space), regimen=space.regimen, fim="reduced"))
    res["b_elementary_fims_1820_s"] = t
    res["poped_optim_reference_s"] = 14.3
    report(res)


if __name__ == "__main__":
    main()
