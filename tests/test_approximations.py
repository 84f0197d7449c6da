"""Every approximation through one interface (``pkdesign.fim.approximations``), on library models.

A table of model x approximation x FIM type: each ``subject(...)`` returns a ``SubjectFIM`` whose
matrix is finite, symmetric and positive semi-definite, and ``evaluate_fim`` is the N-weighted sum of
the groups' subject FIMs; batched approximations give the same FIM through ``schedules(...)``.
The numbers themselves are validated elsewhere (PopED, independent twins: tests/test_fim.py).
"""

import numpy as np
import pytest

import pkdesign as pk
from pkdesign.choices import APPROXIMATIONS, FIM_TYPES
from pkdesign.fim.api import _parameters
from pkdesign.fim.approximations import APPROXIMATION_OBJECTS, SubjectFIM, get_approximation

from .conftest import compiled

MODELS = ["warfarin", "one_comp_oral", "effect_compartment", "sigmoid_emax", "warfarin_ode"]
CASES = [(m, a, f) for m in MODELS for a in APPROXIMATIONS for f in FIM_TYPES
         if APPROXIMATION_OBJECTS[a].reduced or f == "full"]


@pytest.mark.parametrize("name,approximation,fim", CASES, ids=[f"{m}-{a}-{f}" for m, a, f in CASES])
def test_one_interface(name, approximation, fim):
    spec, model = compiled(name)
    approx = get_approximation(approximation)
    pp = _parameters(model, None)
    g = spec.default_design.groups[0]
    t, idx = g.observations(spec.output_names)
    draws = {"exact-mc": 60}.get(approximation, 40)
    out = approx.subject(model, pp, t, idx, g.regimen, fim == "full", draws=draws, seed=3)
    assert isinstance(out, SubjectFIM) and out.matrix.shape == (pp.p, pp.p)
    F = out.matrix
    assert np.all(np.isfinite(F)) and np.allclose(F, F.T, rtol=1e-10, atol=1e-12 * np.abs(F).max())
    w = np.linalg.eigvalsh(0.5 * (F + F.T))
    assert w.min() >= -1e-9 * w.max()
    assert (out.mc_se is not None) == (approximation == "exact-mc")
    one = pk.Design([g])
    res = pk.evaluate_fim(model, one, approximation, fim, draws=draws, seed=3, check=False)
    if approx.default_draws is None:  # deterministic: the population FIM is N times the subject FIM
        np.testing.assert_allclose(res.matrix, g.n * F, rtol=1e-12, atol=1e-12 * g.n * np.abs(F).max())
    if approx.batched:
        B = approx.schedules(model, pp, np.stack([t, t]), idx, g.regimen, fim == "full", draws=draws, seed=3)
        np.testing.assert_allclose(B[1], F, rtol=1e-12, atol=1e-12 * np.abs(F).max())


def test_unknown_and_unbatched_approximations_are_refused(warfarin):
    spec, model = warfarin
    with pytest.raises(pk.PkdesignError, match="expected one of"):
        get_approximation("laplace")
    with pytest.raises(pk.PkdesignError, match="batches the fo and foi and foce and focei and mc"):
        pk.schedule_fims(model, np.array([[1.0, 2.0]]), regimen=pk.Regimen.single(70.0), approximation="exact-mc")
    with pytest.raises(pk.PkdesignError, match="no reduced form"):
        pk.evaluate_fim(model, spec.default_design, "exact-mc", "reduced")


@pytest.mark.parametrize("approx", ["foce", "focei", "mc"])
@pytest.mark.parametrize("fim", ["full", "reduced"])
def test_foce_schedules_batched_equal_subject_fims(approx, fim):
    # the batched FOCE/FOCEI path (searches) gives exactly evaluate_fim's per-subject FIM with the same draws
    model = pk.compile_model(pk.load_model("warfarin"))
    g = model.spec.default_design.groups[0]
    T = np.array([g.times["conc"], g.times["conc"] * 0.9 + 0.1])
    seed = np.random.SeedSequence(3).spawn(1)[0]  # evaluate_fim's stream of the first group
    _, F = pk.schedule_fims(model, T, regimen=g.regimen, approximation=approx, fim=fim, draws=20, seed=seed)
    for b in range(2):
        one = pk.Design((pk.Group(1.0, {"conc": T[b]}, g.regimen, "x"),))
        np.testing.assert_array_equal(F[b], pk.evaluate_fim(model, one, approx, fim, draws=20, seed=3).matrix)


