"""ODE models, symbolic half: the augmented sensitivity system and the generated kernel source (sympy).

Imported only when an ODE model's kernels are not in the cache (see :mod:`pkdesign.model.ode`, whose docstring
gives the equations).
"""

from __future__ import annotations

import sympy as sp

from .printer import KernelPrinter
from .special import RUNTIME_IMPORTS, ediff_source
from .spec import IMPLICIT_SOLVERS, ModelSpec
from .symbolic import expand_assignments, finite_powers


# ----------------------------------------------------------------------------------------------
# symbolic: the augmented system and everything the integrator needs
# ----------------------------------------------------------------------------------------------
def _read_columns(i: int, n: int, P: int) -> int:
    """The columns ``0 .. c-1`` of row ``i`` of the augmented Jacobian that the implicit solvers read.

    The augmented system (n states, then n·P first-order, then the second-order sensitivities) is block lower
    triangular with the state Jacobian J_x repeated on every diagonal block: the solvers invert the state block once
    and reach the other blocks by forward substitution through their couplings to earlier blocks
    (:func:`pkdesign.kernels.rosenbrock.stage_solve`), so the copies of J_x on the sensitivity rows are never
    read and not generated (LSODA, which takes the whole matrix, is not used with these models)."""
    return n if i < n + n * P else n + n * P  # states and first-order rows: the states; second order: + S


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
        pairs = spec.second_order_pairs()  # (k, l) positions in self.psi: at least one parameter with an η
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
        # Jacobian of the augmented system: LSODA (orders 0, 1) and the compiled implicit solvers (every order)
        # (the implicit solvers read only part of it: see _read_columns; rows are cut there)
        self.jac = None
        if ode.solver in IMPLICIT_SOLVERS:
            self.jac = [[sp.diff(r, yj) for yj in ys[:_read_columns(i, n, P)]] for i, r in enumerate(rhs)]
        elif order <= 1:
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
    """Python source of the ODE kernels of ``spec`` (orders 0, 1, 2); names as in :mod:`pkdesign.kernels.dopri5`,
    and :mod:`pkdesign.kernels.model_table` (the signatures through which the compiled solvers call them)."""
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
    parts.append(f"N_X = {len(spec.ode.states)}")
    g0 = OdeDerivatives(spec, 0).g
    parts.append(f"# whether the right-hand side depends on t explicitly (the Rosenbrock solver then needs df/dt)\n"
                 f"TDEP = {any(sp.Symbol('t') in e.free_symbols for e in g0)}")
    parts.append(f"N_PSI = {P}")
    active = spec.derivative_indices()
    parts.append(f"# the parameters whose sensitivities are integrated (indices into psi)\n"
                 f"ACTIVE = np.array({active!r}, dtype=np.int64)\nN_ACT = {len(active)}")
    pairs = spec.second_order_pairs()
    parts.append(f"# the second-order sensitivities integrated: pairs (PAIR_K[q], PAIR_L[q]) of positions in ACTIVE\n"
                 f"PAIR_K = np.array({[k for k, _ in pairs]!r}, dtype=np.int64)\n"
                 f"PAIR_L = np.array({[l for _, l in pairs]!r}, dtype=np.int64)\nNP2 = {len(pairs)}")
    parts.append(f"CMT = {spec.ode.states.index(spec.dosing.compartment) if spec.dosing.compartment else -1}")
    parts.append(ediff_source(printer.ediff_orders))
    return "\n\n".join(parts) + "\n"
