"""The commands ``models``, ``evaluate`` and ``optimize``: parse, call the library, print."""

from __future__ import annotations

import json
import sys

import numpy as np

from ..choices import APPROXIMATE_ALGORITHMS
from ..executors import make_executor
from ..errors import PkdesignError
from ..library import models_dir
from .common import (_notes, _progress, check_plot_path, design_lines, flag_prior, flag_space, model_and_design,
                     strict_json, times_text)

def cmd_models(args) -> int:
    from ..model import load_model

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


def cmd_evaluate(args) -> int:

    spec, model, df = model_and_design(args)
    design = df.design
    if args.compare:
        from ..report import advice, approximation_report

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
    from ..fim import evaluate_fim

    if args.fim in ("individual", "bayesian"):
        return _subject_fims(args, spec, model, design)
    with make_executor(args.workers, args.scheduler) as executor:
        res = evaluate_fim(model, design, args.approx, args.fim, draws=args.draws, seed=args.seed, scale=args.scale,
                           executor=executor)
    derived = _derived(model, res)
    if args.json:
        out = {"model": spec.name, "design": design.to_dict(), **res.to_dict()}
        if derived is not None:
            out["derived"] = {q: dict(r) for q, r in derived.iterrows()}
        print(strict_json(out))
        return 0
    extra = f", {res.info['draws']} draws, seed {args.seed}" if args.approx not in ("fo", "foi") else ""
    print(f"model {spec.name}: {args.approx.upper()} approximation, {res.fim_type} FIM{extra}, "
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
    if derived is not None:
        print(f"{'derived':>16} {'value':>12} {'SE':>12} {'RSE%':>9}   (delta method)")
        for q, r in derived.iterrows():
            print(f"{q:>16} {r['value']:>12.6g} {r['se']:>12.5g} {r['rse_percent']:>9.3f}")
    _notes(res)
    return 0


def _derived(model, res):
    """The model's derived quantities under ``res`` (None if it declares none or the FIM is singular)."""
    from ..derived import derived_table

    if not model.spec.derived or not res.identifiable or res.scale != "variance":
        return None
    return derived_table(model, res)


def cmd_optimize(args) -> int:
    from ..search import optimize_approximate, optimize_design

    plot_path = check_plot_path(args.plot) if args.plot else None
    flags = flag_space(args)
    spec, model, df = model_and_design(args)
    design = df.design
    prior = flag_prior(args.prior) if args.prior else df.prior
    subset = args.subset.split(",") if args.subset else None
    progress = _progress(sys.stderr.isatty() and not args.json)
    approximate = args.algorithm in APPROXIMATE_ALGORITHMS
    if args.cost_normalised and not approximate:
        raise PkdesignError("--cost-normalised applies to the approximate algorithms (fedorov-wynn, multiplicative)")
    with make_executor(args.workers, args.scheduler) as executor:
        if approximate:
            spaces = df.approximate_spaces(spec.output_names, flags)
            res = optimize_approximate(model, spaces, args.criterion, algorithm=args.algorithm,
                                       approximation=args.approx, fim=args.fim, prior=prior,
                                       prior_draws=args.prior_draws, seed=args.seed, subset=subset, refine=args.refine,
                                       total_n=args.total_n or df.total_n, callback=progress,
                                       cost_normalised=args.cost_normalised, draws=args.draws, executor=executor)
        else:
            res = optimize_design(model, design, args.criterion, args.algorithm, approximation=args.approx,
                                  fim=args.fim, space=df.exact_space(spec.output_names, flags) or None,
                                  starts=args.starts, seed=args.seed, prior=prior, prior_draws=args.prior_draws,
                                  subset=subset, callback=progress, draws=args.draws,
                                  doses=df.dose_decisions() or None, total_n=args.total_n or df.total_n,
                                  executor=executor)
    if progress is not None:
        print(file=sys.stderr)
    rounded = None
    if approximate:  # the approximate design rounded to whole subjects, as it would be run
        n_total = args.total_n or df.total_n or max(1, int(round(design.total_n)))
        if "rounded_fim" not in res.info:
            res.evaluate_rounded(model, n_total, args.approx, args.fim)
        rounded = (n_total, res.info["logdet_rounded"])
    out = {"model": spec.name, **res.to_dict()}
    if args.json:
        print(strict_json(out))
    else:
        print(f"model {spec.name}: {res.message}")
        doses_vary = len({tuple(g.regimen.amounts) for g in res.design.groups}) > 1 or df.dose_decisions()
        for g in res.design.groups:
            dose = (f"dose {'/'.join(f'{a:.4g}' for a in np.unique(g.regimen.amounts))}  "
                    if doses_vary and g.regimen.amounts.size else "")
            print(f"  {g.name:>20}  {'weight' if approximate and args.total_n is None else 'n'} = {g.n:<10.4g} "
                  f"{dose}{times_text(g)}")
        what = "per-subject (normalised) information" if approximate else "population FIM"
        crit = {"D": "ln det", "Ds": "Ds: ln det of the Schur complement", "A": "A: -trace(FIM^-1)",
                "ED": "ED: ln of the mean det over the prior", "ELD": "ELD: mean ln det over the prior"}.get(res.criterion, res.criterion)
        if res.criterion[:2] in ("c:", "L:"):
            crit = "minus the variance of the estimate (per unit of information)"
        elif res.criterion[:3] in ("Ec:", "EL:"):
            crit = "minus the variance of the estimate, averaged over the prior draws"
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
        from ..plot import plot_design

        try:
            plot_design(model, res.design, plot_path, title=f"{spec.name}: {res.criterion}-optimal design")
        except (OSError, ValueError, RuntimeError) as exc:
            raise PkdesignError(f"--plot: could not write {plot_path} ({exc}); the result above is complete") from None
    return 0



def cmd_cache(args) -> int:
    from ..kernels.package_cache import clear_package_cache, package_cache_info
    from ..model.cache import cache_info, clear_cache

    if args.action == "clear":
        n = clear_cache()
        n_pkg = clear_package_cache() if args.all else 0
        info = cache_info()
        if args.json:
            print(strict_json({"removed": n, **info, "package_kernels_removed": n_pkg}))
        else:
            print(f"removed {n} file(s) from {info['directory']}")
            if args.all:
                print(f"removed {n_pkg} file(s) of the package's compiled kernels from "
                      f"{package_cache_info()['directory']}")
        return 0
    info = cache_info()
    pkg = package_cache_info()
    if args.json:
        print(strict_json({**info, "package_kernels": pkg}))
        return 0
    if not info["exists"]:
        print(f"kernel cache: {info['directory']} (empty: nothing compiled yet)")
    else:
        print(f"kernel cache: {info['directory']}")
        print(f"  {info['models']} closed-form and {info['ode_models']} ODE model(s), {info['numba_files']} numba "
              f"file(s), {info['model_records']} parsed model file(s); {info['files']} files, "
              f"{info['bytes'] / 2**20:.1f} MiB")
        print("  set PKDESIGN_CACHE_DIR to move it; `pkdesign cache clear` empties it (the next run recompiles)")
    if pkg["directory"] is None:
        print("package kernels: compiled in memory (numba found no cache location)")
    else:
        stale = f", {pkg['stale_files']} of modules that no longer compile" if pkg["stale_files"] else ""
        print(f"package kernels (FIM, FO likelihood, ODE solvers; compiled once per installation): {pkg['directory']}")
        print(f"  {pkg['numba_files']} numba file(s){stale}, {pkg['bytes'] / 2**20:.1f} MiB; "
              "`pkdesign cache clear --all` empties it too")
    return 0


def _design_argument(path, spec):
    """A design from a design file or an optimisation result (``optimize --json``); ``default``: the model's."""
    from ..designfile import read_design_file

    if path == "default":
        if spec.default_design is None:
            raise PkdesignError(f"model {spec.name!r} has no example design to stand for 'default'")
        return spec.default_design
    return read_design_file(path, spec.output_names).design


def cmd_compare(args) -> int:
    from pathlib import Path

    from ..comparison import compare
    from ..model import compile_model, load_model
    from ..library import resolve_model

    spec = load_model(resolve_model(args.model))
    model = compile_model(spec)
    designs = {}
    for path in args.designs:
        name = "default" if path == "default" else Path(path).stem
        while name in designs:
            name += "'"
        designs[name] = _design_argument(path, spec)
    table = compare(model, designs, args.approx, args.fim, criterion=args.criterion, draws=args.draws,
                    seed=args.seed)
    if args.json:
        print(strict_json({"model": spec.name, "approximation": args.approx, "fim": table.attrs.get("fim"),
                           "criterion": table.attrs["criterion"], "designs": list(designs),
                           "table": {c: dict(zip(table.index, table[c].tolist())) for c in table.columns}}))
        return 0
    print(f"model {spec.name}: {len(designs)} designs, {args.approx.upper()} approximation; efficiency "
          f"({table.attrs['criterion']}) against {next(iter(designs))!r}")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


def cmd_report(args) -> int:
    import json as _json
    from pathlib import Path

    from ..document import build_report
    from ..errors import DesignError
    from ..search.result import DesignResult

    out = Path(args.output)
    if out.suffix.lower() not in (".html", ".htm", ".md"):
        raise PkdesignError(f"-o: expected a .html or .md file name, got {out.name!r}")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise PkdesignError(f"-o: folder {folder} does not exist")
    import os

    if not os.access(folder, os.W_OK):
        raise PkdesignError(f"-o: folder {folder} is not writable")
    spec, model, df = model_and_design(args)
    optimized = None
    if args.optimized:
        from ..library import read_text

        text = read_text(Path(args.optimized), "optimisation result")
        try:
            data = _json.loads(text)
        except ValueError as exc:
            raise DesignError(f"{args.optimized}: not valid JSON: {exc}") from None
        optimized = DesignResult.from_dict(data, spec.output_names, str(args.optimized))
    rep = build_report(model, df.design, optimized=optimized, approximation=args.approx, fim=args.fim,
                       compare_approximations=not args.no_compare, seed=args.seed, draws=args.draws)
    path = rep.save(out)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, {len(rep.sections)} sections)")
    return 0


