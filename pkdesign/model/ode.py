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

from ..regimen import Regimen
from ..errors import DesignError, ModelSpecError
from ..kernels import dopri5
from ..kernels.jit import CachedJit
from .printer import KernelPrinter
from .cache import generator_fingerprint, load_generated_module, spec_hash
from .runtime import dose_arrays, output_buffers, output_keys, prepare_inputs
from .special import RUNTIME_IMPORTS, ediff_source
from .spec import ModelSpec
from .symbolic import expand_assignments, finite_powers
from .protocol import ModelDisplay, PicklesBySpec

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
    """Python source of the ODE kernels of ``spec`` (orders 0, 1, 2); names as in :mod:`pkdesign.kernels.dopri5`,
    whose integrator :func:`~pkdesign.kernels.dopri5.bind` compiles against them."""
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
    parts.append(f"N_PSI = {P}")
    active = spec.derivative_indices()
    parts.append(f"# the parameters whose sensitivities are integrated (indices into psi)\n"
                 f"ACTIVE = np.array({active!r}, dtype=np.int64)\nN_ACT = {len(active)}")
    parts.append(f"CMT = {spec.ode.states.index(spec.dosing.compartment) if spec.dosing.compartment else -1}")
    parts.append(ediff_source(printer.ediff_orders))
    return "\n\n".join(parts) + "\n"




# ----------------------------------------------------------------------------------------------
# compile and evaluate
# ----------------------------------------------------------------------------------------------
_FP = generator_fingerprint("ode.py", "../kernels/dopri5.py", "printer.py", "symbolic.py", "special.py",
                            "../kernels/fastexp.py")


def ode_model_hash(spec: ModelSpec) -> str:
    """Cache key of the ODE kernels of ``spec``."""
    return spec_hash(spec, "pkdesign-ode", _FP)


def _load(spec: ModelSpec):
    key = ode_model_hash(spec)
    gm = load_generated_module(key, "pkdode", lambda: generate_ode_source(spec, f"# model hash {key}"))
    module = gm.module
    with _LOCK:
        if not getattr(module, "_pkdesign_jitted", False):
            guard = CachedJit(enabled=gm.cached, label=f"ODE model {spec.name}")
            jit = dict(error_model="numpy", nogil=True)
            for base in ("rhs", "rhst", "jac", "init", "dose", "out"):
                for k in (0, 1, 2):
                    if hasattr(module, f"{base}{k}"):
                        setattr(module, f"{base}{k}", guard.jit(getattr(module, f"{base}{k}"), **jit))
            dopri5.bind(module, guard, **jit)
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


class OdeModel(ModelDisplay, PicklesBySpec):
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

