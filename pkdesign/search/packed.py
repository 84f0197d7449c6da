"""Elementary information matrices of many candidates, stored as packed upper triangles.

An approximate design over C candidate schedules needs each candidate's information μ_i (K of them per
candidate: one per prior draw for ED/ELD), p × p and symmetric.  Stored as the q = p(p+1)/2 entries of the
upper triangle they take 56% of the memory for p = 8 (36 of 64 numbers), and both operations the weight
algorithms need are linear in them:

* the information of a design, M = Σ_i w_i μ_i: the weighted sum of the packed rows, then unpacked (K, p, p);
* the sensitivities d_i = tr(G μ_i) for a symmetric G (K, p, p): one matrix-vector product of the packed rows
  with G packed with its off-diagonal entries doubled.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=None)
def _triangle(p: int) -> tuple:
    """(rows, columns, weights) of the packed entries of a p × p matrix: the upper triangle row by row, and 1 on the
    diagonal, 2 off it (an off-diagonal entry stands for two); read-only arrays, computed once per p."""
    i, j = np.triu_indices(p)
    twice = np.where(i == j, 1.0, 2.0)
    for a in (i, j, twice):
        a.flags.writeable = False
    return i, j, twice


class PackedFIMs:
    """C candidates' information matrices, ``data`` (C, K, q) packed upper triangles of p × p matrices.

    Behaves like the (C, K, p, p) array it stands for where the searches use one: ``shape``, ``len``, indexing
    and slicing along the candidate axis; :meth:`combine` and :meth:`dot` are the two linear maps.
    """

    __slots__ = ("data", "p")

    def __init__(self, data: np.ndarray, p: int):
        self.data, self.p = data, int(p)

    # -- building -------------------------------------------------------------------------------
    @staticmethod
    def triangle(p: int) -> tuple:
        """Row and column indices of the packed entries (upper triangle, row by row)."""
        return _triangle(p)[:2]

    @classmethod
    def empty(cls, C: int, K: int, p: int) -> "PackedFIMs":
        return cls(np.empty((C, K, p * (p + 1) // 2)), p)

    @classmethod
    def pack(cls, mus: np.ndarray) -> "PackedFIMs":
        """From full matrices (C, K, p, p) (symmetric: the upper triangle is kept)."""
        p = mus.shape[-1]
        i, j = cls.triangle(p)
        return cls(np.ascontiguousarray(mus[..., i, j]), p)

    def fill(self, lo: int, mus: np.ndarray) -> None:
        """Write full matrices (B, K, p, p) into candidates lo .. lo + B - 1."""
        i, j = self.triangle(self.p)
        self.data[lo:lo + mus.shape[0]] = mus[..., i, j]

    @classmethod
    def concat(cls, parts) -> "PackedFIMs":
        """Candidates of several sets, in order (each a PackedFIMs or a full (C, K, p, p) array)."""
        parts = [p if isinstance(p, PackedFIMs) else cls.pack(p) for p in parts]
        if len(parts) == 1:
            return parts[0]
        return cls(np.concatenate([p.data for p in parts]), parts[0].p)

    # -- array-like -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return (self.data.shape[0], self.data.shape[1], self.p, self.p)

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index) -> "PackedFIMs":
        data = self.data[index]
        if data.ndim != 3:
            raise IndexError("PackedFIMs is indexed along its candidates only (an index array, mask or slice)")
        return PackedFIMs(data, self.p)

    def scaled(self, factor: float) -> "PackedFIMs":
        return PackedFIMs(self.data * factor, self.p)

    def full(self) -> np.ndarray:
        """The (C, K, p, p) array."""
        C, K, _ = self.data.shape
        out = np.empty((C, K, self.p, self.p))
        i, j = self.triangle(self.p)
        out[..., i, j] = self.data
        out[..., j, i] = self.data
        return out

    # -- the linear maps ------------------------------------------------------------------------
    def combine(self, weights: np.ndarray) -> np.ndarray:
        """Σ_i w_i μ_i: weights (C,) -> (K, p, p)."""
        C, K, q = self.data.shape
        packed = (weights @ self.data.reshape(C, K * q)).reshape(K, q)
        out = np.empty((K, self.p, self.p))
        i, j = self.triangle(self.p)
        out[:, i, j] = packed
        out[:, j, i] = packed
        return out

    def dot(self, G: np.ndarray) -> np.ndarray:
        """tr(G_k μ_ik) summed over k, for symmetric G (K, p, p) or (p, p): -> (C,)."""
        G = np.asarray(G)
        if G.ndim == 2:
            G = G[None]
        i, j, twice = _triangle(self.p)
        g = twice * 0.5 * (G[:, i, j] + G[:, j, i])  # (K, q): off-diagonal counted twice
        C = self.data.shape[0]
        return self.data.reshape(C, -1) @ g.ravel()
