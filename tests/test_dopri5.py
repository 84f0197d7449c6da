"""The ODE integrator is an ordinary module (``pkdesign/kernels/dopri5.py``): its functions run as plain
Python against plain Python right-hand sides, and ``bind`` compiles one copy per model whose numba cache
files sit beside that model's generated module."""

import math
from pathlib import Path

import numpy as np

from pkdesign.kernels import dopri5
from pkdesign.kernels import solver_common as common
from pkdesign.kernels.jit import rebind

from .conftest import compiled


def _advance_py(rhs):
    """``dopri5.advance`` run by the Python interpreter with ``rhs`` bound to a Python function."""
    ns = {"__name__": "test_dopri5_ns", "math": math, "np": np, "rhs": rhs, "step_control": common.step_control,
          "error_norm": common.error_norm}
    return rebind(dopri5.advance, "advance_py", ns)


def _work(ny):
    return np.empty((dopri5.work_rows(ny), ny)), np.zeros(dopri5.WS_SIZE)


def test_plain_python_integrator_matches_the_exact_solution():
    # y' = -K y + u, y(0) = 1: y(t) = u/K + (1 - u/K) exp(-K t)  (Dormand & Prince 1980, order 5)
    K, u = 0.7, 0.3

    def rhs(t, y, psi, u_in, dy):
        dy[0] = -psi[0] * y[0] + u_in

    advance = _advance_py(rhs)
    y = np.array([1.0])
    t, h, status, steps = advance(0.0, 4.0, y, 1e-3, np.array([K]), u, 1e-10, 1e-12, 100_000, *_work(1), 0)
    exact = u / K + (1 - u / K) * math.exp(-K * 4.0)
    assert status == 0 and t == 4.0 and 5 < steps < 2000
    assert abs(y[0] - exact) < 1e-9


def test_plain_python_integrator_reports_its_step_limit():
    def rhs(t, y, psi, u_in, dy):
        dy[0] = -psi[0] * y[0]

    advance = _advance_py(rhs)
    y = np.array([1.0])
    _, _, status, steps = advance(0.0, 100.0, y, 1e-3, np.array([50.0]), 0.0, 1e-12, 1e-14, 20, *_work(1), 0)
    assert status == 2 and steps == 20


def test_bound_solvers_are_per_model_and_cached_beside_the_generated_module():
    _, m = compiled("warfarin_ode")
    module = m.module
    for k in (0, 1, 2):
        for name in (f"solve{k}", f"solve{k}_parallel"):
            disp = getattr(module, name).disp
            assert disp.py_func.__code__.co_filename == module.__file__
            assert disp.py_func.__globals__["ORDER"] == k
            assert disp.py_func.__globals__["rhs"] is getattr(module, f"rhs{k}")
    m.evaluate(m.spec.theta, np.array([1.0, 24.0]), m.spec.default_design.groups[0].regimen, order=1)  # compiles
    if m.generated is not None and Path(module.__file__).exists():
        cache_dir = Path(module.__file__).parent / "__pycache__"
        stem = Path(module.__file__).stem
        names = {p.name.split(".")[1].rsplit("-", 1)[0] for p in cache_dir.glob(f"{stem}.*.nbi")}
        assert {"solve1", "advance1"} <= names, names
