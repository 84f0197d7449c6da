"""``ediff(x, y)``: the divided difference of exp(−u) at x and y, for removable singularities.

    ediff(x, y) = (exp(−x) − exp(−y)) / (y − x),     ediff(x, x) = exp(−x).

It is entire and symmetric, which makes closed forms with rate constants that may coincide
(``KA == ALPHA`` in multi-compartment oral models) finite and accurate everywhere:
(exp(−α t) − exp(−KA t))/(KA − α) = t·ediff(α t, KA t).

Evaluation (no cancellation, no overflow): with m = min(x, y) and z = |y − x|,
ediff = e^{−m}·g(z), g(z) = (1 − e^{−z})/z.  Partial derivatives: ∂_x acts on e^{−x} g(y − x) as
−(1 + D) and ∂_y as D (D = d/dz), so for x ≤ y

    ∂_x^p ∂_y^q ediff = e^{−x} (−1)^p Σ_j C(p, j) g^{(j+q)}(z),

and by symmetry with p and q exchanged when x > y.  g^{(n)} is summed from its Taylor series for
z < 1 and from the recurrence z g^{(n)} = (−1)^{n+1} e^{−z} − n g^{(n−1)} for z ≥ 1.

``EDiff(p, q, x, y)`` is the sympy function (p, q the derivative orders); ``ediff_lines`` writes the
branch-free statements (so that they vectorise) that generated kernels evaluate in place of each ediff term of
their vectorised loops, and ``ediff_source`` the same as numba functions ``_ediff_p_q`` for terms elsewhere.
"""

from __future__ import annotations

from math import comb, factorial

import mpmath
import sympy as sp


class EDiff(sp.Function):
    """∂^p/∂x^p ∂^q/∂y^q of ediff(x, y); arguments (p, q, x, y) with p, q integers >= 0."""

    nargs = 4

    @classmethod
    def eval(cls, p, q, x, y):
        if not (p.is_Integer and q.is_Integer):
            raise ValueError("EDiff: derivative orders must be integers")
        return None

    def fdiff(self, argindex=1):
        p, q, x, y = self.args
        if argindex == 3:
            return EDiff(p + 1, q, x, y)
        if argindex == 4:
            return EDiff(p, q + 1, x, y)
        raise sp.ArgumentIndexError(self, argindex)

    def _eval_evalf(self, prec):
        p, q, x, y = self.args
        xv, yv = x.evalf(prec), y.evalf(prec)
        if not (xv.is_Number and yv.is_Number):
            return None
        with mpmath.workprec(prec + 60):
            val = ediff_mp(int(p), int(q), mpmath.mpf(str(xv)), mpmath.mpf(str(yv)))
        return sp.Float(val, max(15, int(prec * 0.30103)))


def ediff(x, y):
    """The sympy expression ediff(x, y) (used by the expression parser)."""
    return EDiff(sp.Integer(0), sp.Integer(0), x, y)


def _g_mp(n, z):
    if z == 0:
        return mpmath.mpf((-1) ** n) / (n + 1)
    g = (1 - mpmath.exp(-z)) / z
    for k in range(1, n + 1):
        g = ((-1) ** (k + 1) * mpmath.exp(-z) - k * g) / z
    return g


def ediff_mp(p, q, x, y):
    """High-precision reference (mpmath) of ∂_x^p ∂_y^q ediff(x, y)."""
    if x > y:
        p, q, x, y = q, p, y, x
    z = y - x
    return mpmath.exp(-x) * (-1) ** p * sum(comb(p, j) * _g_mp(j + q, z) for j in range(p + 1))


#: imports every generated kernel module starts with
RUNTIME_IMPORTS = "from pkdesign.kernels.fastexp import fexp as _fexp, select as _select\n"

#: g^(n)(z) is summed from its Taylor series below this z and by the recurrence above it
SERIES_BELOW = 1.0
#: Taylor terms kept: the first term left out is < 1/(18! 19) ~ 8e-18 at z = 1, ~1e-16 of g^(n)(1)
SERIES_TERMS = 18