def test_exact_search_under_foce_uses_common_random_numbers():
    model = pk.compile_model(pk.load_model("warfarin"))
    d = model.spec.default_design
    grid = np.union1d(np.linspace(0, 120, 25), d.groups[0].times["conc"])  # the start lies on the grid
    r = pk.optimize_design(model, d, approximation="foce", draws=10, algorithm="exchange", starts=1, grid=grid)
    # the criterion the search reports is the FOCE ln det of its design with the same draws
    assert r.criterion_value == pytest.approx(pk.evaluate_fim(model, r.design, "foce", draws=10, seed=0).logdet,
                                              rel=1e-12)
    assert r.criterion_value >= r.info["start_value"] - 1e-9


def test_exact_search_under_mc():
    model = pk.compile_model(pk.load_model("warfarin"))
    d = model.spec.default_design
    res = pk.optimize_design(model, d, approximation="mc", draws=64, starts=1, seed=2, window=(0.1, 120))
    start = pk.optimize_design(model, d, approximation="mc", draws=64, starts=1, seed=2, window=(0.1, 120),
                               max_iter=1).info["start_value"]
    assert res.criterion_value > start and res.fim.approximation == "mc"


@pytest.mark.parametrize("name", ["warfarin", "effect_compartment", "warfarin_prop"])
@pytest.mark.parametrize("approx", ["foce", "focei"])
@pytest.mark.parametrize("fim", ["reduced", "full"])
def test_foce_schedules_batch_the_draws_bit_for_bit(name, approx, fim, monkeypatch):
    """FOCE/FOCEI ``schedules`` evaluate every draw at every schedule in one batch (chunks of draws): the same
    numbers, bit for bit, as one draw at a time (the earlier implementation, here as the reference), also when the
    chunks do not divide the draws."""
    from pkdesign.fim.api import _parameters
    from pkdesign.fim.approximations import FOCE, get_approximation
    from pkdesign.fim.draws import draw_eta
    from pkdesign.fim.linearized import linearized_fims
    from pkdesign.fim.predict import predict

    spec, model = compiled(name)
    g = spec.default_design.groups[0]
    t0, idx = g.observations(spec.output_names)
    pp = _parameters(model, None)
    ap = get_approximation(approx)
    B, draws = 5, 23
    times = np.sort(t0[None] * np.random.default_rng(4).uniform(0.5, 1.5, (B, t0.size)), axis=1)
    eta = draw_eta(pp.omega, draws, 7, ap.default_sampling)
    P0 = predict(model, pp, np.zeros(pp.n_eta), times, idx, g.regimen, 2, "")
    ref = np.zeros((B, pp.p, pp.p))
    for e in eta:
        Ps = predict(model, pp, e, times, idx, g.regimen, 2, "")
        ref += linearized_fims(pp, idx, P0, Ps, np.repeat(e[None], B, axis=0), interaction=ap.interaction,
                               resid_at_star=ap.interaction, full=fim == "full", times=times)
    ref /= draws
    for rows in (4096, 2 * B, 3 * B):  # all draws in one chunk; chunks of 2 (the last one a single draw); of 3
        monkeypatch.setattr(FOCE, "SCHEDULE_ROWS", rows)
        np.testing.assert_array_equal(ap.schedules(model, pp, times, idx, g.regimen, fim == "full", draws=draws,
                                                   seed=7), ref)


@pytest.mark.parametrize("fim", ["reduced", "full"])
def test_mc_schedules_batch_the_draws_bit_for_bit(fim, monkeypatch):
    """MC ``schedules`` predict many draws at every schedule of a chunk in one batch: the same FIMs, bit for bit,
    as one draw at a time (the earlier implementation, the reference here), whatever the batch size."""
    from pkdesign.fim.approximations import MC
    from pkdesign.fim.draws import draw_eta
    from pkdesign.fim.montecarlo import mc_fim
    from pkdesign.fim.predict import Predictions, predict

    spec, model = compiled("warfarin")
    g = spec.default_design.groups[0]
    t0, idx = g.observations(spec.output_names)
    pp = _parameters(model, None)
    B, draws = 5, 40
    times = np.sort(t0[None] * np.random.default_rng(5).uniform(0.5, 1.5, (B, t0.size)), axis=1)
    eta = draw_eta(pp.omega, draws, 3, MC.default_sampling)
    parts = [predict(model, pp, e, times, idx, g.regimen, 2, "", eta2=True) for e in eta]
    ref = np.stack([mc_fim(pp, idx, Predictions(**{k: np.stack([getattr(q, k)[b] for q in parts])
                                                     for k in ("f", "fth", "L", "Leta")}), full=fim == "full")
                    for b in range(B)])
    for rows in (8192, 3 * B, B):  # every draw at once; 3 at a time (the last chunk one draw); one at a time
        monkeypatch.setattr(MC, "SCHEDULE_ROWS", rows)
        got = MC().schedules(model, pp, times, idx, g.regimen, fim == "full", draws=draws, seed=3)
        np.testing.assert_array_equal(got, ref)
