"""Model files: every bundled model loads; every kind of bad input gets a clear message."""

import subprocess
import sys

import numpy as np
import pytest

import pkdesign as pk
from pkdesign import ModelSpecError

from .conftest import MODELS

BUNDLED = sorted(p.stem for p in MODELS.glob("*.toml"))


def test_library_has_the_promised_models():
    for name in ["warfarin", "warfarin_prop", "box_lucas", "emax", "sigmoid_emax", "effect_compartment",
                 "one_comp_bolus", "one_comp_infusion", "one_comp_oral", "two_comp_bolus", "two_comp_infusion",
                 "two_comp_oral", "three_comp_bolus", "three_comp_infusion", "three_comp_oral"]:
        assert name in BUNDLED


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_loads_with_description_source_and_design(name):
    spec = pk.load_model(MODELS / f"{name}.toml")
    assert spec.name == name
    assert spec.description and spec.source
    assert spec.default_design is not None
    for g in spec.default_design.groups:
        t, idx = g.observations(spec.output_names)
        assert t.size > 0


def test_warfarin_file_matches_reference(reference_warfarin=None):
    import json

    from .conftest import REFERENCE

    ref = json.loads((REFERENCE / "warfarin_fo.json").read_text())
    spec = pk.load_model(MODELS / "warfarin.toml")
    assert dict(zip(spec.parameter_names, spec.theta)) == ref["model"]["theta"]
    assert {v.parameter: v.variance for v in spec.variability} == ref["model"]["omega2"]
    (out,) = spec.outputs
    assert out.error_model == "combined"
    assert {t.kind: t.variance for t in out.error_terms} == {"prop": 0.01, "add": 0.25}
    (g,) = spec.default_design.groups
    assert g.n == 32 and g.times["conc"].tolist() == ref["design"]["groups"][0]["times"]
    assert g.regimen.amounts.tolist() == [70.0]


def test_sd_and_covariance_declarations():
    spec = pk.parse_model_text(
        """
[parameters]
CL = 1
V = 10
[variability]
CL = { sd = 0.3 }
V = { model = "proportional", variance = 0.04 }
[[covariance]]
between = ["CL", "V"]
correlation = 0.5
[outputs.y]
expression = "CL/V*t"
error = { model = "exponential", exp = { sd = 0.1 } }
"""
    )
    cl, v = spec.variability
    assert cl.scale == "sd" and cl.variance == pytest.approx(0.09) and cl.model == "exponential"
    assert v.model == "proportional"
    assert spec.omega[0, 1] == pytest.approx(0.5 * 0.3 * 0.2)
    assert spec.outputs[0].error_terms[0].scale == "sd"


BASE = """
[parameters]
CL = 1.0
V = 10.0
[outputs.y]
expression = "CL/V*t"
error = { model = "additive", add = { variance = 1 } }
"""


