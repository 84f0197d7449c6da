"""Approximate designs over candidate schedules: one driver for the weight algorithms.

1. enumerate the candidate schedules of every sampling space (``candidate_schedules``);
2. compute their elementary (per-subject) FIMs in one batch per space (and per prior draw for ED);
   with cost normalisation each is divided by the cost of a subject on that space;
3. optimise the weights (Fedorov–Wynn or multiplicative);
4. optionally refine the support times continuously (off the grid) together with the weights;
5. certify with the equivalence theorem over all candidates, and build the ``DesignResult``:
   groups with weights (the fraction of subjects — of the budget with costs), and, when
   ``total_n`` is given, integer group sizes by efficient apportionment.
"""

from __future__ import annotations

import numpy as np

from ..choices import APPROXIMATE_ALGORITHMS
from ..c_optimality import CCriterion, LCriterion
from ..criteria import check_options, make_criterion
from ..design import Design, Group
from ..equivalence import certificate, criterion_value, information, sensitivity
from ..errors import DesignError, SearchError
from ..executors import check_executor, gather, submit
from ..fim.api import schedule_fims
from ..display import parameter_units
from ..fim.params import covariate_cases, population_parameters
from ..fim.result import FIMResult
from ..space import SamplingSpace, candidate_schedules
from .fedorov_wynn import fedorov_wynn
from .multiplicative import multiplicative
from .packed import PackedFIMs
from .result import DesignResult, Status
from .rounding import apportion

ALGORITHMS = dict(zip(APPROXIMATE_ALGORITHMS, (fedorov_wynn, multiplicative)))


#: tasks per evaluation of candidate schedules when an executor takes the prior draws
TASKS_PER_CALL = 8
#: candidate schedules evaluated per batch of kernel calls
CANDIDATE_CHUNK = 32_768


def _schedule_fims_many(args_list, kw):
    """``schedule_fims`` for several argument tuples (one executor task)."""
    return [schedule_fims(*a, **kw) for a in args_list]


class InformationModel:
    """Elementary information of schedules: (B, K, p, p) for B schedules of one space, K prior draws."""

    def __init__(self, model, approximation="fo", fim=None, random_effects=True, parameters=None,
                 prior_values=None, executor=None, draws=None, seed=0):
        check_executor(executor)
        self.executor = executor
        self.model = model
        self.approximation, self.fim = approximation, fim
        self.random_effects, self.parameters = random_effects, parameters
        self.prior_values = prior_values or [None]
        self.evaluations = 0
        self.names = None
        self.draws, self.seed = draws, seed  # FOCE/FOCEI: one set of draws for every candidate

    def packed(self, space: SamplingSpace, times: np.ndarray) -> PackedFIMs:
        """The same as a call, stored as packed upper triangles and filled chunk by chunk: the full (B, K, p, p)
        array of all candidates never exists."""
        out = None
        for lo in range(0, times.shape[0], CANDIDATE_CHUNK):
            part = self._chunk(space, times[lo:lo + CANDIDATE_CHUNK])
            if out is None:
                out = PackedFIMs.empty(times.shape[0], part.shape[1], part.shape[-1])
            out.fill(lo, part)
        return out

    def __call__(self, space: SamplingSpace, times: np.ndarray) -> np.ndarray:
        """Elementary FIMs (B, K, p, p) of the schedules ``times`` (B, n), in chunks of ``CANDIDATE_CHUNK``
        schedules (the kernels' intermediate arrays stay bounded; only the result grows with B)."""
        if times.shape[0] <= CANDIDATE_CHUNK:
            return self._chunk(space, times)
        first = self._chunk(space, times[:CANDIDATE_CHUNK])
        out = np.empty((times.shape[0],) + first.shape[1:])  # filled in place: no second copy of the result
        out[:CANDIDATE_CHUNK] = first
        del first
        for lo in range(CANDIDATE_CHUNK, times.shape[0], CANDIDATE_CHUNK):
            out[lo:lo + CANDIDATE_CHUNK] = self._chunk(space, times[lo:lo + CANDIDATE_CHUNK])
        return out

    def _chunk(self, space: SamplingSpace, times: np.ndarray) -> np.ndarray:
        spec = self.model.spec
        idx = space.output_index(spec.output_names)
        if idx.size != times.shape[1]:  # a one-output space's schedules may carry fixed samples too
            idx = np.full(times.shape[1], idx[0], dtype=np.int64)
        kw = dict(random_effects=self.random_effects, parameters=self.parameters, where=f"sampling space {space.name!r}",
                  draws=self.draws, seed=self.seed, occasions=space.occasion_starts())
        cases = covariate_cases(spec, space, f"sampling space {space.name!r}")
        args = [(self.model, times, idx, space.regimen, self.approximation, self.fim, {**(vals or {}), **cov} or None)
                for vals in self.prior_values for _, cov in cases]
        if self.executor is not None and len(args) > 1:  # prior draws (and covariate cases) as tasks, a few per
            n = min(len(args), TASKS_PER_CALL)           # call (one task per draw costs more than it computes)
            chunks = [args[i::n] for i in range(n)]
            done = gather([submit(self.executor, _schedule_fims_many, c, kw) for c in chunks], "prior draws")
            results = [None] * len(args)
            for i, part in enumerate(done):
                results[i::n] = part
        else:
            results = [schedule_fims(*a, **kw) for a in args]
        if len(cases) > 1:  # a covariate distribution: the proportion-weighted sum per prior draw
            shares = [w for w, _ in cases]
            results = [(results[k * len(cases)][0], sum(w * results[k * len(cases) + c][1] for c, w in enumerate(shares)))
                       for k in range(len(self.prior_values))]
        stack = [F for _, F in results]
        self.names = results[0][0]
        self.evaluations += times.shape[0] * len(self.prior_values)
        return np.stack(stack, axis=1)


