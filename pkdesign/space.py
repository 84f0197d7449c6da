"""Design spaces: where and how many samples a schedule may have, and what it costs.

A ``SamplingSpace`` describes the admissible sampling schedules of one group (arm): its dose
regimen, the output sampled, the number of free samples per subject, a window for all samples or
one per sample, an optional candidate grid, a minimum spacing between samples, fixed samples
that every schedule contains, and costs per subject and per sample (Fedorov & Leonov's cost
model: a subject with k samples costs ``cost_subject + k * cost_sample``).

``candidate_schedules`` enumerates all admissible k-subsets of the grid (sorted times), which
the approximate-design algorithms weigh against each other.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np

from .covariates import check_covariates, covariate_combinations
from .regimen import Regimen, check_occasions, check_times, occasion_starts
from .errors import DesignError, fmt

#: refuse to enumerate more candidate schedules than this (use a coarser grid or fewer samples)
MAX_CANDIDATES = 2_000_000


@dataclass(frozen=True)
class SamplingSpace:
    """Admissible schedules of one group.

    Attributes
    ----------
    n_samples : int            free samples per subject (> 0)
    window : (float, float)    interval for every free sample (model time units)
    windows : list of (lo, hi), optional   one window per free sample (overrides ``window``)
    grid : array, optional     candidate times (sorted); needed for approximate designs
    min_spacing : float        minimum distance between consecutive samples (>= 0)
    fixed : array              samples every schedule contains (not counted in n_samples)
    output : str or None       output sampled (default: the model's first output)
    regimen : Regimen          doses of the group
    covariates : dict          covariate values of the group's subjects (see ``Group``)
    occasions : list or "doses"  occasion start times (see ``Group``)
    cost_subject, cost_sample : costs (>= 0, not both 0 when costs are used)
    name : str
    """

    n_samples: int
    window: tuple = (0.0, np.inf)
    windows: tuple | None = None
    grid: np.ndarray | None = None
    min_spacing: float = 0.0
    fixed: np.ndarray = field(default_factory=lambda: np.zeros(0))
    output: str | None = None
    regimen: Regimen = field(default_factory=Regimen)
    cost_subject: float = 1.0
    cost_sample: float = 0.0
    name: str = "group1"
    samples_per_output: dict | None = None
    covariates: dict = field(default_factory=dict)
    occasions: object = ()

    def occasion_starts(self) -> np.ndarray:
        """Start times of the occasions (see ``Group.occasions``; empty: one occasion)."""
        return occasion_starts(self.occasions, self.regimen)

    def covariate_cases(self) -> list:
        """``[(proportion, {covariate: value}), ...]`` of this space's subjects (``pkdesign.covariates``)."""
        return covariate_combinations(self.covariates)

    def __post_init__(self):
        where = f"sampling space {self.name!r}"
        object.__setattr__(self, "covariates", check_covariates(self.covariates, where))
        object.__setattr__(self, "occasions", check_occasions(self.occasions, self.regimen, where))
        if self.samples_per_output is not None:
            self._check_protocol(where)
        k = self.n_samples
        # samples that must fit one output's grid and spacing: all of them, or per output for a protocol
        kmax = max(self.samples_per_output.values()) if self.samples_per_output is not None else k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise DesignError(f"{where}: n_samples must be a whole number >= 1, got {k!r}")
        if not (np.isfinite(self.min_spacing) and self.min_spacing >= 0):
            raise DesignError(f"{where}: min_spacing must be >= 0, got {fmt(self.min_spacing)}")
        wins = self.windows if self.windows is not None else [self.window] * k
        wins = [tuple(float(x) for x in w) for w in wins]
        if len(wins) != k:
            raise DesignError(f"{where}: {len(wins)} windows for {k} samples")
        for i, (lo, hi) in enumerate(wins):
            if not (lo >= 0 and hi >= lo) or np.isnan(lo) or np.isnan(hi):
                raise DesignError(f"{where}: window {i} is [{lo:g}, {hi:g}]; expected 0 <= lo <= hi")
        object.__setattr__(self, "windows", tuple(wins))
        object.__setattr__(self, "fixed", check_times(np.sort(np.atleast_1d(np.asarray(self.fixed, dtype=float))),
                                                      f"{where}.fixed"))
        if self.grid is not None:
            g = check_times(np.unique(np.asarray(self.grid, dtype=float)), f"{where}.grid")
            object.__setattr__(self, "grid", g)
            for i, (lo, hi) in enumerate(wins):
                if not np.any((g >= lo) & (g <= hi)):
                    raise DesignError(f"{where}: window {i} [{lo:g}, {hi:g}] contains no grid time")
            if kmax > g.size:
                raise DesignError(f"{where}: {kmax} samples requested but the grid has only {g.size} times")
        span = max(hi for _, hi in wins) - min(lo for lo, _ in wins)
        if np.isfinite(span) and (kmax - 1) * self.min_spacing > span + 1e-12:
            raise DesignError(
                f"{where}: {kmax} samples with spacing {self.min_spacing:g} need {(kmax - 1) * self.min_spacing:g} "
                f"time units, but the windows span only {span:g}"
            )
        if self.cost_subject < 0 or self.cost_sample < 0:
            raise DesignError(f"{where}: costs must be >= 0")

    def _check_protocol(self, where):
        """A joint protocol: ``samples_per_output`` {output: k} (e.g. PK and PD samples of one subject)."""
        spo = self.samples_per_output
        if not isinstance(spo, dict) or not spo:
            raise DesignError(f"{where}: samples_per_output must be a non-empty table output -> number of samples")
        for out, k in spo.items():
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
                raise DesignError(f"{where}: samples_per_output[{out!r}] must be a whole number >= 1, got {fmt(k)}")
        if self.windows is not None or np.asarray(self.fixed).size:
            raise DesignError(f"{where}: a protocol over several outputs takes one window for all samples and no "
                              "fixed samples")
        total = int(sum(spo.values()))
        if self.n_samples != total:
            raise DesignError(f"{where}: n_samples is {self.n_samples} but samples_per_output adds up to {total}")
        if self.grid is not None:
            g = np.asarray(self.grid, dtype=float)
            lo, hi = self.window
            n_in = int(np.sum((g >= lo) & (g <= hi)))
            for out, k in spo.items():
                if k > n_in:
                    raise DesignError(f"{where}: {k} samples of {out!r} but the grid has {n_in} times in the window")

    def protocol(self, output_names) -> list:
        """[(output index, number of samples), ...] in model order: one output (``output`` or the first) or the
        outputs of ``samples_per_output``."""
        if self.samples_per_output is None:
            out = self.output or output_names[0]
            if out not in output_names:
                raise DesignError(f"sampling space {self.name!r}: unknown output {out!r}; the model has "
                                  f"{list(output_names)}")
            return [(output_names.index(out), self.n_samples)]
        unknown = sorted(set(self.samples_per_output) - set(output_names))
        if unknown:
            raise DesignError(f"sampling space {self.name!r}: unknown output(s) {unknown}; the model has "
                              f"{list(output_names)}")
        return [(output_names.index(o), int(k)) for o, k in self.samples_per_output.items()]

    def output_index(self, output_names) -> np.ndarray:
        """Output index of each column of this space's candidate schedules (k_total,)."""
        return np.concatenate([np.full(k, o, dtype=np.int64) for o, k in self.protocol(output_names)])

    def split(self, times, output_names) -> dict:
        """One schedule row (k_total,) -> {output name: its times}."""
        out, c = {}, 0
        for o, k in self.protocol(output_names):
            t = np.asarray(times[c:c + k], dtype=float)
            out[output_names[o]] = t[~np.isnan(t)]
            c += k
        return out

    @property
    def cost(self) -> float:
        """Cost of one subject on this space's schedules."""
        return self.cost_subject + (self.n_samples + self.fixed.size) * self.cost_sample

    @property
    def bounds(self) -> np.ndarray:
        """(n_samples, 2) lower and upper bounds of the free samples."""
        return np.array(self.windows, dtype=float)


def exact_spaces(design, output_names, *, space=None, window=None, windows=None, min_spacing=0.0, fixed=None,
                 grid=None) -> dict:
    """The sampling spaces of an exact design's free samples: ``{(group name, output name): SamplingSpace}``.

    An exact search moves the samples of the design's groups (their number stays), so one
    ``SamplingSpace`` per group and output carries what may change: windows, spacing, fixed samples
    and a candidate grid.  They come either from ``space`` (one ``SamplingSpace`` used for every group
    and output, or a dict group name -> ``SamplingSpace``; its ``n_samples`` is replaced by the
    design's count, its windows repeated when it has one window for all) or from the keyword
    shorthands: ``window`` (lo, hi) for every sample (default: the design's window, else 0 to the
    design's last time), ``windows`` dict group -> list of (lo, hi), one per free sample of the group
    in output order, ``min_spacing``, ``fixed`` dict group -> times that stay, ``grid``.  Either way the
    result is validated by ``SamplingSpace`` (one set of checks for exact and approximate designs).
    """
    names = {g.name for g in design.groups}
    shorthand = window is not None or windows or fixed or grid is not None or min_spacing
    if space is not None and shorthand:
        raise DesignError("give the sampling space either as space= or as window/windows/min_spacing/fixed/grid, "
                          "not both")
    templates = space if isinstance(space, dict) else {n: space for n in names} if space is not None else {}
    fixed, windows = fixed or {}, windows or {}
    for what, table in (("space", templates), ("fixed", fixed), ("windows", windows)):
        unknown = sorted(set(table) - names)
        if unknown:
            raise DesignError(f"{what} names unknown group(s) {unknown}; the design has {sorted(names)}")
    if not (np.isfinite(min_spacing) and min_spacing >= 0):
        raise DesignError(f"min_spacing must be >= 0, got {fmt(min_spacing)}")
    out = {}
    latest = design.last_time
    for g in design.groups:
        t, idx = g.observations(output_names)
        tpl = templates.get(g.name)
        fx = np.asarray(tpl.fixed if tpl is not None else fixed.get(g.name, []), dtype=float)
        free = np.array([not np.any(np.isclose(x, fx)) for x in t], dtype=bool)
        wins = windows.get(g.name)
        if wins is not None:
            wins = np.asarray(wins, dtype=float)
            if wins.shape != (int(free.sum()), 2):
                raise DesignError(f"windows[{g.name!r}]: expected {int(free.sum())} (lo, hi) pairs, got shape "
                                  f"{wins.shape}")
        for o in np.unique(idx[free]):
            sel = free & (idx == o)
            k = int(sel.sum())
            own = np.array([x for x in fx if np.any(np.isclose(x, t[idx == o]))], dtype=float)
            if tpl is not None:
                ws = tpl.windows if len(tpl.windows) == k else (
                    tpl.windows[:1] * k if len(set(tpl.windows)) == 1 else None)
                if ws is None:
                    raise DesignError(f"space for group {g.name!r}: {len(tpl.windows)} windows for {k} free samples "
                                      f"of output {output_names[o]!r}")
                sp = replace(tpl, n_samples=k, windows=ws, fixed=own, output=output_names[o], regimen=g.regimen,
                             covariates=g.covariates, occasions=g.occasions, name=g.name)
            else:
                w = window if window is not None else design.window if design.window is not None else (
                    0.0, latest)
                ws = None if wins is None else [tuple(r) for r in wins[sel[free]]]
                sp = SamplingSpace(k, tuple(w), windows=ws, grid=grid, min_spacing=float(min_spacing), fixed=own,
                                   output=output_names[o], regimen=g.regimen, covariates=g.covariates,
                                   occasions=g.occasions, name=g.name)
            out[(g.name, output_names[o])] = sp
    return out


def candidate_schedules(space: SamplingSpace) -> np.ndarray:
    """All admissible schedules on the grid: (C, n_samples + n_fixed), each row sorted.

    A schedule picks ``n_samples`` distinct grid times, sample i within window i (windows are
    matched to the sorted times), consecutive times at least ``min_spacing`` apart (also from the
    fixed samples).
    """
    where = f"sampling space {space.name!r}"
    if space.grid is None:
        raise DesignError(f"{where}: approximate designs need a candidate grid")
    if space.samples_per_output is not None:
        return _protocol_schedules(space, where)
    g, k = space.grid, space.n_samples
    from math import comb

    if comb(g.size, k) > MAX_CANDIDATES:
        raise DesignError(f"{where}: {comb(g.size, k)} candidate schedules ({k} of {g.size} grid times) is too many; "
                          f"use a coarser grid or fewer samples (limit {MAX_CANDIDATES})")
    n_comb = comb(g.size, k)  # generated straight into an array (no list of tuples: bounded memory)
    combos = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(g.size), k)), dtype=np.int64,
                         count=n_comb * k).reshape(-1, k)
    T = g[combos]
    ok = np.ones(T.shape[0], dtype=bool)
    for i, (lo, hi) in enumerate(space.windows):
        ok &= (T[:, i] >= lo) & (T[:, i] <= hi)
    if space.fixed.size:
        T = np.sort(np.concatenate([T, np.broadcast_to(space.fixed, (T.shape[0], space.fixed.size))], axis=1), axis=1)
    if space.min_spacing > 0 and T.shape[1] > 1:
        ok &= np.all(np.diff(T, axis=1) >= space.min_spacing - 1e-12, axis=1)
    T = T[ok]
    if T.shape[0] == 0:
        raise DesignError(f"{where}: no schedule on the grid satisfies the windows and the minimum spacing")
    return T


