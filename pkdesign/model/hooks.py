"""User hooks: models built in Python.

(a) :func:`model_from_sympy` builds a :class:`ModelSpec` from sympy expressions; it then goes
    through the same pipeline as a model file (symbolic derivatives, numba kernels, cache).
(b) :class:`CallableModel` wraps a Python (or numba) function for predictions, with optional
    user-supplied sensitivities.  Without them, derivatives come from finite differences only
    when the user asks for them (``fd="central"`` or ``fd="complex-step"``).

Both expose the same ``evaluate(psi, times, regimen, output, order)`` as ``CompiledModel``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import sympy as sp

from ..design import Design
from ..regimen import Regimen
from ..errors import DesignError, ModelSpecError
from .parse import check_spec
from .runtime import output_buffers, prepare_inputs
from .protocol import ModelDisplay
from .spec import (
    ERROR_MODELS,
    RESERVED,
    ROUTES,
    VARIABILITY_MODELS,
    CovarianceSpec,
    DosingSpec,
    ErrorTermSpec,
    ModelSpec,
    OutputSpec,
    ParameterSpec,
    VariabilitySpec,
)


def _error_terms(name: str, error) -> tuple:
    """``error`` is e.g. ``{"model": "combined", "prop": 0.01, "add": 0.25}`` (variances), optionally with
    ``"correlation"`` of the two epsilons (combined only), or ``{"model": "additive", "add": {"sd": 0.5}}``."""
    if not isinstance(error, dict) or error.get("model") not in ERROR_MODELS:
        raise ModelSpecError(
            f"output {name!r}: error must be a dict with 'model' in {list(ERROR_MODELS)}, got {error!r}"
        )
    model = error["model"]
    rho = 1.0 if model == "combined1" else float(error.get("correlation", 0.0))
    if "correlation" in error and model != "combined":
        raise ModelSpecError(f"output {name!r}: a correlation of the epsilons applies to the 'combined' error model")
    if not -1 <= rho <= 1:
        raise ModelSpecError(f"output {name!r}: correlation must be between -1 and 1, got {rho!r}")
    terms = []
    for kind in ERROR_MODELS[model]:
        if kind not in error:
            raise ModelSpecError(f"output {name!r}: error model {model!r} needs {kind!r}")
        v = error[kind]
        if isinstance(v, dict):
            if "sd" in v:
                terms.append(ErrorTermSpec(kind, float(v["sd"]) ** 2, "sd", bool(v.get("fixed", False)), rho))
            else:
                terms.append(ErrorTermSpec(kind, float(v["variance"]), "variance", bool(v.get("fixed", False)), rho))
        else:
            terms.append(ErrorTermSpec(kind, float(v), correlation=rho))
        if rho != 0 and not terms[-1].variance > 0:
            raise ModelSpecError(f"output {name!r}: correlated additive and proportional errors (combined1: "
                                 "SD = add + prop*f) need both terms > 0")
    return model, tuple(terms)


def _parameters(parameters) -> tuple:
    out = []
    for name, v in parameters.items():
        if not str(name).isidentifier() or name in RESERVED:
            raise ModelSpecError(f"parameter name {name!r} is not a valid name or is reserved ({RESERVED})")
        if isinstance(v, ParameterSpec):
            out.append(v)
        elif isinstance(v, dict):
            out.append(ParameterSpec(name, float(v["value"]), bool(v.get("fixed", False)), v.get("unit", "")))
        else:
            out.append(ParameterSpec(name, float(v)))
    return tuple(out)


def _variability(variability, names) -> tuple:
    out = []
    for name, v in (variability or {}).items():
        if name not in names:
            raise ModelSpecError(f"variability: unknown parameter {name!r}; parameters: {names}")
        if not isinstance(v, dict):
            v = {"variance": v}
        model = v.get("model", "exponential")
        if model not in VARIABILITY_MODELS:
            raise ModelSpecError(f"variability.{name}: unknown model {model!r}; expected one of {VARIABILITY_MODELS}")
        if "sd" in v:
            out.append(VariabilitySpec(name, model, float(v["sd"]) ** 2, "sd", bool(v.get("fixed", False))))
        else:
            out.append(VariabilitySpec(name, model, float(v["variance"]), "variance", bool(v.get("fixed", False))))
    return tuple(out)


def model_from_sympy(
    name: str,
    parameters: dict,
    outputs: dict,
    *,
    errors: dict,
    responses: dict | None = None,
    assignments: dict | None = None,
    variability: dict | None = None,
    covariances: dict | None = None,
    route: str = "none",
    bioavailability=1,
    lag=0,
    singularities=(),
    design: dict | None = None,
    time_unit: str = "h",
    description: str = "",
    derived: dict | None = None,
) -> ModelSpec:
    """Build a model from sympy expressions (same conventions as a model file).

    Parameters
    ----------
    parameters : dict name -> value (or ``{"value", "fixed"}``)
    outputs : dict name -> sympy expression in ``t``, parameters, assignments and responses
    errors : dict output name -> ``{"model": ..., "add"/"prop"/"exp": variance}``
    responses : dict name -> sympy expression in ``t`` (time since dose), ``DOSE``, ``TINF``
    assignments : dict name -> sympy expression (ordered)
    variability : dict parameter -> variance or ``{"model", "variance" | "sd"}``
    covariances : dict (a, b) -> covariance
    singularities : iterable of (symbol, expression) pairs of removable singularities
    design : optional default design as ``{"groups": [...]}``
    derived : dict name -> sympy expression in the parameters and assignments (AUC, tmax, ...)

    Symbols are matched by name: ``sympy.Symbol("CL")`` is the parameter ``CL``.
    """
    params = _parameters(parameters)
    names = [p.name for p in params]
    assigns = tuple((str(k), sp.sympify(v) if not isinstance(v, sp.Basic) else v)
                    for k, v in (assignments or {}).items())
    resp = tuple((str(k), v) for k, v in (responses or {}).items())
    if route not in ROUTES:
        raise ModelSpecError(f"route: unknown route {route!r}; expected one of {list(ROUTES)}")
    if resp and route == "none":
        raise ModelSpecError("responses are given: give a dosing route (bolus, infusion or oral)")
    known = set(names) | {a for a, _ in assigns}
    for rname, e in resp:
        bad = sorted({s.name for s in e.free_symbols} - known - set(RESERVED))
        if bad:
            raise ModelSpecError(f"responses.{rname}: unknown names {bad}")
    outs = []
    for oname, e in outputs.items():
        if oname not in errors:
            raise ModelSpecError(f"outputs.{oname}: missing residual error model in 'errors'")
        model, terms = _error_terms(oname, errors[oname])
        outs.append(OutputSpec(oname, sp.sympify(e), model, terms, text=str(e)))
    var = _variability(variability, names)
    vnames = [v.parameter for v in var]
    covs = []
    for (a, b), value in (covariances or {}).items():
        if a not in vnames or b not in vnames:
            raise ModelSpecError(f"covariances: {(a, b)} must both have variability; have {vnames}")
        covs.append(CovarianceSpec(a, b, float(value)))
    sub = {}
    for aname, e in assigns:
        sub[sp.Symbol(aname)] = e.xreplace(sub)
    der = []
    for dname, e in (derived or {}).items():
        e = sp.sympify(e).xreplace(sub)
        for prev, pe in der:
            e = e.xreplace({sp.Symbol(prev): pe})
        bad = sorted(s.name for s in e.free_symbols if s.name not in names)
        if bad:
            raise ModelSpecError(f"derived.{dname}: a derived quantity is a function of the parameters only; it uses "
                                 f"{bad}")
        der.append((str(dname), e))
    spec = ModelSpec(
        name=name,
        parameters=params,
        outputs=tuple(outs),
        derived=tuple(der),
        assignments=assigns,
        responses=resp,
        variability=var,
        covariances=tuple(covs),
        dosing=DosingSpec(route, sp.sympify(bioavailability), sp.sympify(lag)),
        singularities=tuple((sp.Symbol(str(a)) if isinstance(a, str) else a, sp.sympify(b)) for a, b in singularities),
        time_unit=time_unit,
        description=description,
        origin=f"<python model {name!r}>",
    )
    check_spec(spec)
    if design is not None:
        spec = replace(spec, default_design=Design.from_dict(design, spec.output_names))
    return spec


class CallableModel(ModelDisplay):
    """Predictions from a Python or numba function, behind the ``CompiledModel`` interface.

    Parameters
    ----------
    func : callable ``func(psi, times, output_index, regimen) -> f``
        ``psi`` shape (n_psi,), ``times`` shape (n_obs,), ``output_index`` int array (n_obs,),
        ``regimen`` a :class:`Regimen` or None; returns predictions, shape (n_obs,).
    parameters, errors, variability, covariances, outputs :
        As in :func:`model_from_sympy` (``outputs`` is a list of output names).
    sensitivities : callable, optional
        Same arguments, returns df/dpsi with shape (n_obs, n_psi).
    fd : {None, "central", "complex-step"}
        Finite differences for derivatives the user did not supply; None (the default) makes
        asking for such derivatives an error.  ``"complex-step"`` needs a ``func`` that accepts
        complex ``psi``.
    fd_step : float
        Relative step (default 1e-6 central, 1e-20 complex-step).
    vectorized : bool
        True: ``func`` (and ``sensitivities``) take the whole batch, ``psi`` shape (n_vec, n_psi), and return
        (n_vec, n_obs) (and (n_vec, n_obs, n_psi)): one call per batch instead of one per parameter vector.
    """

    def __init__(self, func, parameters: dict, outputs, *, errors: dict, variability=None, covariances=None,
                 sensitivities=None, fd=None, fd_step=None, name="callable", route="none", design=None,
                 vectorized: bool = False):
        if fd not in (None, "central", "complex-step"):
            raise ModelSpecError(f"fd: expected None, 'central' or 'complex-step', got {fd!r}")
        if not callable(func):
            raise ModelSpecError(f"func: expected a callable, got {type(func).__name__}")
        if isinstance(outputs, str):
            outputs = [outputs]
        outs = []
        for oname in outputs:
            if oname not in errors:
                raise ModelSpecError(f"outputs.{oname}: missing residual error model in 'errors'")
            model, terms = _error_terms(oname, errors[oname])
            outs.append(OutputSpec(oname, sp.Integer(0), model, terms, text="<python callable>"))
        params = _parameters(parameters)
        var = _variability(variability, [p.name for p in params])
        covs = tuple(CovarianceSpec(a, b, float(v)) for (a, b), v in (covariances or {}).items())
        self.spec = ModelSpec(name=name, parameters=params, outputs=tuple(outs), variability=var, covariances=covs,
                              dosing=DosingSpec(route), origin=f"<callable model {name!r}>")
        check_spec(self.spec)
        if design is not None:
            self.spec = replace(self.spec, default_design=Design.from_dict(design, self.spec.output_names))
        self.func, self.sens, self.fd, self.vectorized = func, sensitivities, fd, bool(vectorized)
        self.fd_step = fd_step if fd_step is not None else (1e-20 if fd == "complex-step" else 1e-6)
        self.parameter_names = self.spec.parameter_names
        self.output_names = self.spec.output_names
        self.n_psi = len(self.parameter_names)
        self.n_calls = 0

    # -- batches: one call of a vectorised function, else one call per parameter vector -----------
    def _f(self, P, t, idx, regimen) -> np.ndarray:
        """Predictions (n_vec, n_obs) for parameter vectors P (n_vec, n_psi) (complex for complex-step)."""
        nv, no = P.shape[0], t.size
        if self.vectorized:
            self.n_calls += 1
            out = np.asarray(self.func(P, t, idx, regimen))
            if out.shape != (nv, no):
                raise ModelSpecError(f"{self.spec.origin}: func returned shape {out.shape}, expected {(nv, no)} "
                                     "(vectorized=True: one row per parameter vector)")
            return out
        rows = []
        for p in P:
            self.n_calls += 1
            out = np.asarray(self.func(p, t, idx, regimen))
            if out.shape != t.shape:
                raise ModelSpecError(f"{self.spec.origin}: func returned shape {out.shape}, expected {t.shape}")
            rows.append(out)
        return np.stack(rows)

    def _user_d1(self, P, t, idx, regimen) -> np.ndarray:
        nv, no, n = P.shape[0], t.size, self.n_psi
        if self.vectorized:
            d = np.asarray(self.sens(P, t, idx, regimen), dtype=float)
            want = (nv, no, n)
        else:
            d = np.stack([np.asarray(self.sens(p, t, idx, regimen), dtype=float) for p in P])
            want = (nv, no, n)
        if d.shape != want:
            got = d.shape if self.vectorized else d.shape[1:]
            raise ModelSpecError(f"{self.spec.origin}: sensitivities returned shape {got}, expected "
                                 f"{want if self.vectorized else want[1:]}")
        return d

    def _d1(self, P, t, idx, regimen) -> np.ndarray:
        """df/dpsi (n_vec, n_obs, n_psi): the user's sensitivities, or finite differences when asked for."""
        if self.sens is not None:
            return self._user_d1(P, t, idx, regimen)
        if self.fd is None:
            raise ModelSpecError(
                f"{self.spec.origin}: derivatives requested but no sensitivities were given; "
                "pass sensitivities=... or opt into finite differences with fd='central' or fd='complex-step'"
            )
        d = np.empty((P.shape[0], t.size, self.n_psi))
        for k in range(self.n_psi):
            h = self.fd_step * np.maximum(np.abs(P[:, k]), 1e-8)
            if self.fd == "complex-step":
                Pc = P.astype(complex)
                Pc[:, k] += 1j * h
                d[:, :, k] = np.imag(self._f(Pc, t, idx, regimen)) / h[:, None]
            else:
                Pp, Pm = P.copy(), P.copy()
                Pp[:, k] += h
                Pm[:, k] -= h
                d[:, :, k] = (self._f(Pp, t, idx, regimen) - self._f(Pm, t, idx, regimen)) / (2 * h[:, None])
        return d

    def evaluate(self, psi, times, regimen: Regimen | None = None, output=None, order: int = 1, out=None):
        """Same contract as :meth:`CompiledModel.evaluate` (``out=`` included).  ``dt`` (∂f/∂t) is given only
        with finite differences (``fd``), by central differences in time; second derivatives need ``fd``."""
        psi2, single, t, idx = prepare_inputs(self, psi, times, output, order)
        nv, no, n = psi2.shape[0], t.size, self.n_psi
        if order >= 1 and self.fd is None and out is not None and "dt" in out:
            raise DesignError("out['dt']: this CallableModel gives no time derivative (it needs fd='central' or "
                              "fd='complex-step')")
        res = output_buffers(out, nv, no, n, order, single)
        if order >= 1 and self.fd is None:
            res.pop("dt", None)
        res["f"][...] = self._f(psi2, t, idx, regimen)
        if order >= 1:
            res["d1"][...] = self._d1(psi2, t, idx, regimen)
            if self.fd is not None:
                h = 1e-6 * np.maximum(np.abs(t), 1e-3)
                lo = np.maximum(t - h, 0)
                res["dt"][...] = (self._f(psi2, t + h, idx, regimen) - self._f(psi2, lo, idx, regimen)) / (t + h - lo)
        if order >= 2:
            if self.fd is None:
                raise ModelSpecError(f"{self.spec.origin}: second derivatives need fd='central' or fd='complex-step'")
            d2 = res["d2"]
            for k in range(n):
                h = 1e-4 * np.maximum(np.abs(psi2[:, k]), 1e-8)
                Pp, Pm = psi2.copy(), psi2.copy()
                Pp[:, k] += h
                Pm[:, k] -= h
                d2[:, :, k, :] = (self._d1(Pp, t, idx, regimen) - self._d1(Pm, t, idx, regimen)) / (2 * h[:, None, None])
            d2[...] = 0.5 * (d2 + d2.transpose(0, 1, 3, 2))
        if single:
            res = {k: v[0] for k, v in res.items()}
        return res
