"""ODE-defined models: symbolic forward sensitivities, generated numba integrator, same interface.

For states x' = g(x, ψ, t) + e_c·F(ψ)·u(t) (u: the raw zero-order input AMT/duration of running
infusions into the dose compartment c), sympy builds the augmented system

    S' = ∂g/∂x S + ∂g/∂ψ                                      (S = ∂x/∂ψ, n_x × P)
    W'_kl = ∂g/∂x W_kl + Σ ∂²g/∂x∂x S_k S_l + ∂²g/∂x∂ψ_l S_k + ∂²g/∂x∂ψ_k S_l + ∂²g/∂ψ_k∂ψ_l
                                                              (W = ∂²x/∂ψ_k∂ψ_l, k ≤ l)

with initial values from x0(ψ) and its derivatives, the outputs h(x, ψ, t) and their ψ- and
t-derivatives by the chain rule, and the dose quantities F, LAG and their derivatives.  Dose
events are exact: integration stops at every event; a bolus adds F·AMT to x_c (and A·∂F/∂ψ to S);
when the lag time depends on ψ, the sensitivities jump by (g(x⁻) − g(x⁺))·∂LAG/∂ψ (first order).
A sample at a dose time is taken before the dose, as for the closed forms.

Two solvers, chosen per model (``[ode] solver``):
- ``dopri5`` (default): Dormand–Prince 5(4) with adaptive steps, generated into the model's
  kernel module and compiled by numba; a whole batch of parameter vectors in one call, no Python
  per step.  Error control on states and sensitivities: |err_i| ≤ atol + rtol·|y_i|.
- ``lsoda`` (stiff systems): scipy's LSODA with the numba-compiled right-hand side and the
  symbolic Jacobian of the augmented system (orders 0 and 1); Python is called per step.
"""

from __future__ import annotations

import threading

import numpy as np
import sympy as sp

from ..design import Regimen
from ..errors import DesignError, ModelSpecError
from ..kernels.jit import CachedJit, GuardedKernel
from .codegen import KernelPrinter
from .cache import generator_fingerprint, load_generated_module, spec_hash
from .runtime import dose_arrays, output_buffers, output_keys, prepare_inputs
from .special import RUNTIME_IMPORTS, ediff_source
from .spec import ModelSpec
from .symbolic import expand_assignments, finite_powers
from .protocol import ModelDisplay

_LOCK = threading.Lock()
#: batches with at least this many parameter vectors are integrated in parallel threads
PARALLEL_MIN_VECTORS = 64


# ----------------------------------------------------------------------------------------------
# symbolic: the augmented system and everything the integrator needs
# ----------------------------------------------------------------------------------------------
def _pairs(P):
    return [(k, l) for k in range(P) for l in range(k, P)]


