"""Reproducible draws of random effects η ~ N(0, Ω): Monte Carlo or randomised quasi-Monte Carlo."""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import DesignError, fmt


def check_draws(draws, what: str = "draws") -> int:
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws <= 0:
        raise DesignError(f"{what}: expected a whole number > 0, got {fmt(draws)}")
    return int(draws)


def omega_root(omega: np.ndarray) -> np.ndarray:
    """A matrix A with A Aᵀ = Ω that also works for a singular (PSD) Ω."""
    w, v = np.linalg.eigh(omega)
    return v * np.sqrt(np.clip(w, 0.0, None))


def generator(seed) -> np.random.Generator:
    """A new Generator for ``seed`` (int, None or ``SeedSequence``) that gives the same numbers every time.

    A ``SeedSequence`` is copied first: scipy's scrambled Sobol spawns from the sequence of the Generator it is
    given, which advances a shared ``SeedSequence`` object, so the same seed object would scramble differently
    on each use (and differently in a worker process, which gets a fresh copy)."""
    if isinstance(seed, np.random.SeedSequence):
        seed = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size)
    return np.random.default_rng(seed)


def standard_normal(n: int, d: int, seed, method: str = "mc") -> np.ndarray:
    """(n, d) standard normal draws: ``mc`` (numpy PCG64) or ``qmc`` (scrambled Sobol)."""
    if d == 0:
        return np.zeros((n, 0))
    if method == "mc":
        return generator(seed).standard_normal((n, d))
    if method == "qmc":
        from scipy.stats import norm, qmc  # lazy: scipy.stats takes ~0.8 s to import

        sob = qmc.Sobol(d, scramble=True, rng=generator(seed))
        with warnings.catch_warnings():  # balance properties need 2^m points; any n is still valid
            warnings.simplefilter("ignore", UserWarning)
            u = sob.random(n)
        return norm.ppf(np.clip(u, 1e-16, 1 - 1e-16))
    raise DesignError(f"sampling method: expected 'mc' or 'qmc', got {method!r}")


def draw_eta(omega: np.ndarray, n: int, seed, method: str = "mc") -> np.ndarray:
    """(n, n_eta) draws of η ~ N(0, Ω)."""
    z = standard_normal(check_draws(n), omega.shape[0], seed, method)
    return z @ omega_root(omega).T
