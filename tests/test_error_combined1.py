"""PFIM's combined error "Combined1" (SD = a + b*f, one epsilon): the FIM against an independent
implementation written here (sympy derivatives of the warfarin closed form, the FO marginal model
assembled in numpy straight from r = (a + b f)^2), population (full and reduced) and individual.

PFIM (Bazzoli, Retout & Mentre 2010, Comput Methods Programs Biomed 98:55-65; PFIM 4.0 user guide):
g(f) = sigma_inter + sigma_slope * f.  Every other approximation is checked for the invariants, and
the dense and the structured (Woodbury) paths against each other.
"""

import numpy as np
import pytest
import sympy as sp

import pkdesign as pk
from pkdesign.errors import DesignError, ModelSpecError

from .conftest import ROOT

A_SD, B_SD = 0.5, 0.1
TIMES = np.array([0.5, 1, 2, 6, 24, 36, 72, 120.0])
THETA = np.array([0.15, 8.0, 1.0])
OMEGA = np.diag([0.07, 0.02, 0.6])
DOSE, N = 70.0, 32


def _model_text(error="{ model = 'combined1', prop = { sd = 0.1 }, add = { sd = 0.5 } }"):
    text = (ROOT / "models" / "warfarin.toml").read_text()
    old = 'error = { model = "combined", prop = { variance = 0.01 }, add = { variance = 0.25 } }'
    assert old in text
    return text.replace(old, f"error = {error}").replace('name = "warfarin"', 'name = "warfarin_combined1"')


@pytest.fixture(scope="module")
def model():
    return pk.compile_model(pk.parse_model_text(_model_text()))


def _reference_derivatives():
    """f, df/dpsi (3), d2f/dpsi2 (3, 3) of the warfarin closed form at THETA (sympy, lambdified)."""
    cl, v, ka, t = sp.symbols("cl v ka t", positive=True)
    k = cl / v
    f = DOSE / v * ka / (ka - k) * (sp.exp(-k * t) - sp.exp(-ka * t))
    psi = (cl, v, ka)
    d1 = [sp.diff(f, p) for p in psi]
    d2 = [[sp.diff(f, p, q) for q in psi] for p in psi]
    lam = sp.lambdify((cl, v, ka, t), [f, d1, d2], "numpy")
    F, D1, D2 = [], [], []
    for ti in TIMES:
        a, b, c = lam(*THETA, ti)
        F.append(a)
        D1.append(b)
        D2.append(c)
    return np.array(F, float), np.array(D1, float), np.array(D2, float)


def _reference_fim(full: bool, random_effects: bool = True, rho: float = 1.0) -> np.ndarray:
    """FO FIM from the definition: mu = f(theta, 0), V = L Omega L' + diag(r), r = a^2 + b^2 f^2 + 2 rho a b f
    ((a + b f)^2 for rho = 1); parameters theta (3), omega2 (3), sigma2_prop = b^2, sigma2_add = a^2."""
    f, d1, d2 = _reference_derivatives()
    n = f.size
    a, b = A_SD, B_SD
    r = a * a + b * b * f * f + 2 * rho * a * b * f
    drdf = 2 * b * b * f + 2 * rho * a * b
    # L = df/deta = df/dpsi * psi (exponential random effects at eta = 0)
    L = d1 * THETA
    dL = [d2[:, :, m] * THETA + d1[:, [m]] * np.eye(3)[m] for m in range(3)]  # d L / d theta_m (n, 3)
    V = np.diag(r) + (L @ OMEGA @ L.T if random_effects else 0.0)
    dmu = [d1[:, m] for m in range(3)]
    dV = []
    for m in range(3):
        D = np.diag(drdf * d1[:, m])
        if random_effects:
            X = dL[m] @ OMEGA @ L.T
            D = D + X + X.T
        dV.append(D if full else np.zeros((n, n)))
    if random_effects:
        for e in range(3):
            dV.append(np.outer(L[:, e], L[:, e]))
    # dr/d(b^2) = f^2 + rho (a/b) f;  dr/d(a^2) = 1 + rho (b/a) f
    dV.append(np.diag(f * f + rho * a / b * f))
    dV.append(np.diag(1 + rho * b / a * f))
    Vi = np.linalg.inv(V)
    p = len(dV)
    F = np.zeros((p, p))
    for i in range(p):
        for j in range(p):
            F[i, j] = 0.5 * np.trace(Vi @ dV[i] @ Vi @ dV[j])
            if i < 3 and j < 3:
                F[i, j] += dmu[i] @ Vi @ dmu[j]
    return F


