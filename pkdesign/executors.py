"""The ``executor=`` seam: any ``concurrent.futures.Executor`` (thread or process pool, loky, a Dask client's
executor) runs independent pieces of work (groups, blocks of simulated subjects, prior draws).

``process_pool(n)`` makes a suitable pool (spawned, one BLAS thread per worker).  Process pools must not use
the "fork" start method: numba's worker threads (parallel kernels) are not
fork-safe, and a forked child can wait forever on a lock that a thread of the parent held.  Use
``ProcessPoolExecutor(mp_context=multiprocessing.get_context("spawn"))`` (or "forkserver"); models travel
to the workers by their spec and load their kernels from the disk cache there.
"""

from __future__ import annotations

import warnings

#: seconds to wait for a Dask scheduler given by ``--scheduler`` before reporting that it cannot be reached
SCHEDULER_TIMEOUT = 30


def check_executor(executor) -> None:
    """Warn (once per call site) when ``executor`` is a process pool started by fork."""
    if executor is None:
        return
    from concurrent.futures import ProcessPoolExecutor

    if isinstance(executor, ProcessPoolExecutor):
        ctx = getattr(executor, "_mp_context", None)
        method = ctx.get_start_method() if ctx is not None else None
        if method == "fork":
            warnings.warn("a process pool started by fork can hang with numba's threads: create it with "
                          "mp_context=multiprocessing.get_context('spawn') (or 'forkserver')", RuntimeWarning,
                          stacklevel=3)


class _Managed:
    """An executor and what closes it (a pool, or a Dask client)."""

    def __init__(self, executor, close):
        self.executor, self._close = executor, close

    def __enter__(self):
        return self.executor

    def __exit__(self, *exc):
        if self._close is not None:
            self._close()
        return False


def make_executor(workers: int | None = None, scheduler: str | None = None):
    """A context manager giving the executor of the CLI's ``--workers N`` (local worker processes, spawned) or
    ``--scheduler ADDRESS`` (an existing Dask cluster; needs ``pip install "pkdesign[distributed]"``); None when
    neither is given."""
    from .errors import PkdesignError

    if workers is not None and scheduler is not None:
        raise PkdesignError("give --workers (local processes) or --scheduler (a Dask cluster), not both")
    if scheduler is not None:
        try:
            from distributed import Client
        except ImportError:
            raise PkdesignError('--scheduler needs Dask: pip install "pkdesign[distributed]"') from None
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise PkdesignError(f"--scheduler {scheduler}: cannot connect to the Dask scheduler ({exc})") from None
        return _Managed(client.get_executor(), client.close)
    if workers is not None:
        pool = process_pool(workers)
        return _Managed(pool, pool.shutdown)
    return _Managed(None, None)


#: environment of worker processes: one BLAS/OpenMP thread each (the processes are the parallelism; N workers
#: with N BLAS threads each oversubscribe the cores, and OpenBLAS's spinning threads then make 2 workers slower
#: than 1 process: measured 0.7x on the SSE benchmark, 1.8x with one thread per worker)
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def process_pool(workers: int):
    """A ``ProcessPoolExecutor`` of ``workers`` spawned processes with one BLAS thread each, started now."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    saved = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        list(pool.map(_noop, range(workers)))  # the workers start (and inherit the environment) now
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return pool


def _noop(_):
    return None


def gather(futures, what: str) -> list:
    """The results of ``futures`` in order; a worker that died (process pool broken, Dask worker killed, task
    cancelled) raises ``PkdesignError`` naming ``what`` instead of a partial result or a hang."""
    from concurrent.futures import BrokenExecutor, CancelledError

    from .errors import PkdesignError

    try:
        return [f.result() for f in futures]
    except (BrokenExecutor, CancelledError) as exc:
        for f in futures:
            f.cancel()
        raise PkdesignError(f"{what}: a worker stopped before finishing its task ({type(exc).__name__}: {exc}); "
                            "nothing was returned. Rerun, with fewer or larger workers if they ran out of memory") from None
    except Exception as exc:
        if type(exc).__name__ in ("KilledWorker", "CommClosedError", "FutureCancelledError"):  # Dask's
            for f in futures:
                f.cancel()
            raise PkdesignError(f"{what}: a Dask worker was lost ({type(exc).__name__}: {exc}); nothing was "
                                "returned") from None
        raise


def _call(parent_pid: int, fn, args, kwargs):
    """Run ``fn`` in a worker: in another process, pkdesign's thread pool (model kernels, ODE solvers, FIM kernels)
    and numba's threads (a user's parallel kernel) get one thread (the processes are the parallelism; N workers x N
    threads would oversubscribe the cores)."""
    import os

    if os.getpid() != parent_pid:
        import numba

        from .kernels.threads import single_threaded

        if numba.get_num_threads() != 1:
            numba.set_num_threads(1)
        single_threaded()  # and pkdesign's own thread pool is not used
    return fn(*args, **kwargs)


def submit(executor, fn, *args, **kwargs):
    """``executor.submit(fn, *args, **kwargs)``, with numba single-threaded when the task runs in another process."""
    import os

    return executor.submit(_call, os.getpid(), fn, args, kwargs)
