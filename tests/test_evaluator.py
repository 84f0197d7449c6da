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
