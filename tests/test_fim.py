"""The FIM approximations behind ``evaluate_fim``: published numbers, independent twins, invariants.

Published / peer values:
- FO full and reduced, both error models: PopED's warfarin FIM (tests/reference/warfarin_fo.json,
  Nyberg et al. 2015 Br J Clin Pharmacol 79:6-17); ln det to 1e-6, RSE% to 1e-4 relative.
- FOI, FOCE, FOCEI: PopED's definitions (Nyberg et al. 2012, Comput Methods Programs Biomed
  108:789-805; Strömberg, Nyberg & Hooker 2016), re-implemented independently in
  tests/fim_reference.py with complex-step derivatives.
- MC: the limit (marginal moments by Gauss–Hermite quadrature) of Leonov & Aliev's (2012)
  Monte-Carlo approximation, same independent module.
- exact-MC: equals FO exactly when the model is linear in η with additive error (then the
  marginal distribution is normal with FO's mean and covariance).
"""

import json

import numpy as np
import pytest
import sympy as sp

import pkdesign as pk
from pkdesign.fim.draws import draw_eta
from .fo_reference import fo_fim

from . import fim_reference as ref
from .conftest import MODELS, REFERENCE, compiled

REF = json.loads((REFERENCE / "warfarin_fo.json").read_text())
TIMES = np.array([0.5, 1, 2, 6, 24, 36, 72, 120.0])


@pytest.mark.parametrize("name, case", [("warfarin_prop", 0), ("warfarin", 1)])
@pytest.mark.parametrize("kind", ["full", "reduced"])
def test_fo_matches_poped_and_reference_implementation(name, case, kind):
    spec, model = compiled(name)
    r = pk.evaluate_fim(model, spec.default_design, "fo", kind)
    want = REF["cases"][case]
    assert [n.replace("(", "_").rstrip(")") for n in r.names] == want["parameters"]
    assert r.logdet == pytest.approx(want[kind]["lndet"], rel=1e-6)
    np.testing.assert_allclose(r.rse_percent, want[kind]["rse_percent"], rtol=1e-4)
    # the plain one-group-at-a-time implementation agrees to rounding
    np.testing.assert_allclose(r.matrix, fo_fim(model, spec.default_design, kind)[1], rtol=1e-11, atol=1e-11)


def _alpha(spec):
    return np.r_[spec.theta, [v.variance for v in spec.variability], [t.variance for t in spec.outputs[0].error_terms]]


@pytest.mark.parametrize("name", ["warfarin", "warfarin_prop"])
@pytest.mark.parametrize("approx", ["foi", "foce", "focei"])
@pytest.mark.parametrize("kind", ["full", "reduced"])
def test_linearised_approximations_match_independent_definition(name, approx, kind):
    spec, model = compiled(name)
    errors = [t.kind for t in spec.outputs[0].error_terms]
    K, seed = 4, 11
    r = pk.evaluate_fim(model, spec.default_design, approx, kind, draws=K, seed=seed)
    if approx == "foi":
        etas = np.zeros((1, 3))
    else:  # the draws evaluate_fim uses: group 0's stream of SeedSequence(seed)
        etas = draw_eta(spec.omega, K, np.random.SeedSequence(seed).spawn(1)[0], "mc")
    alpha = _alpha(spec)
    F = np.zeros((alpha.size, alpha.size))
    for eta in etas:
        mom = lambda a, eta=eta: ref.linearized_moments(a, TIMES, eta, errors, approx != "foce",  # noqa: E731
                                                          approx == "focei")
        F += ref.fim_from_moments(mom, alpha, reduced_theta=kind == "reduced")
    F *= 32 / len(etas)
    np.testing.assert_allclose(r.matrix, F, rtol=2e-7, atol=1e-9 * np.abs(F).max())


