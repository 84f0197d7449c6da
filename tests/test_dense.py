"""Dense sampling: the structured (Woodbury) linearised FIM equals the dense one, and scales.

The dense reference is the numba kernel that forms V (n x n) and every dV explicitly; it is
itself validated against PopED's warfarin numbers (tests/test_fim.py).  The structured path must
give the same FIM to rounding (1e-10 relative) for every linearisation, FIM type, error model and
for several outputs, and handle 10^5-10^6 samples of one subject in bounded memory.
"""

import numpy as np
import pytest

import pkdesign as pk
from pkdesign.fim import api, approximations, linearized
from pkdesign.fim.api import _parameters
from pkdesign.fim.draws import draw_eta
from pkdesign.fim.predict import predict
from pkdesign.fim.structured import StructuredFIM

from .conftest import compiled


def _dense_and_structured(monkeypatch, model, design, approximation, fim, **kw):
    structured = pk.evaluate_fim(model, design, approximation, fim, **kw)
    with monkeypatch.context() as m:
        m.setattr(linearized, "STRUCTURED_ABOVE", 10**9)
        dense = pk.evaluate_fim(model, design, approximation, fim, **kw)
    return structured, dense


@pytest.mark.parametrize("name", ["warfarin", "warfarin_prop", "effect_compartment"])
@pytest.mark.parametrize("approximation", ["fo", "foi", "foce", "focei"])
@pytest.mark.parametrize("fim", ["full", "reduced"])
def test_structured_equals_dense(monkeypatch, name, approximation, fim):
    spec, model = compiled(name)
    times = {o: np.linspace(0.25, 30.0, 50 if k == 0 else 49) for k, o in enumerate(spec.output_names)}
    design = pk.Design([pk.Group(10, times, spec.default_design.groups[0].regimen)])
    kw = {"draws": 20} if approximation in ("foce", "focei") else {}
    s, d = _dense_and_structured(monkeypatch, model, design, approximation, fim, **kw)
    np.testing.assert_allclose(s.matrix, d.matrix, rtol=1e-10, atol=1e-10 * np.abs(d.matrix).max())


def test_structured_with_a_pre_dose_sample_and_proportional_error(monkeypatch, warfarin):
    # warfarin_prop at t = 0: prediction and derivatives 0, zero variance: no information, in both paths
    spec, model = compiled("warfarin_prop")
    design = pk.Design([pk.Group(1, {"conc": np.concatenate([[0.0], np.linspace(0.5, 120, 50)])},
                                 pk.Regimen.single(70.0))])
    s, d = _dense_and_structured(monkeypatch, model, design, "fo", "full")
    np.testing.assert_allclose(s.matrix, d.matrix, rtol=1e-10, atol=1e-10 * np.abs(d.matrix).max())
    assert "carry no information" in s.info["notes"][0]


def test_chunks_add_up_to_the_whole(warfarin):
    spec, model = warfarin
    pp = _parameters(model, None)
    t = np.linspace(0.5, 120.0, 300)
    idx = np.zeros(t.size, dtype=np.int64)
    P = predict(model, pp, np.zeros(pp.n_eta), t, idx, pk.Regimen.single(70.0), 2)
    whole = StructuredFIM(pp, full=True, interaction=True)
    whole.add(idx, P.fth[0], P.f[0], P.fth[0], P.L[0], P.Lth[0])
    parts = StructuredFIM(pp, full=True, interaction=True)
    for sl in (slice(0, 7), slice(7, 150), slice(150, 300)):
        parts.add(idx[sl], P.fth[0][sl], P.f[0][sl], P.fth[0][sl], P.L[0][sl], P.Lth[0][sl])
    np.testing.assert_allclose(parts.result(), whole.result(), rtol=1e-12)


def test_foce_rows_match_the_dense_kernel(warfarin):
    spec, model = warfarin
    pp = _parameters(model, None)
    t = np.linspace(0.5, 120.0, 70)
    idx = np.zeros(t.size, dtype=np.int64)
    eta = draw_eta(pp.omega, 4, 3)
    reg = pk.Regimen.single(70.0)
    Ps, P0 = predict(model, pp, eta, t, idx, reg, 2), predict(model, pp, np.zeros(3), t, idx, reg, 2)
    s = linearized.linearized_fims(pp, idx, P0, Ps, eta, interaction=True, resid_at_star=True, full=True)
    old = linearized.STRUCTURED_ABOVE
    try:
        linearized.STRUCTURED_ABOVE = 10**9
        d = linearized.linearized_fims(pp, idx, P0, Ps, eta, interaction=True, resid_at_star=True, full=True)
    finally:
        linearized.STRUCTURED_ABOVE = old
    np.testing.assert_allclose(s, d, rtol=1e-10, atol=1e-10 * np.abs(d).max())


def test_many_samples_in_chunks(monkeypatch, warfarin):
    # 200,000 samples of one subject through the chunked path (chunks of 50,000) equal one pass
    spec, model = warfarin
    times = np.linspace(0.5, 120.0, 200_000)
    design = pk.Design([pk.Group(1, {"conc": times}, pk.Regimen.single(70.0))])
    one = pk.evaluate_fim(model, design, "fo", "reduced")
    monkeypatch.setattr(approximations, "CHUNK", 50_000)
    monkeypatch.setattr(api, "CHUNK", 50_000)
    chunked = pk.evaluate_fim(model, design, "fo", "reduced")
    # the θ block is a difference of sums that grow with n while it saturates (the random effects
    # dominate): about n * 1e-14 relative is lost to cancellation (1.7e-9 at 10^5 samples, measured
    # against an 80-bit evaluation), so compare on the correlation scale
    d = np.sqrt(np.diag(one.matrix))
    np.testing.assert_allclose(chunked.matrix / np.outer(d, d), one.matrix / np.outer(d, d), atol=1e-8)
    np.testing.assert_allclose(chunked.se, one.se, rtol=1e-7)
    full = pk.evaluate_fim(model, design, "fo", "full")
    assert full.logdet > one.logdet and np.all(np.isfinite(full.rse_percent))


def test_zero_variance_with_sensitivity_is_named(warfarin):
    # a proportional-only error with a sample where f = 0 but df/dTLAG != 0 is impossible in the
    # library; build it directly: zero residual variance, non-zero derivative
    spec, model = warfarin
    pp = _parameters(model, {"sigma2_add": 0.0, "sigma2_prop": 0.0})
    acc = StructuredFIM(pp, full=False, interaction=False)
    n = 60
    with pytest.raises(pk.NonIdentifiableError, match="zero residual variance"):
        acc.add(np.zeros(n, dtype=np.int64), np.ones((n, 3)), np.ones(n), np.ones((n, 3)), np.ones((n, 3)),
                times=np.arange(n, dtype=float))
