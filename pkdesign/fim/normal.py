"""The Fisher information of a normal model, batched.

For y ~ N(μ(α), V(α)) with n observations and parameters α (p of them):

    FIM_ab = ∂μᵀ/∂α_a V⁻¹ ∂μ/∂α_b + ½ tr(V⁻¹ ∂V/∂α_a V⁻¹ ∂V/∂α_b).

The work is done by one numba kernel (``pkdesign.kernels.normal_fim``) that loops over batch
rows in parallel; no Python loop over parameters, observations or batch rows.
"""

from __future__ import annotations

import numpy as np

from ..errors import NonIdentifiableError
from ..kernels.normal_fim import normal_fim_kernel


def normal_fim(dmu: np.ndarray, V: np.ndarray, dV: np.ndarray | None, where: str = "") -> np.ndarray:
    """Batched normal-model FIM.

    Parameters
    ----------
    dmu : ndarray (B, n, q)
        Derivatives of the mean with respect to the first q parameters (the rest have none).
    V : ndarray (B, n, n)
        Covariance of the observations (symmetric positive definite).
    dV : ndarray (B, p, n, n) or None
        Derivatives of V with respect to all p parameters (None: mean term only, p = q).

    Returns
    -------
    ndarray (B, p, p)
    """
    B, n, q = dmu.shape
    p = q if dV is None else dV.shape[1]
    if dV is None:
        dV = np.zeros((B, p, n, n))
    out = np.empty((B, p, p))
    normal_fim_kernel(np.ascontiguousarray(dmu, dtype=float), np.ascontiguousarray(V, dtype=float),
                      np.ascontiguousarray(dV, dtype=float), out)
    if np.isnan(out).any():
        raise NonIdentifiableError(
            f"{where}: the covariance of the observations is singular (no residual error and more samples "
            "than random effects, or replicate samples without residual error)"
        )
    return out
