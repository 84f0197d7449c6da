"""Inter-occasion variability (IOV): one κ ~ N(0, Π) per occasion on top of the between-subject η.

References:
* an independent implementation: the same model written by hand with two extra random effects K1, K2
  (additive, variance π each) and one output per occasion; its FIM, with the two variances summed by the
  chain rule (π = ω²(K1) = ω²(K2)), must equal pkdesign's IOV FIM (1e-10) under every approximation;
* PopED's IOV example (ex.14.PK.IOV; PopED "examples" vignette, section "Model with Inter-Occasion
  Variability"): RSE% of the FO reduced FIM, printed rounded: CL 6, V 9, KA 11, d_CL 106, d_V 43, d_KA 63,
  D.occ[1,1] 79.  PopED switches CL inside its ODE at the occasion boundary, pkdesign gives each occasion its
  own CL for the whole dose history (the doses before 144 h contribute ~0.2% at 240 h), so D.occ may differ
  by about one unit;
* the same vignette's ex.11 adult design (no IOV; multiple dosing, F = 0.9, fixed residual error): PopED's
  printed FIM and ofv (ln det) 29.70233.
"""

import numpy as np
import pytest

import pkdesign as pk
from pkdesign.errors import DesignError, NonIdentifiableError
from pkdesign.model.parse import parse_model_text

from .conftest import MODELS

TEXT = (MODELS / "one_comp_oral_iov.toml").read_text().split("[[design.groups]]")[0]

EXPANDED = """
[model]
name = "iov_by_hand"
removable_singularities = [["KA", "KE1"], ["KA", "KE2"]]
[parameters]
CL = 3.75
V = 72.8
KA = 0.25
K1 = { value = 0.0, fixed = true }
K2 = { value = 0.0, fixed = true }
[variability]
CL = { model = "exponential", variance = 0.0625 }
V = { model = "exponential", variance = 0.09 }
KA = { model = "exponential", variance = 0.09 }
K1 = { model = "additive", variance = 0.09 }
K2 = { model = "additive", variance = 0.09 }
[assignments]
KE1 = "CL*exp(K1)/V"
KE2 = "CL*exp(K2)/V"
[dosing]
route = "oral"
[responses]
C1 = "DOSE/V * KA/(KA - KE1) * (exp(-KE1*t) - exp(-KA*t))"
C2 = "DOSE/V * KA/(KA - KE2) * (exp(-KE2*t) - exp(-KA*t))"
[outputs.occ1]
expression = "C1"
error = { model = "combined", prop = { variance = 0.04, fixed = true }, add = { variance = 5e-6, fixed = true } }
[outputs.occ2]
expression = "C2"
error = { model = "combined", prop = { variance = 0.04, fixed = true }, add = { variance = 5e-6, fixed = true } }
"""


def _regimen(amount):
    return pk.Regimen.from_dict({"amount": amount, "interval": 24, "count": 11})


@pytest.fixture(scope="module")
def iov_model():
    return pk.compile_model(pk.load_model("one_comp_oral_iov"))


@pytest.fixture(scope="module")
def by_hand():
    return pk.compile_model(parse_model_text(EXPANDED, "<iov by hand>"))


def _designs(amounts=(20, 40)):
    iov = pk.Design(tuple(pk.Group(20, {"conc": [1, 2, 8, 240, 245]}, _regimen(a), f"{a} mg", occasions=[0, 144])
                          for a in amounts))
    hand = pk.Design(tuple(pk.Group(20, {"occ1": [1, 2, 8], "occ2": [240, 245]}, _regimen(a), f"{a} mg")
                           for a in amounts))
    return iov, hand


def _collapse_by_hand(F):
    """FIM over (CL, V, KA, ω²CL, ω²V, ω²KA, ω²K1, ω²K2) -> (..., π) with π = ω²K1 = ω²K2."""
    A = np.zeros((8, 7))
    A[np.arange(7), np.arange(7)] = 1.0
    A[7, 6] = 1.0
    return A.T @ F @ A