@pytest.mark.parametrize(
    "text, message",
    [
        ("[parameters\nCL = 1", "not valid TOML"),
        ("[outputs.y]\nexpression = 't'\nerror = { model = 'additive', add = { variance = 1 } }", "missing section [parameters]"),
        ("[parameters]\nCL = 1", "missing section [outputs]"),
        (BASE + "[stuff]\na = 1", "unknown section(s) ['stuff']"),
        ("[parameters]\nCL = { fixed = true }\n[outputs.y]\nexpression = 'CL'\nerror = { model = 'additive', add = { variance = 1 } }",
         "parameters.CL: missing 'value'"),
        ("[parameters]\nCL = 'abc'\n[outputs.y]\nexpression = 'CL'\nerror = { model = 'additive', add = { variance = 1 } }",
         "parameters.CL: expected a number, got 'abc'"),
        ("[parameters]\nCL = 1\n[outputs.y]\nexpression = 'CL*Q'\nerror = { model = 'additive', add = { variance = 1 } }",
         "unknown name 'Q'"),
        ("[parameters]\nCL = 1\n[outputs.y]\nerror = { model = 'additive', add = { variance = 1 } }", "outputs.y: missing 'expression'"),
        ("[parameters]\nCL = 1\n[outputs.y]\nexpression = 'CL'", "outputs.y: missing 'error'"),
        ("[parameters]\nCL = 1\n[outputs.y]\nexpression = 'CL'\nerror = { model = 'weird' }", "unknown error model 'weird'"),
        ("[parameters]\nCL = 1\n[outputs.y]\nexpression = 'CL'\nerror = { model = 'combined', add = { variance = 1 } }",
         "error model 'combined' needs 'prop'"),
        ("[parameters]\nCL = 1\n[outputs.y]\nexpression = 'CL'\nerror = { model = 'additive', add = { variance = 1, sd = 1 } }",
         "give exactly one of 'variance' or 'sd'"),
        ("[parameters]\nCL = 1\n[outputs.y]\nexpression = 'CL'\nerror = { model = 'additive', add = { variance = -1 } }",
         "expected a number >= 0, got -1"),
        (BASE + "[variability]\nQ = { variance = 0.1 }", "variability.Q: unknown parameter 'Q'"),
        (BASE + "[variability]\nCL = { model = 'lognormal', variance = 0.1 }", "unknown variability model 'lognormal'"),
        (BASE + "[variability]\nCL = { variance = 0.1 }\nV = { variance = 0.1 }\n[[covariance]]\nbetween = ['CL', 'V']\nvalue = 0.5",
         "not positive semi-definite"),
        (BASE + "[variability]\nCL = { variance = 0.1 }\n[[covariance]]\nbetween = ['CL', 'V']\nvalue = 0.01",
         "'V' has no [variability] entry"),
        (BASE + "[dosing]\nroute = 'oral'", "dosing route 'oral' is given but no [responses]"),
        (BASE + "[dosing]\nroute = 'intranasal'", "unknown route 'intranasal'"),
        (BASE + "[responses]\nC = 'CL*t'\n[dosing]\nroute = 'bolus'", "a response must depend on DOSE"),
        (BASE + "[responses]\nC = 'DOSE*t'", "give a route"),
        (BASE + "[assignments]\nt = 'CL'", "'t' is reserved"),
        (BASE + "[assignments]\nCL = 'V'", "'CL' is already defined as a parameter"),
        (BASE + "[design]\ngroups = [{ n = 0, times = [1, 2] }]", "n must be > 0"),
        (BASE + "[design]\ngroups = [{ n = 10, times = [1, -2] }]", "time at index 1 is -2"),
        (BASE + "[design]\ngroups = [{ n = 10, times = [3, 2] }]", "index 1 (2) comes after 3"),
        (BASE + "[design]\ngroups = [{ n = 10, times = [1], dose = { amount = -5 } }]", "doses must be > 0"),
        (BASE + "[model]\nremovable_singularities = 'KA'", "expected a list of pairs"),
    ],
)
def test_bad_model_text_gets_a_clear_message(text, message):
    with pytest.raises(ModelSpecError) as info:
        pk.parse_model_text(text, origin="bad.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("bad.toml")


def test_missing_file():
    with pytest.raises(ModelSpecError, match="no such model file"):
        pk.load_model(MODELS / "nope.toml")


def test_design_times_validation_messages():
    with pytest.raises(pk.DesignError, match=r"output 'conc': time at index 2 is -1"):
        pk.Group(10, {"conc": [0.5, 1, -1]}, name="g")
    with pytest.raises(pk.DesignError, match=r"sorted in increasing order; index 2 \(1\) comes after 5"):
        pk.Group(10, {"conc": [0.5, 5, 1]}, name="g")
    with pytest.raises(pk.DesignError, match="times must be finite"):
        pk.Group(10, {"conc": [0.5, float("nan")]}, name="g")
    with pytest.raises(pk.DesignError, match=r"unknown output\(s\) \['effect'\]"):
        pk.Group(10, {"effect": [1.0]}).observations(["conc"])


def test_regimen_forms():
    r = pk.Regimen.from_dict({"amount": 10, "interval": 12, "count": 3, "start": 1})
    np.testing.assert_array_equal(r.times, [1, 13, 25])
    np.testing.assert_array_equal(r.amounts, [10, 10, 10])
    r = pk.Regimen.from_dict({"amount": [10, 5], "times": [0, 24], "duration": 2})
    np.testing.assert_array_equal(r.durations, [2, 2])
    with pytest.raises(pk.DesignError, match="'interval' and 'count' go together"):
        pk.Regimen.from_dict({"amount": 10, "interval": 12})
    with pytest.raises(pk.DesignError, match="2 amounts for 3 dose times"):
        pk.Regimen.from_dict({"amount": [1, 2], "times": [0, 1, 2]})


def test_model_files_are_not_executed(tmp_path):
    # A model file whose expression tries to run code must fail to parse, and nothing runs.
    marker = tmp_path / "pwned"
    text = BASE.replace('"CL/V*t"', f'"__import__(\'os\').system(\'touch {marker}\')"')
    code = f"import pkdesign as pk\ntry:\n    pk.parse_model_text({text!r})\nexcept pk.ModelSpecError as e:\n    print('rejected')\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "rejected" in out.stdout
    assert not marker.exists()


def test_unused_fixed_parameters_do_not_grow_the_generated_kernels():
    # 30 extra fixed parameters that no expression uses: the kernels differentiate only the parameters
    # a FIM needs, so generated source and symbolic work stay those of the plain model (measured
    # compile: 22.6 s with the extras vs 23.6 s without, three_comp_oral, 2-core machine)
    import time

    from pkdesign.model.codegen import generate_source

    text = (MODELS / "three_comp_bolus.toml").read_text()
    extra = "".join(f"X{i} = {{ value = {1 + i / 10}, fixed = true }}\n" for i in range(30))
    plain = pk.parse_model_text(text, "plain")
    wide = pk.parse_model_text(text.replace("[variability]", extra + "\n[variability]", 1), "wide")
    assert len(wide.parameter_names) == len(plain.parameter_names) + 30
    assert wide.derivative_indices() == plain.derivative_indices()
    def timed(spec):
        t0 = time.perf_counter()
        src = generate_source(spec)
        return time.perf_counter() - t0, src

    # best of two, interleaved: the other test worker shares the machine, so one timing can be noise
    runs = [timed(plain), timed(wide), timed(plain), timed(wide)]
    t_plain, t_wide = min(runs[0][0], runs[2][0]), min(runs[1][0], runs[3][0])
    a, b = runs[0][1], runs[1][1]
    assert len(b.splitlines()) < 1.05 * len(a.splitlines()) + 20
    assert t_wide < 1.5 * t_plain + 0.5


def test_library_loads_models_by_name_and_design_files(tmp_path):
    assert pk.load_model("warfarin").name == "warfarin"
    assert pk.load_model("warfarin.toml").name == "warfarin"
    with pytest.raises(ModelSpecError, match="no model of that name"):
        pk.load_model("no_such_model")
    design = tmp_path / "d.json"
    design.write_text('{"window": [0.5, 48], "groups": [{"n": 12, "times": [1, 2, 8], "dose": 70}]}')
    d = pk.load_design(design, pk.load_model("warfarin"))
    assert d.window == (0.5, 48.0) and d.groups[0].n == 12
