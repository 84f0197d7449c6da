"""Command-line interface: ``pkdesign models``, ``evaluate`` (FIM table or JSON) and ``optimize`` (design search).

The CLI computes nothing of its own: it parses arguments, calls the library and prints.
Errors from bad input (``PkdesignError``, argument errors) go to stderr as one ``pkdesign: error:``
line with exit code 2 and no traceback; Ctrl-C exits 130 with one line; warnings (e.g. a rebuilt
kernel cache) print as ``pkdesign: warning:``.  ``--json`` output is strict JSON: a non-finite
number is written as ``null`` and listed under ``non_finite``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from .._version import __version__
from ..choices import (SUBJECT_FIM_TYPES, DEFAULT_FIM, APPROXIMATE_ALGORITHMS, APPROXIMATIONS, BATCHED_APPROXIMATIONS, EXACT_ALGORITHMS,
                       FIM_TYPES, SCALES)
from ..errors import PkdesignError
from .commands import (cmd_cache, cmd_compare, cmd_dataset, cmd_evaluate, cmd_models, cmd_optimize, cmd_power,
                       cmd_import, cmd_report, cmd_sse)
from ..designfile import MAX_GRID
from .common import LIMITS, _count, _nonneg_float, criterion_argument

def _parallel_flags(p) -> None:
    p.add_argument("--workers", type=_count("--workers"), default=None,
                   help="run independent pieces (groups, exact-MC blocks, prior draws, starts) on N local worker "
                        "processes")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help='run them on an existing Dask cluster (e.g. tcp://10.0.0.1:8786; pip install '
                        '"pkdesign[distributed]")')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pkdesign", description="Optimal design of PK/PD studies.")
    p.add_argument("--version", action="version", version=f"pkdesign {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("models", help="list the bundled model library ($PKDESIGN_MODELS overrides the folder)")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=cmd_models)
    c = sub.add_parser("cache", help="show (info) or empty (clear) the compiled-kernel cache")
    c.add_argument("action", choices=["info", "clear"])
    c.add_argument("--all", action="store_true", help="clear: also the package's own compiled kernels (FIM kernels, "
                   "FO likelihood, ODE solvers), which the next use recompiles once per installation")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_cache)
    e = sub.add_parser("evaluate", help="evaluate a design for a model")
    e.add_argument("model", help="model file (TOML) or name of a bundled model")
    e.add_argument("--design", help="design file (TOML or JSON with a 'groups' list); default: the model's design")
    e.add_argument("--approx", choices=list(APPROXIMATIONS), default="fo", help="FIM approximation (default fo)")
    e.add_argument("--fim", choices=list(FIM_TYPES + SUBJECT_FIM_TYPES), default=None,
                   help=f"reduced (block-diagonal, PopED's and PFIM's default) or full FIM (default {DEFAULT_FIM} for "
                        "the linearisations FO/FOI/FOCE/FOCEI, full for MC and exact-MC); individual: per group, the FIM of "
                        "the fixed effects of one subject; bayesian: per group, the MAP FIM of the random effects "
                        "and their predicted shrinkage")
    e.add_argument("--seed", type=_count("--seed"), default=0, help="seed of the Monte-Carlo draws (default 0)")
    e.add_argument("--draws", type=_count("--draws"), default=None,
                   help="FOCE/FOCEI linearisation points, MC draws, or exact-MC subjects per group "
                        f"({LIMITS['--draws'][0]} to {LIMITS['--draws'][1]})")
    e.add_argument("--scale", choices=list(SCALES), default="variance",
                   help="scale of omega and sigma in the output (default variance)")
    e.add_argument("--compare", action="store_true",
                   help="evaluate every approximation (reduced and full FIM) against exact-MC and advise which to use")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    _parallel_flags(e)
    e.set_defaults(func=cmd_evaluate)
    o = sub.add_parser("optimize", help="optimise the sampling times of a design")
    o.add_argument("model", help="model file (TOML) or name of a bundled model")
    o.add_argument("--design", help="starting design file; default: the model's design")
    o.add_argument("--criterion", type=criterion_argument, default="D",
                   help="D, Ds, A, ED, c:QUANTITY (c-optimal for a derived quantity such as c:AUC, or a parameter) "
                        "or L:Q1=w1,Q2=w2 (default D)")
    o.add_argument("--algorithm", choices=list(EXACT_ALGORITHMS + APPROXIMATE_ALGORITHMS),
                   default="continuous", help="exact: continuous, exchange; approximate: fedorov-wynn, multiplicative")
    o.add_argument("--approx", choices=list(BATCHED_APPROXIMATIONS), default="fo", help="FIM approximation (default fo)")
    o.add_argument("--draws", type=_count("--draws"), default=None,
                   help="FOCE/FOCEI: linearisation points, the same for every candidate (default 1000)")
    o.add_argument("--fim", choices=list(FIM_TYPES), default=None, help=f"default {DEFAULT_FIM}")
    o.add_argument("--window", nargs=2, type=float, metavar=("LO", "HI"), help="window for every sample")
    o.add_argument("--min-spacing", type=_nonneg_float, default=0.0, help="minimum time between consecutive samples")
    o.add_argument("--grid", help=f"candidate times: LO:HI:N or a comma-separated list (at most {MAX_GRID})")
    o.add_argument("--output", help="approximate designs: the output sampled (models with several outputs)")
    o.add_argument("--samples", type=_count("--samples"),
                   help="samples per subject (approximate designs; default: as the design)")
    o.add_argument("--starts", type=_count("--starts"), default=4, help="starts of the exact search (default 4)")
    o.add_argument("--seed", type=_count("--seed"), default=0)
    _parallel_flags(o)
    o.add_argument("--subset", help="Ds: comma-separated parameters of interest")
    o.add_argument("--prior", help="ED: NAME=normal|lognormal|uniform:a:b, separated by ';'")
    o.add_argument("--prior-draws", type=_count("--prior-draws"), default=16,
                   help="ED: draws from the prior (default 16)")
    o.add_argument("--total-n", type=_count("--total-n"),
                   help="approximate designs: round to this many subjects (default: the starting design's N); exact "
                        "designs: the group sizes become a decision, allocating this many subjects")
    o.add_argument("--refine", action="store_true", help="approximate designs: refine support times off the grid")
    o.add_argument("--cost-normalised", action="store_true",
                   help="approximate designs: information per unit cost (costs from the design file's [space])")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.add_argument("--plot", help="save a plot of the design to this file (.png, .pdf, .svg, ...; needs matplotlib)")
    o.set_defaults(func=cmd_optimize)
    k = sub.add_parser("compare", help="compare designs side by side: RSE%%, ln det, efficiency against the first")
    k.add_argument("model", help="model file (TOML) or name of a bundled model")
    k.add_argument("designs", nargs="+", help="design files or `optimize --json` results; 'default' is the model's")
    k.add_argument("--approx", choices=list(APPROXIMATIONS), default="fo")
    k.add_argument("--fim", choices=list(FIM_TYPES), default=None, help=f"default {DEFAULT_FIM}")
    k.add_argument("--criterion", type=criterion_argument, default="D",
                   help="efficiency definition: D (default), A, Ds-free criteria, c:QUANTITY, L:...")
    k.add_argument("--draws", type=_count("--draws"), default=None)
    k.add_argument("--seed", type=_count("--seed"), default=0)
    k.add_argument("--json", action="store_true", help="print one JSON object")
    k.set_defaults(func=cmd_compare)
    r = sub.add_parser("report", help="write a self-contained HTML (or Markdown) report of a design")
    r.add_argument("model", help="model file (TOML) or name of a bundled model")
    r.add_argument("--design", help="design file; default: the model's design")
    r.add_argument("--optimized", help="result of `pkdesign optimize --json` to report (saved to a file)")
    r.add_argument("-o", "--output", required=True, help="report file: .html (self-contained) or .md")
    r.add_argument("--approx", choices=list(APPROXIMATIONS), default="fo")
    r.add_argument("--fim", choices=list(FIM_TYPES), default=None, help=f"default {DEFAULT_FIM}")
    r.add_argument("--no-compare", action="store_true", help="skip the table of approximations against exact-MC")
    r.add_argument("--draws", type=_count("--draws"), default=None, help="exact-MC draws of the comparison")
    r.add_argument("--seed", type=_count("--seed"), default=0)
    r.set_defaults(func=cmd_report)
    w = sub.add_parser("power", help="Wald-test power against N for a parameter, and the N for a target power")
    w.add_argument("model", help="model file (TOML) or name of a bundled model")
    w.add_argument("--design", help="design file; default: the model's design (groups are scaled in proportion)")
    w.add_argument("--parameter", required=True, help="the parameter tested (FIM name, e.g. CL)")
    w.add_argument("--null", type=float, default=0.0, help="its value under the null hypothesis (default 0)")
    w.add_argument("--alpha", type=float, default=0.05, help="two-sided level (default 0.05)")
    w.add_argument("--target", type=float, help="target power: also print the minimum N")
    w.add_argument("--n", help="comma-separated numbers of subjects for the curve")
    w.add_argument("--approx", choices=list(APPROXIMATIONS), default="fo")
    w.add_argument("--fim", choices=list(FIM_TYPES), default=None, help=f"default {DEFAULT_FIM}")
    w.add_argument("--json", action="store_true", help="print one JSON object")
    w.set_defaults(func=cmd_power)
    t = sub.add_parser("dataset", help="write a design as a NONMEM-format dataset (CSV), optionally simulated")
    t.add_argument("model", help="model file (TOML) or name of a bundled model")
    t.add_argument("--design", help="design file; default: the model's design")
    t.add_argument("--simulate", action="store_true", help="simulate DV from the model (else DV = 0)")
    t.add_argument("--replicates", type=_count("--replicates"), default=1,
                   help="simulated copies, numbered by a REP column (default 1)")
    t.add_argument("--seed", type=_count("--seed"), default=0)
    t.add_argument("-o", "--output", required=True, help="the CSV file to write")
    t.set_defaults(func=cmd_dataset)
    x = sub.add_parser("sse", help="simulate and re-estimate the design (FO ML): empirical RSE%% beside the FIM's")
    x.add_argument("model", help="model file (TOML) or name of a bundled model")
    x.add_argument("--design", help="design file; default: the model's design")
    x.add_argument("--replicates", type=_count("--replicates"), default=200, help="simulated studies (default 200)")
    x.add_argument("--seed", type=_count("--seed"), default=0)
    x.add_argument("--fim", choices=list(FIM_TYPES), default=None, help=f"the FIM compared (default {DEFAULT_FIM})")
    x.add_argument("--json", action="store_true", help="print one JSON object")
    _parallel_flags(x)
    x.set_defaults(func=cmd_sse)
    i = sub.add_parser("import", help="a NONMEM control stream as a pkdesign model file (needs pkdesign[nonmem])")
    i.add_argument("control_stream", help="the NONMEM control stream (.ctl / .mod)")
    i.add_argument("-o", "--output", help="the model file to write (default: print it)")
    i.set_defaults(func=cmd_import)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"pkdesign: warning: {message}", file=sys.stderr)


def _announce_on_terminal() -> None:
    """Show the library's progress messages (first compile) on stderr when it is a terminal."""
    import logging

    if not sys.stderr.isatty():
        return
    log = logging.getLogger("pkdesign")
    if not any(getattr(h, "_pkdesign_cli", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("pkdesign: %(message)s"))
        handler._pkdesign_cli = True
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def main(argv=None) -> int:
    _announce_on_terminal()
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
