"""Removable singularities of powers: a sigmoid-Emax (Hill) effect driven by a PK model, with pre-dose
samples where the concentration is exactly 0.  Differentiating C**GAM gives GAM*C**GAM/C (0/0) and
C**GAM*log(C) (0*inf) there; the generated kernels must give their limits (0), so the FIM equals that of
the same model written with an explicit branch "... if C > 0 else E0" (which a user had to write before).
"""

import numpy as np
import pytest

import pkdesign as pk

from .helpers import computed_pairs

#: parameters and variability shared by the closed-form and the ODE models below
COMMON = """
[parameters]
CL = 1.0
V = 10.0
E0 = 5.0
EMAX = 30.0
EC50 = 2.0
GAM = 2.5
[variability]
CL = { variance = 0.09 }
EC50 = { variance = 0.09 }
"""
HILL = """
[model]
name = "pk_hill{suffix}"
time_unit = "h"
""" + COMMON.replace("{", "{{").replace("}", "}}") + """
[dosing]
route = "bolus"
[responses]
C = "DOSE/V*exp(-CL/V*t)"
[outputs.conc]
expression = "C"
unit = "mg/L"
error = {{ model = "proportional", prop = {{ variance = 0.01 }} }}
[outputs.effect]
expression = "{effect}"
error = {{ model = "additive", add = {{ sd = 2.0 }} }}
[[design.groups]]
n = 20
dose = {{ amount = 100, times = [1.0] }}
times = {{ conc = [0, 2, 4, 8], effect = [0, 0.5, 2, 4, 8] }}
"""
PLAIN = "E0 + EMAX*C**GAM/(EC50**GAM + C**GAM)"
BRANCH = "E0 + EMAX*C**GAM/(EC50**GAM + C**GAM) if C > 0 else E0"


@pytest.fixture(scope="module")
def models():
    plain = pk.compile_model(pk.parse_model_text(HILL.format(suffix="", effect=PLAIN)))
    branch = pk.compile_model(pk.parse_model_text(HILL.format(suffix="_branch", effect=BRANCH)))
    return plain, branch


def test_pre_dose_derivatives_are_finite_limits(models):
    plain, _ = models
    spec = plain.spec
    r = plain.evaluate(spec.theta, [0.0, 0.5, 1.0, 2.0], spec.default_design.groups[0].regimen, [1, 1, 1, 1], order=2)
    d2 = r["d2"][:, computed_pairs(spec)]  # the pairs a FIM uses (at least one parameter with an η)
    assert all(np.isfinite(v).all() for v in (r["f"], r["d1"], r["dt"], d2))
    # before the dose (t <= 1) the effect is E0: derivative 1 in E0, 0 in everything else
    np.testing.assert_allclose(r["f"][:3], 5.0)
    np.testing.assert_allclose(r["d1"][:3, 2], 1.0)
    assert not np.any(r["d1"][:3][:, [0, 1, 3, 4, 5]]) and not np.any(d2[:3])


@pytest.mark.parametrize("fim", ["reduced", "full"])
def test_fim_equals_the_explicit_branch(models, fim):
    plain, branch = models
    a = pk.evaluate_fim(plain, plain.spec.default_design, "fo", fim)
    b = pk.evaluate_fim(branch, branch.spec.default_design, "fo", fim)
    np.testing.assert_allclose(a.matrix, b.matrix, rtol=1e-10, atol=1e-12 * np.abs(b.matrix).max())


def test_after_the_dose_derivatives_match_finite_differences(models):
    plain, _ = models
    spec = plain.spec
    reg = spec.default_design.groups[0].regimen
    t = np.array([1.5, 3.0, 6.0])
    r = plain.evaluate(spec.theta, t, reg, [1, 1, 1], order=1)
    for k in range(spec.theta.size):
        h = 1e-6 * spec.theta[k]
        up, dn = spec.theta.copy(), spec.theta.copy()
        up[k] += h
        dn[k] -= h
        fd = (plain.evaluate(up, t, reg, [1, 1, 1], order=0)["f"] - plain.evaluate(dn, t, reg, [1, 1, 1], order=0)["f"])
        np.testing.assert_allclose(r["d1"][:, k], fd / (2 * h), rtol=1e-6, atol=1e-9)


def test_non_finite_message_names_the_output():
    import sympy as sp

    x, t = sp.symbols("a t")
    spec = pk.model_from_sympy("bad", {"a": 1.0}, {"resp": sp.log(x * (t - 1))},
                               errors={"resp": {"model": "additive", "add": 1.0}})
    m = pk.compile_model(spec)
    with pytest.raises(pk.DesignError) as exc:
        pk.evaluate_fim(m, pk.Design((pk.Group(5, {"resp": np.array([0.5, 2.0])}),)))
    msg = str(exc.value)
    assert "output 'resp'" in msg and msg.rstrip().endswith(".")


ODE = """
[model]
name = "pk_hill_ode"
time_unit = "h"
""" + COMMON + """
[dosing]
route = "bolus"
compartment = "A"
[ode]
states = ["A"]
derivatives = { A = "-CL/V*A" }
initial = { A = "0" }
[outputs.conc]
expression = "A/V"
error = { model = "proportional", prop = { variance = 0.01 } }
[outputs.effect]
expression = "E0 + EMAX*(A/V)**GAM/(EC50**GAM + (A/V)**GAM)"
error = { model = "additive", add = { sd = 2.0 } }
[[design.groups]]
n = 20
dose = { amount = 100, times = [1.0] }
times = { conc = [0, 2, 4, 8], effect = [0, 0.5, 2, 4, 8] }
"""


@pytest.mark.parametrize("fim", ["reduced", "full"])
def test_ode_twin_with_a_power_of_a_ratio(models, fim):
    # (A/V)**GAM: the base is a product, split before the rewrite; the ODE FIM equals the closed form's
    plain, _ = models
    ode = pk.compile_model(pk.parse_model_text(ODE))
    a = pk.evaluate_fim(ode, ode.spec.default_design, "fo", fim)
    b = pk.evaluate_fim(plain, plain.spec.default_design, "fo", fim)
    np.testing.assert_allclose(a.matrix, b.matrix, rtol=1e-7, atol=1e-9 * np.abs(b.matrix).max())
