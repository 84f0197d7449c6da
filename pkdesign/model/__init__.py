"""The model layer: model files and Python hooks -> ModelSpec -> derivatives -> numba kernels."""

from .cache import cache_dir
from .compile import CompiledModel, model_hash
from .expr import parse_expression
from .hooks import CallableModel, model_from_sympy
from .parse import load_model, parse_model_text
from .factory import compile_model
from .ode import OdeModel
from .protocol import PredictionModel
from .spec import ModelSpec

__all__ = [
    "CallableModel",
    "CompiledModel",
    "ModelSpec",
    "OdeModel",
    "PredictionModel",
    "cache_dir",
    "compile_model",
    "load_model",
    "model_from_sympy",
    "model_hash",
    "parse_expression",
    "parse_model_text",
]
