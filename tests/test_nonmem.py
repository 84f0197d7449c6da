"""NONMEM control streams in (pharmpy): every imported model's FO FIM against a twin written by hand.

Twins: the library's closed forms (warfarin for ADVAN2; two_comp_bolus for ADVAN3 TRANS4; two_comp_oral for
ADVAN4 with ALAG; one_comp_mm_iv for ADVAN13 with $DES) with the same parameter values, compared after the
parameter names are mapped; ODE twins written as model files with the imported structure (same solver: 1e-10);
pharmpy's own example model pheno (covariates WGT and APGR, an IF on APGR, its dataset as the design).
"""

import re
from pathlib import Path

import numpy as np
import pytest

import pkdesign as pk
from pkdesign import cli
from pkdesign.errors import ModelSpecError

pharmpy = pytest.importorskip("pharmpy")
from pkdesign.io.nonmem import from_nonmem, nonmem_to_toml  # noqa: E402

PHENO = Path(pharmpy.__file__).parent / "internals" / "example_models" / "pheno.mod"

HEAD = "$PROBLEM {title}\n$INPUT ID TIME AMT DV\n$DATA data.csv IGNORE=@\n$SUBROUTINE {sub}\n"

ADVAN2 = HEAD.format(title="warfarin as ADVAN2", sub="ADVAN2 TRANS2") + """$PK
CL = THETA(1)*EXP(ETA(1))
V = THETA(2)*EXP(ETA(2))
KA = THETA(3)*EXP(ETA(3))
S2 = V
$ERROR
Y = F + F*EPS(1) + EPS(2)
$THETA (0, 0.15) (0, 8) (0, 1)
$OMEGA 0.07 0.02 0.6
$SIGMA 0.01 0.25
"""

ADVAN3 = HEAD.format(title="two compartments, IV bolus", sub="ADVAN3 TRANS4") + """$PK
CL = THETA(1)*EXP(ETA(1))
V1 = THETA(2)*EXP(ETA(2))
Q = THETA(3)*EXP(ETA(3))
V2 = THETA(4)*EXP(ETA(4))
S1 = V1
$ERROR
Y = F + F*EPS(1) + EPS(2)
$THETA (0, 5) (0, 20) (0, 10) (0, 50)
$OMEGA 0.09 0.04 0.09 0.04
$SIGMA 0.01 0.01
"""

ADVAN4 = HEAD.format(title="two compartments, oral, lag", sub="ADVAN4 TRANS4") + """$PK
CL = THETA(1)*EXP(ETA(1))
V2 = THETA(2)*EXP(ETA(2))
Q = THETA(3)*EXP(ETA(3))
V3 = THETA(4)*EXP(ETA(4))
KA = THETA(5)*EXP(ETA(5))
ALAG1 = THETA(6)
S2 = V2
$ERROR
Y = F + F*EPS(1) + EPS(2)
$THETA (0, 5) (0, 20) (0, 10) (0, 50) (0, 1.2) (0, 0.25)
$OMEGA 0.09 0.04 0.09 0.04 0.25
$SIGMA 0.01 0.01
"""

ADVAN13 = HEAD.format(title="Michaelis-Menten elimination", sub="ADVAN13 TOL=9") + """$MODEL COMP=(CENT DEFDOSE)
$PK
VM = THETA(1)*EXP(ETA(1))
KM = THETA(2)*EXP(ETA(2))
V = THETA(3)*EXP(ETA(3))
$DES
C = A(1)/V
DADT(1) = -VM*C/(KM + C)
$ERROR
IPRED = A(1)/V
Y = IPRED + IPRED*EPS(1) + EPS(2)
$THETA (0, 10) (0, 2) (0, 20)
$OMEGA 0.09 0.09 0.04
$SIGMA 0.01 0.01
"""


