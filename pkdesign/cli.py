"""Command-line interface: ``pkdesign models``, ``evaluate`` (FIM table or JSON) and ``optimize`` (design search).

The CLI computes nothing of its own: it parses arguments, calls the library and prints.
Errors from bad input (``PkdesignError``, argument errors) go to stderr as one ``pkdesign: error:``
line with exit code 2 and no traceback; Ctrl-C exits 130 with one line; warnings (e.g. a rebuilt
kernel cache) print as ``pkdesign: warning:``.  ``--json`` output is strict JSON: a non-finite
number is written as ``null`` and listed under ``non_finite``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from ._version import __version__
from .library import load_design, models_dir, resolve_model
from .errors import DesignError, PkdesignError
from .choices import (APPROXIMATE_ALGORITHMS, APPROXIMATIONS, BATCHED_APPROXIMATIONS, CRITERIA, EXACT_ALGORITHMS,
                      FIM_TYPES, SCALES)

#: limits of count arguments (a typo must not allocate gigabytes); stated in the messages
LIMITS = {"--samples": (1, 1000), "--starts": (1, 1000), "--prior-draws": (1, 100_000), "--draws": (2, 1_000_000),
          "--total-n": (1, 10**9), "--seed": (0, 2**63 - 1)}
MAX_GRID = 100_000


def _count(flag):
    """argparse type: a whole number within ``LIMITS[flag]``."""
    lo, hi = LIMITS[flag]

    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number from {lo} to {hi}, got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected a whole number from {lo} to {hi}, got {v}")
        return v

    return parse


def _nonneg_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return v


def strict_json(obj) -> str:
    """JSON with every non-finite number as ``null``; their paths are listed under ``non_finite``."""
    bad = []

    def clean(x, path):
        if isinstance(x, dict):
            return {k: clean(v, f"{path}.{k}" if path else str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v, f"{path}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, np.generic):
            x = x.item()
        if isinstance(x, float) and not math.isfinite(x):
            bad.append(f"{path} = {x!r}")
            return None
        return x

    out = clean(obj, "")
    if bad and isinstance(out, dict):
        out["non_finite"] = {"note": "non-finite numbers are written as null", "values": bad}
    return json.dumps(out, allow_nan=False)


def cmd_models(args) -> int:
    from .model import load_model

    directory = models_dir()
    files = sorted(f for f in directory.glob("*.toml") if f.is_file())
    if not files:
        raise PkdesignError(f"no model files in {directory}")
    rows, broken = [], []
    for f in files:
        try:
            spec = load_model(f)
        except PkdesignError as exc:
            broken.append({"file": str(f), "error": str(exc)})
            print(f"pkdesign: warning: skipped {f}: {exc}", file=sys.stderr)
            continue
        rows.append({"name": spec.name, "file": str(f), "parameters": spec.parameter_names,
                     "outputs": spec.output_names, "description": spec.description, "source": spec.source})
    if not rows:
        raise PkdesignError(f"no readable model files in {directory} ({len(broken)} skipped)")
    if args.json:
        print(strict_json({"models": rows, "skipped": broken}))
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            print(f"{r['name']:<{width}}  {r['description']}")
    return 0


def _model_and_design(args):
    """The model (spec, compiled) and the design (--design FILE or the model's default) of a command."""
    from .model import compile_model, load_model

    spec = load_model(resolve_model(args.model))
    design = load_design(args.design, spec) if args.design else spec.default_design
    if design is None:
        raise DesignError(f"model {spec.name!r} has no default design; give one with --design FILE")
    return spec, compile_model(spec), design


def times_text(group) -> str:
    """A group's sampling times, per output: ``conc: 0.5, 1, 2``."""
    return "; ".join(f"{k}: " + ", ".join(f"{t:.4g}" for t in v) for k, v in group.times.items())


def design_lines(spec, design) -> list:
    """The design a command used, one line per group: size, doses, sampling times per output."""
    lines = []
    for g in design.groups:
        r = g.regimen
        if r.times.size:
            amounts = np.unique(r.amounts)
            amount = f"{amounts[0]:g}" if amounts.size == 1 else "/".join(f"{a:g}" for a in r.amounts[:4])
            when = ", ".join(f"{t:g}" for t in r.times[:6]) + (", ..." if r.times.size > 6 else "")
            inf = " infused over " + "/".join(f"{d:g}" for d in np.unique(r.durations)) if np.any(r.durations) else ""
            dose = f"dose {amount}{inf} at t = {when} ({r.times.size} dose{'s' if r.times.size > 1 else ''})"
        else:
            dose = "no doses"
        lines.append(f"  {g.name:>16}  n = {g.n:<8.4g} {dose};  samples {times_text(g)} ({spec.time_unit})")
    return lines


def _notes(res):
    for note in res.info.get("notes", []):
        print(f"note: {note}")


def cmd_evaluate(args) -> int:
    from .fim import evaluate_fim

    spec, model, design = _model_and_design(args)
    if args.compare:
        from .report import advice, approximation_report

        frame = approximation_report(model, design, ("reduced", "full"), seed=args.seed, draws=args.draws)
        tip = advice(frame)
        if args.json:
            print(strict_json({"model": spec.name, "logdet_mc_se": frame.attrs["logdet_mc_se"],
                               "approximations": json.loads(frame.to_json(orient="index")), "advice": tip}))
            return 0
        print(f"model {spec.name}: reduced and full FIM of each approximation against exact-MC "
              f"(ln det Monte-Carlo SE {frame.attrs['logdet_mc_se']:.3f})")
        print("\n".join(design_lines(spec, design)))
        print(frame.to_string(float_format=lambda v: f"{v:.3f}"))
        print(tip)
        return 0
    res = evaluate_fim(model, design, args.approx, args.fim, draws=args.draws, seed=args.seed, scale=args.scale)
    if args.json:
        print(strict_json({"model": spec.name, "design": design.to_dict(), **res.to_dict()}))
        return 0
    extra = f", {res.info['draws']} draws, seed {args.seed}" if args.approx not in ("fo", "foi") else ""
    print(f"model {spec.name}: {args.approx.upper()} approximation, {args.fim} FIM{extra}, "
          f"{len(design.groups)} group(s), {design.total_n:g} subjects")
    print("\n".join(design_lines(spec, design)))
    print(f"{'parameter':>16} {'value':>12} {'SE':>12} {'RSE%':>9}")
    for n, v, e, r in zip(res.names, res.values, res.se, res.rse_percent):
        print(f"{n:>16} {v:>12.6g} {e:>12.5g} {r:>9.3f}")
    print(f"ln det(FIM) = {res.logdet:.6f}   det(FIM)^(1/p) = {res.det_root:.6g}   "
          f"condition number = {res.condition_number:.3g}")
    if res.mc_se is not None:
        rel = np.diag(res.mc_se) / np.abs(np.diag(res.matrix))
        print(f"Monte-Carlo SE: ln det {res.info['logdet_mc_se']:.4f}; FIM diagonal {rel.min():.1%} to {rel.max():.1%} "
              f"relative (importance-sampling ESS min {res.info['ess_min']:.0f}, median {res.info['ess_median']:.0f})")
    _notes(res)
    return 0


def _grid(text):
    if text is None:
        return None
    try:
        parts = text.split(":") if ":" in text else None
        if parts is not None:
            lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
            if len(parts) != 3:
                raise ValueError
        else:
            grid = np.array([float(v) for v in text.split(",")])
    except (ValueError, IndexError):
        raise DesignError(f"--grid: expected LO:HI:N or a comma-separated list of times, got {text[:80]!r}") from None
    if parts is not None:
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi and 2 <= n <= MAX_GRID):
            raise DesignError(f"--grid: LO:HI:N needs finite 0 <= LO < HI and N from 2 to {MAX_GRID}, got {text!r}")
        return np.linspace(lo, hi, n)
    if grid.size > MAX_GRID or not np.all(np.isfinite(grid)) or np.any(grid < 0):
        raise DesignError(f"--grid: expected at most {MAX_GRID} finite times >= 0, got {text[:80]!r}")
    return np.unique(grid)