def cmd_power(args) -> int:
    from ..power import power_curve, sample_size

    spec, model, df = model_and_design(args)
    design = df.design
    ns = [float(v) for v in args.n.split(",")] if args.n else None
    curve = power_curve(model, design, args.parameter, args.null, ns, args.alpha, args.approx, args.fim)
    size = sample_size(model, design, args.parameter, power=args.target, null=args.null, alpha=args.alpha,
                       approximation=args.approx, fim=args.fim) if args.target else None
    if args.json:
        out = {"model": spec.name, "parameter": args.parameter, "null": args.null, "alpha": args.alpha,
               "effect": curve.attrs["effect"], "n_design": curve.attrs["n_design"],
               "curve": [{"n": n, "se": r["se"], "power": r["power"]} for n, r in curve.iterrows()]}
        if size is not None:
            out["sample_size"] = {k: v for k, v in size.items() if k != "design"}
        print(strict_json(out))
        return 0
    print(f"model {spec.name}: Wald test of {args.parameter} = {args.null:g} (true {curve.attrs['effect'] + args.null:g}), "
          f"two-sided alpha {args.alpha:g}; the design's {curve.attrs['n_design']:g} subjects scaled")
    print(curve.to_string(float_format=lambda v: f"{v:.4g}"))
    if size is not None:
        print(f"minimum N for power {args.target:g}: {size['n']} (groups {size['group_n']}; power {size['power']:.4f})")
    return 0