@pytest.mark.parametrize("rho", [0.4, -0.3])
def test_correlated_combined_error_matches_the_independent_implementation(rho):
    m = pk.compile_model(pk.parse_model_text(_model_text(
        f"{{ model = 'combined', prop = {{ sd = 0.1 }}, add = {{ sd = 0.5 }}, correlation = {rho} }}")))
    for fim in ("full", "reduced"):
        res = pk.evaluate_fim(m, m.spec.default_design, "fo", fim)
        ref = N * _reference_fim(fim == "full", rho=rho)
        np.testing.assert_allclose(res.matrix, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())


@pytest.mark.parametrize("fim", ["full", "reduced"])
def test_population_fo_matches_the_independent_implementation(model, fim):
    res = pk.evaluate_fim(model, model.spec.default_design, "fo", fim)
    assert res.names == ("CL", "V", "KA", "omega2(CL)", "omega2(V)", "omega2(KA)", "sigma2_prop", "sigma2_add")
    ref = N * _reference_fim(fim == "full")
    np.testing.assert_allclose(res.matrix, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())
    assert res.logdet == pytest.approx(np.linalg.slogdet(ref)[1], abs=1e-8 * abs(res.logdet))


@pytest.mark.parametrize("rho", [None, 0.4])
@pytest.mark.parametrize("fim", ["full", "reduced"])
def test_batched_kernel_matches_the_independent_implementation(model, fim, rho):
    """The compiled FO kernel (batches of schedules: the searches, schedule_fims, fim_evaluator) against the same
    reference as evaluate_fim, which contracts a single subject in numpy: combined1 and a correlated combined
    error."""
    if rho is not None:
        model = pk.compile_model(pk.parse_model_text(_model_text(
            f"{{ model = 'combined', prop = {{ sd = 0.1 }}, add = {{ sd = 0.5 }}, correlation = {rho} }}")))
    g = model.spec.default_design.groups[0]
    _, F = pk.schedule_fims(model, np.stack([TIMES, TIMES]), None, g.regimen, "fo", fim)
    ref = _reference_fim(fim == "full", **({} if rho is None else {"rho": rho}))
    for b in range(2):
        np.testing.assert_allclose(F[b], ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())


def test_individual_fim_matches_the_independent_implementation(model):
    g = model.spec.default_design.groups[0]
    res = pk.individual_fim(model, TIMES, g.regimen)
    ref = _reference_fim(True, random_effects=False)
    np.testing.assert_allclose(res.matrix, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())
    assert np.linalg.det(res.matrix) == pytest.approx(np.linalg.det(ref), rel=1e-8)


def test_combined1_differs_from_the_uncorrelated_combined_error(model):
    plain = pk.compile_model(pk.load_model("warfarin"))  # a^2 + b^2 f^2: two epsilons
    a = pk.evaluate_fim(model, model.spec.default_design, "fo", "full").logdet
    b = pk.evaluate_fim(plain, plain.spec.default_design, "fo", "full").logdet
    assert abs(a - b) > 0.5  # the cross term 2ab f matters (54.63 vs 57.08)


@pytest.mark.parametrize("approx", ["fo", "foi", "foce", "focei"])
@pytest.mark.parametrize("fim", ["full", "reduced"])
def test_structured_path_equals_dense_kernel(model, monkeypatch, approx, fim):
    from pkdesign.fim import linearized

    g = pk.Group(10, {"conc": np.linspace(0.25, 120, 40)}, pk.Regimen.single(DOSE), "g")
    d = pk.Design((g,))
    monkeypatch.setattr(linearized, "STRUCTURED_ABOVE", 10**9)
    dense = pk.evaluate_fim(model, d, approx, fim, draws=16, seed=4).matrix
    monkeypatch.setattr(linearized, "STRUCTURED_ABOVE", 0)
    wood = pk.evaluate_fim(model, d, approx, fim, draws=16, seed=4).matrix
    np.testing.assert_allclose(wood, dense, rtol=1e-9, atol=1e-11 * np.abs(dense).max())


