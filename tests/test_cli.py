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
    out = run("evaluate", str(MODELS / "warfarin.toml"), "--fim", "full", "--json")
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


def test_evaluate_other_approximations_and_seed():
    a = json.loads(run("evaluate", "warfarin", "--approx", "foce", "--draws", "50", "--seed", "3", "--json").stdout)
    b = json.loads(run("evaluate", "warfarin", "--approx", "foce", "--draws", "50", "--seed", "3", "--json").stdout)
    assert a["approximation"] == "foce" and a["fim"] == b["fim"]
    sd = json.loads(run("evaluate", "warfarin", "--scale", "sd", "--json").stdout)
    assert "omega(CL)" in sd["parameters"] and "sigma_add" in sd["parameters"]
    ex = run("evaluate", "warfarin", "--approx", "exact-mc", "--draws", "200")
    assert ex.returncode == 0 and "Monte-Carlo SE" in ex.stdout


def test_optimize_exact_and_approximate_json(tmp_path):
    out = run("optimize", "warfarin", "--fim", "reduced", "--window", "0", "120", "--json",
              "--plot", str(tmp_path / "d.png"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["logdet"] >= 56.717 and data["criterion_value"] == data["logdet"]
    assert data["design"]["groups"][0]["n"] == 32 and len(data["design"]["groups"][0]["times"]["conc"]) == 8
    assert (tmp_path / "d.png").stat().st_size > 0
    out = run("optimize", "box_lucas", "--algorithm", "multiplicative", "--grid", "0:40:81", "--samples", "1",
              "--refine", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert abs(data["sensitivity_max"] - 2) < 1e-3 and data["efficiency_lower_bound"] > 0.999
    assert sorted(round(s[0], 2) for s in data["support"]) == [1.23, 6.86]


def test_optimize_bad_input_exits_2():
    out = run("optimize", "warfarin", "--criterion", "Ds", "--subset", "CLEARANCE")
    assert out.returncode == 2 and "unknown parameter" in out.stderr and "Traceback" not in out.stderr
    out = run("optimize", "warfarin", "--window", "0", "10", "--min-spacing", "5")
    assert out.returncode == 2 and "spacing" in out.stderr
