"""Safe parsing of model-file expressions into sympy objects.

First step of the model pipeline (model file -> ``ModelSpec``).  Model files are data: an
expression is parsed with :func:`ast.parse` and only an allowlist of node types is turned into
sympy objects, built directly (never ``eval``, ``sympify`` or ``parse_expr``, which evaluate
Python code).  Allowed: numbers, names declared by the model, ``+ - * / **``, unary minus,
comparisons, ``and``/``or``/``not`` inside conditions, ``a if cond else b`` and the functions
in :data:`FUNCTIONS`.
"""

from __future__ import annotations

import ast
import math

import sympy as sp

from ..errors import ExpressionError
from .special import ediff as _ediff

#: Functions allowed in expressions: name -> (sympy builder, number of arguments or None for >= 1).
FUNCTIONS = {
    "exp": (sp.exp, 1),
    "log": (sp.log, 1),
    "ln": (sp.log, 1),
    "log10": (lambda x: sp.log(x, 10), 1),
    "sqrt": (sp.sqrt, 1),
    "abs": (sp.Abs, 1),
    "min": (sp.Min, None),
    "max": (sp.Max, None),
    "sin": (sp.sin, 1),
    "cos": (sp.cos, 1),
    "tan": (sp.tan, 1),
    "acos": (sp.acos, 1),
    "asin": (sp.asin, 1),
    "atan": (sp.atan, 1),
    "ediff": (_ediff, 2),  # (exp(-x) - exp(-y))/(y - x), finite at x == y: see pkdesign.model.special
}

#: Named constants allowed in expressions.
CONSTANTS = {"pi": sp.pi, "e": sp.E}

MAX_LENGTH = 5000          # characters in one expression
MAX_NODES = 2000           # ast nodes in one expression
MAX_DEPTH = 60             # nesting depth of the syntax tree (calls, parentheses, operators)
MAX_QUOTE = 200            # characters of an expression quoted in an error message
MAX_INT_EXPONENT = 64      # |n| for a numeric power n
MAX_ABS_NUMBER = 1e300     # literals and folded constants beyond this are rejected

_COMPARE = {
    ast.Lt: sp.StrictLessThan,
    ast.LtE: sp.LessThan,
    ast.Gt: sp.StrictGreaterThan,
    ast.GtE: sp.GreaterThan,
}


