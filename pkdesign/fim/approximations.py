"""The FIM approximations as objects with one interface.

Each approximation (``FO``, ``FOI``, ``FOCE``, ``FOCEI``, ``MC``, ``ExactMC``) turns one subject's
sampling schedule into a per-subject FIM through ``subject(...)``, which returns a small named
result (:class:`SubjectFIM`).  The ones that evaluate many candidate schedules in one batch
(``batched``; FO and FOI today) also have ``schedules(...)``, which design searches use.
``get_approximation(name)`` looks one up by the names in :mod:`pkdesign.choices`; a new
approximation is a subclass registered in ``APPROXIMATION_OBJECTS``.

Shapes: ``times`` and ``idx`` (n,) observation times and output indices of one subject;
``times`` (B, n) for ``schedules``; results (p, p) or (B, p, p) in FIM parameter order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..choices import APPROXIMATIONS, BATCHED_APPROXIMATIONS
from ..errors import DesignError, PkdesignError
from ..executors import gather, submit
from .draws import check_draws, draw_eta, generator
from .exact import exact_mc_scores, importance_draws
from .linearized import fo_fims, linearized_fims
from .montecarlo import add_moments, mc_fim, mc_fim_from_moments, mc_moments
from .predict import Predictions, predict
from .structured import StructuredFIM

#: observations per chunk when one subject has very many samples (FO/FOI: bounded memory)
CHUNK = 65536
#: importance samples per simulated subject (exact-mc; antithetic pairs, rounded up to a multiple of 4)
DEFAULT_IS_SAMPLES = 40


@dataclass(frozen=True)
class SubjectFIM:
    """Per-subject FIM of one schedule.

    matrix (p, p); for exact-MC also mc_se (p, p) the Monte-Carlo SE of each element, ess (K,) the
    importance-sampling effective sample sizes, samples (R, p, p) independent, identically distributed
    estimates whose mean is ``matrix`` (the replicates of a randomised quasi-Monte-Carlo estimate), from which
    the SE of any smooth function of the FIM follows (the delta method of ``evaluate_fim``)."""

    matrix: np.ndarray
    mc_se: np.ndarray | None = None
    ess: np.ndarray | None = None
    samples: np.ndarray | None = None


class Approximation:
    """Base class: ``name``, ``batched`` (has ``schedules``), ``default_draws`` (None: deterministic),
    ``reduced`` (has a reduced, block-diagonal form), ``parallel_draws`` (``subject`` takes ``executor=`` and runs
    its chunks of draws or simulated subjects there)."""

    name = ""
    batched = False
    parallel_draws = False
    default_draws: int | None = None
    reduced = True
    default_sampling = "mc"

    def subject(self, model, pp, times, idx, regimen, full: bool, *, draws=None, seed=0, sampling=None,
                is_samples: int = DEFAULT_IS_SAMPLES, where: str = "") -> SubjectFIM:
        raise NotImplementedError

    def schedules(self, model, pp, times, idx, regimen, full: bool, where: str = "", *, draws=None,
                  seed=0) -> np.ndarray:
        raise PkdesignError(f"approximation {self.name!r} does not evaluate candidate schedules in a batch; "
                            f"batched: {list(BATCHED_APPROXIMATIONS)}")

    def draws(self, draws) -> int:
        return check_draws(draws if draws is not None else self.default_draws, "draws")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class FO(Approximation):
    """First order: linearised at η = 0 (PopED/PFIM FO)."""

    name, batched, interaction = "fo", True, False

    def subject(self, model, pp, times, idx, regimen, full, *, draws=None, seed=0, sampling=None,
                is_samples=DEFAULT_IS_SAMPLES, where=""):
        order = 2 if full else 1
        zero = np.zeros(pp.n_eta)
        if times.size > CHUNK:  # dense sampling: predictions and sums chunk by chunk, bounded memory
            acc = StructuredFIM(pp, full=full, interaction=self.interaction)
            for lo in range(0, times.size, CHUNK):
                sl = slice(lo, lo + CHUNK)
                P = predict(model, pp, zero, times[sl], idx[sl], regimen, order, where)
                acc.add(idx[sl], P.fth[0], P.f[0], P.fth[0], P.L[0], P.Lth[0] if full else None, times[sl], where)
            return SubjectFIM(acc.result())
        P0 = predict(model, pp, zero, times, idx, regimen, order, where)
        return SubjectFIM(fo_fims(pp, idx, P0, interaction=self.interaction, full=full, where=where, times=times)[0])

    def schedules(self, model, pp, times, idx, regimen, full, where="", *, draws=None, seed=0):
        P = predict(model, pp, np.zeros(pp.n_eta), times, idx, regimen, 2 if full else 1, where)
        return fo_fims(pp, idx, P, interaction=self.interaction, full=full, where=where, times=times)


class FOI(FO):
    """FO with the η–ε interaction (PopED FOI)."""

    name, interaction = "foi", True


class FOCE(Approximation):
    """Linearised at K draws η_i ~ N(0, Ω); residual variance at η = 0; FIMs averaged (PopED FOCE).

    ``schedules`` evaluates B candidate schedules with the same draws (common random numbers: a search sees
    a criterion that is smooth in the times): every draw at every schedule in one batch (chunks of about
    ``SCHEDULE_ROWS`` rows), the draws' FIMs summed in draw order; with occasions one draw at a time."""

    name, interaction, default_draws, batched, parallel_draws = "foce", False, 1000, True, True
    SCHEDULE_ROWS = 4096

    def schedules(self, model, pp, times, idx, regimen, full, where="", *, draws=None, seed=0):
        if pp.n_eta == 0:  # no random effects: the linearisation point is η = 0 (FO)
            return FO().schedules(model, pp, times, idx, regimen, full, where)
        eta = draw_eta(pp.omega, self.draws(draws), seed, self.default_sampling)
        B = times.shape[0]
        P0 = predict(model, pp, np.zeros(pp.n_eta), times, idx, regimen, 2, where)
        total = np.zeros((B, pp.p, pp.p))
        step = 1 if pp.eta_occ is not None else max(1, self.SCHEDULE_ROWS // B)
        for lo in range(0, eta.shape[0], step):
            e = eta[lo:lo + step]
            k = e.shape[0]
            Ps = predict(model, pp, e, times, idx, regimen, 2, where)  # k·B rows, draw-major
            ref = Predictions(f=np.tile(P0.f, (k, 1)), fth=np.tile(P0.fth, (k, 1, 1)), L=None)
            out = linearized_fims(pp, idx, ref, Ps, np.repeat(e, B, axis=0), interaction=self.interaction,
                                  resid_at_star=self.interaction, full=full, where=where, times=np.tile(times, (k, 1)))
            for j in range(k):  # in draw order, as one draw at a time would add them
                total += out[j * B:(j + 1) * B]
        return total / eta.shape[0]

    def subject(self, model, pp, times, idx, regimen, full, *, draws=None, seed=0, sampling=None,
                is_samples=DEFAULT_IS_SAMPLES, where="", executor=None):
        eta = draw_eta(pp.omega, self.draws(draws), seed, sampling or self.default_sampling)
        parts = over_draw_chunks(_foce_chunk, eta, (self, model, pp, times, idx, regimen, full, where), executor,
                                 where)
        return SubjectFIM(sum(parts) / eta.shape[0])


class FOCEI(FOCE):
    """FOCE with the residual variance at the draws and the η–ε interaction (PopED FOCEI)."""

    name, interaction = "focei", True


class MC(Approximation):
    """Marginal moments by (quasi-)Monte Carlo, Ω-derivatives by Price's theorem (Leonov & Aliev).

    ``schedules`` evaluates B candidate schedules with the same draws (common random numbers), in chunks of
    ``SCHEDULE_CHUNK`` schedules so that the per-draw second derivatives stay within bounded memory; within a
    chunk, the draws at every schedule in batches of about ``SCHEDULE_ROWS`` rows (one at a time with occasions)."""

    name, default_draws, default_sampling, batched, parallel_draws = "mc", 2048, "qmc", True, True
    SCHEDULE_CHUNK = 16
    SCHEDULE_ROWS = 8192

    def schedules(self, model, pp, times, idx, regimen, full, where="", *, draws=None, seed=0):
        eta = draw_eta(pp.omega, self.draws(draws), seed, self.default_sampling)
        B = times.shape[0]
        out = np.empty((B, pp.p, pp.p))
        for lo in range(0, B, self.SCHEDULE_CHUNK):
            chunk = times[lo:lo + self.SCHEDULE_CHUNK]
            Bc = chunk.shape[0]
            step = 1 if pp.eta_occ is not None else max(1, self.SCHEDULE_ROWS // Bc)
            # rows draw-major (row j Bc + b: draw j at schedule b)
            parts = [predict(model, pp, eta[d:d + step], chunk, idx, regimen, 2, where, eta2=True)
                     for d in range(0, eta.shape[0], step)]
            for b in range(Bc):
                P = Predictions(**{k: np.concatenate([getattr(q, k)[b::Bc] for q in parts])
                                   for k in ("f", "fth", "L", "Leta")})
                out[lo + b] = mc_fim(pp, idx, P, full=full, where=where)
        return out

    def subject(self, model, pp, times, idx, regimen, full, *, draws=None, seed=0, sampling=None,
                is_samples=DEFAULT_IS_SAMPLES, where="", executor=None):
        eta = draw_eta(pp.omega, self.draws(draws), seed, sampling or self.default_sampling)
        parts = over_draw_chunks(_mc_chunk, eta, (model, pp, times, idx, regimen, full, where), executor, where)
        total = parts[0]
        for part in parts[1:]:
            total = add_moments(total, part)
        return SubjectFIM(mc_fim_from_moments(pp, idx, total, full=full, where=where))


#: η draws per chunk (FOCE, FOCEI, MC subjects): bounded memory, and the unit of work given to an executor
DRAW_CHUNK = 2048


def over_draw_chunks(fn, eta, args, executor, where: str) -> list:
    """``[fn(*args, chunk) for each chunk of DRAW_CHUNK draws of eta]``, as executor tasks when one is given:
    the chunks are the same either way, so the result is too, bit for bit."""
    chunks = [eta[lo:lo + DRAW_CHUNK] for lo in range(0, eta.shape[0], DRAW_CHUNK)]
    if executor is not None and len(chunks) > 1:
        return gather([submit(executor, fn, *args, c) for c in chunks], f"{where}: draw chunks")
    return [fn(*args, c) for c in chunks]


def _foce_chunk(approx, model, pp, times, idx, regimen, full, where, eta):
    """Sum over the draws ``eta`` (k, n_eta) of the linearised FIMs (p, p)."""
    Ps = predict(model, pp, eta, times, idx, regimen, 2, where)
    P0 = predict(model, pp, np.zeros(pp.n_eta), times, idx, regimen, 2, where)
    return linearized_fims(pp, idx, P0, Ps, eta, interaction=approx.interaction, resid_at_star=approx.interaction,
                           full=full, where=where, times=times).sum(axis=0)


def _mc_chunk(model, pp, times, idx, regimen, full, where, eta):
    """The summed moments (``montecarlo.mc_moments``) of the draws ``eta``."""
    return mc_moments(pp, predict(model, pp, eta, times, idx, regimen, 2, where, eta2=True), full=full)


class ExactMC(Approximation):
    """E[score scoreᵀ] of the marginal likelihood from simulated subjects (the reference).

    The subjects' normal numbers (η and ε) are randomised quasi-Monte Carlo: ``REPLICATES`` independent
    scramblings of a Sobol sequence, each of 2^k points (``draws`` is rounded up to ``REPLICATES`` · 2^k).  Each
    replicate is an unbiased estimate; their spread gives the Monte-Carlo SE honestly (the per-subject spread
    would overstate it: quasi-random points are not independent), and their mean converges faster than
    independent draws: on warfarin ~10x less variance of ln det at the same number of subjects (the default
    65,536 subjects give SE(ln det) 0.011-0.014 in ~5 s on one core).  The importance
    samples within a subject stay pseudo-random, in antithetic pairs.

    A replicate is simulated in chunks of ``BLOCK`` subjects; the scrambling and each chunk's importance samples
    come from children of the seed's ``SeedSequence``, so the numbers do not depend on how chunks are scheduled,
    and memory is bounded by one chunk per worker.  ``subject(..., executor=...)`` runs the chunks as tasks of any
    ``concurrent.futures.Executor`` (a process pool, a Dask client's executor): the same result as serially, bit
    for bit."""

    name, default_draws, reduced, parallel_draws = "exact-mc", 65536, False, True
    BLOCK = 2048      # subjects per task (a multiple of SEED_UNIT)
    SEED_UNIT = 256   # subjects per importance-sampling stream: results do not depend on BLOCK
    REPLICATES = 16

    def replicate_size(self, draws) -> int:
        """Subjects per replicate: the smallest power of 2 with REPLICATES · size >= draws (at least 2)."""
        return max(2, 1 << max(0, int(np.ceil(np.log2(max(1, -(-draws // self.REPLICATES)))))))

    def draws(self, draws) -> int:
        """The number of simulated subjects used: ``draws`` (default ``default_draws``) rounded up to
        ``REPLICATES`` · 2^k."""
        return self.REPLICATES * self.replicate_size(super().draws(draws))

    def subject(self, model, pp, times, idx, regimen, full, *, draws=None, seed=0, sampling=None,
                is_samples=DEFAULT_IS_SAMPLES, where="", executor=None):
        requested, K = Approximation.draws(self, draws), self.draws(draws)
        if requested <= pp.p:
            raise DesignError(f"{where}: exact-mc estimates the {pp.p} x {pp.p} FIM as a mean of outer products of "
                              f"simulated scores; {requested} simulated subjects give a rank of at most {requested}. Use draws > "
                              f"{pp.p} (default {self.default_draws}: Monte-Carlo SE of ln det about 0.012 on warfarin)")
        S = check_draws(is_samples, "is_samples")
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        ss = np.random.SeedSequence(ss.entropy, spawn_key=ss.spawn_key)  # never advance the caller's object
        m = K // self.REPLICATES
        chunks = [(lo, min(lo + self.BLOCK, m)) for lo in range(0, m, self.BLOCK)]
        U = self.SEED_UNIT
        args = []
        for rep in ss.spawn(self.REPLICATES):
            kids = rep.spawn(1 + -(-m // U))  # the scrambling, then one stream per unit of SEED_UNIT subjects
            args += [(model, pp, times, idx, regimen, m, lo, hi, S, kids[0], kids[1 + lo // U:1 + -(-hi // U)], where)
                     for lo, hi in chunks]
        if executor is not None and len(args) > 1:
            parts = gather([submit(executor, _exact_chunk, *a) for a in args], f"{where}: exact-MC chunks")
        else:
            parts = [_exact_chunk(*a) for a in args]
        sums = np.array([s for s, _ in parts]).reshape(self.REPLICATES, len(chunks), pp.p, pp.p)
        replicates = sums.sum(axis=1) / m
        ess = np.concatenate([e for _, e in parts])
        return SubjectFIM(replicates.mean(axis=0), replicates.std(axis=0, ddof=1) / np.sqrt(self.REPLICATES), ess,
                          replicates)


def _exact_chunk(model, pp, times, idx, regimen, m, lo, hi, n_is, scramble_seed, unit_seeds, where):
    """Sum over subjects lo..hi-1 of a replicate of m quasi-random subjects (scrambled with ``scramble_seed``)
    of the symmetrised outer products of their two half-sample score estimates (p, p), and their effective
    sample sizes (hi - lo,).  The importance samples of each unit of SEED_UNIT subjects come from its own seed in
    ``unit_seeds`` (the units lo // SEED_UNIT onwards), so a subject's numbers do not depend on the chunking."""
    from scipy.special import ndtri
    from scipy.stats import qmc

    d = pp.n_eta + times.size
    if d <= qmc.Sobol.MAXDIM:
        points = qmc.Sobol(d, scramble=True, rng=generator(scramble_seed))
        normals = ndtri(np.clip(points.random_base2(int(np.log2(m)))[lo:hi], 1e-16, 1 - 1e-16))
    else:  # pragma: no cover - more than 21,201 observations per subject: independent draws
        normals = generator(scramble_seed).standard_normal((m, d))[lo:hi]
    U = ExactMC.SEED_UNIT
    parts = [importance_draws(min(U, hi - (lo // U + k) * U), n_is, pp.n_eta, generator(seed))
             for k, seed in enumerate(unit_seeds)]
    draws = tuple(np.concatenate([p[i] for p in parts]) for i in (0, 1))
    halves, ess = exact_mc_scores(model, pp, times, idx, regimen, normals, draws, where)
    outer = np.einsum("mi,mj->ij", halves[:, 0], halves[:, 1])
    return 0.5 * (outer + outer.T), ess


APPROXIMATION_OBJECTS = {a.name: a for a in (FO(), FOI(), FOCE(), FOCEI(), MC(), ExactMC())}
if tuple(APPROXIMATION_OBJECTS) != APPROXIMATIONS or BATCHED_APPROXIMATIONS != tuple(
        a.name for a in APPROXIMATION_OBJECTS.values() if a.batched):  # pragma: no cover - a development error
    raise ImportError("pkdesign.choices and pkdesign.fim.approximations disagree on the approximations")


def get_approximation(approximation) -> Approximation:
    """The approximation object for a name in :data:`pkdesign.choices.APPROXIMATIONS` (or the object itself)."""
    if isinstance(approximation, Approximation):
        return approximation
    try:
        return APPROXIMATION_OBJECTS[approximation]
    except (KeyError, TypeError):
        raise PkdesignError(f"approximation: expected one of {list(APPROXIMATIONS)}, got {approximation!r}") from None
