"""Property-based invariants of the FIM (hypothesis): symmetric, positive semi-definite, linear in N,
reduced equals full on the variance block, groups add up."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import pkdesign as pk

from .conftest import compiled

times_st = st.lists(st.floats(0.05, 150.0, allow_nan=False), min_size=2, max_size=9, unique=True).map(sorted)
group_st = st.tuples(st.integers(1, 60), times_st, st.floats(10.0, 200.0))


def _design(groups):
    return pk.Design(tuple(pk.Group(n, {"conc": t}, pk.Regimen.single(dose), f"g{i}")
                           for i, (n, t, dose) in enumerate(groups)))


@settings(max_examples=40, deadline=None)
@given(st.lists(group_st, min_size=1, max_size=3), st.sampled_from(["fo", "foi"]), st.floats(0.5, 4.0))
def test_fim_invariants(groups, approx, factor):
    _, model = compiled("warfarin")
    d = _design(groups)
    full = pk.evaluate_fim(model, d, approx, "full", check=False).matrix
    red = pk.evaluate_fim(model, d, approx, "reduced", check=False).matrix
    for F in (full, red):
        assert np.array_equal(F, F.T)
        w = np.linalg.eigvalsh(F)
        assert w.min() >= -1e-9 * max(w.max(), 1.0)
    np.testing.assert_allclose(red[3:, 3:], full[3:, 3:], rtol=1e-10, atol=1e-12 * np.abs(full).max())
    np.testing.assert_allclose(red[:3, 3:], 0.0)
    scaled = _design([(n * factor, t, dose) for n, t, dose in groups])
    np.testing.assert_allclose(pk.evaluate_fim(model, scaled, approx, "full", check=False).matrix, factor * full,
                               rtol=1e-10, atol=1e-12 * np.abs(full).max())
    parts = sum(pk.evaluate_fim(model, _design([g]), approx, "full", check=False).matrix for g in groups)
    np.testing.assert_allclose(parts, full, rtol=1e-10, atol=1e-12 * np.abs(full).max())