class OdeDerivatives:
    """Symbolic pieces of an ODE model for derivative order ``order`` (0, 1 or 2)."""

    def __init__(self, spec: ModelSpec, order: int):
        ode = spec.ode
        full = expand_assignments(spec)
        # sensitivities only for the parameters the FIM needs (see ModelSpec.derivative_indices)
        self.psi = [sp.Symbol(spec.parameter_names[k]) for k in spec.derivative_indices()]
        P = len(self.psi)
        self.x = [sp.Symbol(s) for s in ode.states]
        n = len(self.x)
        self.u = sp.Symbol("U_IN")
        t = sp.Symbol("t")
        self.F = sp.sympify(spec.dosing.bioavailability).xreplace(full)
        self.LAG = sp.sympify(spec.dosing.lag).xreplace(full)
        c = ode.states.index(spec.dosing.compartment) if spec.dosing.compartment else -1
        g = [sp.sympify(e).xreplace(full) for e in ode.derivatives]
        if c >= 0:
            g[c] = g[c] + self.F * self.u
        self.g = g
        self.order, self.n, self.P, self.c = order, n, P, c
        pairs = _pairs(P)
        # augmented state symbols
        ys = list(self.x)
        S = [[sp.Symbol(f"S_{i}_{k}") for k in range(P)] for i in range(n)] if order >= 1 else None
        W = [{kl: sp.Symbol(f"W_{i}_{kl[0]}_{kl[1]}") for kl in pairs} for i in range(n)] if order >= 2 else None
        if order >= 1:
            ys += [S[i][k] for i in range(n) for k in range(P)]
        if order >= 2:
            ys += [W[i][kl] for i in range(n) for kl in pairs]
        self.y = ys
        J = [[sp.diff(gi, xj) for xj in self.x] for gi in g]
        rhs = list(g)
        if order >= 1:
            Gp = [[sp.diff(gi, p) for p in self.psi] for gi in g]
            for i in range(n):
                for k in range(P):
                    rhs.append(sum((J[i][j] * S[j][k] for j in range(n) if J[i][j] != 0), sp.Integer(0)) + Gp[i][k])
        if order >= 2:
            for i in range(n):
                Hxx = [[sp.diff(J[i][j], xm) for xm in self.x] for j in range(n)]
                Hxp = [[sp.diff(J[i][j], p) for p in self.psi] for j in range(n)]
                for (k, l) in pairs:
                    e = sum((J[i][j] * W[j][(k, l)] for j in range(n) if J[i][j] != 0), sp.Integer(0))
                    e += sum((Hxx[j][m] * S[j][k] * S[m][l] for j in range(n) for m in range(n) if Hxx[j][m] != 0),
                             sp.Integer(0))
                    e += sum((Hxp[j][l] * S[j][k] + Hxp[j][k] * S[j][l] for j in range(n)), sp.Integer(0))
                    e += sp.diff(Gp[i][k], self.psi[l])
                    rhs.append(e)
        self.rhs = rhs
        # initial values
        x0 = [sp.sympify(e).xreplace(full) for e in ode.initial]
        init = list(x0)
        if order >= 1:
            init += [sp.diff(x0[i], self.psi[k]) for i in range(n) for k in range(P)]
        if order >= 2:
            init += [sp.diff(x0[i], self.psi[k], self.psi[l]) for i in range(n) for (k, l) in pairs]
        self.init = init
        # dose quantities: F, LAG, dF (P), dLAG (P), d2F (pairs), d2LAG (pairs)
        dose = [self.F, self.LAG] + [sp.diff(self.F, p) for p in self.psi] + [sp.diff(self.LAG, p) for p in self.psi]
        if order >= 2:
            dose += [sp.diff(self.F, self.psi[k], self.psi[l]) for (k, l) in pairs]
            dose += [sp.diff(self.LAG, self.psi[k], self.psi[l]) for (k, l) in pairs]
        # ∂g/∂t (explicit time dependence of the right-hand side), for the second-order lag jump
        self.gt = [sp.diff(gi, t) for gi in g]
        self.dose = dose
        # outputs: value, dt, d1 (P), d2 (pairs)
        self.outputs = []
        for o in spec.outputs:
            h = sp.sympify(o.expression).xreplace(full)
            hx = [sp.diff(h, xi) for xi in self.x]
            vals = [h, sum((hx[i] * g[i] for i in range(n)), sp.Integer(0)) + sp.diff(h, t)]
            if order >= 1:
                hp = [sp.diff(h, p) for p in self.psi]
                vals += [sum((hx[i] * S[i][k] for i in range(n)), sp.Integer(0)) + hp[k] for k in range(P)]
            if order >= 2:
                for (k, l) in pairs:
                    e = sum((hx[i] * W[i][(k, l)] for i in range(n)), sp.Integer(0))
                    e += sum((sp.diff(hx[i], self.x[j]) * S[i][k] * S[j][l] for i in range(n) for j in range(n)),
                             sp.Integer(0))
                    e += sum((sp.diff(hx[i], self.psi[l]) * S[i][k] + sp.diff(hx[i], self.psi[k]) * S[i][l]
                              for i in range(n)), sp.Integer(0))
                    e += sp.diff(hp[k], self.psi[l])
                    vals.append(e)
            self.outputs.append(vals)
        # Jacobian of the augmented system (LSODA), orders 0 and 1
        self.jac = None
        if order <= 1:
            self.jac = [[sp.diff(r, yj) for yj in ys] for r in rhs]


