"""Covariates: ``[covariates]`` in model files, their values per design group, discrete distributions.

Reference: a covariate is a fixed parameter whose value the group sets, so the FIM of a group with WT = w
must equal the FIM of the same model written with WT as a fixed *parameter* of value w (an independent
path: another model file, another compiled kernel); a distribution gives the proportion-weighted sum
(PFIM 6 / PopED: the FIM of a population mixture of covariate values, e.g. Retout et al. 2007, Stat Med
26:5162-5179, for discrete covariates)."""

import numpy as np
import pytest

import pkdesign as pk
from pkdesign.errors import DesignError, ModelSpecError, NonIdentifiableError

from .conftest import MODELS

TIMES = [0.5, 1, 2, 6, 24, 36, 72, 120]


@pytest.fixture(scope="module")
def cov_model():
    return pk.compile_model(pk.load_model("warfarin_covariate"))


def _fixed_weight_model(w):
    """warfarin_covariate with WT a fixed parameter of value ``w`` instead of a covariate."""
    text = (MODELS / "warfarin_covariate.toml").read_text()
    head, rest = text.split("[covariates]\n", 1)
    rest = rest.split("\n", 1)[1]  # drop the WT line
    head = head.replace('BETA_WT = { value = 0.75,', f'WT = {{ value = {w}, fixed = true }}\nBETA_WT = {{ value = 0.75,')
    body = (head + rest).split("[[design.groups]]")[0]
    return pk.compile_model(pk.model.parse.parse_model_text(body, f"<fixed WT={w}>"))


def _group(n, covariates, name="g"):
    return pk.Group(n, {"conc": TIMES}, pk.Regimen.single(70.0), name, covariates)


