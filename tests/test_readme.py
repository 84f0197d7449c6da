"""The README tells the truth: its commands and Python snippets run as written.

Every ``pkdesign ...`` command in a ```bash block (also the part after ``&&`` in the Quick start)
runs and exits 0; every ```python block runs, in order, in one namespace (they build on each
other); the Quick start's test command is the one `.ci/run` runs.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from .conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(lang: str) -> list:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def commands() -> list:
    out = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if not line or line.startswith("#"):
                continue
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("pkdesign"):
                    out.append(part)
    return out


def test_readme_has_commands_and_snippets():
    assert len(commands()) >= 6 and len(blocks("python")) >= 4


@pytest.mark.parametrize("command", commands())
def test_readme_command_runs(command):
    argv = shlex.split(command)[1:]
    out = subprocess.run([sys.executable, "-m", "pkdesign.cli", *argv], capture_output=True, text=True, cwd=ROOT,
                         timeout=900, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and out.stdout.strip()


def printed_outputs() -> dict:
    """Python blocks followed directly by a ```text block: block number -> the output the README shows."""
    pairs = re.findall(r"```python\n(.*?)```\s*```text\n(.*?)```", README, flags=re.S)
    code = blocks("python")
    return {code.index(c): out for c, out in pairs}


def test_readme_python_snippets_run(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    shown = printed_outputs()
    assert shown, "the README's walk-through shows what its code prints"
    for i, code in enumerate(blocks("python")):
        capsys.readouterr()
        try:
            exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # pragma: no cover - the message names the block
            pytest.fail(f"README python block {i + 1} failed: {type(exc).__name__}: {exc}")
        printed = capsys.readouterr().out
        if i in shown:  # the output the README shows is the one the code prints (trailing spaces aside)
            norm = [ln.rstrip() for ln in printed.strip().splitlines()]
            assert norm == [ln.rstrip() for ln in shown[i].strip().splitlines()], printed


def test_quick_start_test_command_is_what_ci_runs():
    quick = blocks("bash")[0]
    test_line = [ln for ln in quick.splitlines() if "pytest" in ln][0].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_line in ci
