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
(``RHS``, ``JAC``, ...); inside a kernel ``call_rhs(table[T_RHS], t, y, psi, u, dy)`` calls it (an indirect call
in numba's calling convention).  The dispatchers must stay alive while the table is used: the model's
generated module holds them.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.core import errors
from numba.extending import intrinsic
from .jit import fast_typing

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


def _typed(signature, address, args):
    """Typing and code of a call of ``signature`` at an int64 address: numba's calling convention, as a direct call
    (numba's first-class function type works too, but its fallback path through the interpreter defeats the
    reference-count pruning: every array argument was then incremented and decremented atomically per call, which
    made the implicit solvers up to 2× slower).  The generated functions cannot raise (``error_model="numpy"``, no
    bounds checks), so the call's status is not read."""
    if address != types.int64 or tuple(args) != tuple(signature.args):
        raise errors.TypingError(f"a model function of signature {signature} called with {(address, *args)}")

    def codegen(context, builder, sig, llargs):
        fnty = context.call_conv.get_function_type(signature.return_type, signature.args)
        pointer = builder.inttoptr(llargs[0], fnty.as_pointer())
        _, result = context.call_conv.call_function(builder, pointer, signature.return_type, signature.args,
                                                    llargs[1:])
        return result

    return signature.return_type(types.int64, *signature.args), codegen


@intrinsic
def call_rhs(typingctx, address, t, y, psi, u, dy):
    """``rhsK(t, y, psi, u, dy)`` (or ``rhst0``) of the model whose function address is ``address``."""
    return _typed(RHS, address, (t, y, psi, u, dy))


@intrinsic
def call_jac(typingctx, address, t, y, psi, u, J):
    """``jacK(t, y, psi, u, J)`` at ``address``."""
    return _typed(JAC, address, (t, y, psi, u, J))


@intrinsic
def call_init(typingctx, address, psi, y):
    """``initK(psi, y)`` or ``doseK(psi, fd)`` at ``address``."""
    return _typed(INIT, address, (psi, y))


@intrinsic
def call_out(typingctx, address, o, t, y, psi, u, vals):
    """``outK(o, t, y, psi, u, vals)`` at ``address``."""
    return _typed(OUT, address, (o, t, y, psi, u, vals))


def function_address(dispatcher, signature) -> int:
    """The address of ``dispatcher``'s compiled overload for ``signature`` (compiled or loaded from its cache now if
    needed), in numba's calling convention: what ``call_rhs`` & co. call."""
    with fast_typing():
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
