"""A linearly implicit (Rosenbrock) integrator for stiff ODE models, compiled once per installation like Dormand–Prince.

RODAS4 (Hairer & Wanner, Solving Ordinary Differential Equations II, 2nd ed. 1996, §IV.7; the coefficients of
their code RODAS): 6 stages, order 4 with an embedded order-3 solution, L-stable and stiffly accurate, one LU
factorisation and five new right-hand sides per step.  With G = I/(γ h) − J, J = ∂f/∂y at the step's start,
f_t = ∂f/∂t and Y_i = y + Σ_j a_ij K_j (Y_6 = Y_5 + K_5),

    G K_i = f(t + c_i h, Y_i) + Σ_{j<i} (C_ij / h) K_j + d_i h f_t,     i = 1..6
    y⁺ = Y_6 + K_6,   error estimate K_6.

The iteration matrix is factorised (and inverted) only on its state block (:func:`stage_solve`: the augmented
system is block lower triangular), so a step costs one n_x × n_x LU whatever the number of sensitivities.

L-stability matters: fast modes in quasi-equilibrium (binding, exchange) are damped, so the step follows the
slow dynamics; an A-stable method whose stability function tends to ±1 at infinity (Shampine's parameter set)
kept the steps near 1/|λ| on the full TMDD model.  Rosenbrock methods still lose order on the stiff components
(the Prothero–Robinson effect), so at tight tolerances they take more steps than a BDF code: on tmdd_full at
rtol 1e-8, 3,500 steps against LSODA's ~1,100 right-hand sides (RODAS3, order 3: 13,800).  The coefficients are
checked in ``tests/test_rosenbrock.py`` by the order of convergence (4) on non-stiff autonomous and
non-autonomous problems.

``f`` is the model's *augmented* right-hand side (states and forward sensitivities) and J its symbolic
Jacobian (``jacK`` of the generated module; both reached through the model's table,
:mod:`pkdesign.kernels.model_table`), so the sensitivities are integrated by the same implicit method,
simultaneously with the states.  f_t is 0 for an autonomous model (``T_TDEP`` 0); otherwise a forward
difference in t.  Between dose events u is constant.

:func:`advance` has the signature of :func:`pkdesign.kernels.dopri5.advance` (its vectors, stages and Jacobian in
the rows of ``work``), so :mod:`pkdesign.kernels.integrators` compiles the same
``solve`` (dose events, lag-time jumps, outputs) around either integrator.
"""

from __future__ import annotations

import math

import numpy as np

from .model_table import T_JAC, T_NACT, T_NP2, T_NX, T_ORDER, T_RHS, T_TDEP, call_jac, call_rhs

# from pkdesign.kernels.solver_common (compiled once per installation), bound by pkdesign.kernels.integrators
# (placeholders here so the module reads and lints as Python)
step_control = error_norm = invert_state_block = None

GAMMA = 0.25
A21 = 1.544
A31, A32 = 0.9466785280815826, 0.2557011698983284
A41, A42, A43 = 3.314825187068521, 2.896124015972201, 0.9986419139977817
A51, A52, A53, A54 = 1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950
C21 = -5.6688
C31, C32 = -2.430093356833875, -0.2063599157091915
C41, C42, C43 = -0.1073529058151375, -9.594562251023355, -20.47028614809616
C51, C52, C53, C54 = 7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160
C61, C62, C63, C64, C65 = 8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136, -6.058818238834054
CT2, CT3, CT4 = 0.386, 0.21, 0.63
D1, D2, D3, D4 = 0.25, -0.1043, 0.1035, -0.0362


def jacobian_at(t, y, psi, u, J, table):
    """J = the augmented system's Jacobian at (t, y) (the generated ``jac`` writes only its non-zero entries)."""
    ny = J.shape[0]
    for i in range(ny):
        for j in range(ny):
            J[i, j] = 0.0
    call_jac(table[T_JAC], t, y, psi, u, J)


