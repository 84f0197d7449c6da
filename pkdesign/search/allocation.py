"""Group sizes as a decision of exact designs: integer allocation of a total number of subjects.

With the sampling times and doses of every group fixed, the population FIM is Σ_g n_g M_g (M_g the
per-subject FIM of group g), so the criterion of an allocation is cheap.  Start from the current
proportions rounded to the total (efficient apportionment), then move one subject at a time between
two groups while the best such move improves the criterion (an exchange on the integer lattice; each
group keeps at least ``min_n`` subjects).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import SearchError, fmt
from .rounding import apportion


def check_total(total_n, n_groups: int, min_n: int = 1) -> int:
    if isinstance(total_n, bool) or not isinstance(total_n, (int, np.integer)):
        raise SearchError(f"total_n must be a whole number of subjects, got {fmt(total_n)}")
    if total_n < n_groups * min_n:
        raise SearchError(f"total_n = {total_n} is smaller than the {n_groups} group(s) x {min_n} subject(s) each "
                          "that the design needs")
    return int(total_n)


def allocate_sizes(problem, x, total_n: int, min_n: int = 1) -> tuple:
    """Integer sizes (one per group, summing to ``total_n``) that maximise the criterion of ``problem`` at ``x``;
    returns (sizes, criterion value, moves)."""
    blocks = problem.blocks
    total_n = check_total(total_n, len(blocks), min_n)
    ts, am = problem.split(x), problem.amounts(x)
    M = np.stack([np.stack([problem._group_fims(b, t[None], vals, a)[0] for b, t, a in zip(blocks, ts, am)])
                  for vals in problem.prior_values])  # (K draws, G groups, p, p)

    def value(n):
        F = problem.prior_fim + np.einsum("g,kgab->kab", n.astype(float), M)
        return problem.criterion.safe_value(problem.criterion.of_stack(F))

    n = np.maximum(apportion(np.array([b.group.n for b in blocks], dtype=float), total_n), min_n)
    while n.sum() > total_n:  # the minimum may have pushed the sum over the total
        n[int(np.argmax(n))] -= 1
    best, moves = value(n), 0
    while True:
        trial = []
        for i in range(len(n)):
            if n[i] <= min_n:
                continue
            for j in range(len(n)):
                if i != j:
                    m = n.copy()
                    m[i] -= 1
                    m[j] += 1
                    trial.append((value(m), m))
        if not trial:
            break
        v, m = max(trial, key=lambda r: r[0])
        if not v > best + 1e-12 * max(1.0, abs(best)):
            break
        best, n, moves = v, m, moves + 1
    return [int(k) for k in n], float(best), moves


def set_sizes(problem, sizes) -> None:
    """Give the groups of ``problem`` the sizes ``sizes``."""
    problem.blocks = [replace(b, group=replace(b.group, n=float(k))) for b, k in zip(problem.blocks, sizes)]
