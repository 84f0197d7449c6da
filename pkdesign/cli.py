"""Command-line interface: ``pkdesign models`` and ``pkdesign evaluate`` (FIM table or JSON).

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
from .errors import DesignError, PkdesignError
from .fim.api import APPROXIMATIONS


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


def cmd_evaluate(args) -> int:
    from .fim import evaluate_fim
    from .model import compile_model, load_model

    spec = load_model(_resolve_model(args.model))
    design = _load_design(args.design, spec) if args.design else spec.default_design
    if design is None:
        raise DesignError(f"model {spec.name!r} has no default design; give one with --design FILE")
    model = compile_model(spec)
    res = evaluate_fim(model, design, args.approx, args.fim, draws=args.draws, seed=args.seed, scale=args.scale)
    if args.json:
        print(json.dumps({"model": spec.name, **res.to_dict()}))
        return 0
    extra = f", {res.info['draws']} draws, seed {args.seed}" if args.approx not in ("fo", "foi") else ""
    print(f"model {spec.name}: {args.approx.upper()} approximation, {args.fim} FIM{extra}, "
          f"{len(design.groups)} group(s), {design.total_n:g} subjects")
    print(f"{'parameter':>16} {'value':>12} {'SE':>12} {'RSE%':>9}")
    for n, v, e, r in zip(res.names, res.values, res.se, res.rse_percent):
        print(f"{n:>16} {v:>12.6g} {e:>12.5g} {r:>9.3f}")
    print(f"ln det(FIM) = {res.logdet:.6f}   det(FIM)^(1/p) = {res.d_criterion:.6g}   "
          f"condition number = {res.condition_number:.3g}")
    if res.mc_se is not None:
        rel = np.diag(res.mc_se) / np.abs(np.diag(res.matrix))
        print(f"Monte-Carlo SE: ln det {res.info['logdet_mc_se']:.4f}; FIM diagonal {rel.min():.1%} to {rel.max():.1%} "
              f"relative (importance-sampling ESS min {res.info['ess_min']:.0f}, median {res.info['ess_median']:.0f})")
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
    e.add_argument("--approx", choices=list(APPROXIMATIONS), default="fo", help="FIM approximation (default fo)")
    e.add_argument("--fim", choices=["full", "reduced"], default="full", help="full or reduced (block-diagonal) FIM")
    e.add_argument("--seed", type=int, default=0, help="seed of the Monte-Carlo draws (default 0)")
    e.add_argument("--draws", type=int, default=None,
                   help="FOCE/FOCEI linearisation points, MC draws, or exact-MC subjects per group")
    e.add_argument("--scale", choices=["variance", "sd", "declared"], default="variance",
                   help="scale of omega and sigma in the output (default variance)")
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
