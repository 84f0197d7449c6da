"""Every bundled model's default design evaluates and optimises from the command line.

``pkdesign optimize MODEL`` (exact, continuous; one start, and the reduced FIM for ODE models, to keep
the suite short) and
``pkdesign optimize MODEL --algorithm fedorov-wynn`` (approximate) must succeed with a finite
criterion for every model of the library: a default that fails its own optimisation (as
warfarin_prop and effect_compartment did, a sample moved to t = 0 with a proportional-only error)
is a bug.  Approximate designs need --output or a joint protocol in a design file; for the PK/PD models with two
outputs the refusal must be the clean one (multi-output candidate protocols are the subject of a
separate issue).
"""

from __future__ import annotations

import json
import math

import pytest

import pkdesign as pk
from pkdesign import cli

from .conftest import MODELS

NAMES = sorted(p.stem for p in MODELS.glob("*.toml"))


def _run(argv, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # pragma: no cover - argparse
        rc = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


@pytest.mark.parametrize("name", NAMES)
def test_default_optimisations_succeed(name, capsys):
    spec = pk.load_model(MODELS / f"{name}.toml")
    # the full FIM of ODE models needs second-order sensitivity systems whose compile dominates the
    # suite (tmdd_qss: ~80 s cold); it is tested in tests/test_ode.py, so the ODE rows use the reduced FIM
    fim = ["--fim", "reduced"] if spec.ode is not None else []
    rc, out, err = _run(["optimize", name, "--starts", "1", "--json", *fim], capsys)
    assert rc == 0, err
    res = json.loads(out)
    assert res["status"] in ("converged", "max_iterations") and math.isfinite(res["criterion_value"])
    assert res["criterion_value"] >= res["start_value"] - 1e-9
    window = spec.default_design.window
    if window is not None:  # the search stays in the model's window
        times = [t for g in res["design"]["groups"] for v in g["times"].values() for t in v]
        assert min(times) >= window[0] - 1e-12 and max(times) <= window[1] + 1e-12
    # 3 samples per schedule (560 candidates on the default 16-point grid) rather than the design's 6-11
    # (up to 12,870 candidates per group): the same code path in a fraction of the time
    rc, out, err = _run(["optimize", name, "--algorithm", "fedorov-wynn", "--samples", "3", "--json", *fim], capsys)
    if len(spec.outputs) > 1:
        assert rc == 2 and "say what an approximate design samples" in err and "--output" in err
        return
    assert rc == 0, err
    res = json.loads(out)
    assert math.isfinite(res["criterion_value"]) and res["sensitivity_max"] > 0
