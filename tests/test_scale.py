"""Scale-out through one executor seam: results equal to the serial ones, bit for bit, whatever runs the tasks
(a spawned process pool, a Dask LocalCluster with 2 worker processes); a worker that dies surfaces as a clear
error; exact-MC memory bounded by its blocks of simulated subjects."""

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import pkdesign as pk
from pkdesign.errors import PkdesignError
from pkdesign.executors import gather, make_executor, process_pool

from .conftest import compiled


@pytest.fixture(scope="module")
def pool():
    with process_pool(2) as ex:  # spawned, one BLAS thread per worker
        yield ex


def _same_search(a, b, rtol=0.0):
    """Equal results; ``rtol`` where another process sums in another order (Dask's nanny sets one BLAS thread)."""
    assert a.criterion_value == pytest.approx(b.criterion_value, rel=rtol, abs=0)
    for ga, gb in zip(a.design.groups, b.design.groups):
        for k in ga.times:
            np.testing.assert_allclose(ga.times[k], gb.times[k], rtol=1e6 * rtol, atol=0)


def test_multistart_search_in_a_process_pool_equals_serial(pool):
    spec, model = compiled("warfarin")
    d = spec.default_design
    serial = pk.optimize_design(model, d, starts=3, seed=4)
    # the same starts and the same path; the last bits may differ between processes (measured 6e-15 on a fresh
    # machine: BLAS/LAPACK kernels chosen per process), within the 1e-12
    _same_search(serial, pk.optimize_design(model, d, starts=3, seed=4, executor=pool), rtol=1e-12)


def test_process_pool_workers_have_one_blas_thread(pool):
    assert pool.submit(os.getenv, "OPENBLAS_NUM_THREADS").result() == "1"


def test_process_pool_workers_use_one_kernel_thread(pool):
    """Tasks in worker processes run numba's parallel kernels and pkdesign's thread pool (model kernels, ODE
    solvers) on one thread: N workers x N threads would oversubscribe the cores."""
    from pkdesign.executors import submit
    from pkdesign.kernels.threads import threads

    assert submit(pool, threads).result() == 1


def test_a_dead_worker_is_a_clear_error():
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        with pytest.raises(PkdesignError, match="a worker stopped before finishing"):
            gather([ex.submit(os._exit, 3)], "test task")


def test_cli_workers_flag(capsys):
    from pkdesign import cli

    assert cli.main(["evaluate", "warfarin", "--approx", "exact-mc", "--draws", "600", "--workers", "2", "--json"]) == 0
    out = capsys.readouterr().out
    assert cli.main(["evaluate", "warfarin", "--approx", "exact-mc", "--draws", "600", "--json"]) == 0
    assert out == capsys.readouterr().out  # the same numbers, serially or on 2 worker processes
    with pytest.raises(PkdesignError, match="not both"):
        make_executor(2, "tcp://127.0.0.1:1")


def test_dask_local_cluster_equals_serial():
    distributed = pytest.importorskip("distributed")
    spec, model = compiled("warfarin")
    d = spec.default_design
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cl, \
            distributed.Client(cl) as client:
        ex = client.get_executor()
        a = pk.evaluate_fim(model, d, "exact-mc", draws=1200, seed=5)
        b = pk.evaluate_fim(model, d, "exact-mc", draws=1200, seed=5, executor=ex)
        np.testing.assert_allclose(a.matrix, b.matrix, rtol=1e-12)
        _same_search(pk.optimize_design(model, d, starts=2, seed=1),
                     pk.optimize_design(model, d, starts=2, seed=1, executor=ex), rtol=1e-12)
        grid = np.array([0.5, 2, 6, 24, 72, 120.0])
        space = pk.SamplingSpace(2, (0, 120), grid=grid, regimen=pk.Regimen.single(70.0))
        prior = pk.Prior({"KA": ("lognormal", 1.0, 0.3)})
        kw = dict(criterion="ED", prior=prior, prior_draws=6, seed=0)
        ed_serial = pk.optimize_approximate(model, space, **kw)
        ed_dask = pk.optimize_approximate(model, space, executor=ex, **kw)
        assert ed_serial.criterion_value == pytest.approx(ed_dask.criterion_value, rel=1e-12)
        np.testing.assert_allclose(ed_serial.weights, ed_dask.weights, rtol=1e-8, atol=1e-10)


