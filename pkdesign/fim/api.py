"""One switch over the FIM approximations; population FIM = Σ_groups N_g × per-subject FIM.

``evaluate_fim(model, design, approximation=..., fim=...)`` is the entry point; it returns a
``FIMResult``.  ``schedule_fims`` evaluates the per-subject FIM of many candidate schedules of one
group in a single batched pass (used by the design search).  ``individual_fim`` is the FIM of a
fixed-effects (no random effects) nonlinear regression model.
"""

from __future__ import annotations

import weakref

import numpy as np

from ..choices import APPROXIMATIONS, BATCHED_APPROXIMATIONS, FIM_TYPES
from ..errors import DesignError, NonIdentifiableError, PkdesignError
from .draws import check_draws, draw_eta
from .exact import exact_mc_scores
from .linearized import fo_fims, linearized_fims
from .montecarlo import mc_fim
from .params import population_parameters
from .predict import predict
from .result import FIMResult
from .structured import StructuredFIM

#: default number of draws per approximation (exact-mc: simulated subjects per group)
DEFAULT_DRAWS = {"foce": 1000, "focei": 1000, "mc": 2048, "exact-mc": 2000}
#: importance samples per simulated subject (exact-mc)
DEFAULT_IS_SAMPLES = 200
#: observations per chunk when one subject has very many samples (FO/FOI: bounded memory)
CHUNK = 65536


#: population parameters of recently used model specs at their own values: id(spec) -> (weak ref, pp);
#: nothing is written onto the user's objects
_PP_CACHE: dict = {}
_PP_CACHE_SIZE = 64


def _parameters(model, values):
    """Population parameters of ``model`` (its own values cached per spec, or ``values`` applied)."""
    spec = model.spec
    if values:
        return population_parameters(spec, values)
    hit = _PP_CACHE.get(id(spec))
    if hit is not None and hit[0]() is spec:
        return hit[1]
    pp = population_parameters(spec)
    try:
        ref = weakref.ref(spec)
    except TypeError:  # a spec type without weak references: no caching
        return pp
    if len(_PP_CACHE) >= _PP_CACHE_SIZE:
        _PP_CACHE.clear()
    _PP_CACHE[id(spec)] = (ref, pp)
    return pp


def _check_choice(approximation, fim):
    if approximation not in APPROXIMATIONS:
        raise PkdesignError(f"approximation: expected one of {list(APPROXIMATIONS)}, got {approximation!r}")
    if fim not in FIM_TYPES:
        raise PkdesignError(f"fim: expected 'full' or 'reduced', got {fim!r}")
    if approximation == "exact-mc" and fim == "reduced":
        raise PkdesignError("exact-mc has no reduced form (it is not a linearisation); use fim='full'")


def subject_fim(model, pp, times, idx, regimen, approximation: str = "fo", full: bool = True, *,
                draws: int | None = None, seed=0, sampling: str = "mc", is_samples: int = DEFAULT_IS_SAMPLES,
                where: str = "") -> tuple:
    """Per-subject FIM (p, p) of one sampling schedule, and its Monte-Carlo SE (or None).

    ``times`` (n,) and ``idx`` (n,) are the observation times and output indices; ``regimen`` the
    doses.  ``draws`` is K for FOCE/FOCEI/MC and the number of simulated subjects for exact-MC.
    """
    if times.size == 0:
        raise DesignError(f"{where}: no sampling times (or none that carries information)")
    E = pp.n_eta
    if approximation in ("fo", "foi"):
        if times.size > CHUNK:  # dense sampling: predictions and sums chunk by chunk, bounded memory
            acc = StructuredFIM(pp, full=full, interaction=approximation == "foi")
            for lo in range(0, times.size, CHUNK):
                sl = slice(lo, lo + CHUNK)
                P = predict(model, pp, np.zeros(E), times[sl], idx[sl], regimen, 2 if full else 1, where)
                acc.add(idx[sl], P.fth[0], P.f[0], P.fth[0], P.L[0], P.Lth[0] if full else None, times[sl], where)
            return acc.result(), None
        P0 = predict(model, pp, np.zeros(E), times, idx, regimen, 2 if full else 1, where)
        return fo_fims(pp, idx, P0, interaction=approximation == "foi", full=full, where=where, times=times)[0], None
    K = check_draws(draws if draws is not None else DEFAULT_DRAWS[approximation], "draws")
    if approximation in ("foce", "focei"):
        eta = draw_eta(pp.omega, K, seed, sampling)
        Ps = predict(model, pp, eta, times, idx, regimen, 2, where)
        P0 = predict(model, pp, np.zeros(E), times, idx, regimen, 2, where)
        F = linearized_fims(pp, idx, P0, Ps, eta, interaction=approximation == "focei",
                            resid_at_star=approximation == "focei", full=full, where=where, times=times)
        return F.mean(axis=0), None
    if approximation == "mc":
        eta = draw_eta(pp.omega, K, seed, sampling)
        P = predict(model, pp, eta, times, idx, regimen, 2, where, eta2=True)
        return mc_fim(pp, idx, P, full=full, where=where), None
    if K <= pp.p:
        raise DesignError(f"{where}: exact-mc estimates the {pp.p} x {pp.p} FIM as a mean of outer products of "
                          f"simulated scores; {K} simulated subjects give a rank of at most {K}. Use draws > {pp.p} "
                          f"(a few thousand for RSE% to a few per cent; default {DEFAULT_DRAWS['exact-mc']})")
    S = check_draws(is_samples, "is_samples")
    rng = np.random.default_rng(seed)
    halves, ess = exact_mc_scores(model, pp, times, idx, regimen, K, S, rng, where)
    outer = halves[:, 0, :, None] * halves[:, 1, None, :]
    outer = 0.5 * (outer + np.swapaxes(outer, 1, 2))
    return outer.mean(axis=0), outer.std(axis=0, ddof=1) / np.sqrt(K), ess, outer


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