# ----------------------------------------------------------------------------------------------
# code generation
# ----------------------------------------------------------------------------------------------
def _block(name, args, exprs, targets, unpack, printer, prefix):
    exprs = [finite_powers(e) for e in exprs]
    repl, reduced = sp.cse(exprs, symbols=sp.numbered_symbols(prefix), order="none")
    L = [f"def {name}({', '.join(args)}):"]
    L += ["    " + u for u in unpack]
    L += [f"    {printer.doprint(s)} = {printer.doprint(e)}" for s, e in repl]
    L += [f"    {tg} = {printer.doprint(e)}" for tg, e in zip(targets, reduced)]
    if len(L) == 1 + len(unpack):
        L.append("    pass")
    return "\n".join(L)


def generate_ode_source(spec: ModelSpec, header: str = "") -> str:
    """Python source of the ODE kernels of ``spec`` (orders 0, 1, 2) and the compiled integrator."""
    printer = KernelPrinter()
    P = len(spec.parameter_names)
    parts = [f'"""ODE kernels generated by pkdesign for model {spec.name!r}. Do not edit."""', header,
             "import math", "import numba", "import numpy as np", RUNTIME_IMPORTS, ""]
    unpack_psi = [f"p_{n} = psi[{k}]" for k, n in enumerate(spec.parameter_names)]
    rename = {sp.Symbol(n): sp.Symbol(f"p_{n}") for n in spec.parameter_names}
    for order in (0, 1, 2):
        d = OdeDerivatives(spec, order)
        ny = len(d.y)
        yren = {s: sp.Symbol(f"y_{j}") for j, s in enumerate(d.y)}
        ren = {**rename, **yren}
        unpack_y = [f"y_{j} = y[{j}]" for j in range(ny)]
        unpack_u = ["U_IN = u"]
        parts.append(f"NY{order} = {ny}")
        parts.append(_block(f"rhs{order}", ["t", "y", "psi", "u", "dy"], [e.xreplace(ren) for e in d.rhs],
                            [f"dy[{j}]" for j in range(ny)], unpack_psi + unpack_y + unpack_u, printer, "r_"))
        if d.jac is not None:
            flat, targets = [], []
            for i, row in enumerate(d.jac):
                for j, e in enumerate(row):
                    if e != 0:
                        flat.append(e.xreplace(ren))
                        targets.append(f"J[{i}, {j}]")
            parts.append(_block(f"jac{order}", ["t", "y", "psi", "u", "J"], flat, targets,
                                unpack_psi + unpack_y + unpack_u, printer, "j_"))
        parts.append(_block(f"init{order}", ["psi", "y"], [e.xreplace(rename) for e in d.init],
                            [f"y[{j}]" for j in range(len(d.init))], unpack_psi, printer, "i_"))
        if order == 0:
            parts.append(_block("rhst0", ["t", "y", "psi", "u", "dy"], [e.xreplace(ren) for e in d.gt],
                                [f"dy[{j}]" for j in range(len(d.gt))], unpack_psi + unpack_y + unpack_u, printer,
                                "t_"))
        parts.append(f"NDOSE{order} = {len(d.dose)}")
        parts.append(_block(f"dose{order}", ["psi", "fd"], [e.xreplace(rename) for e in d.dose],
                            [f"fd[{j}]" for j in range(len(d.dose))], unpack_psi, printer, "d_"))
        nvals = len(d.outputs[0])
        parts.append(f"NOUT{order} = {nvals}")
        L = [f"def out{order}(o, t, y, psi, u, vals):"]
        L += ["    " + s for s in unpack_psi + unpack_y + unpack_u]
        for oi, vals in enumerate(d.outputs):
            L.append(f"    {'if' if oi == 0 else 'elif'} o == {oi}:")
            repl, reduced = sp.cse([finite_powers(e.xreplace(ren)) for e in vals], symbols=sp.numbered_symbols(f"o{oi}_"),
                                   order="none")
            L += [f"        {printer.doprint(s)} = {printer.doprint(e)}" for s, e in repl]
            L += [f"        vals[{j}] = {printer.doprint(e)}" for j, e in enumerate(reduced)]
        parts.append("\n".join(L))
        # the serial solver, and a parallel twin (separate source, separate numba cache entries)
        advance, solve = SOLVER_TEMPLATE.split("\n\n\ndef solve")
        parts.append(advance.replace("{K}", str(order)))
        event = ("lag_event2(t, y, psi, u, u + du, ev_a[e] if ev_k[e] == 0 else 0.0, fd, w1, o1, lg)"
                 if order == 2 else "pass")
        for suffix, rng in (("", "range"), ("_parallel", "numba.prange")):
            parts.append(("def solve" + solve).replace("{K}", str(order)).replace("{SUFFIX}", suffix)
                         .replace("{RANGE}", rng).replace("{LAG_EVENT}", event))
    parts.append(LAG_EVENT_TEMPLATE)
    parts.append(f"N_X = {len(spec.ode.states)}")
    parts.append(f"N_PSI = {P}")
    active = spec.derivative_indices()
    parts.append(f"# the parameters whose sensitivities are integrated (indices into psi)\n"
                 f"ACTIVE = np.array({active!r}, dtype=np.int64)\nN_ACT = {len(active)}")
    parts.append(f"CMT = {spec.ode.states.index(spec.dosing.compartment) if spec.dosing.compartment else -1}")
    parts.append(ediff_source(printer.ediff_orders))
    return "\n\n".join(parts) + "\n"


