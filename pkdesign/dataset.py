"""A design as a NONMEM-format dataset: the subjects, their doses and samples, optionally simulated observations.

One row per dose (EVID 1, MDV 1, AMT, RATE = AMT/duration for an infusion, else 0) and per sample (EVID 0,
MDV 0, DV, DVID = the output's 1-based index), for every subject of every group (group sizes expanded to
subjects, numbered consecutively from 1), in time order per subject; a sample at a dose time comes before
that dose (the trough convention pkdesign's kernels use).  Columns::

    [REP] ID TIME AMT RATE DV MDV EVID CMT DVID GRP [OCC] [covariates...]

CMT is the dosing compartment for doses (the depot, 1, for oral closed forms; the ``[dosing] compartment``'s
position among the ODE states) and the observed compartment for samples (2 for oral closed forms, else 1;
for ODE models the first state in the output's expression).  Covariates of a group with a distribution are
assigned to its subjects in proportion (efficient apportionment, in the order of the values).  With
``simulate=True`` DV is drawn from the model: η (and κ per occasion) from Ω, the residual error from σ
(seeded: same seed, same dataset); DV of a log-scale (exponential-error) output is on the natural scale.
Otherwise DV is 0 (a design-only dataset, MDV 0 on the sample rows).
"""

from __future__ import annotations

import numpy as np

from .errors import DesignError
from .regimen import occasion_index

#: largest dataset written (rows)
MAX_ROWS = 50_000_000


def _compartments(spec, oi: int) -> tuple:
    """(dose CMT, observation CMT of output ``oi``), 1-based."""
    if spec.ode is not None:
        states = list(spec.ode.states)
        dose = states.index(spec.dosing.compartment) + 1 if spec.dosing.compartment in states else 1
        used = {s.name for s in spec.outputs[oi].expression.free_symbols}
        obs = next((k + 1 for k, s in enumerate(states) if s in used), 1)
        return dose, obs
    if spec.dosing.route == "oral":
        return 1, 2
    return 1, 1


def _subject_covariates(group, n: int) -> list:
    """Covariate values of each of the ``n`` subjects of ``group`` (distributions apportioned)."""
    from .search.rounding import apportion

    cases = group.covariate_cases()
    if len(cases) == 1:
        return [cases[0][1]] * n
    counts = apportion(np.array([w for w, _ in cases]), n)
    out = []
    for k, (_, cov) in zip(counts, cases):
        out += [cov] * int(k)
    return out


def simulate_group(model, g, n: int, rng, simulate: bool = True) -> tuple:
    """The ``n`` subjects of group ``g``: (sample times (m,), output indices (m,) in time order, each subject's
    covariate values, DV (n, m): simulated from the model with η, κ per occasion and ε from ``rng`` (a
    SeedSequence), or 0 with ``simulate=False``)."""
    from .fim.draws import draw_eta
    from .fim.params import covariate_cases, population_parameters
    from .fim.predict import predict

    spec = model.spec
    covariate_cases(spec, g, f"dataset: group {g.name!r}")  # the group's covariates checked against the model
    t_obs, idx = g.observations(spec.output_names)
    order = np.lexsort((idx, t_obs))
    t_obs, idx = t_obs[order], idx[order]
    subj_cov = _subject_covariates(g, n)
    dv = np.zeros((n, t_obs.size))
    if simulate and t_obs.size:
        keys = sorted({tuple(sorted(c.items())) for c in subj_cov})
        for cov, case_seed in zip(keys, rng.spawn(len(keys))):  # η and ε of each covariate case: own streams
            rows = [i for i, c in enumerate(subj_cov) if tuple(sorted(c.items())) == cov]
            eta_seed, eps_seed = case_seed.spawn(2)
            pp = population_parameters(spec, dict(cov) or None).for_occasions(g.occasion_starts())
            eta = draw_eta(pp.omega, len(rows), eta_seed) if pp.n_eta else np.zeros((len(rows), 0))
            f = predict(model, pp, eta, t_obs, idx, g.regimen, 0, f"dataset: group {g.name!r}").f
            sd = np.sqrt(np.maximum(pp.residual.variance(idx, f * f, f), 0.0))
            y = f + sd * np.random.default_rng(eps_seed).standard_normal(f.shape)
            logf = pp.residual.log_scale()[idx] if pp.n_outputs else np.zeros(idx.size, dtype=bool)
            y[:, logf] = np.exp(y[:, logf])
            dv[rows] = y
    return t_obs, idx, subj_cov, dv


