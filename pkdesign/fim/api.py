"""One switch over the FIM approximations; population FIM = Σ_groups N_g × per-subject FIM.

``evaluate_fim(model, design, approximation=..., fim=...)`` is the entry point; it returns a
``FIMResult``.  ``schedule_fims`` evaluates the per-subject FIM of many candidate schedules of one
group in a single batched pass (used by the design search).  ``individual_fim`` is the FIM of a
fixed-effects (no random effects) nonlinear regression model.
"""

from __future__ import annotations

import weakref

import numpy as np

from ..display import parameter_units
from ..choices import DEFAULT_FIM, BATCHED_APPROXIMATIONS, FIM_TYPES
from ..errors import DesignError, NonIdentifiableError, PkdesignError
from ..executors import check_executor, gather, submit
from ..model.runtime import output_index
from .approximations import CHUNK, DEFAULT_IS_SAMPLES, SubjectFIM, get_approximation
from .params import covariate_cases, population_parameters
from .plan import SchedulePlan
from .predict import predict
from .result import FIMResult


#: values derived from recently used model specs (population parameters, units): (kind, id(spec), extra) ->
#: (weak ref, value); nothing is written onto the user's objects
_SPEC_CACHE: dict = {}
_SPEC_CACHE_SIZE = 128


def _per_spec(kind: str, spec, extra, make):
    """``make()`` cached per spec (held weakly: a new spec at the same address is not mistaken for the old one)."""
    key = (kind, id(spec), extra)
    hit = _SPEC_CACHE.get(key)
    if hit is not None and hit[0]() is spec:
        return hit[1]
    value = make()
    try:
        ref = weakref.ref(spec)
    except TypeError:  # a spec type without weak references: no caching
        return value
    if len(_SPEC_CACHE) >= _SPEC_CACHE_SIZE:
        _SPEC_CACHE.clear()
    _SPEC_CACHE[key] = (ref, value)
    return value


def _parameters(model, values):
    """Population parameters of ``model`` (its own values cached per spec, or ``values`` applied)."""
    spec = model.spec
    if values:
        try:  # prior draws and covariate values recur: one structure per distinct set of values
            key = tuple(sorted((str(k), float(v)) for k, v in values.items()))
        except (TypeError, ValueError):
            return population_parameters(spec, values)
        return _per_spec("parameters", spec, key, lambda: population_parameters(spec, values))
    return _per_spec("parameters", spec, None, lambda: population_parameters(spec))


def _units(spec, names) -> tuple:
    """``parameter_units`` of the FIM parameters ``names``, cached per spec."""
    names = tuple(names)
    return _per_spec("units", spec, names, lambda: parameter_units(spec, names))


def _log_scale(spec, names) -> tuple:
    """Names of FIM parameters declared on the log scale (``scale = "log"``)."""
    return tuple(p.name for p in spec.parameters if getattr(p, "scale", "linear") == "log" and p.name in names)


def _check_choice(approximation, fim):
    """(approximation object, FIM type): ``fim=None`` is the default, the reduced FIM where the approximation
    has one (a linearisation) and the full FIM otherwise (MC, exact-MC)."""
    approx = get_approximation(approximation)
    if fim is None:
        return approx, (DEFAULT_FIM if approx.reduced else "full")
    if fim not in FIM_TYPES:
        raise PkdesignError(f"fim: expected one of {list(FIM_TYPES)}, got {fim!r}")
    if fim == "reduced" and not approx.reduced:
        raise PkdesignError(f"{approx.name} has no reduced form (it is not a linearisation); use fim='full'")
    return approx, fim


