"""The result of a design search: ``DesignResult`` and its ``Status``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
        from ..design import Design
        from .rounding import apportion

        w = np.array([g.n for g in self.design.groups], dtype=float)
        ns = apportion(w / w.sum(), int(total_n))
        return Design(tuple(replace(g, n=float(n)) for g, n in zip(self.design.groups, ns)
                            if n > 0))

    # -- how it reads ------------------------------------------------------------------------
    @property
    def approximate(self) -> bool:
        return self.weights is not None

    def headline(self) -> str:
        kind = "approximate" if self.approximate else "exact"
        cert = ""
        if self.certificate is not None:
            c = self.certificate
            cert = f"; equivalence theorem {'holds' if c.holds else 'NOT met'}"
            if c.efficiency_lower_bound is not None:
                cert += f" (efficiency >= {c.efficiency_lower_bound:.4f})"
        return (f"{self.criterion}-optimal {kind} design: {self.status.value}, criterion {self.criterion_value:.6g}"
                f"{cert}; {len(self.design.groups)} group(s)")

    def __repr__(self) -> str:
        return f"<DesignResult {self.headline()}>"

    def to_frame(self):
        """The design found (one row per group and output; approximate designs: ``weight`` instead of n)."""
        f = self.design.to_frame()
        if self.approximate and self.info.get("total_n") is None:
            f = f.rename(columns={"n": "weight"})
        return f

    def summary(self) -> str:
        """Text: headline, status advice, the design table, and its FIM table (the rounded design's for
        approximate designs when it was computed)."""
        lines = [self.headline(), self.message]
        if self.status.advice:
            lines.append(f"advice: {self.status.advice}")
        lines.append(self.to_frame().to_string(index=False))
        fim = self.info.get("rounded_fim") if self.approximate else self.fim
        if fim is not None:
            if self.approximate:
                lines.append(f"rounded to {self.info.get('rounded_total_n')} subjects:")
            lines.append(fim.summary())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..display import html_table

        parts = [html_table(self.to_frame(), self.headline(), self.status.advice)]
        fim = self.info.get("rounded_fim") if self.approximate else self.fim
        if fim is not None:
            parts.append(fim._repr_html_())
        return "".join(parts)

    def evaluate_rounded(self, model, total_n: int, approximation="fo", fim=None):
        """The population FIM of the design rounded to ``total_n`` subjects (efficient apportionment), as it
        would be run; stored in ``info["rounded_fim"]`` (its RSE% are the ones to report) and returned."""
        from ..fim.api import evaluate_fim

        rd = self.rounded_design(total_n) if self.approximate else self.design
        res = evaluate_fim(model, rd, approximation, fim, check=False)
        self.info.update(rounded_fim=res, rounded_total_n=int(total_n), logdet_rounded=res.logdet)
        return res

    @property
    def logdet(self) -> float:
        return float(self.fim.logdet) if self.fim is not None else float("nan")

    @classmethod
    def from_dict(cls, data: dict, output_names, where: str = "result") -> "DesignResult":
        """Read back the JSON of ``pkdesign optimize --json`` (design, criterion, status, certificate); the FIM
        is not stored there (``fim`` is None: evaluate the design again)."""
        from ..design import Design
        from ..equivalence import Certificate
        from ..errors import DesignError

        if not isinstance(data, dict) or "design" not in data or "criterion" not in data:
            raise DesignError(f"{where}: expected the JSON of `pkdesign optimize --json` (with 'design' and "
                              "'criterion')")
        try:
            status = Status(data.get("status", "converged"))
        except ValueError:
            raise DesignError(f"{where}: unknown status {data.get('status')!r}") from None
        cert = None
        if "sensitivity_max" in data:
            smax, bound = float(data["sensitivity_max"]), float(data["sensitivity_bound"])
            cert = Certificate(smax, bound, smax - bound, data.get("efficiency_lower_bound"), -1,
                               bool(data.get("equivalence_holds")), float("nan"))
        info = {k: data[k] for k in ("rounded_total_n", "algorithm", "start_value") if k in data}
        weights = np.asarray(data["weights"], dtype=float) if "weights" in data else None
        support = np.asarray(data["support"], dtype=float) if "support" in data else None
        return cls(Design.from_dict(data["design"], output_names, f"{where}.design"), None, str(data["criterion"]),
                   float(data.get("criterion_value", float("nan"))), status, str(data.get("message", "")),
                   int(data.get("iterations", 0)), int(data.get("n_fim_evaluations", 0)), weights=weights,
                   candidates=support, certificate=cert, info=info)

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
        if self.info.get("rounded_fim") is not None:
            out["rse_percent_rounded"] = dict(zip(self.info["rounded_fim"].names,
                                                  self.info["rounded_fim"].to_frame()["rse_percent"].tolist()))
        return out
