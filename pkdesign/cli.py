"""Command-line interface: ``pkdesign models``, ``evaluate`` (FIM table or JSON) and ``optimize`` (design search).

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


def _model_and_design(args):
    """The model (spec, compiled) and the design (--design FILE or the model's default) of a command."""
    from .model import compile_model, load_model

    spec = load_model(_resolve_model(args.model))
    design = _load_design(args.design, spec) if args.design else spec.default_design
    if design is None:
        raise DesignError(f"model {spec.name!r} has no default design; give one with --design FILE")
    return spec, compile_model(spec), design


def cmd_evaluate(args) -> int:
    from .fim import evaluate_fim

    spec, model, design = _model_and_design(args)
    if args.compare:
        from .report import approximation_report

        frame = approximation_report(model, design, args.fim, seed=args.seed, draws=args.draws)
        if args.json:
            print(json.dumps({"model": spec.name, "fim_type": args.fim, "logdet_mc_se": frame.attrs["logdet_mc_se"],
                              "approximations": json.loads(frame.to_json(orient="index"))}))
            return 0
        print(f"model {spec.name}: {args.fim} FIM of each approximation against exact-MC "
              f"(ln det Monte-Carlo SE {frame.attrs['logdet_mc_se']:.3f})")
        print(frame.to_string(float_format=lambda v: f"{v:.3f}"))
        return 0
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


def _grid(text, window=None):
    if text is None:
        return None
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            return np.linspace(float(lo), float(hi), int(n))
        return np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise DesignError(f"--grid: expected LO:HI:N or a comma-separated list of times, got {text!r}") from None


def _prior(text):
    from .prior import Prior

    if text is None:
        return None
    spec = {}
    for part in text.split(";"):
        try:
            name, rest = part.split("=")
            dist, a, b = rest.split(":")
            spec[name.strip()] = (dist.strip(), float(a), float(b))
        except ValueError:
            raise DesignError(f"--prior: expected NAME=dist:a:b[;...], got {part!r}") from None
    return Prior(spec)


def _progress(enabled):
    if not enabled:
        return None

    def cb(state):
        print(f"\r  iteration {state['iteration']:>6}  criterion {state['criterion_value']:.6g}", end="",
              file=sys.stderr, flush=True)
        return False

    return cb


def cmd_optimize(args) -> int:
    from .search import APPROXIMATE_ALGORITHMS, optimize_approximate, optimize_design
    from .space import SamplingSpace

    spec, model, design = _model_and_design(args)
    t_max = max(float(np.max(v)) for g in design.groups for v in g.times.values())
    grid = _grid(args.grid, None)
    if args.window:
        window = tuple(args.window)
    elif grid is not None:
        window = (float(np.min(grid)), float(np.max(grid)))
    else:
        window = (0.0, t_max)
    subset = args.subset.split(",") if args.subset else None
    progress = _progress(sys.stderr.isatty() and not args.json)
    if args.algorithm in APPROXIMATE_ALGORITHMS:
        if len(spec.outputs) > 1:
            raise DesignError("approximate designs from the CLI sample one output; use the Python API for several")
        if grid is None:
            grid = np.linspace(window[0], window[1], 16)
        spaces = [SamplingSpace(args.samples or sum(v.size for v in g.times.values()), window, grid=grid,
                                min_spacing=args.min_spacing, regimen=g.regimen, name=g.name) for g in design.groups]
        res = optimize_approximate(model, spaces, args.criterion, algorithm=args.algorithm, approximation=args.approx,
                                   fim=args.fim, prior=_prior(args.prior), prior_draws=args.prior_draws, seed=args.seed,
                                   subset=subset, refine=args.refine, total_n=args.total_n, callback=progress)
    else:
        res = optimize_design(model, design, args.criterion, args.algorithm, approximation=args.approx, fim=args.fim,
                              window=window, min_spacing=args.min_spacing, grid=grid, starts=args.starts,
                              seed=args.seed, prior=_prior(args.prior), prior_draws=args.prior_draws, subset=subset,
                              callback=progress)
    if progress is not None:
        print(file=sys.stderr)
    if args.plot:
        from .plot import plot_design

        plot_design(model, res.design, args.plot, title=f"{spec.name}: {res.criterion}-optimal design")
    if args.json:
        print(json.dumps({"model": spec.name, **res.to_dict()}))
        return 0
    print(f"model {spec.name}: {res.message}")
    for g in res.design.groups:
        times = "; ".join(f"{k}: " + ", ".join(f"{t:.4g}" for t in v) for k, v in g.times.items())
        print(f"  {g.name:>20}  n = {g.n:<10.4g} {times}")
    print(f"criterion {res.criterion} = {res.criterion_value:.6f}   ln det(FIM) = {res.logdet:.6f}")
    if res.certificate is not None:
        c = res.certificate
        eff = "n/a" if c.efficiency_lower_bound is None else f"{c.efficiency_lower_bound:.6f}"
        print(f"equivalence theorem: max sensitivity {c.sensitivity_max:.6f} vs bound {c.bound:.6f} "
              f"({'holds' if c.holds else 'NOT met'}); efficiency >= {eff}")
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
    e.add_argument("--compare", action="store_true",
                   help="evaluate every approximation and judge it against exact-MC (which one to trust)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_evaluate)
    o = sub.add_parser("optimize", help="optimise the sampling times of a design")
    o.add_argument("model", help="model file (TOML) or name of a bundled model")
    o.add_argument("--design", help="starting design file; default: the model's design")
    o.add_argument("--criterion", choices=["D", "Ds", "A", "ED"], default="D")
    o.add_argument("--algorithm", choices=["continuous", "exchange", "fedorov-wynn", "multiplicative"],
                   default="continuous", help="exact: continuous, exchange; approximate: fedorov-wynn, multiplicative")
    o.add_argument("--approx", choices=["fo", "foi"], default="fo", help="FIM approximation (default fo)")
    o.add_argument("--fim", choices=["full", "reduced"], default="full")
    o.add_argument("--window", nargs=2, type=float, metavar=("LO", "HI"), help="window for every sample")
    o.add_argument("--min-spacing", type=float, default=0.0, help="minimum time between consecutive samples")
    o.add_argument("--grid", help="candidate times: LO:HI:N or a comma-separated list")
    o.add_argument("--samples", type=int, help="samples per subject (approximate designs; default: as the design)")
    o.add_argument("--starts", type=int, default=4, help="starts of the exact search (default 4)")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--subset", help="Ds: comma-separated parameters of interest")
    o.add_argument("--prior", help="ED: NAME=normal|lognormal|uniform:a:b, separated by ';'")
    o.add_argument("--prior-draws", type=int, default=16)
    o.add_argument("--total-n", type=int, help="approximate designs: round to this many subjects")
    o.add_argument("--refine", action="store_true", help="approximate designs: refine support times off the grid")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.add_argument("--plot", help="save a plot of the design to this file (needs matplotlib)")
    o.set_defaults(func=cmd_optimize)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into e.g. `head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except PkdesignError as exc:
        print(f"pkdesign: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
