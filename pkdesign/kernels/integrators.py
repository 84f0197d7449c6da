"""The compiled ODE solvers: one per integrator (Dormand–Prince, RODAS4, BDF), compiled once per installation.

:func:`solver` returns :func:`pkdesign.kernels.dopri5.solve` (doses, lag-time jumps, outputs) around the chosen
integrator's ``advance``, compiled with a fixed signature the first time a process asks for it (then loaded from
numba's cache, verified like the FIM kernels: :mod:`pkdesign.kernels.jit`).  The model is an argument, its table
(:mod:`pkdesign.kernels.model_table`), so every ODE model shares these and compiles only its own generated functions.
Further compilation is disabled, so a call with other argument types fails loudly instead of compiling (and caching,
unverified) another version.  Imported by :mod:`pkdesign.model.ode` when a compiled solver is first used.

All the compiled functions are attributed to this file (one cache directory and manifest) under names that carry a
digest of the integrators' sources: numba's cache key holds a function's own bytecode, not its callees', so an edited
integrator or helper gets new cache entries instead of loading machine code compiled from the old one.

Signature of every solver (see ``dopri5.solve``): ``(psi_all (n_vec, n_psi), t_obs (n_obs,), out_idx (n_obs,) int64,
dose_t, dose_amt, dose_dur (n_dose,), rtol, atol, max_steps int64, lag_sens bool, f (n_vec, n_obs), d1 (n_vec, n_obs,
n_psi), dt (n_vec, n_obs), d2 (n_vec, n_obs, n_psi, n_psi), status (n_vec,) int64, fail (n_vec, 1 + n_x), table)``,
all arrays C-contiguous float64 unless said.
"""

from __future__ import annotations

import hashlib
import math
import threading
from pathlib import Path

import numpy as np
from numba import types

from . import bdf, dopri5, model_table, rosenbrock
from . import solver_common as common
from .jit import CachedJit, rebind

_GUARD = CachedJit(label="ODE integrators")
_LOCK = threading.Lock()
_SOLVERS: dict = {}
_OPTIONS = dict(error_model="numpy", nogil=True)

F1, F2, F3, F4 = (types.Array(types.float64, n, "C") for n in (1, 2, 3, 4))
I1 = types.int64[::1]
SIGNATURE = types.none(F2, F1, I1, F1, F1, F1, types.float64, types.float64, types.int64, types.boolean,
                       F2, F3, F2, F4, I1, F2, I1)
#: the integrator modules by solver name
METHODS = {"dopri5": dopri5, "rosenbrock": rosenbrock, "bdf": bdf}
_SOURCES = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (
    dopri5, rosenbrock, bdf, common, model_table)) + Path(__file__).read_bytes()).hexdigest()[:12]


def _constants(mod) -> dict:
    return {c: v for c, v in vars(mod).items() if c.isupper()}


_CALLEES: dict = {}


def _jit(py_func, name: str, namespace: dict, signature=None, **options):
    """``py_func`` with its globals from ``namespace``, compiled (cached) as ``name``; the callees (no signature:
    typed by their callers) once per process."""
    if signature is None and name in _CALLEES:
        return _CALLEES[name]
    disp = _GUARD.jit(rebind(py_func, f"{name}_{_SOURCES}", namespace, __file__), signature, **_OPTIONS, **options)
    if signature is None:
        _CALLEES[name] = disp
    return disp


#: the integrators' model-independent helpers (pkdesign.kernels.solver_common)
COMMON = ("lu_factor", "lu_solve", "lu_inverse", "invert_state_block", "error_norm", "step_control", "sort_index",
          "change_d", "extrapolate")


def _helpers() -> dict:
    """The helpers as callees (typed and compiled as part of the first integrator that calls them)."""
    ns = {"__name__": __name__, "math": math, "np": np}
    for name in COMMON:
        ns[name] = _jit(getattr(common, name), name, ns)
    return {name: ns[name] for name in COMMON}


def _build(method: str):
    """Compile the solver of ``method``."""
    base = {"__name__": __name__, "math": math, "np": np, **_helpers(), **_constants(model_table),
            **{name: getattr(model_table, name) for name in ("call_rhs", "call_jac", "call_init", "call_out")}}
    ns = {**base, **_constants(dopri5)}
    ns["lag_side2"] = _jit(dopri5.lag_side2, "lag_side2", ns)
    ns["lag_event2"] = _jit(dopri5.lag_event2, "lag_event2", ns)
    mod = METHODS[method]
    if method == "dopri5":
        ns["advance"] = _jit(dopri5.advance, "advance_dopri5", ns)
    else:
        implicit = {**base, **_constants(rosenbrock)}
        for name in ("stage_solve", "jacobian_at"):
            implicit[name] = _jit(getattr(rosenbrock, name), name, implicit)
        if method == "rosenbrock":
            implicit["step"] = _jit(rosenbrock.step, "rodas4_step", implicit)
            ns["advance"] = _jit(rosenbrock.advance, "advance_rodas4", implicit)
        else:
            multistep = {**implicit, **_constants(bdf)}
            for name in ("restart", "newton"):
                multistep[name] = _jit(getattr(bdf, name), f"bdf_{name}", multistep)
            ns["advance"] = _jit(bdf.advance, "advance_bdf", multistep)
    ns["WORK_BASE"] = mod.work_rows(0)
    ns["WORK_PER_NY"] = mod.work_rows(1) - mod.work_rows(0)
    return _jit(dopri5.solve, f"solve_{method}", ns, SIGNATURE)


def solver(method: str):
    """The compiled solver of ``method`` (``"dopri5"``, ``"rosenbrock"`` or ``"bdf"``), compiled (or loaded from the
    cache) on first use in the process.  It releases the GIL: large batches are split across threads by the caller
    (:mod:`pkdesign.kernels.threads`; a ``prange`` twin took longer to compile than the solver itself)."""
    disp = _SOLVERS.get(method)
    if disp is None:
        with _LOCK:
            disp = _SOLVERS.get(method)
            if disp is None:
                disp = _SOLVERS[method] = _build(method)
    return disp
