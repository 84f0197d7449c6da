"""The compiled variable-order BDF/NDF solver for stiff ODE models (pkdesign.kernels.bdf).

- the difference-array rescaling (Shampine & Reichelt 1997, eq. 2.4) is exact on polynomials of the method's
  order (hypothesis, every order and step ratio);
- the stiff exchange system against the matrix exponential (value 1e-6, sensitivity 1e-4) and solver "auto"
  choosing BDF for it (and Dormand-Prince for warfarin);
- the full TMDD model (Mager & Jusko 2001) against scipy's LSODA path (FIM 1e-6);
- restarts at every discontinuity, history kept between samples: ODE twins with multiple boluses, a
  parameter-dependent lag (first- and second-order sensitivity jumps) and infusions starting and stopping
  between samples against their closed forms (predictions, first and second derivatives to 1e-7 of their largest value, FO FIMs
  to 1e-5).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pkdesign as pk
from pkdesign.kernels import bdf, solver_common

from .conftest import compiled
from .test_ode import check_stiff_exchange, check_tmdd_against_lsoda


def _differences(values, order):
    """D[0] = y_n, D[j] = j-th backward difference of the values y_n, y_{n-1}, ... (newest first)."""
    D = [np.array(values[: order + 1], dtype=float)]
    rows = [D[0][0]]
    cur = D[0]
    for _ in range(order):
        cur = cur[:-1] - cur[1:]
        rows.append(cur[0])
    return np.array(rows)


@settings(max_examples=60, deadline=None)
@given(order=st.integers(1, bdf.MAX_ORDER), factor=st.floats(0.05, 10.0),
       coefs=st.lists(st.floats(-2.0, 2.0), min_size=6, max_size=6))
def test_change_d_is_exact_on_polynomials(order, factor, coefs):
    h, t0 = 0.3, 1.7
    poly = np.polynomial.Polynomial(coefs[: order + 1])  # degree <= order: its differences are exact
    D = np.zeros((order + 1, 1))
    D[:, 0] = _differences([poly(t0 - j * h) for j in range(order + 1)], order)
    want = _differences([poly(t0 - j * factor * h) for j in range(order + 1)], order)
    solver_common.change_d(D, order, factor)
    np.testing.assert_allclose(D[:, 0], want, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(want).max()))


def test_plain_python_bdf_matches_the_exact_solution_across_calls():
    """``bdf.advance`` run by the interpreter on y' = -K y + u (exact: u/K + (1 - u/K) e^(-K t)), stopping at 40
    samples (history kept) and at a change of u (restart)."""
    from pkdesign.kernels import model_table
    from pkdesign.kernels import rosenbrock as R
    from pkdesign.kernels.jit import rebind

    def rhs(t, y, psi, u_in, dy):
        dy[0] = -psi[0] * y[0] + u_in

    def jac(t, y, psi, u_in, J):
        J[0, 0] = -psi[0]

    # the table's addresses are not read: call_rhs / call_jac call the Python functions; one state, order 0
    table = np.zeros(model_table.T_INDEX, dtype=np.int64)
    table[model_table.T_NX] = 1
    calls = {"call_rhs": lambda address, *args: rhs(*args), "call_jac": lambda address, *args: jac(*args)}
    ns = {"math": math, "np": np, **calls, **{c: v for c, v in vars(bdf).items() if c.isupper()}}
    shared = {**vars(R), **vars(solver_common), **calls}
    for name in ("stage_solve", "jacobian_at"):
        ns[name] = rebind(getattr(R, name), f"{name}_py", shared)
    ns["invert_state_block"] = solver_common.invert_state_block
    ns.update({name: getattr(solver_common, name) for name in ("error_norm", "change_d", "extrapolate")})
    for name in ("restart", "newton", "advance"):
        ns[name] = rebind(getattr(bdf, name), f"{name}_py", ns)
    K, u = 0.7, 0.3
    y = np.array([1.0])
    work, ws = np.zeros((bdf.work_rows(1), 1)), np.zeros(bdf.WS_SIZE)
    t, steps = 0.0, 0
    for t_end in np.linspace(0.1, 4.0, 40):
        t, _, status, steps = ns["advance"](t, t_end, y, 0.0, np.array([K]), u, 1e-10, 1e-12, 100_000,
                                            work, ws, steps, table)
        assert status == 0 and t == t_end
        assert abs(y[0] - (u / K + (1 - u / K) * math.exp(-K * t))) < 2e-8
    assert steps < 400  # measured 222; restarting at order 1 at each of the 40 samples takes more

    y0 = y[0]
    t, _, status, steps = ns["advance"](t, 6.0, y, 0.0, np.array([K]), 0.0, 1e-10, 1e-12, 100_000,
                                        work, ws, steps, table)
    assert status == 0 and abs(y[0] - y0 * math.exp(-K * 2.0)) < 2e-8


def test_stiff_exchange_against_the_matrix_exponential_and_auto():
    check_stiff_exchange("bdf")
    model = check_stiff_exchange("auto")
    assert model.choose_solver(model.spec.theta, np.array([0.01, 20.0]), []) == "bdf"
    w = pk.load_model("warfarin_ode")
    auto = pk.compile_model(replace(w, ode=replace(w.ode, solver="auto"), name="warfarin_ode_auto"))
    assert auto.choose_solver(w.theta, np.array([0.5, 120.0]), [70.0]) == "dopri5"


def test_tmdd_equals_lsoda():
    check_tmdd_against_lsoda("bdf")
    spec = pk.load_model("tmdd_full")
    auto = pk.compile_model(spec)  # the library model says solver = "auto"
    g = spec.default_design.groups[0]
    assert auto.choose_solver(spec.theta, g.observations(spec.output_names)[0], [10.0]) == "bdf"


def _bdf_twin(name):
    spec, _ = compiled(name)
    s = replace(spec, ode=replace(spec.ode, solver="bdf"), name=f"{name}_bdf")
    return s, pk.compile_model(s)


def _close(a, b):
    """Within 1e-7 of the largest entry (the model files' rtol is 1e-8; a BDF's global error is a few times
    that of Dormand-Prince at the same tolerance: measured 2-4e-9), and entry by entry within 1e-4 (second
    derivatives that cross zero; measured ≤ 1.1e-5); NaN ("not computed") in the same entries of both."""
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    a, b = a[~np.isnan(b)], b[~np.isnan(b)]
    err = np.abs(a - b)
    assert err.max() <= 1e-7 * np.abs(b).max()
    assert np.max(err / np.maximum(np.abs(b), 1e-8 * np.abs(b).max())) < 1e-4


@pytest.mark.parametrize("ode_name, closed_name, regimen, order", [
    ("warfarin_ode", "warfarin", {"amount": 70, "interval": 24, "count": 3}, 1),
    ("two_comp_oral_ode", "two_comp_oral", {"amount": 100, "interval": 12, "count": 4}, 2),  # lag: 2nd-order jumps
    ("one_comp_infusion_ode", "one_comp_infusion", {"amount": 100, "times": [0.3, 5.2, 11.0], "duration": 1.7}, 1),
])
def test_twins_with_events_equal_their_closed_forms(ode_name, closed_name, regimen, order):
    """Second order (and the full FIM) on the model with the most events (lagged boluses: second-order jumps);
    first order on the others (the order-2 kernels of each twin would cost ~25 s of compile in the suite)."""
    so, mo = _bdf_twin(ode_name)
    sc, mc = compiled(closed_name)
    reg = pk.Regimen.from_dict(regimen)
    t = np.array([0.1, 0.3, 1.0, 2.0, 5.2, 6.0, 6.95, 7.0, 11.0, 12.5, 24.0, 30.0, 47.9, 60.0])
    psi = sc.theta * np.exp(np.random.default_rng(2).normal(0, 0.2, (3, sc.theta.size)))
    a = mo.evaluate(psi, t, reg, order=order)
    b = mc.evaluate(psi, t, reg, order=order)
    for k in a:
        _close(a[k], b[k])
    for kind in ("reduced", "full")[:order]:
        fo = pk.evaluate_fim(mo, so.default_design, "fo", kind)
        fc = pk.evaluate_fim(mc, sc.default_design, "fo", kind)
        np.testing.assert_allclose(fo.matrix, fc.matrix, rtol=1e-5, atol=1e-8 * np.abs(fc.matrix).max())


def test_many_samples_do_not_restart_the_history():
    """Samples are not discontinuities: 200 samples cost far fewer steps than 200 restarts would (a restart
    begins at order 1 with a small step).  Measured by the step budget: the run fits in max_steps steps."""
    spec = pk.load_model("tmdd_full")
    g = spec.default_design.groups[1]
    dense = np.linspace(0.05, 28.0, 200)
    s = replace(spec, ode=replace(spec.ode, solver="bdf", max_steps=1500), name="tmdd_bdf_budget")
    res = pk.compile_model(s).evaluate(spec.theta, dense, g.regimen, order=1)
    assert np.all(np.isfinite(res["d1"]))


def test_samples_very_close_together_are_reached_without_tiny_steps():
    """Samples 1e-17 after a dose and 1e-12 apart mid-run (a design search put them there; shortening the step
    to land on each shrank the difference array by twelve orders of magnitude and the next step failed with
    'step size below 1e-14').  Such ends are reached by the history's polynomial; the values equal those of
    a run without the extra samples."""
    spec = pk.load_model("tmdd_full")
    s = replace(spec, ode=replace(spec.ode, solver="bdf"), name="tmdd_bdf_close")
    model = pk.compile_model(s)
    reg = spec.default_design.groups[1].regimen
    close = np.array([1e-17, 2e-17, 0.5, 12.358, 12.358 + 1e-12, 12.358 + 2e-12, 28.0])
    res = model.evaluate(spec.theta, close, reg, order=1)
    ref = model.evaluate(spec.theta, np.array([0.5, 12.358, 28.0]), reg, order=1)
    np.testing.assert_allclose(res["f"][[2, 3, 6]], ref["f"], rtol=1e-7)
    np.testing.assert_allclose(res["f"][4:6], ref["f"][1], rtol=1e-9)
    assert np.all(np.isfinite(res["d1"]))


def test_auto_switches_to_bdf_when_dormand_prince_runs_out_of_steps():
    """``auto`` judged non-stiff by its eigenvalue test (forced here) but Dormand-Prince exceeds max_steps: the
    batch is solved again by BDF, which stays the model's choice; the numbers are BDF's."""
    from .test_ode import STIFF

    text = STIFF.replace('solver = "SOLVER"', 'solver = "SOLVER"\nmax_steps = 5000')
    auto = pk.compile_model(pk.parse_model_text(text.replace("SOLVER", "auto"), "stiff_auto.toml"))
    ref = pk.compile_model(pk.parse_model_text(text.replace("SOLVER", "bdf"), "stiff_bdf.toml"))
    auto._auto = "dopri5"  # as if the eigenvalue test had said non-stiff
    t = np.array([0.01, 0.1, 1.0, 5.0, 20.0])
    got = auto.evaluate(auto.spec.theta, t, order=1)
    assert auto._auto == "bdf"
    want = ref.evaluate(ref.spec.theta, t, order=1)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
