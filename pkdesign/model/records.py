"""Reading model files, with a record cache so that a model read before starts without the parser or sympy.

``load_model(path)`` parses a model file (:mod:`pkdesign.model.parse`) the first time and stores the resulting
:class:`ModelSpec` as a *record*: a pickle in which every sympy object is deferred
(:mod:`pkdesign.model.deferred`) and the views the kernels need without sympy (derivative indices, structure
key) are precomputed.  A later process with the same file reads the record instead (~5 ms instead of ~0.3 s,
sympy not imported); the formulas are loaded from it on first read.

A record's name hashes the file text, its path (the spec names it in messages) and the source of the whole
package, so a changed file or a changed pkdesign never reuses one.  The record holds the SHA-256 of its payload
and is verified before use: a corrupted, truncated or foreign file is ignored (one ``CacheWarning`` naming it)
and rewritten, never trusted; a cache that cannot be written costs a parse each time, nothing else.  Records live in ``specs/`` under the
kernel cache directory (``pkdesign cache clear`` removes them); every package version or edited model file
makes new ones, so writing a record keeps the ``MAX_RECORDS`` most recently written or read and deletes the rest.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from functools import lru_cache
from pathlib import Path

from .._version import __version__
from ..errors import ModelSpecError
from ..files import write_atomic
from .cache import cache_dir
from .spec import ModelSpec

_LOG = logging.getLogger("pkdesign")
_MAGIC = b"pkdesign-model-record 1 "
#: records kept in ``specs/`` (the most recently written or read); older ones are deleted when one is written
MAX_RECORDS = 500


@lru_cache(maxsize=1)
def package_fingerprint() -> str:
    """SHA-256 (first 16 hex digits) of the source of every module of the installed package."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(__version__.encode())
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def record_path(text: str, origin: str) -> Path:
    """Where the record of the model file ``origin`` with contents ``text`` lives."""
    h = hashlib.sha256(f"{package_fingerprint()}\n{origin}\n".encode())
    h.update(text.encode("utf-8"))
    return cache_dir() / "specs" / f"{h.hexdigest()[:24]}.pkl"


def read_record(path: Path) -> ModelSpec | None:
    """The spec stored at ``path`` if the file is a complete, verified record, else None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(_MAGIC) + 64
    payload = data[head + 1:]
    if (not data.startswith(_MAGIC) or data[head:head + 1] != b"\n"
            or hashlib.sha256(payload).hexdigest().encode() != data[len(_MAGIC):head]):
        _warn(path, "the model record is corrupted (checksum mismatch); parsing the model file again")
        return None
    try:
        spec = pickle.loads(payload)
    except Exception as exc:  # a record written by an incompatible environment: parse again
        _warn(path, f"the model record cannot be read ({type(exc).__name__}); parsing the model file again")
        return None
    if not isinstance(spec, ModelSpec):
        _warn(path, "the model record holds no model; parsing the model file again")
        return None
    try:  # recently used: kept by prune_records
        path.touch()
    except OSError:
        pass
    return spec


def prune_records(directory: Path, keep: int | None = None) -> int:
    """Delete all but the ``keep`` (default ``MAX_RECORDS``) most recently written or read records in
    ``directory``; returns how many were deleted (best effort: files that vanish or resist are skipped)."""
    keep = MAX_RECORDS if keep is None else keep
    try:
        files = list(directory.glob("*.pkl"))
        if len(files) <= keep:
            return 0
        stamped = []
        for f in files:
            try:
                stamped.append((f.stat().st_mtime, f))
            except OSError:
                pass
    except OSError:
        return 0
    stamped.sort(reverse=True)
    gone = 0
    for _, f in stamped[keep:]:
        try:
            f.unlink()
            gone += 1
        except OSError:
            pass
    return gone


def _warn(path: Path, why: str) -> None:
    from ..kernels.jit import warn_cache

    warn_cache(path, why)


def write_record(path: Path, spec: ModelSpec) -> None:
    """Store ``spec`` at ``path`` atomically (best effort: an unwritable cache only costs later parses)."""
    from .deferred import dumps_deferred

    try:
        payload = dumps_deferred(spec.precompute())
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, _MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload, "model record",
                     OSError)
        prune_records(path.parent)
    except Exception as exc:  # OSError (read-only cache), or an object that cannot be pickled
        _LOG.debug("model record %s not written: %s", path, exc)


def load_model(path) -> ModelSpec:
    """Read and validate a model file (from its record when this file was read before).

    Parameters
    ----------
    path : str or Path
        A TOML model file (see the README for the format).

    Raises
    ------
    ModelSpecError
        If the file is missing, is not valid TOML, or is inconsistent; the message names the
        file and the key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelSpecError(f"{path}: no such model file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelSpecError(f"{path}: cannot read model file: {exc}") from None
    origin = str(path)
    rec = record_path(text, origin)
    spec = read_record(rec)
    if spec is None:
        from .parse import parse_model_text

        spec = parse_model_text(text, origin=origin)
        write_record(rec, spec)
    return spec