def _window(values):
    lo, hi = values
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
        raise DesignError(f"--window: expected finite 0 <= LO < HI, got {lo:g} {hi:g}")
    return (lo, hi)


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


def check_plot_path(path) -> Path:
    """Fail before a search (not after) when the plot cannot be written: missing folder, unknown format."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise PkdesignError(f"--plot: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise PkdesignError(f"--plot: folder {folder} is not writable")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PkdesignError("--plot needs matplotlib: pip install 'pkdesign[plot]'") from None
    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
    ext = p.suffix.lower().lstrip(".")
    if ext not in formats:
        raise PkdesignError(f"--plot: unknown image format {p.suffix or '(no extension)'!r}; use one of "
                            f"{', '.join('.' + f for f in sorted(formats))}")
    return p


def cmd_optimize(args) -> int:
    from .fim import evaluate_fim
    from .search import optimize_approximate, optimize_design
    from .space import SamplingSpace

    plot_path = check_plot_path(args.plot) if args.plot else None
    grid = _grid(args.grid)
    window = _window(args.window) if args.window else None
    spec, model, design = _model_and_design(args)
    t_max = max(float(np.max(v)) for g in design.groups for v in g.times.values() if v.size)
    if window is None:
        window = ((float(np.min(grid)), float(np.max(grid))) if grid is not None else
                  design.window if design.window is not None else (0.0, t_max))
    subset = args.subset.split(",") if args.subset else None
    progress = _progress(sys.stderr.isatty() and not args.json)
    approximate = args.algorithm in APPROXIMATE_ALGORITHMS
    if approximate:
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
    rounded = None
    if approximate:  # the approximate design rounded to whole subjects, as it would be run
        n_total = args.total_n or max(1, int(round(design.total_n)))
        rd = res.rounded_design(n_total)
        rounded = (n_total, evaluate_fim(model, rd, args.approx, args.fim, check=False).logdet)
    out = {"model": spec.name, **res.to_dict()}
    if rounded is not None:
        out.update(rounded_total_n=rounded[0], logdet_rounded=rounded[1])
    if args.json:
        print(strict_json(out))
    else:
        print(f"model {spec.name}: {res.message}")
        for g in res.design.groups:
            print(f"  {g.name:>20}  {'weight' if approximate and args.total_n is None else 'n'} = {g.n:<10.4g} "
                  f"{times_text(g)}")
        what = "per-subject (normalised) information" if approximate else "population FIM"
        crit = {"D": "ln det", "Ds": "Ds: ln det of the Schur complement", "A": "A: -trace(FIM^-1)",
                "ED": "ED: mean ln det over the prior"}.get(res.criterion, res.criterion)
        print(f"criterion {res.criterion} ({crit}) = {res.criterion_value:.6f}   ln det({what}) = {res.logdet:.6f}")
        if rounded is not None and np.isfinite(rounded[1]):
            print(f"rounded to {rounded[0]} subjects: ln det(population FIM) = {rounded[1]:.6f}")
        elif rounded is not None:
            print(f"rounded to {rounded[0]} subjects the FIM is singular (too few subjects for "
                  f"{len(res.design.groups)} support schedules); give --total-n")
        if res.certificate is not None:
            c = res.certificate
            eff = "n/a" if c.efficiency_lower_bound is None else f"{c.efficiency_lower_bound:.6f}"
            print(f"equivalence theorem: max sensitivity {c.sensitivity_max:.6f} vs bound {c.bound:.6f} "
                  f"({'holds' if c.holds else 'NOT met'}); efficiency >= {eff}")
    sys.stdout.flush()
    if plot_path is not None:
        from .plot import plot_design

        try:
            plot_design(model, res.design, plot_path, title=f"{spec.name}: {res.criterion}-optimal design")
        except (OSError, ValueError, RuntimeError) as exc:
            raise PkdesignError(f"--plot: could not write {plot_path} ({exc}); the result above is complete") from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pkdesign", description="Optimal design of PK/PD studies.")
    p.add_argument("--version", action="version", version=f"pkdesign {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("models", help="list the bundled model library ($PKDESIGN_MODELS overrides the folder)")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=cmd_models)
    e = sub.add_parser("evaluate", help="evaluate a design for a model")
    e.add_argument("model", help="model file (TOML) or name of a bundled model")
    e.add_argument("--design", help="design file (TOML or JSON with a 'groups' list); default: the model's design")
    e.add_argument("--approx", choices=list(APPROXIMATIONS), default="fo", help="FIM approximation (default fo)")
    e.add_argument("--fim", choices=list(FIM_TYPES), default="full", help="full or reduced (block-diagonal) FIM")
    e.add_argument("--seed", type=_count("--seed"), default=0, help="seed of the Monte-Carlo draws (default 0)")
    e.add_argument("--draws", type=_count("--draws"), default=None,
                   help="FOCE/FOCEI linearisation points, MC draws, or exact-MC subjects per group "
                        f"({LIMITS['--draws'][0]} to {LIMITS['--draws'][1]})")
    e.add_argument("--scale", choices=list(SCALES), default="variance",
                   help="scale of omega and sigma in the output (default variance)")
    e.add_argument("--compare", action="store_true",
                   help="evaluate every approximation (reduced and full FIM) against exact-MC and advise which to use")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_evaluate)
    o = sub.add_parser("optimize", help="optimise the sampling times of a design")
    o.add_argument("model", help="model file (TOML) or name of a bundled model")
    o.add_argument("--design", help="starting design file; default: the model's design")
    o.add_argument("--criterion", choices=list(CRITERIA), default="D")
    o.add_argument("--algorithm", choices=list(EXACT_ALGORITHMS + APPROXIMATE_ALGORITHMS),
                   default="continuous", help="exact: continuous, exchange; approximate: fedorov-wynn, multiplicative")
    o.add_argument("--approx", choices=list(BATCHED_APPROXIMATIONS), default="fo", help="FIM approximation (default fo)")
    o.add_argument("--fim", choices=list(FIM_TYPES), default="full")
    o.add_argument("--window", nargs=2, type=float, metavar=("LO", "HI"), help="window for every sample")
    o.add_argument("--min-spacing", type=_nonneg_float, default=0.0, help="minimum time between consecutive samples")
    o.add_argument("--grid", help=f"candidate times: LO:HI:N or a comma-separated list (at most {MAX_GRID})")
    o.add_argument("--samples", type=_count("--samples"),
                   help="samples per subject (approximate designs; default: as the design)")
    o.add_argument("--starts", type=_count("--starts"), default=4, help="starts of the exact search (default 4)")
    o.add_argument("--seed", type=_count("--seed"), default=0)
    o.add_argument("--subset", help="Ds: comma-separated parameters of interest")
    o.add_argument("--prior", help="ED: NAME=normal|lognormal|uniform:a:b, separated by ';'")
    o.add_argument("--prior-draws", type=_count("--prior-draws"), default=16,
                   help="ED: draws from the prior (default 16)")
    o.add_argument("--total-n", type=_count("--total-n"),
                   help="approximate designs: round to this many subjects (default: the starting design's N)")
    o.add_argument("--refine", action="store_true", help="approximate designs: refine support times off the grid")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.add_argument("--plot", help="save a plot of the design to this file (.png, .pdf, .svg, ...; needs matplotlib)")
    o.set_defaults(func=cmd_optimize)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"pkdesign: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.func(args)
    except BrokenPipeError:  # output piped into e.g. `head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("\npkdesign: interrupted", file=sys.stderr)
        return 130
    except PkdesignError as exc:
        print(f"pkdesign: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
