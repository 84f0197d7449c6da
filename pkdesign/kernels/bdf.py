"""A variable-order backward differentiation (BDF/NDF) integrator for stiff ODE models, compiled once per installation.

The method of Shampine & Reichelt (The MATLAB ODE suite, SIAM J Sci Comput 18:1-22, 1997; MATLAB's ode15s
and scipy's ``BDF``): the numerical differentiation formulas of orders 1-5 (BDF with the κ corrections of
their Table 1 at orders 1-4), in Nordsieck-like form with a *difference array* D (D[0] = y, D[j] the j-th
backward difference scaled to the step h) on a quasi-constant step: a change of h or of the order rescales D
(:func:`~pkdesign.kernels.solver_common.change_d`), and the order and step are reconsidered after order + 1 steps
of equal size, from the error estimates of orders k - 1, k and k + 1.  Each step solves the implicit corrector by
simplified Newton iterations with the iteration matrix I - c J, c = h / α_k; J is kept across steps and evaluated
again only when Newton fails to converge.

Why a BDF beside the Rosenbrock method (:mod:`pkdesign.kernels.rosenbrock`): on stiff problems in
quasi-equilibrium (target binding, fast exchange) at tight tolerances a Rosenbrock method loses order (the
Prothero–Robinson effect) and takes several times more steps than a multistep code; on the full TMDD model at
rtol 1e-8 RODAS4 takes ~3,500 steps of 6 stages where this method takes ~600 steps of ~2 right-hand sides.

``rhs`` is the model's *augmented* right-hand side (states and forward sensitivities) and J its symbolic
Jacobian, so the sensitivities are integrated simultaneously by the same corrector (the augmented system is
block lower triangular: :func:`pkdesign.kernels.rosenbrock.stage_solve` solves with one n_x × n_x LU).  The error
test covers the sensitivities too (as LSODA on the augmented system).

The integrator keeps its history between calls of :func:`advance` (in ``work`` and ``ws``: samples do not restart
it; a step that would pass the call's end is shortened to land on it, and the step before the shortening is
restored at the next call).  It restarts at order 1 whenever the state, the input u or the time differ from
where it stopped (a dose, an infusion start or stop), so discontinuities are never stepped over.
"""

from __future__ import annotations

import math

import numpy as np

from .model_table import T_NACT, T_NP2, T_NX, T_RHS, call_rhs

# Bound by pkdesign.kernels.integrators (placeholders here so the module reads and lints as Python): the Rosenbrock
# module's stage_solve and jacobian_at, and helpers from pkdesign.kernels.solver_common
stage_solve = jacobian_at = invert_state_block = None
error_norm = change_d = extrapolate = None

MAX_ORDER = 5
NEWTON_MAXITER = 4
MIN_FACTOR = 0.2
MAX_FACTOR = 10.0
#: κ of the NDFs (Shampine & Reichelt 1997, Table 1), orders 0..5 (order 5: plain BDF)
KAPPA = np.array([0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0])
GAMMA = np.array([0.0, 1.0, 1.5, 1.8333333333333333, 2.083333333333333, 2.283333333333333])  # Σ_{j<=k} 1/j
ALPHA = (1.0 - KAPPA) * GAMMA
ERROR_CONST = KAPPA * GAMMA + 1.0 / np.arange(1, MAX_ORDER + 2)

#: rows of ``work`` (each of length ny) before the Jacobian: D (MAX_ORDER + 3), predictor, ψ-term, d, f, Δy, y_new
#: and the state last handed to the caller (ROW_OUT)
ROW_D, ROW_PRED, ROW_PSI, ROW_DSUM, ROW_F, ROW_DY, ROW_NEW, ROW_OUT = 0, 8, 9, 10, 11, 12, 13, 14
ROW_J = 15
# ws: the integrator's scalar state between calls (WS_T: the caller's time, WS_TINT: the history's, <= WS_T)
WS_VALID, WS_T, WS_U, WS_ORDER, WS_H, WS_EQUAL, WS_JAC_OK, WS_H_RESTORE, WS_TINT = 0, 1, 2, 3, 4, 5, 6, 7, 8
WS_SIZE = 10
#: an end closer than this fraction of the step is reached by the history's polynomial, not by a step
EXTRAPOLATE = 0.2


def work_rows(ny: int) -> int:
    """Rows of the ``work`` array (ny columns) :func:`advance` needs: its vectors, then J (ny rows)."""
    return ROW_J + ny


