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

Solvers, chosen per model (``[ode] solver``):
- ``dopri5`` (default): Dormand–Prince 5(4) with adaptive steps, compiled by numba once per installation
  (:mod:`pkdesign.kernels.integrators`; the model's generated functions are reached through its table,
  :mod:`pkdesign.kernels.model_table`); a whole batch of parameter vectors in one call, no Python
  per step.  Error control on states and sensitivities: |err_i| ≤ atol + rtol·|y_i|.
- ``bdf`` (stiff systems): the variable-order BDF/NDF method of :mod:`pkdesign.kernels.bdf` (orders 1-5,
  simplified Newton with the symbolic Jacobian of the augmented system), compiled into the same solver
  (events, batches, threads) as dopri5; the sensitivities are integrated by the same corrector.
- ``rosenbrock`` (stiff systems): the linearly implicit 4(3) method of :mod:`pkdesign.kernels.rosenbrock`,
  compiled the same way (one-step: no history to restart at events; fewer steps at loose tolerances).
- ``auto``: dopri5 or bdf by a stiffness test (:meth:`OdeModel.choose_solver`).
- ``lsoda``: scipy's LSODA with the numba-compiled right-hand side and the symbolic Jacobian of the
  augmented system (orders 0 and 1); Python is called per step (the reference for the compiled solvers).
