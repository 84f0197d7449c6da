"""The model library and design files: finding a model by name, reading a design file.

``load_model("warfarin")`` loads a bundled model (or any model file by path); ``load_design(path,
model)`` reads a design file (TOML or JSON with a ``groups`` list, optionally ``window``).  The
library folder is ``$PKDESIGN_MODELS`` if set, else the models shipped with the package.  The CLI uses
these and nothing of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

from .design import Design
from .errors import DesignError, ModelSpecError


def models_dir() -> Path:
    """The model library: ``$PKDESIGN_MODELS``, else the ``pkdesign/models`` package data of an installed
    wheel, else ``models/`` at the top of the repository (source checkouts and editable installs)."""
    env = os.environ.get("PKDESIGN_MODELS")
    if env:
        return Path(env)
    packaged = Path(__file__).resolve().parent / "models"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "models"


def resolve_model(name) -> Path:
    """The model file for ``name``: an existing file, else (for a bare name such as ``"warfarin"``) the model
    of that name in the library; a missing path is returned as is (the loader names it)."""
    name = str(name)
    p = Path(name)
    if p.is_file():
        return p
    bare = p.parent == Path(".")
    lib = models_dir() / (name if name.endswith(".toml") else name + ".toml")
    if bare and lib.is_file():
        return lib
    if p.exists():
        raise ModelSpecError(f"model {name!r}: {p} is not a file, and no model of that name in {models_dir()}")
    if bare:
        raise ModelSpecError(f"model {name!r}: no such file, and no model of that name in {models_dir()}")
    return p


def read_text(path: Path, what: str, error=DesignError) -> str:
    """The UTF-8 text of ``path``; a byte-order mark or unreadable file is named in the error."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        raise error(f"{path}: the {what} starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: the {what} is not UTF-8 text (byte {exc.start})") from None


def load_design(path, spec) -> Design:
    """Read the design of a design file (TOML or JSON) for the model ``spec`` (a ModelSpec or a model
    with ``.spec``); ``designfile.read_design_file`` gives its space and prior too."""
    from .designfile import read_design_file

    return read_design_file(path, getattr(spec, "spec", spec).output_names).design


def load_model(name_or_path):
    """A ``ModelSpec`` from a model file path or the name of a model in the library (``"warfarin"``)."""
    from .model.records import load_model as load_file

    return load_file(resolve_model(name_or_path))