def restart(t, y, psi, u, rtol, atol, work, table):
    """Start at order 1 from (t, y): D[0] = y, D[1] = h f(t, y) with the first step h of Hairer, Nørsett &
    Wanner (1993, §II.4), for order 1 (not limited by the next sample: a step past it is shortened); returns h."""
    ny = y.shape[0]
    rhs = table[T_RHS]
    f0 = work[ROW_F]
    y1 = work[ROW_NEW]
    f1 = work[ROW_DY]
    call_rhs(rhs, t, y, psi, u, f0)
    d0 = error_norm(y, 1.0, y, y, rtol, atol)
    d1 = error_norm(f0, 1.0, y, y, rtol, atol)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    for i in range(ny):
        y1[i] = y[i] + h0 * f0[i]
    call_rhs(rhs, t + h0, y1, psi, u, f1)
    for i in range(ny):
        f1[i] -= f0[i]
    d2 = error_norm(f1, 1.0, y, y, rtol, atol) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = math.sqrt(0.01 / max(d1, d2))
    h = min(100.0 * h0, h1)
    D = work[ROW_D:ROW_D + MAX_ORDER + 3]
    for r in range(MAX_ORDER + 3):
        for i in range(ny):
            D[r, i] = 0.0
    for i in range(ny):
        D[0, i] = y[i]
        D[1, i] = h * f0[i]
    return h


def newton(t_new, c, psi, u, rtol, atol, newton_tol, work, Gi, tmp, table):
    """Simplified Newton iterations for the corrector y = y_pred + d, c f(t_new, y) - ψ_term - d = 0, with the
    inverse Gi of the state block I/c - J_x (``tmp``: work of its size); returns (converged, iterations); y in
    work[ROW_NEW], d in work[ROW_DSUM]."""
    ny = work.shape[1]
    rhs = table[T_RHS]
    J = work[ROW_J:ROW_J + ny]
    yp = work[ROW_PRED]
    pt = work[ROW_PSI]
    d = work[ROW_DSUM]
    f = work[ROW_F]
    dy = work[ROW_DY]
    y = work[ROW_NEW]
    for i in range(ny):
        d[i] = 0.0
        y[i] = yp[i]
    dy_norm_old = -1.0
    for it in range(NEWTON_MAXITER):
        call_rhs(rhs, t_new, y, psi, u, f)
        finite = True
        for i in range(ny):
            if not math.isfinite(f[i]):
                finite = False
        if not finite:
            return False, it + 1
        for i in range(ny):
            dy[i] = f[i] - (pt[i] + d[i]) / c
        stage_solve(J, Gi, dy, tmp, table)
        dy_norm = error_norm(dy, 1.0, yp, yp, rtol, atol)
        rate = -1.0
        if dy_norm_old > 0.0:
            rate = dy_norm / dy_norm_old
            if rate >= 1.0 or rate ** (NEWTON_MAXITER - it) / (1.0 - rate) * dy_norm > newton_tol:
                return False, it + 1
        for i in range(ny):
            y[i] += dy[i]
            d[i] += dy[i]
        if dy_norm == 0.0 or (rate > 0.0 and rate / (1.0 - rate) * dy_norm < newton_tol):
            return True, it + 1
        dy_norm_old = dy_norm
    return False, NEWTON_MAXITER


