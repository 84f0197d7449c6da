"""Benchmark: FO FIM (full) of the warfarin design with the ODE twin of the warfarin model.

Compared in the same run with (a) the closed form (models/warfarin.toml), the same ODE model on
the stiff paths (scipy LSODA with the compiled right-hand side and Jacobian; the compiled BDF solver, which
solver = "auto" picks for stiff systems, and the compiled Rosenbrock solver), and (b) scipy solve_ivp
(RK45, same tolerances rtol 1e-8 / atol 1e-10) with a plain Python right-hand side and every
derivative by central finite differences, assembled into the same FO FIM (PopED-style).  Also
the batched evaluation of 1,000 parameter vectors with second-order sensitivities; the stiff exchange system
(tests/test_ode.py, 64 parameter vectors, first-order sensitivities) and the full TMDD model (models/
tmdd_full.toml, FO reduced FIM of its design) on LSODA vs the compiled BDF and Rosenbrock solvers (the
``*_speedup_vs_lsoda`` keys without "rosenbrock" are BDF's); the HCV PK/PD
example (models/hcv.toml: 5 states, 7 random effects, 24 samples of two outputs), FO full FIM (second-order
sensitivities, 28 unique pairs) over FO reduced (first order).
Prints one JSON object on its last line (times in milliseconds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pkdesign as pk  # noqa: E402
from common import best, fd_fo_fim, report  # noqa: E402  (bench/common.py)


TIMES = np.array([0.5, 1, 2, 6, 24, 36, 72, 120.0])
STIFF_SOLVERS = ("bdf", "rosenbrock")




def ode_prediction(theta, eta, t=TIMES, dose=70.0):
    """Warfarin by solve_ivp with a Python right-hand side (the baseline's model function)."""
    cl, v, ka = theta * np.exp(eta)

    def rhs(_, y):
        return [-ka * y[0], ka * y[0] - cl / v * y[1]]

    sol = solve_ivp(rhs, (0.0, t[-1]), [dose, 0.0], t_eval=t, rtol=1e-8, atol=1e-10)
    return sol.y[1] / v


def main():
    so = pk.load_model(ROOT / "models" / "warfarin_ode.toml")
    mo = pk.compile_model(so)
    sc = pk.load_model(ROOT / "models" / "warfarin.toml")
    mc = pk.compile_model(sc)
    d = so.default_design
    res = {}
    res["ode_fo_full_ms"] = 1e3 * best(lambda: pk.evaluate_fim(mo, d, "fo", "full"))
    res["closed_fo_full_ms"] = 1e3 * best(lambda: pk.evaluate_fim(mc, d, "fo", "full"))
    res["ratio_ode_vs_closed"] = res["ode_fo_full_ms"] / res["closed_fo_full_ms"]
    # the stiff path on the same model: scipy LSODA with the compiled right-hand side and Jacobian
    from dataclasses import replace

    sl = replace(so, ode=replace(so.ode, solver="lsoda"), name="warfarin_ode_lsoda")
    ml = pk.compile_model(sl)
    res["ode_lsoda_fo_full_ms"] = 1e3 * best(lambda: pk.evaluate_fim(ml, d, "fo", "full"), repeat=3)
    res["ratio_lsoda_vs_dopri5"] = res["ode_lsoda_fo_full_ms"] / res["ode_fo_full_ms"]
    alpha = np.r_[sc.theta, [v.variance for v in sc.variability], 0.01, 0.25]

    F_base = _baseline(alpha)
    F_ode = pk.evaluate_fim(mo, d, "fo", "full").matrix
    res["baseline_agreement_max_rel"] = float(np.max(np.abs(F_base - F_ode)) / np.max(np.abs(F_ode)))
    res["baseline_scipy_python_fd_ms"] = 1e3 * best(lambda: _baseline(alpha), repeat=2)
    res["speedup_vs_baseline"] = res["baseline_scipy_python_fd_ms"] / res["ode_fo_full_ms"]
    # the compiled stiff solvers (BDF: what solver = "auto" picks for stiff systems; Rosenbrock) against the
    # LSODA path and Dormand-Prince
    for solver in STIFF_SOLVERS:
        sr = replace(so, ode=replace(so.ode, solver=solver), name=f"warfarin_ode_{solver}")
        mr = pk.compile_model(sr)
        res[f"ode_{solver}_fo_full_ms"] = 1e3 * best(lambda: pk.evaluate_fim(mr, d, "fo", "full"))
    res["nonstiff_stiff_over_dopri5"] = res["ode_bdf_fo_full_ms"] / res["ode_fo_full_ms"]
    res["nonstiff_rosenbrock_over_dopri5"] = res["ode_rosenbrock_fo_full_ms"] / res["ode_fo_full_ms"]
    stiff_text = (ROOT / "tests" / "test_ode.py").read_text().split('STIFF = """')[1].split('"""')[0]
    psi64 = None
    times = np.array([0.01, 0.1, 1.0, 5.0, 20.0])
    for solver in ("lsoda", *STIFF_SOLVERS):
        ms = pk.parse_model_text(stiff_text.replace("SOLVER", solver), "stiff.toml")
        mm = pk.compile_model(ms)
        psi64 = ms.theta * np.exp(np.random.default_rng(1).normal(0, 0.2, (64, 3)))
        res[f"stiff_exchange_64_vectors_{solver}_ms"] = 1e3 * best(lambda: mm.evaluate(psi64, times, order=1),
                                                                  repeat=3 if solver == "lsoda" else 15)
    lsoda = res["stiff_exchange_64_vectors_lsoda_ms"]
    res["stiff_speedup_vs_lsoda"] = lsoda / res["stiff_exchange_64_vectors_bdf_ms"]
    res["stiff_rosenbrock_speedup_vs_lsoda"] = lsoda / res["stiff_exchange_64_vectors_rosenbrock_ms"]
    tm = pk.load_model(ROOT / "models" / "tmdd_full.toml")
    for solver in ("lsoda", *STIFF_SOLVERS):
        st = replace(tm, ode=replace(tm.ode, solver=solver), name=f"tmdd_full_{solver}")
        mt = pk.compile_model(st)
        # best of 15 for the compiled solvers (~3 ms a call: best of 3 was at the mercy of the host, 3.2 or 5.3 ms
        # between runs), as for the stiff exchange system above; LSODA's ~95 ms calls, 3
        res[f"tmdd_fo_reduced_{solver}_ms"] = 1e3 * best(lambda: pk.evaluate_fim(mt, tm.default_design, "fo"),
                                                        repeat=3 if solver == "lsoda" else 15)
    res["tmdd_speedup_vs_lsoda"] = res["tmdd_fo_reduced_lsoda_ms"] / res["tmdd_fo_reduced_bdf_ms"]
    res["tmdd_rosenbrock_speedup_vs_lsoda"] = res["tmdd_fo_reduced_lsoda_ms"] / res["tmdd_fo_reduced_rosenbrock_ms"]
    sh = pk.load_model(ROOT / "models" / "hcv.toml")
    mh = pk.compile_model(sh)
    for kind in ("reduced", "full"):
        res[f"hcv_fo_{kind}_ms"] = 1e3 * best(lambda: pk.evaluate_fim(mh, sh.default_design, "fo", kind))
    res["hcv_full_over_reduced"] = res["hcv_fo_full_ms"] / res["hcv_fo_reduced_ms"]
    rng = np.random.default_rng(0)
    psi = so.theta * np.exp(rng.normal(0, 0.3, (1000, 3)))
    reg = d.groups[0].regimen
    res["ode_1000_vectors_order2_ms"] = 1e3 * best(lambda: mo.evaluate(psi, TIMES, reg, order=2))
    res["closed_1000_vectors_order2_ms"] = 1e3 * best(lambda: mc.evaluate(psi, TIMES, reg, order=2))
    res["ratio_batched_order2"] = res["ode_1000_vectors_order2_ms"] / res["closed_1000_vectors_order2_ms"]
    report(res)


def _baseline(alpha, h=1e-5, n=32):
    """FO full FIM with the solve_ivp model: L by central differences in eta, the FIM by central
    differences of the mean and covariance in the population parameters."""
    return fd_fo_fim(alpha, ode_prediction, TIMES.size, n=n, h_eta=h, rel_alpha=1e-4)


if __name__ == "__main__":
    main()
