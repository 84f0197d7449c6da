"""The compiled Rosenbrock solver for stiff ODE models (pkdesign.kernels.rosenbrock).

- its coefficients (RODAS4, Hairer & Wanner 1996) by the order of convergence, 4, of fixed steps on a nonlinear
  autonomous (van der Pol) and a non-autonomous problem, against DOP853 at 1e-13;
- L-stability on the Prothero-Robinson problem (λ = -1e6, h = 0.1);
- the stiff exchange system against the matrix exponential (value 1e-6, sensitivity 1e-4);
- the full TMDD model (Mager & Jusko 2001) against scipy's LSODA path (FIM 1e-6), the non-stiff warfarin ODE
  against Dormand-Prince (FIM 1e-6).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy.integrate import solve_ivp

import pkdesign as pk
from pkdesign.kernels import model_table
from pkdesign.kernels import rosenbrock as R
from pkdesign.kernels import solver_common as common

from .test_ode import STIFF, check_stiff_exchange, check_tmdd_against_lsoda


def _fixed_steps(f, jf, ft, y0, T, n):
    """n RODAS4 steps of T/n in plain Python (the module's functions, with the right-hand side bound here)."""
    saved = R.call_rhs
    R.call_rhs = lambda address, t, y, psi, u, out: out.__setitem__(slice(None), f(t, y))
    table = np.zeros(model_table.T_INDEX, dtype=np.int64)
    table[model_table.T_NX] = len(y0)  # order 0, no sensitivities: the state block is the whole iteration matrix
    try:
        y = np.array(y0, dtype=float)
        ny, h, t = y.size, T / n, 0.0
        f0, ftv, fs, yt, yn = (np.empty(ny) for _ in range(5))
        k = np.empty((6, ny))
        piv = np.empty(ny, dtype=np.int64)
        Gi, tmp = np.empty((ny, ny)), np.empty(ny)
        for _ in range(n):
            J = jf(t, y)
            G = np.eye(ny) / (R.GAMMA * h) - J
            assert common.lu_factor(G, piv)
            common.lu_inverse(G, piv, Gi, tmp)
            f0[:] = f(t, y)
            ftv[:] = ft(t, y)
            R.step(t, h, y, None, 0.0, J, Gi, tmp, f0, k, ftv, fs, yt, yn, table)
            y[:] = yn
            t += h
        return y
    finally:
        R.call_rhs = saved


def _orders(f, jf, ft, y0, T=2.0):
    ref = solve_ivp(f, (0, T), y0, rtol=1e-13, atol=1e-13, method="DOP853").y[:, -1]
    errs = [np.abs(_fixed_steps(f, jf, ft, y0, T, n) - ref).max() for n in (10, 20, 40, 80)]
    return [math.log2(a / b) for a, b in zip(errs, errs[1:])]


def test_order_four_autonomous_and_not():
    vdp = (lambda t, y: np.array([y[1], (1 - y[0] ** 2) * y[1] - y[0]]),
           lambda t, y: np.array([[0.0, 1.0], [-2 * y[0] * y[1] - 1, 1 - y[0] ** 2]]),
           lambda t, y: np.zeros(2))
    assert min(_orders(*vdp, [2.0, 0.0])[1:]) > 3.8
    nonaut = (lambda t, y: -y + 0.3 * np.cos(t) * (1 + y ** 2),
              lambda t, y: np.array([[-1 + 0.6 * np.cos(t) * y[0]]]),
              lambda t, y: -0.3 * np.sin(t) * (1 + y ** 2))
    assert min(_orders(*nonaut, [1.0])[1:]) > 3.8


def test_l_stable_on_prothero_robinson():
    lam = -1e6
    y = _fixed_steps(lambda t, y: lam * (y - np.cos(t)) - np.sin(t), lambda t, y: np.array([[lam]]),
                     lambda t, y: lam * np.sin(t) - np.cos(t), [1.0], 1.0, 10)  # exact solution cos t
    assert abs(y[0] - math.cos(1.0)) < 1e-6


def test_stiff_exchange_against_the_matrix_exponential():
    check_stiff_exchange("rosenbrock")


def test_tmdd_equals_lsoda_and_warfarin_equals_dopri5():
    check_tmdd_against_lsoda("rosenbrock")

    w = pk.load_model("warfarin_ode")
    stiff = replace(w, ode=replace(w.ode, solver="rosenbrock"), name="warfarin_ode_rosenbrock")
    a = pk.evaluate_fim(pk.compile_model(w), w.default_design, "fo", fim="full").matrix
    b = pk.evaluate_fim(pk.compile_model(stiff), w.default_design, "fo", fim="full").matrix
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-9 * np.abs(a).max())
    assert pk.compile_model(replace(w, ode=replace(w.ode, solver="auto"), name="warfarin_ode_auto")).choose_solver(
        w.theta, np.array([0.5, 120.0]), [70.0]) == "dopri5"


def test_tiny_intervals_keep_the_step():
    """A sample 1e-17 after the dose: the negligible remainder is an Euler step that keeps the step size (a
    design search put a sample there and the next interval failed with 'step size below 1e-14')."""
    spec = pk.parse_model_text(STIFF.replace("SOLVER", "rosenbrock"), "stiff.toml")
    res = pk.compile_model(spec).evaluate(spec.theta, np.array([1e-17, 2e-17, 0.5, 3.0]), order=1)
    assert np.all(np.isfinite(res["f"])) and np.all(np.isfinite(res["d1"]))
