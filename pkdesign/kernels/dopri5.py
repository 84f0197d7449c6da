"""Dormand–Prince 5(4) integrator of generated ODE models, with dose events and parameter sensitivities.

The functions below are ordinary Python (read, lint and test them here); :mod:`pkdesign.kernels.integrators`
compiles them once per installation.  The model is a run-time argument: its *table*
(:mod:`pkdesign.kernels.model_table`: sizes, the addresses of its compiled generated functions, the indices of the
integrated parameters and pairs), so a new model compiles only its own generated functions.

The generated ODE module (see :mod:`pkdesign.model.ode_codegen`) provides, per derivative order K (0, 1, 2),
``rhsK(t, y, psi, u, dy)`` (the augmented right-hand side: states, then first-order sensitivities S_i_k
at ``nx + i*P + k``, then second-order ones W_i_kl at ``nx + nx*P + i*NP2 + q`` for the pair (k, l) =
(``PAIR_K[q]``, ``PAIR_L[q]``), the pairs a FIM needs, see ``ModelSpec.second_order_pairs``), ``jacK`` (orders
0 and 1 for LSODA; every order, and only the entries the implicit solvers read, for those), ``initK(psi, y)``,
``doseK(psi, fd)`` (F, LAG, their first and, for K = 2, second ψ-derivatives), ``outK(o, t, y, psi, u,
vals)`` (value, ∂/∂t, first and second ψ-derivatives of output o); once: ``rhst0`` (∂g/∂t).

Status codes written by :func:`solve`: 0 ok, 1 step size below 1e-14, 2 more than ``max_steps`` steps,
3 non-finite state, 5 non-finite initial values.
"""

from __future__ import annotations

import math

import numpy as np

from .bdf import WS_SIZE  # the integrators' scalar state between advance calls (only BDF keeps one)
from .model_table import (T_CMT, T_DOSE, T_INDEX, T_INIT, T_NACT, T_NDOSE, T_NOUT, T_NP2, T_NX, T_NY, T_NY1, T_ORDER,
                          T_OUT, T_RHS, T_RHS0, T_RHS1, T_RHST0, call_init, call_out, call_rhs)

# Names bound by pkdesign.kernels.integrators (placeholders here, so that the module reads and lints as Python;
# numba sees the bound values): the integrator solve() runs, its work rows (WORK_BASE + WORK_PER_NY·ny) and the
# helpers compiled once per installation (pkdesign.kernels.solver_common)
WORK_BASE = WORK_PER_NY = 0
step_control = error_norm = sort_index = None


#: Second-order sensitivity jump at a dose whose time s = t_dose + LAG(ψ) depends on the parameters.
#: With y⁻ the state before the event, a the bolus amount (0 for an infusion start/stop, where the
#: input u changes instead), g± the right-hand side before/after, J its state Jacobian, G_k = ∂g/∂ψ_k,
#: s_k = ∂LAG/∂ψ_k, z_k = S⁻_k + g⁻ s_k + a F_k e_c (the sensitivity of the post-event initial state):
#:   S⁺_k = z_k − g⁺ s_k
#:   W⁺_kl = W⁻_kl + a F_kl e_c + (J⁻S⁻_k + G⁻_k) s_l + (J⁻S⁻_l + G⁻_l) s_k + (J⁻g⁻ + ∂g⁻/∂t) s_k s_l + g⁻ s_kl
#:           − (J⁺z_k + G⁺_k) s_l − (J⁺z_l + G⁺_l) s_k + (J⁺g⁺ − ∂g⁺/∂t) s_k s_l − g⁺ s_kl
#: (the limit t ↓ s of ∂²y(t)/∂ψ_k∂ψ_l, from y(t) = z + g⁺ (t − s) + ½ ġ⁺ (t − s)²).  J·v and J·S + G
#: come from the order-1 augmented right-hand side ``rhs1`` (its state is a prefix of the order-2 one).
def lag_side2(t, x, psi, u, g, w1, o1, G, Jg, gt, table):
    """At state x (before or after an event): G = ∂g/∂ψ (via rhs1 with zero sensitivities), Jg = J·g
    and gt = ∂g/∂t, for a right-hand side value g already computed."""
    rhs1 = table[T_RHS1]
    nx = table[T_NX]
    P = table[T_NACT]
    ny1 = nx + nx * P
    for j in range(nx):
        w1[j] = x[j]
    for j in range(nx, ny1):
        w1[j] = 0.0
    call_rhs(rhs1, t, w1, psi, u, o1)
    for j in range(ny1):
        G[j] = o1[j]
    for i in range(nx):
        w1[nx + i * P] = g[i]
    call_rhs(rhs1, t, w1, psi, u, o1)
    for i in range(nx):
        Jg[i] = o1[nx + i * P] - G[nx + i * P]
    call_rhs(table[T_RHST0], t, x, psi, u, gt)


