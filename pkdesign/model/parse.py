"""Read a model file (TOML) into a validated :class:`ModelSpec`.

First step of the pipeline.  The file is data: TOML is parsed with :mod:`tomllib` and every
expression with the allowlist parser of :mod:`pkdesign.model.expr`.  Each error names the file,
the key and what was expected.  The format is documented in the README ("Model files").
"""

from __future__ import annotations

import math
import tomllib
import unicodedata
from dataclasses import replace
from pathlib import Path

import sympy as sp

from ..design import Design
from ..errors import fmt
from ..errors import DesignError, ModelSpecError
from .expr import parse_expression
from .parse_sections import SectionReaders
from .spec import RESERVED, ROUTES, ModelSpec

_SECTIONS = {"model", "parameters", "covariates", "variability", "covariance", "assignments", "dosing", "responses", "outputs", "design",
             "ode", "derived"}


def parse_model_text(text: str, origin: str = "<string>") -> ModelSpec:
    """Parse the text of a model file (TOML); ``origin`` names it in error messages."""
    if text.startswith("\ufeff"):
        raise ModelSpecError(f"{origin}: the file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 "
                             "without BOM")
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ModelSpecError(f"{origin}: not valid TOML: {exc}") from None
    return _Reader(data, origin).read()


def canonical_name(name: str) -> str:
    """A name as Python's parser sees it: Unicode NFKC normal form (full-width ``ＫＡ`` is ``KA``)."""
    return unicodedata.normalize("NFKC", name)


