"""The exception family of pkdesign.

Every error a user can trigger with bad input is a ``PkdesignError``; messages say what was
expected, what arrived and where (file, key, index).  The CLI turns these into exit code 2
without a traceback; anything else is a bug.
"""

from __future__ import annotations


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
