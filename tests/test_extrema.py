"""Derived quantities found numerically (peak, nadir and their times) for any model, ODE included.

References: the closed forms of the one-compartment model (Atkinson et al. 1993 declare tmax = log(th2/th1)/
(th2 - th1) and cmax = eta(tmax) symbolically; tmax = log(KA/K)/(KA - K) for warfarin), and central finite
differences of those closed forms for the gradients (implicit-function and envelope theorems)."""

import math

import numpy as np
import pytest

import pkdesign as pk
from pkdesign.derived import gradients
from pkdesign.errors import DesignError, ModelSpecError
from pkdesign.model.parse import parse_model_text

from .conftest import MODELS

NUMERIC = """
tmax_n = { argmax_of = "y", window = [0, 48] }
cmax_n = { max_of = "y", window = [0, 48] }
"""


def test_numeric_extrema_equal_the_declared_closed_forms():
    m = pk.compile_model(parse_model_text((MODELS / "atkinson_compartmental.toml").read_text() + NUMERIC, "<a>"))
    g = gradients(m, ["th1", "th2", "th3"])
    for exact, numeric in (("tmax", "tmax_n"), ("cmax", "cmax_n")):
        assert g[numeric][0] == pytest.approx(g[exact][0], rel=1e-12)
        np.testing.assert_allclose(g[numeric][1], g[exact][1], rtol=1e-7, atol=1e-9)


def _warfarin_cmax(CL, V, KA, dose=70.0):
    K = CL / V
    t = math.log(KA / K) / (KA - K)
    return t, dose / V * KA / (KA - K) * (math.exp(-K * t) - math.exp(-KA * t))


def test_ode_model_peak_and_its_gradient():
    text = (MODELS / "warfarin_ode.toml").read_text().split("[[design.groups]]")[0]
    text += """
[derived]
tmax = { argmax_of = "conc", dose = 70, window = [0, 24] }
Cmax = { max_of = "conc", dose = 70, window = [0, 24] }
"""
    m = pk.compile_model(parse_model_text(text, "<warfarin ode>"))
    names = ["CL", "V", "KA", "omega2(CL)"]
    g = gradients(m, names)
    theta = (0.15, 8.0, 1.0)
    t_ref, c_ref = _warfarin_cmax(*theta)
    assert g["tmax"][0] == pytest.approx(t_ref, rel=1e-6) and g["Cmax"][0] == pytest.approx(c_ref, rel=1e-6)
    for q, which in (("tmax", 0), ("Cmax", 1)):
        for i in range(3):
            h = 1e-6 * theta[i]
            up, dn = list(theta), list(theta)
            up[i] += h
            dn[i] -= h
            fd = (_warfarin_cmax(*up)[which] - _warfarin_cmax(*dn)[which]) / (2 * h)
            assert g[q][1][i] == pytest.approx(fd, rel=1e-4, abs=1e-8), (q, names[i])
        assert g[q][1][3] == 0.0
    # a c-optimal design for Cmax of the ODE model: the search improves the variance of the estimate of Cmax
    d = m.spec.default_design if m.spec.default_design is not None else pk.load_model("warfarin_ode").default_design
    res = pk.optimize_design(m, d, "c:Cmax", starts=1, window=(0.1, 120), fim="reduced")
    assert res.criterion_value > res.info["start_value"]
    table = pk.derived_table(m, pk.evaluate_fim(m, d))
    assert list(table.index) == ["tmax", "Cmax"] and np.all(table["se"] > 0)


@pytest.mark.parametrize("entry, message", [
    ('{ max_of = "nothing", window = [0, 4] }', "unknown output"),
    ('{ max_of = "y" }', "needs window"),
    ('{ max_of = "y", argmax_of = "y", window = [0, 4] }', "exactly one of"),
    ('{ max_of = "y", window = [4, 1] }', "lo < hi"),
])
def test_bad_numeric_extrema(entry, message):
    text = (MODELS / "atkinson_compartmental.toml").read_text() + f"bad = {entry}\n"
    with pytest.raises(ModelSpecError) as exc:
        parse_model_text(text, "<bad>")
    assert message in str(exc.value)


def test_numeric_extremum_needs_the_model_and_a_dose():
    text = (MODELS / "warfarin.toml").read_text().split("[[design.groups]]")[0]
    spec = parse_model_text(text + '\n[derived]\nCmax = { max_of = "conc", window = [0, 24] }\n', "<w>")
    with pytest.raises(DesignError, match="give the compiled model"):
        gradients(spec, ["CL"])
    with pytest.raises(DesignError, match="give dose"):
        gradients(pk.compile_model(spec), ["CL"])
