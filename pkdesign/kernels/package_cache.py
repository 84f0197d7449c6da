"""The numba cache files of the package's own kernels (FIM kernels, the SSE's FO likelihood, the ODE integrators):
where they are, what they hold, and removing them (``pkdesign cache info`` and ``pkdesign cache clear --all``).

They are compiled once per installation, beside the package (``pkdesign/kernels/__pycache__``), or in numba's
user-wide cache folder when the package folder is read-only (``NUMBA_CACHE_DIR`` moves it).  The folder holds the
files of every version of every kernel module that ever compiled there, including modules that no longer compile
anything (an upgrade that moved their functions elsewhere): numba never removes those, and the pruning after a
compilation (:func:`pkdesign.kernels.jit.prune_stale_numba_files`) only sees the module that compiled.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: the modules whose kernels are cached (each has a ``_GUARD``: :class:`pkdesign.kernels.jit.CachedJit`)
MODULES = ("normal_fim", "fo_likelihood", "integrators")
_SUFFIXES = (".nbi", ".nbc", ".pkdesign-manifest.json")


def package_kernel_directory() -> Path | None:
    """The folder numba caches the package's kernels in (None: no cache location, the kernels compile in memory)."""
    from . import normal_fim

    loc = normal_fim._GUARD.location
    return None if loc is None else Path(loc[0])


def _files(directory: Path | None) -> list:
    if directory is None:
        return []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(directory / n for n in names if n.endswith(_SUFFIXES))


def _module_of(path: Path) -> str:
    return path.name.split(".", 1)[0]


def package_cache_info(directory: Path | None = None) -> dict:
    """What the package's kernel cache holds: directory, numba files (index and data), bytes, and the files of
    modules that no longer compile anything (``stale_files``)."""
    directory = package_kernel_directory() if directory is None else directory
    files = _files(directory)
    size = 0
    for f in files:
        try:
            size += f.stat().st_size
        except OSError:
            pass
    return {"directory": None if directory is None else str(directory),
            "numba_files": sum(1 for f in files if f.suffix in (".nbi", ".nbc")),
            "stale_files": sum(1 for f in files if _module_of(f) not in MODULES), "bytes": size}


def clear_package_cache(directory: Path | None = None) -> int:
    """Remove the package's compiled kernels (numba's files and pkdesign's manifests; the next use recompiles, once
    per installation); returns the number of files removed.  Each module's files are removed under its cache lock,
    so a process compiling at that moment finishes first; one that loaded them already keeps its machine code.
    Locks and Python's own ``.pyc`` files stay."""
    from .jit import _locked

    directory = package_kernel_directory() if directory is None else directory
    files = _files(directory)
    n = 0
    for module in sorted({_module_of(f) for f in files}):
        # a module that no longer compiles anything has no lock to respect (and gets no lock file)
        with _locked(directory, module) if module in MODULES else contextlib.nullcontext():
            for f in files:
                if _module_of(f) == module:
                    try:
                        f.unlink()
                        n += 1
                    except FileNotFoundError:
                        pass
    return n
