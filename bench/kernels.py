"""Benchmark: warfarin predictions + first derivatives for 100,000 parameter vectors x 8 times.

Baseline, measured in the same run: sympy.lambdify (numpy backend) of the same closed form,
with central finite differences for the derivatives.  The kernel is timed writing into
preallocated outputs on all threads (the headline figure), on one thread, and allocating its
outputs on every call.  Also measures the cold compile of one
model (fresh cache directory, new process) and the warm load from the cache (new process).
Prints one JSON object on its last line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sympy as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pkdesign as pk  # noqa: E402
from common import best  # noqa: E402  (bench/common.py)

N_VEC = 100_000
TIMES = np.array([0.5, 1, 2, 6, 24, 36, 72, 120], dtype=float)

LOAD = """
import time, sys
t0 = time.perf_counter()
import pkdesign as pk
t1 = time.perf_counter()
spec = pk.load_model(sys.argv[1])
m = pk.compile_model(spec)
m.kernel(1)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, m.generated)
"""




def main():
    spec = pk.load_model(ROOT / "models" / "warfarin.toml")
    model = pk.compile_model(spec)
    rng = np.random.default_rng(0)
    psi = spec.theta * np.exp(rng.normal(0.0, 0.3, (N_VEC, 3)))
    reg = pk.Regimen.single(70.0)
    model.evaluate(psi[:10], TIMES, reg, order=1)  # compile / load outside the timing
    # the kernel writes into preallocated outputs (evaluate(..., out=)); the same call allocating its
    # outputs (fresh pages: ~1.5 ms of page faults for the 32 MB written here) is reported beside it
    out = {"f": np.empty((N_VEC, TIMES.size)), "d1": np.empty((N_VEC, TIMES.size, 3)),
           "dt": np.empty((N_VEC, TIMES.size))}
    t_kernel = best(lambda: model.evaluate(psi, TIMES, reg, order=1, out=out), repeat=30)
    t_alloc = best(lambda: model.evaluate(psi, TIMES, reg, order=1), repeat=30)
    kern = model.kernel(1)
    doses = tuple(np.ascontiguousarray(a, dtype=float) for a in (reg.times, reg.amounts, reg.durations))
    idx = np.zeros(TIMES.size, dtype=np.int64)
    t_serial = best(lambda: kern(psi, TIMES, idx, *doses, out["f"], out["d1"], out["dt"]), repeat=30)

    CL, V, KA, t = sp.symbols("CL V KA t")
    expr = 70.0 / V * KA / (KA - CL / V) * (sp.exp(-CL / V * t) - sp.exp(-KA * t))
    f = sp.lambdify((CL, V, KA, t), expr, "numpy")
    cl, v, ka = (psi[:, k:k + 1] for k in range(3))

    def baseline():
        out = [f(cl, v, ka, TIMES)]
        for k in range(3):
            args = [cl, v, ka]
            h = 1e-6 * args[k]
            up = list(args)
            dn = list(args)
            up[k] = args[k] + h
            dn[k] = args[k] - h
            out.append((f(*up, TIMES) - f(*dn, TIMES)) / (2 * h))
        return out

    t_base = best(baseline, repeat=3)
    ref = baseline()
    got = model.evaluate(psi[:100], TIMES, reg, order=1)
    agree = float(np.max(np.abs(got["d1"][:, :, 2] - ref[3][:100]) / (np.abs(ref[3][:100]) + 1e-12)))

    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, PKDESIGN_CACHE_DIR=cache)
        runs = []
        for _ in range(2):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", LOAD, str(ROOT / "models" / "warfarin.toml")], env=env,
                                 capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t0
            imp, load, generated = out.stdout.split()
            runs.append((float(imp), float(load), generated == "True", wall))
    n = N_VEC * TIMES.size
    result = {
        "n_vectors": N_VEC,
        "n_times": int(TIMES.size),
        "kernel_seconds": t_kernel,
        "kernel_ns_per_vector_time": 1e9 * t_kernel / n,
        "kernel_one_thread_ns_per_vector_time": 1e9 * t_serial / n,
        "allocating_call_ns_per_vector_time": 1e9 * t_alloc / n,
        "baseline_seconds": t_base,
        "baseline_ns_per_vector_time": 1e9 * t_base / n,
        "speedup_vs_lambdify_fd": t_base / t_kernel,
        "speedup_one_thread": t_base / t_serial,
        "speedup_allocating_call": t_base / t_alloc,
        "max_rel_diff_dKA_vs_fd": agree,
        "cold_compile_seconds_order1": runs[0][1],
        "cold_generated": runs[0][2],
        "warm_load_seconds_order1": runs[1][1],
        "warm_generated": runs[1][2],
        "import_pkdesign_seconds": runs[1][0],
        "warm_process_wall_seconds": runs[1][3],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
