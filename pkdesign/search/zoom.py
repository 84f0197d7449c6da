"""Support refinement by zooming grids: the weight algorithm again, on fine local grids around the support.

Used for criteria whose optimal designs may be singular (c- and L-optimality), where a joint gradient
refinement of times and weights fails: off the optimum a design with fewer support points than
parameters does not estimate cᵀθ at all.  Round r puts, around every support schedule and for each of
its samples, ``points`` times spanning ±2 local steps (the grid step divided by 5^r, within the window,
the other samples fixed), and optimises the weights over all of them with the same algorithm (the
current support is a candidate, so no round can lose).  Every design visited lies in the convex hull
of candidates, so it stays estimable.
"""

from __future__ import annotations

import numpy as np


def local_candidates(space, t, step, points):
    """Schedules next to ``t`` (free samples moved one at a time by up to ±2·step; sorted, spacing kept)."""
    out = [t]
    free = [i for i in range(t.size) if not np.any(np.isclose(t[i], space.fixed))]
    for i in free:
        lo, hi = space.windows[min(free.index(i), len(space.windows) - 1)]
        for off in np.linspace(-2 * step, 2 * step, points):
            u = t.copy()
            u[i] = min(max(u[i] + off, lo), hi)
            u = np.sort(u)
            if u.size > 1 and np.any(np.diff(u) < space.min_spacing - 1e-12):
                continue
            out.append(u)
    return np.unique(np.array(out), axis=0)


def zoom(infos, spaces, owners, times, weights, value, optimise, *, merge=None, rounds: int = 3, points: int = 9):
    """Refine the support ``times`` (m, k) with ``weights`` of ``owners`` (m,) by zooming grids.

    infos(owner, T (B, k)) -> (B, K, p, p); value(weights, mus) -> criterion; optimise(mus) -> weights;
    merge(owners, times, weights) -> (times, weights, owners) merges neighbouring support schedules before
    each round.  Every round's design is scored and the best one kept (the start included), so zooming
    never returns a worse design.  Returns (times, weights, owners, the candidates mus (C, K, p, p) of the round
    that gave the design, for the certificate, support mus).
    """
    steps = [np.median(np.diff(sp.grid)) if sp.grid is not None and sp.grid.size > 1 else 1.0 for sp in spaces]
    start_mus = np.concatenate([infos(o, t[None, ~np.isnan(t)]) for t, o in zip(times, owners)])
    best = (value(weights, start_mus), times, weights, owners, start_mus, start_mus)
    for r in range(1, rounds + 1):
        if merge is not None:
            times, weights, owners = merge(owners, times, weights)
        cand, own = [], []
        for t, o in zip(times, owners):
            t = t[~np.isnan(t)]
            C = local_candidates(spaces[o], t, steps[o] / 5**r, points)
            cand += list(C)
            own += [o] * C.shape[0]
        own = np.array(own)
        order = np.argsort(own, kind="stable")
        own = own[order]
        width = max(c.size for c in cand)
        T = np.full((len(cand), width), np.nan)
        for j, c in enumerate(cand):
            T[j, :c.size] = c
        T = T[order]
        mus = np.concatenate([infos(o, T[own == o][:, :int(np.sum(~np.isnan(T[own == o][0])))])
                              for o in np.unique(own)])
        w = optimise(mus)
        keep = w > 1e-12 * w.max()
        times, owners, weights = T[keep], own[keep], w[keep] / w[keep].sum()
        v = value(weights, mus[keep])
        if v > best[0]:
            best = (v, times, weights, owners, mus[keep], mus)
    _, times, weights, owners, mus_support, mus_round = best
    return times, weights, owners, mus_round, mus_support
