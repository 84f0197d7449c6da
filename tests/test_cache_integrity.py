"""A corrupted, unwritable or interrupted kernel cache never changes a number and never shows a
traceback (see pkdesign.kernels.jit).

Each row copies a populated cache, damages one artefact (generated source, numba index, numba
data, the parsed-model record, the manifest, the directory itself), and runs ``pkdesign evaluate one_comp_bolus
--fim reduced`` in a fresh process: the ln det must be the clean cache's, bit for bit (stricter than a tolerance
against a published value: a changed digit in a kernel could hide inside one; the published values themselves are
checked in test_fim and test_fim_fo), with one ``pkdesign: warning: kernel cache ...`` line where something was
rebuilt.  A small model, because every row regenerates or recompiles it (0.8 s; warfarin's took 1.7 s).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from pkdesign.kernels import jit

from .conftest import ROOT
from .helpers import default_cache_env

MODEL = "one_comp_bolus"
_CLEAN = {}  # the ln det of MODEL's FO reduced FIM in a clean cache (set by the first evaluation)


def run(cache, *args, timeout=600):
    env = default_cache_env(PKDESIGN_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, "-m", "pkdesign.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


def _evaluate(cache) -> tuple:
    out = run(cache, "evaluate", MODEL, "--fim", "reduced", "--json")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out.stderr, json.loads(out.stdout)["logdet"]


def evaluate(cache) -> str:
    """Run the evaluation in a fresh process with this cache: the clean cache's ln det bit for bit (the ``populated``
    fixture must have run); returns its stderr."""
    err, logdet = _evaluate(cache)
    assert logdet == _CLEAN["logdet"], (logdet, _CLEAN["logdet"])
    return err


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A cache populated by a clean run (whose ln det is the reference)."""
    base = tmp_path_factory.mktemp("kernel-cache")
    err, _CLEAN["logdet"] = _evaluate(base)
    assert err == ""
    return base


def _source(cache: Path) -> Path:
    return next((cache / "kernels").glob("pkd_*.py"))


def _numba(cache: Path, suffix: str) -> Path:
    return next((cache / "kernels" / "__pycache__").glob(f"pkd_*predict1*{suffix}"))


def _truncate_end(p):
    p.write_bytes(p.read_bytes()[:-300])


def _truncate_middle(p):
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _flip_digit(p):
    data = bytearray(p.read_bytes())
    body = data.index(b"def predict1")
    i = next(k for k in range(body, len(data)) if chr(data[k]).isdigit() and data[k] != ord("9"))
    data[i] += 1
    p.write_bytes(bytes(data))


def _record(cache: Path) -> Path:
    return next((cache / "kernels" / "specs").glob("*.pkl"))


def _flip_byte(p):
    data = bytearray(p.read_bytes())
    data[-10] ^= 0x01
    p.write_bytes(bytes(data))