def test_scheduler_flag_needs_a_reachable_cluster(monkeypatch):
    pytest.importorskip("distributed")
    from pkdesign import executors

    monkeypatch.setattr(executors, "SCHEDULER_TIMEOUT", 0.5)  # the default 30 s: a closed port is retried until then
    with pytest.raises(PkdesignError, match="cannot connect"):
        with make_executor(None, "tcp://127.0.0.1:9"):
            pass


@pytest.mark.parametrize("approx", ["foce", "focei", "mc"])
def test_draw_chunks_on_a_process_pool_equal_serial(approx):
    """FOCE, FOCEI and MC split their η draws in chunks of DRAW_CHUNK; on an executor the chunks are tasks, and
    the result is the serial one bit for bit."""
    from pkdesign.executors import process_pool
    from pkdesign.fim.approximations import DRAW_CHUNK

    spec, model = compiled("warfarin")
    draws = 2 * DRAW_CHUNK + 100  # three chunks, the last one short
    serial = pk.evaluate_fim(model, spec.default_design, approx, fim="full", draws=draws, seed=3)
    with process_pool(2) as pool:
        pooled = pk.evaluate_fim(model, spec.default_design, approx, fim="full", draws=draws, seed=3, executor=pool)
    np.testing.assert_array_equal(pooled.matrix, serial.matrix)


def test_exact_mc_does_not_depend_on_the_chunk_size(monkeypatch):
    """Each unit of SEED_UNIT subjects has its own importance-sampling stream and each subject's estimate uses
    only its own numbers, so the chunk size (the unit of work of an executor) changes only the summation order."""
    from pkdesign.fim.approximations import ExactMC

    spec, model = compiled("warfarin")
    runs = []
    for block in (256, 512, 1024):
        monkeypatch.setattr(ExactMC, "BLOCK", block)
        runs.append(pk.evaluate_fim(model, spec.default_design, "exact-mc", draws=16 * 1024, seed=4))
    for r in runs[1:]:
        np.testing.assert_allclose(r.matrix, runs[0].matrix, rtol=1e-12, atol=1e-12 * np.abs(runs[0].matrix).max())
        assert abs(r.info["logdet_mc_se"] - runs[0].info["logdet_mc_se"]) < 1e-9


def test_a_seed_object_gives_the_same_numbers_every_time_and_everywhere(monkeypatch):
    """scipy's scrambled Sobol spawns from its Generator's SeedSequence: a shared SeedSequence object used to
    scramble differently on each use, so a replicate split in two chunks got two scramblings serially and one in
    worker processes.  Now: same numbers on repeated use and on a process pool, with two chunks per replicate."""
    from pkdesign.executors import process_pool
    from pkdesign.fim.approximations import ExactMC
    from pkdesign.fim.draws import standard_normal

    ss = np.random.SeedSequence(11)
    np.testing.assert_array_equal(standard_normal(64, 3, ss, "qmc"), standard_normal(64, 3, ss, "qmc"))
    spec, model = compiled("warfarin")
    d = spec.default_design
    ev = pk.fim_evaluator(model, d, "mc", "full", draws=256)  # keeps its groups' SeedSequences between calls
    ref = pk.evaluate_fim(model, d, "mc", "full", draws=256, check=False).matrix
    np.testing.assert_array_equal(ev(), ref)
    np.testing.assert_array_equal(ev(), ref)
    monkeypatch.setattr(ExactMC, "BLOCK", 256)
    serial = pk.evaluate_fim(model, d, "exact-mc", draws=16 * 512, seed=3)  # 512 per replicate: two chunks
    with process_pool(2) as pool:
        pooled = pk.evaluate_fim(model, d, "exact-mc", draws=16 * 512, seed=3, executor=pool)
    np.testing.assert_array_equal(pooled.matrix, serial.matrix)
    np.testing.assert_array_equal(pk.evaluate_fim(model, d, "exact-mc", draws=16 * 512, seed=3).matrix,
                                  serial.matrix)
