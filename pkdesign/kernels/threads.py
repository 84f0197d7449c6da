"""Large batches split across threads: the compiled kernels release the GIL, so the chunks run in parallel.

One pool per process (created on first use), as many threads as the machine has CPUs and numba allows
(``NUMBA_NUM_THREADS``).  Used by the closed-form model kernels (:mod:`pkdesign.model.compile`), the ODE solvers
(:mod:`pkdesign.model.ode`) and the FIM kernels (:mod:`pkdesign.kernels.normal_fim`), all compiled serial only: a
``prange`` twin compiled a kernel a second time (4-7 s for a solver, 11 s for the FO FIM kernel) for no speed once
the serial kernel's arrays are declared ``noalias`` as numba declares a ``prange`` body's.  Imports nothing from the
rest of pkdesign.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numba
import numpy as np

_POOL = None
_LOCK = threading.Lock()
_SINGLE = False  # set by single_threaded()


@lru_cache(maxsize=1)
def _available() -> int:
    return max(1, min(os.cpu_count() or 1, numba.config.NUMBA_NUM_THREADS))


def threads() -> int:
    """Threads for large batches: the machine's CPUs, at most numba's thread count; 1 in a worker process of a
    process pool (:func:`single_threaded`)."""
    return 1 if _SINGLE else _available()


def single_threaded() -> None:
    """Run every batch of this process on the calling thread (set in worker processes: the processes are the
    parallelism, N workers x N threads would oversubscribe the cores)."""
    global _SINGLE
    _SINGLE = True


def submit(fn, *args):
    """``fn(*args)`` in the pool; returns its future."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        with _LOCK:
            if _POOL is None:
                _POOL = ThreadPoolExecutor(max_workers=threads(), thread_name_prefix="pkdesign-kernel")
    return _POOL.submit(fn, *args)


def run_chunks(run, n: int, parts: int | None = None) -> None:
    """``run(slice)`` for ``parts`` (default: :func:`threads`) contiguous chunks of ``range(n)``, in the pool; returns
    when all are done (the first exception of a chunk is raised)."""
    jobs = [submit(run, slice(int(c[0]), int(c[-1]) + 1))
            for c in np.array_split(np.arange(n), parts or threads()) if c.size]
    for job in jobs:
        job.result()


def split(run, n: int, minimum: int) -> None:
    """``run(slice)`` over ``range(n)``: in contiguous chunks across the pool (:func:`run_chunks`) when ``n >= minimum``
    and there is more than one thread, else once on the calling thread."""
    if n >= minimum and threads() > 1:
        run_chunks(run, n)
    else:
        run(slice(0, n))