def optimize_approximate(model, spaces, criterion="D", *, algorithm: str = "fedorov-wynn", approximation="fo",
                         fim=None, random_effects=True, parameters=None, prior=None, prior_draws=32, seed=0,
                         subset=None, a_weights=None, cost_normalised=False, refine=False, tol=1e-6,
                         max_iter=None, total_n=None, callback=None, executor=None, prior_fim=None,
                         draws=None) -> DesignResult:
    """Optimal approximate design over the candidate schedules of ``spaces``.

    Parameters
    ----------
    model : CompiledModel
    spaces : SamplingSpace or list of them (one per arm/regimen)
    criterion : "D" | "Ds" | "A" | "ED" or a ``Criterion`` instance
    algorithm : "fedorov-wynn" | "multiplicative"
    random_effects : False for the fixed-effects (individual) FIM
    parameters : names kept in the FIM (others known), e.g. the fixed effects when σ is known
    prior : ``Prior`` for ED (``prior_draws`` QMC draws, ``seed``)
    subset : parameter names of interest (Ds)
    cost_normalised : maximise information per unit cost (Fedorov & Leonov)
    refine : optimise the support times off the grid, with the weights (continuous refinement)
    total_n : round to this many subjects (efficient apportionment)
    callback : called with a state dict each iteration; return True to stop
    executor : concurrent.futures.Executor for the elementary FIMs of the prior draws (ED)
    prior_fim : FIMResult or (p, p) array, information from a previous study (needs ``total_n``): the
        criterion is that of N·M(ξ) + F_prior, i.e. of M(ξ) + F_prior/N, and the equivalence theorem is
        checked for it (bound tr(∇Φ M(ξ)))
    """
    spaces = [spaces] if isinstance(spaces, SamplingSpace) else list(spaces)
    if not spaces:
        raise DesignError("no sampling spaces given")
    if algorithm not in ALGORITHMS:
        raise SearchError(f"algorithm: expected one of {list(ALGORITHMS)}, got {algorithm!r}")
    check_options(criterion, subset, a_weights, prior)
    if refine and any(sp_.samples_per_output is not None for sp_ in spaces):
        raise SearchError("refine moves the times of one-output schedules; protocols over several outputs stay on "
                          "the grid (use a finer grid)")
    crit_name = criterion if isinstance(criterion, str) else criterion.name
    prior_values = None
    if (str(crit_name).upper() in ("ED", "ELD") or str(crit_name)[:3].lower() in ("ec:", "el:")
            or getattr(criterion, "stacked", False)):
        if prior is None:
            raise SearchError(f"criterion {crit_name} needs a prior on the fixed effects")
        prior.check(model.spec.parameter_names)
        prior_values = prior.draws(prior_draws, seed)
    info = InformationModel(model, approximation, fim, random_effects, parameters, prior_values, executor, draws, seed)
    cands, mus, owner = [], [], []
    for si, sp_ in enumerate(spaces):
        T = candidate_schedules(sp_)
        mu = info.packed(sp_, T)
        if cost_normalised:
            if sp_.cost <= 0:
                raise DesignError(f"sampling space {sp_.name!r}: total cost per subject is 0; cost normalisation "
                                  "needs a positive cost")
            mu = mu.scaled(1.0 / sp_.cost)
        cands.append(T)
        mus.append(mu)
        owner += [si] * T.shape[0]
    width = max(T.shape[1] for T in cands)
    T_all = np.full((sum(T.shape[0] for T in cands), width), np.nan)
    r = 0
    for T in cands:
        T_all[r:r + T.shape[0], :T.shape[1]] = T
        r += T.shape[0]
    mus = PackedFIMs.concat(mus)  # one space: no copy
    owner = np.array(owner)
    crit = (make_criterion(criterion, info.names, subset, a_weights, spec=model, values=prior_values)
            if isinstance(criterion, str) else criterion)

    offset = None
    if prior_fim is not None:
        if total_n is None or refine or cost_normalised:
            raise SearchError("prior_fim in an approximate design needs total_n (the prior's weight is F_prior/N), "
                              "and works without refine and cost normalisation")
        from ..fim.bayesian import prior_matrix

        offset = prior_matrix(info.names, prior_fim) / float(total_n)
    w0 = np.full(mus.shape[0], 1.0 / mus.shape[0])
    if not np.isfinite(criterion_value(crit, information(w0, mus, offset))):
        raise SearchError(_singular_message(info.names, information(w0, mus, offset)[0]))
    kw = {"tol": tol, "callback": callback, "offset": offset}
    if max_iter is not None:
        kw["max_iter"] = max_iter
    w, status, iters, history = ALGORITHMS[algorithm](mus, crit, w0, **kw)

    support = np.flatnonzero(w > 1e-7 * w.max())
    ws = w[support] / w[support].sum()
    times = T_all[support]
    s_owner = owner[support]
    M = information(ws, mus[support], offset)
    if refine and isinstance(crit, LCriterion):  # possibly singular optimum: zooming grids, then Elfving
        times, ws, s_owner, M, mus_local = _refine_singular(info, spaces, s_owner, times, ws, crit, algorithm, tol,
                                                            cost_normalised)
        mus_cert = PackedFIMs.concat([mus, mus_local])
    elif refine:
        times, ws, s_owner = _merge(spaces, s_owner, times, ws)
        times, ws, M = _refine(info, spaces, s_owner, times, ws, crit, cost_normalised)
        keep = ws >= 1e-4 * ws.max()
        if not keep.all():  # points the refinement emptied: drop them and refine once more
            times, ws, s_owner = times[keep], ws[keep] / ws[keep].sum(), s_owner[keep]
            times, ws, M = _refine(info, spaces, s_owner, times, ws, crit, cost_normalised)
        mus_cert = PackedFIMs.concat([mus, _infos(info, spaces, s_owner, times, cost_normalised)])
    else:
        mus_cert = mus
    cert = certificate(crit, M, mus_cert, tol=max(tol, 1e-9) * 10, offset=offset)
    d_all, bound = sensitivity(crit, M, mus, offset)
    value = criterion_value(crit, M)
    if isinstance(crit, CCriterion) and offset is None and M.shape[0] == 1 and crit.estimable(M[0]):
        exact = _elfving_certificate(crit, M, mus, mus_cert, max(tol, 1e-9) * 10)
        if exact is not None:  # c-optimality with rank-one information: the certificate by LP duality
            cert, d_all = exact
            bound, value = cert.bound, -cert.bound
    if status == Status.CONVERGED and not cert.holds:  # the status says the truth: the certificate decides
        status = Status.FAILED

    # subjects: with costs, weight w_i of the budget buys w_i / c_i subjects
    frac = ws.copy()
    if cost_normalised:
        frac = ws / np.array([spaces[o].cost for o in s_owner])
        frac /= frac.sum()
    ns = apportion(frac, total_n) if total_n is not None else frac
    groups = []
    for j, (t, o, n) in enumerate(zip(times, s_owner, ns)):
        if n <= 0:
            continue
        sp_ = spaces[o]
        if sp_.samples_per_output is not None:
            per_output = sp_.split(t, model.spec.output_names)
        else:
            per_output = {sp_.output or model.spec.output_names[0]: t[~np.isnan(t)]}
        groups.append(Group(float(n), per_output, sp_.regimen, f"{sp_.name}:{j + 1}", sp_.covariates,
                            sp_.occasions))
    design = Design(tuple(groups))
    names = tuple(info.names)
    pp = population_parameters(model.spec)
    value_of = dict(zip(pp.names, pp.values))
    fim_res = FIMResult(names, M[0] if M.shape[0] == 1 else M.mean(0),
                        np.array([value_of.get(n, np.nan) for n in names]),
                        f"{approximation} (normalised information per subject)", fim,
                        units=parameter_units(model.spec, names))
    msg = (f"{algorithm}: {status.value} after {iters} iterations; max sensitivity {cert.sensitivity_max:.6g} "
           f"vs bound {cert.bound:.6g}")
    res = DesignResult(design, fim_res, crit.name, value, status, msg, iters, info.evaluations, weights=ws,
                       candidates=times, certificate=cert, history=history,
                       sensitivity={"candidates": T_all, "values": d_all, "bound": bound},
                       info={"n_candidates": int(mus.shape[0]), "algorithm": algorithm, "total_n": total_n})
    if total_n is not None and random_effects and parameters is None:
        res.evaluate_rounded(model, total_n, approximation, fim)
    return res


