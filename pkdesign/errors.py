"""The exception family of pkdesign.

Every error a user can trigger with bad input is a ``PkdesignError``; messages say what was
expected, what arrived and where (file, key, index).  The CLI turns these into exit code 2
without a traceback; anything else is a bug.
"""

from __future__ import annotations


def fmt(value) -> str:
    """A number for a message: plain Python repr (no ``np.float64(...)``), nothing rounded away."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy scalar
        value = value.item()
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dict):
        items = list(value.items())
        body = ", ".join(f"{k!r}: {fmt(v)}" for k, v in items[:6])
        return "{" + body + (f", ... ({len(items)} entries)" if len(items) > 6 else "") + "}"
    if isinstance(value, (list, tuple)):
        body = ", ".join(fmt(v) for v in value[:6])
        return "[" + body + (f", ... ({len(value)} entries)" if len(value) > 6 else "") + "]"
    if isinstance(value, str) and len(value) > 80:
        return repr(value[:60] + " ...")
    return repr(value)


class PkdesignError(Exception):
    """Base class of all errors raised by pkdesign on bad input."""


class ModelSpecError(PkdesignError, ValueError):
    """A model file or model specification is malformed or inconsistent."""


class ExpressionError(ModelSpecError):
    """An expression in a model file uses something outside the allowed grammar."""


class DesignError(PkdesignError, ValueError):
    """A design (groups, doses, sampling times) is malformed or inconsistent with the model."""


class NonIdentifiableError(PkdesignError, ArithmeticError):
    """The Fisher information matrix is singular: some parameter combination is not estimable.

    Attributes
    ----------
    directions : list of dict
        Each null direction as ``{parameter name: coefficient}`` (unit norm).
    """

    def __init__(self, message: str, directions=None):
        super().__init__(message)
        self.directions = directions or []


class SearchError(PkdesignError, RuntimeError):
    """A design search failed or stopped without a usable result."""
