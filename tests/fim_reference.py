"""Independent, slow twins of the FIM approximations, written straight from their definitions.

Warfarin (one compartment, first-order absorption, exponential IIV on CL, V, KA, combined or
proportional error).  The population parameters α = (CL, V, KA, ω²_CL, ω²_V, ω²_KA, σ² terms) enter
through explicit functions μ(α) and V(α); the FIM  Jμᵀ V⁻¹ Jμ + ½ tr(V⁻¹ ∂V V⁻¹ ∂V)  is taken with
complex-step derivatives in α (exact to rounding) and central differences in η where the
definition needs L = ∂f/∂η.  Nothing here shares code with pkdesign's FIM modules.
"""

from __future__ import annotations

import numpy as np

DOSE = 70.0


def warfarin_f(theta, eta, t):
    """Prediction for θ (3,), η (3,) at times t (n,); complex-safe."""
    cl, v, ka = (theta[k] * np.exp(eta[k]) for k in range(3))
    k = cl / v
    return DOSE / v * ka / (ka - k) * (np.exp(-k * t) - np.exp(-ka * t))


def _L(theta, eta, t, h=1e-6):
    cols = []
    for j in range(3):
        e1, e2 = np.array(eta, dtype=complex), np.array(eta, dtype=complex)
        e1[j] += h
        e2[j] -= h
        cols.append((warfarin_f(theta, e1, t) - warfarin_f(theta, e2, t)) / (2 * h))
    return np.stack(cols, axis=1)


def _unpack(alpha, errors):
    theta = alpha[:3]
    omega = np.diag(alpha[3:6])
    s2 = dict(zip(errors, alpha[6:]))
    return theta, omega, s2


def _resid(s2, f, S_diag=None):
    r = s2.get("add", 0.0) + s2.get("prop", 0.0) * f**2
    if S_diag is not None and "prop" in s2:
        r = r + s2["prop"] * S_diag
    return r


def linearized_moments(alpha, t, eta_star, errors, interaction, resid_at_star):
    theta, omega, s2 = _unpack(alpha, errors)
    L = _L(theta, eta_star, t)
    fs = warfarin_f(theta, np.asarray(eta_star, dtype=complex), t)
    mu = fs - L @ np.asarray(eta_star)
    S = L @ omega @ L.T
    f_ref = fs if resid_at_star else warfarin_f(theta, np.zeros(3, dtype=complex), t)
    r = _resid(s2, f_ref, np.diag(S) if interaction else None)
    return mu, S + np.diag(r)


def quadrature_moments(alpha, t, errors, nodes=24):
    """Marginal mean and covariance over η by tensor Gauss–Hermite quadrature (MC approximation's limit)."""
    theta, omega, s2 = _unpack(alpha, errors)
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    X = np.stack(np.meshgrid(x, x, x, indexing="ij"), -1).reshape(-1, 3)
    W = np.prod(np.stack(np.meshgrid(w, w, w, indexing="ij"), -1).reshape(-1, 3), axis=1)
    sd = np.sqrt(np.diag(omega).astype(complex))
    eta = X * sd
    cl, v, ka = (theta[k] * np.exp(eta[:, k]) for k in range(3))
    kk = cl / v
    F = (DOSE / v * ka / (ka - kk))[:, None] * (np.exp(-kk[:, None] * t) - np.exp(-ka[:, None] * t))
    m = W @ F
    Eff = (F * W[:, None]).T @ F
    r = s2.get("add", 0.0) + s2.get("prop", 0.0) * np.diag(Eff)
    return m, Eff - np.outer(m, m) + np.diag(r)


def fim_from_moments(moments, alpha, p_mean=None, reduced_theta=False, h=1e-20):
    """Normal FIM with complex-step Jacobians of μ(α), V(α)."""
    alpha = np.asarray(alpha, dtype=float)
    mu0, V0 = moments(alpha.astype(complex))
    V0 = V0.real
    Vi = np.linalg.inv(V0)
    dmu, dV = [], []
    for a in range(alpha.size):
        x = alpha.astype(complex)
        x[a] += 1j * h
        mu, V = moments(x)
        dmu.append(mu.imag / h)
        dV.append(V.imag / h)
    p = alpha.size
    F = np.zeros((p, p))
    for a in range(p):
        for b in range(p):
            F[a, b] = dmu[a] @ Vi @ dmu[b] + 0.5 * np.trace(Vi @ dV[a] @ Vi @ dV[b])
    if reduced_theta:  # drop ∂V/∂θ (and the θ–variance cross blocks)
        for a in range(p):
            for b in range(p):
                if a < 3 and b < 3:
                    F[a, b] = dmu[a] @ Vi @ dmu[b]
                elif a < 3 or b < 3:
                    F[a, b] = 0.0
    return F
