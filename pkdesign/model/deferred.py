"""Sympy values that are loaded only when read: what lets a cached model start without importing sympy.

A :class:`ModelSpec` holds its formulas as sympy objects, but a process that finds the model's kernels in the
cache never needs them: importing sympy alone costs ~0.25 s of every command.  The spec's formula fields are
therefore :class:`SympyField` descriptors.  Built by the parser they hold sympy objects as usual; read back from
the model record cache (:mod:`pkdesign.model.records`) they hold :class:`Deferred` pickles of those objects,
turned back into sympy on first read (sympy is imported then, not before).  Readers see sympy either way.
"""

from __future__ import annotations

import io
import pickle


class Deferred:
    """A sympy object stored as its pickle (``blob``), or the integer ``number`` (a default such as ``F = 1``)."""

    __slots__ = ("blob", "number")

    def __init__(self, blob: bytes | None = None, number: int | None = None):
        self.blob, self.number = blob, number

    def load(self):
        if self.blob is None:
            import sympy

            return sympy.Integer(self.number)
        return pickle.loads(self.blob)

    def __reduce__(self):
        return Deferred, (self.blob, self.number)

    def __repr__(self) -> str:
        return f"<deferred sympy value, {len(self.blob) if self.blob is not None else 0} bytes>"


def materialize(value):
    """``value`` with every :class:`Deferred` in it (alone, or inside tuples) loaded."""
    if isinstance(value, Deferred):
        return value.load()
    if isinstance(value, tuple) and any(isinstance(v, (Deferred, tuple)) for v in value):
        return tuple(materialize(v) for v in value)
    return value


class SympyField:
    """Data descriptor for a frozen-dataclass field holding sympy values (an expression or tuples of them).

    The value is kept in the instance ``__dict__`` under the field's own name (so pickles of specs look as
    they always did); a :class:`Deferred` there is loaded on the first read and the result kept.  ``default``
    makes the field optional: an int stands for ``sympy.Integer(default)`` (no sympy import to declare it), a
    tuple is the value itself; without it the field is required.
    """

    def __init__(self, default: int | tuple | None = None):
        self.default = default

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            if self.default is None:
                raise AttributeError(self.name)  # dataclasses: no default, the field is required
            return self.default if isinstance(self.default, tuple) else Deferred(number=self.default)
        d = obj.__dict__
        value = d[self.name]
        loaded = materialize(value)
        if loaded is not value:
            d[self.name] = loaded
        return loaded

    def __set__(self, obj, value):
        obj.__dict__[self.name] = value


def dumps_deferred(obj) -> bytes:
    """Pickle ``obj`` with every sympy object in it replaced by a :class:`Deferred` of its own pickle, so that
    ``pickle.loads`` of the result imports no sympy (the objects must sit in :class:`SympyField` fields, which
    load them on read)."""
    import sympy

    class _Pickler(pickle.Pickler):
        def reducer_override(self, value):
            if isinstance(value, sympy.Basic):
                return Deferred, (pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), None)
            return NotImplemented

    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()
