"""Kernels against their slow twins: direct sympy evaluation, finite differences, ODE integration.

Tolerances:
* kernel vs sympy at the same point: 1e-10 relative -- both evaluate the same formula in
  float64; differences are rounding in a few dozen operations (CSE reorders them).
* first derivatives vs central differences with relative step 1e-6: truncation ~h^2*f''' ~1e-12
  and rounding ~eps/h ~1e-10 relative to the function scale, so 1e-6 relative to the largest
  derivative leaves a wide margin while still catching any wrong formula (errors are O(1)).
* second derivatives vs central differences of the (exact) first derivatives: same argument.
* ODE integration at rtol 1e-11: 1e-7 relative.
"""

import json

import mpmath
import math
import operator

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pkdesign as pk

from .conftest import MODELS, REFERENCE, compiled
from .helpers import compartment_ode, computed_pairs, direct_prediction, fd_jacobian

FAST = ["warfarin", "one_comp_bolus", "one_comp_infusion", "one_comp_oral", "two_comp_bolus",
        "two_comp_infusion", "effect_compartment", "emax", "sigmoid_emax", "box_lucas"]


def _design_obs(spec, group=0):
    g = spec.default_design.groups[group]
    t, idx = g.observations(spec.output_names)
    return g, t, idx


def test_warfarin_typical_predictions_match_reference(warfarin):
    # Reference: ../shared/reference/warfarin_fo.json (PopED), 8-9 significant digits given.
    ref = json.loads((REFERENCE / "warfarin_fo.json").read_text())["typical_predictions"]
    spec, model = warfarin
    res = model.evaluate(spec.theta, ref["times"], pk.Regimen.single(70.0), order=0)
    np.testing.assert_allclose(res["f"], ref["values"], rtol=1e-8)


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("group", [0, 1])
def test_kernel_matches_direct_sympy_evaluation(name, group):
    spec, model = compiled(name)
    if group >= len(spec.default_design.groups):
        pytest.skip("single-group design")
    g, t, idx = _design_obs(spec, group)
    psi = spec.theta * np.linspace(0.9, 1.15, spec.theta.size)
    res = model.evaluate(psi, t, g.regimen, idx, order=0)["f"]
    for k in range(len(spec.outputs)):
        sel = idx == k
        ref = direct_prediction(spec, psi, t[sel], g.regimen, output=k)
        np.testing.assert_allclose(res[sel], ref, rtol=1e-10, atol=1e-13)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scale=st.lists(st.floats(0.3, 3.0), min_size=3, max_size=3),
       t=st.lists(st.floats(0.01, 200.0), min_size=1, max_size=6))