def parse_expression(text, symbols: dict, *, where: str = "expression") -> sp.Expr:
    """Parse one expression string into a sympy expression.

    Parameters
    ----------
    text : str or number
        The expression, e.g. ``"DOSE/V * exp(-CL/V*t)"``; a plain int or float is accepted.
    symbols : dict of str -> sympy.Symbol or sympy.Expr
        The names the expression may use and what each stands for.
    where : str
        Location used in error messages, e.g. ``"models/warfarin.toml: outputs.conc.expression"``.

    Raises
    ------
    ExpressionError
        On syntax errors, disallowed constructs or unknown names; the message names ``where``
        and the offending fragment.
    """
    if isinstance(text, bool):
        raise ExpressionError(f"{where}: expected an expression, got the boolean {text!r}")
    if isinstance(text, (int, float)):
        _check_number(text, where, repr(text))
        return sp.Integer(text) if isinstance(text, int) else sp.Float(text)
    if not isinstance(text, str):
        raise ExpressionError(f"{where}: expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"{where}: expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
    if not text.strip():
        raise ExpressionError(f"{where}: the expression is empty")
    depth = _paren_depth(text)
    if depth > MAX_DEPTH:
        raise ExpressionError(f"{where}: expression {quote(text)} nests {depth} levels of parentheses; "
                              f"the limit is {MAX_DEPTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{where}: syntax error in {quote(text)}: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"{where}: expression {quote(text)} is nested too deeply "
                              f"(the limit is {MAX_DEPTH} levels)") from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
        raise ExpressionError(f"{where}: cannot read {quote(text)}: {exc}") from None
    n_nodes, depth = _size(tree)
    if n_nodes > MAX_NODES:
        raise ExpressionError(f"{where}: expression has {n_nodes} syntax nodes; the limit is {MAX_NODES}")
    if depth > MAX_DEPTH:
        raise ExpressionError(f"{where}: expression {quote(text)} nests {depth} levels deep; the limit is {MAX_DEPTH}")
    try:
        return _Builder(text, symbols, where).build(tree.body)
    except RecursionError:  # pragma: no cover - the depth limit keeps the builder far from the recursion limit
        raise ExpressionError(f"{where}: expression {quote(text)} is nested too deeply") from None


def quote(text, limit: int = MAX_QUOTE) -> str:
    """``repr`` of ``text``, shortened to about ``limit`` characters for messages."""
    text = str(text)
    if len(text) <= limit:
        return repr(text)
    return repr(text[: limit - 20] + " ... " + text[-15:]) + f" ({len(text)} characters)"


def _paren_depth(text: str) -> int:
    depth = best = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            best = max(best, depth)
        elif ch in ")]}":
            depth -= 1
    return best


def _size(tree) -> tuple:
    """(number of nodes, depth) of a syntax tree, computed without recursion."""
    n, best, stack = 0, 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        n += 1
        best = max(best, d)
        for c in ast.iter_child_nodes(node):
            # a chain a + b - c + ... is flat (left operands of binary operators), not nested
            flat = isinstance(node, ast.BinOp) and c is node.left and isinstance(c, ast.BinOp)
            stack.append((c, d if flat else d + 1))
    return n, best


def _check_number(value, where: str, fragment: str) -> None:
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v) or abs(v) > MAX_ABS_NUMBER:
        raise ExpressionError(f"{where}: number {quote(fragment, 60)} is not finite or exceeds {MAX_ABS_NUMBER:g} "
                              "in absolute value")


def _check_constant(value, where: str, fragment: str) -> None:
    """A sub-expression without names must be a finite real number (not sqrt(-1), log(-2), (-8)**(1/3))."""
    try:
        c = complex(value.evalf(30))
    except (TypeError, ValueError, OverflowError):
        raise ExpressionError(f"{where}: the constant {quote(fragment, 60)} is not a finite real number") from None
    if c.imag != 0 or not math.isfinite(c.real):
        raise ExpressionError(f"{where}: the constant {quote(fragment, 60)} is not a finite real number "
                              f"(it evaluates to {c:.6g})")
    _check_number(c.real, where, fragment)


def _is_condition(value) -> bool:
    # sympy Symbols are also Booleans, so test for the logical node types explicitly
    return isinstance(value, (sp.core.relational.Relational, sp.And, sp.Or, sp.Not, sp.logic.boolalg.BooleanAtom))


