"""What the CLI commands share: argument types, strict JSON, the model and design of a command, text lines."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from ..errors import DesignError, PkdesignError
from ..library import resolve_model

#: limits of count arguments (a typo must not allocate gigabytes); stated in the messages
LIMITS = {"--samples": (1, 1000), "--starts": (1, 1000), "--prior-draws": (1, 100_000), "--draws": (2, 1_000_000),
          "--total-n": (1, 10**9), "--seed": (0, 2**63 - 1), "--workers": (1, 1024), "--replicates": (1, 100_000)}


def criterion_argument(text):
    """argparse type: D, Ds, A, ED (any case) or c:QUANTITY / L:Q1=w1,Q2=w2 (resolved against the model later)."""
    from ..choices import CRITERIA

    for name in CRITERIA:
        if text.upper() == name.upper():
            return name
    if text[:2].lower() in ("c:", "l:") and text[2:].strip():
        return text[0].lower() + ":" + text[2:].strip() if text[0] in "cC" else "L:" + text[2:].strip()
    if text[:3].lower() in ("ec:", "el:") and text[3:].strip():  # Bayesian c / L under --prior
        return ("Ec:" if text[1] in "cC" else "EL:") + text[3:].strip()
    raise argparse.ArgumentTypeError(f"expected one of {list(CRITERIA)}, c:QUANTITY or L:Q1=w1,Q2=w2 (a derived "
                                     f"quantity of the model or a parameter), got {text!r}")


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


def model_and_design(args, model_arg: str = "model", design_arg: str = "design"):
    """The model (spec, compiled) and the ``DesignFile`` (--design FILE or the model's example design) of a
    command."""
    from ..designfile import DesignFile, read_design_file
    from ..model import compile_model, load_model

    spec = load_model(resolve_model(getattr(args, model_arg)))
    path = getattr(args, design_arg, None)
    df = read_design_file(path, spec.output_names) if path else DesignFile(spec.default_design) if (
        spec.default_design is not None) else None
    if df is None:
        raise DesignError(f"model {spec.name!r} has no example design; give one with --design FILE")
    return spec, compile_model(spec), df


def flag_space(args) -> dict:
    """The ``[space]`` keys given as flags (--window, --grid, --samples, --min-spacing, --output), checked as a
    table."""
    from ..designfile import space_table

    table = {}
    if getattr(args, "window", None):
        table["window"] = list(args.window)
    if getattr(args, "grid", None):
        table["grid"] = _grid_spec(args.grid)
    if getattr(args, "samples", None):
        table["samples"] = args.samples
    if getattr(args, "min_spacing", None):
        table["min_spacing"] = args.min_spacing
    if getattr(args, "output", None):
        table["output"] = args.output
    return space_table(table, "flags", label=lambda key: "--" + key.replace("_", "-"))


def _grid_spec(text):
    """``LO:HI:N`` -> {start, stop, num}; ``a,b,c`` -> list (checked by ``designfile.grid_times``)."""
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            return {"start": float(parts[0]), "stop": float(parts[1]), "num": int(parts[2])}
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise DesignError(f"--grid: expected LO:HI:N or a comma-separated list of times, got {text[:80]!r}") from None


def flag_prior(text):
    """``NAME=dist:a:b;...`` -> the same ``Prior`` as a design file's ``[prior]`` table."""
    from ..designfile import prior_table

    if text is None:
        return None
    table = {}
    for part in text.split(";"):
        try:
            name, rest = part.split("=")
            dist, a, b = rest.split(":")
            table[name.strip()] = [dist.strip(), float(a), float(b)]
        except ValueError:
            raise DesignError(f"--prior: expected NAME=dist:a:b[;...], got {part!r}") from None
    return prior_table(table, "--prior")


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
        extra = "".join(f";  {k} = " + (f"{v:g}" if not isinstance(v, dict) else
                                          "/".join(f"{x:g} ({p:.0%})" for x, p in zip(v["values"], v["proportions"])))
                        for k, v in g.covariates.items())
        if g.occasions:
            extra += ";  occasions: each dose" if g.occasions == "doses" else (
                ";  occasions from t = " + ", ".join(f"{t:g}" for t in g.occasions))
        lines.append(f"  {g.name:>16}  n = {g.n:<8.4g} {dose};  samples {times_text(g)} ({spec.time_unit}){extra}")
    return lines


def _notes(res):
    for note in res.info.get("notes", []):
        print(f"note: {note}")


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

