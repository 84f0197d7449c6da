"""Writing user files safely: the whole file or nothing (temporary file in the same folder, then rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path, text: str | bytes, what: str, error) -> Path:
    """Write ``text`` (str: as UTF-8; bytes: as they are) to ``path`` atomically; a missing folder or a failed write raises ``error`` naming
    ``what`` and leaves no partial or temporary file."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise error(f"{what}: folder {folder} does not exist")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.replace(tmp, p)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise error(f"{what}: cannot write {p}: {exc.strerror or exc}") from None
    return p