#: Second-order sensitivity jump at a dose whose time s = t_dose + LAG(ψ) depends on the parameters.
#: With y⁻ the state before the event, a the bolus amount (0 for an infusion start/stop, where the
#: input u changes instead), g± the right-hand side before/after, J its state Jacobian, G_k = ∂g/∂ψ_k,
#: s_k = ∂LAG/∂ψ_k, z_k = S⁻_k + g⁻ s_k + a F_k e_c (the sensitivity of the post-event initial state):
#:   S⁺_k = z_k − g⁺ s_k
#:   W⁺_kl = W⁻_kl + a F_kl e_c + (J⁻S⁻_k + G⁻_k) s_l + (J⁻S⁻_l + G⁻_l) s_k + (J⁻g⁻ + ∂g⁻/∂t) s_k s_l + g⁻ s_kl
#:           − (J⁺z_k + G⁺_k) s_l − (J⁺z_l + G⁺_l) s_k + (J⁺g⁺ − ∂g⁺/∂t) s_k s_l − g⁺ s_kl
#: (the limit t ↓ s of ∂²y(t)/∂ψ_k∂ψ_l, from y(t) = z + g⁺ (t − s) + ½ ġ⁺ (t − s)²).  J·v and J·S + G
#: come from the order-1 augmented right-hand side ``rhs1`` (its state is a prefix of the order-2 one).
LAG_EVENT_TEMPLATE = '''
def lag_side2(t, x, psi, u, g, w1, o1, G, Jg, gt):
    """At state x (before or after an event): G = ∂g/∂ψ (via rhs1 with zero sensitivities), Jg = J·g
    and gt = ∂g/∂t, for a right-hand side value g already computed."""
    nx = N_X
    P = N_ACT
    ny1 = nx + nx * P
    for j in range(nx):
        w1[j] = x[j]
    for j in range(nx, ny1):
        w1[j] = 0.0
    rhs1(t, w1, psi, u, o1)
    for j in range(ny1):
        G[j] = o1[j]
    for i in range(nx):
        w1[nx + i * P] = g[i]
    rhs1(t, w1, psi, u, o1)
    for i in range(nx):
        Jg[i] = o1[nx + i * P] - G[nx + i * P]
    rhst0(t, x, psi, u, gt)


def lag_event2(t, y, psi, u_m, u_p, amt, fd, w1, o1, lg):
    nx = N_X
    P = N_ACT
    ny1 = nx + nx * P
    base_w = nx + nx * P
    np2 = P * (P + 1) // 2
    F = fd[0]
    gm, gp, ASm, Gm, Z, JZp, Gp = lg[0], lg[1], lg[2], lg[3], lg[4], lg[5], lg[6]
    Jgm, Jgp, gtm, gtp = np.empty(nx), np.empty(nx), np.empty(nx), np.empty(nx)
    # before the event: g⁻ and J⁻S⁻ + G⁻ from the augmented right-hand side at the actual state
    rhs1(t, y[:ny1], psi, u_m, o1)
    for j in range(ny1):
        ASm[j] = o1[j]
    for i in range(nx):
        gm[i] = o1[i]
    lag_side2(t, y[:nx], psi, u_m, gm, w1, o1, Gm, Jgm, gtm)
    # the jump of the state, and z_k
    if CMT >= 0:
        y[CMT] += F * amt
    for i in range(nx):
        for k in range(P):
            Z[nx + i * P + k] = y[nx + i * P + k] + gm[i] * fd[2 + P + k]
    if CMT >= 0:
        for k in range(P):
            Z[nx + CMT * P + k] += amt * fd[2 + k]
    # after the event: g⁺, G⁺, J⁺g⁺, ∂g⁺/∂t, and J⁺z + G⁺
    rhs0(t, y[:nx], psi, u_p, gp)
    lag_side2(t, y[:nx], psi, u_p, gp, w1, o1, Gp, Jgp, gtp)
    for j in range(nx):
        w1[j] = y[j]
    for j in range(nx, ny1):
        w1[j] = Z[j]
    rhs1(t, w1, psi, u_p, o1)
    for j in range(ny1):
        JZp[j] = o1[j]
    # second-order jump (W holds the pairs k <= l)
    for i in range(nx):
        q = 0
        for k in range(P):
            sk = fd[2 + P + k]
            for l in range(k, P):
                sl = fd[2 + P + l]
                skl = fd[2 + 2 * P + np2 + q]
                a = nx + i * P
                v = (ASm[a + k] * sl + ASm[a + l] * sk + (Jgm[i] + gtm[i]) * sk * sl + gm[i] * skl
                     - JZp[a + k] * sl - JZp[a + l] * sk + (Jgp[i] - gtp[i]) * sk * sl - gp[i] * skl)
                if i == CMT:
                    v += amt * fd[2 + 2 * P + q]
                y[base_w + i * np2 + q] += v
                q += 1
    # first-order jump
    for i in range(nx):
        for k in range(P):
            y[nx + i * P + k] = Z[nx + i * P + k] - gp[i] * fd[2 + P + k]
'''


