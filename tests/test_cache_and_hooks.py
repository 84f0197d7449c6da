"""Disk cache reuse across processes, and the Python hooks (sympy-built and callable models)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import pkdesign as pk

from .conftest import MODELS, compiled
from .helpers import default_cache_env

SCRIPT = """
import json, time, sys
t0 = time.perf_counter()
import pkdesign as pk
spec = pk.load_model(sys.argv[1])
m = pk.compile_model(spec)
r = m.evaluate(spec.theta, [1.0, 2.0, 8.0], order=1)
print(json.dumps({"generated": m.generated, "f": r["f"].tolist(), "seconds": time.perf_counter() - t0}))
"""


def test_new_process_reuses_cached_kernels(tmp_path):
    env = default_cache_env(PKDESIGN_CACHE_DIR=str(tmp_path))
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", SCRIPT, str(MODELS / "box_lucas.toml")], env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert runs[0]["generated"] is True
    assert runs[1]["generated"] is False  # sympy skipped: the source came from the cache
    assert runs[0]["f"] == runs[1]["f"]
    files = list((tmp_path / "kernels").glob("pkd_*.py"))
    assert len(files) == 1
    # numba's own cache files sit beside the module, so LLVM is skipped as well
    assert list((tmp_path / "kernels").rglob("*.nbi"))


def test_model_hash_depends_on_structure_not_values():
    a = pk.load_model(MODELS / "warfarin.toml")
    b = pk.load_model(MODELS / "warfarin_prop.toml")
    assert pk.model.model_hash(a) == pk.model.model_hash(b)  # same structure, other error model
    c = pk.load_model(MODELS / "one_comp_oral.toml")
    assert pk.model.model_hash(a) != pk.model.model_hash(c)


def test_source_is_readable_python():
    spec, model = compiled("warfarin")
    src = model.source
    assert "def predict0(" in src and "def predict2(" in src
    assert "series near the limit" in src
    compile(src, "<kernels>", "exec")


def test_model_from_sympy_equals_model_file():
    CL, V, KA, K, t, DOSE = sp.symbols("CL V KA K t DOSE")
    spec = pk.model_from_sympy(
        "warfarin_py",
        {"CL": 0.15, "V": 8.0, "KA": 1.0},
        {"conc": sp.Symbol("C")},
        errors={"conc": {"model": "combined", "prop": 0.01, "add": 0.25}},
        responses={"C": DOSE / V * KA / (KA - K) * (sp.exp(-K * t) - sp.exp(-KA * t))},
        assignments={"K": CL / V},
        variability={"CL": 0.07, "V": 0.02, "KA": 0.6},
        route="oral",
        singularities=[("KA", K)],
    )
    model = pk.compile_model(spec)
    ref_spec, ref = compiled("warfarin")
    t_obs = [0.5, 1, 2, 6, 24, 36, 72, 120]
    a = model.evaluate(spec.theta, t_obs, pk.Regimen.single(70), order=2)
    b = ref.evaluate(ref_spec.theta, t_obs, pk.Regimen.single(70), order=2)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-13, atol=1e-15)
    # and at the removable singularity
    k = 0.15 / 8
    assert np.all(np.isfinite(model.evaluate([0.15, 8, k], t_obs, pk.Regimen.single(70), order=2)["d2"]))


def test_model_from_sympy_rejects_unknown_names():
    t, Q = sp.symbols("t Q")
    with pytest.raises(pk.ModelSpecError, match=r"unknown names \['Q'\]"):
        pk.model_from_sympy("bad", {"CL": 1.0}, {"y": Q * t}, errors={"y": {"model": "additive", "add": 1.0}})
    with pytest.raises(pk.ModelSpecError, match="missing residual error model"):
        pk.model_from_sympy("bad", {"CL": 1.0}, {"y": t}, errors={})


def _biexp(psi, t, idx, regimen):
    a, b = psi[0], psi[1]
    return a * np.exp(-b * t)


def _biexp_sens(psi, t, idx, regimen):
    a, b = psi
    return np.stack([np.exp(-b * t), -a * t * np.exp(-b * t)], axis=1)


def test_callable_model_with_user_sensitivities_and_finite_differences():
    t = np.array([0.0, 1.0, 3.0])
    exact = pk.CallableModel(_biexp, {"a": 10.0, "b": 0.3}, "y", errors={"y": {"model": "additive", "add": 1.0}},
                             sensitivities=_biexp_sens)
    res = exact.evaluate([10.0, 0.3], t, order=1)
    np.testing.assert_allclose(res["d1"], _biexp_sens([10.0, 0.3], t, None, None))
    assert "dt" not in res  # no time derivative without finite differences
    # d2 is a central difference of d1: with central d1 the nested errors add up to ~1e-5
    for fd, tol, tol2 in (("central", 1e-8, 1e-4), ("complex-step", 1e-13, 1e-6)):
        m = pk.CallableModel(_biexp, {"a": 10.0, "b": 0.3}, "y", errors={"y": {"model": "additive", "add": 1.0}},
                             fd=fd)
        r = m.evaluate([10.0, 0.3], t, order=2)
        np.testing.assert_allclose(r["d1"], res["d1"], rtol=tol, atol=tol)
        d2_exact = np.zeros((3, 2, 2))
        d2_exact[:, 0, 1] = d2_exact[:, 1, 0] = -t * np.exp(-0.3 * t)
        d2_exact[:, 1, 1] = 10 * t**2 * np.exp(-0.3 * t)
        np.testing.assert_allclose(r["d2"], d2_exact, rtol=tol2, atol=tol2)


def test_callable_model_without_derivatives_refuses_to_guess():
    m = pk.CallableModel(_biexp, {"a": 10.0, "b": 0.3}, "y", errors={"y": {"model": "additive", "add": 1.0}})
    np.testing.assert_allclose(m.evaluate([10.0, 0.3], [1.0], order=0)["f"], [10 * np.exp(-0.3)])
    with pytest.raises(pk.ModelSpecError, match="opt into finite differences"):
        m.evaluate([10.0, 0.3], [1.0], order=1)
    with pytest.raises(pk.ModelSpecError, match="fd: expected None, 'central' or 'complex-step'"):
        pk.CallableModel(_biexp, {"a": 1.0}, "y", errors={"y": {"model": "additive", "add": 1.0}}, fd="forward")


def test_exceptions_from_user_hooks_propagate_unchanged():
    def broken(psi, t, idx, regimen):
        raise KeyError("user bug")

    m = pk.CallableModel(broken, {"a": 1.0}, "y", errors={"y": {"model": "additive", "add": 1.0}})
    with pytest.raises(KeyError, match="user bug"):
        m.evaluate([1.0], [1.0], order=0)


def _decay_batch(P, t, idx, regimen):
    return P[:, :1] * np.exp(-P[:, 1:2] * t[None, :])


def _decay_batch_sens(P, t, idx, regimen):
    e = np.exp(-P[:, 1:2] * t[None, :])
    return np.stack([e, -P[:, :1] * t[None, :] * e], axis=2)


@pytest.mark.parametrize("kind", ["closed form", "ODE", "callable", "callable, vectorised"])
def test_every_model_kind_follows_one_protocol(kind):
    # one set of input checks and the same contract: output names, out=, errors naming the input
    if kind == "closed form":
        spec, model = compiled("warfarin")
        psi, reg = spec.theta, pk.Regimen.single(70.0)
    elif kind == "ODE":
        spec, model = compiled("warfarin_ode")
        psi, reg = spec.theta, pk.Regimen.single(70.0)
    else:
        vec = kind.endswith("vectorised")
        model = pk.CallableModel(_decay_batch if vec else _biexp, {"a": 10.0, "b": 0.3}, "conc",
                                 errors={"conc": {"model": "additive", "add": 1.0}}, vectorized=vec,
                                 sensitivities=_decay_batch_sens if vec else _biexp_sens)
        psi, reg = np.array([10.0, 0.3]), None
    t = np.array([0.5, 2.0, 6.0])
    ref = model.evaluate(psi, t, reg, order=1)
    by_name = model.evaluate(psi, t, reg, ["conc"] * 3, order=1)
    np.testing.assert_array_equal(by_name["f"], ref["f"])
    out = {"f": np.empty(3), "d1": np.empty((3, model.n_psi))}
    res = model.evaluate(psi, t, reg, order=1, out=out)
    assert res["f"] is out["f"] or np.shares_memory(res["f"], out["f"])
    np.testing.assert_array_equal(out["d1"], ref["d1"])
    with pytest.raises(pk.DesignError, match="unknown output name"):
        model.evaluate(psi, t, reg, ["nope"] * 3, order=0)
    with pytest.raises(pk.DesignError, match="time at index 1 is -1"):
        model.evaluate(psi, [1.0, -1.0], reg, order=0)
    with pytest.raises(pk.DesignError, match="psi: expected shape"):
        model.evaluate(np.ones(model.n_psi + 1), t, reg, order=0)
    with pytest.raises(pk.DesignError, match="order must be 0, 1 or 2"):
        model.evaluate(psi, t, reg, order=3)


def test_vectorised_callable_is_called_once_per_batch():
    loop = pk.CallableModel(_biexp, {"a": 10.0, "b": 0.3}, "y", errors={"y": {"model": "additive", "add": 1.0}},
                            fd="central")
    vec = pk.CallableModel(_decay_batch, {"a": 10.0, "b": 0.3}, "y", errors={"y": {"model": "additive", "add": 1.0}},
                           fd="central", vectorized=True)
    P = np.array([[10.0, 0.3], [8.0, 0.2], [12.0, 0.5], [9.0, 0.4]])
    t = np.array([0.5, 1.0, 3.0, 8.0])
    a, b = loop.evaluate(P, t, order=2), vec.evaluate(P, t, order=2)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-12, atol=1e-12)
    assert vec.n_calls * P.shape[0] == loop.n_calls


def test_model_kinds_are_prediction_models():
    assert isinstance(compiled("warfarin")[1], pk.PredictionModel)
    assert isinstance(compiled("warfarin_ode")[1], pk.PredictionModel)
    assert isinstance(pk.CallableModel(_biexp, {"a": 1.0, "b": 0.3}, "y", errors={"y": {"model": "additive", "add": 1.0}}),
                      pk.PredictionModel)


def test_compiled_and_ode_models_pickle_and_run_in_a_process_pool():
    # a model travels by its spec; the worker loads the kernels from the disk cache (issue 14's first item)
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    model = pk.compile_model(pk.load_model("warfarin"))
    assert type(pickle.loads(pickle.dumps(model))).__name__ == "CompiledModel"
    ode = pk.compile_model(pk.load_model("warfarin_ode"))
    back = pickle.loads(pickle.dumps(ode))
    assert type(back).__name__ == "OdeModel" and back.spec.name == "warfarin_ode"
    d = model.spec.default_design
    d3 = pk.Design(d.groups * 3)
    import multiprocessing

    from pkdesign.executors import check_executor

    with pytest.warns(RuntimeWarning, match="fork"):  # the check that guards against fork (it may hang)
        check_executor(ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")))
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        par = pk.evaluate_fim(model, d3, "foce", draws=50, executor=ex).matrix
    assert np.array_equal(par, pk.evaluate_fim(model, d3, "foce", draws=50).matrix)  # identical, bit for bit


def test_callable_model_with_random_effects_in_evaluator_and_searches():
    """A Python model with variability and its own sensitivities (no time derivative) takes the prepared FO path
    of fim.plan through its ``evaluate`` (out= buffers without ∂f/∂t): the numbers of the general path."""
    from pkdesign.fim.api import _check_choice, _parameters

    model = pk.CallableModel(_decay_batch, {"a": 10.0, "b": 0.3}, "y", vectorized=True,
                             sensitivities=_decay_batch_sens, variability={"a": 0.1, "b": 0.2},
                             errors={"y": {"model": "combined", "add": 0.1, "prop": 0.01}})
    times = np.array([[0.5, 2.0, 6.0, 12.0], [1.0, 3.0, 8.0, 24.0]])
    idx = np.zeros(4, dtype=np.int64)
    names, F = pk.schedule_fims(model, times, idx, None, "fo", "reduced")
    pp = _parameters(model, None)
    ref = _check_choice("fo", "reduced")[0].schedules(model, pp, times, idx, None, False)
    np.testing.assert_array_equal(F, ref)
    design = pk.Design((pk.Group(20, {"y": times[0]}, None, "g"),))
    ev = pk.fim_evaluator(model, design)
    assert ev._plans[0] is not None
    ref = pk.evaluate_fim(model, design, check=False).matrix  # (contracted in numpy: equal to rounding)
    np.testing.assert_allclose(ev(), ref, rtol=0, atol=1e-14 * np.abs(ref).max())