def _group_rows(model, g, gi, n, subjects0, simulate, rng, covariate_names):
    """Rows (dict of column arrays) of the ``n`` subjects of group ``g``."""
    spec = model.spec
    t_obs, idx, subj_cov, dv = simulate_group(model, g, n, rng, simulate)
    reg = g.regimen
    starts = g.occasion_starts()
    rate = np.where(reg.durations > 0, reg.amounts / np.where(reg.durations > 0, reg.durations, 1.0), 0.0)
    # one subject's rows (the same for every subject of the group), then tiled
    times = np.concatenate([t_obs, reg.times])
    evid = np.concatenate([np.zeros(t_obs.size, dtype=np.int64), np.ones(reg.times.size, dtype=np.int64)])
    order = np.lexsort((evid, times))  # a sample at a dose time before that dose
    dose_cmt = _compartments(spec, 0)[0]
    obs_cmt = np.array([_compartments(spec, int(o))[1] for o in idx], dtype=np.int64)
    is_dose = evid[order] == 1
    j = order - t_obs.size  # dose index on dose rows
    amt = np.where(is_dose, reg.amounts[np.clip(j, 0, None)] if reg.times.size else 0.0, 0.0)
    rt = np.where(is_dose, rate[np.clip(j, 0, None)] if reg.times.size else 0.0, 0.0)
    cmt = np.where(is_dose, dose_cmt, obs_cmt[np.clip(order, 0, max(t_obs.size - 1, 0))] if t_obs.size else 0)
    dvid = np.where(is_dose, 0, idx[np.clip(order, 0, max(t_obs.size - 1, 0))] + 1 if t_obs.size else 0)
    occ = np.zeros(order.size, dtype=np.int64)
    if starts.size:
        t = times[order]
        occ = np.where(is_dose, occasion_index(starts, t, doses=True), occasion_index(starts, t))
    R = order.size
    dv_rows = np.zeros((n, R))
    dv_rows[:, ~is_dose] = dv[:, order[~is_dose]]
    out = {"ID": np.repeat(subjects0 + 1 + np.arange(n), R), "TIME": np.tile(times[order], n),
           "AMT": np.tile(amt, n), "RATE": np.tile(rt, n), "DV": dv_rows.ravel(),
           "MDV": np.tile(is_dose.astype(np.int64), n), "EVID": np.tile(evid[order], n), "CMT": np.tile(cmt, n),
           "DVID": np.tile(dvid, n), "GRP": np.full(n * R, gi + 1), "OCC": np.tile(occ + 1, n)}
    for c in covariate_names:
        default = next(p.value for p in spec.parameters if p.name == c)
        out[c] = np.repeat([float(sc.get(c, default)) for sc in subj_cov], R)
    return out


def to_dataset(model, design, *, simulate: bool = False, replicates: int = 1, seed=0):
    """The design as a NONMEM-format ``pandas.DataFrame`` (see the module docstring); with ``replicates`` > 1
    a REP column numbers the simulated copies (each from its own seed stream)."""
    import pandas as pd

    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or not 1 <= replicates <= 100_000:
        raise DesignError(f"dataset: replicates must be a whole number from 1 to 100000, got {replicates!r}")
    spec = model.spec
    for g in design.groups:
        if not float(g.n).is_integer():
            raise DesignError(f"dataset: group {g.name!r} has n = {g.n:g}, not a whole number of subjects (round an "
                              "approximate design first: result.rounded_design(N))")
    rows_per = sum(int(g.n) * (sum(v.size for v in g.times.values()) + g.regimen.times.size) for g in design.groups)
    if rows_per * replicates > MAX_ROWS:
        raise DesignError(f"dataset: {rows_per * replicates} rows exceed the limit of {MAX_ROWS}")
    covariate_names = [p.name for p in spec.parameters if p.covariate]
    frames = []
    reps = np.random.SeedSequence(seed).spawn(replicates)
    for r, rep_seed in enumerate(reps):
        group_seeds = rep_seed.spawn(len(design.groups))
        parts, first = [], 0
        for gi, (g, gs) in enumerate(zip(design.groups, group_seeds)):
            n = int(g.n)
            parts.append(pd.DataFrame(_group_rows(model, g, gi, n, first, simulate, gs, covariate_names)))
            first += n
        frame = pd.concat(parts, ignore_index=True)
        if replicates > 1:
            frame.insert(0, "REP", r + 1)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    if not any(g.occasions for g in design.groups):
        out = out.drop(columns="OCC")
    out.attrs.update(model=spec.name, simulated=bool(simulate), seed=seed if isinstance(seed, int) else str(seed))
    return out


def write_dataset(frame, path) -> str:
    """Write a dataset as CSV (atomically; NONMEM reads it with $INPUT naming the columns); returns the path."""
    from .files import write_atomic

    return str(write_atomic(path, frame.to_csv(index=False, float_format="%.10g"), "dataset", DesignError))