def test_foi_equals_fo_without_proportional_error():
    # the η–ε interaction only enters through proportional terms
    spec = pk.model_from_sympy(
        "addonly", {"A": 10.0, "K": 0.3}, {"y": sp.sympify("A*exp(-K*t)")}, errors={"y": {"model": "additive", "add": 0.5}},
        variability={"A": 0.1, "K": 0.2}, design={"groups": [{"n": 20, "times": [0.5, 2, 6, 10]}]})
    model = pk.compile_model(spec)
    fo = pk.evaluate_fim(model, spec.default_design, "fo")
    foi = pk.evaluate_fim(model, spec.default_design, "foi")
    np.testing.assert_allclose(foi.matrix, fo.matrix, rtol=1e-13)


def test_mc_converges_to_quadrature_limit():
    spec, model = compiled("warfarin")
    r = pk.evaluate_fim(model, spec.default_design, "mc", "full", draws=2**15, seed=3)
    alpha = _alpha(spec)
    F = 32 * ref.fim_from_moments(lambda a: ref.quadrature_moments(a, TIMES, ["prop", "add"]), alpha)
    # 2^15 scrambled-Sobol draws: ln det within 2e-3 (absolute), each RSE% within 1%
    assert r.logdet == pytest.approx(np.linalg.slogdet(F)[1], abs=2e-3)
    np.testing.assert_allclose(r.rse_percent, 100 * np.sqrt(np.diag(np.linalg.inv(F))) / alpha, rtol=1e-2)


@pytest.fixture(scope="module")
def linear_model():
    """E0 + EMAX*C/(EC50 + C) with additive η on E0 and EMAX: linear in η, additive error."""
    spec = pk.model_from_sympy(
        "linear_eta", {"E0": 10.0, "EMAX": 50.0, "EC50": 4.0}, {"E": sp.sympify("E0 + EMAX*t/(EC50 + t)")},
        errors={"E": {"model": "additive", "add": 4.0}},
        variability={"E0": {"model": "additive", "variance": 9.0}, "EMAX": {"model": "additive", "variance": 100.0}},
        design={"groups": [{"n": 40, "times": [0, 1, 4, 10, 30]}]})
    return spec, pk.compile_model(spec)


