"""The sensitivity function of an approximate design and the equivalence-theorem certificate.

For an approximate design ξ with information M = Σ w_i μ_i and a concave criterion Φ, the
directional derivative towards candidate x is  tr(∇Φ(M) μ(x)) − tr(∇Φ(M) M).  ξ is optimal over
the candidates iff  d(x) = tr(∇Φ(M) μ(x)) ≤ tr(∇Φ(M) M)  for every x, with equality on the
support (Kiefer & Wolfowitz 1960; for D, tr(∇Φ M) = p).  The gap max_x d(x) − bound bounds the
loss in criterion value, and for D (and Ds, A) gives a lower bound on efficiency.

Information of a candidate is a stack (K, p, p): K = 1, or one FIM per prior draw for ED.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def information(weights: np.ndarray, mus: np.ndarray, offset=None) -> np.ndarray:
    """M = Σ_i w_i μ_i (+ offset): weights (C,), mus (C, K, p, p) or their ``PackedFIMs`` -> (K, p, p).

    ``offset`` (K, p, p) or (p, p) is information the design does not choose (a prior study's FIM divided by
    the number of subjects)."""
    if hasattr(mus, "combine"):  # pkdesign.search.packed.PackedFIMs
        M = mus.combine(weights)
    else:
        C = mus.shape[0]
        M = (weights @ mus.reshape(C, -1)).reshape(mus.shape[1:])
    return M if offset is None else M + offset


def criterion_value(criterion, M: np.ndarray) -> float:
    """Φ of the information stack M (K, p, p) (−inf where singular)."""
    return criterion.safe_value(criterion.of_stack(M))


def sensitivity(criterion, M: np.ndarray, mus: np.ndarray, offset=None) -> tuple:
    """(d (C,), bound): d_i = tr(∇Φ(M) μ_i), bound = tr(∇Φ(M) (M − offset)) (the chosen part of M)."""
    G = criterion.gradient(criterion.of_stack(M))
    if G.ndim == 2:
        G = G[None]
    packed = hasattr(mus, "combine")  # pkdesign.search.packed.PackedFIMs
    d = mus.dot(G) if packed else mus.reshape(mus.shape[0], -1) @ G.ravel()
    return d, float(np.sum(G * (M if offset is None else M - offset)))


@dataclass(frozen=True)
class Certificate:
    """Equivalence-theorem check of an approximate design.

    sensitivity_max: max over candidates of tr(∇Φ μ(x)); bound: tr(∇Φ M) (= p for D);
    gap: sensitivity_max − bound (≥ 0 up to rounding; an upper bound on Φ(ξ*) − Φ(ξ));
    efficiency_lower_bound: for D, p / sensitivity_max (Atwood 1969); None when not known;
    holds: sensitivity_max ≤ bound·(1 + tol).
    """

    sensitivity_max: float
    bound: float
    gap: float
    efficiency_lower_bound: float | None
    argmax: int
    holds: bool
    tol: float


def certificate(criterion, M: np.ndarray, mus: np.ndarray, tol: float = 1e-4, offset=None) -> Certificate:
    d, b = sensitivity(criterion, M, mus, offset)
    j = int(np.argmax(d))
    eff = None if offset is not None else criterion.efficiency_lower_bound(float(d[j]), criterion.of_stack(M))
    return Certificate(float(d[j]), b, float(d[j] - b), eff, j, bool(d[j] <= b * (1 + tol)), tol)
