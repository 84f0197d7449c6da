"""fim_evaluator: the same numbers as evaluate_fim (to 1e-14 of the largest element: evaluate_fim contracts a single
subject's FO/FOI FIM in numpy, the evaluator with the compiled kernel; both are exact to rounding), with the checks
done once."""

import numpy as np
import pytest

import pkdesign as pk
from pkdesign.errors import DesignError

from .conftest import compiled


def assert_same_fim(got, ref):
    """Equal to 1e-14 of the largest element (issue 15)."""
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-14 * np.abs(ref).max())


@pytest.mark.parametrize("name, approx, kw", [
    ("warfarin", "fo", {}), ("warfarin", "foce", {"draws": 30, "seed": 2}), ("warfarin_covariate", "fo", {}),
    ("one_comp_oral_iov", "foi", {}), ("effect_compartment", "fo", {}),
])
def test_evaluator_equals_evaluate_fim(name, approx, kw):
    spec, model = compiled(name)
    d = spec.default_design
    ev = pk.fim_evaluator(model, d, approx, "full", **kw)
    ref = pk.evaluate_fim(model, d, approx, "full", check=False, **kw)
    assert_same_fim(ev(), ref.matrix)
    assert ev.names == tuple(ref.names) and "FIMEvaluator" in repr(ev)


def test_new_times_and_values():
    spec, model = compiled("warfarin")
    d = spec.default_design
    ev = pk.fim_evaluator(model, d)
    t = [0.25, 1, 3, 8, 24, 48, 96, 120.0]
    other = pk.Design((pk.Group(d.groups[0].n, {"conc": t}, d.groups[0].regimen, d.groups[0].name),))
    assert_same_fim(ev(times=[t]), pk.evaluate_fim(model, other).matrix)
    assert_same_fim(ev(times={d.groups[0].name: {"conc": t}}), pk.evaluate_fim(model, other).matrix)
    vals = {"CL": 0.2, "omega2(KA)": 0.3}
    assert ev.logdet(values=vals) == pytest.approx(pk.evaluate_fim(model, d, values=vals).logdet, abs=1e-12)


def test_evaluator_bad_input():
    spec, model = compiled("effect_compartment")  # a group sampling two outputs
    assert len(spec.default_design.groups[0].times) > 1
    with pytest.raises(DesignError, match="several outputs"):
        pk.fim_evaluator(model, spec.default_design)(times=[[1.0, 2.0]])
    spec, model = compiled("warfarin")
    with pytest.raises(DesignError, match="sorted"):
        pk.fim_evaluator(model, spec.default_design)(times=[[5.0, 1.0]])


@pytest.mark.parametrize("name", ["warfarin", "warfarin_covariate", "effect_compartment", "two_comp_oral",
                                  "warfarin_prop"])
@pytest.mark.parametrize("fim", ["reduced", "full"])
def test_direct_fo_path_is_taken_and_equals_evaluate_fim(name, fim):
    """FO/FOI go through fim.plan.FOPlan (prepared buffers); the numbers are evaluate_fim's (to 1e-14), also after
    new times (of the same and of another size) and back, and for FOI; a repeated call gives the same bits."""
    spec, model = compiled(name)
    d = spec.default_design
    for approx in ("fo", "foi"):
        ev = pk.fim_evaluator(model, d, approx, fim)
        assert all(p is not None for p in ev._plans)
        assert all(p(part[5][None], part[6]) is not None for p, part in zip(ev._plans, ev._parts))
        ref = pk.evaluate_fim(model, d, approx, fim, check=False).matrix
        first = ev()
        assert_same_fim(first, ref)
        np.testing.assert_array_equal(ev(), first)  # the buffers are reused
    if name == "warfarin":
        t = [0.25, 1, 3, 8, 24, 48, 96, 120.0]
        other = pk.Design((pk.Group(d.groups[0].n, {"conc": t}, d.groups[0].regimen, d.groups[0].name),))
        ev = pk.fim_evaluator(model, d, "fo", fim)
        assert_same_fim(ev(times=[t]), pk.evaluate_fim(model, other, fim=fim).matrix)
        assert_same_fim(ev(), pk.evaluate_fim(model, d, fim=fim).matrix)
        assert_same_fim(ev(times=[t[:5]]), pk.evaluate_fim(model, pk.Design((pk.Group(
            d.groups[0].n, {"conc": t[:5]}, d.groups[0].regimen),)), fim=fim).matrix)  # another size: another layout


