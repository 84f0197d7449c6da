"""Command-line interface: ``pkdesign models`` and ``pkdesign evaluate`` (FO FIM table).

The CLI computes nothing of its own: it parses arguments, calls the library and prints.
Errors from bad input (``PkdesignError``) go to stderr with exit code 2 and no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

import numpy as np

from .design import Design
from .errors import DesignError, NonIdentifiableError, PkdesignError


def models_dir() -> Path:
    """The bundled model library: ``$PKDESIGN_MODELS`` or ``models/`` beside the package."""
    import os

    env = os.environ.get("PKDESIGN_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "models"


def _resolve_model(name: str) -> Path:
    p = Path(name)
    if p.exists():
        return p
    lib = models_dir() / (name if name.endswith(".toml") else name + ".toml")
    if lib.exists():
        return lib
    raise PkdesignError(f"model {name!r}: no such file, and no model of that name in {models_dir()}")


def _load_design(path, spec) -> Design:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DesignError(f"{p}: cannot read design file: {exc}") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise DesignError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {exc}") from None
    if "design" in data and "groups" not in data:
        data = data["design"]
    return Design.from_dict(data, spec.output_names, where=str(p))


def cmd_models(args) -> int:
    from .model import load_model

    directory = models_dir()
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise PkdesignError(f"no model files in {directory}")
    rows = []
    for f in files:
        spec = load_model(f)
        rows.append({"name": spec.name, "file": str(f), "parameters": spec.parameter_names,
                     "outputs": spec.output_names, "description": spec.description, "source": spec.source})
    if args.json:
        print(json.dumps({"models": rows}))
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            print(f"{r['name']:<{width}}  {r['description']}")
    return 0


def _check_identifiable(names, fim):
    w, v = np.linalg.eigh(fim)
    tol = 1e-10 * max(abs(w).max(), 1e-300)
    null = np.flatnonzero(w <= tol)
    if null.size:
        dirs = []
        for j in null:
            vec = v[:, j] / np.linalg.norm(v[:, j])
            dirs.append({n: float(c) for n, c in zip(names, vec) if abs(c) > 1e-3})
        text = "; ".join(" + ".join(f"{c:.2g}*{n}" for n, c in d.items()) for d in dirs)
        raise NonIdentifiableError(f"the FIM is singular: not identifiable along {text}", dirs)


def cmd_evaluate(args) -> int:
    from .fim.fo import fo_fim, parameter_table
    from .model import compile_model, load_model

    spec = load_model(_resolve_model(args.model))
    design = _load_design(args.design, spec) if args.design else spec.default_design
    if design is None:
        raise DesignError(f"model {spec.name!r} has no default design; give one with --design FILE")
    model = compile_model(spec)
    names, fim = fo_fim(model, design, args.fim)
    _check_identifiable(names, fim)
    values = parameter_table(spec)[1]
    cov = np.linalg.inv(fim)
    se = np.sqrt(np.diag(cov))
    rse = 100 * se / np.abs(values)
    logdet = float(np.linalg.slogdet(fim)[1])
    if args.json:
        print(json.dumps({"model": spec.name, "parameters": names, "values": values.tolist(), "fim": fim.tolist(),
                          "se": se.tolist(), "rse_percent": rse.tolist(), "logdet": logdet,
                          "approximation": "fo", "fim_type": args.fim}))
        return 0
    print(f"model {spec.name}: FO approximation, {args.fim} FIM, {len(design.groups)} group(s), "
          f"{design.total_n:g} subjects")
    print(f"{'parameter':>16} {'value':>12} {'SE':>12} {'RSE%':>9}")
    for n, v, e, r in zip(names, values, se, rse):
        print(f"{n:>16} {v:>12.6g} {e:>12.5g} {r:>9.3f}")
    print(f"ln det(FIM) = {logdet:.6f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pkdesign", description="Optimal design of PK/PD studies.")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("models", help="list the bundled model library")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=cmd_models)
    e = sub.add_parser("evaluate", help="evaluate a design for a model")
    e.add_argument("model", help="model file (TOML) or name of a bundled model")
    e.add_argument("--design", help="design file (TOML or JSON with a 'groups' list); default: the model's design")
    e.add_argument("--approx", choices=["fo"], default="fo", help="FIM approximation (FO for now)")
    e.add_argument("--fim", choices=["full", "reduced"], default="full", help="full or reduced (block-diagonal) FIM")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_evaluate)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PkdesignError as exc:
        print(f"pkdesign: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
