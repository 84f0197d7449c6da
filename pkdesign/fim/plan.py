"""Prepared per-subject FIMs of batches of schedules: what a loop over sampling times evaluates again and again
(``fim_evaluator``'s calls, the searches' criterion and gradient) without repeating the checks and the set-up.

``SchedulePlan(model, pp, idx, regimen, approx, full)`` holds one group's fixed part: the parameter structure ``pp``
(values, covariates and occasions applied by the caller), the outputs ``idx`` (n,) of the samples, the regimen and
the approximation.  ``plan(times)`` with times (B, n), in the model's time unit, already checked (finite, >= 0),
returns the per-subject FIMs (B, p, p): the numbers of ``schedule_fims`` for the same arguments.

FO and FOI at η = 0 with at most ``STRUCTURED_ABOVE`` samples, no occasions, no log-scale output and at least one
random effect take the direct path, :class:`FOPlan`: ψ, the ψ-transform derivatives, the dose arrays and, per batch
shape, every buffer are prepared once; a call is the model kernel, the compiled chain rule
(``kernels.normal_fim.chain_rows``) and the FO kernel (``fo_rows``), the functions and the order of operations of the
general path (``predict`` then ``linearized_fims``); for a closed form and 64 schedules or more, in blocks of
``BLOCK_ROWS`` schedules per thread (batched warfarin FIMs, 10,000 schedules: 2.55 → 1.8 µs full, 1.15 → 0.7 µs
reduced per schedule).  The same numbers, bit for bit, except for a single schedule,
which the general path contracts in numpy (the same to rounding).  Anything unusual on the way (a
non-finite prediction or derivative, a covariance that is not positive definite) is handed to the general path,
which explains it.  Everything else takes the general path, ``approx.schedules`` on the prepared ``pp``.
"""

from __future__ import annotations

import numpy as np

from ..kernels.normal_fim import UNUSED_4D
from ..kernels.threads import split
from .linearized import STRUCTURED_ABOVE


