"""The result of a design search: ``DesignResult`` and its ``Status``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class Status(str, Enum):
    """How a search ended; ``advice`` says what to do about it."""

    CONVERGED = "converged"          # the stopping rule (equivalence theorem or tolerance) is met
    MAX_ITERATIONS = "max_iterations"  # the iteration limit was reached first
    STOPPED = "stopped"              # the callback asked to stop
    FAILED = "failed"                # the optimiser reported a failure (its message is in the result's)

    @property
    def advice(self) -> str:
        return {
            "converged": "",
            "max_iterations": "the search hit its iteration limit before its stopping rule: raise max_iter, use more "
                              "starts, or check the equivalence certificate (approximate designs)",
            "stopped": "stopped by the callback; the best design found so far is returned",
            "failed": "the local optimiser failed; the best design found is returned: try algorithm='exchange', more "
                      "starts, or a smaller min_spacing",
        }[self.value]


@dataclass
class DesignResult:
    """Outcome of a search.

    Attributes
    ----------
    design : Design
        The design found (exact: groups with N; approximate: groups with weights as ``n``).
    fim : FIMResult or None
        Its FIM (population FIM for exact designs; normalised information for approximate ones).
    criterion : str
    criterion_value : float
    status : Status
    message : str
    iterations : int
    n_fim_evaluations : int
        Number of (per-schedule) FIM evaluations made.
    weights, candidates : approximate designs: weights (m,) and schedules (m, k) of the support
    certificate : equivalence-theorem ``Certificate`` (approximate designs)
    sensitivity : approximate designs: {"candidates" (C, k), "values" (C,) = tr(∇Φ μ_i), "bound" = tr(∇Φ M)},
        the sensitivity function over all grid candidates at the design found
    history : list of criterion values per iteration
    """

    design: object
    fim: object
    criterion: str
    criterion_value: float
    status: Status
    message: str
    iterations: int
    n_fim_evaluations: int
    weights: np.ndarray | None = None
    candidates: np.ndarray | None = None
    certificate: object = None
    history: list = field(default_factory=list)
    sensitivity: dict | None = None
    info: dict = field(default_factory=dict)

    def rounded_design(self, total_n: int):
        """The design with its group weights (or sizes) apportioned to ``total_n`` whole subjects
        (efficient apportionment); groups that get no subject are dropped."""
        from ..design import Design, Group
        from .rounding import apportion

        w = np.array([g.n for g in self.design.groups], dtype=float)
        ns = apportion(w / w.sum(), int(total_n))
        return Design(tuple(Group(float(n), g.times, g.regimen, g.name) for g, n in zip(self.design.groups, ns)
                            if n > 0))

    @property
    def logdet(self) -> float:
        return float(self.fim.logdet) if self.fim is not None else float("nan")

    def to_dict(self) -> dict:
        """The JSON shape of ``pkdesign optimize --json``."""
        out = {"design": self.design.to_dict() if self.design is not None else None, "logdet": self.logdet,
               "criterion": self.criterion, "criterion_value": self.criterion_value,
               "status": self.status.value, "message": self.message, "iterations": self.iterations,
               "n_fim_evaluations": self.n_fim_evaluations}
        if self.certificate is not None:
            c = self.certificate
            out.update(sensitivity_max=c.sensitivity_max, sensitivity_bound=c.bound,
                       efficiency_lower_bound=c.efficiency_lower_bound, equivalence_holds=c.holds)
        if self.weights is not None:
            out["weights"] = np.asarray(self.weights).tolist()
            out["support"] = np.asarray(self.candidates).tolist()
        out.update({k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool, type(None)))})
        return out
