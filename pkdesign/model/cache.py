"""The model kernel cache: where generated modules live, their keys, and loading them (verified).

The directory is ``$PKDESIGN_CACHE_DIR/kernels`` if the variable is set, else the user cache
directory of the platform (``platformdirs``: ``~/.cache/pkdesign/kernels`` on Linux,
``~/Library/Caches/pkdesign/kernels`` on macOS, the local app-data folder on Windows).
``cache_info()`` and ``clear_cache()`` back ``pkdesign cache info|clear``; the least recently used modules beyond
``KEEP_MODELS`` are evicted when a new one is generated.  A key hashes everything
generated kernels depend on (model structure, the generator's source, pkdesign and numba versions); the module text is sealed and
checked by :mod:`pkdesign.kernels.jit`.  Shared by closed-form (``compile.py``) and ODE (``ode.py``)
models.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path

from typing import TYPE_CHECKING

from .._version import __version__

if TYPE_CHECKING:
    from ..kernels.jit import GeneratedModule
    from .spec import ModelSpec

_LOCK = threading.Lock()
_MODULES: dict = {}


def cache_dir() -> Path:
    """Directory holding generated kernel modules and numba's cache files."""
    root = os.environ.get("PKDESIGN_CACHE_DIR")
    if root:
        return Path(root) / "kernels"
    import platformdirs

    return Path(platformdirs.user_cache_dir("pkdesign", appauthor=False)) / "kernels"


def cache_info() -> dict:
    """What the kernel cache holds: directory, generated modules (closed form, ODE), numba files, parsed model
    records, bytes."""
    d = cache_dir()
    files = [f for f in d.rglob("*") if f.is_file()] if d.is_dir() else []
    sources = [f for f in files if f.suffix == ".py"]
    return {"directory": str(d), "exists": d.is_dir(),
            "models": sum(1 for f in sources if f.name.startswith("pkd_")),
            "ode_models": sum(1 for f in sources if f.name.startswith("pkdode_")),
            "numba_files": sum(1 for f in files if f.suffix in (".nbi", ".nbc")),
            "model_records": sum(1 for f in files if f.suffix == ".pkl"),
            "files": len(files), "bytes": sum(f.stat().st_size for f in files)}


def clear_cache() -> int:
    """Remove every file of the kernel cache (the next use recompiles); returns the number removed.

    Only files under the cache directory are removed (generated modules, locks, numba's files in
    ``__pycache__``); a file another process is writing at that moment is replaced by it atomically,
    and every file is verified before use, so a clear during a run costs a recompile, never a wrong number."""
    d = cache_dir()
    n = 0
    if d.is_dir():
        for f in sorted(d.rglob("*"), reverse=True):
            if f.is_file() or f.is_symlink():
                try:
                    f.unlink()
                    n += 1
                except FileNotFoundError:
                    pass
    with _LOCK:
        _MODULES.clear()
    return n


def generator_fingerprint(*names: str) -> str:
    """Hash of the generator modules ``names`` (files beside this one), so that a changed generator
    never reuses old kernels."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in names:
        h.update((here / name).read_bytes())
    return h.hexdigest()[:12]


def spec_hash(spec: ModelSpec, tag: str, fingerprint: str) -> str:
    """Hash of everything generated kernels depend on: model structure, generator, pkdesign and numba versions."""
    import numba

    text = f"{tag} {__version__} {fingerprint}\nnumba {numba.__version__}\n{spec.structure_key()}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def load_generated_module(key: str, prefix: str, make_source) -> GeneratedModule:
    """The verified generated module ``{prefix}_{key}`` (see :mod:`pkdesign.kernels.jit`): read from the
    cache directory, or written there with ``make_source()`` when absent or corrupted, or executed in
    memory when the cache cannot be written.  One module per key per process."""
    from ..kernels.jit import GeneratedModule, load_module

    with _LOCK:
        gm = _MODULES.get(key)
        if gm is None:
            directory = cache_dir()
            gm = load_module(directory, key, prefix, make_source)
            _MODULES[key] = gm
            if gm.path is not None:
                _stamp_use(directory / f"{prefix}_{key}.lock")
                if gm.generated:
                    evict_least_recently_used(directory)
            return gm
        return GeneratedModule(gm.module, gm.path, gm.source, False)


#: generated model modules kept in the cache (the most recently used; ``PKDESIGN_CACHE_MODELS`` overrides it)
KEEP_MODELS = 256
_MODULE_PREFIXES = ("pkd_", "pkdode_")


def _stamp_use(lock: Path) -> None:
    """Record that a generated module was used now: its lock file's modification time (the module's own file is
    left alone; nothing reads the lock's contents)."""
    try:
        os.utime(lock)
    except OSError:
        pass


def _keep_models() -> int:
    try:
        return max(1, int(os.environ.get("PKDESIGN_CACHE_MODELS", KEEP_MODELS)))
    except ValueError:
        return KEEP_MODELS


def evict_least_recently_used(directory: Path, keep: int | None = None) -> int:
    """Remove the generated modules beyond the ``keep`` most recently used (default :data:`KEEP_MODELS`) with
    their numba files (``__pycache__/<module>.*``), so that model variants and pkdesign upgrades (every upgrade
    keys its kernels anew) do not grow the cache without bound; returns the number of modules removed.  Run after a
    new module is generated.  Each module is removed under its lock; one that a running process loaded keeps
    working (its machine code is in memory) and is regenerated by the next process that needs it: a recompile,
    never a wrong number (every artefact is verified before use)."""
    from ..kernels.jit import file_lock

    keep = _keep_models() if keep is None else keep
    last = {}  # module -> last use: its lock file's time (its source file's when it has no lock file)
    try:
        with os.scandir(directory) as it:
            for e in it:
                stem, ext = os.path.splitext(e.name)
                if ext in (".lock", ".py") and e.name.startswith(_MODULE_PREFIXES):
                    try:
                        t = e.stat().st_mtime
                    except OSError:
                        continue
                    if ext == ".lock" or stem not in last:
                        last[stem] = t
    except OSError:
        return 0
    stamps = [(t, stem) for stem, t in last.items()]
    if len(stamps) <= keep:
        return 0
    stamps.sort(reverse=True)
    numba_dir = directory / "__pycache__"
    try:
        numba_files = os.listdir(numba_dir)
    except OSError:
        numba_files = []
    removed = 0
    for _, stem in stamps[keep:]:
        lock = directory / f"{stem}.lock"
        with file_lock(lock):
            doomed = [directory / f"{stem}.py"] + [numba_dir / n for n in numba_files if n.startswith(stem + ".")]
            for f in doomed:
                with contextlib.suppress(OSError):
                    f.unlink()
            with contextlib.suppress(OSError):
                lock.unlink()
        removed += 1
    return removed
