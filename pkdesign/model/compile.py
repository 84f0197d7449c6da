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

import threading
from typing import TYPE_CHECKING

import numba
import numpy as np

if TYPE_CHECKING:
    from ..regimen import Regimen

from .._version import __version__
from ..kernels.jit import CachedJit
from .cache import generator_fingerprint, load_generated_module, spec_hash
from ..kernels.threads import run_chunks
from ..kernels.threads import threads as thread_count
from .runtime import dose_arrays, output_buffers, prepare_inputs
from .spec import ModelSpec
from .protocol import ModelDisplay, PicklesBySpec

_LOCK = threading.Lock()


_FINGERPRINT = generator_fingerprint("symbolic.py", "codegen.py", "codegen_vector.py", "printer.py", "compile.py",
                                     "special.py", "../kernels/fastexp.py", "../kernels/generated_pipeline.py")


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


def _load_module(spec: ModelSpec):
    key = model_hash(spec)
    header = f"# model hash {key}; pkdesign {__version__}; numba {numba.__version__}"

    def make_source():  # sympy is imported only here, when the kernels are not in the cache
        from .codegen import generate_source

        return generate_source(spec, header=header)

    return load_generated_module(key, "pkd", make_source)


#: batches with at least this many (vector x time) points are split across threads (the kernels
#: release the GIL, so the chunks run in parallel)
PARALLEL_MIN_WORK = 20000


def _run_split(kernel, psi, t, idx, doses, res, keys, threads):
    """Evaluate in ``threads`` chunks: along the vectors when there are enough, else along the times."""
    nv, no = psi.shape[0], t.size
    if nv >= threads:
        run_chunks(lambda sl: kernel(psi[sl], t, idx, *doses, *[res[k][sl] for k in keys]), nv, threads)
        return
    if nv == 1:  # a chunk of the times is a contiguous part of every output: written in place
        run_chunks(lambda sl: kernel(psi, t[sl], idx[sl], *doses, *[res[k][:, sl] for k in keys]), no, threads)
        return
    parts = []

    def run(sl):
        outs = [np.empty((nv, sl.stop - sl.start) + res[k].shape[2:]) for k in keys]
        kernel(psi, np.ascontiguousarray(t[sl]), np.ascontiguousarray(idx[sl]), *doses, *outs)
        parts.append((sl, outs))

    run_chunks(run, no, threads)
    for sl, outs in parts:
        for k, o in zip(keys, outs):
            res[k][:, sl] = o


class CompiledModel(ModelDisplay, PicklesBySpec):
    """Numba kernels of a model with a batch interface.

    Use :func:`pkdesign.compile_model`.  ``source`` is the generated module text;
    ``generated`` says whether this process had to run sympy (False when the cache was used).
    """

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        gm = _load_module(spec)
        self.module, self.generated, self._source = gm.module, gm.generated, gm.source
        self._jit = CachedJit(enabled=gm.cached, label=f"model {spec.name}")
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
                    from ..kernels.generated_pipeline import GeneratedKernelCompiler

                    py = getattr(self.module, f"predict{order}")
                    k = self._jit.jit(py, _signature(order), error_model="numpy", nogil=True, fastmath={"contract"},
                                      pipeline_class=GeneratedKernelCompiler)
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
        psi2, single, t, idx = prepare_inputs(self, psi, times, output, order)
        res = output_buffers(out, psi2.shape[0], t.size, self.n_psi, order, single)
        self.run(order, psi2, t, idx, self._doses(regimen), res)
        if single:
            res = {k: v[0] for k, v in res.items()}
        return res

    def run(self, order: int, psi2, t, idx, doses: tuple, res: dict) -> None:
        """The order-``order`` kernel on inputs already checked and laid out as ``evaluate`` does it: psi2
        (n_vec, n_psi), t and idx (n_obs,) C-contiguous, ``doses`` from ``_doses``, ``res`` the output arrays in
        ``runtime.output_keys`` order (n_vec, n_obs, ...).  Large batches run across threads."""
        kernel = self.kernel(order)
        threads = thread_count()
        if threads > 1 and psi2.shape[0] * t.size >= PARALLEL_MIN_WORK:
            _run_split(kernel, psi2, t, idx, doses, res, list(res), threads)
        else:
            kernel(psi2, t, idx, *doses, *res.values())

    def _doses(self, regimen):
        return dose_arrays(self.spec, regimen)
