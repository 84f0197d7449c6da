"""Compile a ``ModelSpec`` into numba kernels, cached on disk.

Last step of the model pipeline.  numba cannot cache functions created with ``exec`` (numba
issue #3501), so the generated source is written to a cache directory as a module named by a
hash of (model structure, generator source, pkdesign and numba versions), sealed with its SHA-256
and executed from the verified text; each kernel is wrapped in ``numba.njit(signature,
cache=True)`` on first use, its numba cache files verified against a manifest
(:mod:`pkdesign.kernels.jit`).  A new process with the same model finds both the source and
numba's compiled objects and skips sympy and LLVM entirely; a corrupted or unwritable cache is
rebuilt or bypassed, never trusted.

The cache directory is ``$PKDESIGN_CACHE_DIR`` if set, else ``~/.cache/pkdesign``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numba
import numpy as np

from .._version import __version__
from ..design import Regimen
from ..errors import DesignError
from ..kernels.jit import CachedJit, GeneratedModule, load_module
from .codegen import generate_source
from .spec import ModelSpec

_LOCK = threading.Lock()
_MODULES: dict = {}


def cache_dir() -> Path:
    """Directory holding generated kernel modules and numba's cache files."""
    root = os.environ.get("PKDESIGN_CACHE_DIR")
    path = Path(root) if root else Path.home() / ".cache" / "pkdesign"
    return path / "kernels"