def stage_solve(J, Gi, b, tmp, table):
    """Solve (I/(γh) − J_aug) g = b in place, J_aug (ny, ny) the augmented Jacobian, Gi the inverse of the state
    block G = I/(γh) − J_x (N_X, N_X; :func:`~pkdesign.kernels.solver_common.lu_inverse`), ``tmp`` work of
    length N_X·max(1, P, NP2).

    The augmented system is block lower triangular: the sensitivities S_k (rows N_X + i·P + k) depend on the
    states and on S_k only, through J_x; the second-order W_kl (rows N_X + N_X·P + i·NP2 + q) on states,
    first-order sensitivities and W_kl only, again through J_x.  So the state block's inverse serves every
    block, by forward substitution: g_b = G⁻¹ (b_b + Σ_{c in earlier blocks} J_aug[b, c] g_c).  The blocks come
    in three groups solved together: the states (rows i), the P blocks S_k (rows N_X + i·P + k, coupled to the
    states) and the NP2 blocks W_q (rows N_X + N_X·P + i·NP2 + q, coupled to states and S): with m blocks in a
    group, its right-hand sides form an N_X × m matrix (in ``tmp``, N_X·max(1, P, NP2) long) multiplied by Gi at
    once, in one loop without calls (sizes are run-time values: per-block calls cost 1.5× on small models)."""
    nx = table[T_NX]
    P = table[T_NACT]
    np2 = table[T_NP2]
    order = table[T_ORDER]
    first = 0
    for group in range(order + 1):
        m = 1 if group == 0 else (P if group == 1 else np2)
        for i in range(nx):
            for k in range(m):
                r = first + i * m + k
                s = b[r]
                for c in range(first):  # the earlier groups' rows, already solved
                    s += J[r, c] * b[c]
                tmp[i * m + k] = s
        for i in range(nx):
            for k in range(m):
                s = 0.0
                for j in range(nx):
                    s += Gi[i, j] * tmp[j * m + k]
                b[first + i * m + k] = s
        first += nx * m


def step(t, h, y, psi, u, J, Gi, tmp, f0, k, ft, fs, yt, yn, table):
    """One RODAS4 step of size h from (t, y), with the Jacobian J and the inverse Gi of the state block of the
    iteration matrix (:func:`stage_solve`; ``tmp`` its work), f0 = f(t, y) and ft = ∂f/∂t: the stages in ``k``
    (6, ny), the new state in ``yn``, its error estimate in ``k[5]``."""
    ny = y.shape[0]
    rhs = table[T_RHS]
    for i in range(ny):
        k[0, i] = f0[i] + D1 * h * ft[i]
    stage_solve(J, Gi, k[0], tmp, table)
    for i in range(ny):
        yt[i] = y[i] + A21 * k[0, i]
    call_rhs(rhs, t + CT2 * h, yt, psi, u, fs)
    for i in range(ny):
        k[1, i] = fs[i] + C21 / h * k[0, i] + D2 * h * ft[i]
    stage_solve(J, Gi, k[1], tmp, table)
    for i in range(ny):
        yt[i] = y[i] + A31 * k[0, i] + A32 * k[1, i]
    call_rhs(rhs, t + CT3 * h, yt, psi, u, fs)
    for i in range(ny):
        k[2, i] = fs[i] + (C31 * k[0, i] + C32 * k[1, i]) / h + D3 * h * ft[i]
    stage_solve(J, Gi, k[2], tmp, table)
    for i in range(ny):
        yt[i] = y[i] + A41 * k[0, i] + A42 * k[1, i] + A43 * k[2, i]
    call_rhs(rhs, t + CT4 * h, yt, psi, u, fs)
    for i in range(ny):
        k[3, i] = fs[i] + (C41 * k[0, i] + C42 * k[1, i] + C43 * k[2, i]) / h + D4 * h * ft[i]
    stage_solve(J, Gi, k[3], tmp, table)
    for i in range(ny):
        yt[i] = y[i] + A51 * k[0, i] + A52 * k[1, i] + A53 * k[2, i] + A54 * k[3, i]
    call_rhs(rhs, t + h, yt, psi, u, fs)
    for i in range(ny):
        k[4, i] = fs[i] + (C51 * k[0, i] + C52 * k[1, i] + C53 * k[2, i] + C54 * k[3, i]) / h
    stage_solve(J, Gi, k[4], tmp, table)
    for i in range(ny):
        yt[i] += k[4, i]
    call_rhs(rhs, t + h, yt, psi, u, fs)
    for i in range(ny):
        k[5, i] = fs[i] + (C61 * k[0, i] + C62 * k[1, i] + C63 * k[2, i] + C64 * k[3, i] + C65 * k[4, i]) / h
    stage_solve(J, Gi, k[5], tmp, table)
    for i in range(ny):
        yn[i] = yt[i] + k[5, i]


