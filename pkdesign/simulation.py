"""Simulating observations from a model: individual parameters from Ω, residual error from σ.

``simulate(model, regimen, times, output, n, seed)`` draws ``n`` subjects (η ~ N(0, Ω) through each
parameter's random-effect model) and returns their predictions and, with ``residual=True``,
observations y = f + ε with Var ε = σ²_add + σ²_prop f² (the model's residual error; for a
log-scale (exponential) error the output is on the log scale already, so ε is additive there).
Seeded: same seed, same numbers.  Used by the prediction-interval plots and the dataset export.
"""

from __future__ import annotations

import numpy as np

from .errors import DesignError


def simulate(model, regimen, times, output=None, n: int = 500, seed=0, *, residual: bool = True,
             values: dict | None = None, common_epsilon: bool = False, covariates: dict | None = None,
             occasions=None) -> np.ndarray:
    """Simulated observations (or predictions) of ``n`` subjects: ndarray (n, len(times)).

    Parameters
    ----------
    model : a compiled, ODE or callable model
    regimen : Regimen (doses; None for no dose)
    times : ndarray (m,) sampling times (model time units), sorted, >= 0
    output : output name or index (default: the first output)
    n : number of subjects (>= 1)
    seed : int or numpy SeedSequence
    residual : add the residual error (False: individual predictions only)
    values : parameter values to use instead of the model's (names as in the FIM)
    common_epsilon : one standard-normal ε per subject for all its times (each time's distribution is the
        same; the quantiles over subjects then vary smoothly in time: prediction bands)
    covariates : values of the model's covariates for these subjects (name -> number)
    occasions : occasion start times (inter-occasion variability: a κ per occasion; None or empty: one occasion)
    """
    from .regimen import check_times
    from .fim.draws import draw_eta
    from .fim.params import population_parameters
    from .model.runtime import output_index

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 10_000_000:
        raise DesignError(f"simulate: n must be a whole number from 1 to 10000000, got {n!r}")
    spec = model.spec
    t = check_times(times, "simulate: times")
    idx = output_index(output, t.size, spec.output_names)
    pp = population_parameters(spec, {**(values or {}), **(covariates or {})} or None)
    pp = pp.for_occasions(occasions)  # with IOV: one κ per occasion (and one occasion when none are given)
    rng_eta, rng_eps = np.random.SeedSequence(seed).spawn(2) if not isinstance(seed, np.random.SeedSequence) \
        else seed.spawn(2)
    eta = draw_eta(pp.omega, n, rng_eta) if pp.omega.shape[0] else np.zeros((n, 0))
    if pp.eta_occ is None:
        f = np.asarray(model.evaluate(pp.psi(eta), t, regimen, idx, order=0)["f"], dtype=float).reshape(n, t.size)
    else:  # each occasion's samples see the between-subject η's and that occasion's κ's
        occ = pp.occasion_of(t)
        f = np.empty((n, t.size))
        for o in np.unique(occ):
            sel = occ == o
            psi = pp.psi(eta, (pp.eta_occ < 0) | (pp.eta_occ == o))
            f[:, sel] = np.asarray(model.evaluate(psi, t[sel], regimen, idx[sel], order=0)["f"]).reshape(n, -1)
    if not residual:
        return f
    res = pp.residual
    sd = np.sqrt(np.maximum(res.variance(idx, f * f, f), 0.0))
    rng = np.random.default_rng(rng_eps)
    z = rng.standard_normal((n, 1)) if common_epsilon else rng.standard_normal(f.shape)
    return f + sd * z