def _merge(spaces, owners, times, ws):
    """Merge support schedules of one space whose times all lie within 3 grid steps (weighted mean)."""
    order = np.argsort(-ws)
    groups = []  # [owner, weight, weighted time sum]
    for j in order:
        o, t = owners[j], times[j]
        step = np.median(np.diff(spaces[o].grid)) if spaces[o].grid.size > 1 else 0.0
        for g in groups:
            if g[0] == o and np.nanmax(np.abs(g[2] / g[1] - t)) <= 3 * step + 1e-12:
                g[1] += ws[j]
                g[2] = g[2] + ws[j] * t
                break
        else:
            groups.append([o, ws[j], ws[j] * t])
    T = np.array([g[2] / g[1] for g in groups])
    return T, np.array([g[1] for g in groups]), np.array([g[0] for g in groups])


def _infos(info, spaces, owners, times, cost_normalised):
    out = []
    for t, o in zip(times, owners):
        t = t[~np.isnan(t)][None]
        mu = info(spaces[o], t)
        out.append(mu / spaces[o].cost if cost_normalised else mu)
    return np.concatenate(out)


def _refine(info, spaces, owners, times, ws, crit, cost_normalised):
    """Optimise support times (within windows, spacing kept) and weights jointly, off the grid."""
    from scipy.optimize import minimize  # lazy: keeps `import pkdesign` fast

    m = times.shape[0]
    free = [(j, i) for j in range(m) for i in range(times.shape[1]) if not np.isnan(times[j, i])
            and not np.any(np.isclose(times[j, i], spaces[owners[j]].fixed))]
    lo, hi = [], []
    for j, i in free:
        sp_ = spaces[owners[j]]
        k = sum(1 for (jj, ii) in free if jj == j and ii < i)
        a, b = sp_.windows[min(k, len(sp_.windows) - 1)]
        lo.append(a)
        hi.append(b if np.isfinite(b) else times[j, i] * 10 + 10)
    x0 = np.r_[[times[j, i] for j, i in free], np.log(ws)]
    nt = len(free)

    def unpack(x):
        T = times.copy()
        for (j, i), v in zip(free, x[:nt]):
            T[j, i] = v
        z = x[nt:] - x[nt:].max()
        w = np.exp(z) / np.exp(z).sum()
        return T, w

    def neg(x):
        T, w = unpack(x)
        try:
            M = information(w, _infos(info, spaces, owners, np.sort(T, axis=1), cost_normalised))
        except DesignError:
            return 1e300
        v = criterion_value(crit, M)
        return -v if np.isfinite(v) else 1e300

    cons = []
    for j in range(m):
        sp_ = spaces[owners[j]]
        idxs = [free.index((j, i)) for i in range(times.shape[1]) if (j, i) in free]
        if sp_.min_spacing > 0:
            for a, b in zip(idxs[:-1], idxs[1:]):
                cons.append({"type": "ineq", "fun": lambda x, a=a, b=b, s=sp_.min_spacing: x[b] - x[a] - s})
    bounds = list(zip(lo, hi)) + [(-30.0, 5.0)] * m
    res = minimize(neg, x0, method="SLSQP", bounds=bounds, constraints=cons,
                   options={"ftol": 1e-14, "maxiter": 500})
    x = res.x if res.fun <= neg(x0) else x0
    T, w = unpack(x)
    T = np.sort(T, axis=1)
    return T, w, information(w, _infos(info, spaces, owners, T, cost_normalised))