@pytest.mark.parametrize("spoil", [0, 1])
def test_direct_path_hands_problems_to_the_general_one(spoil):
    """Whatever the direct path cannot vouch for (here: a model kernel that returns NaN, in the prediction or in
    a derivative) is recomputed by the general path, which gives the number or the explaining error; never a NaN
    FIM."""
    spec, model = compiled("warfarin")
    ev = pk.fim_evaluator(model, spec.default_design)
    plan = ev._plans[0]
    real = plan.kernel

    def broken(psi, t, idx, dose_t, dose_a, dose_d, *outputs):  # outputs: f, d1, dt
        real(psi, t, idx, dose_t, dose_a, dose_d, *outputs)
        outputs[spoil][...] = np.nan

    plan.kernel = broken
    assert plan(ev._parts[0][5][None], ev._parts[0][6]) is None
    np.testing.assert_array_equal(ev(), pk.evaluate_fim(model, spec.default_design, check=False).matrix)


@pytest.mark.parametrize("name, approx", [("warfarin", "fo"), ("warfarin_prop", "foi"), ("effect_compartment", "fo"),
                                          ("warfarin_ode", "fo"), ("warfarin", "foce")])
@pytest.mark.parametrize("fim", ["reduced", "full"])
def test_schedule_plan_equals_the_general_path(name, approx, fim):
    """fim.plan.SchedulePlan (what schedule_fims and the searches call) against predict + linearized_fims without
    any preparation (``approx.schedules``): bit for bit for batches that run on the calling thread (7 rows; the
    compiled chain rule where the general path uses numpy), across threads (70 rows; a closed form's in blocks:
    one partial block) and in several blocks per thread (1,100 rows: ranges of 550, a full block of 512 and a
    partial one each), to 1e-14 for one schedule (the general path contracts it in numpy); on a closed form and an
    ODE model (the direct path), and on FOCE (the general path with the plan's parameters)."""
    from pkdesign.fim.api import _check_choice, _parameters
    from pkdesign.fim.plan import SchedulePlan

    spec, model = compiled(name)
    g = spec.default_design.groups[0]
    t0, idx = g.observations(spec.output_names)
    ap, _ = _check_choice(approx, fim)
    pp = _parameters(model, None)
    kw = {"draws": 8, "seed": 3} if approx == "foce" else {}
    plan = SchedulePlan(model, pp, idx, g.regimen, ap, fim == "full", **kw)
    assert (plan.direct is not None) == (approx != "foce")
    rng = np.random.default_rng(1)
    for B in (1, 7, 70, 1100, 7):  # 7 again: the layout of that shape is reused
        times = np.sort(t0[None] * rng.uniform(0.5, 1.5, (B, t0.size)), axis=1)
        ref = ap.schedules(model, pp, times, idx, g.regimen, fim == "full", "candidates", **kw)
        got = plan(times)
        if B == 1 and approx != "foce":
            assert_same_fim(got[0], ref[0])
        else:
            np.testing.assert_array_equal(got, ref)
        if B > 1:
            np.testing.assert_array_equal(pk.schedule_fims(model, times, idx, g.regimen, approx, fim, **kw)[1], ref)


@pytest.mark.parametrize("B", [7, 600])
def test_a_singular_covariance_in_a_batch_is_explained(B):
    """Without residual error V = L Ω Lᵀ is singular (8 samples, 3 random effects): the direct path's kernels report
    it (on the calling thread for 7 schedules, in blocks across threads for 600) and the general path raises the
    error that says why, instead of returning NaN FIMs."""
    spec, model = compiled("warfarin")
    g = spec.default_design.groups[0]
    t0, idx = g.observations(spec.output_names)
    times = np.sort(t0[None] * np.random.default_rng(2).uniform(0.5, 1.5, (B, t0.size)), axis=1)
    with pytest.raises(pk.NonIdentifiableError, match="no residual error"):
        pk.schedule_fims(model, times, idx, g.regimen, "fo", "reduced", values={"sigma2_prop": 0.0, "sigma2_add": 0.0})