def generator_fingerprint(*names: str) -> str:
    """Hash of the generator modules ``names`` (files beside this one), so that a changed generator
    never reuses old kernels."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in names:
        h.update((here / name).read_bytes())
    return h.hexdigest()[:12]


def spec_hash(spec: ModelSpec, tag: str, fingerprint: str) -> str:
    """Hash of everything generated kernels depend on: model structure, generator, pkdesign and numba versions."""
    text = f"{tag} {__version__} {fingerprint}\nnumba {numba.__version__}\n{spec.structure_key()}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


_FINGERPRINT = generator_fingerprint("symbolic.py", "codegen.py", "compile.py", "special.py", "../kernels/fastexp.py")


def model_hash(spec: ModelSpec) -> str:
    """Cache key of the closed-form kernels of ``spec``."""
    return spec_hash(spec, "pkdesign", _FINGERPRINT)


def _signature(order: int):
    f2 = numba.float64[:, ::1]
    sig = [f2, numba.float64[::1], numba.int64[::1], numba.float64[::1], numba.float64[::1], numba.float64[::1], f2]
    if order >= 1:
        sig += [numba.float64[:, :, ::1], f2]
    if order >= 2:
        sig += [numba.float64[:, :, :, ::1]]
    return numba.void(*sig)


def load_generated_module(key: str, prefix: str, make_source) -> GeneratedModule:
    """The verified generated module ``{prefix}_{key}`` (see :mod:`pkdesign.kernels.jit`): read from the
    cache directory, or written there with ``make_source()`` when absent or corrupted, or executed in
    memory when the cache cannot be written.  One module per key per process."""
    with _LOCK:
        gm = _MODULES.get(key)
        if gm is None:
            gm = load_module(cache_dir(), key, prefix, make_source)
            _MODULES[key] = gm
            return gm
        return GeneratedModule(gm.module, gm.path, gm.source, False)


def _load_module(spec: ModelSpec):
    key = model_hash(spec)
    header = f"# model hash {key}; pkdesign {__version__}; numba {numba.__version__}"
    return load_generated_module(key, "pkd", lambda: generate_source(spec, header=header))


def output_index(output, n_obs: int, names: list) -> np.ndarray:
    """Output index (n_obs,) int64 from None (all the first output), names or indices; validated."""
    if output is None:
        return np.zeros(n_obs, dtype=np.int64)
    out = np.asarray(output)
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


#: batches with at least this many (vector x time) points are split across threads (the kernels
#: release the GIL, so the chunks run in parallel)
PARALLEL_MIN_WORK = 20000
_POOL = None


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, numba.config.NUMBA_NUM_THREADS))


def _run_split(kernel, psi, t, idx, doses, res, keys, threads):
    """Evaluate in ``threads`` chunks: along the vectors when there are enough, else along the times."""
    global _POOL
    from concurrent.futures import ThreadPoolExecutor

    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pkdesign-kernel")
    nv, no = psi.shape[0], t.size
    jobs = []
    if nv >= threads:
        for c in np.array_split(np.arange(nv), threads):
            sl = slice(c[0], c[-1] + 1)
            jobs.append(_POOL.submit(kernel, psi[sl], t, idx, *doses, *[res[k][sl] for k in keys]))
        for j in jobs:
            j.result()
        return
    parts = []
    for c in np.array_split(np.arange(no), threads):
        sl = slice(c[0], c[-1] + 1)
        outs = [np.empty((nv, c.size) + res[k].shape[2:]) for k in keys]
        parts.append((sl, outs))
        jobs.append(_POOL.submit(kernel, psi, np.ascontiguousarray(t[sl]), np.ascontiguousarray(idx[sl]), *doses,
                                 *outs))
    for j in jobs:
        j.result()
    for sl, outs in parts:
        for k, o in zip(keys, outs):
            res[k][:, sl] = o


class CompiledModel:
    """Numba kernels of a model with a batch interface.

    Use :func:`pkdesign.compile_model`.  ``source`` is the generated module text;
    ``generated`` says whether this process had to run sympy (False when the cache was used).
    """

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        gm = _load_module(spec)
        self.module, self.generated, self._source = gm.module, gm.generated, gm.source
        self._jit = CachedJit(enabled=gm.cached)
        self._kernels = {}
        self.n_psi = len(spec.parameter_names)
        self.parameter_names = spec.parameter_names
        self.output_names = spec.output_names

    @property
    def source(self) -> str:
        """The generated kernel source (verified against its checksum when it was loaded)."""
        return self._source

    def kernel(self, order: int):
        """The compiled kernel of the given derivative order (0, 1 or 2), compiled on first use."""
        k = self._kernels.get(order)
        if k is None:
            with _LOCK:
                k = self._kernels.get(order)
                if k is None:
                    py = getattr(self.module, f"predict{order}")
                    k = self._jit.jit(py, _signature(order), error_model="numpy", nogil=True, fastmath={"contract"})
                    self._kernels[order] = k
        return k

    # -- batch evaluation -------------------------------------------------------------------
    def evaluate(self, psi, times, regimen: Regimen | None = None, output=None, order: int = 1, out=None):
        """Predictions and derivatives for a batch of parameter vectors.

        Parameters
        ----------
        psi : array_like, shape (n_vec, n_psi) or (n_psi,)
            Individual parameter vectors, in ``parameter_names`` order.
        times : array_like, shape (n_obs,)
            Observation times (model time unit), >= 0.
        regimen : Regimen, optional
            Dose events; required when the model has dose responses.
        output : array_like of int or str, shape (n_obs,), optional
            Output of each observation (index or name); default: all the first output.
        order : {0, 1, 2}
            Highest derivative order with respect to ψ.
        out : dict of ndarray, optional
            Preallocated float64 C-contiguous arrays to write into (keys as returned; any subset),
            so that repeated calls allocate nothing.

        Returns
        -------
        dict with ``f`` (n_vec, n_obs); for order >= 1 ``d1`` (n_vec, n_obs, n_psi) and
        ``dt`` (n_vec, n_obs); for order 2 ``d2`` (n_vec, n_obs, n_psi, n_psi).  A 1-D
        ``psi`` drops the leading axis.
        """
        if order not in (0, 1, 2):
            raise ValueError(f"order must be 0, 1 or 2, got {order!r}")
        psi_arr = np.ascontiguousarray(psi, dtype=float)
        single = psi_arr.ndim == 1
        psi2 = np.atleast_2d(psi_arr)
        if psi2.ndim != 2 or psi2.shape[1] != self.n_psi:
            raise DesignError(
                f"psi: expected shape (n_vec, {self.n_psi}) for parameters {self.parameter_names}, got {psi_arr.shape}"
            )
        t = np.ascontiguousarray(times, dtype=float).ravel()
        if not np.all(np.isfinite(t)):
            raise DesignError("times: all times must be finite")
        if np.any(t < 0):
            i = int(np.flatnonzero(t < 0)[0])
            raise DesignError(f"times: time at index {i} is {t[i]:g}; times must be >= 0")
        idx = self._output_index(output, t.size)
        dt_, da, dd = self._doses(regimen)
        nv, no, n = psi2.shape[0], t.size, self.n_psi
        res = output_buffers(out, nv, no, n, order, single)
        keys = list(res)
        kernel = self.kernel(order)
        threads = _threads()
        if threads > 1 and nv * no >= PARALLEL_MIN_WORK:
            _run_split(kernel, psi2, t, idx, (dt_, da, dd), res, keys, threads)
        else:
            kernel(psi2, t, idx, dt_, da, dd, *[res[k] for k in keys])
        if single:
            res = {k: v[0] for k, v in res.items()}
        return res

    def _output_index(self, output, n_obs):
        return output_index(output, n_obs, self.output_names)

    def _doses(self, regimen):
        return dose_arrays(self.spec, regimen)


def compile_model(spec: ModelSpec):
    """Generate (or load from the cache) the kernels of ``spec``: a ``CompiledModel`` for closed
    forms, an ``OdeModel`` (same ``evaluate`` interface) for models with an ``[ode]`` section."""
    if spec.ode is not None:
        from .ode import OdeModel

        return OdeModel(spec)
    return CompiledModel(spec)
