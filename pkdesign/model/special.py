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

``EDiff(p, q, x, y)`` is the sympy function (p, q the derivative orders); ``ediff_numba`` the
compiled evaluator used by generated kernels (source text in ``NUMBA_SOURCE``).
"""

from __future__ import annotations

from math import comb

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


NUMBA_SOURCE = '''
@numba.njit(cache=True, error_model="numpy")
def _ediff_g(n, z):
    """n-th derivative of g(z) = (1 - exp(-z))/z at z >= 0."""
    if z < 1.0:
        # Taylor series: g^(n)(z) = sum_k (-1)^k k!/((k-n)! (k+1)!) z^(k-n), k >= n
        total = 0.0
        coef = 1.0  # k!/((k-n)! (k+1)!) at k = n: 1/(n+1)
        coef = 1.0 / (n + 1.0)
        zp = 1.0
        sign = 1.0 if n % 2 == 0 else -1.0
        for k in range(n, n + 30):
            total += sign * coef * zp
            # next k: multiply by (k+1)/((k+1-n)(k+2)) and z
            coef *= (k + 1.0) / ((k + 1.0 - n) * (k + 2.0))
            zp *= z
            sign = -sign
        return total
    ez = math.exp(-z)
    g = -math.expm1(-z) / z
    for k in range(1, n + 1):
        g = ((1.0 if (k + 1) % 2 == 0 else -1.0) * ez - k * g) / z
    return g


@numba.njit(cache=True, error_model="numpy")
def _ediff(p, q, x, y):
    """d^p/dx^p d^q/dy^q of (exp(-x) - exp(-y))/(y - x), finite and accurate for all x, y."""
    if x > y:
        t = x
        x = y
        y = t
        t2 = p
        p = q
        q = t2
    z = y - x
    total = 0.0
    c = 1.0
    for j in range(p + 1):
        total += c * _ediff_g(j + q, z)
        c = c * (p - j) / (j + 1.0)
    if p % 2 == 1:
        total = -total
    return math.exp(-x) * total
'''