#: Dormand–Prince 5(4) integrator with dose events, one template per derivative order {K}.
SOLVER_TEMPLATE = '''
def advance{K}(t, t_end, y, h, psi, u, rtol, atol, max_steps, k1, k2, k3, k4, k5, k6, k7, yt, yn, steps):
    """Integrate y from t to t_end in place; returns (t reached, h, status, steps); status 1 = step
    too small, 2 = too many steps, 3 = non-finite state."""
    ny = y.shape[0]
    if t_end <= t:
        return t, h, 0, steps
    rhs{K}(t, y, psi, u, k1)
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
        rhs{K}(t + 0.2 * h, yt, psi, u, k2)
        for i in range(ny):
            yt[i] = y[i] + h * (3.0 / 40.0 * k1[i] + 9.0 / 40.0 * k2[i])
        rhs{K}(t + 0.3 * h, yt, psi, u, k3)
        for i in range(ny):
            yt[i] = y[i] + h * (44.0 / 45.0 * k1[i] - 56.0 / 15.0 * k2[i] + 32.0 / 9.0 * k3[i])
        rhs{K}(t + 0.8 * h, yt, psi, u, k4)
        for i in range(ny):
            yt[i] = y[i] + h * (19372.0 / 6561.0 * k1[i] - 25360.0 / 2187.0 * k2[i] + 64448.0 / 6561.0 * k3[i]
                                - 212.0 / 729.0 * k4[i])
        rhs{K}(t + 8.0 / 9.0 * h, yt, psi, u, k5)
        for i in range(ny):
            yt[i] = y[i] + h * (9017.0 / 3168.0 * k1[i] - 355.0 / 33.0 * k2[i] + 46732.0 / 5247.0 * k3[i]
                                + 49.0 / 176.0 * k4[i] - 5103.0 / 18656.0 * k5[i])
        rhs{K}(t + h, yt, psi, u, k6)
        for i in range(ny):
            yn[i] = y[i] + h * (35.0 / 384.0 * k1[i] + 500.0 / 1113.0 * k3[i] + 125.0 / 192.0 * k4[i]
                                - 2187.0 / 6784.0 * k5[i] + 11.0 / 84.0 * k6[i])
        rhs{K}(t + h, yn, psi, u, k7)
        err = 0.0
        for i in range(ny):
            e = h * (71.0 / 57600.0 * k1[i] - 71.0 / 16695.0 * k3[i] + 71.0 / 1920.0 * k4[i]
                     - 17253.0 / 339200.0 * k5[i] + 22.0 / 525.0 * k6[i] - 1.0 / 40.0 * k7[i])
            sc = atol + rtol * max(abs(y[i]), abs(yn[i]))
            err += (e / sc) ** 2
        err = math.sqrt(err / ny)
        steps += 1
        if not (err == err) or err > 1e300:
            h *= 0.2
            continue
        if err <= 1.0:
            t = t + h
            for i in range(ny):
                y[i] = yn[i]
                k1[i] = k7[i]
                if not math.isfinite(y[i]):
                    return t, h, 3, steps
            fac = 5.0 if err == 0.0 else min(5.0, max(0.2, 0.9 * err ** -0.2))
            h *= fac
            if clipped:  # a step shortened to hit t_end says nothing against the longer one
                h = max(h, h_full)
        else:
            h *= max(0.2, 0.9 * err ** -0.2)
    return t_end, h, 0, steps


def solve{K}{SUFFIX}(psi_all, t_obs, out_idx, dose_t, dose_amt, dose_dur, rtol, atol, max_steps, lag_sens,
             f, d1, dt, d2, status, fail):
    n_vec = psi_all.shape[0]
    n_obs = t_obs.shape[0]
    n_dose = dose_t.shape[0]
    ny = NY{K}
    nx = N_X
    P = N_ACT
    order_obs = np.argsort(t_obs)
    for v in {RANGE}(n_vec):
        y = np.empty(ny)
        k1 = np.empty(ny)
        k2 = np.empty(ny)
        k3 = np.empty(ny)
        k4 = np.empty(ny)
        k5 = np.empty(ny)
        k6 = np.empty(ny)
        k7 = np.empty(ny)
        yt = np.empty(ny)
        yn = np.empty(ny)
        gm = np.empty(NY0)
        gp = np.empty(NY0)
        fd = np.empty(NDOSE{K})
        vals = np.empty(NOUT{K})
        # lag_event2 work (order 2 with a parameter-dependent lag only): an order-1 augmented state, its
        # derivative and 7 more of that size
        n_lag = NY1 if {K} >= 2 and lag_sens else 0
        w1 = np.empty(n_lag)
        o1 = np.empty(n_lag)
        lg = np.empty((7, n_lag))
        ev_t = np.empty(2 * n_dose)
        ev_k = np.empty(2 * n_dose, dtype=np.int64)
        ev_a = np.empty(2 * n_dose)
        psi = psi_all[v]
        status[v] = 0
        dose{K}(psi, fd)
        F = fd[0]
        LAG = fd[1]
        ne = 0
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
        order_ev = np.argsort(ev_t[:ne])
        init{K}(psi, y)
        u = 0.0
        t = 0.0
        h = 1e-3
        steps = 0
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
                t, h, st, steps = advance{K}(t, te, y, h, psi, u, rtol, atol, max_steps, k1, k2, k3, k4, k5, k6,
                                             k7, yt, yn, steps)
                if st != 0:
                    failed = True
                    status[v] = st
                    break
                if {K} >= 2 and lag_sens:  # second-order jumps of a dose at a parameter-dependent time
                    du = 0.0 if ev_k[e] == 0 else (1.0 if ev_k[e] == 1 else -1.0) * ev_a[e]
                    {LAG_EVENT}
                    u += du
                elif ev_k[e] == 0:
                    if {K} >= 1 and lag_sens:
                        rhs0(t, y[:nx], psi, u, gm)
                    y[CMT] += F * ev_a[e]
                    if {K} >= 1:
                        for k in range(P):
                            y[nx + CMT * P + k] += ev_a[e] * fd[2 + k]
                    if {K} >= 2:
                        q = 0
                        np2 = P * (P + 1) // 2
                        for k in range(P):
                            for l in range(k, P):
                                y[nx + nx * P + CMT * np2 + q] += ev_a[e] * fd[2 + 2 * P + q]
                                q += 1
                    if {K} >= 1 and lag_sens:
                        rhs0(t, y[:nx], psi, u, gp)
                        for i in range(nx):
                            for k in range(P):
                                y[nx + i * P + k] += (gm[i] - gp[i]) * fd[2 + P + k]
                else:
                    sign = 1.0 if ev_k[e] == 1 else -1.0
                    u += sign * ev_a[e]
                    if {K} >= 1 and lag_sens:
                        for k in range(P):
                            y[nx + CMT * P + k] -= sign * F * ev_a[e] * fd[2 + P + k]
                ie += 1
            if failed:
                break
            t, h, st, steps = advance{K}(t, tt, y, h, psi, u, rtol, atol, max_steps, k1, k2, k3, k4, k5, k6, k7,
                                         yt, yn, steps)
            if st != 0:
                status[v] = st
                failed = True
                break
            out{K}(out_idx[io], t, y, psi, u, vals)
            f[v, io] = vals[0]
            if {K} >= 1:
                dt[v, io] = vals[1]
                for k in range(P):
                    d1[v, io, ACTIVE[k]] = vals[2 + k]
            if {K} >= 2:
                q = 0
                for k in range(P):
                    for l in range(k, P):
                        d2[v, io, ACTIVE[k], ACTIVE[l]] = vals[2 + P + q]
                        d2[v, io, ACTIVE[l], ACTIVE[k]] = vals[2 + P + q]
                        q += 1
        if failed:
            fail[v, 0] = t
            for i in range(nx):
                fail[v, 1 + i] = y[i]
            for jo in range(n_obs):
                f[v, jo] = np.nan
'''