def test_exact_mc_equals_fo_for_linear_model(linear_model):
    spec, model = linear_model
    # the full FO FIM: ∂V/∂θ is part of the exact FIM (L depends on EC50); the reduced FIM drops it, 3-4% on
    # EC50, which the quasi-random exact-MC resolves (z ~ 25 at 16,000 subjects)
    fo = pk.evaluate_fim(model, spec.default_design, "fo", fim="full")
    ex = pk.evaluate_fim(model, spec.default_design, "exact-mc", draws=4000, seed=5)
    z = (ex.matrix - fo.matrix) / ex.mc_se
    assert np.all(np.abs(z) < 4.5), z
    assert ex.logdet == pytest.approx(fo.logdet, abs=0.1)
    reduced = pk.evaluate_fim(model, spec.default_design, "fo", fim="reduced")
    assert abs(reduced.matrix[2, 2] - ex.matrix[2, 2]) > 4 * ex.mc_se[2, 2]
    # MC and FOCE are exact here too (up to sampling error)
    mc = pk.evaluate_fim(model, spec.default_design, "mc", fim="full", draws=4096)
    np.testing.assert_allclose(mc.matrix, fo.matrix, rtol=2e-2, atol=1e-3 * np.abs(fo.matrix).max())
    foce = pk.evaluate_fim(model, spec.default_design, "foce", fim="full", draws=50)
    np.testing.assert_allclose(foce.matrix, fo.matrix, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("approx, small, large", [("foce", 100, 1600), ("mc", 128, 2048)])
def test_monte_carlo_error_shrinks_like_root_n(approx, small, large):
    spec, model = compiled("warfarin")
    d = spec.default_design

    def spread(n):
        vals = [pk.evaluate_fim(model, d, approx, draws=n, seed=s, sampling="mc",
                                is_samples=50).logdet for s in range(8)]
        return np.std(vals, ddof=1)

    ratio = spread(small) / spread(large)  # sqrt(16) = 4 expected; generous bounds for 8 replicates
    assert 2.0 < ratio < 9.0, ratio


def test_exact_mc_error_is_honest_and_shrinks_at_least_like_root_n():
    """exact-MC is randomised quasi-Monte Carlo: its reported SE (from 16 independent replicates) must match the
    spread of ln det over independent seeds, and the error must shrink at least as fast as N^-1/2."""
    spec, model = compiled("warfarin")
    d = spec.default_design

    def runs(n):
        res = [pk.evaluate_fim(model, d, "exact-mc", draws=n, seed=s) for s in range(8)]
        return np.std([r.logdet for r in res], ddof=1), np.mean([r.info["logdet_mc_se"] for r in res])

    small, se_small = runs(256)
    large, se_large = runs(4096)
    for spread, se in ((small, se_small), (large, se_large)):
        assert 0.45 < spread / se < 2.2, (spread, se)  # 8 seeds: the spread itself is known to ~25%
    assert small / large > 2.5, (small, large)  # 16x the subjects: >= 4 expected (faster than MC is allowed)


@pytest.mark.parametrize("approx", ["foce", "focei", "mc", "exact-mc"])
def test_same_seed_same_numbers(approx):
    spec, model = compiled("warfarin")
    kw = dict(draws=64, is_samples=20)
    a = pk.evaluate_fim(model, spec.default_design, approx, seed=7, **kw)
    b = pk.evaluate_fim(model, spec.default_design, approx, seed=7, **kw)
    c = pk.evaluate_fim(model, spec.default_design, approx, seed=8, **kw)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert not np.array_equal(a.matrix, c.matrix)


def test_multiple_outputs_and_groups_sum():
    spec, model = compiled("effect_compartment")
    d = spec.default_design
    total = pk.evaluate_fim(model, d, "fo", "full")
    parts = [pk.evaluate_fim(model, pk.Design((g,)), "fo", "full", check=False).matrix for g in d.groups]
    np.testing.assert_allclose(total.matrix, sum(parts), rtol=1e-12)
    np.testing.assert_allclose(total.matrix, fo_fim(model, d, "full")[1], rtol=1e-10, atol=1e-12)
    assert "sigma2_prop(conc)" in total.names and "sigma2_add(effect)" in total.names


def test_exponential_error_is_additive_on_log_scale():
    common = dict(parameters={"A": 10.0, "K": 0.3}, variability={"A": 0.1, "K": 0.2},
                  design={"groups": [{"n": 20, "times": [0.5, 2, 6, 10]}]})
    expo = pk.model_from_sympy("expo", outputs={"y": sp.sympify("A*exp(-K*t)")},
                               errors={"y": {"model": "exponential", "exp": 0.04}}, **common)
    logm = pk.model_from_sympy("logm", outputs={"y": sp.sympify("log(A) - K*t")},
                               errors={"y": {"model": "additive", "add": 0.04}}, **common)
    for kind in ("full", "reduced"):
        a = pk.evaluate_fim(pk.compile_model(expo), expo.default_design, "fo", kind)
        b = pk.evaluate_fim(pk.compile_model(logm), logm.default_design, "fo", kind)
        np.testing.assert_allclose(a.matrix, b.matrix, rtol=1e-10, atol=1e-12 * np.abs(b.matrix).max())
        assert a.names[-1] == "sigma2_exp"


def test_result_object_quantities_and_sd_scale():
    spec, model = compiled("warfarin")
    r = pk.evaluate_fim(model, spec.default_design, "fo", "reduced")
    assert r.det_root == pytest.approx(np.exp(r.logdet / 8))
    np.testing.assert_allclose(np.diag(r.correlation), 1.0)
    assert r.condition_number == pytest.approx(r.eigenvalues.max() / r.eigenvalues.min())
    frame = r.to_frame()
    assert list(frame.index) == list(r.names) and frame.loc["CL", "rse_percent"] == pytest.approx(r.rse_percent[0])
    sd = pk.evaluate_fim(model, spec.default_design, "fo", "reduced", scale="sd")
    assert sd.names[3] == "omega(CL)" and sd.names[-1] == "sigma_add"
    # delta method: RSE(sd) = RSE(variance) / 2; fixed effects unchanged; ln det shifts by Σ ln(2 s)
    np.testing.assert_allclose(sd.rse_percent[3:], r.rse_percent[3:] / 2, rtol=1e-10)
    np.testing.assert_allclose(sd.rse_percent[:3], r.rse_percent[:3], rtol=1e-10)
    assert sd.logdet == pytest.approx(r.logdet + 2 * np.sum(np.log(2 * sd.values[3:])))


def test_singular_fim_names_the_direction():
    # A and B enter only as a product: 0.71*A - 0.71*B is not identifiable
    spec = pk.model_from_sympy("product", {"A": 1.0, "B": 1.0, "K": 0.5}, {"y": sp.sympify("A*B*exp(-K*t)")},
                               errors={"y": {"model": "additive", "add": 0.01}})
    model = pk.compile_model(spec)
    with pytest.raises(pk.NonIdentifiableError, match=r"0\.71\*A - 0\.71\*B") as exc:
        pk.individual_fim(model, [0.5, 1, 2, 4])
    assert set(exc.value.directions[0]) == {"A", "B"}
    flagged = pk.individual_fim(model, [0.5, 1, 2, 4], check=False)
    assert not flagged.identifiable
    with pytest.raises(pk.NonIdentifiableError):
        flagged.se  # noqa: B018


def test_bad_input_gets_clear_errors():
    spec, model = compiled("warfarin")
    d = spec.default_design
    with pytest.raises(pk.DesignError, match="unknown name"):
        pk.evaluate_fim(model, d, values={"CLEARANCE": 1.0})
    with pytest.raises(pk.ModelSpecError, match="not positive semi-definite"):
        pk.evaluate_fim(model, d, values={"omega2(CL)": -0.1})
    with pytest.raises(pk.DesignError, match="whole number > 0"):
        pk.evaluate_fim(model, d, "foce", draws=0)
    with pytest.raises(pk.PkdesignError, match="approximation"):
        pk.evaluate_fim(model, d, "laplace")
    with pytest.raises(pk.DesignError, match="n must be > 0"):
        pk.Group(0, {"conc": [1.0]})
    # a time outside the model's domain: log(t) at t = 0
    logt = pk.model_from_sympy("logt", {"A": 1.0, "B": 2.0}, {"y": sp.sympify("A + B*log(t)")},
                               errors={"y": {"model": "additive", "add": 0.1}})
    with pytest.raises(pk.DesignError, match="output .y. at time 0 is not finite"):
        pk.individual_fim(pk.compile_model(logt), [0.0, 1.0, 2.0])
    # exponential error before the first dose (prediction 0)
    with pytest.raises(pk.DesignError, match="needs predictions > 0"):
        expo = pk.load_model(MODELS / "warfarin.toml")
        from dataclasses import replace

        from pkdesign.model.spec import ErrorTermSpec

        out = replace(expo.outputs[0], error_model="exponential", error_terms=(ErrorTermSpec("exp", 0.01),))
        expo = replace(expo, outputs=(out,), name="warfarin_exp")
        g = pk.Group(10, {"conc": [0.0, 1.0, 4.0]}, pk.Regimen.single(70.0, time=0.5))
        pk.evaluate_fim(pk.compile_model(expo), pk.Design((g,)))


def test_individual_fim_matches_least_squares_simulation():
    """Simulate 1500 data sets from y = A exp(-K t) + ε, fit each by least squares, compare the
    empirical covariance of the estimates with the inverse FIM (Monte-Carlo tolerance)."""
    from scipy.optimize import least_squares

    spec = pk.model_from_sympy("expdecay", {"A": 10.0, "K": 0.3}, {"y": sp.sympify("A*exp(-K*t)")},
                               errors={"y": {"model": "additive", "add": 0.25}})
    model = pk.compile_model(spec)
    t = np.array([0.5, 1, 2, 4, 6, 8, 12.0])
    r = pk.individual_fim(model, t)
    cov = np.linalg.inv(r.matrix[:2, :2])
    rng = np.random.default_rng(2024)
    f = lambda p: p[0] * np.exp(-p[1] * t)  # noqa: E731
    est = []
    for _ in range(1500):
        y = f([10.0, 0.3]) + 0.5 * rng.standard_normal(t.size)
        est.append(least_squares(lambda p: f(p) - y, [10.0, 0.3], method="lm").x)
    emp = np.cov(np.array(est).T)
    # variances have relative SE ~ sqrt(2/1500) = 3.7%: allow 12%; the correlation within 0.05
    np.testing.assert_allclose(np.diag(emp), np.diag(cov), rtol=0.12)
    corr = lambda c: c[0, 1] / np.sqrt(c[0, 0] * c[1, 1])  # noqa: E731
    assert corr(emp) == pytest.approx(corr(cov), abs=0.05)
    # dropping the variance term changes nothing for additive error, but does for proportional
    assert np.allclose(pk.individual_fim(model, t, variance_term=False).matrix, r.matrix)


def test_approximation_report_trusts_what_matches_exact_mc(linear_model):
    # linear in η, additive error: every approximation is exact, so all are trusted
    spec, model = linear_model
    frame = pk.approximation_report(model, spec.default_design, draws=2000, seed=2)
    assert list(frame.index) == ["fo", "foi", "foce", "focei", "mc", "exact-mc"]
    assert frame["trusted"].all(), frame[["logdet_z", "max_rse_deviation"]]
    # warfarin (proportional error): the full FO FIM overstates the information on KA
    spec, model = compiled("warfarin_prop")
    frame = pk.approximation_report(model, spec.default_design, "full", draws=1000, seed=2)
    assert not frame.loc["fo", "trusted"] and frame.loc["fo", "logdet_z"] > 2


def test_exact_mc_blocks_are_the_same_whatever_the_executor():
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    spec, model = compiled("warfarin")
    d = spec.default_design
    serial = pk.evaluate_fim(model, d, "exact-mc", draws=1200, seed=5)  # three blocks of simulated subjects
    with ThreadPoolExecutor(2) as ex:
        threaded = pk.evaluate_fim(model, d, "exact-mc", draws=1200, seed=5, executor=ex)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        processes = pk.evaluate_fim(model, d, "exact-mc", draws=1200, seed=5, executor=ex)
    np.testing.assert_array_equal(serial.matrix, threaded.matrix)
    np.testing.assert_array_equal(serial.matrix, processes.matrix)
    assert serial.info["logdet_mc_se"] == processes.info["logdet_mc_se"]


def test_executor_gives_the_same_numbers():
    from concurrent.futures import ThreadPoolExecutor

    spec, model = compiled("effect_compartment")
    serial = pk.evaluate_fim(model, spec.default_design, "foce", draws=20, seed=3)
    with ThreadPoolExecutor(2) as ex:
        threaded = pk.evaluate_fim(model, spec.default_design, "foce", draws=20, seed=3, executor=ex)
    np.testing.assert_array_equal(serial.matrix, threaded.matrix)


def test_exact_mc_default_reaches_the_independent_reference():
    """Warfarin, combined error, the README design: ln det 55.300 ± 0.009 by an independent computation
    (adaptive Gauss-Hermite quadrature over η and Monte Carlo over y; issue 14).  At the default settings
    exact-MC must report SE <= 0.02 and lie within 3 combined SE of it, at every seed."""
    spec, model = compiled("warfarin")
    for seed in (0, 1):
        res = pk.evaluate_fim(model, spec.default_design, "exact-mc", seed=seed)
        se = res.info["logdet_mc_se"]
        assert res.info["draws"] == 65536 and se <= 0.02, se
        assert abs(res.logdet - 55.300) <= 3 * np.hypot(se, 0.009), (res.logdet, se)
