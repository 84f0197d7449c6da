"""Benchmark: FIM evaluation for warfarin (8 times, 32 subjects, combined error).

Measures, best of several repeats after a warm-up:
- FO full and reduced, one design per call (``evaluate_fim``, and a reusable ``fim_evaluator``);
- FO full and reduced batched over 10,000 random candidate schedules (``schedule_fims``), per schedule;
- the FIM assembly alone on the same predictions: pkdesign's generic FO kernel against the hand-written,
  structure-aware floor of ``bench/floor.py`` (same FIMs to 1e-12, checked in the run): ``ratio_full_vs_floor``,
  ``ratio_reduced_vs_floor``;
- FOCE with 1,000 draws, MC with 2,048 draws, exact-MC with 2,000 subjects x 200 importance samples;
- the baseline, in the same run: a plain numpy implementation in the style of PopED (closed-form
  predictions, every derivative of the mean and the covariance by central finite differences),
  one FO full FIM per call.
Prints one JSON object on its last line (times in microseconds unless the key says ms or s).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pkdesign as pk  # noqa: E402
from common import best, fd_fo_fim, report  # noqa: E402  (bench/common.py)
from floor import warfarin_fo_floor  # noqa: E402  (bench/floor.py)

TIMES = np.array([0.5, 1, 2, 6, 24, 36, 72, 120.0])




def baseline_fo_full(alpha, t=TIMES, dose=70.0, n=32, h=1e-5):
    """PopED-style FO FIM: predictions in numpy, all derivatives by central differences."""

    def f(theta, eta):
        cl, v, ka = theta * np.exp(eta)
        k = cl / v
        return dose / v * ka / (ka - k) * (np.exp(-k * t) - np.exp(-ka * t))

    return fd_fo_fim(alpha, f, t.size, n=n, h_eta=h, rel_alpha=h)


#: alternating rounds of the generic kernel and the floor (each the best of one call after a warm-up)
REPEAT_RATIO = 15


def main():
    spec = pk.load_model(ROOT / "models" / "warfarin.toml")
    model = pk.compile_model(spec)
    design = spec.default_design
    reg = design.groups[0].regimen
    res = {}
    for kind in ("full", "reduced"):
        res[f"fo_{kind}_single_us"] = 1e6 * best(lambda kind=kind: pk.evaluate_fim(model, design, "fo", kind))
        ev = pk.fim_evaluator(model, design, "fo", kind)  # the checks once, then only the computation
        res[f"fo_{kind}_evaluator_us"] = 1e6 * best(lambda ev=ev: ev())
    rng = np.random.default_rng(0)
    cand = np.sort(rng.uniform(0.1, 120.0, (10_000, 8)), axis=1)
    for kind in ("full", "reduced"):
        res[f"fo_{kind}_batched_us_per_schedule"] = 1e6 * best(
            lambda kind=kind: pk.schedule_fims(model, cand, regimen=reg, fim=kind)) / cand.shape[0]
    # the FIM assembly alone, on the same predictions: pkdesign's generic kernel vs the hand-written floor
    from pkdesign.fim.api import _parameters
    from pkdesign.fim.linearized import fo_fims
    from pkdesign.fim.predict import predict

    pp = _parameters(model, None)
    idx = np.zeros(cand.shape[1], dtype=np.int64)
    P = predict(model, pp, np.zeros(pp.n_eta), cand, idx, reg, 2, "")
    var = {e.kind: e.variance for e in pp.residual.terms}
    om = np.ascontiguousarray(np.diag(pp.omega))
    floor_out = np.empty((cand.shape[0], pp.p, pp.p))
    for kind in ("full", "reduced"):
        full = kind == "full"
        gen = fo_fims(pp, idx, P, interaction=False, full=full)
        warfarin_fo_floor(P.f, P.fth, P.L, P.Lth, om, var["prop"], var["add"], full, floor_out)
        assert np.max(np.abs(gen - floor_out)) <= 1e-12 * np.max(np.abs(gen))  # the same FIMs
        # the ratio is the figure: best of many alternating rounds, so that both see the same machine
        gen_t, floor_t = [], []
        for _ in range(REPEAT_RATIO):
            gen_t.append(best(lambda full=full: fo_fims(pp, idx, P, interaction=False, full=full), repeat=1))
            floor_t.append(best(lambda full=full: warfarin_fo_floor(P.f, P.fth, P.L, P.Lth, om, var["prop"],
                                                                    var["add"], full, floor_out), repeat=1))
        res[f"fo_{kind}_assembly_us_per_schedule"] = 1e6 * min(gen_t) / cand.shape[0]
        res[f"fo_{kind}_floor_us_per_schedule"] = 1e6 * min(floor_t) / cand.shape[0]
        res[f"ratio_{kind}_vs_floor"] = res[f"fo_{kind}_assembly_us_per_schedule"] / res[
            f"fo_{kind}_floor_us_per_schedule"]
    for kind in ("full", "reduced"):  # what a call costs beyond the arithmetic (the batched cost per schedule)
        res[f"evaluator_overhead_{kind}_us"] = (res[f"fo_{kind}_evaluator_us"]
                                                - res[f"fo_{kind}_batched_us_per_schedule"])
    res["evaluator_overhead_us"] = res["evaluator_overhead_reduced_us"]
    res["foce_1000_draws_ms"] = 1e3 * best(lambda: pk.evaluate_fim(model, design, "foce", draws=1000))
    res["focei_1000_draws_ms"] = 1e3 * best(lambda: pk.evaluate_fim(model, design, "focei", draws=1000))
    res["mc_2048_draws_ms"] = 1e3 * best(lambda: pk.evaluate_fim(model, design, "mc", draws=2048))
    res["exact_mc_default_s"] = best(lambda: pk.evaluate_fim(model, design, "exact-mc"), repeat=2)

    alpha = np.r_[spec.theta, [v.variance for v in spec.variability], 0.01, 0.25]
    F_base = baseline_fo_full(alpha)
    F_ours = pk.evaluate_fim(model, design, "fo", "full").matrix
    res["baseline_agreement_max_rel"] = float(np.max(np.abs(F_base - F_ours)) / np.max(np.abs(F_ours)))
    res["baseline_numpy_fd_fo_full_us"] = 1e6 * best(lambda: baseline_fo_full(alpha))
    res["speedup_single_vs_baseline"] = res["baseline_numpy_fd_fo_full_us"] / res["fo_full_single_us"]
    res["speedup_batched_vs_baseline"] = res["baseline_numpy_fd_fo_full_us"] / res["fo_full_batched_us_per_schedule"]
    res["poped_reference_fo_ms"] = 6.35
    res["poped_reference_foce_1000_s"] = 8.6
    report(res)


if __name__ == "__main__":
    main()