def test_group_fim_equals_the_model_with_the_covariate_as_a_fixed_parameter(cov_model):
    for approx, fim in (("fo", "reduced"), ("fo", "full"), ("foi", "full")):
        both = pk.evaluate_fim(cov_model, pk.Design((_group(16, {"WT": 55}, "a"), _group(16, {"WT": 95}, "b"))),
                               approx, fim)
        ref = sum(pk.evaluate_fim(_fixed_weight_model(w), pk.Design((_group(16, {}),)), approx, fim,
                                  check=False).matrix for w in (55, 95))
        assert list(both.names) == ["CL", "V", "KA", "BETA_WT", "omega2(CL)", "omega2(V)", "omega2(KA)", "sigma2_prop",
                              "sigma2_add"]
        np.testing.assert_allclose(both.matrix, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_a_distribution_gives_the_proportion_weighted_sum(cov_model):
    mixed = pk.Design((_group(40, {"WT": {"values": [55, 95], "proportions": [0.3, 0.7]}}),))
    F = pk.evaluate_fim(cov_model, mixed).matrix
    F55 = pk.evaluate_fim(cov_model, pk.Design((_group(1, {"WT": 55}),)), check=False).matrix
    F95 = pk.evaluate_fim(cov_model, pk.Design((_group(1, {"WT": 95}),)), check=False).matrix
    np.testing.assert_allclose(F, 40 * (0.3 * F55 + 0.7 * F95), rtol=1e-12, atol=1e-12 * np.abs(F).max())
    # two independent distributions combine as a product of cases
    g = _group(1, {"WT": {"values": [55, 95], "proportions": [0.5, 0.5]}})
    assert [w for w, _ in g.covariate_cases()] == [0.5, 0.5]


def test_one_weight_leaves_the_exponent_non_identifiable(cov_model):
    with pytest.raises(NonIdentifiableError) as exc:
        pk.evaluate_fim(cov_model, pk.Design((_group(32, {"WT": 70}),)))
    assert "BETA_WT" in str(exc.value)


def test_exact_search_keeps_the_covariates_and_its_value_is_the_fim_of_its_design(cov_model):
    d = pk.load_model("warfarin_covariate").default_design
    res = pk.optimize_design(cov_model, d, window=(0, 120))
    assert [g.covariates for g in res.design.groups] == [{"WT": 55.0}, {"WT": 95.0}]
    again = pk.evaluate_fim(cov_model, res.design)
    assert abs(again.logdet - res.fim.logdet) < 1e-9
    assert again.logdet >= pk.evaluate_fim(cov_model, d).logdet - 1e-9


def test_power_and_sample_size_for_the_covariate_effect(cov_model):
    d = pk.load_model("warfarin_covariate").default_design
    res = pk.evaluate_fim(cov_model, d)
    j = res.names.index("BETA_WT")
    n = pk.sample_size(cov_model, d, "BETA_WT", power=0.8)
    # Wald test of BETA_WT = 0: z = 0.75 / (SE(32) * sqrt(32 / N)); 80% power at z = 1.96 + 0.8416
    se1 = res.se[j] * np.sqrt(32)
    assert n["n"] >= (2.8016 * se1 / 0.75) ** 2 - 1e-9
    assert n["power"] >= 0.8


def test_design_files_round_trip_covariates(tmp_path, cov_model):
    d = pk.Design((_group(10, {"WT": 60.5}, "a"),
                   _group(20, {"WT": {"values": [50, 80, 110], "proportions": [0.25, 0.5, 0.25]}}, "b")))
    for suffix in (".toml", ".json"):
        path = d.save(tmp_path / f"d{suffix}")
        back = pk.Design.load(path, cov_model)
        assert [g.covariates for g in back.groups] == [g.covariates for g in d.groups]
        assert abs(pk.evaluate_fim(cov_model, back).logdet - pk.evaluate_fim(cov_model, d).logdet) < 1e-12
    assert "WT=50:0.25/80:0.5/110:0.25" in d.summary()


@pytest.mark.parametrize("covariates, message", [
    ({}, "no value for covariate(s) ['WT']"),
    ({"WT": 70, "AGE": 40}, "covariate(s) ['AGE'] are not in model"),
])
def test_covariates_that_do_not_match_the_model(cov_model, covariates, message):
    with pytest.raises(DesignError) as exc:
        pk.evaluate_fim(cov_model, pk.Design((_group(10, covariates),)))
    assert message in str(exc.value)


@pytest.mark.parametrize("covariates, message", [
    ({"WT": {"values": [55, 95], "proportions": [0.3, 0.6]}}, "proportions must sum to 1"),
    ({"WT": {"values": [55, 95], "proportions": [0.3]}}, "same length"),
    ({"WT": {"values": [55, 95], "proportions": [1.2, -0.2]}}, "proportions >= 0"),
    ({"WT": [55, 95]}, "expected a finite number or a distribution"),
    ({"WT": "heavy"}, "expected a number"),
    ({"WT": float("nan")}, "expected a finite number"),
    ({"WT": {"values": [55]}}, "a distribution is"),
])
def test_bad_covariate_values(covariates, message):
    with pytest.raises(DesignError) as exc:
        _group(10, covariates)
    assert message in str(exc.value)


def test_bad_covariate_declarations():
    base = (MODELS / "warfarin_covariate.toml").read_text().split("[[design.groups]]")[0]
    with pytest.raises(ModelSpecError, match="WT is a covariate"):
        pk.model.parse.parse_model_text(base.replace("[variability]\n", "[variability]\nWT = { variance = 0.1 }\n"))
    with pytest.raises(ModelSpecError, match="'CL' is already defined as a parameter"):
        pk.model.parse.parse_model_text(base.replace("[covariates]\n", "[covariates]\nCL = 3\n"))
    with pytest.raises(ModelSpecError, match="unknown key"):
        pk.model.parse.parse_model_text(base.replace('WT = { unit = "kg",', 'WT = { unit = "kg", mean = 70,'))


def test_approximate_design_over_two_weight_groups(cov_model):
    grid = np.array([0.5, 1, 2, 4, 6, 12, 24, 48, 72, 120], dtype=float)
    spaces = [pk.SamplingSpace(4, (0.5, 120), grid=grid, regimen=pk.Regimen.single(70.0), name=name,
                               covariates={"WT": w}) for name, w in (("light", 55), ("heavy", 95))]
    res = pk.optimize_approximate(cov_model, spaces)
    assert res.status.value == "converged", res
    assert {g.covariates["WT"] for g in res.design.groups} == {55.0, 95.0}
    # the reported information is that of the weighted design (each support point at its group's weight)
    again = pk.evaluate_fim(cov_model, res.design)
    assert abs(again.logdet - res.fim.logdet) < 1e-8


PEDIATRIC = """
[model]
name = "poped_ex11"
removable_singularities = [["KA", "K"]]
[parameters]
V = 72.8
KA = 0.25
CL = 3.75
FAV = { value = 0.9, fixed = true }
PEDCL = 0.8
[covariates]
PED = { description = "1 for children, 0 for adults" }
[variability]
V = { variance = 0.09 }
KA = { variance = 0.09 }
CL = { variance = 0.0625 }
[assignments]
K = "CL*PEDCL**PED/V"
[dosing]
route = "oral"
bioavailability = "FAV"
[responses]
C = "DOSE/V * KA/(KA - K) * (exp(-K*t) - exp(-KA*t))"
[outputs.conc]
expression = "C"
error = { model = "combined", prop = { variance = 0.04, fixed = true }, add = { variance = 5e-6, fixed = true } }
"""


def test_poped_prior_fim_and_power_example():
    """PopED ex.11.PK.prior (PopED "examples" vignette, "Include a prior FIM, compute power"): a binary
    covariate (isPediatric) on CL through pedCL^isPediatric; the adult FIM (pedCL not estimable) is the prior
    of a 6-child design.  PopED prints RSE% V 6.381388, KA 8.222819, CL 4.354761, pedCL 12.591940,
    d_V 31.808871, d_KA 52.858399, d_CL 25.601551; power to tell pedCL from 1: 51.01851%; 14 children for 80%."""
    m = pk.compile_model(pk.model.parse.parse_model_text(PEDIATRIC, "<PopED ex.11>"))
    reg = [pk.Regimen.from_dict({"amount": a, "interval": 24, "count": 11}) for a in (20, 40)]
    adults = pk.Design(tuple(pk.Group(20, {"conc": [1, 8, 10, 240, 245]}, r, f"adult {k}", {"PED": 0})
                             for k, r in enumerate(reg)))
    prior = pk.evaluate_fim(m, adults, check=False)
    children = pk.Design((pk.Group(6, {"conc": [1, 2, 6, 240]}, reg[1], "children", {"PED": 1}),))
    pooled = pk.evaluate_fim(m, children, prior_fim=prior)
    rse = dict(zip(pooled.names, pooled.rse_percent))
    poped = {"V": 6.381388, "KA": 8.222819, "CL": 4.354761, "PEDCL": 12.591940, "omega2(V)": 31.808871,
             "omega2(KA)": 52.858399, "omega2(CL)": 25.601551}
    for name, value in poped.items():
        assert rse[name] == pytest.approx(value, rel=1e-6), name
    curve = pk.power_curve(m, children, "PEDCL", null=1.0, n=[6], prior_fim=prior)
    assert 100 * curve["power"].iloc[0] == pytest.approx(51.01851, abs=1e-4)
    assert pk.sample_size(m, children, "PEDCL", power=0.8, null=1.0, prior_fim=prior)["n"] == 14


def test_prediction_plot_uses_the_group_covariates(cov_model):
    fig = pk.plot.predictions(cov_model, pk.load_model("warfarin_covariate").default_design, n_sim=100)
    lines = fig.axes[0].lines
    assert all(np.all(np.isfinite(line.get_ydata())) for line in lines)
    light, heavy = lines[0].get_ydata(), lines[2].get_ydata()  # curve, sample markers, curve, markers
    assert light.max() > heavy.max()  # the lighter group clears the drug more slowly: higher concentrations
