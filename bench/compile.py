"""Benchmark: cold compile, the time a first use costs (issue 15).

Each figure is measured in a fresh process with empty caches (a temporary ``PKDESIGN_CACHE_DIR`` for the model
kernels and a temporary ``NUMBA_CACHE_DIR`` for numba's files, so the package's own FIM kernels compile too):

- ``warfarin_first_fim_s``: ``pkdesign.evaluate_fim`` of the warfarin example design, FO reduced FIM (the
  default), from ``import pkdesign`` to the result; ``warfarin_first_full_fim_s`` the same for the full FIM;
- per library model, the kernels an order-2 evaluation needs (``model.evaluate(..., order=2)``: closed forms
  their order-2 kernel, ODE models their order-2 generated functions and, in an empty numba cache, the
  package's solver), split into code generation (sympy) and the first evaluation (numba);
  ``max_order2_compile_s`` is the largest total; ``max_order2_installed_s`` the same with the package's own
  kernels (FIM kernels, the ODE solvers) already compiled, as after any earlier use of the installation, and
  ``max_order2_ode_installed_s`` its largest over the ODE models;
- ``warfarin_first_fim_installed_s``: the same first FIM in an empty model cache, the package's FIM kernels
  already compiled (numba's cache kept from a run on another model cache): what a new model costs once the
  installation has compiled its FIM kernels (they are compiled once per installation);
- the baseline in the same run: the same measurement of a warm start (``warfarin_warm_fim_s``), caches full.

Prints one JSON object on its last line (seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from common import report  # noqa: E402  (bench/common.py)

FIRST_FIM = """
import time
t0 = time.perf_counter()
import pkdesign as pk
spec = pk.load_model("warfarin")
r = pk.evaluate_fim(pk.compile_model(spec), spec.default_design, fim={fim!r})
print(time.perf_counter() - t0, r.logdet)
"""

ORDER2 = """
import json, time
import numpy as np
import pkdesign as pk
spec = pk.load_model({name!r})
t0 = time.perf_counter()
m = pk.compile_model(spec)
t1 = time.perf_counter()
g = spec.default_design.groups[0]
t, idx = g.observations(spec.output_names)
m.evaluate(spec.theta, t, g.regimen, output=idx, order=2)
t2 = time.perf_counter()
print(json.dumps({{"generate_s": t1 - t0, "compile_and_first_call_s": t2 - t1}}))
"""


#: the package's ODE solvers (compiled once per installation, kernels/integrators.py)
PACKAGE_SOLVERS = """
from pkdesign.kernels import integrators
for method in integrators.METHODS:
    integrators.solver(method)
"""


def cold(code: str, fresh: bool = True, numba_dir: str | None = None) -> str:
    """Run ``code`` in a fresh process; ``fresh``: empty model and numba caches (``numba_dir``: this numba cache
    instead of an empty one); returns its last output line."""
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        env = dict(os.environ)
        if fresh:
            env.update(PKDESIGN_CACHE_DIR=a, NUMBA_CACHE_DIR=numba_dir or b)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        return out.stdout.strip().splitlines()[-1]


def main():
    res = {}
    res["warfarin_first_fim_s"] = float(cold(FIRST_FIM.format(fim="reduced")).split()[0])
    res["warfarin_first_full_fim_s"] = float(cold(FIRST_FIM.format(fim="full")).split()[0])
    with tempfile.TemporaryDirectory() as numba_dir:
        cold(FIRST_FIM.format(fim="reduced"), numba_dir=numba_dir)  # the package's kernels into this numba cache
        res["warfarin_first_fim_installed_s"] = float(cold(FIRST_FIM.format(fim="reduced"),
                                                           numba_dir=numba_dir).split()[0])
    cold(FIRST_FIM.format(fim="reduced"), fresh=False)  # fill the user's caches, then the warm baseline
    res["warfarin_warm_fim_s"] = float(cold(FIRST_FIM.format(fim="reduced"), fresh=False).split()[0])
    res["first_over_warm"] = res["warfarin_first_fim_s"] / res["warfarin_warm_fim_s"]
    names = sorted(p.stem for p in (ROOT / "models").glob("*.toml"))
    worst, worst_name = 0.0, ""
    for name in names:
        got = json.loads(cold(ORDER2.format(name=name)))
        total = got["generate_s"] + got["compile_and_first_call_s"]
        res[f"order2_{name}_s"] = total
        if total > worst:
            worst, worst_name = total, name
    res["max_order2_compile_s"] = worst
    print(f"slowest order-2 compile: {worst_name}")
    with tempfile.TemporaryDirectory() as numba_dir:  # the package's kernels compiled once, then each model
        cold(FIRST_FIM.format(fim="full") + PACKAGE_SOLVERS, numba_dir=numba_dir)
        worst, worst_name, worst_ode = 0.0, "", 0.0
        for name in names:
            got = json.loads(cold(ORDER2.format(name=name), numba_dir=numba_dir))
            total = got["generate_s"] + got["compile_and_first_call_s"]
            if total > worst:
                worst, worst_name = total, name
            if "[ode]" in (ROOT / "models" / f"{name}.toml").read_text():
                worst_ode = max(worst_ode, total)
        res["max_order2_installed_s"] = worst
        res["max_order2_ode_installed_s"] = worst_ode
    print(f"slowest order-2 compile with the package's kernels compiled: {worst_name}")
    report(res)


if __name__ == "__main__":
    main()
