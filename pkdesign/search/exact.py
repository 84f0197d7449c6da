"""Exact designs: the sampling times of every group, for fixed group sizes and doses.

``ScheduleProblem`` holds what both exact algorithms share: the free sampling times of all groups
as one vector, windows, a minimum spacing between consecutive samples of a group and output,
fixed samples, and the criterion of the population FIM  Σ_g N_g F_g(t_g)  with its gradient in
the times.  The gradient uses the per-schedule FIMs of the 2n perturbed schedules of a group
(central differences of the kernels' exact FIM in each time), all evaluated in one batched call
per group, so a gradient costs one kernel pass per group.
"""

from __future__ import annotations

import numpy as np

from ..criteria import make_criterion
from ..design import Design, Group
from ..errors import DesignError, SearchError, fmt
from ..fim.api import schedule_fims


class ScheduleProblem:
    """Criterion of the population FIM as a function of the free sampling times.

    Parameters
    ----------
    model, design : the model and a starting design (its groups fix N, doses, outputs, sample counts)
    criterion : "D" | "Ds" | "A" | "ED" or a ``Criterion``
    window : (lo, hi) for every free sample, or ``windows``: dict group name -> list of (lo, hi)
    min_spacing : minimum distance between consecutive samples of one group and output
    fixed : dict group name -> list of times that stay where they are
    prior_values : list of parameter-value dicts (ED) or None
    """

    def __init__(self, model, design, criterion="D", *, approximation="fo", fim="full", window=None, windows=None,
                 min_spacing=0.0, fixed=None, prior_values=None, subset=None, a_weights=None):
        self.model, self.design = model, design
        self.approximation, self.fim = approximation, fim
        self.prior_values = prior_values or [None]
        spec = model.spec
        if not (np.isfinite(min_spacing) and min_spacing >= 0):
            raise DesignError(f"min_spacing must be >= 0, got {fmt(min_spacing)}")
        self.min_spacing = float(min_spacing)
        fixed = fixed or {}
        windows = windows or {}
        unknown = sorted(set(fixed) - {g.name for g in design.groups}) + sorted(
            set(windows) - {g.name for g in design.groups})
        if unknown:
            raise DesignError(f"fixed/windows name unknown group(s) {unknown}")
        self.blocks = []  # per group: (group, t_all, idx, free positions, bounds (m, 2))
        lo_all, hi_all = [], []
        for g in design.groups:
            t, idx = g.observations(spec.output_names)
            fx = np.asarray(fixed.get(g.name, []), dtype=float)
            free = np.array([not np.any(np.isclose(x, fx)) for x in t])
            if g.name in windows:
                b = np.asarray(windows[g.name], dtype=float)
                if b.shape != (free.sum(), 2):
                    raise DesignError(f"windows[{g.name!r}]: expected {free.sum()} (lo, hi) pairs, got shape {b.shape}")
            else:
                w = window if window is not None else (0.0, float(t.max()))
                b = np.tile(np.asarray(w, dtype=float), (free.sum(), 1))
            bad = np.flatnonzero(~(b[:, 0] <= b[:, 1]) | (b[:, 0] < 0))
            if bad.size:
                raise DesignError(f"group {g.name!r}: window {bad[0]} is {b[bad[0]].tolist()}; expected 0 <= lo <= hi")
            # spacing feasibility per output
            for o in np.unique(idx[free]):
                sel = free & (idx == o)
                bo = b[sel[free]]
                need = (sel.sum() - 1) * self.min_spacing
                if need > bo[:, 1].max() - bo[:, 0].min() + 1e-12:
                    raise DesignError(
                        f"group {g.name!r}: {sel.sum()} samples with spacing {self.min_spacing:g} need {need:g} time "
                        f"units, but the windows span only {bo[:, 1].max() - bo[:, 0].min():g}")
            self.blocks.append((g, t.copy(), idx, free, b))
            lo_all.append(b[:, 0])
            hi_all.append(b[:, 1])
        self.lower, self.upper = np.concatenate(lo_all), np.concatenate(hi_all)
        self.n_free = self.lower.size
        if self.n_free == 0:
            raise SearchError("every sample is fixed: nothing to optimise")
        names, _ = schedule_fims(model, self.blocks[0][1][None], self.blocks[0][2], self.blocks[0][0].regimen,
                                 approximation, fim)
        self.names = names
        self.criterion = make_criterion(criterion, names, subset, a_weights) if isinstance(criterion, str) else criterion
        self.evaluations = 0

    # -- vector <-> design ---------------------------------------------------------------------
    def x0(self) -> np.ndarray:
        return np.concatenate([t[free] for _, t, _, free, _ in self.blocks])

    def split(self, x):
        out, k = [], 0
        for g, t, idx, free, _ in self.blocks:
            tt = t.copy()
            m = free.sum()
            tt[free] = x[k:k + m]
            out.append(tt)
            k += m
        return out

    def to_design(self, x) -> Design:
        groups = []
        names = self.model.spec.output_names
        for (g, _, idx, _, _), t in zip(self.blocks, self.split(x)):
            times = {names[o]: np.sort(t[idx == o]) for o in np.unique(idx)}
            groups.append(Group(g.n, times, g.regimen, g.name))
        return Design(tuple(groups))

    def spacing_pairs(self):
        """Index pairs (a, b) into x with x[b] − x[a] ≥ min_spacing (consecutive, same group and output)."""
        pairs, k = [], 0
        for _, t, idx, free, _ in self.blocks:
            pos = np.arange(k, k + free.sum())
            fidx = idx[free]
            for o in np.unique(fidx):
                p = pos[fidx == o]
                pairs += list(zip(p[:-1], p[1:]))
            k += free.sum()
        return pairs

    # -- criterion -----------------------------------------------------------------------------
    def _group_fims(self, blk, schedules, values):
        g, _, idx, _, _ = blk
        _, F = schedule_fims(self.model, schedules, idx, g.regimen, self.approximation, self.fim, values,
                             where=f"group {g.name!r}")
        self.evaluations += schedules.shape[0]
        return F

    def total_fims(self, x) -> np.ndarray:
        """Population FIM per prior draw: (K, p, p)."""
        ts = self.split(x)
        out = []
        for vals in self.prior_values:
            out.append(sum(blk[0].n * self._group_fims(blk, t[None], vals)[0] for blk, t in zip(self.blocks, ts)))
        return np.stack(out)

    def value(self, x) -> float:
        F = self.total_fims(x)
        return self.criterion.safe_value(self.criterion.of_stack(F))

    def value_and_gradient(self, x, rel_step=1e-6):
        ts = self.split(x)
        K = len(self.prior_values)
        parts = []  # per draw, per group: FIM at t and its time derivatives (n_free, p, p)
        for vals in self.prior_values:
            row = []
            for blk, t in zip(self.blocks, ts):
                free = np.flatnonzero(blk[3])
                h = rel_step * np.maximum(1.0, np.abs(t[free]))
                hm = np.minimum(h, t[free])  # one-sided at t = 0
                S = np.repeat(t[None], 2 * free.size + 1, axis=0)
                S[1 + np.arange(free.size), free] += h
                S[1 + free.size + np.arange(free.size), free] -= hm
                F = self._group_fims(blk, S, vals)
                dF = (F[1:1 + free.size] - F[1 + free.size:]) / (h + hm)[:, None, None]
                row.append((blk[0].n * F[0], blk[0].n * dF))
            parts.append(row)
        Fk = np.stack([sum(r[0] for r in row) for row in parts])
        arg = self.criterion.of_stack(Fk)
        val = self.criterion.safe_value(arg)
        if not np.isfinite(val):
            return val, np.zeros_like(x)
        G = self.criterion.gradient(arg)
        G = G if G.ndim == 3 else G[None]
        grad = np.zeros_like(x)
        for k in range(K):
            grad += np.concatenate([np.einsum("ab,nab->n", G[k], r[1]) for r in parts[k]])
        return val, grad

    def values_varying(self, X, i) -> np.ndarray:
        """Criterion of designs X (B, n_free) that differ from each other only in free sample i."""
        if self.criterion.stacked or len(self.prior_values) > 1:
            return np.array([self.value(r) for r in X])
        ts = self.split(X[0])
        k = 0
        for gi, blk in enumerate(self.blocks):
            m = int(blk[3].sum())
            if i < k + m:
                break
            k += m
        free = np.flatnonzero(blk[3])
        S = np.repeat(ts[gi][None], X.shape[0], axis=0)
        S[:, free[i - k]] = X[:, i]
        vals = self.prior_values[0]
        rest = 0.0
        for j, (b, t) in enumerate(zip(self.blocks, ts)):
            if j != gi:
                rest = rest + b[0].n * self._group_fims(b, t[None], vals)[0]
        return self.criterion.values(rest + blk[0].n * self._group_fims(blk, S, vals))

    def feasible_start(self, rng) -> np.ndarray:
        """A random point inside the windows that meets the spacing (sorted per group and output)."""
        x = rng.uniform(self.lower, self.upper)
        k = 0
        for _, t, idx, free, b in self.blocks:
            fidx = idx[free]
            for o in np.unique(fidx):
                sel = np.flatnonzero(fidx == o) + k
                lo, hi = self.lower[sel].min(), self.upper[sel].max()
                s = self.min_spacing
                u = np.sort(rng.uniform(lo, hi - (sel.size - 1) * s, sel.size))
                x[sel] = np.clip(u + s * np.arange(sel.size), self.lower[sel], self.upper[sel])
            k += free.sum()
        return x

    def repair(self, x) -> np.ndarray:
        """Clip to the windows and push consecutive samples apart to the spacing where possible."""
        x = np.clip(np.asarray(x, dtype=float), self.lower, self.upper)
        for a, b in self.spacing_pairs():
            if x[b] - x[a] < self.min_spacing:
                x[b] = min(x[a] + self.min_spacing, self.upper[b])
                if x[b] - x[a] < self.min_spacing:
                    x[a] = max(x[b] - self.min_spacing, self.lower[a])
        return x
