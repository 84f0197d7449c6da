"""A reusable FIM evaluator for loops that users write themselves (robust designs, custom criteria, scipy over
doses or times): ``ev = pk.fim_evaluator(model, design, "fo", "reduced")`` checks the design and lays out each
group's observations, covariate cases and occasions once; ``ev()`` returns the population FIM (p, p) as an
array, ``ev(times=..., values=...)`` the FIM for other sampling times or parameter values, ``ev.logdet(...)``
its ln det.  The numbers are ``evaluate_fim``'s (same approximation objects, same seed streams); what is
skipped per call is the design validation, the silent-sample check and building a ``FIMResult``.

FO and FOI on a closed-form model at the model's parameter values (the common case of a loop over sampling
times) take a direct path, :class:`_FOPlan`: per group, the parameter vector, the ψ-transform at η = 0, the
dose arrays and every output buffer are prepared once, and a call is the model kernel, the chain rule and the
FO kernel on those buffers (``predict.chain_rule`` and the FO kernel, as in ``evaluate_fim``: the same numbers,
bit for bit); anything unusual on the way (a non-finite prediction, a singular covariance) is handed to the
general path, which explains it.
"""

from __future__ import annotations

import numpy as np

from ..errors import DesignError
from ..regimen import check_times
from .api import _check_choice, _collapsed, _parameters, group_cases, silent_samples
from .linearized import STRUCTURED_ABOVE
from .predict import chain_rule


class _FOPlan:
    """The FO/FOI FIM of one group at fixed parameter values, on preallocated buffers (see the module)."""

    def __init__(self, model, pp, t, idx, regimen, full: bool, interaction: bool):
        from ..kernels.normal_fim import fo_fim_kernel, fo_fim_serial

        self.fo_kernel, self.fo_direct = fo_fim_kernel, fo_fim_serial.disp
        order = 2 if full else 1
        self.kernel = model.kernel(order)
        self.full, self.interaction = full, interaction
        self.psi = np.ascontiguousarray(pp.psi(np.zeros((1, pp.n_eta))))
        self.a, self.b, self.c, _ = pp.transform_derivatives(np.zeros((1, pp.n_eta)))
        self.free, self.ep = pp.free, pp.eta_par
        need = np.union1d(pp.free, pp.eta_par)
        self.need2 = (slice(None), slice(None), need[:, None], need[None, :])
        self.doses = model._doses(regimen)
        om = np.array(pp.omega_free, dtype=np.int64).reshape(-1, 2)
        self.omega, self.om_i, self.om_j = np.asarray(pp.omega, dtype=float), om[:, 0].copy(), om[:, 1].copy()
        self.resid = pp.residual.kernel_arrays()
        self.p, self.n_psi = pp.p, self.psi.shape[1]
        self.set_times(t, idx)

    def set_times(self, t, idx, base: bool = True):
        """Sample at ``t`` (n,) with outputs ``idx`` (n,); ``base``: these are the design's own times."""
        self.base = base
        n, P = t.size, self.n_psi
        self.t, self.idx = np.ascontiguousarray(t, dtype=float), np.ascontiguousarray(idx, dtype=np.int64)
        self.bufs = [np.empty((1, n)), np.empty((1, n, P)), np.empty((1, n))]
        if self.full:
            self.bufs.append(np.empty((1, n, P, P)))
        self.out = np.empty((1, self.p, self.p))
        self.zero_lth = None if self.full else np.zeros((1, n, self.ep.size, self.free.size))

    def __call__(self):
        """The group's per-subject FIM (p, p), or None when the general path must decide (and explain)."""
        self.kernel(self.psi, self.t, self.idx, *self.doses, *self.bufs)
        f, d1 = self.bufs[0], self.bufs[1]
        d2 = self.bufs[3] if self.full else None
        fth, L, Lth, _ = chain_rule(d1, d2, self.a, self.b, self.c, None, self.free, self.ep)
        # every needed first derivative is in fth or L (need = free ∪ ep; a > 0, b finite): predict()'s check
        if not (np.isfinite(f).all() and np.isfinite(fth).all() and np.isfinite(L).all()):
            return None
        if self.full:
            if not np.isfinite(d2[self.need2]).all():
                return None
            Lth = np.ascontiguousarray(Lth)
        else:
            Lth = self.zero_lth
        self.fo_kernel(fth, np.ascontiguousarray(f), fth, L, Lth, self.omega, self.om_i, self.om_j, *self.resid,
                       self.idx, self.full, self.interaction, self.out)
        if np.isnan(self.out).any():
            return None
        if self.fo_kernel is not self.fo_direct:  # compiled (and its cache recorded) by the first call: from now
            self.fo_kernel = self.fo_direct      # on the dispatcher itself (one subject: the serial kernel)
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
        total = np.zeros((len(self.names), len(self.names)))
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
                    total += w * F
                    continue
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