def group_cases(model, design, pp, values, seed, stochastic: bool):
    """Per design group and covariate case: ``(index, group, where, times, outputs, share, covariate values, seed,
    pp)``;
    ``pp`` with the case's covariates (and ``values``) and one κ per occasion; the seeds are evaluate_fim's
    streams (one per group, split per case when there are several)."""
    spec = model.spec
    seeds = np.random.SeedSequence(seed).spawn(len(design.groups)) if stochastic else [None] * len(design.groups)
    for gi, g in enumerate(design.groups):
        where = f"design group {g.name or gi + 1!r}"
        t, idx = g.observations(spec.output_names)
        cases = covariate_cases(spec, g, where)
        case_seeds = seeds[gi].spawn(len(cases)) if stochastic and len(cases) > 1 else [seeds[gi]] * len(cases)
        for (share, cov), case_seed in zip(cases, case_seeds):
            pp_c = (_parameters(model, {**(values or {}), **cov}) if cov else pp).for_occasions(g.occasion_starts())
            yield gi, g, where, t, idx, share, cov, case_seed, pp_c


def _collapsed(out, pp):
    """A subject FIM of an occasion-expanded structure (``pp.for_occasions``) in the reported parameters."""
    if pp.collapse is None:
        return out
    if out.samples is not None:  # exact-MC: collapse every simulated subject's term, then its SE
        samples = pp.collapse_fim(out.samples)
        return SubjectFIM(samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0]), out.ess,
                          samples)
    return SubjectFIM(pp.collapse_fim(out.matrix))


def silent_samples(model, pp, times, idx, regimen, where: str = "") -> np.ndarray:
    """Indices of the samples that carry no information at η = 0: prediction and all its first
    derivatives exactly 0 and no additive residual error (y = 0 whatever the parameters, e.g. a
    pre-dose sample with a proportional-only error).  The FIM kernels treat them as absent."""
    prop_only = pp.residual.prop_only()
    if not prop_only.any() or times.size == 0:
        return np.zeros(0, dtype=np.int64)
    cand = np.flatnonzero(prop_only[idx])
    if cand.size == 0:
        return cand
    silent = []
    for lo in range(0, cand.size, CHUNK):
        c = cand[lo:lo + CHUNK]
        P = predict(model, pp, np.zeros(pp.n_eta), times[c], idx[c], regimen, 1, where)
        silent.append(c[(P.f[0] == 0) & ~np.any(P.fth[0], axis=-1) & ~np.any(P.L[0], axis=-1)])
    return np.concatenate(silent)