class FOPlan:
    """The FO/FOI per-subject FIMs of batches of schedules at η = 0 and fixed parameter values (see the module).

    ``plan(times (B, n), idx (n,))`` -> (B, p, p), a new array, or None when the general path must decide (and
    explain)."""

    def __init__(self, model, pp, regimen, full: bool, interaction: bool):
        from ..kernels import normal_fim
        from ..model.compile import CompiledModel

        self.model, self.regimen, self.full, self.interaction = model, regimen, full, interaction
        self.order = 2 if full else 1
        # a closed form: its kernel on our buffers (a batch of ``min_rows`` schedules or more in blocks across
        # threads, fewer on the calling thread); another model (ODE, Python): its ``evaluate`` with our buffers
        self.kernel = model.kernel(self.order) if isinstance(model, CompiledModel) else None
        self.doses = model._doses(regimen) if self.kernel is not None else None
        self.psi = np.ascontiguousarray(pp.psi(np.zeros((1, pp.n_eta))))
        a, b, c, _ = pp.transform_derivatives(np.zeros((1, pp.n_eta)))
        self.abc = tuple(np.ascontiguousarray(x, dtype=float) for x in (a, b, c))
        self.free = np.ascontiguousarray(pp.free, dtype=np.int64)
        self.ep = np.ascontiguousarray(pp.eta_par, dtype=np.int64)
        self.variance = pp.variance_kernel_arrays()
        self.p, self.n_psi = pp.p, self.psi.shape[1]
        self.min_rows = normal_fim.PARALLEL_MIN_ROWS
        # the guarded entry points (their first call verifies the cache), then their dispatchers
        self.chain, self.rows = normal_fim.chain_rows, normal_fim.fo_rows
        self.threaded_chain, self.threaded = normal_fim.chain_rule_rows, normal_fim.fo_fim_kernel
        self._guarded = True
        self._layouts = {}  # (B, n) -> _Layout

    def __call__(self, times, idx):
        B, n = times.shape
        lay = self._layouts.get((B, n))
        if lay is None:
            lay = self._layouts[(B, n)] = _Layout(self, B, n)
        if idx is not lay.src:
            lay.outputs(self, idx)
        t = np.ascontiguousarray(times, dtype=float).reshape(-1)
        if lay.blocked:
            return self._blocks(lay, t, n)
        if self.kernel is None:
            self.model.evaluate(self.psi, t, self.regimen, lay.idx, self.order, out=lay.model_out)
        else:  # fewer than min_rows schedules of at most STRUCTURED_ABOVE samples: on this thread
            self.kernel(self.psi, t, *lay.kernel_args)
        out = np.empty((B, self.p, self.p))
        if B < self.min_rows:  # on this thread: the dispatchers themselves, the least overhead
            # ∂/∂θ, ∂/∂η (and ∂²/∂η∂θ) from the ψ-derivatives, then the FIMs; each says whether all is finite
            if not self.chain(0, B, *lay.chain_args) or not self.rows(0, B, *lay.fim_args, out):
                return None
        elif not self.threaded_chain(*lay.chain_args) or not self.threaded(*lay.fim_args, out):  # across threads
            return None
        if self._guarded:
            self.chain, self.rows, self._guarded = self.chain.disp, self.rows.disp, False
        return out

    def _blocks(self, lay, t, n: int):
        """A large batch of a closed-form model: its rows in contiguous ranges across the thread pool, each range in
        blocks of ``BLOCK_ROWS`` schedules through the model kernel, the chain rule and the FIM kernel on the
        range's own buffers (a block's intermediate results stay in the core's cache and no buffer of the batch's
        size is written and read back three times); the same kernels on the same rows as the unblocked path, so
        the same numbers."""
        B = t.size // n
        out = np.empty((B, self.p, self.p))
        if self._guarded:  # their first call in the process verifies (or compiles) them: once, on this thread
            buf = lay.take_block(self, n)
            self.chain(0, 0, *buf.chain_args)
            self.rows(0, 0, *buf.fim_args, out[:0])
            lay.blocks.append(buf)
            self.chain, self.rows, self._guarded = self.chain.disp, self.rows.disp, False
        finite = []

        def run(rows: slice) -> None:
            buf = lay.take_block(self, n)
            try:
                ok = True
                for lo in range(rows.start, rows.stop, BLOCK_ROWS):
                    hi = min(lo + BLOCK_ROWS, rows.stop)
                    m = (hi - lo) * n
                    self.kernel(self.psi, t[lo * n:hi * n], buf.idx[:m], *self.doses, *buf.model_outputs(m))
                    ok = (self.chain(0, hi - lo, *buf.chain_args) and self.rows(0, hi - lo, *buf.fim_args, out[lo:hi])
                          and ok)
                finite.append(ok)
            finally:
                lay.blocks.append(buf)

        split(run, B, self.min_rows)
        return out if all(finite) else None


#: schedules per block of the blocked path (FOPlan._blocks): a block's buffers (warfarin, full FIM: ~1 MB) stay in
#: a core's cache
BLOCK_ROWS = 512


class _Block:
    """One thread's buffers for ``BLOCK_ROWS`` schedules of n samples: the model kernel's outputs and the chain
    rule's, and the argument lists of the chain-rule and FIM kernels that read them (rows 0 .. hi - lo)."""

    def __init__(self, plan: FOPlan, n: int, idx_n):
        nb = BLOCK_ROWS
        P, E, pt = plan.n_psi, plan.ep.size, plan.free.size
        self.idx = np.tile(idx_n, nb)
        self.f, self.d1, self.dt = np.empty(nb * n), np.empty(nb * n * P), np.empty(nb * n)
        self.d2 = np.empty(nb * n * P * P) if plan.full else None
        self.P = P
        fth, L = np.empty((nb, n, pt)), np.empty((nb, n, E))
        Lth = np.empty((nb, n, E, pt)) if plan.full else UNUSED_4D
        d2 = self.d2.reshape(nb, n, P, P) if plan.full else UNUSED_4D
        self.chain_args = (self.d1.reshape(nb, n, P), d2, *plan.abc, plan.free, plan.ep, plan.full, fth, L, Lth)
        self.fim_args = (fth, self.f.reshape(nb, n), fth, L, Lth, *plan.variance, idx_n, plan.full, plan.interaction)

    def model_outputs(self, m: int) -> tuple:
        """The model kernel's output arrays for m samples (the first m of the block's, contiguous)."""
        P = self.P
        outs = (self.f[:m].reshape(1, m), self.d1[:m * P].reshape(1, m, P), self.dt[:m].reshape(1, m))
        return outs if self.d2 is None else (*outs, self.d2[:m * P * P].reshape(1, m, P, P))


