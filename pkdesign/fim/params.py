"""The population parameter vector of the FIM and the individual-parameter transform ψ(θ, η).

``PopulationParameters`` fixes, once per model, everything the approximations share: the
names and values of the estimated parameters in FIM order (fixed effects, Ω variances, Ω
covariances, residual-error parameters; fixed ones left out), Ω, which structural parameter
each η acts on and how (exponential ψ = θ·e^η, additive ψ = θ + η, proportional ψ = θ(1 + η)),
and the residual error terms of every output.

All values are on the variance scale here; the standard-deviation scale is a reparametrisation
applied to the finished FIM (``FIMResult.on_scale``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import DesignError, ModelSpecError
from ..regimen import occasion_index
from .residual import ResidualError


@dataclass(frozen=True)
class ErrorTerm:
    """One residual-error term: ``kind`` add | prop | exp, on output ``output`` (index)."""

    output: int
    kind: str
    variance: float
    fixed: bool
    name: str
    declared_scale: str
    correlation: float = 0.0  # of the additive and proportional ε of this output (1: combined1, SD = a + b·f):
                              # the variance gains the cross term 2ρab·f


@dataclass(frozen=True)
class PopulationParameters:
    """Structure of the population parameter vector.

    Attributes
    ----------
    theta : ndarray (n_psi,)        typical values of all structural parameters
    free : ndarray of int (p_theta,) indices (into θ) of the estimated fixed effects
    eta_par : ndarray of int (n_eta,) index of the structural parameter of each η
    eta_model : tuple of str (n_eta,) exponential | additive | proportional
    omega : ndarray (n_eta, n_eta)  Ω, variance scale
    omega_free : list of (i, j)     estimated Ω entries in FIM order (diagonal first)
    errors : tuple of ErrorTerm     all residual terms, in output order
    names, values, declared_scale   the estimated parameters in FIM order
    iov : tuple of (param index, model, variance, fixed)   inter-occasion variability (κ ~ N(0, Π), one κ
                                    per occasion); its FIM entries ``omega2_iov(NAME)`` follow the Ω entries
    eta_occ : ndarray of int (n_eta,) or None   for an occasion-expanded structure (``for_occasions``): the
                                    occasion of each η (-1: between-subject, active at every sample)
    occasion_starts : ndarray or None   start times of the occasions (expanded structure)
    collapse : ndarray (p_expanded, p) or None   maps the expanded FIM to the reported one: F = Aᵀ F_x A
    """

    theta: np.ndarray
    free: np.ndarray
    eta_par: np.ndarray
    eta_model: tuple
    omega: np.ndarray
    omega_free: tuple
    errors: tuple
    names: tuple
    values: np.ndarray
    declared_scale: tuple
    n_outputs: int
    iov: tuple = ()
    eta_occ: np.ndarray | None = None
    occasion_starts: np.ndarray | None = None
    collapse: np.ndarray | None = None

    @property
    def p_theta(self) -> int:
        return int(self.free.size)

    @property
    def p(self) -> int:
        return len(self.names)

    @property
    def n_eta(self) -> int:
        return int(self.eta_par.size)

    @property
    def free_errors(self) -> list:
        return [e for e in self.errors if not e.fixed]

    @cached_property
    def residual(self) -> ResidualError:
        """The residual-error model (one object for every approximation)."""
        return ResidualError(tuple(self.errors), self.n_outputs)

    def variance_kernel_arrays(self) -> tuple:
        """The variance model as the FO kernels take it (``kernels.normal_fim``, ``kernels.fo_likelihood``):
        (omega (E, E) float64, om_i, om_j (n_om,) int64 — the estimated Ω entries in FIM order — and the residual
        terms' ``ResidualError.kernel_arrays()``)."""
        om = np.array(self.omega_free, dtype=np.int64).reshape(-1, 2)
        return (np.ascontiguousarray(self.omega, dtype=float), om[:, 0].copy(), om[:, 1].copy(),
                *self.residual.kernel_arrays())

    def without_random_effects(self) -> "PopulationParameters":
        """The fixed-effects model: no η, no Ω entries (individual FIM)."""
        from dataclasses import replace

        keep = [k for k, n in enumerate(self.names) if not n.startswith(("omega2(", "OMEGA(", "omega2_iov("))]
        return replace(self, eta_par=np.zeros(0, dtype=np.int64), eta_model=(), omega=np.zeros((0, 0)),
                       omega_free=(), names=tuple(self.names[k] for k in keep), values=self.values[keep],
                       declared_scale=tuple(self.declared_scale[k] for k in keep), iov=(), eta_occ=None,
                       occasion_starts=None, collapse=None)

    # -- inter-occasion variability --------------------------------------------------------
    def for_occasions(self, starts=None) -> "PopulationParameters":
        """The structure with one κ per IOV parameter and occasion (``starts``: the occasions' start times,
        sorted; None or empty: one occasion).  Its η vector is [η, κ of occasion 1, κ of occasion 2, ...],
        Ω block-diagonal (Ω, Π, Π, ...), and its FIM has one entry per occasion's κ variance, summed into
        ``omega2_iov(NAME)`` by ``collapse``.  Without IOV: ``self``."""
        if not self.iov:
            return self
        from dataclasses import replace

        starts = np.zeros(1) if starts is None or len(starts) == 0 else np.asarray(starts, dtype=float)
        n_occ, n_iov, n_eta = starts.size, len(self.iov), self.n_eta
        eta_par = np.concatenate([self.eta_par] + [np.array([k for k, _, _, _ in self.iov], dtype=np.int64)] * n_occ)
        eta_model = self.eta_model + tuple(m for _, m, _, _ in self.iov) * n_occ
        eta_occ = np.concatenate([np.full(n_eta, -1, dtype=np.int64), np.repeat(np.arange(n_occ), n_iov)])
        omega = np.zeros((n_eta + n_occ * n_iov,) * 2)
        omega[:n_eta, :n_eta] = self.omega
        pi = np.array([v for _, _, v, _ in self.iov])
        omega[np.arange(n_eta, omega.shape[0]), np.arange(n_eta, omega.shape[0])] = np.tile(pi, n_occ)
        # FIM order: θ, Ω entries, then each occasion's free κ variances, then σ; collapse sums the occasions
        n_bsv = self.p_theta + len(self.omega_free)
        free_iov = [j for j, (_, _, _, fixed) in enumerate(self.iov) if not fixed]
        iov_free = tuple((n_eta + o * n_iov + j,) * 2 for o in range(n_occ) for j in free_iov)
        names = list(self.names)
        iov_names = names[n_bsv:n_bsv + len(free_iov)]
        names_x = (names[:n_bsv] + [f"{n}#{o + 1}" for o in range(n_occ) for n in iov_names]
                   + names[n_bsv + len(free_iov):])
        A = np.zeros((len(names_x), self.p))
        A[np.arange(n_bsv), np.arange(n_bsv)] = 1.0
        for o in range(n_occ):
            A[n_bsv + o * len(free_iov) + np.arange(len(free_iov)), n_bsv + np.arange(len(free_iov))] = 1.0
        rest = self.p - n_bsv - len(free_iov)
        A[len(names_x) - rest + np.arange(rest), self.p - rest + np.arange(rest)] = 1.0
        values = A @ self.values / np.maximum(A.sum(axis=1), 1)  # each occasion's κ variance is π
        scales = [self.declared_scale[int(np.argmax(A[i]))] for i in range(len(names_x))]
        return replace(self, eta_par=eta_par, eta_model=eta_model, omega=omega,
                       omega_free=self.omega_free + iov_free, names=tuple(names_x), values=values,
                       declared_scale=tuple(scales), eta_occ=eta_occ, occasion_starts=starts, collapse=A)

    def occasion_of(self, times) -> np.ndarray:
        """Occasion index of each sampling time (a sample at an occasion's start, its trough, belongs to the
        occasion before)."""
        return occasion_index(self.occasion_starts, times)

    def collapse_fim(self, F):
        """The reported FIM from the expanded one (``for_occasions``): Aᵀ F A over the last two axes."""
        if self.collapse is None:
            return F
        A = self.collapse
        return np.einsum("ia,...ij,jb->...ab", A, F, A)

    # -- the transform ψ(θ, η) and its derivatives ----------------------------------------
    def _u(self, eta, active):
        """Total random effect per structural parameter (K, n_psi) of draws ``eta`` (K, n_eta), counting the
        η's marked in ``active`` (all when None)."""
        u = np.zeros((eta.shape[0], self.theta.size))
        for j, k in enumerate(self.eta_par):
            if active is None or active[j]:
                u[:, k] += eta[:, j]
        return u

    def _at_zero(self, eta, active):
        """(ψ, transform derivatives) at η = 0 for one row with every η active, computed once per θ (copies are
        handed out; the FO linearisation point, asked for by every FO FIM), or None for any other η."""
        if active is not None or eta.shape[0] != 1 or eta.any():
            return None
        key = self.theta.tobytes()
        hit = self.__dict__.get("_zero")
        if hit is None or hit[0] != key:
            zero = np.zeros((1, self.n_eta))
            hit = (key, self._psi(zero, None), self._transform(zero, None))
            object.__setattr__(self, "_zero", hit)  # frozen dataclass: a cache, not state
        return hit[1:]

    def psi(self, eta: np.ndarray, active=None) -> np.ndarray:
        """Individual parameters for draws ``eta`` (K, n_eta) -> (K, n_psi): ψ_k = θ_k·e^u, θ_k + u or
        θ_k(1 + u) with u the sum of the (``active``) η's of parameter k."""
        eta = np.atleast_2d(eta)
        zero = self._at_zero(eta, active)
        return zero[0].copy() if zero is not None else self._psi(eta, active)

    def _psi(self, eta, active):
        u = self._u(eta, active)
        psi = np.repeat(self.theta[None, :], eta.shape[0], axis=0)
        for k, m in self._models().items():
            if m == "exponential":
                psi[:, k] = self.theta[k] * np.exp(u[:, k])
            elif m == "additive":
                psi[:, k] = self.theta[k] + u[:, k]
            else:
                psi[:, k] = self.theta[k] * (1.0 + u[:, k])
        return psi

    def _models(self) -> dict:
        """Variability model per structural parameter with random effects."""
        return {int(k): m for k, m in zip(self.eta_par, self.eta_model)}

    def transform_derivatives(self, eta: np.ndarray, active=None) -> tuple:
        """Derivatives of ψ for draws ``eta`` (K, n_eta).

        Returns ``(a, b, c, e)``: a (K, n_psi) = ∂ψ_k/∂θ_k; b (K, n_eta) = ∂ψ_k(j)/∂η_j;
        c (K, n_eta) = ∂²ψ_k(j)/∂θ_k(j)∂η_j; e (K, n_eta) = ∂²ψ_k(j)/∂η_j² (also ∂²ψ/∂η_j∂η_l for two
        η's of one parameter).  ψ_k depends only on θ_k and the sum u of its own η's; η's not ``active``
        have b = c = e = 0.
        """
        eta = np.atleast_2d(eta)
        zero = self._at_zero(eta, active)
        return tuple(x.copy() for x in zero[1]) if zero is not None else self._transform(eta, active)

    def _transform(self, eta, active):
        K = eta.shape[0]
        u = self._u(eta, active)
        a = np.ones((K, self.theta.size))
        b = np.zeros((K, self.n_eta))
        c = np.zeros((K, self.n_eta))
        e = np.zeros((K, self.n_eta))
        for k, m in self._models().items():
            if m == "exponential":
                a[:, k] = np.exp(u[:, k])
            elif m == "proportional":
                a[:, k] = 1.0 + u[:, k]
        for j, (k, m) in enumerate(zip(self.eta_par, self.eta_model)):
            if active is not None and not active[j]:
                continue
            th = self.theta[k]
            if m == "exponential":
                x = np.exp(u[:, k])
                b[:, j], c[:, j], e[:, j] = th * x, x, th * x
            elif m == "additive":
                b[:, j] = 1.0
            else:
                b[:, j], c[:, j] = th, 1.0
        return a, b, c, e


def population_parameters(spec, values: dict | None = None) -> PopulationParameters:
    """Build the parameter structure of ``spec``; ``values`` overrides typical values by name.

    ``values`` may name structural parameters (``CL``), Ω entries (``omega2(CL)``,
    ``OMEGA(CL,V)``) or residual terms (``sigma2_add``), all on the variance scale.
    """
    values = dict(values or {})
    theta = spec.theta.copy()
    pnames = spec.parameter_names
    for k, n in enumerate(pnames):
        if n in values:
            theta[k] = float(values.pop(n))
    var = list(spec.variability)
    vnames = [v.parameter for v in var]
    eta_par = np.array([pnames.index(v.parameter) for v in var], dtype=np.int64)
    omega = spec.omega
    for j, v in enumerate(var):
        key = f"omega2({v.parameter})"
        if key in values:
            omega[j, j] = float(values.pop(key))
    for c in spec.covariances:
        key = f"OMEGA({c.first},{c.second})"
        if key in values:
            i, j = vnames.index(c.first), vnames.index(c.second)
            omega[i, j] = omega[j, i] = float(values.pop(key))
    iov = []
    for v in getattr(spec, "occasion_variability", ()):
        key = f"omega2_iov({v.parameter})"
        variance = float(values.pop(key)) if key in values else v.variance
        iov.append((pnames.index(v.parameter), v.model, variance, v.fixed))
    multi = len(spec.outputs) > 1
    errors = []
    for oi, o in enumerate(spec.outputs):
        for t in o.error_terms:
            name = f"sigma2_{t.kind}" + (f"({o.name})" if multi else "")
            variance = float(values.pop(name)) if name in values else t.variance
            rho = getattr(t, "correlation", 0.0)
            if rho != 0 and not variance > 0:
                raise DesignError(f"{name}: correlated additive and proportional errors (combined1) need a value > 0, "
                                  f"got {variance!r}")
            errors.append(ErrorTerm(oi, t.kind, variance, t.fixed, name, t.scale, rho))
    if values:
        known = (pnames + [f"omega2({n})" for n in vnames] + [f"omega2_iov({pnames[k]})" for k, *_ in iov]
                 + [e.name for e in errors])
        raise DesignError(f"parameter values given for unknown name(s) {sorted(values)}; the model has {known}")
    if omega.size:
        w = np.linalg.eigvalsh(omega)
        if w.min() < -1e-12 * max(1.0, abs(w).max()):
            raise ModelSpecError(
                f"{spec.origin}: Omega is not positive semi-definite (smallest eigenvalue {w.min():.3g}); "
                "check the variances and covariances"
            )
    for e in errors:
        if not (np.isfinite(e.variance) and e.variance >= 0):
            raise ModelSpecError(f"{spec.origin}: residual {e.name} must be a variance >= 0, got {e.variance}")

    free = np.array([k for k, p in enumerate(spec.parameters) if not p.fixed], dtype=np.int64)
    omega_free = [(j, j) for j, v in enumerate(var) if not v.fixed]
    omega_free += [(vnames.index(c.first), vnames.index(c.second)) for c in spec.covariances if not c.fixed]
    names = [pnames[k] for k in free]
    vals = [theta[k] for k in free]
    scales = ["value"] * len(names)
    for i, j in omega_free:
        if i == j:
            names.append(f"omega2({vnames[i]})")
            scales.append(var[i].scale)
        else:
            names.append(f"OMEGA({vnames[i]},{vnames[j]})")
            scales.append("covariance")
        vals.append(omega[i, j])
    for (k, _, variance, fixed), v in zip(iov, getattr(spec, "occasion_variability", ())):
        if not fixed:
            names.append(f"omega2_iov({pnames[k]})")
            vals.append(variance)
            scales.append(v.scale)
    for e in errors:
        if not e.fixed:
            names.append(e.name)
            vals.append(e.variance)
            scales.append(e.declared_scale)
    return PopulationParameters(
        theta=theta, free=free, eta_par=eta_par, eta_model=tuple(v.model for v in var), omega=omega,
        omega_free=tuple(omega_free), errors=tuple(errors), names=tuple(names), values=np.array(vals, dtype=float),
        declared_scale=tuple(scales), n_outputs=len(spec.outputs), iov=tuple(iov),
    )


def covariate_cases(spec, group, where: str) -> list:
    """``[(proportion, {covariate: value}), ...]`` of a design group for ``spec``: the group's covariate values
    (``Group.covariate_cases``) checked against the model's ``[covariates]``; a covariate the group does not
    state takes the model's default value, and is an error when the model has none."""
    names = [p.name for p in spec.parameters if p.covariate]
    stated = getattr(group, "covariates", {}) or {}
    unknown = sorted(set(stated) - set(names))
    if unknown:
        raise DesignError(f"{where}: covariate(s) {unknown} are not in model {spec.name!r} (its covariates: "
                          f"{names or 'none'})")
    missing = [p.name for p in spec.parameters if p.covariate and p.name not in stated and not np.isfinite(p.value)]
    if missing:
        raise DesignError(f"{where}: no value for covariate(s) {missing} of model {spec.name!r} (the model gives no "
                          "default); state them in the group's covariates")
    return group.covariate_cases() if stated else [(1.0, {})]
