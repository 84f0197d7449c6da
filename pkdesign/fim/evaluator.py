"""A reusable FIM evaluator for loops that users write themselves (robust designs, custom criteria, scipy over
doses or times): ``ev = pk.fim_evaluator(model, design, "fo", "reduced")`` checks the design and lays out each
group's observations, covariate cases and occasions once; ``ev()`` returns the population FIM (p, p) as an
array, ``ev(times=..., values=...)`` the FIM for other sampling times or parameter values, ``ev.logdet(...)``
its ln det.  The numbers are ``evaluate_fim``'s (same approximation objects, same seed streams); what is
skipped per call is the design validation, the silent-sample check and building a ``FIMResult``.

FO and FOI at the model's parameter values (the common case of a loop over sampling times) take the direct path
of :mod:`pkdesign.fim.plan` (``FOPlan``: per group, the parameter vector, the ψ-transform at η = 0, the dose
arrays and every buffer prepared once; a call is the model kernel, the compiled chain rule and the FO kernel, the
kernels of ``schedule_fims`` and the searches); anything unusual on the way (a non-finite prediction, a singular
covariance) is handed to the general path, which explains it.  ``evaluate_fim`` contracts one subject's FO/FOI FIM
in numpy (no compilation for a first FIM): the two agree to rounding (1e-14 of the largest element; measured on
every library model: at most 1.6e-14, full TMDD, else below 4e-15).
"""

from __future__ import annotations

import numpy as np

from ..errors import DesignError
from ..regimen import check_times
from .api import _check_choice, _collapsed, _parameters, group_cases, silent_samples
from .plan import FOPlan, direct_applies


class FIMEvaluator:
    """See the module docstring.  ``names``: the FIM's parameters; ``groups``: the design's group names."""

    def __init__(self, model, design, approximation: str = "fo", fim: str | None = None, *, draws: int | None = None,
                 seed=0):
        self.model, self.design = model, design
        self.approx, self.fim = _check_choice(approximation, fim)
        self.draws = draws
        pp = _parameters(model, None)
        self.names = tuple(pp.names)
        self.groups = [g.name for g in design.groups]
        stochastic = self.approx.default_draws is not None
        self._parts = []  # (group index, weight, covariate values, occasion starts, seed, times, outputs, regimen,
        #                   the parameter structure at the model's values)
        for gi, g, where, t, idx, share, cov, s, pp_c in group_cases(model, design, pp, None, seed, stochastic):
            if silent_samples(model, pp_c, t, idx, g.regimen, where).size:
                raise DesignError(f"{where}: samples that carry no information (pre-dose, proportional error); "
                                  "evaluate_fim leaves them out with a note, the evaluator needs them removed")
            self._parts.append((gi, g.n * share, cov, g.occasion_starts(), s, t, idx, g.regimen, pp_c))
        self._plans = [self._plan(part) for part in self._parts]

    def _plan(self, part):
        """The direct FO/FOI path for a group (``fim.plan.FOPlan``) where it applies, else None."""
        gi, w, cov, starts, seed, t, idx, regimen, pp = part
        if not direct_applies(self.model, pp, self.approx, idx):
            return None
        return FOPlan(self.model, pp, regimen, self.fim == "full", self.approx.interaction)

    def _times(self, times, gi, t, idx):
        if times is None:
            return t, idx
        new = times[gi] if isinstance(times, (list, tuple)) else times.get(self.groups[gi])
        if new is None:
            return t, idx
        outputs = self.model.spec.output_names
        if not isinstance(new, dict):
            if len(set(idx.tolist())) > 1:
                raise DesignError(f"group {self.groups[gi]!r} samples several outputs: give its times as a table "
                                  "output -> times")
            new = {outputs[int(idx[0]) if idx.size else 0]: new}
        ts, ix = [], []
        for k, name in enumerate(outputs):
            if name in new:
                arr = check_times(new[name], f"group {self.groups[gi]!r}, output {name!r}")
                ts.append(arr)
                ix.append(np.full(arr.size, k, dtype=np.int64))
        return np.concatenate(ts), np.concatenate(ix)

    def __call__(self, times=None, values: dict | None = None) -> np.ndarray:
        """Population FIM (p, p), variance scale.  ``times``: per group (a list in the design's order, or a dict
        group name -> times), each an array (one-output groups) or a dict output -> times; ``values``: parameter
        values (FIM names) instead of the model's."""
        full = self.fim == "full"
        total, direct = None, True  # the direct path's FIMs are exactly symmetric (no symmetrising needed)
        for (gi, w, cov, starts, seed, t, idx, regimen, pp0), plan in zip(self._parts, self._plans):
            tt, ii = self._times(times, gi, t, idx)
            if plan is not None and not values and (tt is t or direct_applies(self.model, pp0, self.approx, ii)):
                F = plan(tt[None], ii)
                if F is not None:
                    total = w * F[0] if total is None else total + w * F[0]
                    continue
            pp = _parameters(self.model, {**values, **cov}).for_occasions(starts) if values else pp0
            out = self.approx.subject(self.model, pp, tt, ii, regimen, full, draws=self.draws, seed=seed)
            F = w * _collapsed(out, pp).matrix
            total = F if total is None else total + F
            direct = False
        if total is None:
            return np.zeros((len(self.names), len(self.names)))
        return total if direct else 0.5 * (total + total.T)

    def logdet(self, times=None, values: dict | None = None) -> float:
        """ln det of the FIM (−inf when it is singular)."""
        sign, val = np.linalg.slogdet(self(times, values))
        return float(val) if sign > 0 else -np.inf

    def __repr__(self) -> str:
        return (f"<FIMEvaluator {self.approx.name} {self.fim} FIM of {len(self.names)} parameters, "
                f"{len(self.groups)} group(s)>")


def fim_evaluator(model, design, approximation: str = "fo", fim: str | None = None, *, draws: int | None = None,
                  seed=0) -> FIMEvaluator:
    """A ``FIMEvaluator`` (see :mod:`pkdesign.fim.evaluator`)."""
    return FIMEvaluator(model, design, approximation, fim, draws=draws, seed=seed)
