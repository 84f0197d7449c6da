"""User hooks: models built in Python.

(a) :func:`model_from_sympy` builds a :class:`ModelSpec` from sympy expressions; it then goes
    through the same pipeline as a model file (symbolic derivatives, numba kernels, cache).
(b) :class:`CallableModel` wraps a Python (or numba) function for predictions, with optional
    user-supplied sensitivities.  Without them, derivatives come from finite differences only
    when the user asks for them (``fd="central"`` or ``fd="complex-step"``).

Both expose the same ``evaluate(psi, times, regimen, output, order)`` as ``CompiledModel``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..design import Design, Regimen
from ..errors import DesignError, ModelSpecError
from .parse import check_spec
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
    """``error`` is e.g. ``{"model": "combined", "prop": 0.01, "add": 0.25}`` (variances)
    or ``{"model": "additive", "add": {"sd": 0.5}}``."""
    if not isinstance(error, dict) or error.get("model") not in ERROR_MODELS:
        raise ModelSpecError(
            f"output {name!r}: error must be a dict with 'model' in {list(ERROR_MODELS)}, got {error!r}"
        )
    model = error["model"]
    terms = []
    for kind in ERROR_MODELS[model]:
        if kind not in error:
            raise ModelSpecError(f"output {name!r}: error model {model!r} needs {kind!r}")
        v = error[kind]
        if isinstance(v, dict):
            if "sd" in v:
                terms.append(ErrorTermSpec(kind, float(v["sd"]) ** 2, "sd", bool(v.get("fixed", False))))
            else:
                terms.append(ErrorTermSpec(kind, float(v["variance"]), "variance", bool(v.get("fixed", False))))
        else:
            terms.append(ErrorTermSpec(kind, float(v)))
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
    spec = ModelSpec(
        name=name,
        parameters=params,
        outputs=tuple(outs),
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
        object.__setattr__(spec, "default_design", Design.from_dict(design, spec.output_names))
    return spec


class CallableModel:
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
    """

    def __init__(self, func, parameters: dict, outputs, *, errors: dict, variability=None, covariances=None,
                 sensitivities=None, fd=None, fd_step=None, name="callable", route="none", design=None):
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
            object.__setattr__(self.spec, "default_design", Design.from_dict(design, self.spec.output_names))
        self.func, self.sens, self.fd = func, sensitivities, fd
        self.fd_step = fd_step if fd_step is not None else (1e-20 if fd == "complex-step" else 1e-6)
        self.parameter_names = self.spec.parameter_names
        self.output_names = self.spec.output_names
        self.n_psi = len(self.parameter_names)
        self.n_calls = 0

    def _f(self, p, t, idx, regimen):
        self.n_calls += 1
        out = np.asarray(self.func(p, t, idx, regimen))
        if out.shape != t.shape:
            raise ModelSpecError(f"{self.spec.origin}: func returned shape {out.shape}, expected {t.shape}")
        return out

    def _d1(self, p, t, idx, regimen):
        if self.sens is not None:
            d = np.asarray(self.sens(p, t, idx, regimen), dtype=float)
            if d.shape != (t.size, self.n_psi):
                raise ModelSpecError(
                    f"{self.spec.origin}: sensitivities returned shape {d.shape}, expected {(t.size, self.n_psi)}"
                )
            return d
        if self.fd is None:
            raise ModelSpecError(
                f"{self.spec.origin}: derivatives requested but no sensitivities were given; "
                "pass sensitivities=... or opt into finite differences with fd='central' or fd='complex-step'"
            )
        d = np.empty((t.size, self.n_psi))
        for k in range(self.n_psi):
            h = self.fd_step * max(abs(p[k]), 1e-8)
            if self.fd == "complex-step":
                pc = p.astype(complex)
                pc[k] += 1j * h
                d[:, k] = np.imag(np.asarray(self.func(pc, t, idx, regimen))) / h
                self.n_calls += 1
            else:
                pp, pm = p.copy(), p.copy()
                pp[k] += h
                pm[k] -= h
                d[:, k] = (self._f(pp, t, idx, regimen) - self._f(pm, t, idx, regimen)) / (2 * h)
        return d

    def evaluate(self, psi, times, regimen: Regimen | None = None, output=None, order: int = 1):
        """Same contract as :meth:`CompiledModel.evaluate`."""
        psi_arr = np.asarray(psi, dtype=float)
        single = psi_arr.ndim == 1
        psi2 = np.atleast_2d(psi_arr)
        if psi2.shape[1] != self.n_psi:
            raise DesignError(f"psi: expected shape (n_vec, {self.n_psi}), got {psi_arr.shape}")
        t = np.asarray(times, dtype=float).ravel()
        if np.any(t < 0) or not np.all(np.isfinite(t)):
            raise DesignError("times: times must be finite and >= 0")
        idx = np.zeros(t.size, dtype=np.int64) if output is None else np.asarray(output, dtype=np.int64).ravel()
        nv, no, n = psi2.shape[0], t.size, self.n_psi
        res = {"f": np.empty((nv, no))}
        if order >= 1:
            res["d1"] = np.empty((nv, no, n))
            if self.fd is not None:  # d/dt only by finite differences; absent otherwise
                res["dt"] = np.empty((nv, no))
        if order >= 2:
            res["d2"] = np.empty((nv, no, n, n))
        for i in range(nv):
            p = psi2[i]
            res["f"][i] = self._f(p, t, idx, regimen)
            if order >= 1:
                res["d1"][i] = self._d1(p, t, idx, regimen)
                if self.fd is not None:
                    h = 1e-6 * np.maximum(np.abs(t), 1e-3)
                    res["dt"][i] = (self._f(p, t + h, idx, regimen) - self._f(p, np.maximum(t - h, 0), idx, regimen)) / (
                        t + h - np.maximum(t - h, 0))
            if order >= 2:
                if self.fd is None:
                    raise ModelSpecError(
                        f"{self.spec.origin}: second derivatives need fd='central' or fd='complex-step'"
                    )
                for k in range(n):
                    h = 1e-4 * max(abs(p[k]), 1e-8)
                    pp, pm = p.copy(), p.copy()
                    pp[k] += h
                    pm[k] -= h
                    res["d2"][i, :, k, :] = (self._d1(pp, t, idx, regimen) - self._d1(pm, t, idx, regimen)) / (2 * h)
                res["d2"][i] = 0.5 * (res["d2"][i] + res["d2"][i].transpose(0, 2, 1))
        if single:
            res = {k: v[0] for k, v in res.items()}
        return res