def test_warfarin_kernel_equals_sympy_at_random_points(warfarin, scale, t):
    spec, model = warfarin
    psi = spec.theta * np.array(scale)
    times = np.sort(np.array(t))
    res = model.evaluate(psi, times, pk.Regimen.single(70.0), order=0)["f"]
    ref = direct_prediction(spec, psi, times, pk.Regimen.single(70.0))
    np.testing.assert_allclose(res, ref, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("name", FAST)
def test_derivatives_match_finite_differences(name):
    spec, model = compiled(name)
    g, t, idx = _design_obs(spec, len(spec.default_design.groups) - 1)
    psi = spec.theta * np.linspace(0.95, 1.1, spec.theta.size)
    psi = np.where(psi == 0, 0.3, psi)
    res = model.evaluate(psi, t, g.regimen, idx, order=2)

    def f(p):
        return model.evaluate(p, t, g.regimen, idx, order=0)["f"]

    def d1(p):
        return model.evaluate(p, t, g.regimen, idx, order=1)["d1"]

    # derivatives are computed for the parameters the FIM needs (used, and estimated or random);
    # the others are 0 (unused) or NaN (fixed without variability: not computed); second derivatives for the
    # pairs with at least one random parameter, the others NaN
    a = spec.derivative_indices()
    skipped = [k for k in range(psi.size) if k not in a]
    assert all(spec.parameters[k].fixed for k in skipped)
    assert np.all(np.isnan(res["d1"][:, skipped])) and np.all(np.isnan(res["d2"][:, skipped][:, :, skipped]))
    pairs = computed_pairs(spec)
    random = {v.parameter for v in spec.variability}
    for k in a:
        for l in a:
            assert pairs[k, l] == (spec.parameter_names[k] in random or spec.parameter_names[l] in random)
    k2, l2 = np.nonzero(~pairs)
    _, _, nk2, nl2, v2 = spec.not_computed()  # 0 where an unused parameter is involved, else NaN
    assert sorted(zip(k2, l2)) == sorted(zip(nk2, nl2))
    np.testing.assert_array_equal(res["d2"][:, nk2, nl2], np.broadcast_to(v2, (t.size, v2.size)))
    fd1 = fd_jacobian(f, psi)[:, a]
    scale1 = np.abs(fd1).max(axis=0, keepdims=True) + 1e-12
    np.testing.assert_allclose(res["d1"][:, a] / scale1, fd1 / scale1, atol=1e-6)
    fd2 = fd_jacobian(d1, psi)[:, pairs]  # (none for a model without random effects, box_lucas)
    scale2 = np.abs(fd2).max(initial=0.0) + 1e-12
    d2 = res["d2"][:, pairs]
    np.testing.assert_allclose(d2 / scale2, fd2 / scale2, atol=1e-6)
    np.testing.assert_array_equal(res["d2"], res["d2"].transpose(0, 2, 1))
    # time derivative, away from dose times where the bolus/infusion kinks are
    h = 1e-6 * np.maximum(t, 1.0)
    fdt = (model.evaluate(psi, t + h, g.regimen, idx, order=0)["f"]
           - model.evaluate(psi, np.abs(t - h), g.regimen, idx, order=0)["f"]) / (2 * h)
    kinks = np.concatenate([g.regimen.times, g.regimen.times + g.regimen.durations])
    smooth = (np.min(np.abs(t[:, None] - kinks[None, :]), axis=1, initial=np.inf) > 1e-3) & (t > 1e-3)
    np.testing.assert_allclose(res["dt"][smooth], fdt[smooth], rtol=1e-5, atol=1e-8 * np.abs(res["f"]).max())


def test_batch_equals_one_vector_at_a_time(warfarin):
    spec, model = warfarin
    g, t, idx = _design_obs(spec)
    rng = np.random.default_rng(1)
    psi = spec.theta * np.exp(rng.normal(0, 0.3, (50, 3)))
    batch = model.evaluate(psi, t, g.regimen, order=2)
    for i in [0, 17, 49]:
        one = model.evaluate(psi[i], t, g.regimen, order=2)
        for key in ("f", "d1", "d2", "dt"):
            np.testing.assert_array_equal(batch[key][i], one[key])


@pytest.mark.parametrize("n_vec", [1, 3])
def test_large_batches_across_threads_equal_the_serial_kernel(warfarin, n_vec, monkeypatch):
    """A batch of at least PARALLEL_MIN_WORK points runs in chunks across threads (one vector: chunks of the times
    written in place; fewer vectors than threads: chunks of the times copied back): bit for bit the serial kernel."""
    from pkdesign.kernels import threads
    from pkdesign.model import compile as compile_module

    spec, model = warfarin
    g = spec.default_design.groups[0]
    t = np.sort(np.random.default_rng(2).uniform(0.0, 150.0, compile_module.PARALLEL_MIN_WORK + 7))
    psi = spec.theta * np.exp(np.random.default_rng(3).normal(0, 0.3, (n_vec, 3)))
    monkeypatch.setattr(threads, "_SINGLE", False)
    monkeypatch.setattr(compile_module, "thread_count", lambda: 4)  # more threads than vectors, whatever the machine
    split = model.evaluate(psi, t, g.regimen, order=2)
    monkeypatch.setattr(compile_module, "thread_count", lambda: 1)
    serial = model.evaluate(psi, t, g.regimen, order=2)
    for key in ("f", "d1", "d2", "dt"):
        np.testing.assert_array_equal(split[key], serial[key])


# -- removable singularities ------------------------------------------------------------------

def _exact_oral(spec, psi, times, derivative=None, offset=0):
    """One-compartment oral model in 100-digit arithmetic (``offset`` added to KA exactly)."""
    CL, V, KA, t = sp.symbols("CL V KA t")
    D = sp.Integer(70)
    e = D / V * KA / (KA - CL / V) * (sp.exp(-CL / V * t) - sp.exp(-KA * t))
    if derivative:
        e = sp.diff(e, *derivative)
    out = []
    for tt in times:
        sub = {CL: sp.Float(psi[0], 100), V: sp.Float(psi[1], 100), KA: sp.Float(psi[2], 100) + sp.Float(offset, 100), t: sp.Float(tt, 100)}
        out.append(float(e.xreplace(sub).evalf(100)))
    return np.array(out)


@pytest.mark.parametrize("rel", [0.0, 1e-12, 1e-8, 1e-5, 1e-3, 0.05])
def test_one_compartment_oral_at_and_near_ka_equal_k(warfarin, rel):
    spec, model = warfarin
    k = 0.15 / 8.0
    psi = np.array([0.15, 8.0, k * (1 + rel)])
    times = [0.5, 2.0, 24.0, 120.0, 500.0]
    res = model.evaluate(psi, times, pk.Regimen.single(70.0), order=2)
    assert np.all(np.isfinite(res["f"])) and np.all(np.isfinite(res["d2"]))
    psi_exact = psi.copy()
    off = 1e-20 if rel == 0.0 else 0  # the limit itself, to ~1e-20 (100-digit arithmetic)
    np.testing.assert_allclose(res["f"], _exact_oral(spec, psi_exact, times, offset=off), rtol=1e-9)
    CL, V, KA = sp.symbols("CL V KA")
    for k1, s1 in enumerate((CL, V, KA)):
        np.testing.assert_allclose(res["d1"][:, k1], _exact_oral(spec, psi_exact, times, (s1,), off), rtol=1e-8)
    for k1, s1 in enumerate((CL, V, KA)):
        for k2, s2 in enumerate((CL, V, KA)):
            if k2 < k1:
                continue
            ref = _exact_oral(spec, psi_exact, times, (s1, s2), off)
            np.testing.assert_allclose(res["d2"][:, k1, k2], ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())


def test_effect_compartment_at_ke0_equal_k():
    spec, model = compiled("effect_compartment")
    g, t, idx = _design_obs(spec)
    psi = spec.theta.copy()
    psi[2] = psi[0] / psi[1]  # KE0 = K
    res = model.evaluate(psi, t, g.regimen, idx, order=2)
    a = spec.derivative_indices()  # E0 is fixed without variability: its derivatives are not computed
    assert np.all(np.isfinite(res["f"])) and np.all(np.isfinite(res["d1"][:, a]))
    assert np.all(np.isfinite(res["d2"][:, computed_pairs(spec)]))
    near = psi.copy()
    near[2] *= 1 + 1e-7
    res_near = model.evaluate(near, t, g.regimen, idx, order=1)
    np.testing.assert_allclose(res["f"], res_near["f"], rtol=1e-6)
    np.testing.assert_allclose(res["d1"], res_near["d1"], rtol=1e-5, atol=1e-9)


def test_box_lucas_at_equal_rates():
    spec, model = compiled("box_lucas")
    res = model.evaluate([0.3, 0.3], [0.5, 1.0, 4.0], order=2)
    # limit: th*t*exp(-th*t)
    np.testing.assert_allclose(res["f"], 0.3 * np.array([0.5, 1.0, 4.0]) * np.exp(-0.3 * np.array([0.5, 1, 4])),
                               rtol=1e-12)
    assert np.all(np.isfinite(res["d1"]))
    assert np.all(np.isnan(res["d2"]))  # no random effect: no second derivative is needed by a FIM


# -- superposition and ODE twins ----------------------------------------------------------

@pytest.mark.parametrize("name", ["one_comp_oral", "two_comp_infusion", "effect_compartment"])
def test_multiple_dose_equals_sum_of_single_doses(name):
    spec, model = compiled(name)
    reg = pk.Regimen.from_dict({"amount": [100, 50, 80], "times": [0, 10, 27.5], "duration": 1.5})
    t = np.array([0.7, 5, 10.2, 12, 28, 30, 48])
    psi = spec.theta
    k = 0  # the first output is the (linear) concentration
    idx = np.zeros(t.size, dtype=np.int64)
    total = model.evaluate(psi, t, reg, idx, order=1)
    parts = [model.evaluate(psi, t, pk.Regimen.single(a, td, 1.5), idx, order=1)
             for a, td in zip(reg.amounts, reg.times)]
    np.testing.assert_allclose(total["f"], sum(p["f"] for p in parts), rtol=1e-12)
    np.testing.assert_allclose(total["d1"], sum(p["d1"] for p in parts), rtol=1e-10, atol=1e-14)
    assert k == 0


ODE_CASES = [
    ("one_comp_bolus", 1, "bolus"), ("one_comp_infusion", 1, "infusion"), ("one_comp_oral", 1, "oral"),
    ("two_comp_bolus", 2, "bolus"), ("two_comp_infusion", 2, "infusion"), ("two_comp_oral", 2, "oral"),
    ("three_comp_bolus", 3, "bolus"), ("three_comp_infusion", 3, "infusion"), ("three_comp_oral", 3, "oral"),
]


@pytest.mark.parametrize("name, n_cmt, route", ODE_CASES)
def test_closed_form_matches_ode_integration(name, n_cmt, route):
    spec, model = compiled(name)
    reg = pk.Regimen.from_dict({"amount": 100, "times": [0, 12, 30], "duration": 1.0})
    t = np.array([0.3, 0.8, 1.5, 4, 11.5, 12.5, 13.2, 29.9, 31, 40, 72])
    res = model.evaluate(spec.theta, t, reg, order=0)["f"]
    ode = compartment_ode(n_cmt, route, dict(zip(spec.parameter_names, spec.theta)), reg, t)
    np.testing.assert_allclose(res, ode, rtol=1e-7)


def test_evaluate_input_errors(warfarin):
    spec, model = warfarin
    with pytest.raises(pk.DesignError, match=r"expected shape \(n_vec, 3\)"):
        model.evaluate([1.0, 2.0], [1.0], pk.Regimen.single(70))
    with pytest.raises(pk.DesignError, match="time at index 1 is -1"):
        model.evaluate(spec.theta, [1.0, -1.0], pk.Regimen.single(70))
    with pytest.raises(pk.DesignError, match="give a dose regimen"):
        model.evaluate(spec.theta, [1.0])
    with pytest.raises(pk.DesignError, match=r"unknown output name\(s\) \['effect'\]"):
        model.evaluate(spec.theta, [1.0], pk.Regimen.single(70), output=["effect"])
    _, inf = compiled("two_comp_bolus")
    spec_inf = pk.load_model(MODELS / "one_comp_infusion.toml")
    assert spec_inf.dosing.duration == 1.0


# -- KA equal to a disposition rate constant in the 2-compartment oral model --------------------
_TWO_CMT_ORAL_OLD = ("KA*DOSE/V1 * ((K21 - ALPHA)/((KA - ALPHA)*(BETA - ALPHA))*exp(-ALPHA*t)"
                     " + (K21 - BETA)/((KA - BETA)*(ALPHA - BETA))*exp(-BETA*t)"
                     " + (K21 - KA)/((ALPHA - KA)*(BETA - KA))*exp(-KA*t))")


def _two_cmt_reference(psi, times, which, rel, derivative=()):
    """The textbook three-exponential form (singular at KA == ALPHA/BETA) in 100-digit arithmetic,
    at KA = ALPHA*(1 + rel) (+1e-20 exactly at the limit)."""
    CL, V1, Q, V2, KA, t, DOSE = sp.symbols("CL V1 Q V2 KA t DOSE")
    K10, K12, K21 = CL / V1, Q / V1, Q / V2
    SUMK = K10 + K12 + K21
    DISC = sp.sqrt(SUMK**2 - 4 * K10 * K21)
    ALPHA, BETA = (SUMK + DISC) / 2, (SUMK - DISC) / 2
    e = sp.sympify(_TWO_CMT_ORAL_OLD, locals={"ALPHA": ALPHA, "BETA": BETA, "K21": K21})
    if derivative:
        e = sp.diff(e, *derivative)
    vals = {CL: sp.Float(psi[0], 100), V1: sp.Float(psi[1], 100), Q: sp.Float(psi[2], 100), V2: sp.Float(psi[3], 100)}
    lam = (ALPHA if which == "ALPHA" else BETA).xreplace(vals).evalf(100)
    ka = lam * (1 + sp.Float(rel, 100)) + (sp.Float(1e-20, 100) if rel == 0 else 0)
    out = []
    for tt in times:
        sub = dict(vals, **{}) | {KA: ka, t: sp.Float(tt, 100), DOSE: sp.Float(100, 100)}
        out.append(float(e.xreplace(sub).evalf(100)))
    return np.array(out), float(ka)


@pytest.mark.parametrize("which", ["ALPHA", "BETA"])
@pytest.mark.parametrize("rel", [0.0, 1e-9, 1e-5, 1e-2])
def test_two_compartment_oral_at_and_near_ka_equal_to_a_rate_constant(which, rel):
    spec, model = compiled("two_comp_oral")
    psi = spec.theta.copy()
    psi[5] = 0.0  # no lag (TLAG)
    times = [0.5, 2.0, 8.0, 24.0, 96.0]
    f_ref, ka = _two_cmt_reference(psi, times, which, rel)
    psi[4] = ka
    res = model.evaluate(psi, times, pk.Regimen.single(100.0), order=2)
    assert all(np.all(np.isfinite(v)) for k, v in res.items() if k != "d2")
    assert np.all(np.isfinite(res["d2"][:, computed_pairs(spec)]))
    np.testing.assert_allclose(res["f"], f_ref, rtol=1e-9)
    syms = sp.symbols("CL V1 Q V2 KA")
    for k in (0, 4):  # CL and KA: first and second derivatives
        d_ref = _two_cmt_reference(psi, times, which, rel, (syms[k],))[0]
        np.testing.assert_allclose(res["d1"][:, k], d_ref, rtol=1e-8, atol=1e-12 * np.abs(d_ref).max())
    d2_ref = _two_cmt_reference(psi, times, which, rel, (syms[4], syms[4]))[0]
    np.testing.assert_allclose(res["d2"][:, 4, 4], d2_ref, rtol=1e-7, atol=1e-10 * np.abs(d2_ref).max())
    d2_ref = _two_cmt_reference(psi, times, which, rel, (syms[0], syms[4]))[0]
    np.testing.assert_allclose(res["d2"][:, 0, 4], d2_ref, rtol=1e-7, atol=1e-10 * np.abs(d2_ref).max())


def test_ediff_special_function_against_mpmath():
    """The ediff evaluators (``special.ediff_lines``: the statements the kernels' vectorised loops evaluate in place
    of each ediff term, here as the ``_ediff_p_q`` functions written from the same lines) against mpmath."""
    from pkdesign.model.special import RUNTIME_IMPORTS, ediff_mp, ediff_source

    mod = {}
    orders = [(p, q) for p in range(3) for q in range(3 - p)]
    exec(compile("import numba\n" + RUNTIME_IMPORTS + ediff_source(orders), "<ediff>", "exec"), mod)
    rng = np.random.default_rng(3)
    for _ in range(200):
        x = float(rng.uniform(0, 50))
        y = x + float(rng.choice([0.0, 1e-12, 1e-6, 1e-3, 0.5, 3.0, 40.0])) * rng.choice([-1, 1])
        y = max(y, 0.0)
        for p in range(3):
            for q in range(3 - p):
                with mpmath.workdps(80):  # the reference itself needs the digits near x == y
                    ref = float(ediff_mp(p, q, mpmath.mpf(x), mpmath.mpf(y)))
                got = mod[f"_ediff_{p}_{q}"](x, y)
                assert got == pytest.approx(ref, rel=1e-12, abs=1e-300), (p, q, x, y)


def test_three_compartment_oral_at_each_disposition_rate():
    spec, model = compiled("three_comp_oral")
    names = spec.parameter_names
    p = dict(zip(names, spec.theta))
    k10, k12, k21 = p["CL"] / p["V1"], p["Q2"] / p["V1"], p["Q2"] / p["V2"]
    k13, k31 = p["Q3"] / p["V1"], p["Q3"] / p["V3"]
    A = np.array([[-(k10 + k12 + k13), k21, k31], [k12, -k21, 0.0], [k13, 0.0, -k31]])
    rates = np.sort(-np.linalg.eigvals(A).real)
    times = [0.5, 3.0, 12.0, 48.0]
    for lam in rates:
        at = spec.theta.copy()
        at[names.index("KA")] = lam
        near = at.copy()
        near[names.index("KA")] = lam * (1 + 1e-7)
        a = model.evaluate(at, times, pk.Regimen.single(100.0), order=2)
        b = model.evaluate(near, times, pk.Regimen.single(100.0), order=2)
        a["d2"], b["d2"] = a["d2"][:, computed_pairs(spec)], b["d2"][:, computed_pairs(spec)]
        assert all(np.all(np.isfinite(v)) for v in a.values())
        for k in ("f", "d1", "d2"):  # continuous through the former singularity
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-9 * np.abs(b[k]).max())


