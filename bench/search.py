"""Benchmark: design searches on warfarin (combined error, FO reduced FIM, 32 subjects).

(a) continuous optimisation of the 8 sampling times in [0, 120] h from the reference design
    (exchange on a 121-point grid, then SLSQP; 4 starts) — PopED's poped_optim: 14.3 s, ln det 56.717;
(b) Fedorov–Wynn and the multiplicative algorithm over all 4-of-16 sampling sequences of a 16-point
    grid (1,820 candidates), including the batched computation of the 1,820 elementary FIMs.
(c) a FOCE search (1,000 η draws, common to every candidate): the continuous optimisation from the reference
    design (one start), and the FOCE FIMs of a gradient's 17 schedules.
Baselines measured in the same run: (a) with the gradient by per-time finite differences of a
one-schedule-at-a-time FIM (no batching: 2n + 1 separate FIM calls per gradient), the way an R
implementation differentiates; (c) the FOCE FIMs of the same 17 schedules one draw at a time (a batched kernel
call per draw: how ``FOCE.schedules`` worked until 2026-11-30).  Prints one JSON object on its last line (times
in seconds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pkdesign as pk  # noqa: E402
from common import best, report, timed  # noqa: E402  (bench/common.py)
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
    res.update(foce_search(model, design))
    report(res)


def foce_search(model, design) -> dict:
    """(c): a FOCE search, and its batch of 17 schedules against one draw at a time."""
    from pkdesign.fim.api import _parameters
    from pkdesign.fim.approximations import get_approximation
    from pkdesign.fim.draws import draw_eta
    from pkdesign.fim.linearized import linearized_fims
    from pkdesign.fim.predict import predict

    kw = dict(approximation="foce", fim="reduced", window=(0, 120), starts=1, seed=0)
    t, r = timed(lambda: pk.optimize_design(model, design, "D", "continuous", **kw))
    out = {"c_foce_continuous_s": t, "c_foce_logdet": r.criterion_value, "c_foce_fim_evaluations": r.n_fim_evaluations}
    g = design.groups[0]
    t0, idx = g.observations(model.spec.output_names)
    times = np.sort(t0[None] * np.random.default_rng(0).uniform(0.9, 1.1, (17, t0.size)), axis=1)
    pp, foce = _parameters(model, None), get_approximation("foce")

    def per_draw():
        eta = draw_eta(pp.omega, 1000, 0, foce.default_sampling)
        P0 = predict(model, pp, np.zeros(pp.n_eta), times, idx, g.regimen, 2)
        total = np.zeros((times.shape[0], pp.p, pp.p))
        for e in eta:
            Ps = predict(model, pp, e, times, idx, g.regimen, 2)
            total += linearized_fims(pp, idx, P0, Ps, np.repeat(e[None], times.shape[0], axis=0),
                                     interaction=False, resid_at_star=False, full=False, times=times)
        return total / eta.shape[0]

    batched = foce.schedules(model, pp, times, idx, g.regimen, False, draws=1000, seed=0)
    assert np.array_equal(batched, per_draw())  # the same FIMs, bit for bit
    out["c_foce_17_schedules_batched_s"] = best(
        lambda: foce.schedules(model, pp, times, idx, g.regimen, False, draws=1000, seed=0), repeat=3)
    out["c_foce_17_schedules_per_draw_s"] = best(per_draw, repeat=3)
    out["c_foce_batched_speedup"] = out["c_foce_17_schedules_per_draw_s"] / out["c_foce_17_schedules_batched_s"]
    return out


if __name__ == "__main__":
    main()
