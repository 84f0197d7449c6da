"""The stiff path for ODE models: scipy's LSODA with the numba-compiled right-hand side and the
symbolic Jacobian of the augmented system (orders 0 and 1; finite differences inside LSODA for
order 2).  Same event handling as the compiled Dormand–Prince integrator (``ode.py``)."""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp


def solve_lsoda(model, order, psi_all, t_obs, out_idx, dose_t, dose_amt, dose_dur, res, status, fail):
    m = model.module
    nx, P = m.N_X, m.N_ACT
    act = m.ACTIVE
    ny = getattr(m, f"NY{order}")
    rhs, init, dose, out = (getattr(m, f"{b}{order}") for b in ("rhs", "init", "dose", "out"))
    jac = getattr(m, f"jac{order}", None)
    cmt = m.CMT
    lag_sens = model.lag_depends_on_parameters
    np2 = m.NP2
    pair_k, pair_l = act[m.PAIR_K], act[m.PAIR_L]  # the second-order pairs, as indices into ψ
    for v, psi in enumerate(psi_all):
        fd = np.empty(getattr(m, f"NDOSE{order}"))
        dose(psi, fd)
        F, LAG = fd[0], fd[1]
        events = []
        for td, a, d in zip(dose_t, dose_amt, dose_dur):
            if d > 0:
                events += [(td + LAG, 1, a / d), (td + LAG + d, 2, a / d)]
            else:
                events.append((td + LAG, 0, a))
        events.sort(key=lambda e: e[0])
        y = np.zeros(ny)
        init(psi, y)
        if not np.all(np.isfinite(y)):
            status[v] = 5
            fail[v, 0] = 0.0
            fail[v, 1:] = y[:nx]
            continue
        state = {"u": 0.0}
        dy = np.empty(ny)
        J = np.zeros((ny, ny))

        def f(t, yy):
            rhs(t, yy, psi, state["u"], dy)
            return dy.copy()

        def jf(t, yy):
            J[:] = 0.0
            jac(t, yy, psi, state["u"], J)
            return J.copy()

        t = 0.0
        ok = True

        def advance(t_end):
            nonlocal y, t, ok
            if t_end > t:
                sol = solve_ivp(f, (t, t_end), y, method="LSODA", rtol=model.rtol, atol=model.atol,
                                jac=jf if jac is not None else None)
                if not sol.success or not np.all(np.isfinite(sol.y[:, -1])):
                    ok = False
                    return
                y = sol.y[:, -1].copy()
                t = t_end

        ie = 0
        vals = np.empty(getattr(m, f"NOUT{order}"))
        for io in np.argsort(t_obs, kind="stable"):
            tt = t_obs[io]
            while ie < len(events) and events[ie][0] < tt and ok:
                te, kind, a = events[ie]
                advance(te)
                if not ok:
                    break
                gm = np.empty(nx)
                gp = np.empty(nx)
                if kind == 0:
                    if order >= 1 and lag_sens:
                        m.rhs0(t, y[:nx].copy(), psi, state["u"], gm)
                    y[cmt] += F * a
                    if order >= 1:
                        y[nx + cmt * P: nx + cmt * P + P] += a * fd[2:2 + P]
                    if order >= 2:
                        base = nx + nx * P + cmt * np2
                        y[base:base + np2] += a * fd[2 + 2 * P: 2 + 2 * P + np2]
                    if order >= 1 and lag_sens:
                        m.rhs0(t, y[:nx].copy(), psi, state["u"], gp)
                        y[nx:nx + nx * P] += np.outer(gm - gp, fd[2 + P:2 + 2 * P]).ravel()
                else:
                    sign = 1.0 if kind == 1 else -1.0
                    state["u"] += sign * a
                    if order >= 1 and lag_sens:
                        y[nx + cmt * P: nx + cmt * P + P] -= sign * F * a * fd[2 + P:2 + 2 * P]
                ie += 1
            if not ok:
                break
            advance(tt)
            if not ok:
                break
            out(out_idx[io], t, y, psi, state["u"], vals)
            res["f"][v, io] = vals[0]
            if order >= 1:
                res["dt"][v, io] = vals[1]
                res["d1"][v, io, act] = vals[2:2 + P]
            if order >= 2:
                res["d2"][v, io, pair_k, pair_l] = res["d2"][v, io, pair_l, pair_k] = vals[2 + P:2 + P + np2]
        if not ok:
            status[v] = 4
            fail[v, 0] = t
            fail[v, 1:] = y[:nx]
