"""numba's compilation pipeline for the *generated* model kernels, without the passes their code never needs.

The generated kernels (closed forms: :mod:`pkdesign.model.codegen`; ODE right-hand sides, Jacobians and outputs:
:mod:`pkdesign.model.ode_codegen`) are long straight-line arithmetic in loops: no ``with`` blocks, closures,
comprehensions, ``raise``, ``literally``/``literal_unroll``, constant-condition branches or array expressions.  numba's
front end, which is most of their compile time (~1 ms per operation), still runs the passes that handle those on
every statement.  :class:`GeneratedKernelCompiler` is numba's default nopython pipeline without them
(:data:`UNUSED`); everything that types, inlines the ``inline="always"`` helpers (``fexp``), builds SSA and lowers is
kept.  Measured on three_comp_infusion's order-2 kernel (1,076 lines): 10.0 s → 7.6 s, the compiled results
bit-identical.  A construct that needed a dropped pass would fail to compile (a loud error), never compute
differently: the dropped passes rewrite features the code does not use, or only prune and fuse.

Hand-written kernels (FIM, integrators) keep numba's full pipeline.  Imported only where a generated kernel is
compiled.
"""

from numba.core import typed_passes, untyped_passes
from numba.core.compiler import CompilerBase, DefaultPassBuilder

#: passes of the default nopython pipeline that generated code never needs
UNUSED = (
    untyped_passes.WithLifting,  # `with` contexts (objmode, ...)
    untyped_passes.InlineClosureLikes,  # closures, comprehensions, make_function
    untyped_passes.MakeFunctionToJitFunction,  # inner functions
    untyped_passes.RewriteSemanticConstants,  # len(tuple), isinstance as constants
    untyped_passes.DeadBranchPrune,  # branches on constants
    untyped_passes.GenericRewrites,  # constant getitem/raise rewrites
    untyped_passes.RewriteDynamicRaises,  # raise with run-time arguments
    untyped_passes.FindLiterallyCalls,  # numba.literally
    untyped_passes.LiteralUnroll,  # numba.literal_unroll
    typed_passes.NopythonRewrites,  # array-expression fusion
)


class GeneratedKernelCompiler(CompilerBase):
    """numba's nopython pipeline without :data:`UNUSED` (pass it as ``pipeline_class``)."""

    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.passes = [(p, what) for p, what in pm.passes if not (isinstance(p, type) and issubclass(p, UNUSED))]
        pm.finalize()
        return [pm]
