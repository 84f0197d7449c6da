"""A reusable FIM evaluator for loops that users write themselves (robust designs, custom criteria, scipy over
doses or times): ``ev = pk.fim_evaluator(model, design, "fo", "reduced")`` checks the design and lays out each
group's observations, covariate cases and occasions once; ``ev()`` returns the population FIM (p, p) as an
array, ``ev(times=..., values=...)`` the FIM for other sampling times or parameter values, ``ev.logdet(...)``
its ln det.  The numbers are ``evaluate_fim``'s (same approximation objects, same seed streams); what is
skipped per call is the design validation, the silent-sample check and building a ``FIMResult``.

FO and FOI on a closed-form model at the model's parameter values (the common case of a loop over sampling
times) take a direct path, :class:`_FOPlan`: per group, the parameter vector, the ψ-transform at η = 0, the
dose arrays and every output buffer are prepared once, and a call is the model kernel and one compiled call
(``kernels.normal_fim.fo_direct``: the chain rule of ``predict.chain_rule``, the finiteness checks and the FO
kernel, as in ``evaluate_fim``: the same numbers, bit for bit); anything unusual on the way (a non-finite
prediction, a singular covariance) is handed to the general path, which explains it.
"""

from __future__ import annotations

import numpy as np

from ..errors import DesignError
from ..kernels.jit import GuardedKernel
from ..regimen import check_times
from .api import _check_choice, _collapsed, _parameters, group_cases, silent_samples
from .linearized import STRUCTURED_ABOVE


class _FOPlan:
    """The FO/FOI FIM of one group at fixed parameter values, on preallocated buffers (see the module)."""

    def __init__(self, model, pp, t, idx, regimen, full: bool, interaction: bool):
        from ..kernels.normal_fim import fo_direct

        self.fo_kernel = fo_direct  # the guarded entry point first (verifies the cache), then its dispatcher
        order = 2 if full else 1
        self.kernel = model.kernel(order)
        self.full, self.interaction = full, interaction
        self.psi = np.ascontiguousarray(pp.psi(np.zeros((1, pp.n_eta))))
        a, b, c, _ = pp.transform_derivatives(np.zeros((1, pp.n_eta)))
        self.free = np.ascontiguousarray(pp.free, dtype=np.int64)
        self.ep = np.ascontiguousarray(pp.eta_par, dtype=np.int64)
        self.abc = tuple(np.ascontiguousarray(x, dtype=float) for x in (a, b, c))
        self.doses = model._doses(regimen)
        self.variance = pp.variance_kernel_arrays()
        self.p, self.n_psi = pp.p, self.psi.shape[1]
        self.set_times(t, idx)

    def set_times(self, t, idx, base: bool = True):
        """Sample at ``t`` (n,) with outputs ``idx`` (n,); ``base``: these are the design's own times."""
        self.base = base
        n, P, E, pt = t.size, self.n_psi, self.ep.size, self.free.size
        self.t, self.idx = np.ascontiguousarray(t, dtype=float), np.ascontiguousarray(idx, dtype=np.int64)
        self.bufs = [np.empty((1, n)), np.empty((1, n, P)), np.empty((1, n))]
        self.bufs.append(np.empty((1, n, P, P)) if self.full else np.zeros((1, 1, 1, 1)))
        self.out = np.empty((1, self.p, self.p))
        self.fth, self.L = np.empty((1, n, pt)), np.empty((1, n, E))
        self.Lth = np.empty((1, n, E, pt)) if self.full else np.zeros((1, n, E, pt))
        self.args = (self.bufs[0], self.bufs[1], self.bufs[3], *self.abc, self.free, self.ep, self.fth,
                     self.L, self.Lth, *self.variance, self.idx, self.full,
                     self.interaction, self.out)

    def __call__(self):
        """The group's per-subject FIM (p, p), or None when the general path must decide (and explain)."""
        if self.full:
            self.kernel(self.psi, self.t, self.idx, *self.doses, *self.bufs)
        else:
            self.kernel(self.psi, self.t, self.idx, *self.doses, *self.bufs[:3])
        # the chain rule, the finiteness checks and the FO kernel in one compiled call (kernels.normal_fim.fo_direct)
        if not self.fo_kernel(*self.args):
            return None
        if isinstance(self.fo_kernel, GuardedKernel):  # compiled (and its cache verified) by the first call: from
            self.fo_kernel = self.fo_kernel.disp       # now on the dispatcher itself
        return self.out[0]


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
        """The direct FO/FOI path for a group, where it applies (closed form, no occasions, no log-scale output,
        a dense-kernel number of samples), else None."""
        gi, w, cov, starts, seed, t, idx, regimen, pp = part
        if (self.approx.name not in ("fo", "foi") or not hasattr(self.model, "kernel") or pp.collapse is not None
                or pp.eta_occ is not None or t.size > STRUCTURED_ABOVE or t.size == 0
                or pp.residual.log_scale().any() or pp.n_eta == 0):
            return None
        return _FOPlan(self.model, pp, t, idx, regimen, self.fim == "full", self.approx.interaction)

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
            if plan is not None and not values:
                if tt is not t:
                    if tt.size != plan.t.size:
                        plan = None
                    else:
                        plan.set_times(tt, ii, base=False)
                elif not plan.base:
                    plan.set_times(t, idx)
                F = plan() if plan is not None else None
                if F is not None:
                    total = w * F if total is None else total + w * F
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