CORRUPTIONS = {
    "source-truncated-at-the-end": (_source, _truncate_end),
    "source-truncated-in-the-middle": (_source, _truncate_middle),
    "source-one-digit-changed": (_source, _flip_digit),
    "source-garbage": (_source, lambda p: p.write_bytes(os.urandom(4000))),
    "source-empty": (_source, lambda p: p.write_bytes(b"")),
    "numba-index-garbage": (lambda c: _numba(c, ".nbi"), lambda p: p.write_bytes(b"garbage" * 50)),
    "numba-data-truncated": (lambda c: _numba(c, ".nbc"), _truncate_middle),
    "numba-data-one-byte-changed": (lambda c: _numba(c, ".nbc"),
                                    lambda p: p.write_bytes(p.read_bytes()[:-10] + b"\x00" + p.read_bytes()[-9:])),
    # the parsed model (pkdesign.model.records)
    "model-record-truncated": (_record, _truncate_middle),
    "model-record-one-bit-changed": (_record, _flip_byte),
    "model-record-garbage": (_record, lambda p: p.write_bytes(os.urandom(3000))),
    "model-record-empty": (_record, lambda p: p.write_bytes(b"")),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupted_artefact_is_rebuilt(populated, tmp_path, kind):
    cache = tmp_path / "cache"
    shutil.copytree(populated, cache)
    where, damage = CORRUPTIONS[kind]
    target = where(cache)
    damage(target)
    err = evaluate(cache)
    warned = [ln for ln in err.splitlines() if ln.startswith("pkdesign: warning: kernel cache")]
    assert len(warned) == 1 and target.name in warned[0], err
    assert evaluate(cache) == ""  # rebuilt: the next run is silent and uses it


def test_garbage_manifest_means_recompile_not_a_wrong_number(populated, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(populated, cache)
    manifest = next((cache / "kernels" / "__pycache__").glob("*.pkdesign-manifest.json"))
    manifest.write_text("{not json")
    evaluate(cache)
    assert json.loads(manifest.read_text())["files"]  # rewritten


def test_cache_directory_is_a_file(populated, tmp_path):
    (tmp_path / "kernels").write_text("not a directory")
    err = evaluate(tmp_path)
    assert "pkdesign: warning: kernel cache" in err and "compiling in memory" in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_source(populated, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(populated, cache)
    _source(cache).chmod(0)
    assert "cannot" in evaluate(cache)


def test_unwritable_cache_compiles_in_memory(tmp_path, monkeypatch):
    # in-process: writing fails (read-only file system): the source is executed from memory
    def refuse(path, data):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(jit, "atomic_write", refuse)
    with pytest.warns(jit.CacheWarning, match="cannot write"):
        gm = jit.load_module(tmp_path, "k1", "test", lambda: "def f(x):\n    return 2 * x\n")
    assert gm.path is None and gm.module.f(3) == 6 and gm.generated


def test_sealed_source_round_trip(tmp_path):
    body = "X = 1\n"
    gm = jit.load_module(tmp_path, "k2", "test", lambda: body)
    assert gm.generated and gm.module.X == 1
    jit._WARNED.clear()
    again = jit.load_module(tmp_path, "k2", "test", lambda: pytest.fail("must not regenerate"))
    assert not again.generated and again.source == body
    path = tmp_path / "test_k2.py"
    path.write_text(path.read_text().replace("X = 1", "X = 2"))
    with pytest.warns(jit.CacheWarning, match="does not match its checksum"):
        fixed = jit.load_module(tmp_path, "k2", "test", lambda: body)
    assert fixed.generated and fixed.module.X == 1


GUARDED_MODULE = textwrap.dedent('''
    import numpy as np
    from pkdesign.kernels.jit import CachedJit, GuardedKernel
    _G = CachedJit()
    def _square_sum(x):
        s = 0.0
        for v in x:
            s += v * v
        return s
    square_sum = GuardedKernel(_G, _G.jit(_square_sum, nogil=True))
''')


def test_package_style_kernel_cache_is_verified(tmp_path):
    # the package's own kernels (pkdesign.kernels.normal_fim) use CachedJit + GuardedKernel: check the
    # mechanism on a module of the same kind, so that the installed package's cache is left alone
    (tmp_path / "guardedmod.py").write_text(GUARDED_MODULE)
    script = "import numpy as np, guardedmod; print(guardedmod.square_sum(np.arange(5.0)))"
    env = default_cache_env(PYTHONPATH=str(tmp_path) + os.pathsep + str(ROOT))

    def call():
        out = subprocess.run([sys.executable, "-W", "always", "-c", script], capture_output=True, text=True,
                             env=env, timeout=300)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        assert out.stdout.strip() == "30.0"
        return out.stderr

    assert "CacheWarning" not in call()
    cached = list((tmp_path / "__pycache__").glob("guardedmod._square_sum*.nbc"))
    assert cached and (tmp_path / "__pycache__" / "guardedmod.pkdesign-manifest.json").exists()
    assert "CacheWarning" not in call()  # loaded from the verified cache
    data = cached[0].read_bytes()
    cached[0].write_bytes(data[: len(data) // 3])
    assert "does not match its checksum" in call()
    assert "CacheWarning" not in call()


def test_files_numba_would_never_load_again_are_removed_after_a_compile(tmp_path, monkeypatch):
    """An edited module (a package upgrade, a regenerated model) leaves the cache files of its removed or moved
    functions behind: numba ignores an index whose source stamp is not the file's, and overwrites it only when
    the same function is compiled again.  After the next compilation in the module they are gone, the manifest
    lists what is left, and the other kernels' files are kept."""
    import importlib

    import numba

    if numba.config.CACHE_DIR:
        pytest.skip("NUMBA_CACHE_DIR is set: numba writes this module's files there, not beside it")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = tmp_path / "prunemod.py"

    def load(text):
        mod.write_text(textwrap.dedent(text))
        sys.modules.pop("prunemod", None)
        importlib.invalidate_caches()
        return importlib.import_module("prunemod")

    v1 = load('''
        from pkdesign.kernels.jit import CachedJit, GuardedKernel
        _G = CachedJit()
        def _gone(x):
            return x + 1.0
        def _kept(x):
            return 2.0 * x
        gone = GuardedKernel(_G, _G.jit(_gone))
        kept = GuardedKernel(_G, _G.jit(_kept))
    ''')
    assert v1.gone(1.0) == 2.0 and v1.kept(1.0) == 2.0
    cache = tmp_path / "__pycache__"
    files = lambda name: sorted(p.name for p in cache.glob(f"prunemod.{name}-*"))  # noqa: E731
    assert files("_gone") and files("_kept")
    v2 = load('''
        from pkdesign.kernels.jit import CachedJit, GuardedKernel
        _G = CachedJit()
        # _gone was removed and _kept moved down a line: their old files are stale
        def _kept(x):
            return 2.0 * x
        kept = GuardedKernel(_G, _G.jit(_kept))
    ''')
    assert v2.kept(3.0) == 6.0  # compiled again (numba ignores the stale index), then the module is pruned
    assert not files("_gone")
    kept = files("_kept")
    line = v2._kept.__code__.co_firstlineno
    assert kept and all(n.startswith(f"prunemod._kept-{line}.") for n in kept), kept  # only at its new line
    manifest = json.loads((cache / "prunemod.pkdesign-manifest.json").read_text())["files"]
    assert sorted(manifest) == sorted(p.name for p in cache.glob("prunemod.*") if p.suffix in (".nbi", ".nbc"))
    sys.modules.pop("prunemod", None)


def test_ctrl_c_during_compile_exits_130_and_leaves_a_valid_cache(tmp_path):
    child = textwrap.dedent('''
        import signal
        import sys
        import pkdesign.cli
        # as on a terminal: a process started by a test worker may inherit an ignored SIGINT
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("ready", flush=True)
        sys.exit(pkdesign.cli.main(["evaluate", "two_comp_oral", "--fim", "full", "--json"]))
    ''')
    env = default_cache_env(PKDESIGN_CACHE_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)  # sympy / numba are working on the model's kernels now (second order in a new cache: ~6 s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, (out, err)
    assert err.strip().splitlines() == ["pkdesign: interrupted"], err
    # no half-written file survives, and the next run gives the same numbers as a clean cache
    assert not list((tmp_path / "kernels").glob("*.tmp*"))
    again = run(tmp_path, "evaluate", "two_comp_oral", "--fim", "reduced", "--json")
    clean = run(tmp_path / "clean", "evaluate", "two_comp_oral", "--fim", "reduced", "--json")
    assert again.returncode == 0 and clean.returncode == 0, again.stderr + clean.stderr
    assert json.loads(again.stdout)["logdet"] == json.loads(clean.stdout)["logdet"]


def test_warning_is_shown_once_per_path():
    jit._WARNED.clear()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        jit.warn_cache("/x", "why")
        jit.warn_cache("/x", "why")
    assert len(seen) == 1


def test_least_recently_used_models_are_evicted(tmp_path, monkeypatch):
    """Generating a module beyond PKDESIGN_CACHE_MODELS removes the least recently used ones (last use: their lock
    file's time, refreshed at every load) with their numba files; a module loaded again stays; other files stay."""
    from pkdesign.model import cache

    monkeypatch.setenv("PKDESIGN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PKDESIGN_CACHE_MODELS", "3")
    kdir = tmp_path / "kernels"
    numba_dir = kdir / "__pycache__"
    tag = os.urandom(4).hex()  # keys unique to this test (the process keeps loaded modules by key)
    keys = [f"{tag}lru{i}" for i in range(6)]

    def generate(i):
        gm = cache.load_generated_module(keys[i], "pkd", lambda: f"X = {i}\n")
        assert gm.module.X == i
        numba_dir.mkdir(exist_ok=True)
        for suffix in ("predict1-9.py311.nbi", "predict1-9.py311.1.nbc", "pkdesign-manifest.json"):
            (numba_dir / f"pkd_{keys[i]}.{suffix}").write_text("x")
        os.utime(kdir / f"pkd_{keys[i]}.lock", (1e9 + i, 1e9 + i))  # used at increasing times

    for i in range(3):
        generate(i)
    (numba_dir / "other.pkdesign-lock").write_text("")
    cache._MODULES.pop(keys[0])
    cache.load_generated_module(keys[0], "pkd", lambda: "raise SystemExit('not regenerated')\n")  # used now
    generate(3)  # a fourth module: 1, the least recently used, goes
    assert not (kdir / f"pkd_{keys[1]}.py").exists() and (kdir / f"pkd_{keys[2]}.py").exists()
    generate(4)  # then 2
    left = sorted(p.name for p in kdir.glob("pkd_*.py"))
    assert left == sorted(f"pkd_{keys[i]}.py" for i in (0, 3, 4)), left
    for i in (1, 2):
        assert not list(numba_dir.glob(f"pkd_{keys[i]}.*")) and not (kdir / f"pkd_{keys[i]}.lock").exists()
    for i in (0, 3, 4):
        assert len(list(numba_dir.glob(f"pkd_{keys[i]}.*"))) == 3
    assert (numba_dir / "other.pkdesign-lock").exists()
    cache._MODULES.pop(keys[1], None)
    assert cache.load_generated_module(keys[1], "pkd", lambda: "X = 11\n").module.X == 11  # regenerated
