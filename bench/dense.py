"""Benchmark: FO full FIM of one warfarin subject with dense sampling (100, 1,000, 10,000 samples).

Two paths for the same numbers:
- dense (the baseline, measured in the same run): the numba kernel that forms V (n x n), its
  Cholesky factor and every dV (p x n x n) -- O(n^3) time and O(p n^2) memory; run where it fits
  (100 and 1,000 samples);
- structured (what ``evaluate_fim`` uses above 48 samples): Woodbury / capacitance matrix, sums of
  small products over the samples -- O(n) time and, in chunks, bounded memory.
Each case runs in its own process, so that its peak resident memory (ru_maxrss) is its own; the
figure includes the interpreter and the compiled kernels (the "idle" case: the same process
evaluating 8 samples).  Also checks that both paths agree (max relative difference of the FIMs).
Prints one JSON object on its last line (times in seconds, memory in MB).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import report  # noqa: E402  (bench/common.py)

CASE = r'''
import json, resource, sys, time
import numpy as np
import pkdesign as pk
from pkdesign.fim import linearized
n, path = int(sys.argv[1]), sys.argv[2]
spec = pk.load_model(sys.argv[3])
model = pk.compile_model(spec)
design = lambda k: pk.Design([pk.Group(1, {"conc": np.linspace(0.5, 120.0, k)}, pk.Regimen.single(70.0))])
if path == "dense":
    linearized.STRUCTURED_ABOVE = 10**9  # force the dense kernel
pk.evaluate_fim(model, design(8), "fo", "full")  # compile / load kernels
t0 = time.perf_counter()
res = pk.evaluate_fim(model, design(n), "fo", "full")
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "fim": res.matrix.tolist(), "logdet": res.logdet}))
'''


def run(n: int, path: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CASE, str(n), path, str(ROOT / "models" / "warfarin.toml")],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import numpy as np

    res = {}
    idle = run(8, "structured")
    res["idle_rss_mb"] = idle["rss_mb"]
    for n in (100, 1000, 10000):
        s = run(n, "structured")
        res[f"structured_{n}_s"] = s["seconds"]
        res[f"structured_{n}_rss_mb"] = s["rss_mb"]
        if n <= 1000:
            d = run(n, "dense")
            res[f"dense_{n}_s"] = d["seconds"]
            res[f"dense_{n}_rss_mb"] = d["rss_mb"]
            res[f"speedup_{n}"] = d["seconds"] / s["seconds"]
            a, b = np.array(s["fim"]), np.array(d["fim"])
            res[f"max_rel_diff_{n}"] = float(np.abs(a - b).max() / np.abs(b).max())
    report(res)


if __name__ == "__main__":
    main()