class _Reader(SectionReaders):
    def __init__(self, data: dict, origin: str):
        self.origin = origin
        self.spelling: dict = {}  # canonical name -> the spelling in the file, where they differ
        self.data = self.canonical(data)

    # -- helpers ------------------------------------------------------------------------
    def canonical(self, data):
        """``data`` with every name in NFKC form (expressions are parsed that way by Python), so that
        two spellings of one name can never be two different names; a table where two keys fold to
        one name is an error naming both."""
        if not isinstance(data, dict):
            return data
        data = dict(data)

        def fold(name):
            if not isinstance(name, str):
                return name
            c = canonical_name(name)
            if c != name:
                self.spelling.setdefault(c, name)
            return c

        def fold_keys(where, table):
            folded, first = {}, {}
            for k, v in table.items():
                c = fold(k)
                if c in folded:
                    self.err(where, f"{first[c]!r} and {k!r} are the same name after Unicode NFKC normalisation "
                                    "(as Python reads expressions); rename one")
                folded[c], first[c] = v, k
            return folded

        for section in ("parameters", "covariates", "variability", "assignments", "responses", "outputs"):
            if isinstance(data.get(section), dict):
                data[section] = fold_keys(section, data[section])
        if isinstance(data.get("ode"), dict):
            ode = dict(data["ode"])
            for sub in ("derivatives", "initial"):
                if isinstance(ode.get(sub), dict):
                    ode[sub] = fold_keys(f"ode.{sub}", ode[sub])
            if isinstance(ode.get("states"), list):
                ode["states"] = [fold(x) for x in ode["states"]]
            data["ode"] = ode
        dosing = data.get("dosing")
        if isinstance(dosing, dict) and isinstance(dosing.get("compartment"), str):
            data["dosing"] = dict(dosing, compartment=fold(dosing["compartment"]))
        cov = data.get("covariance")
        if isinstance(cov, list):
            data["covariance"] = [dict(c, between=[fold(x) for x in c["between"]])
                                  if isinstance(c, dict) and isinstance(c.get("between"), list) else c for c in cov]
        return data

    def err(self, key: str, msg: str):
        raise ModelSpecError(f"{self.origin}: {key}: {msg}")

    def table(self, key: str, value, allowed=None) -> dict:
        if not isinstance(value, dict):
            self.err(key, f"expected a table, got {type(value).__name__} {fmt(value)}")
        if allowed is not None:
            unknown = sorted(set(value) - set(allowed))
            if unknown:
                self.err(key, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        return value

    def number(self, key: str, value, *, positive=False, nonneg=False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.err(key, f"expected a number, got {fmt(value)}")
        v = float(value)
        if not math.isfinite(v):
            self.err(key, f"expected a finite number, got {fmt(value)}")
        if positive and not v > 0:
            self.err(key, f"expected a number > 0, got {fmt(value)}")
        if nonneg and not v >= 0:
            self.err(key, f"expected a number >= 0, got {fmt(value)}")
        return v

    def string(self, key: str, value) -> str:
        if not isinstance(value, str):
            self.err(key, f"expected a string, got {fmt(value)}")
        return value

    def boolean(self, key: str, value) -> bool:
        if not isinstance(value, bool):
            self.err(key, f"expected true or false, got {fmt(value)}")
        return value

    def expr(self, key: str, value, symbols: dict) -> sp.Expr:
        return parse_expression(value, symbols, where=f"{self.origin}: {key}")

    def check_name(self, key: str, name: str, taken: dict):
        if not name.isidentifier() or name.startswith("_"):
            self.err(key, f"{name!r} is not a valid name (letters, digits and _, not starting with _ or a digit)")
        if name in RESERVED:
            self.err(key, f"{name!r} is reserved (reserved names: {', '.join(RESERVED)})")
        if name in taken:
            note = (f" (also written {self.spelling[name]!r} in the file: names are compared after Unicode NFKC "
                    "normalisation, as Python reads expressions)" if name in self.spelling else "")
            self.err(key, f"{name!r} is already defined as {taken[name]}{note}")

    # -- sections ----------------------------------------------------------------------
    def read(self) -> ModelSpec:
        d = self.data
        unknown = sorted(set(d) - _SECTIONS)
        if unknown:
            self.err("top level", f"unknown section(s) {unknown}; allowed: {sorted(_SECTIONS)}")
        meta = self.table(
            "model",
            d.get("model", {}),
            {"name", "description", "source", "time_unit", "independent", "removable_singularities"},
        )
        name = self.string("model.name", meta.get("name", Path(self.origin).stem))
        independent = self.string("model.independent", meta.get("independent", "t"))
        if not independent.isidentifier():
            self.err("model.independent", f"{independent!r} is not a valid name")

        taken: dict = {}
        params = self.read_parameters(d.get("parameters"), taken)
        params += self.read_covariates(d.get("covariates"), taken)
        psyms = {p.name: sp.Symbol(p.name) for p in params}

        assignments = []
        syms = dict(psyms)
        state_syms = {}
        if "ode" in d:  # states may appear in assignments (e.g. C = central/V)
            states = self.table("ode", d["ode"]).get("states")
            if not isinstance(states, list) or not states or not all(isinstance(x, str) for x in states):
                self.err("ode.states", "expected a non-empty list of state names, e.g. [\"depot\", \"central\"]")
            if len(set(states)) != len(states):
                self.err("ode.states", f"duplicate state names in {states}")
            for x in states:
                self.check_name(f"ode.states ({x})", x, taken)
                taken[x] = "a state"
                state_syms[x] = sp.Symbol(x)
        syms_a = dict(syms, **state_syms)
        for aname, text in self.table("assignments", d.get("assignments", {})).items():
            self.check_name(f"assignments.{aname}", aname, taken)
            assignments.append((aname, self.expr(f"assignments.{aname}", text, syms_a)))
            syms[aname] = sp.Symbol(aname)
            syms_a[aname] = sp.Symbol(aname)
            taken[aname] = "an assignment"

        dosing = self.read_dosing(d.get("dosing", {}), syms)

        responses = []
        rsyms = dict(syms, t=sp.Symbol("t"), DOSE=sp.Symbol("DOSE"), TINF=sp.Symbol("TINF"))
        for rname, text in self.table("responses", d.get("responses", {})).items():
            self.check_name(f"responses.{rname}", rname, taken)
            e = self.expr(f"responses.{rname}", text, rsyms)
            if not e.has(sp.Symbol("DOSE")):
                self.err(f"responses.{rname}", "a response must depend on DOSE (it is superposed over the doses)")
            responses.append((rname, e))
            taken[rname] = "a response"
        if responses and independent != "t":
            self.err("model.independent", "dose responses need time 't' as the independent variable")
        ode = self.read_ode(d["ode"], syms, list(state_syms)) if "ode" in d else None
        if ode is not None:
            from .symbolic import expand_assignments

            probe = ModelSpec(name=name, parameters=tuple(params), outputs=(), assignments=tuple(assignments))
            full = expand_assignments(probe)
            for key, e in (("dosing.bioavailability", dosing.bioavailability), ("dosing.lag", dosing.lag)):
                bad = sorted(s.name for s in sp.sympify(e).xreplace(full).free_symbols if s.name in state_syms)
                if bad:
                    self.err(key, f"must not depend on states {bad}")
        if ode is not None:
            if responses:
                self.err("responses", "an ODE model describes its doses through [ode] and dosing.compartment; "
                                      "remove [responses]")
            if dosing.route != "none" and dosing.compartment is None:
                self.err("dosing.compartment", f"an ODE model needs the state that receives the doses; one of {list(ode.states)}")
            if dosing.compartment is not None and dosing.compartment not in ode.states:
                self.err("dosing.compartment", f"doses go into unknown compartment {dosing.compartment!r}; "
                                               f"the states are {list(ode.states)}")
        elif dosing.compartment is not None:
            self.err("dosing.compartment", "only ODE models take a dose compartment")
        if responses and dosing.route == "none":
            self.err("dosing.route", f"the model has responses {[r for r, _ in responses]}; give a route ({', '.join(ROUTES[1:])})")
        if not responses and ode is None and dosing.route != "none":
            self.err("responses", f"dosing route {dosing.route!r} is given but no [responses] use the dose")

        osyms = dict(syms)
        osyms.update({r: sp.Symbol(r) for r, _ in responses})
        if ode is not None:
            osyms.update({x: sp.Symbol(x) for x in ode.states})
        osyms[independent] = sp.Symbol("t")
        outputs = self.read_outputs(d.get("outputs"), osyms, taken)

        derived = self.read_derived(d.get("derived", {}), params, assignments, syms, taken, state_syms, outputs)
        variability, occasion_variability = self.read_variability(d.get("variability", {}), psyms)
        covariances = self.read_covariances(d.get("covariance", []), variability)

        singularities = []
        sing = meta.get("removable_singularities", [])
        if not isinstance(sing, list):
            self.err("model.removable_singularities", "expected a list of pairs, e.g. [[\"KA\", \"K\"]]")
        for i, pair in enumerate(sing):
            key = f"model.removable_singularities[{i}]"
            if not isinstance(pair, list) or len(pair) != 2:
                self.err(key, f"expected a pair of expressions, got {pair!r}")
            singularities.append(tuple(self.expr(key, p, syms) for p in pair))

        spec = ModelSpec(
            name=name,
            parameters=tuple(params),
            outputs=tuple(outputs),
            assignments=tuple(assignments),
            responses=tuple(responses),
            variability=tuple(variability),
            occasion_variability=tuple(occasion_variability),
            covariances=tuple(covariances),
            dosing=dosing,
            singularities=tuple(singularities),
            description=self.string("model.description", meta.get("description", "")),
            source=self.string("model.source", meta.get("source", "")),
            time_unit=self.string("model.time_unit", meta.get("time_unit", "h")),
            independent=independent,
            origin=self.origin,
            ode=ode,
            derived=tuple(derived),
        )
        check_spec(spec)
        if "design" in d:
            try:
                design = Design.from_dict(d["design"], spec.output_names, where=f"{self.origin}: design")
            except DesignError as exc:
                raise ModelSpecError(str(exc)) from None
            spec = replace(spec, default_design=design)  # a new spec: ModelSpec is immutable
        return spec


def check_spec(spec: ModelSpec) -> None:
    """Cross-checks shared by files and Python-built models (Ω positive semi-definite, names)."""
    import numpy as np

    covariates = {p.name for p in spec.parameters if p.covariate}
    for v in spec.variability + spec.occasion_variability:
        if v.parameter in covariates:
            raise ModelSpecError(f"{spec.origin}: variability.{v.parameter}: {v.parameter} is a covariate (its value is "
                                 "set per design group); variability belongs to parameters")
    if spec.variability:
        om = spec.omega
        eig = np.linalg.eigvalsh(om)
        if eig.min() < -1e-12 * max(1.0, abs(eig).max()):
            raise ModelSpecError(
                f"{spec.origin}: Ω (variability and covariance) is not positive semi-definite: "
                f"smallest eigenvalue {eig.min():.3g}"
            )
    for o in spec.outputs:
        free = {s.name for s in o.expression.free_symbols}
        allowed = set(spec.parameter_names) | {a for a, _ in spec.assignments} | {r for r, _ in spec.responses} | {"t"}
        if spec.ode is not None:
            allowed |= set(spec.ode.states)
        bad = sorted(free - allowed)
        if bad:
            raise ModelSpecError(f"{spec.origin}: outputs.{o.name}: unknown names {bad}")
