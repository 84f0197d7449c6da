"""Design criteria: value and gradient with respect to the FIM.

Every criterion is *maximised* and concave in the FIM M (p × p); ``gradient(M)`` is ∂Φ/∂M, a
symmetric p × p matrix, which gives the sensitivity (directional-derivative) function of an
approximate design used by the first-order and multiplicative algorithms and by the
equivalence theorem:  ψ(x, ξ) = tr(∇Φ(M) μ(x)) − tr(∇Φ(M) M) ≤ 0 for all x at the optimum.

- ``D``: ln det M.                                ∇ = M⁻¹;  tr(∇ M) = p.
- ``Ds``: ln det M − ln det M_nn (nuisance block) = −ln det (M⁻¹)_ss for the subset s of interest.
- ``A``: −tr(W M⁻¹) (weights W diagonal, default 1).   ∇ = M⁻¹ W M⁻¹.
- ``ELD``: the mean over prior draws of ln det M(θ_k) (a stack of FIMs, one per draw; "Bayesian D");
  ``ED``: ln of the mean determinant over the draws (PopED's names for the two).
- ``c`` / ``L``: −Σ_k w_k c_kᵀ M⁻ c_k for vectors c_k (gradients of derived quantities such as AUC, or unit
  vectors of parameters; ``c:AUC``, ``L:AUC=1,tmax=2``).  M may be singular at the optimum (a c-optimal
  design often has fewer support points than parameters): M⁻ is the generalised inverse and the value
  is −inf only when some c_k is not in the range of M (c_kᵀθ not estimable).  ∇ = Σ w_k M⁻ c_k c_kᵀ M⁻,
  tr(∇ M) = −Φ: the equivalence theorem with a generalised inverse (Elfving 1952; Pukelsheim 1993, ch. 2).
- cost-normalised D is D applied to per-cost information (see ``pkdesign.search.candidates``).

A user criterion is a small subclass of ``Criterion`` with ``value`` and ``gradient``.
"""

from __future__ import annotations

import numpy as np

from .choices import CRITERIA
from .errors import NonIdentifiableError, SearchError
from .numerics import SINGULAR_RTOL


def nonsingular(Ms: np.ndarray) -> np.ndarray:
    """True where the FIM (..., p, p) is numerically non-singular (judged after diagonal scaling)."""
    Ms = np.asarray(Ms)
    d = np.diagonal(Ms, axis1=-2, axis2=-1)
    ok = np.all(d > 0, axis=-1)
    s = 1.0 / np.sqrt(np.where(d > 0, d, 1.0))
    w = np.linalg.eigvalsh(Ms * s[..., :, None] * s[..., None, :])
    return ok & (w[..., 0] > SINGULAR_RTOL * w[..., -1])  # the same test as FIMResult.null_directions