def evaluate_fim(model, design, approximation: str = "fo", fim: str = "full", *, draws: int | None = None,
                 seed=0, sampling: str | None = None, values: dict | None = None, scale: str = "variance",
                 is_samples: int = DEFAULT_IS_SAMPLES, check: bool = True, executor=None) -> FIMResult:
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
        Evaluate the groups as independent tasks (e.g. a process pool or a Dask client's executor);
        results are identical to the serial evaluation (each group has its own seed stream).
    """
    _check_choice(approximation, fim)
    spec = model.spec
    pp = _parameters(model, values)
    if sampling is None:
        sampling = "qmc" if approximation == "mc" else "mc"
    seeds = ([None] * len(design.groups) if approximation in ("fo", "foi")
             else np.random.SeedSequence(seed).spawn(len(design.groups)))
    total = np.zeros((pp.p, pp.p))
    var = np.zeros((pp.p, pp.p))
    ess_all, samples = [], []
    tasks = []
    notes = []
    for gi, g in enumerate(design.groups):
        where = f"design group {g.name or gi + 1!r}"
        t, idx = g.observations(spec.output_names)
        silent = silent_samples(model, pp, t, idx, g.regimen, where)
        if silent.size:
            notes.append(f"{where}: {silent.size} sample(s) at time(s) {', '.join(f'{v:.6g}' for v in t[silent])} "
                         "carry no information (prediction and sensitivities 0, no additive error) and were ignored")
            keep = np.setdiff1d(np.arange(t.size), silent)
            t, idx = t[keep], idx[keep]
        args = (model, pp, t, idx, g.regimen, approximation, fim == "full")
        kw = dict(draws=draws, seed=seeds[gi], sampling=sampling, is_samples=is_samples, where=where)
        tasks.append(executor.submit(subject_fim, *args, **kw) if executor is not None else (args, kw))
    for g, task in zip(design.groups, tasks):
        out = task.result() if executor is not None else subject_fim(*task[0], **task[1])
        total += g.n * out[0]
        if out[1] is not None:
            var += (g.n * out[1]) ** 2
            ess_all.append(out[2])
            samples.append((g.n, out[3]))
    info = {"notes": notes} if notes else {}
    info |= {"draws": draws if draws is not None else DEFAULT_DRAWS.get(approximation),
            "seed": seed if isinstance(seed, (int, type(None))) else str(seed),
            "sampling": sampling if approximation not in ("fo", "foi") else None}
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
    res = FIMResult(pp.names, 0.5 * (total + total.T), pp.values, approximation, fim,
                    mc_se=np.sqrt(var) if approximation == "exact-mc" else None, info=info,
                    declared_scale=pp.declared_scale)
    if check:
        try:
            res.check_identifiable()
        except NonIdentifiableError as exc:
            if approximation in ("fo", "foi"):
                raise
            raise NonIdentifiableError(
                f"{exc} [with {approximation} this may also be Monte-Carlo noise: {info['draws']} draws may be too "
                "few; increase draws]", exc.directions) from None
    return res.on_scale(scale)


def schedule_fims(model, times, idx=None, regimen=None, approximation: str = "fo", fim: str = "full",
                  values: dict | None = None, *, random_effects: bool = True, parameters=None,
                  where: str = "candidates") -> tuple:
    """Per-subject FO/FOI FIMs of B candidate schedules in one batch.

    Parameters
    ----------
    times : ndarray (B, n)   each row a schedule (model time units)
    idx : ndarray of int (n,), optional   output of each column (default: first output)
    random_effects : bool    False: the fixed-effects (individual) FIM, no Ω entries
    parameters : list of str, optional   keep only these parameters (the others are treated as known)

    Returns
    -------
    (names, ndarray (B, p, p))
    """
    if approximation not in BATCHED_APPROXIMATIONS:
        raise PkdesignError(f"schedule_fims batches the {' and '.join(BATCHED_APPROXIMATIONS)} approximations; "
                            f"got {approximation!r}")
    _check_choice(approximation, fim)
    pp = _parameters(model, values)
    if not random_effects:
        pp = pp.without_random_effects()
    times = np.asarray(times, dtype=float)
    if times.ndim != 2:
        raise DesignError(f"{where}: expected times of shape (n_schedules, n_samples), got {times.shape}")
    if np.any(times < 0) or not np.all(np.isfinite(times)):
        raise DesignError(f"{where}: times must be finite and >= 0")
    idx = np.zeros(times.shape[1], dtype=np.int64) if idx is None else np.asarray(idx, dtype=np.int64)
    full = fim == "full"
    P = predict(model, pp, np.zeros(pp.n_eta), times, idx, regimen, 2 if full else 1, where)
    F = fo_fims(pp, idx, P, interaction=approximation == "foi", full=full, where=where, times=times)
    names = list(pp.names)
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
    from ..design import check_times

    spec = model.spec
    pp = population_parameters(spec, values).without_random_effects()
    t = check_times(times, "times")
    if output is None:
        idx = np.zeros(t.size, dtype=np.int64)
    else:
        names = spec.output_names
        out = np.atleast_1d(np.asarray(output))
        idx = np.array([names.index(o) if isinstance(o, str) and o in names else int(o) for o in out.tolist()])
    F, _ = subject_fim(model, pp, t, idx, regimen, "fo", variance_term, where="individual FIM")
    res = FIMResult(pp.names, n * F, pp.values, "individual", "full" if variance_term else "reduced",
                    declared_scale=pp.declared_scale)
    if check:
        res.check_identifiable()
    return res