def evaluate_fim(model, design, approximation: str = "fo", fim: str | None = None, *, draws: int | None = None,
                 seed=0, sampling: str | None = None, values: dict | None = None, scale: str = "variance",
                 is_samples: int = DEFAULT_IS_SAMPLES, check: bool = True, executor=None,
                 prior_fim=None) -> FIMResult:
    """Population FIM of ``design`` under ``model``.

    Parameters
    ----------
    model : CompiledModel or CallableModel
    design : Design
    approximation : fo | foi | foce | focei | mc | exact-mc
    fim : full | reduced
        ``reduced`` drops ∂V/∂θ (and, for MC, ∂μ/∂Ω): the block-diagonal FIM.
    draws : int, optional
        FOCE/FOCEI: linearisation points K (default 1000); MC: draws (default 2048);
        exact-MC: simulated subjects per group (default 2000).
    seed : int or numpy SeedSequence
        Same seed, same numbers.
    sampling : "mc" | "qmc"
        How η draws are generated (default "mc" for FOCE/FOCEI as in PopED, "qmc" for MC).
    values : dict, optional
        Parameter values overriding the model's (names as in the FIM, variance scale).
    scale : variance | sd | declared
        Scale of the Ω and σ entries in the result.
    check : bool
        Raise ``NonIdentifiableError`` if the FIM is singular (else the result flags it:
        ``result.identifiable``, ``result.null_directions()``).
    executor : concurrent.futures.Executor, optional
        Evaluate the groups as independent tasks (e.g. a process pool or a Dask client's executor), and for exact-MC
        the blocks of simulated subjects of each group; results are identical to the serial evaluation (each group,
        and each block, has its own seed stream).
    prior_fim : FIMResult or ndarray (p, p), optional
        Information from a previous study (same parameters, variance scale), added to this design's.
    """
    approx, fim = _check_choice(approximation, fim)
    check_executor(executor)
    spec = model.spec
    pp = _parameters(model, values)
    if sampling is None:
        sampling = approx.default_sampling
    stochastic = approx.default_draws is not None
    total = np.zeros((pp.p, pp.p))
    var = np.zeros((pp.p, pp.p))
    ess_all, samples = [], []
    tasks = []
    notes = []
    weights = []
    for _, g, where, t0, idx0, share, cov, case_seed, pp_c in group_cases(model, design, pp, values, seed,
                                                                          stochastic):
        t, idx = t0, idx0
        silent = silent_samples(model, pp_c, t, idx, g.regimen, where)
        if silent.size:
            notes.append(f"{where}: {silent.size} sample(s) at time(s) {', '.join(f'{v:.6g}' for v in t[silent])} "
                         "carry no information (prediction and sensitivities 0, no additive error) and were "
                         "ignored")
            keep = np.setdiff1d(np.arange(t.size), silent)
            t, idx = t[keep], idx[keep]
        if t.size == 0:
            raise DesignError(f"{where}: no sampling times (or none that carries information)")
        args = (model, pp_c, t, idx, g.regimen, fim == "full")
        kw = dict(draws=draws, seed=case_seed, sampling=sampling, is_samples=is_samples, where=where)
        if executor is not None and approx.parallel_draws:  # its draws or simulated subjects, in chunks, go there
            kw["executor"] = executor
            tasks.append((args, kw))
        else:
            tasks.append(submit(executor, approx.subject, *args, **kw) if executor is not None else (args, kw))
        weights.append((g.n * share, pp_c))
    submitted = [t for t in tasks if not isinstance(t, tuple)]
    finished = iter(gather(submitted, "evaluate_fim groups")) if submitted else iter(())
    for (n, pp_c), task in zip(weights, tasks):
        out = _collapsed(approx.subject(*task[0], **task[1]) if isinstance(task, tuple) else next(finished), pp_c)
        total += n * out.matrix
        if out.mc_se is not None:
            var += (n * out.mc_se) ** 2
            ess_all.append(out.ess)
            samples.append((n, out.samples))
    logs = _log_scale(spec, pp.names)
    if logs:
        notes.append(f"RSE% of {list(logs)} (declared on the log scale) is 100*SE: the approximate CV% of the "
                     "parameter each is the log of")
    info = {"notes": notes} if notes else {}
    info |= {"draws": approx.draws(draws) if stochastic else draws,
             "seed": seed if isinstance(seed, (int, type(None))) else str(seed),
             "sampling": sampling if stochastic else None}
    if ess_all:
        ess = np.concatenate(ess_all)
        info.update(is_samples=is_samples, ess_min=float(ess.min()), ess_median=float(np.median(ess)))
        # delta method: ln det(Σ N_g mean_i X_gi) has SE sqrt(Σ_g N_g² Var_i tr(F⁻¹ X_gi) / M_g)
        try:
            Finv = np.linalg.inv(0.5 * (total + total.T))
            v = sum(n**2 * np.var(np.einsum("ab,iba->i", Finv, X), ddof=1) / len(X) for n, X in samples)
            info["logdet_mc_se"] = float(np.sqrt(v))
        except np.linalg.LinAlgError:
            info["logdet_mc_se"] = float("nan")
    if prior_fim is not None:
        from .bayesian import prior_matrix

        total = total + prior_matrix(pp.names, prior_fim)
        info["notes"] = notes + ["a prior FIM (information from a previous study) is included"]
        info["prior_fim"] = True
    res = FIMResult(pp.names, 0.5 * (total + total.T), pp.values, approx.name, fim,
                    mc_se=np.sqrt(var) if ess_all else None, info=info, declared_scale=pp.declared_scale,
                    units=_units(spec, pp.names), log_scale=logs)
    if check:
        try:
            res.check_identifiable()
        except NonIdentifiableError as exc:
            if approx.default_draws is None:
                raise
            raise NonIdentifiableError(
                f"{exc} [with {approximation} this may also be Monte-Carlo noise: {info['draws']} draws may be too "
                "few; increase draws]", exc.directions) from None
    return res.on_scale(scale)