class _Builder:
    def __init__(self, text: str, symbols: dict, where: str):
        self.text = text
        self.symbols = symbols
        self.where = where

    def fail(self, node, what: str):
        fragment = ast.get_source_segment(self.text.strip(), node) or ast.dump(node)
        whole = "" if fragment.strip() == self.text.strip() else f" in {quote(self.text)}"
        raise ExpressionError(f"{self.where}: {what}: {quote(fragment)}{whole}")

    def build(self, node):
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            self.fail(node, f"{type(node).__name__} is not allowed in model expressions")
        out = method(node)
        if isinstance(out, sp.Expr) and not out.is_Number and not out.free_symbols:
            fragment = ast.get_source_segment(self.text.strip(), node) or ""
            _check_constant(out, self.where, fragment)
        return out

    def _Constant(self, node):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(node, "only numeric constants are allowed")
        _check_number(v, self.where, ast.get_source_segment(self.text.strip(), node) or repr(v))
        return sp.Integer(v) if isinstance(v, int) else sp.Float(v)

    def _Name(self, node):
        if node.id in self.symbols:
            return self.symbols[node.id]
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        known = ", ".join(sorted(self.symbols))
        self.fail(node, f"unknown name {node.id!r} (known names: {known})")

    def _UnaryOp(self, node):
        operand = self.build(node.operand)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return sp.Not(self._as_condition(node.operand, operand))
        self.fail(node, "unary operator not allowed")

    def _BinOp(self, node):
        chain = [node]  # a long chain a + b + c ... is built iteratively, not by recursion
        while isinstance(chain[-1].left, ast.BinOp):
            chain.append(chain[-1].left)
        out = self.build(chain[-1].left)
        for link in reversed(chain):
            out = self._apply(link, out, self.build(link.right))
        return out

    def _apply(self, node, left, right):
        op = node.op
        if isinstance(op, ast.Add):
            out = left + right
        elif isinstance(op, ast.Sub):
            out = left - right
        elif isinstance(op, ast.Mult):
            out = left * right
        elif isinstance(op, ast.Div):
            if right == 0:
                self.fail(node, "division by the constant zero")
            out = left / right
        elif isinstance(op, ast.Pow):
            if right.is_Number:
                if abs(float(right)) > MAX_INT_EXPONENT:
                    self.fail(node, f"numeric exponent larger than {MAX_INT_EXPONENT} in absolute value")
            if left.is_Number and right.is_Number and left == 0 and float(right) < 0:
                self.fail(node, "zero raised to a negative power")
            out = left ** right
        else:
            self.fail(node, f"operator {type(op).__name__} is not allowed")
        if out.is_Number:
            if out.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
                self.fail(node, "the constant part is not finite")
            _check_number(out, self.where, ast.get_source_segment(self.text.strip(), node) or "")
        elif not out.free_symbols:
            _check_constant(out, self.where, ast.get_source_segment(self.text.strip(), node) or "")
        return out

    def _Call(self, node):
        if not isinstance(node.func, ast.Name):
            self.fail(node, "only calls of the listed functions are allowed")
        name = node.func.id
        if name not in FUNCTIONS:
            self.fail(node, f"unknown function {name!r} (allowed: {', '.join(sorted(FUNCTIONS))})")
        if node.keywords:
            self.fail(node, "keyword arguments are not allowed")
        builder, nargs = FUNCTIONS[name]
        if any(isinstance(a, ast.Starred) for a in node.args):
            self.fail(node, "starred arguments are not allowed")
        if nargs is None and len(node.args) < 1 or nargs is not None and len(node.args) != nargs:
            self.fail(node, f"{name} takes {nargs or 'one or more'} argument(s), got {len(node.args)}")
        args = [self.build(a) for a in node.args]
        out = builder(*args)
        if out.is_Number and out.has(sp.zoo, sp.nan, sp.oo, -sp.oo, sp.I):
            self.fail(node, "the constant value is not finite and real")
        return out

    def _Compare(self, node):
        parts = []
        left = self.build(node.left)
        for op, comp in zip(node.ops, node.comparators):
            if type(op) not in _COMPARE:
                self.fail(node, f"comparison {type(op).__name__} is not allowed (use <, <=, >, >=)")
            right = self.build(comp)
            parts.append(_COMPARE[type(op)](left, right))
            left = right
        return sp.And(*parts) if len(parts) > 1 else parts[0]

    def _BoolOp(self, node):
        values = [self._as_condition(v, self.build(v)) for v in node.values]
        return sp.And(*values) if isinstance(node.op, ast.And) else sp.Or(*values)

    def _IfExp(self, node):
        cond = self._as_condition(node.test, self.build(node.test))
        a, b = self.build(node.body), self.build(node.orelse)
        if _is_condition(a) or _is_condition(b):
            self.fail(node, "both branches of 'if ... else' must be numeric expressions")
        return sp.Piecewise((a, cond), (b, True))

    def _as_condition(self, node, value):
        if not _is_condition(value):
            self.fail(node, "expected a condition (a comparison)")
        return value
