"""Benchmark: start-up, the time a user waits for one command.

Measures, as separate processes (best of several runs after a warm-up that fills the kernel cache):
- the baseline in the same run: ``python -c pass`` (the interpreter alone);
- ``python -c "import pkdesign"`` (the public API; nothing heavy is imported until used);
- ``pkdesign evaluate warfarin --json`` warm (kernels in the disk cache), FO reduced FIM;
- the same through ``python -X importtime``: seconds spent importing each of sympy, numba, llvmlite, scipy,
  pandas, numpy and pkdesign (self time of all their modules).
Prints one JSON object on its last line (seconds, and ratios to ``python -c pass``).

The child processes run with Python's default of writing bytecode (``PYTHONDONTWRITEBYTECODE`` removed from
their environment), as for an installed wheel, whose modules pip byte-compiles: with the variable set, every
run compiles pkdesign's modules from source again (~0.06 s more).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
sys.path.insert(0, str(ROOT / "bench"))

from common import report  # noqa: E402  (bench/common.py)


def wall(argv, repeat=5) -> float:
    subprocess.run(argv, capture_output=True, check=True, env=ENV)  # warm-up (fills caches, writes bytecode)
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=ENV)
        out.append(time.perf_counter() - t0)
    return min(out)


def import_seconds(argv) -> dict:
    err = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True,
                         check=True, env=ENV).stderr
    out = {}
    for line in err.splitlines():  # self time of every module, summed per top-level package
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            top = m.group(2).split(".")[0]
            out[top] = out.get(top, 0.0) + int(m.group(1)) / 1e6
    return {k: out.get(k, 0.0) for k in ("sympy", "numba", "scipy", "pandas", "numpy", "pkdesign", "llvmlite")}


def main():
    py = sys.executable
    cli = [py, "-m", "pkdesign.cli", "evaluate", "warfarin", "--json"]
    res = {"python_pass_s": wall([py, "-c", "pass"]),
           "import_pkdesign_s": wall([py, "-c", "import pkdesign"]),
           "evaluate_warfarin_warm_s": wall(cli, repeat=5)}
    res["import_ratio"] = res["import_pkdesign_s"] / res["python_pass_s"]
    res["evaluate_ratio"] = res["evaluate_warfarin_warm_s"] / res["python_pass_s"]
    for name, sec in import_seconds(cli[1:]).items():
        res[f"evaluate_imports_{name}_s"] = sec
    report(res)


if __name__ == "__main__":
    main()