class _Layout:
    """The buffers of one batch shape (B, n): the model kernel's outputs and the chain rule's, and the argument
    lists of the kernels that read and write them (the FIM kernel's without its output); for the blocked path
    (a closed form, B >= ``min_rows``) only its threads' block buffers."""

    def __init__(self, plan: FOPlan, B: int, n: int):
        self.B, self.src = B, None
        self.blocked = plan.kernel is not None and B >= plan.min_rows
        if self.blocked:
            return
        P, E, pt = plan.n_psi, plan.ep.size, plan.free.size
        f, d1, dt = np.empty((1, B * n)), np.empty((1, B * n, P)), np.empty((1, B * n))
        self.res = {"f": f, "d1": d1, "dt": dt}
        if plan.full:
            self.res["d2"] = np.empty((1, B * n, P, P))
        # what another model's ``evaluate`` writes (∂f/∂t, which the FIM does not use, not asked for: a Python
        # model may have none)
        self.model_out = {k: v for k, v in self.res.items() if k != "dt"}
        self.f = f.reshape(B, n)
        d2 = self.res["d2"].reshape(B, n, P, P) if plan.full else UNUSED_4D
        fth, L = np.empty((B, n, pt)), np.empty((B, n, E))
        Lth = np.empty((B, n, E, pt)) if plan.full else UNUSED_4D
        self.chain_args = (d1.reshape(B, n, P), d2, *plan.abc, plan.free, plan.ep, plan.full, fth, L, Lth)
        self._fim_head, self._fim_tail = (fth, self.f, fth, L, Lth, *plan.variance), (plan.full, plan.interaction)

    def outputs(self, plan: FOPlan, idx) -> None:
        """The output of each sample, (n,) as the FIM kernel reads it and tiled (B n,) for the model kernel."""
        if self.src is None or not np.array_equal(idx, self.src):
            self.idx_n = idx_n = np.ascontiguousarray(idx, dtype=np.int64)
            self.blocks = []  # the blocked path's buffers (_Block), one per thread that has used them
            if not self.blocked:
                self.idx = np.tile(idx_n, self.B)
                self.kernel_args = (self.idx, *(plan.doses or ()), *self.res.values())
                self.fim_args = (*self._fim_head, idx_n, *self._fim_tail)
        self.src = idx

    def take_block(self, plan: FOPlan, n: int) -> _Block:
        """A block's buffers for this thread (put back into ``blocks`` when its rows are done)."""
        try:
            return self.blocks.pop()
        except IndexError:
            return _Block(plan, n, self.idx_n)


class SchedulePlan:
    """Per-subject FIMs (B, p, p) of batches of schedules (B, n) of one group (see the module).  ``where`` names the
    group in error messages; ``draws``/``seed``: FOCE/FOCEI's η draws (the same for every call)."""

    def __init__(self, model, pp, idx, regimen, approx, full: bool, *, where: str = "candidates", draws=None,
                 seed=0):
        self.model, self.pp, self.regimen, self.approx, self.full = model, pp, regimen, approx, full
        self.idx = np.asarray(idx, dtype=np.int64)
        self.where, self.draws, self.seed = where, draws, seed
        self.direct = (FOPlan(model, pp, regimen, full, approx.interaction)
                       if direct_applies(model, pp, approx, self.idx) else None)

    def __call__(self, times) -> np.ndarray:
        if self.direct is not None:
            F = self.direct(times, self.idx)
            if F is not None:
                return F
        return self.pp.collapse_fim(self.approx.schedules(self.model, self.pp, times, self.idx, self.regimen,
                                                          self.full, self.where, draws=self.draws, seed=self.seed))


def direct_applies(model, pp, approx, idx) -> bool:
    """Whether :class:`FOPlan` computes these FIMs (see the module)."""
    n = np.size(idx)
    return (approx.name in ("fo", "foi") and pp.collapse is None and pp.eta_occ is None and pp.n_eta > 0
            and 0 < n <= STRUCTURED_ABOVE and not pp.residual.log_scale()[np.asarray(idx)].any())