# ----------------------------------------------------------------------------------------------
# compile and evaluate
# ----------------------------------------------------------------------------------------------
_FP = generator_fingerprint("ode.py", "codegen.py", "symbolic.py", "special.py", "../kernels/fastexp.py")


def ode_model_hash(spec: ModelSpec) -> str:
    """Cache key of the ODE kernels of ``spec``."""
    return spec_hash(spec, "pkdesign-ode", _FP)


def _load(spec: ModelSpec):
    key = ode_model_hash(spec)
    gm = load_generated_module(key, "pkdode", lambda: generate_ode_source(spec, f"# model hash {key}"))
    module = gm.module
    with _LOCK:
        if not getattr(module, "_pkdesign_jitted", False):
            # wrap every function (numba resolves the module globals when it compiles the solvers)
            guard = CachedJit(enabled=gm.cached, label=f"ODE model {spec.name}")
            jit = dict(error_model="numpy", nogil=True)
            for base in ("rhs", "rhst", "jac", "init", "dose", "out", "lag_side", "lag_event", "advance", "solve"):
                for k in (0, 1, 2):
                    if hasattr(module, f"{base}{k}"):
                        setattr(module, f"{base}{k}", guard.jit(getattr(module, f"{base}{k}"), **jit))
            # large batches of parameter vectors run in parallel threads; small ones keep the serial
            # solver and its short compile
            for k in (0, 1, 2):
                setattr(module, f"solve{k}_parallel", guard.jit(getattr(module, f"solve{k}_parallel"), parallel=True,
                                                                **jit))
            for k in (0, 1, 2):  # the solvers are the entry points: verified cache, recorded compiles
                for name in (f"solve{k}", f"solve{k}_parallel"):
                    setattr(module, name, GuardedKernel(guard, getattr(module, name)))
            module._pkdesign_jitted = True
    return gm


