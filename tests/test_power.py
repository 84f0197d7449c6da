"""Wald-test power and sample size, checked by a seeded simulation-and-Wald-test.

For a model linear in its parameters with an additive random effect and additive error the FO FIM is
exact, so the predicted power of the Wald test of a slope must match the rejection rate of simulated
trials (each estimated by generalised least squares with the known covariance) to Monte-Carlo accuracy.
PopED's ``evaluate_power`` uses the same normal-approximation formula (Nyberg et al. 2012, Comput
Methods Programs Biomed 108:789-805).
"""

import json
import math

import numpy as np
import pytest
import sympy as sp

import pkdesign as pk
from pkdesign import cli

TIMES = np.array([0.0, 2.0, 4.0, 8.0])


@pytest.fixture(scope="module")
def linear():
    A, B, t = sp.symbols("A B t")
    spec = pk.model_from_sympy("linear", {"A": 10.0, "B": 0.15}, {"y": A + B * t},
                               errors={"y": {"model": "additive", "add": {"variance": 4.0, "fixed": True}}},
                               variability={"A": {"model": "additive", "variance": 4.0}})
    return pk.compile_model(spec)


def _design(n):
    return pk.Design((pk.Group(n, {"y": TIMES}, pk.Regimen(), "g"),))


def _simulated_power(n, reps=4000, seed=7):
    rng = np.random.default_rng(seed)
    X = np.stack([np.ones_like(TIMES), TIMES], axis=1)
    V = 4.0 * np.ones((4, 4)) + 4.0 * np.eye(4)
    Vi = np.linalg.inv(V)
    C = np.linalg.inv(n * X.T @ Vi @ X)
    se_b = math.sqrt(C[1, 1])
    L = np.linalg.cholesky(V)
    reject = 0
    for _ in range(reps):
        y = 10.0 + 0.15 * TIMES + (rng.standard_normal((n, 4)) @ L.T)
        beta = C @ (X.T @ Vi @ y.sum(axis=0))
        reject += abs(beta[1] / se_b) > 1.959963984540054
    return reject / reps


@pytest.mark.parametrize("n", [10, 30])
def test_power_matches_simulated_wald_tests(linear, n):
    curve = pk.power_curve(linear, _design(20), "B", null=0.0, n=[n])
    predicted = curve.loc[float(n), "power"]
    assert abs(predicted - _simulated_power(n)) < 0.03


def test_power_curve_shape_and_sample_size(linear):
    curve = pk.power_curve(linear, _design(20), "B")
    assert curve["power"].is_monotonic_increasing and curve.attrs["n_design"] == 20
    res = pk.sample_size(linear, _design(20), "B", power=0.8)
    assert res["power"] >= 0.8
    smaller = pk.power_curve(linear, _design(20), "B", n=[res["n"] - 1])["power"].iloc[0]
    assert smaller < 0.8  # the smallest such N
    rse = pk.sample_size(linear, _design(20), rse={"B": 10.0})
    assert rse["rse"]["B"] <= 10.0
    fim = pk.evaluate_fim(linear, rse["design"])
    assert fim.rse_percent[list(fim.names).index("B")] == pytest.approx(rse["rse"]["B"], rel=1e-9)


def test_wald_power_limits():
    assert pk.wald_power(0.0, 1.0) == pytest.approx(0.05)
    assert pk.wald_power(10.0, 1.0) == pytest.approx(1.0)
    with pytest.raises(pk.DesignError, match="alpha"):
        pk.wald_power(1.0, 1.0, alpha=1.5)


def test_power_bad_input(linear):
    with pytest.raises(pk.DesignError, match="unknown parameter 'C'"):
        pk.power_curve(linear, _design(20), "C")
    with pytest.raises(pk.DesignError, match="target power"):
        pk.sample_size(linear, _design(20))
    with pytest.raises(pk.DesignError, match="equals the null"):
        pk.sample_size(linear, _design(20), "B", power=0.8, null=0.15)


def test_power_command(capsys):
    assert cli.main(["power", "warfarin", "--parameter", "CL", "--null", "0.12", "--target", "0.9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parameter"] == "CL" and out["sample_size"]["power"] >= 0.9
    assert len(out["curve"]) >= 5 and all(0 <= r["power"] <= 1 for r in out["curve"])


def test_window_efficiency_distribution():
    model = pk.compile_model(pk.load_model("warfarin"))
    d = model.spec.default_design
    zero = pk.window_efficiency(model, d, width=0.0, n=5)
    np.testing.assert_allclose(zero.efficiencies, 1.0, rtol=1e-12)
    w = pk.window_efficiency(model, d, width=0.5, n=100, seed=3)
    assert 0.8 < w.quantile(0.05) <= np.median(w.efficiencies) and 0 <= w.fraction_above(0.95) <= 1
    # the first draw by hand: same seed, the same perturbed times, (det ratio)^(1/p)
    rng = np.random.default_rng(3)
    g = d.groups[0]
    t = np.sort(np.maximum(g.times["conc"] + rng.uniform(-0.5, 0.5, g.times["conc"].size), 0.0))
    moved = pk.evaluate_fim(model, pk.Design((pk.Group(g.n, {"conc": t}, g.regimen, g.name),)))
    base = pk.evaluate_fim(model, d)
    assert w.efficiencies[0] == pytest.approx(math.exp((moved.logdet - base.logdet) / base.p), rel=1e-12)
    fig = w.plot()
    assert "efficiency" in fig.axes[0].get_xlabel() and len(fig.axes[0].patches) == 30
    assert "WindowEfficiency" in repr(w)
    with pytest.raises(pk.DesignError, match="width"):
        pk.window_efficiency(model, d, width=-1)
