"""The command line: exit codes, JSON output, error messages without tracebacks."""

import json
import subprocess
import sys

from .conftest import MODELS, ROOT


def run(*args):
    return subprocess.run([sys.executable, "-m", "pkdesign.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)


def test_models_lists_the_library():
    out = run("models", "--json")
    assert out.returncode == 0, out.stderr
    names = [m["name"] for m in json.loads(out.stdout)["models"]]
    assert "warfarin" in names and "box_lucas" in names and len(names) >= 15
    text = run("models")
    assert "warfarin" in text.stdout


def test_evaluate_json_for_warfarin():
    out = run("evaluate", str(MODELS / "warfarin.toml"), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["parameters"] == ["CL", "V", "KA", "omega2(CL)", "omega2(V)", "omega2(KA)", "sigma2_prop",
                                  "sigma2_add"]
    assert data["approximation"] == "fo" and data["fim_type"] == "full"
    # PopED, ../shared/reference/warfarin_fo.json (combined error, full FIM)
    assert abs(data["logdet"] - 57.0827559932) < 1e-6 * 57.08
    assert abs(data["rse_percent"][2] - 6.58916) < 1e-4 * 6.59
    red = json.loads(run("evaluate", "warfarin", "--fim", "reduced", "--json").stdout)
    assert abs(red["logdet"] - 55.3964499762) < 1e-6 * 55.4
    table = run("evaluate", str(MODELS / "warfarin.toml"))
    assert "RSE%" in table.stdout and "omega2(KA)" in table.stdout


def test_non_identifiable_design_names_the_direction(tmp_path):
    # one sample per subject cannot separate CL and V of a bolus model with 2 random effects
    design = tmp_path / "d.toml"
    design.write_text("[[groups]]\nn = 10\ntimes = [4.0]\ndose = 100\n")
    out = run("evaluate", str(MODELS / "one_comp_bolus.toml"), "--design", str(design))
    assert out.returncode == 2
    assert "not identifiable along" in out.stderr


def test_bad_input_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[parameters]\nCL = 1\n[outputs.y]\nexpression = 'CL*Q'\nerror = { model = 'additive', add = { variance = 1 } }\n")
    out = run("evaluate", str(bad))
    assert out.returncode == 2
    assert "unknown name 'Q'" in out.stderr
    assert "Traceback" not in out.stderr
    out = run("evaluate", "no_such_model")
    assert out.returncode == 2 and "no such file" in out.stderr
    design = tmp_path / "d.toml"
    design.write_text("[[groups]]\nn = 10\ntimes = [1, -2]\ndose = 70\n")
    out = run("evaluate", str(MODELS / "warfarin.toml"), "--design", str(design))
    assert out.returncode == 2 and "time at index 1 is -2" in out.stderr
