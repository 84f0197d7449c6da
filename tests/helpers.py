"""Slow, obviously correct twins of the kernels: direct sympy evaluation, finite differences,
and ODE integration of compartment models."""

from __future__ import annotations

import os

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp


def direct_prediction(spec, psi, times, regimen, output=0, digits=None):
    """Evaluate an output by substituting numbers into the sympy expressions (no kernels).

    Superposes each response over the doses explicitly.  With ``digits`` the evaluation is
    done in that many decimal digits (mpmath), which serves as an exact reference.
    """
    from pkdesign.model.symbolic import expand_assignments

    full = expand_assignments(spec)
    vals = {sp.Symbol(n): sp.Float(v, digits or 17) if digits else float(v)
            for n, v in zip(spec.parameter_names, psi)}
    lag = spec.dosing.lag.xreplace(full).xreplace(vals)
    bio = spec.dosing.bioavailability.xreplace(full).xreplace(vals)
    out = []
    for t in times:
        rvals = {}
        for name, expr in spec.responses:
            total = 0
            e = expr.xreplace(full)
            for td, amt, dur in zip(regimen.times, regimen.amounts, regimen.durations):
                trel = t - td - lag
                if trel <= 0:
                    continue
                sub = dict(vals)
                sub.update({sp.Symbol("t"): trel, sp.Symbol("DOSE"): amt * bio, sp.Symbol("TINF"): dur})
                val = e.xreplace(sub)
                total += val.evalf(digits) if digits else float(val)
            rvals[sp.Symbol(name)] = sp.Float(total, digits or 17)
        g = spec.outputs[output].expression.xreplace(full).xreplace(rvals).xreplace(vals)
        g = sp.sympify(g).xreplace({sp.Symbol("t"): t})
        out.append(float(g.evalf(digits)) if digits else float(g))
    return np.array(out)


def fd_jacobian(fun, x, rel=1e-6):
    """Central finite-difference Jacobian of fun (R^n -> array) at x; last axis = parameter."""
    x = np.asarray(x, dtype=float)
    cols = []
    for k in range(x.size):
        h = rel * max(abs(x[k]), 1e-3)
        xp, xm = x.copy(), x.copy()
        xp[k] += h
        xm[k] -= h
        cols.append((np.asarray(fun(xp)) - np.asarray(fun(xm))) / (2 * h))
    return np.stack(cols, axis=-1)


def compartment_ode(n_cmt, route, params, regimen, times, rtol=1e-11, atol=1e-13):
    """Concentration in the central compartment by integrating the linear ODE system.

    params: dict with CL, V1 (or V), Q2/Q, V2, Q3, V3, KA, TLAG, F as needed.  Dose events are
    handled by restarting the integration at each event (bolus: jump; infusion: rate on/off).
    """
    CL = params["CL"]
    V1 = params.get("V1", params.get("V"))
    Q2 = params.get("Q2", params.get("Q", 0.0))
    V2 = params.get("V2", 1.0)
    Q3 = params.get("Q3", 0.0)
    V3 = params.get("V3", 1.0)
    KA = params.get("KA", 0.0)
    lag = params.get("TLAG", 0.0)
    F = params.get("F", 1.0)
    k10, k12, k21, k13, k31 = CL / V1, Q2 / V1, Q2 / V2, Q3 / V1, Q3 / V3
    # state: depot, central, periph1, periph2 (amounts)
    events = []
    for td, amt, dur in zip(regimen.times, regimen.amounts, regimen.durations):
        if route == "infusion":
            events.append((td, "on", amt / dur))
            events.append((td + dur, "off", amt / dur))
        elif route == "bolus":
            events.append((td, "bolus_central", amt))
        else:
            events.append((td + lag, "bolus_depot", amt * F))
    events.sort(key=lambda e: e[0])
    rate = 0.0

    def rhs(t, y):
        a0, a1, a2, a3 = y
        da0 = -KA * a0
        da1 = KA * a0 + rate - (k10 + k12 + k13) * a1 + k21 * a2 + k31 * a3
        da2 = k12 * a1 - k21 * a2
        da3 = k13 * a1 - k31 * a3
        if n_cmt < 3:
            da3 = 0.0
        if n_cmt < 2:
            da2 = 0.0
        return [da0, da1, da2, da3]

    y = np.zeros(4)
    t_now = 0.0
    out = np.empty(len(times))
    times = np.asarray(times, dtype=float)
    checkpoints = sorted(set([e[0] for e in events] + list(times)))
    ei = 0
    for tc in checkpoints:
        if tc > t_now:
            sol = solve_ivp(rhs, (t_now, tc), y, method="LSODA", rtol=rtol, atol=atol)
            y = sol.y[:, -1]
            t_now = tc
        # observations at an event time see the state before events at that time are applied
        for i in np.flatnonzero(times == tc):
            out[i] = y[1] / V1
        while ei < len(events) and events[ei][0] <= tc:
            _, kind, val = events[ei]
            if kind == "on":
                rate += val
            elif kind == "off":
                rate -= val
            elif kind == "bolus_central":
                y[1] += val
            else:
                y[0] += val
            ei += 1
    return out


def computed_pairs(spec) -> np.ndarray:
    """Boolean (P, P): the second derivatives a model's kernels compute (``ModelSpec.second_order_pairs``, both
    orders of each pair); the other entries of ``d2`` are NaN ("not computed") or 0 (a parameter not used)."""
    ix = spec.derivative_indices()
    P = len(spec.parameter_names)
    mask = np.zeros((P, P), dtype=bool)
    for a, b in spec.second_order_pairs():
        mask[ix[a], ix[b]] = mask[ix[b], ix[a]] = True
    return mask


def default_cache_env(**extra) -> dict:
    """The environment for a child process that checks where kernel cache files go: this one's, without
    ``NUMBA_CACHE_DIR`` (which moves numba's files away from the folders these tests inspect), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(extra)
    return env
