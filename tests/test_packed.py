"""Packed upper-triangle storage of candidates' information (pkdesign.search.packed): the same numbers as full
matrices, for the linear maps the weight algorithms use and for a whole approximate design."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pkdesign as pk
from pkdesign.equivalence import information, sensitivity
from pkdesign.criteria import make_criterion
from pkdesign.search.packed import PackedFIMs

from .conftest import compiled


def _random_mus(rng, C, K, p):
    A = rng.standard_normal((C, K, p, p))
    return A @ np.swapaxes(A, -1, -2)


@settings(max_examples=30, deadline=None)
@given(C=st.integers(1, 40), K=st.integers(1, 4), p=st.integers(1, 7), seed=st.integers(0, 2**31))
def test_packed_linear_maps_equal_the_full_ones(C, K, p, seed):
    rng = np.random.default_rng(seed)
    mus = _random_mus(rng, C, K, p)
    packed = PackedFIMs.pack(mus)
    assert packed.shape == mus.shape and len(packed) == C
    np.testing.assert_array_equal(packed.full(), mus)
    w = rng.random(C)
    np.testing.assert_allclose(packed.combine(w), information(w, mus), rtol=1e-13, atol=1e-12)
    G = rng.standard_normal((K, p, p))  # not symmetric: tr(G mu) still uses G_jk + G_kj off the diagonal
    full_d = mus.reshape(C, -1) @ G.ravel()
    np.testing.assert_allclose(packed.dot(G), full_d, rtol=1e-12, atol=1e-10 * np.abs(full_d).max())
    sub = np.flatnonzero(rng.random(C) < 0.5)
    np.testing.assert_array_equal(packed[sub].full(), mus[sub])
    np.testing.assert_array_equal(PackedFIMs.concat([packed, mus[:2]]).full(), np.concatenate([mus, mus[:2]]))


def test_packed_rejects_indexing_inside_a_matrix():
    packed = PackedFIMs.pack(_random_mus(np.random.default_rng(0), 3, 1, 2))
    with pytest.raises(IndexError):
        packed[0, 0]


@pytest.mark.parametrize("criterion", ["D", "A"])
def test_sensitivity_with_packed_equals_full(criterion):
    spec, model = compiled("warfarin")
    space = pk.SamplingSpace(2, (0, 120), grid=np.array([0.5, 2, 6, 24, 72, 120.0]), regimen=pk.Regimen.single(70.0))
    names, F = pk.schedule_fims(model, pk.candidate_schedules(space), regimen=space.regimen, fim="reduced")
    mus = F[:, None]
    crit = make_criterion(criterion, names)
    w = np.full(len(mus), 1 / len(mus))
    M = information(w, mus)
    d_full, b_full = sensitivity(crit, M, mus)
    d_packed, b_packed = sensitivity(crit, M, PackedFIMs.pack(mus))
    np.testing.assert_allclose(d_packed, d_full, rtol=1e-12)
    assert b_packed == b_full
