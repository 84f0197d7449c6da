"""Bad input, table-driven: one row per case, through the command line.

Every row runs ``pkdesign ...`` in-process (``pkdesign.cli.main``) with files written to a
temporary folder, and asserts the exit code, one ``pkdesign: error:`` line naming the problem, no
traceback and no numpy repr in what the user reads; rows that must still succeed assert the right
number (PopED's warfarin values, ../shared/reference/warfarin_fo.json).  Rows that need a fresh
process (Ctrl-C, a corrupted kernel cache) are in tests/test_cache_integrity.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest

from pkdesign import cli

from .conftest import MODELS

WARFARIN_FULL = 57.0827559932      # PopED, FO full FIM, warfarin reference design
WARFARIN_REDUCED = 55.3964499762   # PopED, FO reduced FIM

LINEAR = """
[parameters]
A = 1.0
B = {b}
[variability]
A = {{ model = "additive", variance = 0.1 }}
[outputs.y]
expression = "{expr}"
error = {{ model = "additive", add = {{ variance = 0.01 }} }}
[[design.groups]]
n = 20
times = [0, 1, 2, 4]
"""


def linear(expr="A + B*t", b=0.5, extra=""):
    return LINEAR.format(expr=expr, b=b) + extra


def design(group: str) -> str:
    return "[[groups]]\n" + group + "\n"


def design_case(id: str, group: str, message: str, prefix: str = "") -> "Case":
    """A row evaluating warfarin with a design file holding one group (TOML ``group`` text)."""
    return Case(id, ["evaluate", "warfarin", "--design", "{d.toml}"], {"d.toml": prefix + design(group)},
                message=message)


@dataclass
class Case:
    id: str
    argv: list
    files: dict = field(default_factory=dict)
    rc: int = 2
    message: str = ""            # a regular expression the error (or output) must contain
    check: object = None         # callable(stdout) for rows that succeed
    env: dict = field(default_factory=dict)


def logdet_is(value, tol=1e-6):
    def check(out):
        data = json.loads(out, parse_constant=_strict)
        assert abs(data["logdet"] - value) < tol * abs(value), data["logdet"]
    return check


def _strict(token):
    raise AssertionError(f"non-JSON constant {token} in --json output")


CASES = [
    # -- model files: names, expressions, encoding ---------------------------------------------
    Case("unicode-twin-names", ["evaluate", "{m}"], {"m.toml": linear().replace("B = 0.5", "B = 0.5\n\"Ａ\" = 2.0")},
         message=r"'A' and 'Ａ' are the same name after Unicode NFKC"),
    Case("unicode-name-alone-is-fine", ["evaluate", "{m}", "--json"],
         {"m.toml": linear("Ａ + B*t").replace("A = 1.0", "\"Ａ\" = 1.0").replace("\nA = {", "\n\"Ａ\" = {")},
         rc=0, check=lambda out: json.loads(out)["parameters"][0] == "A"),
    Case("complex-sqrt", ["evaluate", "{m}"], {"m.toml": linear("A + B*t*sqrt(-1)")},
         message=r"'sqrt\(-1\)' is not a finite real number"),
    Case("complex-cube-root", ["evaluate", "{m}"], {"m.toml": linear("A + B*t*(-8)**(1/3)")},
         message=r"is not a finite real number"),
    Case("complex-log", ["evaluate", "{m}"], {"m.toml": linear("A + B*t + log(-2)")},
         message=r"'log\(-2\)' is not a finite real number"),
    Case("overflowing-constant", ["evaluate", "{m}"], {"m.toml": linear("A + B*t*exp(1000)")},
         message=r"'exp\(1000\)' is not a finite real number"),
    Case("400-digit-literal", ["evaluate", "{m}"], {"m.toml": linear("A + B*t*1" + "0" * 400)},
         message=r"exceeds 1e\+300"),
    Case("200-nested-calls", ["evaluate", "{m}"], {"m.toml": linear("exp(" * 200 + "A" + ")" * 200 + " + B*t")},
         message=r"nests 200 levels of parentheses; the limit is 60"),
    Case("long-expression-quoted-short", ["evaluate", "{m}"], {"m.toml": linear("A + " + "B*t + " * 200 + "Q")},
         message=r"unknown name 'Q'"),
    Case("byte-order-mark-model", ["evaluate", "{m}"], {"m.toml": "\ufeff" + linear()},
         message=r"byte-order mark \(BOM\)"),
    Case("not-toml", ["evaluate", "{m}"], {"m.toml": "[parameters\nA = 1"}, message=r"not valid TOML"),
    Case("unknown-name", ["evaluate", "{m}"], {"m.toml": linear("A + C*t")}, message=r"unknown name 'C'"),
    # -- design files ---------------------------------------------------------------------------
    Case("design-json-null", ["evaluate", "warfarin", "--design", "{d.json}"], {"d.json": "null"},
         message=r"expected a table with a 'groups' list, got None"),
    Case("design-json-number", ["evaluate", "warfarin", "--design", "{d.json}"], {"d.json": "3"},
         message=r"expected a table with a 'groups' list, got 3"),
    design_case("dose-amount-string", 'n = 32\ntimes = [1, 2]\ndose = { amount = "70" }',
                r"dose\.amount: expected a number or a list of numbers, got '70' \(str\)"),
    design_case("group-size-huge", "n = 1e308\ntimes = [1, 2]\ndose = 70",
                r"at most 1e\+09, got 1e\+308"),
    design_case("group-size-string", 'n = "32"\ntimes = [1, 2]\ndose = 70',
                r"n must be a number > 0, got '32'"),
    design_case("dose-count-1e10", "n = 32\ntimes = [1, 2]\ndose = { amount = 70, interval = 24, count = 10000000000 }",
                r"count: expected a whole number from 1 to 100000, got 10000000000"),
    design_case("dose-count-float", "n = 32\ntimes = [1, 2]\ndose = { amount = 70, interval = 24, count = 1e10 }",
                r"count: expected a whole number from 1 to 100000, got 10000000000"),
    design_case("negative-time", "n = 32\ntimes = [1, -2]\ndose = 70",
                r"time at index 1 is -2; times must be >= 0"),
    design_case("tiny-time-not-rounded-away", "n = 32\ntimes = [1, 1e-7]\ndose = 70",
                r"index 1 \(1e-07\) comes after 1"),
    design_case("location-once", "n = 32\ntimes = [1, 2]\ndose = { amount = -5 }",
                r"^pkdesign: error: \S+d\.toml\.groups\[0\]\.dose\.amount: dose at index 0 is -5"),
    design_case("byte-order-mark-design", "n = 32\ntimes = [1, 2]\ndose = 70",
                r"byte-order mark", prefix="\ufeff"),
    Case("design-unknown-key", ["evaluate", "warfarin", "--design", "{d.toml}"],
         {"d.toml": "windows = [0, 1]\n" + design("n = 32\ntimes = [1, 2]\ndose = 70")},
         message=r"unknown key\(s\) \['windows'\]"),
    # -- command-line arguments -----------------------------------------------------------------
    Case("samples-0", ["optimize", "warfarin", "--algorithm", "fedorov-wynn", "--samples", "0"],
         message=r"--samples: expected a whole number from 1 to 1000, got 0"),
    Case("starts-0", ["optimize", "warfarin", "--starts", "0"], message=r"--starts: expected a whole number from 1"),
    Case("prior-draws-0", ["optimize", "warfarin", "--criterion", "ED", "--prior", "CL=lognormal:0.15:0.2",
                           "--prior-draws", "0"], message=r"--prior-draws: expected a whole number from 1"),
    Case("draws-1e12", ["evaluate", "warfarin", "--approx", "mc", "--draws", "1000000000000"],
         message=r"--draws: expected a whole number from 2 to 1000000"),
    Case("draws-not-int", ["evaluate", "warfarin", "--approx", "mc", "--draws", "1e12"],
         message=r"--draws: expected a whole number from 2 to 1000000, got '1e12'"),
    Case("seed-negative", ["evaluate", "warfarin", "--approx", "mc", "--seed", "-1"],
         message=r"--seed: expected a whole number from 0"),
    Case("total-n-0", ["optimize", "warfarin", "--algorithm", "fedorov-wynn", "--total-n", "0"],
         message=r"--total-n: expected a whole number from 1"),
    Case("grid-zero-points", ["optimize", "warfarin", "--grid", "0:10:0"], message=r"--grid: needs finite 0 <= start < stop"),
    Case("grid-garbage", ["optimize", "warfarin", "--grid", "a,b"], message=r"--grid: expected LO:HI:N"),
    Case("window-infinite", ["optimize", "warfarin", "--window", "0", "inf"],
         message=r"--window: expected \[lo, hi\] with finite 0 <= lo < hi"),
    Case("window-reversed", ["optimize", "warfarin", "--window", "5", "1"], message=r"--window"),
    Case("min-spacing-negative", ["optimize", "warfarin", "--min-spacing", "-1"], message=r"--min-spacing"),
    Case("plot-missing-folder", ["optimize", "warfarin", "--plot", "{tmp}/missing/plot.png"],
         message=r"--plot: folder \S+missing does not exist"),
    Case("plot-unknown-format", ["optimize", "warfarin", "--plot", "{tmp}/plot.xyz"],
         message=r"--plot: unknown image format '\.xyz'"),
    Case("exact-mc-too-few-draws", ["evaluate", "warfarin", "--approx", "exact-mc", "--draws", "5"],
         message=r"5 simulated subjects give a rank of at most 5\. Use draws > 8"),
    Case("ode-max-steps", ["evaluate", "{m}"],
         {"m.toml": (MODELS / "one_comp_infusion_ode.toml").read_text().replace(
             'derivatives = { central = "-CL/V*central" }',
             'derivatives = { central = "-CL/V*central" }\nmax_steps = 2')},
         message=r"more than max_steps = 2 steps \(a stiff system\? try solver = \"bdf\""),
    Case("no-such-model", ["evaluate", "no_such_model"], message=r"no such file"),
    Case("bayesian-fim-with-iov", ["evaluate", "one_comp_oral_iov", "--fim", "bayesian"],
         message=r"inter-occasion variability on CL: the Bayesian \(MAP\) FIM and shrinkage do not handle occasions"),
    # -- rows that must succeed with the right number ------------------------------------------
    Case("folder-named-like-a-model", ["evaluate", "warfarin", "--json"], {"warfarin/readme.txt": "not a model"},
         rc=0, check=logdet_is(WARFARIN_REDUCED)),  # the default FIM is the reduced one (PopED's and PFIM's)
    Case("reduced-default-numbers", ["evaluate", "warfarin", "--fim", "reduced", "--json"], rc=0,
         check=logdet_is(WARFARIN_REDUCED)),
    Case("strict-json-infinity", ["evaluate", "{m}", "--json"], {"m.toml": linear(b=0.0)}, rc=0,
         check=lambda out: (json.loads(out, parse_constant=_strict)["rse_percent"][1] is None
                            and "rse_percent[1] = inf" in json.loads(out)["non_finite"]["values"])),
    Case("version", ["--version"], rc=0, check=lambda out: out.strip() == "pkdesign 0.1.0"),
    Case("broken-file-in-library", ["models", "--json"],
         {"lib/good.toml": linear(), "lib/bad.toml": "[parameters\n"}, rc=0,
         check=lambda out: ([m["name"] for m in json.loads(out)["models"]] == ["good"]
                            and "bad.toml" in json.loads(out)["skipped"][0]["file"]),
         env={"PKDESIGN_MODELS": "{tmp}/lib"}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, capsys, monkeypatch):
    for name, text in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    def fill(a):
        a = a.replace("{tmp}", str(tmp_path)).replace("{m}", str(tmp_path / "m.toml"))
        return re.sub(r"\{(\w+\.\w+)\}", lambda mo: str(tmp_path / mo.group(1)), a)

    for k, v in case.env.items():
        monkeypatch.setenv(k, fill(v))
    try:
        rc = cli.main([fill(a) for a in case.argv])
    except SystemExit as exc:  # argparse: usage error, or --version
        rc = exc.code
    out, err = capsys.readouterr()
    assert rc == case.rc, (out, err)
    assert "Traceback" not in err and "np.float64" not in err + out and "np.int64" not in err + out
    if case.rc == 2:
        lines = [ln for ln in err.splitlines() if "error:" in ln]
        assert len(lines) == 1, err
        assert re.search(case.message, lines[0]), lines[0]
        assert len(lines[0]) < 700, f"message of {len(lines[0])} characters"
        assert lines[0].count(".groups[0]") <= 1, lines[0]
    else:
        if case.message:
            assert re.search(case.message, out + err)
        if case.check is not None:
            assert case.check(out) in (None, True)


def test_a_failed_plot_keeps_the_printed_result(tmp_path, capsys, monkeypatch):
    from pkdesign import plot

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plot, "plot_design", broken)
    rc = cli.main(["optimize", "warfarin", "--fim", "reduced", "--starts", "1", "--plot", str(tmp_path / "d.png")])
    out, err = capsys.readouterr()
    assert rc == 2 and "criterion D (ln det)" in out
    assert err.strip().startswith("pkdesign: error: --plot: could not write") and "result above is complete" in err


def test_compare_ends_with_advice(capsys):
    rc = cli.main(["evaluate", "warfarin", "--compare", "--draws", "300"])
    out, _ = capsys.readouterr()
    assert rc == 0 and out.strip().splitlines()[-1].startswith("advice: ")
    assert "fo (reduced)" in out and "fo (full)" in out
