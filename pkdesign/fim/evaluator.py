"""A reusable FIM evaluator for loops that users write themselves (robust designs, custom criteria, scipy over
doses or times): ``ev = pk.fim_evaluator(model, design, "fo", "reduced")`` checks the design and lays out each
group's observations, covariate cases and occasions once; ``ev()`` returns the population FIM (p, p) as an
array, ``ev(times=..., values=...)`` the FIM for other sampling times or parameter values, ``ev.logdet(...)``
its ln det.  The numbers are ``evaluate_fim``'s (same approximation objects, same seed streams); what is
skipped per call is the design validation, the silent-sample check and building a ``FIMResult``.
"""

from __future__ import annotations

import numpy as np

from ..errors import DesignError
from ..regimen import check_times
from .api import _check_choice, _collapsed, _parameters, group_cases, silent_samples


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
        total = np.zeros((len(self.names), len(self.names)))
        for gi, w, cov, starts, seed, t, idx, regimen, pp0 in self._parts:
            tt, ii = self._times(times, gi, t, idx)
            pp = _parameters(self.model, {**values, **cov}).for_occasions(starts) if values else pp0
            out = self.approx.subject(self.model, pp, tt, ii, regimen, full, draws=self.draws, seed=seed)
            total += w * _collapsed(out, pp).matrix
        return 0.5 * (total + total.T)

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
