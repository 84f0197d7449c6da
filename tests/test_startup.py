"""A model read before starts without the parser or sympy, and its cached kernels load without numba's compiler.

The model record cache (pkdesign.model.records) must give back exactly the spec the parser gives, for every
library model; a warm process must import no sympy and give bit-identical numbers; a compilation after the
light cache loads (pkdesign.kernels.jit.fast_cache_loads) must still work.  Corrupted records are in the
table of tests/test_cache_integrity.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pkdesign as pk
from pkdesign.model.compile import model_hash
from pkdesign.model.deferred import Deferred
from pkdesign.model.parse import parse_model_text
from pkdesign.model.records import read_record, record_path, write_record

from .conftest import MODELS, ROOT

LIBRARY = sorted(p.stem for p in MODELS.glob("*.toml"))


def same_spec(a, b):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "default_design":
            assert (x is None) == (y is None)
            if x is not None:
                assert x.to_dict() == y.to_dict()
        else:
            assert x == y or repr(x) == repr(y), f.name  # repr: a covariate without default holds NaN
    assert a.structure_key() == b.structure_key()
    assert a.derivative_indices() == b.derivative_indices() and a.used_parameters() == b.used_parameters()
    for u, v in zip(a.not_computed(), b.not_computed()):
        np.testing.assert_array_equal(u, v)
    assert a.uses_doses() == b.uses_doses() and a.lag_depends_on_parameters == b.lag_depends_on_parameters
    assert repr(a) == repr(b) and a.to_frame().equals(b.to_frame())


@pytest.mark.parametrize("name", LIBRARY)
def test_record_gives_back_the_parsed_spec(name, tmp_path):
    path = MODELS / f"{name}.toml"
    parsed = parse_model_text(path.read_text(encoding="utf-8"), str(path))
    rec = tmp_path / "r.pkl"
    write_record(rec, parse_model_text(path.read_text(encoding="utf-8"), str(path)))
    back = read_record(rec)
    # the formulas are deferred until read
    assert all(isinstance(o.__dict__["expression"], Deferred) for o in back.outputs)
    same_spec(back, parsed)
    assert model_hash(back) == model_hash(parsed)


def test_record_name_depends_on_text_and_path(tmp_path):
    text = (MODELS / "warfarin.toml").read_text(encoding="utf-8")
    a = record_path(text, "/x/warfarin.toml")
    assert a == record_path(text, "/x/warfarin.toml")
    assert a != record_path(text + "\n", "/x/warfarin.toml")
    assert a != record_path(text, "/y/warfarin.toml")


def test_changed_model_file_is_parsed_again(tmp_path):
    f = tmp_path / "m.toml"
    text = (MODELS / "one_comp_bolus.toml").read_text(encoding="utf-8")
    f.write_text(text, encoding="utf-8")
    first = pk.load_model(f)
    assert record_path(text, str(f)).is_file()
    f.write_text(text.replace("name = ", "name = \"renamed\"\n# was: ", 1), encoding="utf-8")
    assert pk.load_model(f).name == "renamed" != first.name


def test_unwritable_record_cache_still_loads(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("PKDESIGN_CACHE_DIR", str(blocker))
    spec = pk.load_model(MODELS / "warfarin.toml")
    assert spec.name == "warfarin"


CHILD = textwrap.dedent("""
    import json, sys
    import pkdesign as pk
    out = {}
    for name in ("warfarin", "warfarin_ode"):
        spec = pk.load_model(name)
        res = pk.evaluate_fim(pk.compile_model(spec), spec.default_design, fim="full")
        out[name] = res.logdet
    out["sympy"] = "sympy" in sys.modules
    out["numba_registries"] = "numba.np.arraymath" in sys.modules
    # a compilation after the light cache loads: numba's full initialisation must still happen
    import numba, numpy as np

    @numba.njit
    def f(a):
        return np.linalg.det(a @ a.T) + np.sum(np.exp(a))

    a = np.arange(9.0).reshape(3, 3) / 10
    out["compiled"] = [f(a), float(np.linalg.det(a @ a.T) + np.sum(np.exp(a)))]
    print(json.dumps(out))
""")


def test_warm_process_imports_no_sympy_and_agrees():
    env = dict(os.environ)
    runs = []
    for _ in range(2):  # the first fills the record and kernel caches if this machine has not yet
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, cwd=ROOT,
                             timeout=900)
        assert out.returncode == 0, out.stderr
        runs.append(json.loads(out.stdout.splitlines()[-1]))
    warm = runs[1]
    assert not warm["sympy"], "a cached model imported sympy"
    assert not warm["numba_registries"], "cached kernels initialised numba's whole compiler"
    for name in ("warfarin", "warfarin_ode"):
        spec = pk.load_model(name)
        here = pk.evaluate_fim(pk.compile_model(spec), spec.default_design, fim="full").logdet
        assert warm[name] == here  # bit for bit
    # PopED's FO full FIM of the warfarin example (../shared/reference/warfarin_fo.json)
    assert abs(warm["warfarin"] - 57.08275522) < 1e-7
    got, expected = warm["compiled"]
    assert abs(got - expected) < 1e-12 * abs(expected)


def test_no_public_function_is_shadowed_by_its_module():
    """``pk.simulate`` must stay the function: a submodule named like a lazily exported name would replace it on
    the package as soon as anything imports that submodule (Python sets the attribute after every import)."""
    clashes = [n for n, mod in pk._EXPORTS.items() if mod.rsplit(".", 1)[-1] == n]
    assert clashes == []
    import pkdesign.plot  # noqa: F401  (imports the simulation module)

    assert callable(pk.simulate) and callable(pk.sse)


def test_records_are_pruned_to_the_most_recently_used(tmp_path, monkeypatch):
    """Writing a record keeps the MAX_RECORDS most recently written or read ones; reading one keeps it."""
    import os

    from pkdesign.model import records

    monkeypatch.setattr(records, "MAX_RECORDS", 3)
    spec = parse_model_text((MODELS / "warfarin.toml").read_text(), "warfarin.toml")
    paths = [tmp_path / f"r{k}.pkl" for k in range(4)]
    for k, p in enumerate(paths):
        write_record(p, spec)
        os.utime(p, (1_000_000 + k, 1_000_000 + k))  # written in this order
    assert sorted(q.name for q in tmp_path.glob("*.pkl")) == ["r1.pkl", "r2.pkl", "r3.pkl"]  # r0: the oldest
    assert read_record(paths[1]) is not None  # read: now the most recent
    write_record(tmp_path / "r4.pkl", spec)
    assert sorted(q.name for q in tmp_path.glob("*.pkl")) == ["r1.pkl", "r3.pkl", "r4.pkl"]
    assert records.prune_records(tmp_path / "missing") == 0
