"""How the compiled ODE integrators reach a model: its *table*, one int64 array per model and derivative order.

The integrators (:mod:`pkdesign.kernels.dopri5`, :mod:`~pkdesign.kernels.rosenbrock`, :mod:`~pkdesign.kernels.bdf`)
are compiled once per installation (:mod:`pkdesign.kernels.integrators`), not once per model: the model's sizes and
the addresses of its compiled generated functions (right-hand side, Jacobian, initial values, dose quantities,
outputs; names and arguments in :mod:`pkdesign.model.ode_codegen`) are run-time values, read from the table:

=================  =====================================================================================
``T_ORDER``        derivative order K of the augmented system (0, 1, 2)
``T_NY``           its length (states, first-order, second-order sensitivities)
``T_NDOSE``        length of the dose-quantity vector (F, LAG and their derivatives)
``T_NOUT``         values per output (value, ∂/∂t, first and second ψ-derivatives)
``T_NY1``          length of the order-1 augmented system (for the second-order lag jumps)
``T_NX``           states
``T_NACT``         parameters whose sensitivities are integrated (P)
``T_CMT``          dosing compartment (-1: none)
``T_NP2``          second-order pairs integrated
``T_TDEP``         1 if the right-hand side depends on t explicitly
``T_RHS`` …        function addresses: ``rhsK``, ``jacK``, ``initK``, ``doseK``, ``outK``, ``rhs0``, ``rhs1``,
                   ``rhst0`` (0 where the order or solver never calls it)
``T_INDEX``        then ACTIVE (P entries: indices into ψ), PAIR_K and PAIR_L (NP2 entries each: positions in
                   ACTIVE)
=================  =====================================================================================

A function address is the entry point of the dispatcher's compiled overload for the fixed signature below
(``RHS``, ``JAC``, ...); inside a kernel ``rhs_at(table[T_RHS])`` turns it back into a callable (an indirect call,
numba's first-class function type).  The dispatchers must stay alive while the table is used: the model's
generated module holds them.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

F1 = types.float64[::1]
F2 = types.float64[:, ::1]
#: signatures of the generated functions (t, y, ψ, u, ...): see pkdesign.model.ode_codegen
RHS = types.none(types.float64, F1, F1, types.float64, F1)  # rhsK(t, y, psi, u, dy), also rhst0
JAC = types.none(types.float64, F1, F1, types.float64, F2)  # jacK(t, y, psi, u, J)
INIT = types.none(F1, F1)  # initK(psi, y), doseK(psi, fd)
OUT = types.none(types.int64, types.float64, F1, F1, types.float64, F1)  # outK(o, t, y, psi, u, vals)

(T_ORDER, T_NY, T_NDOSE, T_NOUT, T_NY1, T_NX, T_NACT, T_CMT, T_NP2, T_TDEP,
 T_RHS, T_JAC, T_INIT, T_DOSE, T_OUT, T_RHS0, T_RHS1, T_RHST0, T_INDEX) = range(19)
#: (slot, generated function name with {k} for the order, signature) of the function addresses
FUNCTIONS = ((T_RHS, "rhs{k}", RHS), (T_JAC, "jac{k}", JAC), (T_INIT, "init{k}", INIT), (T_DOSE, "dose{k}", INIT),
             (T_OUT, "out{k}", OUT), (T_RHS0, "rhs0", RHS), (T_RHS1, "rhs1", RHS), (T_RHST0, "rhst0", RHS))


def _function_at(signature):
    """An intrinsic: int64 address of a compiled function of ``signature`` → a callable first-class function."""
    fty = types.FunctionType(signature)

    @intrinsic
    def function_at(typingctx, address):
        def codegen(context, builder, sig, args):
            f = cgutils.create_struct_proxy(fty)(context, builder)
            pointer = builder.inttoptr(args[0], context.get_value_type(types.voidptr))
            f.c_addr = f.py_addr = context.get_constant_null(types.voidptr)  # (numba calls jit_addr when set)
            f.jit_addr = pointer
            return f._getvalue()

        return fty(types.int64), codegen

    return function_at


rhs_at = _function_at(RHS)
jac_at = _function_at(JAC)
init_at = _function_at(INIT)
out_at = _function_at(OUT)


def function_address(dispatcher, signature) -> int:
    """The address of ``dispatcher``'s compiled overload for ``signature`` (compiled or loaded from its cache now if
    needed), in numba's calling convention: what ``rhs_at`` & co. call."""
    dispatcher.compile(signature.args)
    cres = dispatcher.overloads[signature.args]
    return int(cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name))


def build_table(sizes: dict, addresses: dict, active, pair_k, pair_l) -> np.ndarray:
    """The table of one model and order: ``sizes`` maps the ``T_*`` size slots to values, ``addresses`` the
    function slots (missing ones are 0: never called)."""
    head = np.zeros(T_INDEX, dtype=np.int64)
    for slot, value in {**sizes, **addresses}.items():
        head[slot] = int(value)
    return np.concatenate([head, np.asarray(active, dtype=np.int64), np.asarray(pair_k, dtype=np.int64),
                           np.asarray(pair_l, dtype=np.int64)])
