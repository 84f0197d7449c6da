"""The section readers of a model file: parameters, ODE, dosing, outputs and their residual errors, derived
quantities, variability and covariances.  A mixin of :class:`pkdesign.model.parse._Reader`, which supplies
the value checks (``table``, ``number``, ``string``, ``boolean``, ``expr``, ``check_name``, ``err``)."""

from __future__ import annotations

import math

import sympy as sp

from .spec import (
    ERROR_MODELS,
    ROUTES,
    SOLVERS,
    VARIABILITY_MODELS,
    CovarianceSpec,
    DosingSpec,
    ErrorTermSpec,
    Extremum,
    ModelSpec,
    OdeSpec,
    OutputSpec,
    ParameterSpec,
    VariabilitySpec,
)


class SectionReaders:
    """``read_<section>`` methods of the model-file reader."""

    def read_parameters(self, section, taken) -> list:
        if section is None:
            self.err("parameters", "missing section [parameters] (the typical values)")
        section = self.table("parameters", section)
        if not section:
            self.err("parameters", "no parameters declared")
        out = []
        for pname, val in section.items():
            key = f"parameters.{pname}"
            self.check_name(key, pname, taken)
            if isinstance(val, dict):
                self.table(key, val, {"value", "fixed", "unit", "description", "scale"})
                scale = self.string(f"{key}.scale", val.get("scale", "linear"))
                if scale not in ("linear", "log"):
                    self.err(f"{key}.scale", f"expected 'linear' or 'log', got {scale!r}")
                if "value" not in val:
                    self.err(key, "missing 'value' (the typical value)")
                p = ParameterSpec(
                    pname,
                    self.number(f"{key}.value", val["value"]),
                    self.boolean(f"{key}.fixed", val.get("fixed", False)),
                    self.string(f"{key}.unit", val.get("unit", "")),
                    self.string(f"{key}.description", val.get("description", "")),
                    scale,
                )
            else:
                p = ParameterSpec(pname, self.number(key, val))
            out.append(p)
            taken[pname] = "a parameter"
        return out

    def read_covariates(self, section, taken) -> list:
        """``[covariates]``: ``WT = {unit = "kg", value = 70, description = "..."}`` (``value``, the default for
        groups that do not state one, is optional) or ``WT = 70``.  A covariate enters the model as a fixed
        parameter whose value each design group sets."""
        if section is None:
            return []
        out = []
        for name, val in self.table("covariates", section).items():
            key = f"covariates.{name}"
            self.check_name(key, name, taken)
            if isinstance(val, dict):
                self.table(key, val, {"value", "unit", "description"})
                value = self.number(f"{key}.value", val["value"]) if "value" in val else float("nan")
                unit = self.string(f"{key}.unit", val.get("unit", ""))
                desc = self.string(f"{key}.description", val.get("description", ""))
            else:
                value, unit, desc = self.number(key, val), "", ""
            out.append(ParameterSpec(name, value, True, unit, desc, covariate=True))
            taken[name] = "a covariate"
        return out

    def read_ode(self, section, syms, states) -> OdeSpec:
        section = self.table("ode", section, {"states", "derivatives", "initial", "solver", "rtol", "atol", "max_steps"})
        xsyms = dict(syms, **{x: sp.Symbol(x) for x in states}, t=sp.Symbol("t"))
        ders = self.table("ode.derivatives", section.get("derivatives", {}))
        unknown = sorted(set(ders) - set(states))
        if unknown:
            self.err("ode.derivatives", f"derivatives given for unknown state(s) {unknown}; the states are {states}")
        missing = [x for x in states if x not in ders]
        if missing:
            self.err("ode.derivatives", f"missing the derivative of state(s) {missing}")
        derivatives = tuple(self.expr(f"ode.derivatives.{x}", ders[x], xsyms) for x in states)
        init = self.table("ode.initial", section.get("initial", {}))
        unknown = sorted(set(init) - set(states))
        if unknown:
            self.err("ode.initial", f"initial conditions for unknown state(s) {unknown}; the states are {states}")
        initial = []
        for x in states:
            e = self.expr(f"ode.initial.{x}", init.get(x, 0), {k: v for k, v in syms.items()})
            if e.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
                self.err(f"ode.initial.{x}", f"the initial condition is not finite: {e}")
            initial.append(e)
        solver = section.get("solver", "dopri5")
        if solver not in SOLVERS:
            self.err("ode.solver", f"unknown solver {solver!r}; expected one of {list(SOLVERS)}")
        rtol = self.number("ode.rtol", section.get("rtol", 1e-8), positive=True)
        atol = self.number("ode.atol", section.get("atol", 1e-10), positive=True)
        max_steps = section.get("max_steps", 100000)
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            self.err("ode.max_steps", f"expected a whole number >= 1, got {max_steps!r}")
        return OdeSpec(tuple(states), derivatives, tuple(initial), solver, rtol, atol, max_steps)

    def read_dosing(self, section, syms) -> DosingSpec:
        section = self.table("dosing", section, {"route", "bioavailability", "lag", "duration", "compartment"})
        route = section.get("route", "none")
        if route not in ROUTES:
            self.err("dosing.route", f"unknown route {route!r}; expected one of {list(ROUTES)}")
        duration = section.get("duration")
        if duration is not None:
            duration = self.number("dosing.duration", duration, positive=True)
        return DosingSpec(
            route=route,
            bioavailability=self.expr("dosing.bioavailability", section.get("bioavailability", 1), syms),
            lag=self.expr("dosing.lag", section.get("lag", 0), syms),
            duration=duration,
            compartment=self.string("dosing.compartment", section["compartment"]) if "compartment" in section else None,
        )

    def read_outputs(self, section, syms, taken) -> list:
        if section is None:
            self.err("outputs", "missing section [outputs] (at least one observed output)")
        section = self.table("outputs", section)
        if not section:
            self.err("outputs", "no outputs declared")
        outputs = []
        for oname, val in section.items():
            key = f"outputs.{oname}"
            self.check_name(key, oname, taken)
            val = self.table(key, val, {"expression", "error", "unit", "description"})
            if "expression" not in val:
                self.err(key, "missing 'expression'")
            expr = self.expr(f"{key}.expression", val["expression"], syms)
            if "error" not in val:
                self.err(key, "missing 'error' (the residual error model)")
            model, terms = self.read_error(f"{key}.error", val["error"])
            outputs.append(OutputSpec(oname, expr, model, terms, self.string(f"{key}.unit", val.get("unit", "")),
                                      str(val["expression"])))
        return outputs

    def read_derived(self, section, params, assignments, syms, taken, state_syms, outputs=()) -> list:
        """``[derived]``: named functions of the parameters (AUC, tmax, Cmax, half-life, ...), each in the
        parameters, the assignments and the derived quantities above it; stored in the parameters only.  Or found
        numerically: ``Cmax = { max_of = "conc", dose = 70, window = [0, 48] }`` (also ``min_of``, ``argmax_of``
        for tmax, ``argmin_of``), for any model (ODE included)."""
        from .symbolic import expand_assignments

        section = self.table("derived", section)
        probe = ModelSpec(name="probe", parameters=tuple(params), outputs=(), assignments=tuple(assignments))
        sub = expand_assignments(probe)
        allowed = dict(syms, t=sp.Symbol("t"), DOSE=sp.Symbol("DOSE"), TINF=sp.Symbol("TINF"), **state_syms)
        pnames = {p.name for p in params}
        out = []
        onames = [o.name for o in outputs]
        for dname, text in section.items():
            key = f"derived.{dname}"
            self.check_name(key, dname, taken)
            if isinstance(text, dict):
                out.append((dname, self.read_extremum(key, text, onames)))
                taken[dname] = "a derived quantity"
                continue
            e = self.expr(key, text, allowed).xreplace(sub)
            for prev, pe in out:
                if not isinstance(pe, Extremum):  # a numerical extremum cannot enter a symbolic expression
                    e = e.xreplace({sp.Symbol(prev): pe})
            bad = sorted(s.name for s in e.free_symbols if s.name not in pnames)
            if bad:
                self.err(key, f"a derived quantity is a function of the parameters only; it uses {bad} (time, doses "
                              "and states differ between samples and subjects: write e.g. AUC = F*70/CL with the "
                              "dose as a number)")
            out.append((dname, e))
            allowed[dname] = sp.Symbol(dname)
            taken[dname] = "a derived quantity"
        return out

    def read_extremum(self, key, val, onames) -> Extremum:
        kinds = {"max_of": "max", "min_of": "min", "argmax_of": "argmax", "argmin_of": "argmin"}
        self.table(key, val, set(kinds) | {"dose", "window"})
        given = [k for k in kinds if k in val]
        if len(given) != 1:
            self.err(key, f"give exactly one of {sorted(kinds)} (the output whose peak, nadir or their time is "
                          "meant), with dose and window")
        output = val[given[0]]
        if output not in onames:
            self.err(f"{key}.{given[0]}", f"unknown output {output!r}; outputs: {onames}")
        if "window" not in val:
            self.err(key, "a numerical extremum needs window = [lo, hi] (and dose: one dose at t = 0, for models "
                          "with doses)")
        dose = self.number(f"{key}.dose", val.get("dose", 0.0), nonneg=True)
        w = val["window"]
        if not (isinstance(w, list) and len(w) == 2):
            self.err(f"{key}.window", f"expected [lo, hi], got {w!r}")
        lo, hi = self.number(f"{key}.window", w[0], nonneg=True), self.number(f"{key}.window", w[1])
        if not hi > lo:
            self.err(f"{key}.window", f"expected lo < hi, got {w!r}")
        return Extremum(kinds[given[0]], output, dose, (lo, hi))

    def read_error(self, key, val):
        val = self.table(key, val, {"model", "add", "prop", "exp", "correlation"})
        model = val.get("model")
        if model not in ERROR_MODELS:
            self.err(f"{key}.model", f"unknown error model {model!r}; expected one of {list(ERROR_MODELS)}")
        kinds = ERROR_MODELS[model]
        rho = 1.0 if model == "combined1" else 0.0
        if "correlation" in val:
            if model != "combined":
                self.err(f"{key}.correlation", f"a correlation of the epsilons applies to the 'combined' error model, "
                                               f"not {model!r}")
            rho = self.number(f"{key}.correlation", val["correlation"])
            if not -1 <= rho <= 1:
                self.err(f"{key}.correlation", f"expected a correlation between -1 and 1, got {rho:g}")
        extra = sorted(set(val) - {"model", "correlation"} - set(kinds))
        if extra:
            self.err(key, f"error model {model!r} takes {list(kinds)}, not {extra}")
        terms = []
        for kind in kinds:
            if kind not in val:
                self.err(key, f"error model {model!r} needs '{kind}' (e.g. {kind} = {{ variance = 0.01 }})")
            variance, scale, fixed = self.variance_or_sd(f"{key}.{kind}", val[kind])
            if rho != 0 and not variance > 0:
                self.err(f"{key}.{kind}", "correlated additive and proportional errors (combined1: SD = add + prop*f) "
                                          "need both terms > 0, got 0")
            terms.append(ErrorTermSpec(kind, variance, scale, fixed, rho))
        return model, tuple(terms)

    def variance_or_sd(self, key, val):
        val = self.table(key, val, {"variance", "sd", "fixed", "model"})
        if ("variance" in val) == ("sd" in val):
            self.err(key, "give exactly one of 'variance' or 'sd'")
        fixed = self.boolean(f"{key}.fixed", val.get("fixed", False))
        if "variance" in val:
            return self.number(f"{key}.variance", val["variance"], nonneg=True), "variance", fixed
        sd = self.number(f"{key}.sd", val["sd"], nonneg=True)
        return sd * sd, "sd", fixed

    def read_variability(self, section, psyms) -> tuple:
        """``[variability]``: between-subject entries, and inter-occasion ones: ``occasion = true`` makes the
        entry's variance that of κ (one κ per occasion, no η), ``occasion = {variance | sd = ...}`` adds
        inter-occasion variability (same model) to the entry's between-subject one.  Returns (bsv, iov)."""
        section = self.table("variability", section)
        out, iov = [], []
        for pname, val in section.items():
            key = f"variability.{pname}"
            if pname not in psyms:
                self.err(key, f"unknown parameter {pname!r}; parameters: {list(psyms)}")
            val = self.table(key, val, {"model", "variance", "sd", "fixed", "occasion"})
            model = val.get("model", "exponential")
            if model not in VARIABILITY_MODELS:
                self.err(f"{key}.model", f"unknown variability model {model!r}; expected one of {list(VARIABILITY_MODELS)}")
            occ = val.get("occasion", False)
            base = {k: v for k, v in val.items() if k != "occasion"}
            if isinstance(occ, dict):
                variance, scale, fixed = self.variance_or_sd(f"{key}.occasion", occ)
                iov.append(VariabilitySpec(pname, model, variance, scale, fixed))
                if "variance" in base or "sd" in base:
                    out.append(VariabilitySpec(pname, model, *self.variance_or_sd(key, base)))
            elif self.boolean(f"{key}.occasion", occ):
                iov.append(VariabilitySpec(pname, model, *self.variance_or_sd(key, base)))
            else:
                out.append(VariabilitySpec(pname, model, *self.variance_or_sd(key, base)))
        return out, iov

    def read_covariances(self, section, variability) -> list:
        if not isinstance(section, list):
            self.err("covariance", "expected [[covariance]] entries")
        names = [v.parameter for v in variability]
        out, seen = [], set()
        for i, val in enumerate(section):
            key = f"covariance[{i}]"
            val = self.table(key, val, {"between", "value", "correlation", "fixed"})
            pair = val.get("between")
            if not isinstance(pair, list) or len(pair) != 2 or pair[0] == pair[1]:
                self.err(f"{key}.between", f"expected two different parameter names, got {pair!r}")
            for p in pair:
                if p not in names:
                    self.err(f"{key}.between", f"{p!r} has no [variability] entry; parameters with variability: {names}")
            if frozenset(pair) in seen:
                self.err(key, f"covariance between {pair} given twice")
            seen.add(frozenset(pair))
            if ("value" in val) == ("correlation" in val):
                self.err(key, "give exactly one of 'value' (a covariance) or 'correlation'")
            v1 = variability[names.index(pair[0])].variance
            v2 = variability[names.index(pair[1])].variance
            if "value" in val:
                cov = self.number(f"{key}.value", val["value"])
            else:
                r = self.number(f"{key}.correlation", val["correlation"])
                if not -1 < r < 1:
                    self.err(f"{key}.correlation", f"expected a number in (-1, 1), got {r!r}")
                cov = r * math.sqrt(v1 * v2)
            out.append(CovarianceSpec(pair[0], pair[1], cov, self.boolean(f"{key}.fixed", val.get("fixed", False))))
        return out
