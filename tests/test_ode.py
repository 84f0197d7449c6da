"""ODE-defined models: twins of closed forms, sensitivities vs finite differences, dose events,
a stiff system, and bad input.

References: the closed forms of the same models (validated against LSODA and PopED elsewhere);
the analytic solution (matrix exponential) of a stiff linear system; finite differences.
"""

import functools
import time

import numpy as np
import pytest
from scipy.linalg import expm

import pkdesign as pk

from .conftest import MODELS, compiled


def _pair(ode_name, closed_name):
    return compiled(ode_name), compiled(closed_name)


def _close(a, b, rtol):
    """Entry by entry within ``rtol`` (of the entry, at least 1e-8 of the largest); NaN ("not computed": second
    derivatives in two parameters without variability) in the same entries of both."""
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    a, b = a[~np.isnan(b)], b[~np.isnan(b)]
    scale = np.maximum(np.abs(b), 1e-8 * np.abs(b).max())
    assert np.max(np.abs(a - b) / scale) < rtol


@pytest.mark.parametrize("order", [1, 2])
def test_warfarin_twin_predictions_sensitivities_and_fim(order):
    (so, mo), (sc, mc) = _pair("warfarin_ode", "warfarin")
    t = np.array([0.25, 0.5, 1, 2, 6, 24, 36, 72, 120.0])
    reg = pk.Regimen.from_dict({"amount": 70, "interval": 24, "count": 3})  # multiple doses by events
    rng = np.random.default_rng(1)
    psi = so.theta * np.exp(rng.normal(0, 0.3, (5, 3)))
    a = mo.evaluate(psi, t, reg, order=order)
    b = mc.evaluate(psi, t, reg, order=order)  # superposition
    for k in a:
        _close(a[k], b[k], 1e-6)
    kind = "full" if order == 2 else "reduced"
    fo = pk.evaluate_fim(mo, so.default_design, "fo", kind)
    fc = pk.evaluate_fim(mc, sc.default_design, "fo", kind)
    np.testing.assert_allclose(fo.matrix, fc.matrix, rtol=1e-5, atol=1e-8 * np.abs(fc.matrix).max())
    assert fo.logdet == pytest.approx(fc.logdet, rel=1e-6)


def test_large_batches_split_across_threads_equal_one_vector_at_a_time():
    """Batches of >= PARALLEL_MIN_VECTORS parameter vectors run in chunks on the thread pool (the compiled solver
    releases the GIL): the same numbers as each vector alone, order 2 with a parameter-dependent lag."""
    from pkdesign.model import ode

    so, mo = compiled("two_comp_oral_ode")
    g = so.default_design.groups[0]
    t, idx = g.observations(so.output_names)
    psi = so.theta * np.exp(np.random.default_rng(3).normal(0, 0.2, (ode.PARALLEL_MIN_VECTORS + 3, so.theta.size)))
    batch = mo.evaluate(psi, t, g.regimen, order=2)
    for v in (0, 31, 32, ode.PARALLEL_MIN_VECTORS + 2):
        one = mo.evaluate(psi[v], t, g.regimen, order=2)
        for k in one:
            np.testing.assert_array_equal(batch[k][v], one[k])


def test_two_compartment_oral_twin_with_lag_and_multiple_doses():
    (so, mo), (sc, mc) = _pair("two_comp_oral_ode", "two_comp_oral")
    for g in so.default_design.groups:
        t, idx = g.observations(so.output_names)
        a = mo.evaluate(so.theta, t, g.regimen, order=2)
        b = mc.evaluate(sc.theta, t, g.regimen, order=2)
        for k in a:  # includes ∂/∂TLAG and ∂²/∂TLAG∂ψ: first- and second-order jumps at the (lagged) dose
            _close(a[k], b[k], 1e-6)
    for kind in ("reduced", "full"):
        fo = pk.evaluate_fim(mo, so.default_design, "fo", kind)
        fc = pk.evaluate_fim(mc, sc.default_design, "fo", kind)
        np.testing.assert_allclose(fo.matrix, fc.matrix, rtol=1e-5, atol=1e-8 * np.abs(fc.matrix).max())


def test_infusion_twin_events_between_samples():
    (so, mo), (sc, mc) = _pair("one_comp_infusion_ode", "one_comp_infusion")
    # infusions that start and stop between samples, and a sample exactly at an infusion start (pre-dose)
    reg = pk.Regimen.from_dict({"amount": 100, "times": [0.3, 5.2, 11.0], "duration": 1.7})
    t = np.array([0.1, 0.3, 1.0, 2.0, 5.2, 6.0, 6.95, 7.0, 11.0, 12.5, 24.0])  # (dt jumps at an infusion end)
    a = mo.evaluate(so.theta, t, reg, order=1)
    b = mc.evaluate(sc.theta, t, reg, order=1)
    for k in a:
        _close(a[k], b[k], 1e-6)
    assert a["f"][0] == 0.0 and a["f"][1] == 0.0  # before and at the first start