def cmd_dataset(args) -> int:
    from ..dataset import to_dataset, write_dataset

    spec, model, df = model_and_design(args)
    frame = to_dataset(model, df.design, simulate=args.simulate, replicates=args.replicates, seed=args.seed)
    path = write_dataset(frame, args.output)
    what = f"simulated (seed {args.seed})" if args.simulate else "design only (DV = 0)"
    print(f"model {spec.name}: {len(frame)} rows, {frame['ID'].nunique()} subjects"
          f"{f' x {args.replicates} replicates' if args.replicates > 1 else ''}, {what}: {path}")
    print("$INPUT " + " ".join(frame.columns))
    return 0


def cmd_import(args) -> int:
    from ..files import write_atomic
    from ..io.nonmem import nonmem_to_toml
    from ..model.parse import parse_model_text

    text = nonmem_to_toml(args.control_stream)
    spec = parse_model_text(text, args.control_stream)  # the text is checked before anything is written
    if args.output is None:
        print(text, end="")
        return 0
    path = write_atomic(args.output, text, "import", PkdesignError)
    print(f"imported {args.control_stream} as model {spec.name!r} ({len(spec.parameters)} parameters, "
          f"{len(spec.variability)} random effects, outputs {spec.output_names}): {path}")
    return 0


def cmd_sse(args) -> int:
    from ..reestimation import sse

    spec, model, df = model_and_design(args)
    with make_executor(args.workers, args.scheduler) as executor:
        res = sse(model, df.design, args.replicates, args.seed, fim=args.fim, executor=executor)
    frame = res.to_frame()
    if args.json:
        print(strict_json({"model": spec.name, "replicates": args.replicates, "seed": args.seed,
                           "converged": int(res.converged.sum()), "fim": res.fim_type,
                           "parameters": json.loads(frame.to_json(orient="index"))}))
        return 0
    print(f"model {spec.name}: {res.converged.sum()}/{args.replicates} simulated studies re-estimated (FO maximum "
          f"likelihood, seed {args.seed}); FIM: {res.approximation} {res.fim_type}")
    print(frame.to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


def _subject_fims(args, spec, model, design) -> int:
    """``evaluate --fim individual|bayesian``: one subject's FIM per group (and shrinkage for bayesian)."""
    from ..design import Design
    from ..fim.api import individual_fim
    from ..fim.bayesian import bayesian_fim

    rows = []
    for g in design.groups:
        t, idx = g.observations(spec.output_names)
        if args.fim == "individual":
            r = individual_fim(model, t, g.regimen, idx, check=False)
        else:
            r = bayesian_fim(model, t, g.regimen, idx)
        rows.append((g, r))
    if args.json:
        out = {"model": spec.name, "fim_type": args.fim, "groups": []}
        for g, r in rows:
            item = {"group": g.name, **r.to_dict()} if r.identifiable else {
                "group": g.name, "parameters": list(r.names), "fim": r.matrix.tolist(), "logdet": r.logdet,
                "not_identifiable": [dict(d) for d in r.null_directions()]}
            if "shrinkage" in r.info:
                item["shrinkage"] = r.info["shrinkage"]
            out["groups"].append(item)
        print(strict_json(out))
        return 0
    what = ("individual FIM (one subject, fixed effects and residual error; random effects ignored)"
            if args.fim == "individual" else "Bayesian (MAP) FIM of the random effects, with predicted shrinkage")
    print(f"model {spec.name}: {what}")
    for g, r in rows:
        print("\n".join(design_lines(spec, Design((g,)))))
        print(r.summary())
        if "shrinkage" in r.info:
            print("shrinkage: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in r.info["shrinkage"].items()))
    return 0