@pytest.mark.parametrize("approximation, fim, draws", [
    ("fo", "reduced", None), ("fo", "full", None), ("foi", "full", None), ("foce", "full", 40),
    ("focei", "reduced", 40), ("mc", "reduced", 256),
])
def test_iov_equals_the_model_expanded_by_hand(iov_model, by_hand, approximation, fim, draws):
    d_iov, d_hand = _designs()
    kw = {} if draws is None else {"draws": draws, "seed": 3}
    a = pk.evaluate_fim(iov_model, d_iov, approximation, fim, check=False, **kw)
    b = pk.evaluate_fim(by_hand, d_hand, approximation, fim, check=False, **kw)
    assert list(a.names) == ["CL", "V", "KA", "omega2(CL)", "omega2(V)", "omega2(KA)", "omega2_iov(CL)"]
    ref = _collapse_by_hand(b.matrix)
    np.testing.assert_allclose(a.matrix, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


def test_poped_iov_example_rse(iov_model):
    d_iov, _ = _designs()
    r = pk.evaluate_fim(iov_model, d_iov, "fo", "reduced")
    rse = dict(zip(r.names, r.rse_percent))
    poped = {"CL": 6, "V": 9, "KA": 11, "omega2(CL)": 106, "omega2(V)": 43, "omega2(KA)": 63}
    for name, value in poped.items():
        assert round(rse[name]) == value, (name, rse[name])
    assert abs(rse["omega2_iov(CL)"] - 79) < 1.0  # D.occ[1,1]; see the module docstring


def test_poped_prior_example_adult_fim():
    """No IOV: PopED's printed FIM of the ex.11 adult design, to its 7 printed digits."""
    text = TEXT.replace(', occasion = { variance = 0.09 }', '')
    text = text.replace('KA = { value = 0.25, unit = "1/h" }', 'KA = { value = 0.25, unit = "1/h" }\nFAV = { value = 0.9, '
                        'fixed = true }').replace('route = "oral"', 'route = "oral"\nbioavailability = "FAV"')
    m = pk.compile_model(parse_model_text(text, "<ex.11 adult>"))
    d = pk.Design(tuple(pk.Group(20, {"conc": [1, 8, 10, 240, 245]}, _regimen(a), f"{a} mg") for a in (20, 40)))
    r = pk.evaluate_fim(m, d)
    F = dict(((a, b), r.matrix[i, j]) for i, a in enumerate(r.names) for j, b in enumerate(r.names))
    poped = {("V", "V"): 0.05854391, ("KA", "V"): -6.815269, ("CL", "V"): -0.01531146, ("KA", "KA"): 2963.426688,
             ("CL", "KA"): -1.32113719, ("CL", "CL"): 37.50597895, ("omega2(V)", "omega2(V)"): 1203.3695137,
             ("omega2(KA)", "omega2(V)"): 192.31775149, ("omega2(CL)", "omega2(V)"): 0.2184104,
             ("omega2(KA)", "omega2(KA)"): 428.81459138, ("omega2(CL)", "omega2(KA)"): 0.01919009,
             ("omega2(CL)", "omega2(CL)"): 3477.252}
    for key, value in poped.items():
        assert F[key] == pytest.approx(value, rel=1e-6), key
    assert r.logdet == pytest.approx(29.70233, abs=1e-5)


def test_one_occasion_cannot_separate_iov_from_bsv(iov_model):
    d = pk.Design((pk.Group(40, {"conc": [1, 2, 8, 240, 245]}, _regimen(20)),))
    with pytest.raises(NonIdentifiableError) as exc:
        pk.evaluate_fim(iov_model, d)
    assert "omega2(CL)" in str(exc.value) and "omega2_iov(CL)" in str(exc.value)


def test_every_dose_an_occasion(iov_model):
    g = pk.Group(20, {"conc": [1, 2, 8, 25, 240, 245]}, _regimen(20), "g", occasions="doses")
    assert g.occasion_starts().size == 11
    r = pk.evaluate_fim(iov_model, pk.Design((g,)), check=False)
    assert np.isfinite(r.logdet) and r.names[-1] == "omega2_iov(CL)"
    back = pk.Design.from_dict(pk.Design((g,)).to_dict())
    assert back.groups[0].occasions == "doses"


def test_exact_mc_with_occasions_is_finite_and_near_fo(iov_model):
    d_iov, _ = _designs()
    fo = pk.evaluate_fim(iov_model, d_iov, "fo", "full")
    ex = pk.evaluate_fim(iov_model, d_iov, "exact-mc", "full", draws=400, seed=1, check=False)
    assert ex.matrix.shape == (7, 7) and np.all(np.isfinite(ex.mc_se))
    assert abs(ex.logdet - fo.logdet) < 1.5  # FO is an approximation; 400 simulated subjects


def test_search_moves_times_within_occasions(iov_model):
    d_iov, _ = _designs()
    wins = [(0, 10), (0, 10), (0, 10), (240, 248), (240, 248)]
    res = pk.optimize_design(iov_model, d_iov, windows={g.name: wins for g in d_iov.groups})
    again = pk.evaluate_fim(iov_model, res.design)
    assert abs(again.logdet - res.fim.logdet) < 1e-9
    assert res.fim.logdet >= pk.evaluate_fim(iov_model, d_iov).logdet - 1e-9
    assert all(g.occasions == (0.0, 144.0) for g in res.design.groups)


@pytest.mark.parametrize("occasions, message", [
    ([0, 130, 144], "occasion 2 (from t = 130 to 144) has no dose"),
    ([144, 0], "sorted"),
    ([0, 0], "distinct"),
    ("visits", 'a list of start times or "doses"'),
    ([-1, 144], ">= 0"),
])
def test_bad_occasions(occasions, message):
    with pytest.raises(DesignError) as exc:
        pk.Group(20, {"conc": [1, 240]}, _regimen(20), "g", occasions=occasions)
    assert message in str(exc.value)


def test_occasions_without_doses():
    with pytest.raises(DesignError, match="no doses"):
        pk.Group(20, {"conc": [1, 240]}, pk.Regimen(), "g", occasions="doses")


def test_simulation_and_prediction_band_see_the_occasions(iov_model):
    from pkdesign.simulation import simulate

    reg = _regimen(20)
    t = [100.0, 120.0, 200.0]  # occasion 1, occasion 1, occasion 2
    a = np.log(simulate(iov_model, reg, t, n=20000, residual=False, occasions=[0, 144], seed=1))
    c = np.corrcoef(a.T)
    assert c[0, 2] < c[0, 1] - 0.3  # a new κ on CL from the 7th dose: samples across occasions decorrelate
    one = np.log(simulate(iov_model, reg, t, n=20000, residual=False, seed=1))
    assert np.corrcoef(one.T)[0, 2] > 0.9  # one occasion: the same κ throughout
    fig = pk.plot.predictions(iov_model, iov_model.spec.default_design, n_sim=100)
    assert len(fig.axes[0].collections) == 2  # a band per group