def _protocol_schedules(space, where) -> np.ndarray:
    """Joint protocols: for each output (in the order of ``samples_per_output``) a k-subset of the grid times in
    the window, spacing kept within each output; the product of the outputs' subsets, (C, Σk)."""
    from math import comb, prod

    lo, hi = space.window
    g = space.grid[(space.grid >= lo) & (space.grid <= hi)]
    ks = list(space.samples_per_output.values())
    n = prod(comb(g.size, k) for k in ks)
    if n > MAX_CANDIDATES:
        raise DesignError(f"{where}: {n} candidate protocols is too many; use a coarser grid or fewer samples "
                          f"(limit {MAX_CANDIDATES})")
    blocks = []
    for k in ks:
        T = g[np.array(list(itertools.combinations(range(g.size), k)), dtype=np.int64).reshape(-1, k)]
        if space.min_spacing > 0 and k > 1:
            T = T[np.all(np.diff(T, axis=1) >= space.min_spacing - 1e-12, axis=1)]
        if T.shape[0] == 0:
            raise DesignError(f"{where}: no schedule on the grid satisfies the minimum spacing")
        blocks.append(T)
    out = blocks[0]
    for T in blocks[1:]:
        out = np.concatenate([np.repeat(out, T.shape[0], axis=0), np.tile(T, (out.shape[0], 1))], axis=1)
    return out


def dose_levels(space: SamplingSpace, amounts) -> list:
    """One sampling space per dose amount (every dose of ``space.regimen`` at that amount), for approximate
    designs whose candidates are (dose level, schedule) pairs: the optimal weights then say which doses to
    give to how many subjects."""
    from .regimen import _as_float_array

    a = _as_float_array(amounts, "dose levels")
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise DesignError(f"dose levels must be finite amounts > 0, got {fmt(list(a))}")
    if space.regimen.times.size == 0:
        raise DesignError(f"sampling space {space.name!r} has no doses to set levels for")
    return [replace(space, regimen=replace(space.regimen, amounts=np.full(space.regimen.amounts.shape, float(x))),
                    name=f"{space.name} dose {x:g}") for x in np.unique(a)]
