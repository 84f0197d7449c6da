"""fim_evaluator: the same numbers as evaluate_fim (bit for bit), with the checks done once."""

import numpy as np
import pytest

import pkdesign as pk
from pkdesign.errors import DesignError

from .conftest import compiled


@pytest.mark.parametrize("name, approx, kw", [
    ("warfarin", "fo", {}), ("warfarin", "foce", {"draws": 30, "seed": 2}), ("warfarin_covariate", "fo", {}),
    ("one_comp_oral_iov", "foi", {}), ("effect_compartment", "fo", {}),
])
def test_evaluator_equals_evaluate_fim(name, approx, kw):
    spec, model = compiled(name)
    d = spec.default_design
    ev = pk.fim_evaluator(model, d, approx, "full", **kw)
    ref = pk.evaluate_fim(model, d, approx, "full", check=False, **kw)
    np.testing.assert_array_equal(ev(), ref.matrix)
    assert ev.names == tuple(ref.names) and "FIMEvaluator" in repr(ev)


def test_new_times_and_values():
    spec, model = compiled("warfarin")
    d = spec.default_design
    ev = pk.fim_evaluator(model, d)
    t = [0.25, 1, 3, 8, 24, 48, 96, 120.0]
    other = pk.Design((pk.Group(d.groups[0].n, {"conc": t}, d.groups[0].regimen, d.groups[0].name),))
    np.testing.assert_array_equal(ev(times=[t]), pk.evaluate_fim(model, other).matrix)
    np.testing.assert_array_equal(ev(times={d.groups[0].name: {"conc": t}}), pk.evaluate_fim(model, other).matrix)
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
def test_direct_fo_path_is_taken_and_bit_identical(name, fim):
    """FO/FOI on closed forms go through _FOPlan (prepared buffers); the numbers are evaluate_fim's, bit for
    bit, also after new times and back, and for FOI."""
    spec, model = compiled(name)
    d = spec.default_design
    for approx in ("fo", "foi"):
        ev = pk.fim_evaluator(model, d, approx, fim)
        assert all(p is not None for p in ev._plans)
        assert all(p() is not None for p in ev._plans)  # each group's FIM from the one compiled call
        ref = pk.evaluate_fim(model, d, approx, fim, check=False).matrix
        np.testing.assert_array_equal(ev(), ref)
        np.testing.assert_array_equal(ev(), ref)  # the buffers are reused
    if name == "warfarin":
        t = [0.25, 1, 3, 8, 24, 48, 96, 120.0]
        other = pk.Design((pk.Group(d.groups[0].n, {"conc": t}, d.groups[0].regimen, d.groups[0].name),))
        ev = pk.fim_evaluator(model, d, "fo", fim)
        np.testing.assert_array_equal(ev(times=[t]), pk.evaluate_fim(model, other, fim=fim).matrix)
        np.testing.assert_array_equal(ev(), pk.evaluate_fim(model, d, fim=fim).matrix)
        np.testing.assert_array_equal(ev(times=[t[:5]]), pk.evaluate_fim(model, pk.Design((pk.Group(
            d.groups[0].n, {"conc": t[:5]}, d.groups[0].regimen),)), fim=fim).matrix)  # another size: general path


def test_direct_path_hands_problems_to_the_general_one():
    """Whatever the direct path cannot vouch for (here: a kernel that returns NaN) is recomputed by the general
    path, which gives the number or the explaining error; never a NaN FIM."""
    spec, model = compiled("warfarin")
    ev = pk.fim_evaluator(model, spec.default_design)
    plan = ev._plans[0]
    real = plan.kernel

    def broken(psi, t, idx, *rest):
        real(psi, t, idx, *rest)
        rest[3][...] = np.nan  # f

    plan.kernel = broken
    np.testing.assert_array_equal(ev(), pk.evaluate_fim(model, spec.default_design, check=False).matrix)