# -- the vectorised (regular) path against the scalar (series) path and against itself ---------

@pytest.mark.parametrize("side", [-1e-9, 1e-9])
def test_one_compartment_oral_across_the_series_guard(warfarin, side):
    # Vectors with |KA - K| >= 0.1 (|KA| + |K|) take the vectorised closed-form path, the others
    # the scalar path with the series branch; both sides of that switch (KA = K * 11/9 (1 -/+ 1e-9))
    # must agree with 100-digit arithmetic as tightly as the singular-limit test above.
    spec, model = warfarin
    k = 0.15 / 8.0
    psi = np.array([0.15, 8.0, k * 11.0 / 9.0 * (1 + side)])
    times = [0.5, 2.0, 24.0, 120.0]
    res = model.evaluate(psi, times, pk.Regimen.single(70.0), order=2)
    np.testing.assert_allclose(res["f"], _exact_oral(spec, psi, times), rtol=1e-11)
    CL, V, KA = sp.symbols("CL V KA")
    for k1, s1 in enumerate((CL, V, KA)):
        np.testing.assert_allclose(res["d1"][:, k1], _exact_oral(spec, psi, times, (s1,)), rtol=1e-9)
    ref = _exact_oral(spec, psi, times, (KA, KA))
    np.testing.assert_allclose(res["d2"][:, 2, 2], ref, rtol=1e-8, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize("name", ["warfarin", "one_comp_infusion", "two_comp_oral", "effect_compartment"])
def test_unsorted_times_and_samples_at_dose_times(name):
    # The vectorised loop masks doses given at or after a sample with a select instead of skipping
    # them; evaluating each time on its own (a loop of length 1) and in a shuffled batch that
    # contains dose times must give the same numbers.
    spec, model = compiled(name)
    reg = pk.Regimen.from_dict({"amount": [100, 50, 80], "times": [0, 10, 27.5], "duration": 1.5})
    t = np.array([48.0, 0.0, 10.0, 0.7, 27.5, 12.0, 5.0, 28.0, 10.2, 30.0])
    idx = np.zeros(t.size, dtype=np.int64)
    rng = np.random.default_rng(5)
    psi = spec.theta * np.exp(rng.normal(0.0, 0.2, (7, spec.theta.size)))
    batch = model.evaluate(psi, t, reg, idx, order=2)
    for j in range(t.size):
        one = model.evaluate(psi, t[j:j + 1], reg, idx[j:j + 1], order=2)
        for key in ("f", "d1", "dt", "d2"):
            np.testing.assert_allclose(batch[key][:, j], one[key][:, 0], rtol=1e-13, atol=1e-300)
    # pre-dose samples: nothing before the first dose, the sample at t = 10 sees only the first dose
    assert np.all(batch["f"][:, 1] == 0.0)
    first = model.evaluate(psi, [10.0], pk.Regimen.single(100.0, 0.0, 1.5), order=0)["f"][:, 0]
    np.testing.assert_allclose(batch["f"][:, 2], first, rtol=1e-13)


@pytest.mark.parametrize("name", ["warfarin", "warfarin_ode"])
def test_evaluate_into_preallocated_outputs(name):
    spec, model = compiled(name)
    psi = spec.theta * np.array([[1.0, 1.0, 1.0], [1.1, 0.9, 1.3]])
    t = [0.5, 2.0, 24.0]
    reg = pk.Regimen.single(70.0)
    ref = model.evaluate(psi, t, reg, order=2)
    out = {"f": np.full((2, 3), np.nan), "d1": np.full((2, 3, 3), np.nan), "dt": np.full((2, 3), np.nan),
           "d2": np.full((2, 3, 3, 3), np.nan)}
    res = model.evaluate(psi, t, reg, order=2, out=out)
    for k in out:
        assert res[k] is out[k] or np.shares_memory(res[k], out[k])
        np.testing.assert_array_equal(out[k], ref[k])
    one = {"f": np.empty(3)}  # a single vector may drop the leading axis; missing keys are allocated
    res1 = model.evaluate(psi[1], t, reg, order=1, out=one)
    assert np.shares_memory(res1["f"], one["f"])
    # (one vector alone may round differently from the batch: SIMD vs scalar code, ODE step sizes)
    np.testing.assert_allclose(one["f"], ref["f"][1], rtol=1e-8)
    np.testing.assert_allclose(res1["d1"], ref["d1"][1], rtol=1e-8)
    with pytest.raises(pk.DesignError, match=r"out\['f'\]: expected a writable C-contiguous float64 array of shape \(2, 3\)"):
        model.evaluate(psi, t, reg, order=0, out={"f": np.empty((3, 2))})
    with pytest.raises(pk.DesignError, match=r"out\['f'\].*float32"):
        model.evaluate(psi, t, reg, order=0, out={"f": np.empty((2, 3), dtype=np.float32)})
    with pytest.raises(pk.DesignError, match=r"unexpected keys \['d2'\] for order 1"):
        model.evaluate(psi, t, reg, order=1, out={"d2": np.empty((2, 3, 3, 3))})


def test_lean_pipeline_compiles_the_same_kernel_as_numbas_default():
    """Generated kernels compile through ``GeneratedKernelCompiler`` (numba's pipeline without the passes generated
    code never needs) with pkdesign's memoised typing (``kernels.jit.fast_typing``): the order-1 kernel of
    two_comp_oral (lag time, series guards, ediff: the constructs of every order; order 2 only has more of them,
    and its default-pipeline compile alone took 5.5 s of a cold suite) gives bit for bit what numba's default
    pipeline compiles from the same source without either."""
    import numba

    from pkdesign.kernels.generated_pipeline import GeneratedKernelCompiler
    from pkdesign.model.compile import _signature

    spec, m = compiled("two_comp_oral")
    lean = m.kernel(1)
    assert lean._compiler.pipeline_class is GeneratedKernelCompiler
    default = numba.njit(_signature(1), error_model="numpy", nogil=True, fastmath={"contract"})(m.module.predict1)
    g = spec.default_design.groups[0]
    t, idx = g.observations(spec.output_names)
    t = np.concatenate([t, [0.0, 0.5, 200.0]])
    idx = np.concatenate([idx, [0, 0, 0]]).astype(np.int64)
    psi = spec.theta * np.exp(np.random.default_rng(5).normal(0, 0.3, (6, spec.theta.size)))
    dt_, da, dd = m._doses(g.regimen)
    outs = []
    for kernel in (lean, default):
        n = spec.theta.size
        res = [np.zeros((6, t.size)), np.zeros((6, t.size, n)), np.zeros((6, t.size))]
        kernel(psi, t, idx, dt_, da, dd, *res)
        outs.append(res)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_fast_typing_compiles_the_same_kernel_and_stays_inside_pkdesigns_compilations():
    """``kernels.jit.fast_typing`` remembers numba's overload resolution of operations on numbers and arrays while
    pkdesign compiles: a generated kernel compiled inside it gives bit for bit what the same source compiled outside
    gives; outside, numba resolves as always (a user's function adds nothing to the memo), and a remembered failed
    resolution raises numba's TypingError again."""
    import numba
    from numba.core import errors, types
    from numba.core.typing import signature as make_signature

    from pkdesign.kernels import jit
    from pkdesign.model.compile import _signature

    spec, m = compiled("emax")  # small: the lean-pipeline test above covers a large kernel
    outs = []
    for fast in (True, False):
        kernel = numba.njit(error_model="numpy", nogil=True, fastmath={"contract"})(m.module.predict2)
        if fast:
            jit._CALL_TYPES.clear()  # (earlier compiles in this process filled it)
            with jit.fast_typing():
                kernel.compile(_signature(2).args)
            installed = jit._ORIGINAL_GET_CALL_TYPE is not None  # (off on a numba whose internals differ)
            assert bool(jit._CALL_TYPES) == installed and jit._FAST_TYPING == 0
        else:
            kernel.compile(_signature(2).args)
        g = spec.default_design.groups[0]
        t, idx = g.observations(spec.output_names)
        psi = spec.theta * np.exp(np.random.default_rng(2).normal(0, 0.3, (4, spec.theta.size)))
        n = spec.theta.size
        res = [np.zeros((4, t.size)), np.zeros((4, t.size, n)), np.zeros((4, t.size)), np.zeros((4, t.size, n, n))]
        kernel(psi, t, idx.astype(np.int64), *m._doses(g.regimen), *res)
        outs.append(res)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)

    if not installed:
        return
    size = len(jit._CALL_TYPES)
    user = numba.njit(lambda x, y: x * y + 3.5)
    assert user(2.0, 4.0) == 11.5 and len(jit._CALL_TYPES) == size  # outside: untouched
    ctx = numba.core.registry.cpu_target.typing_context
    fnty = ctx.resolve_value_type(operator.add)
    with jit.fast_typing():
        for _ in range(2):  # a failure is remembered and raised again
            with pytest.raises(errors.TypingError):
                fnty.get_call_type(ctx, (types.float64, types.UniTuple(types.float64, 3)), {})
        assert fnty.get_call_type(ctx, (types.float64, types.float64), {}) == make_signature(
            types.float64, types.float64, types.float64)
        # a builtin function's type straight from numba's registry: what numba's own path finds after typeof fails
        for builtin in (operator.mul, math.exp):
            assert ctx.resolve_value_type(builtin) is jit._ORIGINAL_RESOLVE_VALUE_TYPE(ctx, builtin)
        with pytest.raises(ValueError):  # anything else: numba's own path, and its error
            ctx.resolve_value_type(object())
