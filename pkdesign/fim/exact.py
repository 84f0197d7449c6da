"""exact-MC: the FIM as the expected outer product of the score of the marginal likelihood.

For one subject, FIM = E_y[s(y) s(y)ᵀ] with s(y) = ∂/∂α log ∫ p(y | η; θ, σ) p(η; Ω) dη.  By
Fisher's identity the marginal score is the posterior mean of the complete-data score,
s(y) = E[∂/∂α log p(y, η) | y].  We

1. simulate M subjects: η ~ N(0, Ω), y | η ~ N(f(θ, η), diag r(f)) (on the log scale for
   exponential residual error), from randomised quasi-random normal numbers (see ``ExactMC``);
2. find each subject's posterior mode η̂ by damped Gauss–Newton (batched over subjects, started at the
   simulated η) and the curvature H = Lᵀ R⁻¹ L + Ω⁻¹ there;
3. estimate the posterior mean of the complete-data score by self-normalised importance sampling
   with a multivariate-t proposal (ν = 5) centred at η̂ with scale H⁻¹ — adaptive importance
   sampling, robust to posteriors with heavier tails than a Gaussian — in antithetic pairs η̂ ± δ;
4. average s sᵀ over subjects, each s sᵀ estimated by the symmetrised product of two independent
   half-sample estimates ŝ₁, ŝ₂ (the square of a single estimate is biased upwards by its IS
   variance, which for the θ components is large).

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


def _curvature(pp, idx, P, Oi):
    r, drdf = _resid_and_slope(pp, idx, P.f)
    return r, drdf, np.einsum("bni,bn,bnj->bij", P.L, 1 / r + 0.5 * drdf**2 / r**2, P.L) + Oi


def posterior_modes(model, pp, t, idx, regimen, y, Oi, start=None, iterations: int = 30, tol: float = 1e-4,
                    where: str = ""):
    """Posterior modes η̂ (M, n_eta) and Gauss–Newton curvatures H (M, n_eta, n_eta) there.

    Damped Gauss–Newton from ``start`` (M, n_eta; default 0), each subject iterated until its step is below
    ``tol`` (the modes centre importance-sampling proposals, whose weights correct any inaccuracy)."""
    M, E = y.shape[0], pp.n_eta
    eta = np.zeros((M, E)) if start is None else np.array(start, dtype=float)
    active = np.arange(M)
    for _ in range(iterations):
        ya, ea = y[active], eta[active]
        P = predict(model, pp, ea, t, idx, regimen, 1, where)
        r, drdf, H = _curvature(pp, idx, P, Oi)
        res = ya - P.f
        w = -res / r + 0.5 * (1 / r - res**2 / r**2) * drdf
        grad = np.einsum("bn,bnj->bj", w, P.L) + ea @ Oi
        step = -np.linalg.solve(H, grad[..., None])[..., 0]
        f0 = _neg_log_joint(pp, idx, ya, P.f, ea, Oi)
        alpha = np.ones(active.size)
        todo = np.ones(active.size, dtype=bool)
        for _half in range(8):
            trial = ea[todo] + alpha[todo, None] * step[todo]
            ft = predict(model, pp, trial, t, idx, regimen, 0, where).f
            ok = _neg_log_joint(pp, idx, ya[todo], ft, trial, Oi) <= f0[todo] + 1e-12
            ids = np.flatnonzero(todo)
            ea[ids[ok]] = trial[ok]
            todo[ids[ok]] = False
            alpha[todo] *= 0.5
            if not todo.any():
                break
        eta[active] = ea
        moving = np.max(np.abs(alpha[:, None] * step), axis=1) >= tol
        active = active[moving]
        if active.size == 0:
            break
    P = predict(model, pp, eta, t, idx, regimen, 1, where)
    return eta, _curvature(pp, idx, P, Oi)[2]


def importance_draws(n_subjects: int, n_is: int, n_eta: int, rng) -> tuple:
    """The random numbers of the importance samples of ``n_subjects`` subjects: (z (M, 2, q, n_eta), u (M, 2, q))
    with q = n_is/4 (two halves of q antithetic pairs; ``n_is`` rounded up to a multiple of 4)."""
    q = max(1, -(-n_is // 4))
    return rng.standard_normal((n_subjects, 2, q, n_eta)), rng.chisquare(NU, size=(n_subjects, 2, q))


def exact_mc_scores(model, pp, t, idx, regimen, normals, draws: tuple, where: str = ""):
    """Two independent estimates of the marginal score of each simulated subject.

    ``normals`` (M, n_eta + n_obs) are the standard normal numbers of the M subjects (quasi-random: see
    :class:`~pkdesign.fim.approximations.ExactMC`): η = A z[:, :n_eta] with A Aᵀ = Ω, and the standardised
    residuals z[:, n_eta:].  ``draws`` (:func:`importance_draws`) are the random numbers of the importance samples,
    used in antithetic pairs (z, −z) around the mode, which cancels the odd terms of the score around it.  Each
    subject's result depends only on its own row of ``normals`` and ``draws``, not on the others in the batch.

    Returns ``(halves, ess)``: halves (M, 2, p), each half the self-normalised importance-sampling
    estimate from n_is/2 samples; ess (M,) the effective sample sizes.  The product of the two
    halves estimates s sᵀ without the positive bias Var(ŝ) that the square of one estimate has.
    """
    E = pp.n_eta
    z, u = draws
    q = z.shape[2]
    n_is = 4 * q  # two halves of q antithetic pairs
    Om = pp.omega
    try:
        Cm = np.linalg.cholesky(Om)
    except np.linalg.LinAlgError:
        raise ModelSpecError("exact-mc needs a positive definite Omega (every variance > 0)") from None
    Oi = np.linalg.inv(Om)
    M = normals.shape[0]
    eta_true = normals[:, :E] @ Cm.T
    f_true = predict(model, pp, eta_true, t, idx, regimen, 0, where).f
    y = f_true + np.sqrt(pp.residual.variance(idx, f_true**2, f_true)) * normals[:, E:]

    # the simulated η is a draw from its own posterior: a start close to the mode (any start gives the same
    # mode; only the importance weights depend on the proposal, and they are exact for any centre)
    mode, H = posterior_modes(model, pp, t, idx, regimen, y, Oi, start=eta_true, where=where)
    Ch = np.linalg.cholesky(np.linalg.inv(H))  # (M, E, E)
    z = np.concatenate([z, -z], axis=2).reshape(M, n_is, E)
    u = np.concatenate([u, u], axis=2).reshape(M, n_is)
    eta = mode[:, None, :] + np.einsum("mij,msj->msi", Ch, z) / np.sqrt(u / NU)[..., None]
    log_q = -0.5 * (NU + E) * np.log1p(np.sum(z**2, axis=2) / u)  # + per-subject constants
    eta = eta.reshape(M * n_is, E)
    P = predict(model, pp, eta, t, idx, regimen, 1, where)
    yr = np.repeat(y, n_is, axis=0)
    log_joint = -_neg_log_joint(pp, idx, yr, P.f, eta, Oi)
    logw = (log_joint.reshape(M, n_is) - log_q).reshape(M, 2, n_is // 2)
    logw -= logw.max(axis=2, keepdims=True)
    w = np.exp(logw)
    w /= w.sum(axis=2, keepdims=True)
    ess = np.sum(1.0 / np.sum(w**2, axis=2), axis=1)  # effective sample size, both halves together
    scores = complete_data_scores(pp, idx, yr, P.f, P.fth, eta, Oi)
    halves = np.einsum("mhs,mhsp->mhp", w, scores.reshape(M, 2, n_is // 2, pp.p))
    return halves, ess


def complete_data_scores(pp, idx, y, f, fth, eta, Oi) -> np.ndarray:
    """∂/∂α log p(y, η) (B, p) at B pairs (y (B, n), η (B, n_eta)), from the predictions f (B, n) and their
    θ-derivatives fth (B, n, p_theta); α = (θ, Ω entries, σ²)."""
    r, drdf = _resid_and_slope(pp, idx, f)
    res = y - f
    A = res / r
    Bq = 0.5 * (res**2 / r**2 - 1 / r)
    pt = pp.p_theta
    scores = np.zeros((f.shape[0], pp.p))
    scores[:, :pt] = np.einsum("bn,bnm->bm", A + Bq * drdf, fth)
    k = pt
    Oe = eta @ Oi
    for i, j in pp.omega_free:
        g = Oe[:, i] * Oe[:, j] - Oi[i, j]
        scores[:, k] = 0.5 * g if i == j else g
        k += 1
    for g in pp.residual.columns(idx, f**2, f):
        scores[:, k] = np.sum(Bq * g, axis=1)
        k += 1
    return scores