def test_mc_tends_to_fo_as_omega_vanishes(model):
    # with Omega -> 0 the MC approximation's theta and sigma blocks become FO's (E f -> f, E r -> r(f))
    tiny = {"omega2(CL)": 1e-12, "omega2(V)": 1e-12, "omega2(KA)": 1e-12}
    d = model.spec.default_design
    fo = pk.evaluate_fim(model, d, "fo", "full", values=tiny, check=False).matrix
    mc = pk.evaluate_fim(model, d, "mc", "full", values=tiny, draws=256, seed=1, check=False).matrix
    keep = [0, 1, 2, 6, 7]
    np.testing.assert_allclose(mc[np.ix_(keep, keep)], fo[np.ix_(keep, keep)], rtol=1e-5)


def test_exact_mc_and_simulation_use_the_combined1_variance(model):
    res = pk.evaluate_fim(model, model.spec.default_design, "exact-mc", draws=200, seed=1)
    assert np.isfinite(res.logdet)
    # simulated observations: Var(y | f) = (a + b f)^2 at the typical subject (no random effects)
    no_re = pk.parse_model_text(_model_text().replace("[variability]", "[variability]\n# none").replace(
        'CL = { model = "exponential", variance = 0.07 }', "").replace(
        'V  = { model = "exponential", variance = 0.02 }', "").replace(
        'KA = { model = "exponential", variance = 0.6 }', ""))
    m = pk.compile_model(no_re)
    y = pk.simulate(m, pk.Regimen.single(DOSE), [6.0], n=200_000, seed=3)
    f = m.evaluate(THETA, [6.0], pk.Regimen.single(DOSE), order=0)["f"][0]
    assert y.std() == pytest.approx(A_SD + B_SD * f, rel=0.01)


@pytest.mark.parametrize("error, message", [
    ("{ model = 'combined1', prop = { sd = 0.1 }, add = { sd = 0 } }", "need both terms > 0"),
    ("{ model = 'combined1', prop = { sd = -0.1 }, add = { sd = 0.5 } }", r"prop.sd"),
    ("{ model = 'combined1', prop = { sd = 0.1 } }", "needs 'add'"),
    ("{ model = 'combined', prop = { sd = 0.1 }, add = { sd = 0.5 }, correlation = 1.5 }", "between -1 and 1"),
    ("{ model = 'proportional', prop = { sd = 0.1 }, correlation = 0.5 }", "applies to the 'combined'"),
])
def test_bad_combined1_declarations(error, message):
    with pytest.raises(ModelSpecError, match=message):
        pk.parse_model_text(_model_text(error))


def test_zero_combined1_value_is_refused(model):
    with pytest.raises(DesignError, match="correlated additive and proportional"):
        pk.evaluate_fim(model, model.spec.default_design, values={"sigma2_add": 0.0})


def test_bayesian_fim_matches_the_independent_implementation(model):
    # M_B = L' R^-1 L + 1/2 sum_i (dr/df)^2 L_i L_i' / r_i^2 + Omega^-1 with r = (a + b f)^2, dr/df = 2 b (a + b f)
    f, d1, _ = _reference_derivatives()
    L = d1 * THETA
    g = A_SD + B_SD * f
    r, s = g**2, 2 * B_SD * g
    ref = L.T @ (L / r[:, None]) + 0.5 * L.T @ (L * (s**2 / r**2)[:, None]) + np.linalg.inv(OMEGA)
    res = pk.bayesian_fim(model, TIMES, pk.Regimen.single(DOSE))
    assert res.names == ("eta(CL)", "eta(V)", "eta(KA)")
    np.testing.assert_allclose(res.matrix, ref, rtol=1e-8)
    assert np.linalg.det(res.matrix) == pytest.approx(np.linalg.det(ref), rel=1e-8)
    post = np.linalg.inv(ref)
    for k, n in enumerate(res.names):  # shrinkage (Combes et al. 2013): posterior / prior variance
        assert res.info["shrinkage"][n] == pytest.approx(post[k, k] / OMEGA[k, k], rel=1e-8)
