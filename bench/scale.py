"""Benchmark: scale-out and bounded memory (issue 14).

- exact-MC on warfarin (README design) at its default settings on one core (a fresh process with one numba and
  BLAS thread), three seeds: time, ln det and its Monte-Carlo SE, against the independent value 55.300 ± 0.009;
- exact-MC, 20,000 simulated subjects requested (rounded up to 16 quasi-random replicates of 2,048): a pool of 1
  worker process (the baseline, same run) vs 2 (spawn; chunks of subjects as tasks; each worker computes with one
  thread), speed-up; also the in-process time (numba's kernel threads use both cores there);
- peak resident memory of exact-MC at 20,000 and 200,000 subjects, each in a fresh process;
- an ED approximate design over 64 prior draws: 1 vs 2 worker processes (prior draws as tasks), and in process;
- the ED exchange (8 prior draws) against the D exchange on the same design (time ratio);
- an approximate design over all 658,008 schedules of 5 samples from 40 grid times (time, certificate, peak RSS).
Prints one JSON object on its last line (times in seconds, memory in MB).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pkdesign as pk  # noqa: E402
from pkdesign.executors import process_pool  # noqa: E402
from common import report, timed  # noqa: E402  (bench/common.py)

BIG = """
import resource, sys, time
sys.path.insert(0, {root!r})
import numpy as np, pkdesign as pk
m = pk.compile_model(pk.load_model("warfarin"))
space = pk.SamplingSpace(5, (0, 120), grid=np.linspace(0.5, 120, 40), regimen=pk.Regimen.single(70.0))
t = time.perf_counter()
r = pk.optimize_approximate(m, space, fim="reduced")
print(time.perf_counter() - t, r.certificate.efficiency_lower_bound, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

RSS = """
import resource, sys
sys.path.insert(0, {root!r})
import pkdesign as pk
m = pk.compile_model(pk.load_model("warfarin"))
r = pk.evaluate_fim(m, m.spec.default_design, "exact-mc", draws={draws}, seed=1)
print(r.logdet, r.info["logdet_mc_se"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

ONE_CORE = """
import sys, time
sys.path.insert(0, {root!r})
import pkdesign as pk
m = pk.compile_model(pk.load_model("warfarin"))
pk.evaluate_fim(m, m.spec.default_design, "exact-mc", draws=256, seed=99)  # kernels loaded
for seed in range(3):
    t = time.perf_counter()
    r = pk.evaluate_fim(m, m.spec.default_design, "exact-mc", seed=seed)
    print(time.perf_counter() - t, r.logdet, r.info["logdet_mc_se"], r.info["draws"])
"""
REFERENCE_LOGDET, REFERENCE_SE = 55.300, 0.009  # adaptive Gauss-Hermite quadrature + MC (issue 14)


def _warm(_):
    m = pk.compile_model(pk.load_model("warfarin"))
    return pk.evaluate_fim(m, m.spec.default_design).logdet


def main():
    model = pk.compile_model(pk.load_model("warfarin"))
    design = model.spec.default_design
    out = {}
    one = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", ONE_CORE.format(root=str(ROOT))], capture_output=True, text=True,
                         check=True, env=one)
    rows = [[float(v) for v in line.split()] for line in run.stdout.strip().splitlines()[-3:]]
    out |= {"exact_mc_default_draws": int(rows[0][3]),
            "exact_mc_default_1core_s_max": max(r[0] for r in rows),
            "exact_mc_default_logdet_se_max": max(r[2] for r in rows),
            "exact_mc_default_logdet_min": min(r[1] for r in rows),
            "exact_mc_default_logdet_max": max(r[1] for r in rows),
            "exact_mc_default_max_z_vs_reference": max(abs(r[1] - REFERENCE_LOGDET) / np.hypot(r[2], REFERENCE_SE)
                                                       for r in rows)}
    pools = {n: process_pool(n) for n in (1, 2)}
    for n, pool in pools.items():
        list(pool.map(_warm, range(n)))  # workers import pkdesign and load the kernels before timing
    pk.evaluate_fim(model, design, "exact-mc", draws=600, seed=0)
    t0, r0 = timed(lambda: pk.evaluate_fim(model, design, "exact-mc", draws=20_000, seed=1))
    t1, r1 = timed(lambda: pk.evaluate_fim(model, design, "exact-mc", draws=20_000, seed=1, executor=pools[1]))
    t2, r2 = timed(lambda: pk.evaluate_fim(model, design, "exact-mc", draws=20_000, seed=1, executor=pools[2]))
    assert np.array_equal(r0.matrix, r1.matrix) and np.array_equal(r1.matrix, r2.matrix)
    out |= {"exact_mc_20k_in_process_s": t0, "exact_mc_20k_1proc_s": t1, "exact_mc_20k_2proc_s": t2,
            "exact_mc_speedup": t1 / t2, "exact_mc_20k_draws_used": r1.info["draws"],
            "exact_mc_20k_logdet": r1.logdet, "exact_mc_20k_logdet_se": r1.info["logdet_mc_se"]}

    grid = np.array([0.5, 1, 2, 4, 6, 8, 12, 24, 36, 48, 72, 96, 120.0])
    space = pk.SamplingSpace(3, (0, 120), grid=grid, regimen=pk.Regimen.single(70.0))
    prior = pk.Prior({"CL": ("lognormal", 0.15, 0.2), "V": ("lognormal", 8, 0.1), "KA": ("lognormal", 1.0, 0.3)})
    kw = dict(criterion="ED", prior=prior, prior_draws=64, seed=0, fim="reduced")
    pk.optimize_approximate(model, space, **{**kw, "prior_draws": 4})
    t0, a0 = timed(lambda: pk.optimize_approximate(model, space, **kw))
    t1, a1 = timed(lambda: pk.optimize_approximate(model, space, executor=pools[1], **kw))
    t2, a2 = timed(lambda: pk.optimize_approximate(model, space, executor=pools[2], **kw))
    assert abs(a1.criterion_value - a2.criterion_value) < 1e-9 and abs(a0.criterion_value - a1.criterion_value) < 1e-9
    out |= {"ed_approx_64_in_process_s": t0, "ed_approx_64_1proc_s": t1, "ed_approx_64_2proc_s": t2,
            "ed_approx_speedup": t1 / t2}
    for pool in pools.values():
        pool.shutdown()

    pk.optimize_design(model, design, "D", "exchange", starts=1)
    tD, _ = timed(lambda: pk.optimize_design(model, design, "D", "exchange", starts=1))
    tE, _ = timed(lambda: pk.optimize_design(model, design, "ED", "exchange", starts=1, prior=prior, prior_draws=8))
    out |= {"d_exchange_s": tD, "ed8_exchange_s": tE, "ed8_over_d": tE / tD}

    for draws in (20_000, 200_000):
        run = subprocess.run([sys.executable, "-c", RSS.format(root=str(ROOT), draws=draws)], capture_output=True,
                             text=True, check=True)
        logdet, se, rss = (float(v) for v in run.stdout.split()[-3:])
        out |= {f"exact_mc_{draws // 1000}k_peak_rss_mb": rss, f"exact_mc_{draws // 1000}k_logdet": logdet,
                f"exact_mc_{draws // 1000}k_logdet_se": se}
    run = subprocess.run([sys.executable, "-c", BIG.format(root=str(ROOT))], capture_output=True, text=True, check=True)
    t, eff, rss = (float(v) for v in run.stdout.split()[-3:])
    out |= {"approx_658008_candidates_s": t, "approx_658008_efficiency_bound": eff,
            "approx_658008_peak_rss_mb": rss}
    report(out)


if __name__ == "__main__":
    main()