class Criterion:
    """Base class: subclasses implement ``value(M)`` and ``gradient(M)`` for one FIM (p, p).

    ``stacked``: the criterion takes the stack of per-prior-draw FIMs (K, p, p) instead of one FIM
    (ED); ``log_det``: Φ(M) is ln det M of one FIM, which lets searches use closed-form line searches
    and Harman–Pronzato elimination.  Searches ask these attributes, never the name."""

    name = "criterion"
    stacked = False
    log_det = False

    def of_stack(self, Ms: np.ndarray) -> np.ndarray:
        """What ``value``/``gradient`` take, from the stack of per-draw FIMs (K, p, p)."""
        return Ms if self.stacked else Ms[0]

    def value(self, M: np.ndarray) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def gradient(self, M: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def values(self, Ms: np.ndarray) -> np.ndarray:
        """Criterion of a batch (B, p, p) -> (B,); −inf where singular."""
        return np.array([self.safe_value(M) for M in Ms])

    def safe_value(self, M) -> float:
        """``value(M)``, or −inf where M is singular (by the one threshold) or the value cannot be computed."""
        if not np.all(nonsingular(M)):
            return -np.inf
        try:
            return self.value(M)
        except (np.linalg.LinAlgError, NonIdentifiableError):
            return -np.inf

    def efficiency_lower_bound(self, sens_max: float, M: np.ndarray) -> float | None:
        """Lower bound on efficiency from the maximum of the sensitivity function, if known."""
        return None

    def bound(self, M: np.ndarray) -> float:
        """tr(∇Φ(M) M): the value the sensitivity function may not exceed at the optimum."""
        return float(np.sum(self.gradient(M) * M))

    def efficiency(self, value_a: float, value_b: float, p: int) -> float:
        """Efficiency of a design with criterion ``value_a`` relative to one with ``value_b`` (p parameters):
        how many times as many subjects design b needs to match design a's precision is 1 / this."""
        raise NotImplementedError(f"criterion {self.name} defines no efficiency")


def _chol_logdet(M):
    C = np.linalg.cholesky(0.5 * (M + M.T))
    return 2.0 * float(np.sum(np.log(np.diag(C))))


class DCriterion(Criterion):
    """ln det M."""

    name = "D"
    log_det = True

    def value(self, M):
        sign, val = np.linalg.slogdet(M)
        return float(val) if sign > 0 else -np.inf

    def values(self, Ms):
        sign, val = np.linalg.slogdet(Ms)
        return np.where((sign > 0) & nonsingular(Ms), val, -np.inf)

    def gradient(self, M):
        return np.linalg.inv(M)

    def efficiency(self, value_a, value_b, p):
        """(det M_a / det M_b)^(1/p)."""
        return float(np.exp((value_a - value_b) / p))

    def efficiency_lower_bound(self, sens_max, M):
        """D-efficiency ≥ p / max_x tr(M⁻¹ μ(x)) (Atwood 1969)."""
        p = M.shape[0]
        return float(min(1.0, p / sens_max)) if sens_max > 0 else None


class DsCriterion(Criterion):
    """ln det M − ln det M_nn: D-optimality for the parameters ``subset`` (indices)."""

    name = "Ds"

    def __init__(self, subset, names=None):
        self.subset = np.asarray(subset, dtype=int)
        self.names = names

    def _split(self, M):
        s = self.subset
        n = np.setdiff1d(np.arange(M.shape[0]), s)
        return s, n

    def value(self, M):
        s, n = self._split(M)
        sign, total = np.linalg.slogdet(M)
        if sign <= 0:
            return -np.inf
        if n.size == 0:
            return float(total)
        sign2, nn = np.linalg.slogdet(M[np.ix_(n, n)])
        return float(total - nn) if sign2 > 0 else -np.inf

    def gradient(self, M):
        s, n = self._split(M)
        G = np.linalg.inv(M)
        if n.size:
            G[np.ix_(n, n)] -= np.linalg.inv(M[np.ix_(n, n)])
        return G

    def efficiency(self, value_a, value_b, p):
        """(det of the Schur complement for the subset, a over b)^(1/s), s = size of the subset."""
        return float(np.exp((value_a - value_b) / self.subset.size))

    def efficiency_lower_bound(self, sens_max, M):
        k = self.subset.size
        return float(min(1.0, k / sens_max)) if sens_max > 0 else None


class VarianceCriterion(Criterion):
    """A criterion that is minus a (weighted) variance (A, c, L): the efficiency of design a against b is the
    variance ratio value_b / value_a, and the equivalence theorem bounds it from below by tr(∇Φ M) over the
    largest sensitivity (e.g. A: tr(W M⁻¹) / max_x tr(M⁻¹ W M⁻¹ μ(x)))."""

    def efficiency(self, value_a, value_b, p):
        return float(value_b / value_a)

    def efficiency_lower_bound(self, sens_max, M):
        b = self.bound(M)
        return float(min(1.0, b / sens_max)) if sens_max > 0 else None


class ACriterion(VarianceCriterion):
    """−tr(W M⁻¹), W = diag(weights) (default: identity)."""

    name = "A"

    def __init__(self, weights=None):
        self.weights = None if weights is None else np.asarray(weights, dtype=float)

    def _W(self, p):
        return np.ones(p) if self.weights is None else self.weights

    def value(self, M):
        try:
            Mi = np.linalg.inv(M)
        except np.linalg.LinAlgError:
            return -np.inf
        if np.linalg.slogdet(M)[0] <= 0:
            return -np.inf
        return float(-np.sum(self._W(M.shape[0]) * np.diag(Mi)))

    def gradient(self, M):
        Mi = np.linalg.inv(M)
        return (Mi * self._W(M.shape[0])) @ Mi



class ELDCriterion(Criterion):
    """ELD ("Bayesian D", PopED's name): the mean over prior draws of ln det M(θ_k); FIMs come as a stack
    (K, p, p), one per draw."""

    name = "ELD"
    stacked = True

    def value(self, Ms):
        Ms = np.asarray(Ms)
        if Ms.ndim == 2:
            Ms = Ms[None]
        sign, val = np.linalg.slogdet(Ms)
        if np.any(sign <= 0):
            return -np.inf
        return float(val.mean())

    def values(self, Ms):
        """(B, K, p, p) -> (B,)."""
        sign, val = np.linalg.slogdet(Ms)
        return np.where(np.all((sign > 0) & nonsingular(Ms), axis=-1), val.mean(axis=-1), -np.inf)

    def gradient(self, Ms):
        """(K, p, p) -> (K, p, p): ∂/∂M_k of the mean = M_k⁻¹ / K."""
        Ms = np.asarray(Ms)
        return np.linalg.inv(Ms) / Ms.shape[0]

    def bound(self, Ms):
        return float(Ms[0].shape[0])

    def efficiency(self, value_a, value_b, p):
        """exp((mean ln det_a − mean ln det_b) / p): the D-efficiency of the geometric-mean determinants."""
        return float(np.exp((value_a - value_b) / p))

    def efficiency_lower_bound(self, sens_max, Ms):
        return None


class EDCriterion(ELDCriterion):
    """ED (PopED's name): the expected determinant over prior draws, on the log scale,
    ln E[det M(θ)] = ln((1/K) Σ_k det M_k), computed as a log-sum-exp of the ln dets.

    ∂/∂M_k = w_k M_k⁻¹ with w_k = det M_k / Σ_j det M_j, so tr(∇Φ M) = p as for D.  Draws whose FIM is
    singular contribute det 0 (the value is −inf only when every draw's FIM is singular)."""

    name = "ED"

    @staticmethod
    def _weights(val, ok):
        v = np.where(ok, val, -np.inf)
        top = np.max(v, axis=-1, keepdims=True)
        e = np.where(ok, np.exp(v - np.where(np.isfinite(top), top, 0.0)), 0.0)
        return e, top[..., 0]

    def value(self, Ms):
        Ms = np.asarray(Ms)
        if Ms.ndim == 2:
            Ms = Ms[None]
        sign, val = np.linalg.slogdet(Ms)
        ok = sign > 0
        if not ok.any():
            return -np.inf
        e, top = self._weights(val, ok)
        return float(top + np.log(e.sum() / Ms.shape[0]))

    def values(self, Ms):
        sign, val = np.linalg.slogdet(Ms)
        ok = (sign > 0) & nonsingular(Ms)
        e, top = self._weights(val, ok)
        with np.errstate(divide="ignore"):
            out = top + np.log(e.sum(axis=-1) / Ms.shape[1])
        return np.where(ok.any(axis=-1), out, -np.inf)

    def gradient(self, Ms):
        Ms = np.asarray(Ms)
        sign, val = np.linalg.slogdet(Ms)
        ok = sign > 0
        e, _ = self._weights(val, ok)
        w = e / e.sum()
        G = np.zeros_like(Ms)
        G[ok] = np.linalg.inv(Ms[ok]) * w[ok][:, None, None]
        return G

    def efficiency(self, value_a, value_b, p):
        """(E det_a / E det_b)^(1/p)."""
        return float(np.exp((value_a - value_b) / p))


def check_options(criterion, subset=None, a_weights=None, prior=None) -> None:
    """Refuse search options that the criterion would ignore (instead of ignoring them silently).

    ``subset`` belongs to ``"Ds"`` and ``a_weights`` to ``"A"`` given by name (a criterion object carries
    its own); ``prior`` belongs to ED."""
    by_name = isinstance(criterion, str)
    name = str(criterion).upper() if by_name else str(getattr(criterion, "name", "")).upper()
    what = f"criterion {criterion!r}" if by_name else f"the criterion object {type(criterion).__name__}"
    if subset is not None and not (by_name and name == "DS"):
        raise SearchError(f"subset applies to criterion 'Ds' given by name; {what} would ignore it"
                          + ("" if by_name else " (a DsCriterion carries its own subset)"))
    if a_weights is not None and not (by_name and name == "A"):
        raise SearchError(f"a_weights apply to criterion 'A' given by name; {what} would ignore them")
    if prior is not None and name not in ("ED", "ELD") and not name.startswith(("EC:", "EL:")):
        raise SearchError(f"a prior applies to criteria 'ED', 'ELD' and 'Ec:...'/'EL:...'; {what} would ignore it")


def make_criterion(name: str, names=None, subset=None, weights=None, spec=None, values=None) -> Criterion:
    """Criterion by name (``D``, ``Ds``, ``A``, ``ED``, ``ELD``, ``c:QUANTITY``, ``L:Q1=w1,Q2=w2``); ``subset`` names
    parameters for Ds; ``spec`` (the model's) resolves the derived quantities of ``c``/``L`` at its parameter
    values (or ``values``)."""
    text = str(name)
    if text[:3].lower() in ("ec:", "el:"):  # Bayesian c / L: the vectors at each prior draw
        from .c_optimality import BayesianLCriterion, parse_weighted
        from .derived import c_vector

        if spec is None or not isinstance(values, list) or not values:
            raise SearchError(f"criterion {text!r} needs the model and prior draws (give prior=...)")
        qnames, qweights = parse_weighted(text[3:]) if text[1] in "lL" else ([text[3:].strip()], [1.0])
        C = np.array([[c_vector(spec, names or [], q, v)[0] for q in qnames] for v in values])
        return BayesianLCriterion(C, qweights if text[1] in "lL" else None, qnames)
    if text[:2].lower() in ("c:", "l:"):
        from .c_optimality import CCriterion, LCriterion, parse_weighted
        from .derived import c_vector

        if spec is None:
            raise SearchError(f"criterion {text!r} needs the model (its derived quantities)")
        qnames, qweights = parse_weighted(text[2:]) if text[0] in "lL" else ([text[2:].strip()], [1.0])
        C = np.array([c_vector(spec, names or [], q, values)[0] for q in qnames])
        if text[0] in "cC":
            return CCriterion(C[0], qnames[0])
        return LCriterion(C, qweights, qnames)
    key = text.upper()
    if key == "D":
        return DCriterion()
    if key == "DS":
        if not subset:
            raise SearchError("criterion Ds needs the subset of parameters of interest")
        names = list(names or [])
        unknown = [s for s in subset if s not in names]
        if unknown:
            raise SearchError(f"criterion Ds: unknown parameter(s) {unknown}; the FIM has {names}")
        return DsCriterion([names.index(s) for s in subset], list(subset))
    if key == "A":
        return ACriterion(weights)
    if key == "ED":
        return EDCriterion()
    if key == "ELD":
        return ELDCriterion()
    raise SearchError(f"criterion: expected one of {list(CRITERIA)}, c:QUANTITY or L:Q1=w1,Q2=w2, got {name!r}")
