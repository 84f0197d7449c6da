"""exact-MC: the FIM as the expected outer product of the score of the marginal likelihood.

For one subject, FIM = E_y[s(y) s(y)ᵀ] with s(y) = ∂/∂α log ∫ p(y | η; θ, σ) p(η; Ω) dη.  By
Fisher's identity the marginal score is the posterior mean of the complete-data score,
s(y) = E[∂/∂α log p(y, η) | y].  We

1. simulate M subjects: η ~ N(0, Ω), y | η ~ N(f(θ, η), diag r(f)) (on the log scale for
   exponential residual error);
2. find each subject's posterior mode η̂ by damped Gauss–Newton (batched over subjects) and the
   curvature H = Lᵀ R⁻¹ L + Ω⁻¹ there;
3. estimate the posterior mean of the complete-data score by self-normalised importance sampling
   with a multivariate-t proposal (ν = 5) centred at η̂ with scale H⁻¹ — adaptive importance
   sampling, robust to posteriors with heavier tails than a Gaussian;
4. average s sᵀ over subjects, each s sᵀ estimated by the symmetrised product of two independent
   half-sample estimates ŝ₁, ŝ₂ (the square of a single estimate is biased upwards by its IS
   variance, which for the θ components is large); the Monte-Carlo standard error of each
   element is the standard deviation of that product over subjects divided by √M.

Importance sampling has a bias of order 1/S (S samples per subject); the effective sample sizes
are reported so that a user can judge it.  Everything is batched: the kernels see M·S parameter
vectors in one call.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelSpecError
from .predict import predict

NU = 5.0  # degrees of freedom of the t proposal


def _resid_and_slope(pp, idx, f):
    return pp.residual.variance(idx, f**2, f), pp.residual.slope(idx, f)


def _neg_log_joint(pp, idx, y, f, eta, Oi):
    r = pp.residual.variance(idx, f**2, f)
    return 0.5 * np.sum((y - f) ** 2 / r + np.log(r), axis=1) + 0.5 * np.einsum("bi,ij,bj->b", eta, Oi, eta)


def posterior_modes(model, pp, t, idx, regimen, y, Oi, iterations: int = 30, where: str = ""):
    """Posterior modes η̂ (M, n_eta) and Gauss–Newton curvatures H (M, n_eta, n_eta)."""
    M, E = y.shape[0], pp.n_eta
    eta = np.zeros((M, E))
    for _ in range(iterations):
        P = predict(model, pp, eta, t, idx, regimen, 1, where)
        r, drdf = _resid_and_slope(pp, idx, P.f)
        res = y - P.f
        w = -res / r + 0.5 * (1 / r - res**2 / r**2) * drdf
        grad = np.einsum("bn,bnj->bj", w, P.L) + eta @ Oi
        H = np.einsum("bni,bn,bnj->bij", P.L, 1 / r + 0.5 * drdf**2 / r**2, P.L) + Oi
        step = -np.linalg.solve(H, grad[..., None])[..., 0]
        f0 = _neg_log_joint(pp, idx, y, P.f, eta, Oi)
        alpha = np.ones(M)
        todo = np.ones(M, dtype=bool)
        for _half in range(8):
            trial = eta[todo] + alpha[todo, None] * step[todo]
            ft = predict(model, pp, trial, t, idx, regimen, 0, where).f
            ok = _neg_log_joint(pp, idx, y[todo], ft, trial, Oi) <= f0[todo] + 1e-12
            ids = np.flatnonzero(todo)
            eta[ids[ok]] = trial[ok]
            todo[ids[ok]] = False
            alpha[todo] *= 0.5
            if not todo.any():
                break
        if np.max(np.abs(alpha[:, None] * step)) < 1e-8:
            break
    P = predict(model, pp, eta, t, idx, regimen, 1, where)
    r, drdf = _resid_and_slope(pp, idx, P.f)
    H = np.einsum("bni,bn,bnj->bij", P.L, 1 / r + 0.5 * drdf**2 / r**2, P.L) + Oi
    return eta, H


def exact_mc_scores(model, pp, t, idx, regimen, n_subjects: int, n_is: int, rng, where: str = ""):
    """Two independent estimates of the marginal score of each simulated subject.

    Returns ``(halves, ess)``: halves (M, 2, p), each half the self-normalised importance-sampling
    estimate from n_is/2 samples; ess (M,) the effective sample sizes.  The product of the two
    halves estimates s sᵀ without the positive bias Var(ŝ) that the square of one estimate has.
    """
    E, n, pt = pp.n_eta, t.size, pp.p_theta
    n_is = 2 * max(1, n_is // 2)
    Om = pp.omega
    try:
        Cm = np.linalg.cholesky(Om)
    except np.linalg.LinAlgError:
        raise ModelSpecError("exact-mc needs a positive definite Omega (every variance > 0)") from None
    Oi = np.linalg.inv(Om)
    M = n_subjects
    eta_true = rng.standard_normal((M, E)) @ Cm.T
    f_true = predict(model, pp, eta_true, t, idx, regimen, 0, where).f
    y = f_true + np.sqrt(pp.residual.variance(idx, f_true**2, f_true)) * rng.standard_normal((M, n))

    mode, H = posterior_modes(model, pp, t, idx, regimen, y, Oi, where=where)
    Ch = np.linalg.cholesky(np.linalg.inv(H))  # (M, E, E)
    z = rng.standard_normal((M, n_is, E))
    u = rng.chisquare(NU, size=(M, n_is))
    eta = mode[:, None, :] + np.einsum("mij,msj->msi", Ch, z) / np.sqrt(u / NU)[..., None]
    log_q = -0.5 * (NU + E) * np.log1p(np.sum(z**2, axis=2) / u)  # + per-subject constants
    eta = eta.reshape(M * n_is, E)
    P = predict(model, pp, eta, t, idx, regimen, 1, where)
    f = P.f
    yr = np.repeat(y, n_is, axis=0)
    r, drdf = _resid_and_slope(pp, idx, f)
    res = yr - f
    log_joint = -_neg_log_joint(pp, idx, yr, f, eta, Oi)
    logw = (log_joint.reshape(M, n_is) - log_q).reshape(M, 2, n_is // 2)
    logw -= logw.max(axis=2, keepdims=True)
    w = np.exp(logw)
    w /= w.sum(axis=2, keepdims=True)
    ess = np.sum(1.0 / np.sum(w**2, axis=2), axis=1)  # effective sample size, both halves together

    A = res / r
    Bq = 0.5 * (res**2 / r**2 - 1 / r)
    scores = np.zeros((M * n_is, pp.p))
    scores[:, :pt] = np.einsum("bn,bnm->bm", A + Bq * drdf, P.fth)
    k = pt
    Oe = eta @ Oi
    for i, j in pp.omega_free:
        g = Oe[:, i] * Oe[:, j] - Oi[i, j]
        scores[:, k] = 0.5 * g if i == j else g
        k += 1
    for g in pp.residual.columns(idx, f**2, f):
        scores[:, k] = np.sum(Bq * g, axis=1)
        k += 1
    halves = np.einsum("mhs,mhsp->mhp", w, scores.reshape(M, 2, n_is // 2, pp.p))
    return halves, ess