def work_rows(ny: int) -> int:
    """Rows of the ``work`` array (ny columns) :func:`advance` needs: f0, ∂f/∂t, f, yt, yn, the 6 stages, J."""
    return 11 + ny


def advance(t, t_end, y, h, psi, u, rtol, atol, max_steps, work, ws, steps, table):
    """Integrate y from t to t_end in place; returns (t reached, h, status, steps); status 1 = step too small,
    2 = too many steps, 3 = non-finite state.  ``work`` (:func:`work_rows` × ny) holds the vectors, stages and
    Jacobian; ``ws`` is not used by this one-step method; ``table``: the model
    (:mod:`~pkdesign.kernels.model_table`)."""
    ny = y.shape[0]
    if t_end <= t:
        return t, h, 0, steps
    rhs = table[T_RHS]
    nx = table[T_NX]
    f0, ft, fs, yt, yn = work[0], work[1], work[2], work[3], work[4]
    k = work[5:11]
    J = work[11:11 + ny]
    G = np.empty((nx, nx))
    Gi = np.empty((nx, nx))
    tmp = np.empty(nx * max(1, table[T_NACT], table[T_NP2]))  # stage_solve's work (and the LU's)
    piv = np.empty(nx, dtype=np.int64)
    while t < t_end:
        if steps >= max_steps:
            return t, h, 2, steps
        if t_end - t <= 1e-13 * max(1.0, abs(t)):  # a negligible remainder: one Euler step (h kept)
            call_rhs(rhs, t, y, psi, u, f0)
            for i in range(ny):
                y[i] += (t_end - t) * f0[i]
            return t_end, h, 0, steps
        h_full = h
        clipped = h > t_end - t
        if clipped:
            h = t_end - t
        if h <= 1e-14 * max(1.0, abs(t)):
            return t, h, 1, steps
        call_rhs(rhs, t, y, psi, u, f0)
        jacobian_at(t, y, psi, u, J, table)
        if table[T_TDEP]:
            dt = 1e-7 * max(1.0, abs(t))
            call_rhs(rhs, t + dt, y, psi, u, fs)
            for i in range(ny):
                ft[i] = (fs[i] - f0[i]) / dt
        else:
            for i in range(ny):
                ft[i] = 0.0
        if not invert_state_block(J, GAMMA * h, G, piv, Gi, tmp):
            h *= 0.2
            steps += 1
            continue
        step(t, h, y, psi, u, J, Gi, tmp, f0, k, ft, fs, yt, yn, table)
        steps += 1
        accepted, h_next = step_control(error_norm(k[5], 1.0, y, yn, rtol, atol), h, h_full, clipped, 0.25)
        if accepted:
            t = t + h
            for i in range(ny):
                y[i] = yn[i]
                if not math.isfinite(y[i]):
                    return t, h, 3, steps
        h = h_next
    return t_end, h, 0, steps
