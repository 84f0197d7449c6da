"""Runtime helpers shared by every model kind's ``evaluate``: input checks, output indices, dose
arrays and output buffers (the model protocol's common part; see :mod:`pkdesign.model.protocol`).
"""

from __future__ import annotations

import numpy as np

from ..errors import DesignError, fmt
from .spec import ModelSpec


def output_index(output, n_obs: int, names: list) -> np.ndarray:
    """Output index (n_obs,) int64 from None (all the first output), a name or index (all that output), or
    one name or index per observation; validated."""
    if output is None:
        return np.zeros(n_obs, dtype=np.int64)
    out = np.asarray(output)
    if out.ndim == 0:
        out = np.full(n_obs, out.item(), dtype=out.dtype)
    if out.dtype.kind in "US":
        bad = [o for o in out.tolist() if o not in names]
        if bad:
            raise DesignError(f"output: unknown output name(s) {sorted(set(bad))}; the model has {names}")
        out = np.array([names.index(o) for o in out.tolist()], dtype=np.int64)
    out = np.ascontiguousarray(out, dtype=np.int64).ravel()
    if out.size != n_obs:
        raise DesignError(f"output: {out.size} output indices for {n_obs} times")
    if out.size and (out.min() < 0 or out.max() >= len(names)):
        raise DesignError(f"output: indices must be in 0..{len(names) - 1}")
    return out


def dose_arrays(spec: ModelSpec, regimen, *, durations_only_for_infusion: bool = False) -> tuple:
    """(dose times, amounts, durations) as float64 arrays for the kernels; empty if the model takes no doses.

    Infusion models take each dose's duration, or the model's default ``dosing.duration``.
    ``durations_only_for_infusion`` zeroes durations for other routes (ODE models, where a duration
    makes a dose an infusion)."""
    if not spec.uses_doses():
        z = np.zeros(0)
        return z, z, z
    if regimen is None or regimen.times.size == 0:
        raise DesignError(f"model {spec.name!r} takes doses; give a dose regimen")
    durations = regimen.durations
    if spec.dosing.route == "infusion":
        if spec.dosing.duration is not None:
            durations = np.where(durations > 0, durations, spec.dosing.duration)
        if np.any(durations <= 0):
            raise DesignError(
                f"model {spec.name!r} doses by infusion: every dose needs a duration > 0 "
                "(give 'duration' or 'rate' in the dose, or 'duration' in the model's [dosing])"
            )
    elif durations_only_for_infusion:
        durations = np.zeros_like(durations)
    return (np.ascontiguousarray(regimen.times, dtype=float), np.ascontiguousarray(regimen.amounts, dtype=float),
            np.ascontiguousarray(durations, dtype=float))


def output_keys(order: int) -> tuple:
    """Keys of what ``evaluate`` returns at derivative ``order``."""
    return ("f", "d1", "dt", "d2")[: 1 + 2 * (order >= 1) + (order >= 2)]


def output_buffers(out, n_vec: int, n_obs: int, n_psi: int, order: int, single: bool) -> dict:
    """The arrays a kernel writes: the caller's ``out`` arrays where given (checked), new ones otherwise.

    Shapes (n_vec, n_obs[, n_psi[, n_psi]]); with a single parameter vector (``single``) the
    caller's arrays may also omit the leading axis.  Returns the 2-D-batch views keyed f, d1, dt, d2.
    """
    shapes = {"f": (n_vec, n_obs), "d1": (n_vec, n_obs, n_psi), "dt": (n_vec, n_obs),
              "d2": (n_vec, n_obs, n_psi, n_psi)}
    keys = output_keys(order)
    out = {} if out is None else out
    extra = set(out) - set(keys)
    if extra:
        raise DesignError(f"out: unexpected keys {sorted(extra)} for order {order}; expected some of {list(keys)}")
    res = {}
    for k in keys:
        a = out.get(k)
        if a is None:
            res[k] = np.empty(shapes[k])
            continue
        ok_shape = a.shape == shapes[k] or (single and a.shape == shapes[k][1:]) if isinstance(a, np.ndarray) else False
        if not (ok_shape and a.dtype == np.float64 and a.flags.c_contiguous and a.flags.writeable):
            got = f"{type(a).__name__} {getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}".strip()
            raise DesignError(f"out[{k!r}]: expected a writable C-contiguous float64 array of shape {shapes[k]}, "
                              f"got {got}")
        res[k] = a.reshape(shapes[k])
    return res


def prepare_inputs(model, psi, times, output, order: int) -> tuple:
    """The checks every ``evaluate`` shares: ``(psi2 (n_vec, n_psi) C-contiguous, single, t (n_obs,), idx (n_obs,))``.

    ``single`` says a 1-D ``psi`` was given (results drop the leading axis); ``output`` is None
    (every observation is of the first output), output names or indices."""
    if isinstance(order, bool) or order not in (0, 1, 2):
        raise DesignError(f"order must be 0, 1 or 2, got {order!r}")
    try:
        psi_arr = np.ascontiguousarray(psi, dtype=float)
    except (TypeError, ValueError):
        raise DesignError(f"psi: expected numbers, got {type(psi).__name__}") from None
    single = psi_arr.ndim == 1
    psi2 = np.ascontiguousarray(np.atleast_2d(psi_arr))
    if psi2.ndim != 2 or psi2.shape[1] != model.n_psi:
        raise DesignError(f"psi: expected shape (n_vec, {model.n_psi}) for parameters {list(model.parameter_names)}, "
                          f"got {psi_arr.shape}")
    try:
        t = np.ascontiguousarray(times, dtype=float).ravel()
    except (TypeError, ValueError):
        raise DesignError(f"times: expected numbers, got {type(times).__name__}") from None
    if not np.all(np.isfinite(t)):
        i = int(np.flatnonzero(~np.isfinite(t))[0])
        raise DesignError(f"times: time at index {i} is {fmt(t[i])}; times must be finite")
    if np.any(t < 0):
        i = int(np.flatnonzero(t < 0)[0])
        raise DesignError(f"times: time at index {i} is {fmt(t[i])}; times must be >= 0")
    return psi2, single, t, output_index(output, t.size, list(model.output_names))