def _series_text(n: int, var: str) -> str:
    """Horner text of the Taylor polynomial of g^(n) in ``var``:
    g^(n)(z) = sum_m (-1)^(m+n) z^m / (m! (m+n+1))."""
    coef = [(-1) ** (m + n) / (factorial(m) * (m + n + 1)) for m in range(SERIES_TERMS)]
    text = repr(coef[-1])
    for c in reversed(coef[:-1]):
        text = f"{c!r} + {var}*({text})"
    return text


def ediff_function_name(p: int, q: int) -> str:
    return f"_ediff_{p}_{q}"


def ediff_lines(p: int, q: int, x: str, y: str, indent: str, prefix: str, target: str) -> list:
    """Straight-line statements that set ``target`` to d^p/dx^p d^q/dy^q ediff(x, y) for the argument texts x and y
    (names; an expression is first assigned to a temporary, evaluated once as a call's argument is), with
    temporaries named ``{prefix}z``, ``{prefix}g0``, ...: both the series and the
    recurrence are evaluated and one is selected (no branch), so that LLVM vectorises the loops around them.  The
    body of ``_ediff_p_q`` (:func:`ediff_source`), and what the kernels' vectorised loops evaluate in place of a call
    of it (``codegen_vector``: the same operations, without numba inlining a copy of the function per call)."""
    top = p + q
    v = prefix
    L = []
    if not x.isidentifier():
        L.append(f"{v}x = {x}")
        x = f"{v}x"
    if not y.isidentifier():
        L.append(f"{v}y = {y}")
        y = f"{v}y"
    L += [f"{v}z = abs({y} - {x})",
         f"{v}zs = min({v}z, {SERIES_BELOW!r})",
         f"{v}zr = max({v}z, {SERIES_BELOW!r})",
         f"{v}ez = _fexp(-{v}zr)",
         f"{v}r0 = (1.0 - {v}ez)/{v}zr"]
    for k in range(1, top + 1):
        sign = "" if (k + 1) % 2 == 0 else "-"
        L.append(f"{v}r{k} = ({sign}{v}ez - {float(k)!r}*{v}r{k - 1})/{v}zr")
    L.append(f"{v}small = {v}z < {SERIES_BELOW!r}")
    for k in range(top + 1):
        L.append(f"{v}g{k} = _select({v}small, {_series_text(k, v + 'zs')}, {v}r{k})")

    def combo(a, b):  # (-1)^a sum_j C(a, j) g^(j + b), the x <= y form with (p, q) = (a, b)
        terms = " + ".join(f"{float(comb(a, j))!r}*{v}g{j + b}" for j in range(a + 1))
        return f"{'-' if a % 2 else ''}({terms})"

    L.append(f"{v}v = _fexp(-min({x}, {y}))*_select({x} <= {y}, {combo(p, q)}, {combo(q, p)})")
    L.append(f"{target} = _select({v}z == {v}z, {v}v, {v}z)  # NaN in, NaN out")
    return [indent + line for line in L]


def ediff_source(orders) -> str:
    """numba source of ``_ediff_p_q(x, y)`` = d^p/dx^p d^q/dy^q ediff(x, y) for each (p, q) in ``orders``
    (:func:`ediff_lines` as a function: for ediff terms outside the kernels' vectorised loops)."""
    out = []
    for p, q in sorted(set(orders)):
        out.append("\n".join(["", "", '@numba.njit(error_model="numpy", nogil=True, inline="always")  # inlined: no cache '
                              "of its own",
                              f"def {ediff_function_name(p, q)}(x, y):",
                              f'    """d^{p}/dx^{p} d^{q}/dy^{q} of (exp(-x) - exp(-y))/(y - x), finite and accurate for all x, '
                              'y."""',
                              *ediff_lines(p, q, "x", "y", "    ", "", "result"),
                              "    return result"]))
    return "\n".join(out) + "\n"
