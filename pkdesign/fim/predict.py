"""Predictions and their derivatives with respect to θ and η, for a batch of draws or schedules.

The kernels give f, ∂f/∂ψ and ∂²f/∂ψ² for individual parameter vectors ψ.  This module applies
the chain rule through ψ(θ, η) (``PopulationParameters.transform_derivatives``) and, for outputs
with an exponential (log-scale) residual error, the log transform of the prediction, so that the
approximations work with one normal model on the analysis scale.

Shapes: B is the batch (draws of η, or candidate schedules), n the observations of one subject,
p_theta the estimated fixed effects, n_eta the random effects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DesignError


@dataclass
class Predictions:
    """f (B, n); fth (B, n, p_theta) = ∂f/∂θ_free; L (B, n, n_eta) = ∂f/∂η;
    with second order also Lth (B, n, n_eta, p_theta) = ∂²f/∂η∂θ and
    Leta (B, n, n_eta, n_eta) = ∂²f/∂η∂η; dt (B, n) = ∂f/∂t when the model provides it (else None)."""

    f: np.ndarray
    fth: np.ndarray
    L: np.ndarray
    dt: np.ndarray | None = None
    Lth: np.ndarray | None = None
    Leta: np.ndarray | None = None


def predict(model, pp, eta, times, idx, regimen, order: int, where: str = "", eta2: bool = False) -> Predictions:
    """Predictions with θ/η derivatives.

    With inter-occasion variability (``pp`` from ``PopulationParameters.for_occasions``) a sample of
    occasion o sees the between-subject η's and the κ's of occasion o (the other κ columns of L are 0 there):
    the model is evaluated once per occasion present, with that occasion's ψ for the whole dosing history
    (exact when earlier occasions' doses have washed out, as in cross-over or well-separated periods).

    Parameters
    ----------
    eta : ndarray (B, n_eta) or (n_eta,)
        Random effects at which to evaluate.  With 2-D ``times`` (B schedules) a single η (shape (n_eta,) or
        (1, n_eta)), or k draws (k, n_eta) without occasions: then the batch has k·B rows, draw-major (row
        j·B + b is draw j at schedule b).
    times : ndarray (n,) shared by all draws, or (B, n) one schedule per batch row
    idx : ndarray of int (n,)
        Output index of each observation.
    order : 0, 1 or 2
        0 gives f only; 2 adds ∂²f/∂η∂θ, and with ``eta2`` also ∂²f/∂η∂η.
    """
    times = np.asarray(times, dtype=float)
    eta = np.asarray(eta, dtype=float)
    if pp.eta_occ is None:
        return _predict(model, pp, eta, times, idx, regimen, order, where, eta2)
    occ = pp.occasion_of(times)
    if not np.any(np.atleast_2d(eta)[:, pp.eta_occ >= 0]):
        # every κ is 0 (FO, FOI, the linearisation point of FOCE): ψ is the same in every occasion, so one
        # evaluation serves all; a sample's derivatives in the κ's of other occasions are 0
        out = _predict(model, pp, eta, times, idx, regimen, order, where, eta2)
        seen = (pp.eta_occ < 0) | (pp.eta_occ == occ[..., None])  # (n, n_eta) or (B, n, n_eta)
        if times.ndim == 1:
            seen = seen[None]
        out.L = out.L * seen if out.L is not None else None
        if out.Lth is not None:
            out.Lth = out.Lth * seen[..., None]
        if out.Leta is not None:
            out.Leta = out.Leta * (seen[..., :, None] & seen[..., None, :])
        return out
    out = None
    for o in np.unique(occ):
        active = (pp.eta_occ < 0) | (pp.eta_occ == o)
        if times.ndim == 1:
            sel = occ == o
            part = _predict(model, pp, eta, times[sel], idx[sel], regimen, order, where, eta2, active)
        else:
            sel = occ == o  # (B, n): the whole batch is evaluated with occasion o's ψ, its samples kept
            part = _predict(model, pp, eta, times, idx, regimen, order, where, eta2, active)
        out = _merge(out, part, sel, times)
    return out


_FIELDS = ("f", "fth", "L", "dt", "Lth", "Leta")


def _merge(out, part, sel, times):
    """Write the samples ``sel`` of ``part`` into ``out`` (created from ``part``'s shapes on first use)."""
    if out is None:
        B = part.f.shape[0]
        n = times.shape[-1]
        out = Predictions(**{k: None if getattr(part, k) is None else
                             np.zeros((B, n) + getattr(part, k).shape[2:]) for k in _FIELDS})
    for k in _FIELDS:
        src, dst = getattr(part, k), getattr(out, k)
        if src is None:
            continue
        if times.ndim == 1:
            dst[:, sel] = src
        else:
            m = sel.reshape(sel.shape + (1,) * (src.ndim - 2))
            np.copyto(dst, src, where=m)
    return out


def _predict(model, pp, eta, times, idx, regimen, order, where, eta2, active=None) -> Predictions:
    """``predict`` for samples that all see the η's marked ``active`` (all when None)."""
    if times.ndim == 2:
        B, n = times.shape
        eta1 = np.atleast_2d(eta)
        k = eta1.shape[0]
        if k != 1 and active is not None:
            raise DesignError("a batch of schedules with occasions is evaluated at one η vector")
        psi = pp.psi(eta1, active)
        if k == 1:
            res = model.evaluate(psi[0], times.ravel(), regimen, np.tile(idx, B), order=order)
            res = {key: v.reshape((B, n) + v.shape[1:]) for key, v in res.items()}
            eta_b = eta1  # one η for every row: the transform derivatives broadcast
        else:  # every draw at every schedule: one model call, rows draw-major
            res = model.evaluate(psi, times.ravel(), regimen, np.tile(idx, B), order=order)
            res = {key: v.reshape((k * B, n) + v.shape[2:]) for key, v in res.items()}
            eta_b = np.repeat(eta1, B, axis=0)
            times = np.tile(times, (k, 1))  # each row's times (for the messages below)
    else:
        eta_b = np.atleast_2d(eta)
        res = model.evaluate(pp.psi(eta_b, active), times, regimen, idx, order=order)
    f = res["f"]
    d1 = res["d1"] if order >= 1 else np.zeros(f.shape + (0,))
    d2 = res.get("d2")
    # derivatives of parameters that are neither estimated nor random may be NaN ("not computed"), and so may second
    # derivatives in two parameters without variability: the second derivatives are checked after the chain rule,
    # which reads only those the FIM uses
    need = np.union1d(pp.free, pp.eta_par) if order >= 1 and pp.free.size < d1.shape[-1] else None
    if need is not None and need.size < d1.shape[-1]:
        _check_finite(f, d1[..., need], None, times, idx, where, model.spec.output_names)
    else:
        _check_finite(f, d1, None, times, idx, where, model.spec.output_names)
    logf = pp.residual.log_scale()[idx] if pp.n_outputs else np.zeros(f.shape[-1], dtype=bool)
    dt = res.get("dt") if order >= 1 else None
    if logf.any():
        fsel = f[:, logf]
        if np.any(fsel <= 0):
            b, i = np.argwhere(fsel <= 0)[0]
            t = times[b, np.flatnonzero(logf)[i]] if times.ndim == 2 else times[np.flatnonzero(logf)[i]]
            raise DesignError(
                f"{where}: the prediction at time {t:g} is {fsel[b, i]:.3g}; an exponential (log-scale) residual "
                "error needs predictions > 0 (is the sample before the first dose?)"
            )
        f = f.copy()
        d1 = d1.copy()
        dt = None if dt is None else dt.copy()
        if d2 is not None:
            d2 = d2.copy()
            d2[:, logf] = d2[:, logf] / fsel[..., None, None] - np.einsum(
                "bni,bnj->bnij", d1[:, logf], d1[:, logf]) / fsel[..., None, None] ** 2
        d1[:, logf] /= fsel[..., None]
        if dt is not None:
            dt[:, logf] /= fsel
        f[:, logf] = np.log(fsel)

    if order == 0:
        return Predictions(f=f, fth=None, L=None)
    a, b, c, e = pp.transform_derivatives(eta_b, active)
    fth, L, Lth, Leta = chain_rule(d1, d2 if order >= 2 else None, a, b, c, e, pp.free, pp.eta_par, eta2)
    for second in (Lth, Leta):  # (f and the first derivatives were checked above)
        if second is not None:
            _check_finite(f, None, second, times, idx, where, model.spec.output_names)
    return Predictions(f=f, fth=fth, L=L, dt=dt, Lth=Lth, Leta=Leta)


#: batches with at least this many rows take the compiled chain rule (smaller ones keep numpy: no compile)
CHAIN_KERNEL_ROWS = 64


def chain_rule(d1, d2, a, b, c, e, free, ep, eta2: bool = False) -> tuple:
    """Derivatives in θ and η from those in ψ (the model kernels'), for batches of B rows.

    d1 (B, n, P) ∂f/∂ψ, d2 (B, n, P, P) ∂²f/∂ψ² or None; (a, b, c, e) from
    ``PopulationParameters.transform_derivatives``; free, ep: the ψ index of each estimated θ and of each η.
    Returns (fth (B, n, p_theta), L (B, n, n_eta), Lth (B, n, n_eta, p_theta) or None, Leta (B, n, n_eta, n_eta)
    or None); Lth and Leta need d2, Leta also ``eta2``.  Large batches (the searches' candidate schedules) without
    ``eta2`` take the compiled twin, ``kernels.normal_fim.chain_rows`` (the same numbers; across threads)."""
    if not eta2 and d1.shape[0] >= CHAIN_KERNEL_ROWS:
        from ..kernels.normal_fim import UNUSED_4D, chain_rule_rows

        B, n = d1.shape[:2]
        full = d2 is not None
        fth, L = np.empty((B, n, free.size)), np.empty((B, n, ep.size))
        Lth = np.empty((B, n, ep.size, free.size)) if full else UNUSED_4D
        as_int = [np.ascontiguousarray(x, dtype=np.int64) for x in (free, ep)]
        chain_rule_rows(np.ascontiguousarray(d1), np.ascontiguousarray(d2) if full else UNUSED_4D,
                   *[np.ascontiguousarray(x, dtype=float) for x in (a, b, c)], *as_int, full, fth, L, Lth)
        return fth, L, (Lth if full else None), None
    fth = np.ascontiguousarray(d1[:, :, free] * a[:, None, free])
    L = np.ascontiguousarray(d1[:, :, ep] * b[:, None, :])
    Lth = Leta = None
    if d2 is not None:
        # ∂L_j/∂θ_m = ∂²f/∂ψ_kj∂ψ_m · a_m · b_j + [m == k_j] ∂f/∂ψ_kj · c_j
        P_all = d1.shape[2]
        if np.array_equal(ep, np.arange(P_all)) and np.array_equal(free, np.arange(P_all)):
            sub = d2  # every parameter has an η and is estimated: no gather needed
        else:
            sub = d2[:, :, ep[:, None], free[None, :]]
        Lth = sub * (b[:, None, :, None] * a[:, None, None, free])
        for j, k in enumerate(ep):
            m = np.flatnonzero(free == k)
            if m.size:
                Lth[:, :, j, m[0]] += d1[:, :, k] * c[:, None, j]
        if eta2:
            Leta = d2[:, :, ep[:, None], ep[None, :]] * (b[:, None, :, None] * b[:, None, None, :])
            for j, k in enumerate(ep):
                for m in np.flatnonzero(ep == k):  # two η's of one parameter (between-subject and κ) too
                    Leta[:, :, j, m] += d1[:, :, k] * e[:, None, j]
    return fth, L, Lth, Leta


def _check_finite(f, d1, d2, times, idx, where, names=None):
    # fast path: a sum of finite numbers is finite (one pass, no boolean temporaries); a NaN or an infinity makes
    # it non-finite, and so can an overflow of the sum, which the exact check below then clears
    if np.isfinite(f.sum()) and (d1 is None or np.isfinite(d1.sum())) and (d2 is None or np.isfinite(d2.sum())):
        return
    bad = ~np.isfinite(f)
    if d1 is not None:
        bad |= ~np.all(np.isfinite(d1), axis=-1)
    if d2 is not None:
        bad |= ~np.all(np.isfinite(d2), axis=(-2, -1))
    if bad.any():
        b, i = np.argwhere(bad)[0]
        t = times[b, i] if times.ndim == 2 else times[i]
        what = "prediction" if not np.isfinite(f[b, i]) else "derivatives"
        name = names[int(idx[i])] if names is not None and int(idx[i]) < len(names) else f"index {int(idx[i])}"
        raise DesignError(
            f"{where}: the model's {what} of output {name!r} at time {t:g} is not finite; the time is outside the "
            "model's domain or the parameter values make an expression undefined there (e.g. log or a power of 0): "
            "move the sample, or write the limit as a branch (expression = \"... if C > 0 else ...\").")
