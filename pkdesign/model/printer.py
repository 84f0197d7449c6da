"""Printing sympy expressions as numba-friendly Python text, shared by the closed-form and ODE generators.

:class:`KernelPrinter` emits float literals, cheap integer powers, ``_fexp`` and ``ediff`` calls;
:func:`cse_lines` prints a block of expressions after common-subexpression elimination;
:func:`derivative_targets` lists the assignment targets of a value and its ψ- and time derivatives.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .special import ediff_function_name
from .symbolic import AMT, TD, TINF, finite_powers


class KernelPrinter(PythonCodePrinter):
    """Prints float literals and cheap integer powers, so numba sees one numeric type."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})
        self.ediff_orders = set()  # (p, q) of every ediff derivative printed

    def _print_Integer(self, expr):
        return f"{int(expr)}.0"

    def _print_Rational(self, expr):
        return f"({int(expr.p)}.0/{int(expr.q)}.0)"

    def _print_Half(self, expr):
        return "0.5"

    def _print_EDiff(self, expr):
        p, q, x, y = expr.args
        self.ediff_orders.add((int(p), int(q)))
        return f"{ediff_function_name(int(p), int(q))}({self._print(x)}, {self._print(y)})"

    def _print_exp(self, expr):
        return f"_fexp({self._print(expr.args[0])})"

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.base, expr.exp
        b = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Pow"])
        if exp.is_Integer:
            n = int(exp)
            if n == -1:
                return f"(1.0/{b})"
            if 0 < n <= 3:
                return "(" + "*".join([b] * n) + ")" if n > 1 else b
            if -3 <= n < 0:
                return f"(1.0/({'*'.join([b] * -n)}))"
            return f"{b}**{n}"
        if exp == sp.Rational(1, 2):
            return f"math.sqrt({self._print(base)})"
        if exp == sp.Rational(-1, 2):
            return f"(1.0/math.sqrt({self._print(base)}))"
        return super()._print_Pow(expr, rational=rational)


def cse_lines(exprs: list, indent: str, printer: KernelPrinter, prefix: str) -> tuple:
    """CSE a list of expressions; return (lines of temporaries, printed final expressions)."""
    exprs = [finite_powers(e) for e in exprs]
    repl, reduced = sp.cse(exprs, symbols=sp.numbered_symbols(prefix), order="none")
    lines = [f"{indent}{printer.doprint(s)} = {printer.doprint(e)}" for s, e in repl]
    return lines, [printer.doprint(e) for e in reduced]


def dose_variables(ind) -> list:
    """Lines unpacking dose ``m``: time, amount, infusion duration."""
    return [f"{ind}{TD.name} = dose_t[m]", f"{ind}{AMT.name} = dose_amt[m]", f"{ind}{TINF.name} = dose_dur[m]"]


def derivative_targets(d, order, n, f_name, d1_name, d2_name, dt_name, inner=None, index=None):
    """Assignment targets and expressions for value and derivatives up to ``order``.

    With ``inner`` given, derivatives that are structurally zero for it are skipped, and the
    names ``{d1}``/``{d2}`` stand for its placeholder symbols.  ``index`` maps derivative
    positions to the indices printed in the names (default: the positions themselves).
    """
    ix = index if index is not None else list(range(n))
    targets, exprs = [f_name], [d.f]
    if order >= 1:
        for k in range(n):
            if inner is not None and inner.d1[k] == 0:
                continue
            targets.append(d1_name.format(k=ix[k], l=0, d1=inner.d1[k] if inner is not None else ""))
            exprs.append(d.d1[k])
        if dt_name is not None:
            targets.append(dt_name)
            exprs.append(d.dt)
    if order >= 2:
        for (k, l), e in d.d2.items():  # the pairs the model computes (ModelSpec.second_order_pairs)
            if inner is not None and inner.d2[(k, l)] == 0:
                continue
            targets.append(d2_name.format(k=ix[k], l=ix[l], d2=inner.d2[(k, l)] if inner is not None else ""))
            exprs.append(e)
    return targets, exprs
