"""The ODE integrator is an ordinary module (``pkdesign/kernels/dopri5.py``): its functions run as plain
Python against plain Python right-hand sides; ``pkdesign.kernels.integrators`` compiles it once per installation
and every model reaches it through its table (``pkdesign.kernels.model_table``)."""

import json
import math

import numba
import numpy as np
import pytest
from numba.core.errors import TypingError

from pkdesign.kernels import dopri5, model_table
from pkdesign.kernels import solver_common as common
from pkdesign.kernels.jit import rebind

from .conftest import compiled


def _advance_py(rhs):
    """``dopri5.advance`` run by the Python interpreter with the model's right-hand side a Python function (the
    table's address is not read: ``call_rhs`` calls ``rhs``)."""
    ns = {"__name__": "test_dopri5_ns", "math": math, "np": np, "call_rhs": lambda address, *args: rhs(*args),
          "T_RHS": model_table.T_RHS, "step_control": common.step_control, "error_norm": common.error_norm}
    return rebind(dopri5.advance, "advance_py", ns)


def _work(ny):
    """work, ws, steps and the (unread) table: the arguments after ``max_steps``."""
    return np.empty((dopri5.work_rows(ny), ny)), np.zeros(dopri5.WS_SIZE), 0, np.zeros(model_table.T_INDEX, np.int64)


def test_plain_python_integrator_matches_the_exact_solution():
    # y' = -K y + u, y(0) = 1: y(t) = u/K + (1 - u/K) exp(-K t)  (Dormand & Prince 1980, order 5)
    K, u = 0.7, 0.3

    def rhs(t, y, psi, u_in, dy):
        dy[0] = -psi[0] * y[0] + u_in

    advance = _advance_py(rhs)
    y = np.array([1.0])
    t, h, status, steps = advance(0.0, 4.0, y, 1e-3, np.array([K]), u, 1e-10, 1e-12, 100_000, *_work(1))
    exact = u / K + (1 - u / K) * math.exp(-K * 4.0)
    assert status == 0 and t == 4.0 and 5 < steps < 2000
    assert abs(y[0] - exact) < 1e-9


def test_plain_python_integrator_reports_its_step_limit():
    def rhs(t, y, psi, u_in, dy):
        dy[0] = -psi[0] * y[0]

    advance = _advance_py(rhs)
    y = np.array([1.0])
    _, _, status, steps = advance(0.0, 100.0, y, 1e-3, np.array([50.0]), 0.0, 1e-12, 1e-14, 20, *_work(1))
    assert status == 2 and steps == 20


def test_one_compiled_solver_serves_every_model_through_its_table():
    """The solvers are compiled once (fixed signature, compilation then disabled) and take the model as a table of
    sizes, function addresses and indices; a model's table calls its own compiled functions (values of two models
    through the same solver)."""
    from pkdesign.kernels import integrators

    _, warfarin = compiled("warfarin_ode")
    _, oral = compiled("two_comp_oral_ode")
    for m in (warfarin, oral):
        m.evaluate(m.spec.theta, np.array([1.0, 24.0]), m.spec.default_design.groups[0].regimen, order=1)
    disp = integrators.solver("dopri5")
    assert len(disp.overloads) == 1 and not disp._can_compile
    assert disp.py_func.__code__.co_filename == integrators.__file__
    if integrators._GUARD.enabled:  # its numba cache files are recorded in the verified manifest
        directory, stem = integrators._GUARD.location
        manifest = json.loads((directory / f"{stem}.pkdesign-manifest.json").read_text())["files"]
        assert any(name.startswith(f"{stem}.solve_dopri5_{integrators._SOURCES}") for name in manifest), manifest
    tables = [m.module._pkdesign_tables[(1, m.lag_depends_on_parameters, False)] for m in (warfarin, oral)]
    for m, table in zip((warfarin, oral), tables):
        assert table[model_table.T_NX] == len(m.spec.ode.states) and table[model_table.T_ORDER] == 1
        assert table[model_table.T_RHS] == model_table.function_address(m.module.rhs1, model_table.RHS)
        assert list(table[model_table.T_INDEX:model_table.T_INDEX + m.module.N_ACT]) == list(m.module.ACTIVE)
    assert tables[0][model_table.T_RHS] != tables[1][model_table.T_RHS]


def test_a_model_function_called_with_other_types_does_not_compile():
    """``call_rhs`` & co. call an address with a fixed signature: any other argument types are a typing error, never
    a call with a mismatched layout."""
    @numba.njit
    def wrong(address, y):
        model_table.call_rhs(address, 0.0, y, y, 0.0, y)

    with pytest.raises(TypingError, match="model function of signature"):
        wrong(np.int64(0), np.zeros((2, 2))[:, 0])  # a strided view, not a contiguous vector
