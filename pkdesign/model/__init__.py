"""The model layer: model files and Python hooks -> ModelSpec -> derivatives -> numba kernels.

Names are imported on first use (PEP 562): reading a cached model needs neither sympy (the parser, the
symbolic hooks) nor numba's compiler until kernels are called.
"""

from __future__ import annotations

import importlib

#: public name -> module that defines it
_EXPORTS = {
    "cache_dir": ".cache",
    "CompiledModel": ".compile",
    "model_hash": ".compile",
    "parse_expression": ".expr",
    "CallableModel": ".hooks",
    "model_from_sympy": ".hooks",
    "load_model": ".records",
    "parse_model_text": ".parse",
    "compile_model": ".factory",
    "OdeModel": ".ode",
    "PredictionModel": ".protocol",
    "ModelSpec": ".spec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pkdesign.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