def _refine_singular(info, spaces, owners, times, ws, crit, algorithm, tol, cost_normalised):
    """c-optimality with rank-one information and one free sample per schedule: Elfving's exact polish
    (``elfving.py``) from the merged grid support; otherwise (or if it fails) zooming grids around the
    support (``zoom.py``)."""
    from . import elfving
    from .zoom import zoom

    def infos(o, T):
        mu = info(spaces[o], T)
        return mu / spaces[o].cost if cost_normalised else mu

    grid_support = (times, ws, owners)
    times, ws, owners = _merge(spaces, owners, times, ws)
    one = times.shape[1] == 1 and all(spaces[o].fixed.size == 0 for o in owners)
    if isinstance(crit, CCriterion) and one and len(set(owners.tolist())) == 1:
        o = owners[0]
        mus_sup = infos(o, times)
        if elfving.rank_one(mus_sup):
            best = None
            starts = [(times, ws, cut) for cut in (0.0, 1e-3, 1e-2)] + [(*grid_support[:2], 1e-3)]
            for T, W, cut in starts:  # the merged support (without its lightest points), the grid support
                sel = W >= cut * W.max()
                bounds = np.array([spaces[o].windows[0]] * int(sel.sum()))
                got = elfving.polish(crit.C[0], T[sel, 0], bounds, lambda t: infos(o, t[:, None]))
                if got is not None and (best is None or got[2] < best[2] * (1 - 1e-12)):
                    best = got
            if best is not None:
                t, w, _ = best
                mus_new = infos(o, t[:, None])
                return t[:, None], w, np.full(t.size, o), information(w, mus_new), mus_new

    def optimise(mus):
        return ALGORITHMS[algorithm](mus, crit, None, tol=min(tol, 1e-7), max_iter=5000)[0]

    def merge(o, t, w):
        return _merge(spaces, o, t, w)

    def value(w, mus):
        return criterion_value(crit, information(w, mus))

    times, ws, owners = grid_support  # zoom from the grid's own support (merging first can lose estimability)
    times, ws, owners, mus_local, mus_sup = zoom(infos, spaces, owners, times, ws, value, optimise, merge=merge)
    return times, ws, owners, information(ws, mus_sup), mus_local


def _elfving_certificate(crit, M, mus, mus_cert, tol):
    """(Certificate, sensitivity over ``mus``) from Elfving's dual LP when every candidate's information is
    rank one (then exact even where M is singular); None otherwise."""
    from . import elfving

    if mus_cert.shape[0] > 200_000:
        return None
    full = mus_cert.full()
    if not elfving.rank_one(full):
        return None
    variance = float(crit.variances(M[0] if M.ndim == 3 else M)[0])
    got = elfving.certificate(crit.C[0], elfving.rank_one_vectors(full), variance, tol)
    if got is None:
        return None
    cert, d = got
    return cert, d[:mus.shape[0]]


def _singular_message(names, M):
    from ..fim.result import describe_null

    text = describe_null(names, M)
    return ("the information of the uniform design over all candidates is singular, so no design on these "
            f"candidates identifies the parameters: not identifiable along {text}. Add samples, widen the windows, "
            "or fix parameters.")