def test_sensitivities_of_a_nonlinear_model_match_finite_differences():
    spec, model = compiled("one_comp_mm_oral")
    g = spec.default_design.groups[0]
    t = g.times["conc"]
    res = model.evaluate(spec.theta, t, g.regimen, order=1)
    for k in range(spec.theta.size):
        h = 1e-5 * spec.theta[k]
        up, dn = spec.theta.copy(), spec.theta.copy()
        up[k] += h
        dn[k] -= h
        fd = (model.evaluate(up, t, g.regimen, order=0)["f"] - model.evaluate(dn, t, g.regimen, order=0)["f"]) / (2 * h)
        np.testing.assert_allclose(res["d1"][:, k], fd, rtol=1e-5, atol=1e-9)
    h = 1e-5
    fd_t = (model.evaluate(spec.theta, t + h, g.regimen, order=0)["f"]
            - model.evaluate(spec.theta, t - h, g.regimen, order=0)["f"]) / (2 * h)
    np.testing.assert_allclose(res["dt"], fd_t, rtol=1e-5, atol=1e-9)


STIFF = """
[model]
name = "stiff_exchange"
description = "Fast reversible exchange (rates 1e4) with slow elimination: a stiff linear test system."
source = "test"
[parameters]
K12 = 1e4
K21 = 2e4
KE = 0.1
[ode]
states = ["a", "b"]
solver = "SOLVER"
rtol = 1e-8
atol = 1e-12
[ode.derivatives]
a = "-K12*a + K21*b - KE*a"
b = "K12*a - K21*b"
[ode.initial]
a = 1.0
[outputs.y]
expression = "a + b"
error = { model = "additive", add = { variance = 0.01 } }
"""


def check_stiff_exchange(solver):
    """Evaluate the stiff exchange system with ``solver``; value and ∂/∂KE against the matrix exponential (the
    derivative by differentiating it numerically).  Returns the compiled model."""
    spec = pk.parse_model_text(STIFF.replace("SOLVER", solver), "stiff.toml")
    model = pk.compile_model(spec)
    t = np.array([0.01, 0.1, 1.0, 5.0, 20.0])
    res = model.evaluate(spec.theta, t, order=1)
    k12, k21, ke = spec.theta
    A = np.array([[-k12 - ke, k21], [k12, -k21]])
    exact = np.array([expm(A * s) @ [1.0, 0.0] for s in t]).sum(axis=1)
    np.testing.assert_allclose(res["f"], exact, rtol=1e-6)
    h = 1e-6
    Ah = A.copy()
    Ah[0, 0] -= h
    d_ke = (np.array([expm(Ah * s) @ [1.0, 0.0] for s in t]).sum(axis=1) - exact) / h
    np.testing.assert_allclose(res["d1"][:, 2], d_ke, rtol=1e-4)
    return model


@functools.cache
def tmdd_fim(solver):
    """FO reduced FIM of the full TMDD model's design (models/tmdd_full.toml, stiff) with ``solver``."""
    from dataclasses import replace

    spec = pk.load_model("tmdd_full")
    s = replace(spec, ode=replace(spec.ode, solver=solver), name=f"tmdd_{solver}")
    return pk.evaluate_fim(pk.compile_model(s), s.default_design, "fo").matrix


def check_tmdd_against_lsoda(solver):
    """The TMDD FIM with ``solver`` equals the LSODA path's (1e-6)."""
    ref = tmdd_fim("lsoda")
    np.testing.assert_allclose(tmdd_fim(solver), ref, rtol=1e-6, atol=1e-9 * np.abs(ref).max())


def test_stiff_system_solves_within_tolerance_in_bounded_time():
    t0 = time.perf_counter()
    check_stiff_exchange("lsoda")
    assert time.perf_counter() - t0 < 30.0


def _bad(text):
    return pk.parse_model_text(text, "bad.toml")


BASE = """
[model]
name = "b"
[parameters]
K = 0.5
[ode]
states = ["x"]
[ode.derivatives]
DERIV
[ode.initial]
INIT
[dosing]
DOSING
[outputs.y]
expression = "x"
error = { model = "additive", add = { variance = 0.01 } }
"""


def _text(deriv='x = "-K*x"', init="x = 1.0", dosing=""):
    return BASE.replace("DERIV", deriv).replace("INIT", init).replace("DOSING", dosing)


def test_bad_ode_input():
    with pytest.raises(pk.ExpressionError, match="unknown name 'z'"):
        _bad(_text(deriv='x = "-K*z"'))
    with pytest.raises(pk.ModelSpecError, match="unknown state"):
        _bad(_text(deriv='x = "-K*x"\nw = "1"'))
    with pytest.raises(pk.ModelSpecError, match="unknown compartment 'gut'"):
        _bad(_text(dosing='route = "bolus"\ncompartment = "gut"'))
    with pytest.raises(pk.ModelSpecError, match="division by the constant zero"):
        _bad(_text(init='x = "1/0"'))
    nonfinite = _bad(_text(init='x = "1/K"'))
    with pytest.raises(pk.DesignError, match="initial conditions .* are not finite"):
        pk.compile_model(nonfinite).evaluate([0.0], [1.0], order=0)
    with pytest.raises(pk.ModelSpecError, match="needs the state that receives the doses"):
        _bad(_text(dosing='route = "bolus"'))
    # a solution that blows up at t = 1/(K x0) = 2: the solver reports where it failed
    spec = _bad(_text(deriv='x = "K*x**2"'))
    model = pk.compile_model(spec)
    with pytest.raises(pk.DesignError, match=r"ODE solver failed at t = (1\.99|2)\b.*state x = "):
        model.evaluate(spec.theta, [1.0, 3.0], order=0)


