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
    assert data["parameters"][:3] == ["CL", "V", "KA"]


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
