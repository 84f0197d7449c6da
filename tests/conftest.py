"""Shared fixtures: compiled models are built once per test session (numba compiles once)."""

from pathlib import Path

import pytest

import pkdesign as pk

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
# copies of ../shared/reference (published numbers with their sources; see tests/reference/README.md)
REFERENCE = ROOT / "tests" / "reference"

_COMPILED = {}


def compiled(name: str):
    """Load and compile a bundled model once per session."""
    if name not in _COMPILED:
        spec = pk.load_model(MODELS / f"{name}.toml")
        _COMPILED[name] = (spec, pk.compile_model(spec))
    return _COMPILED[name]


@pytest.fixture(scope="session")
def warfarin():
    return compiled("warfarin")