def lag_event2(t, y, psi, u_m, u_p, amt, fd, w1, o1, lg, table):
    rhs1 = table[T_RHS1]
    nx = table[T_NX]
    P = table[T_NACT]
    cmt = table[T_CMT]
    ny1 = nx + nx * P
    base_w = nx + nx * P
    np2 = table[T_NP2]
    pairs = T_INDEX + P
    F = fd[0]
    gm, gp, ASm, Gm, Z, JZp, Gp = lg[0], lg[1], lg[2], lg[3], lg[4], lg[5], lg[6]
    Jgm, Jgp, gtm, gtp = np.empty(nx), np.empty(nx), np.empty(nx), np.empty(nx)
    # before the event: g⁻ and J⁻S⁻ + G⁻ from the augmented right-hand side at the actual state
    call_rhs(rhs1, t, y[:ny1], psi, u_m, o1)
    for j in range(ny1):
        ASm[j] = o1[j]
    for i in range(nx):
        gm[i] = o1[i]
    lag_side2(t, y[:nx], psi, u_m, gm, w1, o1, Gm, Jgm, gtm, table)
    # the jump of the state, and z_k
    if cmt >= 0:
        y[cmt] += F * amt
    for i in range(nx):
        for k in range(P):
            Z[nx + i * P + k] = y[nx + i * P + k] + gm[i] * fd[2 + P + k]
    if cmt >= 0:
        for k in range(P):
            Z[nx + cmt * P + k] += amt * fd[2 + k]
    # after the event: g⁺, G⁺, J⁺g⁺, ∂g⁺/∂t, and J⁺z + G⁺
    call_rhs(table[T_RHS0], t, y[:nx], psi, u_p, gp)
    lag_side2(t, y[:nx], psi, u_p, gp, w1, o1, Gp, Jgp, gtp, table)
    for j in range(nx):
        w1[j] = y[j]
    for j in range(nx, ny1):
        w1[j] = Z[j]
    call_rhs(rhs1, t, w1, psi, u_p, o1)
    for j in range(ny1):
        JZp[j] = o1[j]
    # second-order jump (W holds the pairs (PAIR_K[q], PAIR_L[q]), k <= l)
    for i in range(nx):
        for q in range(np2):
            k = table[pairs + q]
            l = table[pairs + np2 + q]
            sk = fd[2 + P + k]
            sl = fd[2 + P + l]
            skl = fd[2 + 2 * P + np2 + q]
            a = nx + i * P
            v = (ASm[a + k] * sl + ASm[a + l] * sk + (Jgm[i] + gtm[i]) * sk * sl + gm[i] * skl
                 - JZp[a + k] * sl - JZp[a + l] * sk + (Jgp[i] - gtp[i]) * sk * sl - gp[i] * skl)
            if i == cmt:
                v += amt * fd[2 + 2 * P + q]
            y[base_w + i * np2 + q] += v
    # first-order jump
    for i in range(nx):
        for k in range(P):
            y[nx + i * P + k] = Z[nx + i * P + k] - gp[i] * fd[2 + P + k]


#: rows of the per-vector ``work`` array (ny columns each) of :func:`advance`: the stages k1..k7, yt, yn
WORK_ROWS = 9


def work_rows(ny: int) -> int:
    """Rows of the ``work`` array (ny columns) :func:`advance` needs."""
    return WORK_ROWS


