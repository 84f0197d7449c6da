"""The FO marginal likelihood of one group of simulated subjects and its exact gradient, compiled (the SSE
estimator's objective, :mod:`pkdesign.reestimation`).

m subjects share one design, so one prediction f (n,) and L = ∂f/∂η (n, E) at η = 0: y_i ~ N(f, V) with
V = L Ω Lᵀ + R(f), the model behind the FO FIM.  With e_i = y_i − f, S = Σ_i e_i e_iᵀ and e_sum = Σ_i e_i:

    NLL = ½ tr(V⁻¹ S) + ½ m ln det V        (the constant ½ m n ln 2π left out)
    ∂NLL/∂α_a = −∂μ/∂α_aᵀ V⁻¹ e_sum + ½ tr(K ∂V/∂α_a),   K = m V⁻¹ − V⁻¹ S V⁻¹,

for the FIM's parameters α (estimated θ, Ω entries, residual variances, in the FIM's order).  V and ∂V are
built by the FO FIM kernel's own builders (:mod:`pkdesign.kernels.normal_fim`: the same V, the same ∂V), so
the likelihood and the FIM describe one model; ∂V/∂ω_kk is rank one (L_k L_kᵀ: u_kᵀ K u_k), ∂V/∂σ²
diagonal.
"""

import hashlib
from pathlib import Path

import numpy as np

from . import normal_fim
from .jit import CachedJit, GuardedKernel, rebind
from .normal_fim import (add_residual_variance, cholesky_inverse, clear_derivatives, derivative_kinds,
                         linearised_variance, omega_derivatives, residual_derivatives, row_work, theta_derivatives,
                         unit_variance_if_silent)

_GUARD = CachedJit(label="FO likelihood kernel")


def _fo_nll(f, fth, L, Lth, omega, om_i, om_j, err_out, err_prop, err_var, err_free, err_ab, idx, S, esum, m,
            grad):  # pragma: no cover - compiled
    """NLL (returned) and its gradient (into grad (p,)) for one group: f (n,), fth (n, pt) = ∂f/∂θ, L (n, E),
    Lth (n, E, pt) = ∂L/∂θ, omega (E, E), om_i/om_j and the residual arrays as for the FO FIM kernel, idx (n,),
    S (n, n) = Σ_i e_i e_iᵀ, esum (n,) = Σ_i e_i, m subjects.  NaN (grad untouched) when V is not positive
    definite."""
    n, E = L.shape
    pt = fth.shape[1]
    n_om = om_i.shape[0]
    p = grad.shape[0]
    LO, V, Sd, dV, C, Ci, Vi = row_work(n, E, p)
    # dense θ and covariances, rank-one variances, diagonal σ² (FO: no interaction; V depends on θ: "full")
    kind = derivative_kinds(p, pt, om_i, om_j, False, True)
    linearised_variance(L, omega, LO, V, Sd)
    clear_derivatives(dV, kind)
    add_residual_variance(V, f, Sd, idx, err_out, err_prop, err_var, err_ab, False)
    theta_derivatives(dV, Lth, LO, f, fth, idx, err_out, err_prop, err_var, err_ab, False)
    omega_derivatives(dV, L, om_i, om_j, kind, pt, idx, err_out, err_prop, err_var, False)
    residual_derivatives(dV, f, Sd, pt + n_om, idx, err_out, err_prop, err_var, err_free, err_ab, False)
    unit_variance_if_silent(fth, V, dV, kind)  # as the FIM does: a pre-dose sample under a proportional-only error
    if not cholesky_inverse(V, C, Ci, Vi):
        return np.nan
    # K = m V⁻¹ − V⁻¹ S V⁻¹ (symmetric); the value from tr(V⁻¹ S) and ln det V = 2 Σ ln C_jj
    VS = Vi @ S
    K = m * Vi - VS @ Vi
    nll = 0.0
    for i in range(n):
        nll += 0.5 * VS[i, i] + m * np.log(C[i, i])
    w = Vi @ esum
    for a in range(p):
        g = 0.0
        if a < pt:
            for i in range(n):
                g -= fth[i, a] * w[i]
        t = 0.0
        if kind[a] == 2:
            for i in range(n):
                s = 0.0
                for j in range(n):
                    s += K[i, j] * dV[a, 0, j]
                t += dV[a, 0, i] * s
        elif kind[a] == 1:
            for i in range(n):
                t += K[i, i] * dV[a, i, i]
        else:
            for i in range(n):
                for j in range(n):
                    t += K[i, j] * dV[a, i, j]
        grad[a] = g + 0.5 * t
    return nll


#: numba's cache key holds ``_fo_nll``'s own bytecode and this file's digest, not the builders it inlines from
#: normal_fim.py: the compiled function is named after a digest of both sources, so that an edited or upgraded
#: normal_fim.py gets new cache entries instead of loading machine code built from the old builders
SOURCES = hashlib.sha256(Path(normal_fim.__file__).read_bytes() + Path(__file__).read_bytes()).hexdigest()[:12]
fo_nll = GuardedKernel(_GUARD, _GUARD.jit(rebind(_fo_nll, f"_fo_nll_{SOURCES}"), nogil=True, error_model="numpy"))
