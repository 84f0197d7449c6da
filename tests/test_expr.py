"""Safe expression parsing: allowed grammar builds sympy objects; hostile text is rejected."""

import pytest
import sympy as sp

from pkdesign import ExpressionError, parse_expression

SYMS = {n: sp.Symbol(n) for n in ("CL", "V", "KA", "t")}


def test_arithmetic_and_functions():
    e = parse_expression("DOSE_/V * exp(-CL/V*t) + sqrt(KA)**2 - abs(-1) + max(CL, V, 1) + log(V)",
                         dict(SYMS, DOSE_=sp.Symbol("DOSE_")))
    CL, V, KA, t, D = sp.symbols("CL V KA t DOSE_")
    expected = D / V * sp.exp(-CL / V * t) + KA - 1 + sp.Max(CL, V, 1) + sp.log(V)
    assert sp.simplify(e - expected) == 0


def test_integers_stay_exact_and_floats_are_floats():
    assert parse_expression("1/2", {}) == sp.Rational(1, 2)
    assert parse_expression("0.5*CL", SYMS) == sp.Float(0.5) * sp.Symbol("CL")
    assert parse_expression(3, {}) == 3


def test_if_else_builds_piecewise():
    e = parse_expression("CL if t <= 2 else V", SYMS)
    assert isinstance(e, sp.Piecewise)
    assert e.subs({"t": 1, "CL": 5, "V": 7}) == 5
    assert e.subs({"t": 3, "CL": 5, "V": 7}) == 7


def test_chained_comparison_and_boolean_ops():
    e = parse_expression("1 if 0 < t < 2 and not CL > 3 else 0", SYMS)
    assert e.subs({"t": 1, "CL": 1}) == 1
    assert e.subs({"t": 1, "CL": 4}) == 0


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("__import__('os').system('echo hacked')", "only calls of the listed functions"),
        ("__import__('os')", "unknown function '__import__'"),
        ("CL.__class__", "Attribute is not allowed"),
        ("(lambda: 1)()", "only calls of the listed functions"),
        ("[x for x in (1, 2)]", "ListComp is not allowed"),
        ("exp.__globals__", "Attribute is not allowed"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("'abc'", "only numeric constants"),
        ("CL[0]", "Subscript is not allowed"),
        ("exp(x=1)", "keyword arguments are not allowed"),
        ("exp(*[1])", "starred arguments"),
        ("(x := 3)", "NamedExpr is not allowed"),
        ("f'{CL}'", "JoinedStr is not allowed"),
        ("CL if t else V", "expected a condition"),
        ("CL == V", "comparison Eq is not allowed"),
        ("exp(1, 2)", "exp takes 1 argument(s), got 2"),
        ("Q/V", "unknown name 'Q'"),
        ("True", "only numeric constants"),
        ("1/0", "division by the constant zero"),
        ("CL // V", "operator FloorDiv is not allowed"),
    ],
)
def test_hostile_and_invalid_text_is_rejected_with_the_fragment(text, fragment):
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, SYMS, where="model.toml: outputs.conc.expression")
    msg = str(info.value)
    assert fragment in msg
    assert "model.toml: outputs.conc.expression" in msg


@pytest.mark.parametrize("text", ["10**10**10", "2**1000", "CL**100000", "9**9**9**9"])
def test_huge_exponents_are_rejected_quickly(text):
    with pytest.raises(ExpressionError, match="exponent larger than"):
        parse_expression(text, SYMS)


def test_huge_number_literal_is_rejected():
    with pytest.raises(ExpressionError, match="not finite or exceeds"):
        parse_expression("1e309 * CL", SYMS)


def test_deep_nesting_and_long_text_are_rejected():
    with pytest.raises(ExpressionError, match="nested too deeply|syntax nodes|characters long"):
        parse_expression("(" * 3000 + "CL" + ")" * 3000, SYMS)
    with pytest.raises(ExpressionError, match="characters long"):
        parse_expression("CL+" * 3000 + "CL", SYMS)


def test_syntax_error_names_location():
    with pytest.raises(ExpressionError, match=r"where: syntax error in 'CL \*'"):
        parse_expression("CL *", SYMS, where="where")


def test_empty_and_non_string():
    with pytest.raises(ExpressionError, match="empty"):
        parse_expression("  ", SYMS)
    with pytest.raises(ExpressionError, match="expected an expression string"):
        parse_expression(["CL"], SYMS)
