"""Exact designs: the sampling times of every group, for fixed group sizes and doses.

``ScheduleProblem`` holds what both exact algorithms share: the free sampling times of all groups
as one vector, their sampling spaces (windows, minimum spacing between consecutive samples of a
group and output, fixed samples: ``space.exact_spaces``), and the criterion of the population FIM  Σ_g N_g F_g(t_g)  with its gradient in
the times.  The gradient uses the per-schedule FIMs of the 2n perturbed schedules of a group
(central differences of the kernels' exact FIM in each time), all evaluated in one batched call
per group, so a gradient costs one kernel pass per group.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


from ..criteria import make_criterion
from ..design import Design, Group
from ..errors import SearchError
from ..fim.api import _check_choice, _parameters, schedule_fims
from ..fim.params import covariate_cases
from ..fim.plan import SchedulePlan
from .doses import DoseVariables, with_amount


@dataclass(frozen=True)
class Block:
    """The samples of one group: all times (n,), their output indices (n,), which are free (n,) bool,
    and per free sample (m = free.sum()) its window (m, 2) and the spacing of its space (m,)."""

    group: Group
    times: np.ndarray
    outputs: np.ndarray
    free: np.ndarray
    bounds: np.ndarray
    spacing: np.ndarray
    seed: object = None     # FOCE/FOCEI draws of this group (evaluate_fim's per-group seed stream)
    cases: tuple = ((1.0, {}),)  # (proportion, covariate values) of the group (fim.params.covariate_cases)

    @property
    def n_free(self) -> int:
        return int(self.free.sum())


class ScheduleProblem:
    """Criterion of the population FIM as a function of the free sampling times.

    Parameters
    ----------
    model, design : the model and a starting design (its groups fix N, doses, outputs, sample counts)
    criterion : "D" | "Ds" | "A" | "ED" | "ELD" | "c:QUANTITY" | "L:..." or a ``Criterion``
    spaces : ``{(group, output): SamplingSpace}`` from ``space.exact_spaces`` (windows, spacing, fixed samples)
    prior_values : list of parameter-value dicts (ED) or None
    doses : dict group name -> (lo, hi) or [levels]: dose amounts that the search moves too (``doses.py``);
        the search vector is [free times of every group..., dose variables...]
    """

    def __init__(self, model, design, criterion="D", *, spaces, approximation="fo", fim=None, prior_values=None,
                 subset=None, a_weights=None, prior_fim=None, draws=None, seed=0, doses=None):
        self.model, self.design = model, design
        # FOCE/FOCEI: the same η draws for every candidate of a group (common random numbers)
        self.draws = draws
        self._approx, self._fim = _check_choice(approximation, fim)  # the approximation object, the FIM type
        self.prior_values = prior_values or [None]
        self.spaces = spaces
        outputs = model.spec.output_names
        seeds = np.random.SeedSequence(seed).spawn(len(design.groups))  # as evaluate_fim draws them
        self.blocks = []
        for g in design.groups:
            t, idx = g.observations(outputs)
            free = np.zeros(t.size, dtype=bool)
            bounds, spacing = np.zeros((t.size, 2)), np.zeros(t.size)
            for o in np.unique(idx):
                sp = spaces.get((g.name, outputs[o]))
                if sp is None:
                    continue
                rows = np.flatnonzero((idx == o) & ~np.array([np.any(np.isclose(x, sp.fixed)) for x in t]))
                free[rows] = True
                bounds[rows] = sp.bounds
                spacing[rows] = sp.min_spacing
            cases = tuple(covariate_cases(model.spec, g, f"group {g.name!r}"))
            self.blocks.append(Block(g, t.copy(), idx, free, bounds[free], spacing[free], seeds[len(self.blocks)],
                                     cases))
        self.doses = DoseVariables(design, doses)
        self.lower = np.concatenate([b.bounds[:, 0] for b in self.blocks] + [self.doses.lower])
        self.upper = np.concatenate([b.bounds[:, 1] for b in self.blocks] + [self.doses.upper])
        self.n_free = self.lower.size
        self.n_times = self.n_free - self.doses.n
        if self.n_free == 0:
            raise SearchError("every sample is fixed: nothing to optimise")
        b0 = self.blocks[0]
        self.names, _ = schedule_fims(model, b0.times[None], b0.outputs, b0.group.regimen, approximation, fim,
                                      dict(b0.cases[0][1]) or None, occasions=b0.group.occasion_starts())
        self.criterion = (make_criterion(criterion, self.names, subset, a_weights, spec=model,
                                         values=prior_values) if isinstance(criterion, str)
                          else criterion)
        self.evaluations = 0
        self._plans = {}  # (block, covariate case, parameter values, dose amount) -> fim.plan.SchedulePlan
        self.prior_fim = 0.0
        if prior_fim is not None:  # information from a previous study, added to every candidate design's
            from ..fim.bayesian import prior_matrix

            self.prior_fim = prior_matrix(self.names, prior_fim)
        pairs, gaps = self._pairs()
        self.pairs, self.pair_spacing = pairs, gaps

    def _pairs(self):
        """Index pairs (a, b) into x of consecutive free samples of one group and output, and the spacing
        x[b] − x[a] must keep."""
        pairs, gaps, k = [], [], 0
        for b in self.blocks:
            pos = np.arange(k, k + b.n_free)
            fidx = b.outputs[b.free]
            for o in np.unique(fidx):
                p = pos[fidx == o]
                pairs += list(zip(p[:-1], p[1:]))
                gaps += [b.spacing[p[0] - k]] * (p.size - 1)
            k += b.n_free
        return pairs, np.array(gaps, dtype=float)

    # -- vector <-> design ---------------------------------------------------------------------
    def x0(self) -> np.ndarray:
        return np.concatenate([b.times[b.free] for b in self.blocks] + [self.doses.x0(self.design)])

    def amounts(self, x) -> list:
        """Dose amount of each group in ``x`` (None: the group's own regimen)."""
        out = [None] * len(self.blocks)
        for j, gi in enumerate(self.doses.blocks):
            out[gi] = float(x[self.n_times + j])
        return out

    def candidates(self, i, grid) -> np.ndarray:
        """Exchange candidates of variable i: the time grid, or the levels of a dose variable."""
        return grid if i < self.n_times else self.doses.candidates(i - self.n_times)

    def polish_bounds(self, x) -> list:
        """Bounds for the gradient phase: discrete dose variables stay at their level."""
        lo, hi = self.lower.copy(), self.upper.copy()
        for j in range(self.doses.n):
            if self.doses.discrete(j):
                lo[self.n_times + j] = hi[self.n_times + j] = x[self.n_times + j]
        return list(zip(lo, hi))

    def split(self, x):
        """The full time vector of every group for the free times ``x``."""
        out, k = [], 0
        for b in self.blocks:
            tt = b.times.copy()
            tt[b.free] = x[k:k + b.n_free]
            out.append(tt)
            k += b.n_free
        return out

    def to_design(self, x) -> Design:
        groups = []
        names = self.model.spec.output_names
        for b, t, amount in zip(self.blocks, self.split(x), self.amounts(x)):
            g = b.group
            times = {names[o]: np.sort(t[b.outputs == o]) for o in np.unique(b.outputs)}
            regimen = g.regimen if amount is None else with_amount(g.regimen, amount)
            groups.append(replace(g, times=times, regimen=regimen))
        return Design(tuple(groups), self.design.window)

    def grid(self) -> np.ndarray:
        """Candidate times of the exchange: the spaces' grids, else 121 points across the windows."""
        grids = [sp.grid for sp in self.spaces.values() if sp.grid is not None]
        if grids:
            return np.unique(np.concatenate(grids))
        return np.linspace(self.lower.min(), self.upper.max(), 121)

    # -- criterion -----------------------------------------------------------------------------
    def _group_fims(self, blk, schedules, values, amount=None):
        """Per-subject FIMs (B, p, p) of the group's schedules (B, n): what ``schedule_fims`` gives, from a plan kept
        per group, covariate case, parameter values and dose amount (the checks and the set-up done once)."""
        F = 0.0
        for case, (share, cov) in enumerate(blk.cases):  # a covariate distribution: the proportion-weighted sum
            Fc = self._plan(blk, case, {**(values or {}), **cov}, amount)(schedules)
            F = F + share * Fc if len(blk.cases) > 1 else Fc
        self.evaluations += schedules.shape[0] * len(blk.cases)
        return F

    def _plan(self, blk, case, vals, amount):
        try:
            key = (id(blk), case, tuple(sorted(vals.items())), amount)
            plan = self._plans.get(key)
        except TypeError:  # unhashable values: no reuse
            key, plan = None, None
        if plan is None:
            g = blk.group
            regimen = g.regimen if amount is None else with_amount(g.regimen, amount)
            pp = _parameters(self.model, vals or None).for_occasions(g.occasion_starts())
            plan = SchedulePlan(self.model, pp, blk.outputs, regimen, self._approx, self._fim == "full",
                                where=f"group {g.name!r}", draws=self.draws, seed=blk.seed)
            if key is not None:
                if len(self._plans) >= 256:  # a dose search visits many amounts
                    self._plans.clear()
                self._plans[key] = plan
        return plan

    def total_fims(self, x) -> np.ndarray:
        """Population FIM per prior draw: (K, p, p)."""
        ts, am = self.split(x), self.amounts(x)
        out = []
        for vals in self.prior_values:
            out.append(self.prior_fim + sum(blk.group.n * self._group_fims(blk, t[None], vals, a)[0]
                                            for blk, t, a in zip(self.blocks, ts, am)))
        return np.stack(out)

    def value(self, x) -> float:
        F = self.total_fims(x)
        return self.criterion.safe_value(self.criterion.of_stack(F))

    def value_and_gradient(self, x, rel_step=1e-6):
        ts, am = self.split(x), self.amounts(x)
        K = len(self.prior_values)
        parts = []  # per draw, per group: FIM at t and its time derivatives (n_free, p, p)
        dose_parts = []  # per draw: derivatives of the FIM in each dose variable (n_dose, p, p)
        for vals in self.prior_values:
            row = []
            for blk, t, a in zip(self.blocks, ts, am):
                free = np.flatnonzero(blk.free)
                h = rel_step * np.maximum(1.0, np.abs(t[free]))
                hm = np.minimum(h, t[free])  # one-sided at t = 0
                S = np.repeat(t[None], 2 * free.size + 1, axis=0)
                S[1 + np.arange(free.size), free] += h
                S[1 + free.size + np.arange(free.size), free] -= hm
                F = self._group_fims(blk, S, vals, a)
                dF = (F[1:1 + free.size] - F[1 + free.size:]) / (h + hm)[:, None, None]
                row.append((blk.group.n * F[0], blk.group.n * dF))
            parts.append(row)
            dd = []
            for gi in self.doses.blocks:  # central differences in the amount
                blk, a = self.blocks[gi], am[gi]
                h = rel_step * 100 * a
                Fp = self._group_fims(blk, ts[gi][None], vals, a + h)[0]
                Fm = self._group_fims(blk, ts[gi][None], vals, a - h)[0]
                dd.append(blk.group.n * (Fp - Fm) / (2 * h))
            dose_parts.append(dd)
        Fk = np.stack([self.prior_fim + sum(r[0] for r in row) for row in parts])
        arg = self.criterion.of_stack(Fk)
        val = self.criterion.safe_value(arg)
        if not np.isfinite(val):
            return val, np.zeros_like(x)
        G = self.criterion.gradient(arg)
        G = G if G.ndim == 3 else G[None]
        grad = np.zeros_like(x)
        for k in range(K):
            grad[:self.n_times] += np.concatenate([np.einsum("ab,nab->n", G[k], r[1]) for r in parts[k]])
            grad[self.n_times:] += [np.einsum("ab,ab->", G[k], d) for d in dose_parts[k]]
        return val, grad

    def values_varying(self, X, i) -> np.ndarray:
        """Criterion of designs X (B, n_free) that differ from each other only in free sample i: one batched FIM
        call per prior draw for the varying group (B, K, p, p), the other groups once per draw."""
        if i >= self.n_times:
            return np.array([self.value(r) for r in X])
        ts, am = self.split(X[0]), self.amounts(X[0])
        k = 0
        for gi, blk in enumerate(self.blocks):
            m = blk.n_free
            if i < k + m:
                break
            k += m
        free = np.flatnonzero(blk.free)
        S = np.repeat(ts[gi][None], X.shape[0], axis=0)
        S[:, free[i - k]] = X[:, i]
        stack = []
        for vals in self.prior_values:
            rest = self.prior_fim
            for j, (b, t) in enumerate(zip(self.blocks, ts)):
                if j != gi:
                    rest = rest + b.group.n * self._group_fims(b, t[None], vals, am[j])[0]
            stack.append(rest + blk.group.n * self._group_fims(blk, S, vals, am[gi]))
        F = np.stack(stack, axis=1)  # (B, K, p, p)
        return self.criterion.values(F if self.criterion.stacked else F[:, 0])

    def feasible_start(self, rng) -> np.ndarray:
        """A random point inside the windows that meets the spacing (sorted per group and output)."""
        x = rng.uniform(self.lower, self.upper)
        k = 0
        for b in self.blocks:
            fidx = b.outputs[b.free]
            for o in np.unique(fidx):
                sel = np.flatnonzero(fidx == o) + k
                lo, hi = self.lower[sel].min(), self.upper[sel].max()
                s = b.spacing[sel[0] - k]
                u = np.sort(rng.uniform(lo, hi - (sel.size - 1) * s, sel.size))
                x[sel] = np.clip(u + s * np.arange(sel.size), self.lower[sel], self.upper[sel])
            k += b.n_free
        x[self.n_times:] = self.doses.snap(x[self.n_times:])
        return x

    def repair(self, x) -> np.ndarray:
        """Clip to the windows (and dose bounds; discrete doses to their nearest level) and push consecutive
        samples apart to the spacing where possible."""
        x = np.clip(np.asarray(x, dtype=float), self.lower, self.upper)
        x[self.n_times:] = self.doses.snap(x[self.n_times:])
        for (a, b), s in zip(self.pairs, self.pair_spacing):
            if x[b] - x[a] < s:
                x[b] = min(x[a] + s, self.upper[b])
                if x[b] - x[a] < s:
                    x[a] = max(x[b] - s, self.lower[a])
        return x
