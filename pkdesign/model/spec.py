"""``ModelSpec``: the validated, immutable description of a PK/PD model.

Second step of the model pipeline: a model file (``parse.py``) or Python code (``hooks.py``)
produces a ``ModelSpec``; ``symbolic.py`` differentiates it and ``compile.py`` turns it into
numba kernels.  Everything here is plain data (sympy expressions for the formulas, in
:class:`~pkdesign.model.deferred.SympyField` fields: a spec read from the model record cache loads them,
and imports sympy, only when they are read).

Conventions
-----------
* ``t`` in a *response* is the time since the dose took effect (after the lag time), and
  ``DOSE`` is the bioavailable amount of that dose; responses are superposed over all doses,
  so they must be linear in the dose (linear PK).
* ``t`` in an *output* is the time since the start of the study; outputs may use responses by
  name, parameters, assignments and ``t``, and may be nonlinear (e.g. an Emax effect).
* Individual parameters ψ follow the declared variability model from typical values θ and
  random effects η: exponential ψ = θ·exp(η), additive ψ = θ + η, proportional ψ = θ·(1 + η).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from .deferred import SympyField

if TYPE_CHECKING:
    import sympy as sp

VARIABILITY_MODELS = ("exponential", "additive", "proportional")
ERROR_MODELS = {
    "additive": ("add",),
    "proportional": ("prop",),
    "combined": ("prop", "add"),
    "combined1": ("prop", "add"),   # PFIM's Combined1: SD = a + b·f (one ε), variance (a + b·f)²
    "exponential": ("exp",),
}
ROUTES = ("none", "bolus", "infusion", "oral")
#: Reserved symbol names in expressions.
RESERVED = ("t", "DOSE", "TINF")


def squared_unit(unit: str) -> str:
    """The unit of a variance of a quantity in ``unit``: ``L`` -> ``L^2``, ``mg/L`` -> ``(mg/L)^2``, "" -> ""."""
    if not unit:
        return ""
    return f"({unit})^2" if any(c in unit for c in "/* ") else f"{unit}^2"


@dataclass(frozen=True)
class ParameterSpec:
    """A typical value θ of a structural parameter (units as in the model file)."""

    name: str
    value: float
    fixed: bool = False
    unit: str = ""
    description: str = ""
    scale: str = "linear"   # "log": the parameter is a log (e.g. lKA = log KA); its RSE% is reported as 100*SE
    covariate: bool = False  # a [covariates] entry: fixed, its value set per design group (``value``: the default,
                             # NaN when every group must state it)


@dataclass(frozen=True)
class VariabilitySpec:
    """Between-subject variability of one parameter.

    ``variance`` is always the variance of η; ``scale`` records how the file declared it
    (``"variance"`` or ``"sd"``), which decides how the FIM reports it.
    """

    parameter: str
    model: str
    variance: float
    scale: str = "variance"
    fixed: bool = False


@dataclass(frozen=True)
class CovarianceSpec:
    """Covariance between the random effects of two parameters (variance scale)."""

    first: str
    second: str
    value: float
    fixed: bool = False


@dataclass(frozen=True)
class ErrorTermSpec:
    """One residual-error component: ``kind`` is ``add``, ``prop`` or ``exp``."""

    kind: str
    variance: float
    scale: str = "variance"
    fixed: bool = False
    correlation: float = 0.0   # of the additive and proportional ε (1 for combined1: SD = a + b·f)


@dataclass(frozen=True)
class OutputSpec:
    """An observed output: expression (sympy) and its residual error model."""

    name: str
    expression: sp.Expr = SympyField()
    error_model: str
    error_terms: tuple = ()
    unit: str = ""
    text: str = ""


@dataclass(frozen=True)
class DosingSpec:
    """How doses enter: route, bioavailability F and lag time (expressions of parameters)."""

    route: str = "none"
    bioavailability: sp.Expr = SympyField(1)
    lag: sp.Expr = SympyField(0)
    duration: float | None = None  # default infusion duration (time units)
    compartment: str | None = None  # ODE models: the state that receives the doses


SOLVERS = ("dopri5", "bdf", "rosenbrock", "auto", "lsoda")
#: the compiled implicit solvers (they need the symbolic Jacobian of the augmented system at every order)
IMPLICIT_SOLVERS = ("bdf", "rosenbrock", "auto")


@dataclass(frozen=True)
class OdeSpec:
    """An ODE system: states, their time derivatives and initial conditions (sympy, in parameters,
    assignments, states and ``t``); the solver (``dopri5``: compiled, non-stiff; ``bdf``: compiled, variable-order
    BDF/NDF, for stiff systems; ``rosenbrock``: compiled, linearly implicit, stiff; ``auto``: dopri5 or bdf, by a
    stiffness test; ``lsoda``: scipy's, Python per step)
    and its relative and absolute tolerances."""

    states: tuple
    derivatives: tuple = SympyField()
    initial: tuple = SympyField()
    solver: str = "dopri5"
    rtol: float = 1e-8
    atol: float = 1e-10
    max_steps: int = 100000


@dataclass(frozen=True)
class Extremum:
    """A derived quantity found numerically from the model's predictions: ``kind`` "max" | "min" (the peak or
    nadir value, e.g. Cmax) or "argmax" | "argmin" (its time, e.g. tmax) of output ``output`` after one dose of
    ``dose`` at t = 0, searched within ``window`` (model time units)."""

    kind: str
    output: str
    dose: float
    window: tuple


@dataclass(frozen=True)
class ModelSpec:
    """A complete model.  Build one with :func:`pkdesign.load_model` or :func:`pkdesign.model_from_sympy`."""

    name: str
    parameters: tuple
    outputs: tuple
    assignments: tuple = SympyField(())  # ((name, sympy expr), ...) in evaluation order
    responses: tuple = SympyField(())    # ((name, sympy expr), ...), superposed over doses
    variability: tuple = ()
    occasion_variability: tuple = ()  # VariabilitySpec per parameter with inter-occasion variability (κ ~ N(0, Π))
    covariances: tuple = ()
    dosing: DosingSpec = field(default_factory=DosingSpec)
    singularities: tuple = SympyField(())  # ((sympy expr a, sympy expr b), ...): removable where a == b
    description: str = ""
    source: str = ""
    time_unit: str = "h"
    independent: str = "t"
    default_design: object = None  # a pkdesign.Design or None
    origin: str = "<python>"       # file path or "<python>", for messages
    ode: OdeSpec | None = None     # an ODE-defined model (then ``responses`` is empty)
    derived: tuple = SympyField(())  # ((name, sympy expr in the parameters only | Extremum), ...): AUC, tmax, Cmax

    # -- derived views -------------------------------------------------------------------
    @property
    def parameter_names(self) -> list:
        """Names of all structural parameters, in the order of the ψ / θ vectors."""
        return [p.name for p in self.parameters]

    @property
    def output_names(self) -> list:
        return [o.name for o in self.outputs]

    @property
    def theta(self) -> np.ndarray:
        """Typical values θ, shape (n_par,)."""
        return np.array([p.value for p in self.parameters], dtype=float)

    def symbol(self, name: str) -> sp.Symbol:
        import sympy as sp

        return sp.Symbol(name)

    @property
    def psi_symbols(self) -> list:
        import sympy as sp

        return [sp.Symbol(n) for n in self.parameter_names]

    def used_parameters(self) -> set:
        """Names of the parameters that some expression of the model uses (directly or through an
        assignment)."""
        return set(self._derivative_info[0])

    def derivative_indices(self) -> list:
        """Indices (in ``parameter_names`` order) of the parameters the kernels differentiate with
        respect to: those the model uses and that are estimated or carry a random effect.  The FIM
        needs no other derivative; the kernels return 0 for unused parameters and NaN ("not
        computed") for fixed parameters without variability."""
        return list(self._derivative_info[1])

    def second_order_pairs(self) -> list:
        """The second derivatives the kernels compute: pairs ``(k, l)``, ``k <= l``, of derivative positions
        (indices into :meth:`derivative_indices`) of which at least one parameter carries a random effect
        (between-subject or inter-occasion).  A FIM uses ∂²f/∂ψ² only through ∂²f/∂η∂θ (full FIM) and
        ∂²f/∂η∂η (FOCE-type with ``eta2``), so a pair of two parameters without variability is never needed;
        the kernels leave it NaN ("not computed")."""
        return list(self._derivative_info[2])

    def not_computed(self) -> tuple:
        """The derivative entries the kernels do not compute, and what they hold instead:
        ``(k1 (m,), v1 (m,), k2 (m2,), l2 (m2,), v2 (m2,))`` for ``d1[..., k1] = v1`` and
        ``d2[..., k2, l2] = v2``; 0 where a parameter the model does not use is involved, else NaN
        ("not computed": a fixed parameter without variability, or a second derivative in two parameters
        without variability, see :meth:`second_order_pairs`)."""
        return self._not_computed

    @cached_property
    def _not_computed(self) -> tuple:
        P = len(self.parameters)
        active = set(self.derivative_indices())
        used = self.used_parameters()
        value = np.array([0.0 if n not in used else np.nan for n in self.parameter_names])
        k1 = np.array([k for k in range(P) if k not in active], dtype=np.int64)
        ix = self.derivative_indices()
        computed = {(ix[a], ix[b]) for a, b in self.second_order_pairs()}
        computed |= {(l, k) for k, l in computed}
        pairs = [(k, l) for k in range(P) for l in range(P) if (k, l) not in computed]
        k2 = np.array([k for k, _ in pairs], dtype=np.int64)
        l2 = np.array([l for _, l in pairs], dtype=np.int64)
        v2 = np.where(np.isnan(value[k2]) & np.isnan(value[l2]), np.nan, 0.0) if pairs else np.zeros(0)
        return k1, value[k1], k2, l2, v2

    @cached_property
    def _derivative_info(self) -> tuple:
        import sympy as sp

        exprs = [e for _, e in self.assignments] + [e for _, e in self.responses]
        exprs += [o.expression for o in self.outputs] + [self.dosing.bioavailability, self.dosing.lag]
        exprs += [x for pair in self.singularities for x in pair]
        if self.ode is not None:
            exprs += list(self.ode.derivatives) + list(self.ode.initial)
        names = set()
        for e in exprs:
            names |= {s.name for s in sp.sympify(e).free_symbols}
        used = frozenset(names & set(self.parameter_names))
        random = {v.parameter for v in self.variability} | {v.parameter for v in self.occasion_variability}
        active = tuple(k for k, p in enumerate(self.parameters) if p.name in used and (not p.fixed or p.name in random))
        has_eta = [self.parameters[k].name in random for k in active]
        pairs = tuple((a, b) for a in range(len(active)) for b in range(a, len(active)) if has_eta[a] or has_eta[b])
        return used, active, pairs

    def variability_of(self, name: str):
        for v in self.variability:
            if v.parameter == name:
                return v
        return None

    @property
    def omega(self) -> np.ndarray:
        """Ω over the parameters with variability (in ``variability`` order), variance scale."""
        names = [v.parameter for v in self.variability]
        om = np.diag([v.variance for v in self.variability]).astype(float)
        for c in self.covariances:
            i, j = names.index(c.first), names.index(c.second)
            om[i, j] = om[j, i] = c.value
        return om

    def uses_doses(self) -> bool:
        return self._uses_doses

    @cached_property
    def _uses_doses(self) -> bool:
        return bool(self.responses) or (self.ode is not None and self.dosing.route != "none")

    # -- how it reads ------------------------------------------------------------------------
    def kind(self) -> str:
        return "ODE" if self.ode is not None else "closed form"

    def __repr__(self) -> str:
        outs = ", ".join(f"{o.name} [{o.unit}]" if o.unit else o.name for o in self.outputs)
        est = sum(not p.fixed for p in self.parameters)
        cov = self.covariate_names
        n_par = len(self.parameters) - len(cov)
        covs = f", covariates {', '.join(cov)}" if cov else ""
        iov = (f" (+ inter-occasion on {', '.join(v.parameter for v in self.occasion_variability)})"
               if self.occasion_variability else "")
        return (f"<ModelSpec {self.name!r} ({self.kind()}): {n_par} parameters ({est} estimated){covs}, "
                f"{len(self.variability)} random effects{iov}; outputs {outs}; time in {self.time_unit}>")

    @property
    def covariate_names(self) -> list:
        """Names of the ``[covariates]`` (fixed parameters whose values the design groups set)."""
        return [p.name for p in self.parameters if p.covariate]

    def to_frame(self):
        """pandas DataFrame of the parameters: kind (theta, covariate, omega, sigma), value (a covariate's: its
        default, NaN if none), unit, fixed, description."""
        import pandas as pd

        rows = [{"parameter": p.name, "kind": "covariate" if p.covariate else "theta", "value": p.value,
                 "unit": p.unit, "fixed": p.fixed, "description": p.description} for p in self.parameters]
        rows += [{"parameter": f"omega2({v.parameter})", "kind": "omega", "value": v.variance, "unit": "",
                  "fixed": v.fixed, "description": f"{v.model} random effect (variance; declared as {v.scale})"}
                 for v in self.variability]
        rows += [{"parameter": f"omega2_iov({v.parameter})", "kind": "omega", "value": v.variance, "unit": "",
                  "fixed": v.fixed, "description": f"{v.model} inter-occasion random effect (variance of κ, one per "
                                                   f"occasion; declared as {v.scale})"}
                 for v in self.occasion_variability]
        rows += [{"parameter": f"OMEGA({c.first},{c.second})", "kind": "omega", "value": c.value, "unit": "",
                  "fixed": c.fixed, "description": "covariance of the random effects"} for c in self.covariances]
        multi = len(self.outputs) > 1
        for o in self.outputs:
            for t in o.error_terms:
                name = f"sigma2_{t.kind}" + (f"({o.name})" if multi else "")
                unit = squared_unit(o.unit) if t.kind == "add" else ""
                rows.append({"parameter": name, "kind": "sigma", "value": t.variance, "unit": unit, "fixed": t.fixed,
                             "description": f"{o.error_model} residual error of {o.name} (variance; declared as "
                                            f"{t.scale})"})
        return pd.DataFrame(rows).set_index("parameter")

    def summary(self) -> str:
        """Text: the one-line repr, description and source, the parameter table."""
        head = [repr(self)[1:-1]]
        if self.description:
            head.append(self.description)
        if self.source:
            head.append(f"source: {self.source}")
        return "\n".join(head) + "\n" + self.to_frame().to_string()

    def _repr_html_(self) -> str:
        from ..display import html_table

        return html_table(self.to_frame(), repr(self)[1:-1], self.description)

    def structure_key(self) -> str:
        """A canonical text of everything the compiled kernels depend on (not parameter values)."""
        return self._structure_key

    @cached_property
    def lag_depends_on_parameters(self) -> bool:
        """Whether the lag time (after expanding assignments) depends on any parameter."""
        import sympy as sp

        from .symbolic import expand_assignments

        return bool(sp.sympify(self.dosing.lag).xreplace(expand_assignments(self)).free_symbols)

    def precompute(self) -> "ModelSpec":
        """Compute (and keep) every derived view that needs sympy, so that a pickle of this spec answers them
        without it (the model record cache stores specs this way); returns ``self``."""
        for name in ("_derivative_info", "_not_computed", "_structure_key", "_uses_doses", "lag_depends_on_parameters"):
            getattr(self, name)
        return self

    @cached_property
    def _structure_key(self) -> str:
        import sympy as sp

        parts = [
            "params:" + ",".join(self.parameter_names),
            "differentiated:" + ",".join(map(str, self.derivative_indices())),
            "second-order:" + ",".join(f"{a}.{b}" for a, b in self.second_order_pairs()),
            "indep:" + self.independent,
            "route:" + self.dosing.route,
            "F:" + sp.srepr(self.dosing.bioavailability),
            "lag:" + sp.srepr(self.dosing.lag),
        ]
        parts += [f"a:{n}={sp.srepr(e)}" for n, e in self.assignments]
        parts += [f"r:{n}={sp.srepr(e)}" for n, e in self.responses]
        parts += [f"o:{o.name}={sp.srepr(o.expression)}" for o in self.outputs]
        parts += [f"s:{sp.srepr(a)}={sp.srepr(b)}" for a, b in self.singularities]
        if self.ode is not None:
            o = self.ode
            # the generated code depends on the solver only through the Jacobians it needs (implicit solvers: every
            # order), so dopri5/lsoda and bdf/rosenbrock/auto twins share their compiled kernels
            parts.append("ode:" + ",".join(o.states) + f";cmt={self.dosing.compartment};"
                         f"implicit={o.solver in IMPLICIT_SOLVERS}")
            parts += [f"dx:{n}={sp.srepr(e)}" for n, e in zip(o.states, o.derivatives)]
            parts += [f"x0:{n}={sp.srepr(e)}" for n, e in zip(o.states, o.initial)]
        return "\n".join(parts)