def advance(t, t_end, y, h, psi, u, rtol, atol, max_steps, work, ws, steps, table):
    """Integrate y from t to t_end in place; returns (t reached, h, status, steps); status 1 = step too small,
    2 = too many steps, 3 = non-finite state.  ``work`` (:func:`work_rows` × ny) and ``ws`` (``WS_SIZE``) carry
    the history between calls; ``h`` is informative only (the integrator keeps its own).

    An end closer than ``EXTRAPOLATE``·h to the history's last point is reached by its interpolating polynomial
    (accurate there to a fraction of the step's error tolerance) without a step: a sample 1e-12 after another
    would otherwise shrink the step (and the difference array) by twelve orders of magnitude."""
    ny = y.shape[0]
    if t_end <= t:
        return t, h, 0, steps
    nx = table[T_NX]
    D = work[ROW_D:ROW_D + MAX_ORDER + 3]
    J = work[ROW_J:ROW_J + ny]
    y_out = work[ROW_OUT]
    G = np.empty((nx, nx))
    Gi = np.empty((nx, nx))
    tmp = np.empty(nx * max(1, table[T_NACT], table[T_NP2]))  # stage_solve's work (and the LU's)
    piv = np.empty(nx, dtype=np.int64)
    fresh = ws[WS_VALID] == 0.0 or ws[WS_T] != t or ws[WS_U] != u
    if not fresh:
        for i in range(ny):
            if y_out[i] != y[i]:  # changed by the caller (a dose): a discontinuity
                fresh = True
                break
    if not fresh:
        t = ws[WS_TINT]  # the history's time (before the caller's when the last end was extrapolated)
    if fresh:
        h_abs = restart(t, y, psi, u, rtol, atol, work, table)
        order = 1
        n_equal = 0
        jacobian_at(t, y, psi, u, J, table)
        jac_ok = True
    else:
        order = int(ws[WS_ORDER])
        h_abs = ws[WS_H]
        n_equal = int(ws[WS_EQUAL])
        jac_ok = ws[WS_JAC_OK] != 0.0
        if ws[WS_H_RESTORE] > h_abs:  # the last step was shortened to land on a sample: take the step back up
            change_d(D, order, ws[WS_H_RESTORE] / h_abs)
            h_abs = ws[WS_H_RESTORE]
            n_equal = 0
    h_restore = 0.0
    newton_tol = max(10.0 * 2.220446049250313e-16 / rtol, min(0.03, math.sqrt(rtol)))
    c_lu = -1.0
    yp = work[ROW_PRED]
    pt = work[ROW_PSI]
    d = work[ROW_DSUM]
    y_new = work[ROW_NEW]
    status = 0
    while t < t_end:
        if t_end - t <= EXTRAPOLATE * h_abs:
            break
        if steps >= max_steps:
            status = 2
            break
        # one step, retried with smaller h until the corrector converges and the error test passes
        accepted = False
        n_iter = 1
        err = 0.0
        t_new = t
        while not accepted:
            if h_abs <= 1e-14 * max(1.0, abs(t)):
                status = 1
                break
            t_new = t + h_abs
            if t_new >= t_end:
                factor = (t_end - t) / h_abs
                if factor < 1.0:  # shorten to land on t_end; the longer step is restored at the next call
                    h_restore = max(h_restore, h_abs)
                    change_d(D, order, factor)
                    n_equal = 0
                h_abs = t_end - t
                t_new = t_end
            for i in range(ny):
                s = 0.0
                for r in range(order + 1):
                    s += D[r, i]
                yp[i] = s
                s = 0.0
                for r in range(1, order + 1):
                    s += GAMMA[r] * D[r, i]
                pt[i] = s / ALPHA[order]
            c = h_abs / ALPHA[order]
            converged = False
            while True:
                if c != c_lu:
                    if not invert_state_block(J, c, G, piv, Gi, tmp):
                        break
                    c_lu = c
                converged, n_iter = newton(t_new, c, psi, u, rtol, atol, newton_tol, work, Gi, tmp, table)
                if converged or jac_ok:
                    break
                jacobian_at(t_new, yp, psi, u, J, table)
                jac_ok = True
                c_lu = -1.0
            steps += 1
            if not converged:
                change_d(D, order, 0.5)
                h_abs *= 0.5
                n_equal = 0
                jac_ok = False
                h_restore = 0.0
                continue
            safety = 0.9 * (2 * NEWTON_MAXITER + 1) / (2 * NEWTON_MAXITER + n_iter)
            err = error_norm(d, ERROR_CONST[order], y_new, y_new, rtol, atol)
            if err > 1.0:
                factor = max(MIN_FACTOR, safety * err ** (-1.0 / (order + 1)))
                change_d(D, order, factor)
                h_abs *= factor
                n_equal = 0
                h_restore = 0.0
            else:
                accepted = True
        if status != 0:
            break
        # accept: update the differences (D[order+2] = d - D[order+1], D[order+1] = d, D[i] += D[i+1])
        jac_ok = False
        t = t_new
        n_equal += 1
        for i in range(ny):
            D[order + 2, i] = d[i] - D[order + 1, i]
            D[order + 1, i] = d[i]
        for r in range(order, -1, -1):
            for i in range(ny):
                D[r, i] += D[r + 1, i]
        for i in range(ny):
            if not math.isfinite(D[0, i]):
                status = 3
        if status != 0:
            break
        if n_equal < order + 1:
            continue
        # reconsider the order (k - 1, k, k + 1) and the step
        safety = 0.9 * (2 * NEWTON_MAXITER + 1) / (2 * NEWTON_MAXITER + n_iter)
        e_m = math.inf
        e_p = math.inf
        if order > 1:  # weighted by the new state, as the error test (not by y: the caller's, from the call's start)
            e_m = error_norm(D[order], ERROR_CONST[order - 1], y_new, y_new, rtol, atol)
        if order < MAX_ORDER:
            e_p = error_norm(D[order + 2], ERROR_CONST[order + 1], y_new, y_new, rtol, atol)
        f_m = math.inf if e_m == 0.0 else e_m ** (-1.0 / order)
        f_0 = math.inf if err == 0.0 else err ** (-1.0 / (order + 1))
        f_p = math.inf if e_p == 0.0 else e_p ** (-1.0 / (order + 2))
        best = f_0
        delta = 0
        if f_m > best:
            best = f_m
            delta = -1
        if f_p > best:
            best = f_p
            delta = 1
        order += delta
        factor = min(MAX_FACTOR, safety * best)
        change_d(D, order, factor)
        h_abs *= factor
        n_equal = 0
    t_reached = t
    if status == 0:  # the state at t_end: the last point of the history, or its polynomial a little beyond
        t_reached = t_end
        if t < t_end:
            extrapolate(D, order, (t_end - t) / h_abs, y)
        else:
            for i in range(ny):
                y[i] = D[0, i]
    else:
        for i in range(ny):
            y[i] = D[0, i]
    for i in range(ny):
        y_out[i] = y[i]
    ws[WS_VALID] = 1.0 if status == 0 else 0.0
    ws[WS_T] = t_reached
    ws[WS_TINT] = t
    ws[WS_U] = u
    ws[WS_ORDER] = order
    ws[WS_H] = h_abs
    ws[WS_EQUAL] = n_equal
    ws[WS_JAC_OK] = 1.0 if jac_ok else 0.0
    ws[WS_H_RESTORE] = h_restore
    return t_reached, h_abs, status, steps