def fill_not_computed(spec: ModelSpec, res: dict, order: int) -> None:
    """Write the derivative entries that are not integrated: 0 for parameters the model does not
    use, NaN for fixed parameters without variability (not needed by any FIM)."""
    if order == 0 or len(spec.derivative_indices()) == len(spec.parameters):
        return
    k1, v1, k2, l2, v2 = spec.not_computed()
    res["d1"][:, :, k1] = v1
    if order >= 2:
        res["d2"][:, :, k2, l2] = v2


class OdeModel(ModelDisplay):
    """An ODE-defined model behind the ``CompiledModel`` interface (``evaluate``)."""

    def __init__(self, spec: ModelSpec):
        if spec.ode is None:
            raise ModelSpecError(f"{spec.origin}: not an ODE model")
        self.spec = spec
        gm = _load(spec)
        self.module, self.generated, self._source = gm.module, gm.generated, gm.source
        self.n_psi = len(spec.parameter_names)
        self.parameter_names = spec.parameter_names
        self.output_names = spec.output_names
        self.lag_depends_on_parameters = bool(sp.sympify(spec.dosing.lag).xreplace(expand_assignments(spec))
                                              .free_symbols)
        self.rtol, self.atol, self.max_steps = spec.ode.rtol, spec.ode.atol, spec.ode.max_steps
        self.solver = spec.ode.solver

    @property
    def source(self) -> str:
        """The generated kernel source (verified against its checksum when it was loaded)."""
        return self._source

    def _doses(self, regimen):
        return dose_arrays(self.spec, regimen, durations_only_for_infusion=True)

    def evaluate(self, psi, times, regimen: Regimen | None = None, output=None, order: int = 1, out=None):
        """Same contract as :meth:`CompiledModel.evaluate` (ψ batch × times; f, d1, dt, d2; ``out``)."""
        psi2, single, t, idx = prepare_inputs(self, psi, times, output, order)
        if order == 2 and self.lag_depends_on_parameters and self.solver != "dopri5":
            raise ModelSpecError(f"{self.spec.origin}: second derivatives of an ODE model whose lag time depends on "
                                 "parameters need solver = \"dopri5\"; use it, or the reduced FIM (first derivatives)")
        dt_, da, dd = self._doses(regimen)
        nv, no, n = psi2.shape[0], t.size, self.n_psi
        res = {"f": np.zeros((nv, no)), "d1": np.zeros((nv, no, n)), "dt": np.zeros((nv, no)),
               "d2": np.zeros((nv, no, n, n) if order >= 2 else (1, 1, 1, 1))}
        status = np.zeros(nv, dtype=np.int64)
        fail = np.zeros((nv, 1 + len(self.spec.ode.states)))
        if self.solver == "dopri5":
            name = f"solve{order}_parallel" if nv >= PARALLEL_MIN_VECTORS else f"solve{order}"
            getattr(self.module, name)(psi2, t, idx, dt_, da, dd, self.rtol, self.atol, self.max_steps,
                                                  self.lag_depends_on_parameters, res["f"], res["d1"], res["dt"],
                                                  res["d2"], status, fail)
        else:
            from .ode_scipy import solve_lsoda

            solve_lsoda(self, order, psi2, t, idx, dt_, da, dd, res, status, fail)
        fill_not_computed(self.spec, res, order)
        bad = np.flatnonzero(status)
        if bad.size:
            v = bad[0]
            why = {1: "the step size fell below 1e-14 (stiff or singular system? try solver = \"lsoda\")",
                   2: f"more than max_steps = {self.max_steps} steps (a stiff system? try solver = \"lsoda\" in "
                      "[ode], or raise max_steps)", 3: "the state became non-finite",
                   4: "the stiff solver failed", 5: "the initial conditions (or their derivatives) are not finite"}.get(int(status[v]), "failure")
            state = ", ".join(f"{s} = {x:.6g}" for s, x in zip(self.spec.ode.states, fail[v, 1:]))
            params = ", ".join(f"{k} = {x!r}" for k, x in zip(self.parameter_names, psi2[v].tolist()))
            raise DesignError(f"model {self.spec.name!r}: the ODE solver failed at t = {fail[v, 0]:.6g} for parameter "
                              f"vector {v} ({params}): {why}; state {state}")
        given = {k: res[k] for k in output_keys(order)}
        if out is not None:  # the solver accumulates into zeroed arrays of its own; copy into the caller's
            for k, a in output_buffers(out, nv, no, n, order, single).items():
                a[...] = given[k]
                given[k] = a
        if single:
            given = {k: v[0] for k, v in given.items()}
        return given

