"""The inlined exp and select of generated kernels (pkdesign/kernels/fastexp.py).

Reference: the C library's exp through numpy (correctly rounded to < 1 ulp); fexp is
documented to stay within 1 ulp of it over the whole double range, with the C library's
behaviour at the ends (overflow to inf, gradual underflow to 0, NaN propagated).
"""

import numba
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pkdesign.kernels.fastexp import fexp, select


@numba.njit(error_model="numpy", fastmath={"contract"})
def _fexp_array(x, out):
    for i in range(x.size):  # vectorised loop: the form generated kernels use
        out[i] = fexp(x[i])


@numba.njit(error_model="numpy")
def _fexp_scalar(x):
    return fexp(x)


def _ulps(got, ref):
    return np.abs(got - ref) / np.spacing(np.abs(ref))


def test_fexp_within_one_ulp_of_the_c_library():
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.uniform(-745.0, 709.7, 300_000), rng.uniform(-2.0, 2.0, 100_000),
                        rng.uniform(-1e-8, 1e-8, 10_000), np.arange(-700.0, 700.0, 0.5)])
    got = np.empty_like(x)
    _fexp_array(x, got)
    ref = np.exp(x)
    normal = ref >= np.finfo(float).tiny
    assert _ulps(got[normal], ref[normal]).max() <= 1.0
    # subnormal results: within one unit of the smallest subnormal
    sub = ~normal
    assert sub.sum() > 100
    assert np.abs(got[sub] - ref[sub]).max() <= 5e-324


def test_fexp_special_values():
    cases = [0.0, -0.0, 1.0, -1.0, 709.78, 709.79, 710.0, 1e300, np.inf, -745.13, -745.14, -746.0, -1e300,
             -np.inf, 708.5, -708.5, 1e-300, -1e-300]
    with np.errstate(over="ignore"):
        for x in cases:
            got, ref = _fexp_scalar(x), np.exp(x)
            if np.isinf(ref) or ref == 0.0:
                assert got == ref, x
            else:
                assert _ulps(np.array([got]), np.array([ref]))[0] <= 1.0, x
    assert np.isnan(_fexp_scalar(np.nan))
    assert _fexp_scalar(0.0) == 1.0


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-745.0, max_value=709.7, allow_nan=False))
def test_fexp_property(x):
    ref = np.exp(x)
    got = _fexp_scalar(x)
    if ref >= np.finfo(float).tiny:
        assert abs(got - ref) <= np.spacing(ref)
    else:
        assert abs(got - ref) <= 5e-324


@numba.njit
def _select(c, a, b):
    return select(c, a, b)


def test_select_is_a_conditional_without_evaluation_order_effects():
    assert _select(True, 1.5, np.inf) == 1.5
    assert _select(False, np.nan, -2.0) == -2.0
    assert np.isnan(_select(True, np.nan, 0.0))