def test_ode_models_in_the_library_give_finite_fims():
    for name in ("irm1", "tmdd_qss"):
        spec, model = compiled(name)
        r = pk.evaluate_fim(model, spec.default_design, "fo", "reduced")
        assert np.isfinite(r.logdet) and np.all(np.isfinite(r.rse_percent))
    assert (MODELS / "transit_absorption.toml").exists()


def test_infusion_given_by_rate_equals_duration():
    (so, mo), _ = _pair("one_comp_infusion_ode", "one_comp_infusion")
    by_rate = pk.Regimen.from_dict({"amount": 100, "times": [0.0, 12.0], "rate": 40.0})
    by_dur = pk.Regimen.from_dict({"amount": 100, "times": [0.0, 12.0], "duration": 2.5})
    t = [1.0, 2.5, 3.0, 13.0, 20.0]
    np.testing.assert_array_equal(mo.evaluate(so.theta, t, by_rate, order=0)["f"],
                                  mo.evaluate(so.theta, t, by_dur, order=0)["f"])
    with pytest.raises(pk.DesignError, match="rates must be > 0"):
        pk.Regimen.from_dict({"amount": 100, "rate": 0.0})


def test_tiny_time_intervals_and_design_search_on_an_ode_model():
    (so, mo), (sc, mc) = _pair("warfarin_ode", "warfarin")
    reg = so.default_design.groups[0].regimen
    t = [0.0, 1e-300, 1.0, 1.0 + 1e-15, 2.0]  # optimisers and finite differences produce such times
    np.testing.assert_allclose(mo.evaluate(so.theta, t, reg, order=1)["f"],
                               mc.evaluate(sc.theta, t, reg, order=1)["f"], rtol=1e-7, atol=1e-12)
    r = pk.optimize_design(mo, so.default_design, "D", "continuous", fim="reduced", window=(0, 120))
    c = pk.optimize_design(mc, sc.default_design, "D", "continuous", fim="reduced", window=(0, 120))
    assert r.criterion_value == pytest.approx(c.criterion_value, abs=1e-5)  # the closed form's optimum
    assert r.criterion_value >= 56.717


def test_lagged_infusion_second_order_jumps_match_the_closed_form():
    # an infusion whose start (and end) move with TLAG: the input u jumps at parameter-dependent
    # times, so the sensitivities need first- and second-order jump terms (no state jump)
    lag = ('TLAG = { value = 0.4, unit = "h" }\n', '\n[variability.TLAG]\nmodel = "exponential"\nvariance = 0.1\n')
    closed = (MODELS / "one_comp_infusion.toml").read_text().replace('V  = { value = 20.0, unit = "L" }\n',
                                                                        'V  = { value = 20.0, unit = "L" }\n' + lag[0])
    closed = closed.replace('duration = 1.0\n\n[responses]', 'duration = 1.0\nlag = "TLAG"\n\n[responses]')
    closed = closed.replace("[assignments]", lag[1] + "\n[assignments]")
    ode = (MODELS / "one_comp_infusion_ode.toml").read_text().replace('V  = { value = 20.0, unit = "L" }\n',
                                                                      'V  = { value = 20.0, unit = "L" }\n' + lag[0])
    ode = ode.replace('duration = 1.0\n', 'duration = 1.0\nlag = "TLAG"\n').replace("[ode]", lag[1] + "\n[ode]")
    sc, so = pk.parse_model_text(closed, "closed"), pk.parse_model_text(ode, "ode")
    mc, mo = pk.compile_model(sc), pk.compile_model(so)
    reg = pk.Regimen.from_dict({"amount": 100, "times": [0.0, 12.0], "duration": 1.7})
    t = np.array([0.2, 0.5, 1.0, 2.0, 2.05, 6.0, 12.3, 13.0, 14.2, 24.0])
    psi = sc.theta * np.array([1.1, 0.9, 1.2])
    a = mo.evaluate(psi, t, reg, order=2)
    b = mc.evaluate(psi, t, reg, order=2)
    for k in ("f", "d1", "d2"):
        _close(a[k], b[k], 1e-6)
    design = pk.Design([pk.Group(20, {"conc": t}, reg)])
    fo = pk.evaluate_fim(mo, design, "fo", "full")
    fc = pk.evaluate_fim(mc, design, "fo", "full")
    np.testing.assert_allclose(fo.matrix, fc.matrix, rtol=1e-5, atol=1e-8 * np.abs(fc.matrix).max())