def advance(t, t_end, y, h, psi, u, rtol, atol, max_steps, work, ws, steps, table):
    """Integrate y from t to t_end in place; returns (t reached, h, status, steps); status 1 = step
    too small, 2 = too many steps, 3 = non-finite state.  ``work`` (:func:`work_rows` × ny) holds the stages;
    ``ws`` (the integrators' scalar state between calls) is not used by this one-step method; ``table``: the
    model (:mod:`~pkdesign.kernels.model_table`), whose right-hand side of its order is integrated."""
    ny = y.shape[0]
    if t_end <= t:
        return t, h, 0, steps
    rhs = table[T_RHS]
    k1, k2, k3, k4, k5, k6, k7, yt, yn = work[0], work[1], work[2], work[3], work[4], work[5], work[6], work[7], work[8]
    call_rhs(rhs, t, y, psi, u, k1)
    while t < t_end:
        if steps >= max_steps:
            return t, h, 2, steps
        if t_end - t <= 1e-13 * max(1.0, abs(t)):  # a negligible remainder: one Euler step
            for i in range(ny):
                y[i] += (t_end - t) * k1[i]
            return t_end, h, 0, steps
        h_full = h
        clipped = h > t_end - t
        if clipped:
            h = t_end - t
        if h <= 1e-14 * max(1.0, abs(t)):
            return t, h, 1, steps
        for i in range(ny):
            yt[i] = y[i] + h * (0.2 * k1[i])
        call_rhs(rhs, t + 0.2 * h, yt, psi, u, k2)
        for i in range(ny):
            yt[i] = y[i] + h * (3.0 / 40.0 * k1[i] + 9.0 / 40.0 * k2[i])
        call_rhs(rhs, t + 0.3 * h, yt, psi, u, k3)
        for i in range(ny):
            yt[i] = y[i] + h * (44.0 / 45.0 * k1[i] - 56.0 / 15.0 * k2[i] + 32.0 / 9.0 * k3[i])
        call_rhs(rhs, t + 0.8 * h, yt, psi, u, k4)
        for i in range(ny):
            yt[i] = y[i] + h * (19372.0 / 6561.0 * k1[i] - 25360.0 / 2187.0 * k2[i] + 64448.0 / 6561.0 * k3[i]
                                - 212.0 / 729.0 * k4[i])
        call_rhs(rhs, t + 8.0 / 9.0 * h, yt, psi, u, k5)
        for i in range(ny):
            yt[i] = y[i] + h * (9017.0 / 3168.0 * k1[i] - 355.0 / 33.0 * k2[i] + 46732.0 / 5247.0 * k3[i]
                                + 49.0 / 176.0 * k4[i] - 5103.0 / 18656.0 * k5[i])
        call_rhs(rhs, t + h, yt, psi, u, k6)
        for i in range(ny):
            yn[i] = y[i] + h * (35.0 / 384.0 * k1[i] + 500.0 / 1113.0 * k3[i] + 125.0 / 192.0 * k4[i]
                                - 2187.0 / 6784.0 * k5[i] + 11.0 / 84.0 * k6[i])
        call_rhs(rhs, t + h, yn, psi, u, k7)
        for i in range(ny):  # the error estimate (5th minus 4th order), in yt
            yt[i] = (71.0 / 57600.0 * k1[i] - 71.0 / 16695.0 * k3[i] + 71.0 / 1920.0 * k4[i]
                     - 17253.0 / 339200.0 * k5[i] + 22.0 / 525.0 * k6[i] - 1.0 / 40.0 * k7[i])
        steps += 1
        accepted, h_next = step_control(error_norm(yt, h, y, yn, rtol, atol), h, h_full, clipped, 0.2)
        if accepted:
            t = t + h
            for i in range(ny):
                y[i] = yn[i]
                k1[i] = k7[i]
                if not math.isfinite(y[i]):
                    return t, h, 3, steps
        h = h_next
    return t_end, h, 0, steps