def schedule_fims(model, times, idx=None, regimen=None, approximation: str = "fo", fim: str | None = None,
                  values: dict | None = None, *, random_effects: bool = True, parameters=None,
                  where: str = "candidates", draws: int | None = None, seed=0, occasions=None) -> tuple:
    """Per-subject FIMs of B candidate schedules in one batch (FO, FOI; FOCE and FOCEI with ``draws`` η draws
    from ``seed``, the same for every schedule).

    Parameters
    ----------
    times : ndarray (B, n)   each row a schedule (model time units)
    idx : ndarray of int (n,), optional   output of each column (default: first output)
    random_effects : bool    False: the fixed-effects (individual) FIM, no Ω entries
    parameters : list of str, optional   keep only these parameters (the others are treated as known)
    occasions : array of start times, optional   occasions of the schedules (inter-occasion variability)

    Returns
    -------
    (names, ndarray (B, p, p))
    """
    approx, fim = _check_choice(approximation, fim)
    if not approx.batched:
        raise PkdesignError(f"schedule_fims batches the {' and '.join(BATCHED_APPROXIMATIONS)} approximations; "
                            f"got {approx.name!r}")
    pp = _parameters(model, values)
    if not random_effects:
        pp = pp.without_random_effects()
    else:
        pp = pp.for_occasions(occasions)
    times = np.asarray(times, dtype=float)
    if times.ndim != 2:
        raise DesignError(f"{where}: expected times of shape (n_schedules, n_samples), got {times.shape}")
    if np.any(times < 0) or not np.all(np.isfinite(times)):
        raise DesignError(f"{where}: times must be finite and >= 0")
    idx = np.zeros(times.shape[1], dtype=np.int64) if idx is None else np.asarray(idx, dtype=np.int64)
    F = SchedulePlan(model, pp, idx, regimen, approx, fim == "full", where=where, draws=draws, seed=seed)(times)
    names = list(pp.names if pp.collapse is None else _parameters(model, values).names)
    if parameters is not None:
        unknown = [n for n in parameters if n not in names]
        if unknown:
            raise DesignError(f"parameters {unknown} are not in the FIM; it has {names}")
        keep = [names.index(n) for n in parameters]
        F = F[:, keep][:, :, keep]
        names = list(parameters)
    return names, F


def individual_fim(model, times, regimen=None, output=None, *, values: dict | None = None,
                   variance_term: bool = True, n: float = 1.0, check: bool = True) -> FIMResult:
    """FIM of a fixed-effects nonlinear regression (random effects ignored) for one schedule.

    y_j ~ N(f(θ, t_j), r_j) with r_j from the residual error model (which may depend on θ through
    f).  Parameters: the estimated fixed effects, then the residual-error variances.
    ``variance_term=False`` drops the ½ tr(V⁻¹ ∂V/∂θ V⁻¹ ∂V/∂θ) term (weighted least squares).
    ``n`` multiplies the result (n identical subjects or replicates of the schedule).
    """
    from ..regimen import check_times

    spec = model.spec
    pp = population_parameters(spec, values).without_random_effects()
    t = check_times(times, "times")
    idx = output_index(output, t.size, spec.output_names)
    F = get_approximation("fo").subject(model, pp, t, idx, regimen, variance_term, where="individual FIM").matrix
    res = FIMResult(pp.names, n * F, pp.values, "individual", "full" if variance_term else "reduced",
                    declared_scale=pp.declared_scale, units=_units(spec, pp.names),
                    log_scale=_log_scale(spec, pp.names))
    if check:
        res.check_identifiable()
    return res
