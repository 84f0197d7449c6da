"""The model layer: model files and Python hooks -> ModelSpec -> derivatives -> numba kernels."""

from .compile import CompiledModel, cache_dir, compile_model, model_hash
from .expr import parse_expression
from .hooks import CallableModel, model_from_sympy
from .parse import load_model, parse_model_text
from .ode import OdeModel
from .spec import ModelSpec

__all__ = [
    "CallableModel",
    "CompiledModel",
    "ModelSpec",
    "OdeModel",
    "cache_dir",
    "compile_model",
    "load_model",
    "model_from_sympy",
    "model_hash",
    "parse_expression",
    "parse_model_text",
]