"""

from __future__ import annotations

import threading

import numpy as np

from ..regimen import Regimen
from ..errors import DesignError, ModelSpecError
from ..kernels.jit import CachedJit
from .cache import generator_fingerprint, load_generated_module, spec_hash
from .runtime import dose_arrays, output_buffers, output_keys, prepare_inputs
from .spec import ModelSpec
from ..kernels.threads import split
from .protocol import ModelDisplay, PicklesBySpec

_LOCK = threading.Lock()
#: batches with at least this many parameter vectors are split across threads (pkdesign.kernels.threads)
PARALLEL_MIN_VECTORS = 64


# ----------------------------------------------------------------------------------------------
# compile and evaluate
# ----------------------------------------------------------------------------------------------
_FP = generator_fingerprint("ode.py", "ode_codegen.py", "printer.py", "symbolic.py", "special.py",
                            "../kernels/fastexp.py", "../kernels/model_table.py", "../kernels/generated_pipeline.py")


def ode_model_hash(spec: ModelSpec) -> str:
    """Cache key of the ODE kernels of ``spec``."""
    return spec_hash(spec, "pkdesign-ode", _FP)


def _load(spec: ModelSpec):
    key = ode_model_hash(spec)

    def make_source():
        from .ode_codegen import generate_ode_source

        return generate_ode_source(spec, f"# model hash {key}")

    gm = load_generated_module(key, "pkdode", make_source)
    module = gm.module
    with _LOCK:
        if not getattr(module, "_pkdesign_jitted", False):
            from ..kernels.generated_pipeline import GeneratedKernelCompiler

            guard = CachedJit(enabled=gm.cached, label=f"ODE model {spec.name}")
            jit = dict(error_model="numpy", nogil=True, pipeline_class=GeneratedKernelCompiler)
            for base in ("rhs", "rhst", "jac", "init", "dose", "out"):
                for k in (0, 1, 2):
                    if hasattr(module, f"{base}{k}"):
                        setattr(module, f"{base}{k}", guard.jit(getattr(module, f"{base}{k}"), **jit))
            module._pkdesign_guard = guard
            module._pkdesign_tables = {}
            module._pkdesign_jitted = True
    return gm


def kernel_table(module, order: int, lag_sens: bool, implicit: bool):
    """The table (:mod:`pkdesign.kernels.model_table`) of the generated ODE ``module`` at derivative ``order``: its
    functions that the solver calls compiled for their fixed signatures (or loaded from the model's cache) and their
    addresses; ``lag_sens`` (the lag time depends on parameters) adds the functions of the lag-time jumps,
    ``implicit`` (Rosenbrock, BDF) the Jacobian.  Built once per module, order and use."""
    key = (order, lag_sens, implicit)
    table = module._pkdesign_tables.get(key)
    if table is not None:
        return table
    from ..kernels import model_table as mt

    wanted = {mt.T_RHS, mt.T_INIT, mt.T_DOSE, mt.T_OUT}
    if implicit:
        wanted.add(mt.T_JAC)
    if lag_sens and order >= 1:
        wanted.add(mt.T_RHS0)
    if lag_sens and order >= 2:
        wanted |= {mt.T_RHS1, mt.T_RHST0}
    guard = module._pkdesign_guard
    with _LOCK, guard.locked():
        addresses = {slot: mt.function_address(getattr(module, name.format(k=order)), sig)
                     for slot, name, sig in mt.FUNCTIONS if slot in wanted}
        guard.record()
    m = module
    sizes = {mt.T_ORDER: order, mt.T_NY: getattr(m, f"NY{order}"), mt.T_NDOSE: getattr(m, f"NDOSE{order}"),
             mt.T_NOUT: getattr(m, f"NOUT{order}"), mt.T_NY1: m.NY1, mt.T_NX: m.N_X, mt.T_NACT: m.N_ACT,
             mt.T_CMT: m.CMT, mt.T_NP2: m.NP2, mt.T_TDEP: m.TDEP}
    table = mt.build_table(sizes, addresses, m.ACTIVE, m.PAIR_K, m.PAIR_L)
    module._pkdesign_tables[key] = table
    return table


def fill_not_computed(spec: ModelSpec, res: dict, order: int) -> None:
    """Write the derivative entries that are not integrated: 0 for parameters the model does not
    use, NaN for fixed parameters without variability and for second derivatives in two parameters without
    variability (not needed by any FIM; ``ModelSpec.not_computed``)."""
    if order == 0:
        return
    k1, v1, k2, l2, v2 = spec.not_computed()
    if k1.size:
        res["d1"][:, :, k1] = v1
    if order >= 2 and k2.size:
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
        self.lag_depends_on_parameters = spec.lag_depends_on_parameters
        self.rtol, self.atol, self.max_steps = spec.ode.rtol, spec.ode.atol, spec.ode.max_steps
        self.solver = spec.ode.solver
        self._auto = None  # solver = "auto": the choice, once made (choose_solver)

    @property
    def source(self) -> str:
        """The generated kernel source (verified against its checksum when it was loaded)."""
        return self._source

    def _doses(self, regimen):
        return dose_arrays(self.spec, regimen, durations_only_for_infusion=True)

    #: ``solver = "auto"`` takes the BDF method when Dormand–Prince would need more than this many steps
    #: for stability alone over the sampling horizon (its stability interval on the negative real axis is ~3.3/h)
    STIFF_STEPS = 5000

    def choose_solver(self, psi, times, amounts) -> str:
        """``"dopri5"`` or ``"bdf"`` for this model at parameters ``psi`` (n_psi,) over ``times``: the
        eigenvalues of the state Jacobian at the start (initial state plus the first dose, if any) give the
        stability-limited step of the explicit method; kept for later calls.  A run of the explicit method that
        still exceeds ``max_steps`` switches to the implicit one (``evaluate``)."""
        if self._auto is None:
            m = self.module
            y = np.zeros(m.NY0)
            m.init0(np.asarray(psi, dtype=float), y)
            if m.CMT >= 0 and len(amounts):
                y[m.CMT] += float(amounts[0])
            J = np.zeros((m.NY0, m.NY0))
            m.jac0(0.0, y, np.asarray(psi, dtype=float), 0.0, J)
            lam = np.linalg.eigvals(J) if np.all(np.isfinite(J)) else np.zeros(1)
            horizon = float(np.max(times)) if np.size(times) else 0.0
            steps = np.max(np.abs(lam.real), initial=0.0) * horizon / 3.3
            self._auto = "bdf" if steps > self.STIFF_STEPS else "dopri5"
        return self._auto

    def _compiled_solve(self, solver, order, psi2, t, idx, dt_, da, dd, res, status, fail):
        implicit = solver != "dopri5"
        if implicit and not hasattr(self.module, f"jac{order}"):
            raise ModelSpecError(f"{self.spec.origin}: the {solver} solver needs the Jacobian of the order-{order} "
                                 "system, generated for models with solver = \"bdf\", \"rosenbrock\" or \"auto\"")
        from ..kernels.integrators import solver as compiled_solver

        lag = bool(self.lag_depends_on_parameters)
        table = kernel_table(self.module, order, lag, implicit)
        run = compiled_solver(solver)
        f64 = np.ascontiguousarray
        psi2 = f64(psi2, dtype=float)
        fixed = (f64(t, dtype=float), f64(idx, dtype=np.int64), f64(dt_, dtype=float), f64(da, dtype=float),
                 f64(dd, dtype=float), float(self.rtol), float(self.atol), int(self.max_steps), lag)
        d2 = res["d2"]

        def chunk(sl):
            run(psi2[sl], *fixed, res["f"][sl], res["d1"][sl], res["dt"][sl], d2 if order < 2 else d2[sl],
                status[sl], fail[sl], table)

        split(chunk, psi2.shape[0], PARALLEL_MIN_VECTORS)  # the solver releases the GIL

    def evaluate(self, psi, times, regimen: Regimen | None = None, output=None, order: int = 1, out=None):
        """Same contract as :meth:`CompiledModel.evaluate` (ψ batch × times; f, d1, dt, d2; ``out``)."""
        psi2, single, t, idx = prepare_inputs(self, psi, times, output, order)
        if order == 2 and self.lag_depends_on_parameters and self.solver == "lsoda":
            raise ModelSpecError(f"{self.spec.origin}: second derivatives of an ODE model whose lag time depends on "
                                 "parameters need a compiled solver (\"dopri5\", \"bdf\" or \"rosenbrock\"); use one, or the "
                                 "reduced FIM (first derivatives)")
        dt_, da, dd = self._doses(regimen)
        nv, no, n = psi2.shape[0], t.size, self.n_psi
        res = {"f": np.zeros((nv, no)), "d1": np.zeros((nv, no, n)), "dt": np.zeros((nv, no)),
               "d2": np.zeros((nv, no, n, n) if order >= 2 else (1, 1, 1, 1))}
        status = np.zeros(nv, dtype=np.int64)
        fail = np.zeros((nv, 1 + len(self.spec.ode.states)))
        solver = self.solver if self.solver != "auto" else self.choose_solver(psi2[0], t, da)
        if solver in ("dopri5", "bdf", "rosenbrock"):
            self._compiled_solve(solver, order, psi2, t, idx, dt_, da, dd, res, status, fail)
            if self.solver == "auto" and solver == "dopri5" and np.any(status == 2):
                # too many steps for the explicit method: the system is stiff after all (for these parameters)
                self._auto = solver = "bdf"
                status[:] = 0
                self._compiled_solve("bdf", order, psi2, t, idx, dt_, da, dd, res, status, fail)
        else:
            from .ode_scipy import solve_lsoda

            solve_lsoda(self, order, psi2, t, idx, dt_, da, dd, res, status, fail)
        fill_not_computed(self.spec, res, order)
        bad = np.flatnonzero(status)
        if bad.size:
            v = bad[0]
            stiff_hint = ("" if solver in ("bdf", "rosenbrock", "lsoda") else
                          " (a stiff system? try solver = \"bdf\" or \"auto\" in [ode])")
            why = {1: f"the step size fell below 1e-14{stiff_hint or ' (a singular system?)'}",
                   2: f"more than max_steps = {self.max_steps} steps{stiff_hint}; raise max_steps in [ode] if the "
                      "horizon is long", 3: "the state became non-finite",
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

