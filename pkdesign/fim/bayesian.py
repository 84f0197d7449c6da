"""The Bayesian (MAP) individual FIM and the shrinkage it predicts; checking a prior FIM.

For one subject with population parameters known, the information on its random effects η (the MAP
estimation problem) is

    M_B = M_η + Ω⁻¹,    M_η = Lᵀ R⁻¹ L + ½ Σ_i (∂r_i/∂f_i)² L_iᵀ L_i / r_i²,

L = ∂f/∂η at η = 0 (n × E), R = diag(r) the residual variances at the typical prediction (the second
term, the information in the variance of a proportional error, is dropped with
``variance_term=False``).  The predicted shrinkage of η_k is [M_B⁻¹]_kk / ω_kk: the posterior variance
of the MAP estimate as a fraction of the prior variance (Combes, Retout, Frey & Mentré 2013, Pharm Res
30:2355-2367, as computed by PFIM's Bayesian FIM and PopED's ``shrinkage``).
"""

from __future__ import annotations

import numpy as np

from ..errors import DesignError, NonIdentifiableError
from .result import FIMResult


def bayesian_fim(model, times, regimen=None, output=None, *, values: dict | None = None,
                 variance_term: bool = True) -> FIMResult:
    """The Bayesian individual FIM M_B (E × E) over the random effects of ``model`` for one schedule.

    Names are ``eta(CL)``...; ``values`` the ω² (variance scale); ``info["shrinkage"]`` maps each to its
    predicted shrinkage (0: the data determine η; 1: only the prior does).
    """
    from ..regimen import check_times
    from ..model.runtime import output_index
    from .params import population_parameters
    from .predict import predict

    spec = model.spec
    pp = population_parameters(spec, values)
    if pp.n_eta == 0:
        raise DesignError(f"model {spec.name!r} has no random effects: a Bayesian FIM needs Omega")
    iov = [v.parameter for v in getattr(spec, "occasion_variability", ())]
    if iov:  # the κ's of the schedule's occasions are random effects too: ignoring them would understate shrinkage
        raise DesignError(f"model {spec.name!r} has inter-occasion variability on {', '.join(iov)}: the Bayesian "
                          "(MAP) FIM and shrinkage do not handle occasions yet (the FIM approximations do)")
    t = check_times(times, "times")
    idx = output_index(output, t.size, spec.output_names)
    P = predict(model, pp, np.zeros(pp.n_eta), t, idx, regimen, 1, "Bayesian FIM")
    f, L = P.f[0], P.L[0]
    r = pp.residual.variance(idx, f * f, f)
    if np.any(r <= 0):
        raise NonIdentifiableError("Bayesian FIM: a sample has zero residual variance; add an additive error term")
    M = L.T @ (L / r[:, None])
    if variance_term:
        s = pp.residual.slope(idx, f)
        M += 0.5 * L.T @ (L * (s * s / (r * r))[:, None])
    try:
        prior = np.linalg.inv(pp.omega)
    except np.linalg.LinAlgError:
        raise NonIdentifiableError("Bayesian FIM: Omega is singular") from None
    MB = M + prior
    post = np.linalg.inv(MB)
    vnames = [spec.parameter_names[k] for k in pp.eta_par]
    names = tuple(f"eta({n})" for n in vnames)
    shrink = {n: float(post[k, k] / pp.omega[k, k]) for k, n in enumerate(names)}
    logs = tuple(n for n, m in zip(names, pp.eta_model) if m == "exponential")
    return FIMResult(names, 0.5 * (MB + MB.T), np.zeros(len(names)), "bayesian", "full" if variance_term else
                     "reduced", log_scale=logs, info={"shrinkage": shrink, "notes": [
                         "SE of eta is the posterior SD of its MAP estimate; for exponential random effects RSE% is "
                         "100*SE, the approximate CV% of the individual parameter"]})


def prior_matrix(names, prior) -> np.ndarray:
    """The information of a previous study as a symmetric (p, p) matrix in the order of ``names``, checked: a
    FIMResult with the same parameters, or a finite, symmetric, positive semi-definite (p, p) array."""
    names = tuple(names)
    if isinstance(prior, FIMResult):
        if tuple(prior.names) != names:
            raise DesignError(f"prior_fim: parameters {list(prior.names)} differ from the FIM's {list(names)}")
        P = prior.matrix
    else:
        P = np.asarray(prior, dtype=float)
    p = len(names)
    if P.shape != (p, p) or not np.all(np.isfinite(P)):
        raise DesignError(f"prior_fim: expected a finite {(p, p)} matrix in the order {list(names)}, "
                          f"got shape {P.shape}")
    if not np.allclose(P, P.T, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(P).max())):
        raise DesignError("prior_fim: the matrix is not symmetric")
    if np.linalg.eigvalsh(0.5 * (P + P.T)).min() < -1e-10 * max(1.0, np.abs(P).max()):
        raise DesignError("prior_fim: the matrix is not positive semi-definite (not an information matrix)")
    return 0.5 * (P + P.T)
