"""The Fisher information of a normal model, batched.

For y ~ N(μ(α), V(α)) with n observations and parameters α (p of them):

    FIM_ab = ∂μᵀ/∂α_a V⁻¹ ∂μ/∂α_b + ½ tr(V⁻¹ ∂V/∂α_a V⁻¹ ∂V/∂α_b).

With the Cholesky factor V = C Cᵀ and the whitened derivatives G = C⁻¹ ∂μ, W_a = C⁻¹ ∂V_a C⁻ᵀ
(symmetric), the trace term is the Gram matrix ½ ⟨W_a, W_b⟩ of the flattened W_a, so the whole
FIM is two batched matrix products; no Python loop over parameters or batch rows.
"""

from __future__ import annotations

import numpy as np

from ..errors import NonIdentifiableError


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
    try:
        C = np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        raise NonIdentifiableError(
            f"{where}: the covariance of the observations is singular (no residual error and more samples "
            "than random effects, or replicate samples without residual error)"
        ) from None
    Ci = np.linalg.inv(C)
    G = Ci @ dmu
    info_mu = np.swapaxes(G, 1, 2) @ G
    if dV is None:
        return info_mu
    p = dV.shape[1]
    Ci4 = Ci[:, None]
    W = (Ci4 @ dV @ np.swapaxes(Ci4, 2, 3)).reshape(B, p, n * n)
    out = 0.5 * (W @ np.swapaxes(W, 1, 2))
    out[:, :q, :q] += info_mu
    return out