def solve(psi_all, t_obs, out_idx, dose_t, dose_amt, dose_dur, rtol, atol, max_steps, lag_sens,
          f, d1, dt, d2, status, fail, table):
    """Integrate the model of ``table`` (:mod:`~pkdesign.kernels.model_table`) for each parameter vector
    ``psi_all[v]`` (n_vec, n_psi) through the doses (times ``dose_t``, amounts, durations: 0 for a bolus) and write
    its outputs ``out_idx[j]`` at ``t_obs[j]`` into f (n_vec, n_obs), d1 (n_vec, n_obs, n_psi), dt and d2 (n_vec,
    n_obs, n_psi, n_psi; at order 2), zeroed by the caller; ``status[v]`` as in the module's docstring, and on
    failure ``fail[v]`` = (t, state).  The integrator is the global ``advance``."""
    n_vec = psi_all.shape[0]
    n_obs = t_obs.shape[0]
    n_dose = dose_t.shape[0]
    order = table[T_ORDER]
    ny = table[T_NY]
    nx = table[T_NX]
    P = table[T_NACT]
    np2 = table[T_NP2]
    cmt = table[T_CMT]
    pairs = T_INDEX + P
    init = table[T_INIT]
    dose = table[T_DOSE]
    out = table[T_OUT]
    rhs0 = table[T_RHS0]
    order_obs = sort_index(t_obs, n_obs)
    for v in range(n_vec):
        y = np.empty(ny)
        work = np.empty((WORK_BASE + WORK_PER_NY * ny, ny))  # the integrator's vectors (and its history, for BDF)
        ws = np.zeros(WS_SIZE)
        gm = np.empty(nx)
        gp = np.empty(nx)
        fd = np.empty(table[T_NDOSE])
        vals = np.empty(table[T_NOUT])
        # lag_event2 work (order 2 with a parameter-dependent lag only): an order-1 augmented state, its
        # derivative and 7 more of that size
        n_lag = table[T_NY1] if order >= 2 and lag_sens else 0
        w1 = np.empty(n_lag)
        o1 = np.empty(n_lag)
        lg = np.empty((7, n_lag))
        ev_t = np.empty(2 * n_dose)
        ev_k = np.empty(2 * n_dose, dtype=np.int64)
        ev_a = np.empty(2 * n_dose)
        psi = psi_all[v]
        status[v] = 0
        call_init(dose, psi, fd)
        F = fd[0]
        LAG = fd[1]
        ne = np.int64(0)  # (not a literal 0: see steps below)
        for j in range(n_dose):
            tj = dose_t[j] + LAG
            if dose_dur[j] > 0.0:
                ev_t[ne] = tj
                ev_k[ne] = 1
                ev_a[ne] = dose_amt[j] / dose_dur[j]
                ne += 1
                ev_t[ne] = tj + dose_dur[j]
                ev_k[ne] = 2
                ev_a[ne] = dose_amt[j] / dose_dur[j]
                ne += 1
            else:
                ev_t[ne] = tj
                ev_k[ne] = 0
                ev_a[ne] = dose_amt[j]
                ne += 1
        order_ev = sort_index(ev_t, ne)
        call_init(init, psi, y)
        u = 0.0
        t = 0.0
        h = 1e-3
        steps = np.int64(0)  # (a literal 0 made numba compile the integrator twice: for 0 and for int64)
        ie = 0
        failed = False
        for i in range(ny):
            if not math.isfinite(y[i]):
                failed = True
                status[v] = 5
        for jo in range(n_obs if not failed else 0):
            io = order_obs[jo]
            tt = t_obs[io]
            while ie < ne and ev_t[order_ev[ie]] < tt:
                e = order_ev[ie]
                te = ev_t[e]
                t, h, st, steps = advance(t, te, y, h, psi, u, rtol, atol, max_steps, work, ws, steps, table)
                if st != 0:
                    failed = True
                    status[v] = st
                    break
                if order >= 2 and lag_sens:  # second-order jumps of a dose at a parameter-dependent time
                    du = 0.0 if ev_k[e] == 0 else (1.0 if ev_k[e] == 1 else -1.0) * ev_a[e]
                    lag_event2(t, y, psi, u, u + du, ev_a[e] if ev_k[e] == 0 else 0.0, fd, w1, o1, lg, table)
                    u += du
                elif ev_k[e] == 0:
                    if order >= 1 and lag_sens:
                        call_rhs(rhs0, t, y[:nx], psi, u, gm)
                    y[cmt] += F * ev_a[e]
                    if order >= 1:
                        for k in range(P):
                            y[nx + cmt * P + k] += ev_a[e] * fd[2 + k]
                    if order >= 2:
                        for q in range(np2):
                            y[nx + nx * P + cmt * np2 + q] += ev_a[e] * fd[2 + 2 * P + q]
                    if order >= 1 and lag_sens:
                        call_rhs(rhs0, t, y[:nx], psi, u, gp)
                        for i in range(nx):
                            for k in range(P):
                                y[nx + i * P + k] += (gm[i] - gp[i]) * fd[2 + P + k]
                else:
                    sign = 1.0 if ev_k[e] == 1 else -1.0
                    u += sign * ev_a[e]
                    if order >= 1 and lag_sens:
                        for k in range(P):
                            y[nx + cmt * P + k] -= sign * F * ev_a[e] * fd[2 + P + k]
                ie += 1
            if failed:
                break
            t, h, st, steps = advance(t, tt, y, h, psi, u, rtol, atol, max_steps, work, ws, steps, table)
            if st != 0:
                status[v] = st
                failed = True
                break
            call_out(out, out_idx[io], t, y, psi, u, vals)
            f[v, io] = vals[0]
            if order >= 1:
                dt[v, io] = vals[1]
                for k in range(P):
                    d1[v, io, table[T_INDEX + k]] = vals[2 + k]
            if order >= 2:
                for q in range(np2):
                    a = table[T_INDEX + table[pairs + q]]
                    b = table[T_INDEX + table[pairs + np2 + q]]
                    d2[v, io, a, b] = vals[2 + P + q]
                    d2[v, io, b, a] = vals[2 + P + q]
        if failed:
            fail[v, 0] = t
            for i in range(nx):
                fail[v, 1 + i] = y[i]
            for jo in range(n_obs):
                f[v, jo] = np.nan

