"""``compile_model``: the kernels of a ``ModelSpec``, closed form or ODE, behind one protocol."""

from __future__ import annotations

from .compile import CompiledModel
from .ode import OdeModel
from .spec import ModelSpec


def compile_model(spec: ModelSpec):
    """Generate (or load from the cache) the kernels of ``spec``: a ``CompiledModel`` for closed
    forms, an ``OdeModel`` (same ``evaluate`` interface) for models with an ``[ode]`` section."""
    if spec.ode is not None:
        return OdeModel(spec)
    return CompiledModel(spec)