def _write(tmp_path, text, name="run.ctl"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _fim(model, times, dose, output, fim="full"):
    d = pk.Design((pk.Group(20, {output: times}, dose, "g"),))
    return pk.evaluate_fim(model, d, fim=fim)


def _matched(imported, reference, mapping):
    """The imported FIM reordered to the reference's names through ``mapping`` (imported -> reference)."""
    names = [mapping.get(n, n) for n in imported.names]
    order = [names.index(n) for n in reference.names]
    return imported.matrix[np.ix_(order, order)]


def _library_twin(tmp_path, text, library, times, dose, mapping, rtol):
    imp = pk.compile_model(from_nonmem(_write(tmp_path, text)))
    ref_model = pk.compile_model(pk.load_model(library))
    ref = _fim(ref_model, times, dose, ref_model.spec.output_names[0])
    got = _matched(_fim(imp, times, dose, "Y"), ref, mapping)
    np.testing.assert_allclose(got, ref.matrix, rtol=rtol, atol=rtol * np.abs(ref.matrix).max())


def _eta_names(k, names):
    return {f"ETA_{i + 1}": None for i in range(k)} | {f"omega2(ETA_{i + 1})": f"omega2({n})" for i, n in enumerate(names)}


def test_advan2_is_warfarin(tmp_path):
    mapping = {"THETA_1": "CL", "THETA_2": "V", "THETA_3": "KA"} | _eta_names(3, ["CL", "V", "KA"])
    _library_twin(tmp_path, ADVAN2, "warfarin", [0.5, 1, 2, 6, 24, 36, 72, 120], pk.Regimen.single(70.0), mapping,
                  1e-6)


def test_advan2_equals_its_ode_twin_to_1e10(tmp_path):
    imported = pk.compile_model(from_nonmem(_write(tmp_path, ADVAN2)))
    twin = pk.compile_model(pk.model.parse.parse_model_text(nonmem_to_toml(_write(tmp_path, ADVAN2)), "<twin>"))
    times, dose = [0.5, 1, 2, 6, 24, 36, 72, 120], pk.Regimen.single(70.0)
    a, b = _fim(imported, times, dose, "Y"), _fim(twin, times, dose, "Y")
    np.testing.assert_allclose(a.matrix, b.matrix, rtol=1e-10)
    text = nonmem_to_toml(_write(tmp_path, ADVAN2))
    assert 'states = ["DEPOT", "CENTRAL"]' in text and 'CL = "THETA_1*exp(ETA_1)"' in text
    assert 'error = { model = "combined", prop = { variance = 0.01 }, add = { variance = 0.25 } }' in text


def test_advan3_is_two_comp_bolus(tmp_path):
    mapping = {"THETA_1": "CL", "THETA_2": "V1", "THETA_3": "Q", "THETA_4": "V2"} | _eta_names(4, ["CL", "V1", "Q", "V2"])
    _library_twin(tmp_path, ADVAN3, "two_comp_bolus", [0.25, 0.5, 1, 2, 4, 8, 12, 24], pk.Regimen.single(100.0),
                  mapping, 1e-6)


def test_advan4_with_lag_is_two_comp_oral(tmp_path):
    mapping = ({"THETA_1": "CL", "THETA_2": "V1", "THETA_3": "Q", "THETA_4": "V2", "THETA_5": "KA", "THETA_6": "TLAG"}
               | _eta_names(5, ["CL", "V1", "Q", "V2", "KA"]))
    _library_twin(tmp_path, ADVAN4, "two_comp_oral", [0.5, 1, 2, 4, 8, 12, 24], pk.Regimen.single(100.0),
                  mapping, 1e-6)


def test_advan13_des_is_the_michaelis_menten_model(tmp_path):
    mapping = {"THETA_1": "VM", "THETA_2": "KM", "THETA_3": "V"} | _eta_names(3, ["VM", "KM", "V"])
    _library_twin(tmp_path, ADVAN13, "one_comp_mm_iv", [0.5, 1, 2, 4, 6, 8, 12], pk.Regimen.single(50.0), mapping,
                  1e-6)


def test_pheno_with_covariates_and_its_dataset():
    spec = from_nonmem(PHENO)
    assert spec.covariate_names == ["APGR", "WGT"] and len(spec.default_design.groups) == 59
    model = pk.compile_model(spec)
    twin = pk.model.parse.parse_model_text((Path(__file__).parent / "reference" / "pheno_twin.toml").read_text(),
                                           "<pheno twin>")
    d = spec.default_design
    a = pk.evaluate_fim(model, d)
    b = pk.evaluate_fim(pk.compile_model(twin), pk.Design.from_dict(d.to_dict(), ["Y"]))
    assert list(a.names) == list(b.names)
    np.testing.assert_allclose(a.matrix, b.matrix, rtol=1e-6, atol=1e-6 * np.abs(b.matrix).max())


def test_exponential_error_is_recognised(tmp_path):
    text = ADVAN2.replace("Y = F + F*EPS(1) + EPS(2)", "Y = F*EXP(EPS(1))").replace("$SIGMA 0.01 0.25", "$SIGMA 0.04")
    toml = nonmem_to_toml(_write(tmp_path, text))
    assert 'error = { model = "exponential", exp = { variance = 0.04 } }' in toml


@pytest.mark.parametrize("text, message", [
    ("this is not a control stream\n", "not a NONMEM control stream"),
    (ADVAN2.replace("Y = F + F*EPS(1) + EPS(2)", "Y = F + THETA(4)*EPS(1)").replace("$SIGMA 0.01 0.25",
                                                                                    "$SIGMA 1 FIX")
     .replace("(0, 1)\n", "(0, 1) (0, 0.5)\n"), "the coefficient of EPS_1"),
    (ADVAN2 + "$MIX\nP(1) = THETA(1)\n", "$MIX"),
])
def test_unsupported_control_streams_are_clear_errors(tmp_path, text, message):
    with pytest.raises(ModelSpecError) as exc:
        nonmem_to_toml(_write(tmp_path, text))
    assert message in str(exc.value)


def test_import_command(tmp_path, capsys):
    src = _write(tmp_path, ADVAN2)
    out = tmp_path / "imported.toml"
    assert cli.main(["import", str(src), "-o", str(out)]) == 0
    assert "imported" in capsys.readouterr().out
    spec = pk.load_model(out)
    assert spec.parameter_names[:3] == ["THETA_1", "THETA_2", "THETA_3"]
    assert re.search(r'route = "bolus"', out.read_text())


def test_exported_dataset_is_read_by_pharmpy_with_the_imported_model(tmp_path):
    """Export -> NONMEM dataset -> pharmpy reads it with the control stream -> the imported example design is the
    README design again (32 subjects, one group each): the same FO FIM."""
    warfarin = pk.compile_model(pk.load_model("warfarin"))
    frame = warfarin.spec.default_design.to_dataset(warfarin, simulate=True, seed=3)
    data = pk.write_dataset(frame, tmp_path / "warfarin.csv")
    text = ADVAN2.replace("$INPUT ID TIME AMT DV", "$INPUT " + " ".join(frame.columns)).replace(
        "$DATA data.csv", f"$DATA {data}")
    ctl = _write(tmp_path, text)
    from pharmpy.modeling import read_model

    model = read_model(str(ctl))
    assert len(model.dataset) == len(frame) == 288
    np.testing.assert_allclose(model.dataset["DV"].to_numpy(), frame["DV"].to_numpy(), rtol=1e-9)
    spec = from_nonmem(ctl)
    design = spec.default_design
    assert len(design.groups) == 32 and all(g.n == 1 for g in design.groups)
    imported = pk.evaluate_fim(pk.compile_model(spec), design, fim="full")
    ref = pk.evaluate_fim(warfarin, warfarin.spec.default_design, fim="full")
    mapping = {"THETA_1": "CL", "THETA_2": "V", "THETA_3": "KA"} | _eta_names(3, ["CL", "V", "KA"])
    np.testing.assert_allclose(_matched(imported, ref, mapping), ref.matrix, rtol=1e-6,
                               atol=1e-6 * np.abs(ref.matrix).max())


def test_a_name_assigned_three_times_gets_one_name_per_assignment(tmp_path):
    """IF blocks reassigning TV_V (a name with an underscore) twice: TV_V, TV_V_2, TV_V_3."""
    text = ADVAN2.replace("V = THETA(2)*EXP(ETA(2))", "TV_V = THETA(2)\nIF (AMT.GT.100) TV_V = TV_V*2\n"
                          "IF (AMT.GT.200) TV_V = TV_V*3\nV = TV_V*EXP(ETA(2))")
    toml = nonmem_to_toml(_write(tmp_path, text))
    assert 'TV_V = "THETA_2"' in toml and "TV_V_2 = " in toml and "TV_V_3 = " in toml
    assert 'V = "TV_V_3*exp(ETA_2)"' in toml
    assert from_nonmem(_write(tmp_path, text)).parameter_names[:3] == ["THETA_1", "THETA_2", "THETA_3"]
