"""NONMEM control streams as pkdesign models (optional: ``pip install "pkdesign[nonmem]"``, on pharmpy-core).

``nonmem_to_toml(path)`` reads a control stream with pharmpy and writes the equivalent model file;
``from_nonmem(path)`` parses that text into a ``ModelSpec``.  The translation is general rather than a
table of ADVANs: pharmpy turns every ADVAN/TRANS (1-4, 11, 12) and $DES (13) into a compartmental ODE system,
which becomes the ``[ode]`` section; ``$PK`` assignments become ``[assignments]`` (a name assigned twice,
e.g. ``IF (...) TVV = ...``, is renamed ``TVV_2`` from its second assignment on; IF blocks become
``a if cond else b``); every THETA is a parameter (fixed when FIXed); every ETA becomes a parameter of value 0
with additive variability of its $OMEGA variance (``$OMEGA BLOCK`` covariances as ``[[covariance]]``), so
``CL = THETA(1)*EXP(ETA(1))`` keeps its exact form and any use of ETA (exponential, proportional, additive or
anything else) is handled by the approximations as written; data items the model uses are ``[covariates]``
(default: their value in the first record).  ``$ERROR``: Y = F + F·EPS (proportional), F + EPS (additive),
both (combined), F·EXP(EPS) (exponential); the prediction is Y at EPS = 0.  The dataset's dose and sample
records (one group per ID, its covariates) become the example ``[design]``.  What cannot be mapped raises
``ModelSpecError`` naming the statement and what to do.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ModelSpecError

_RESERVED = {"t", "DOSE", "TINF", "pi", "e"}


def _pharmpy():
    try:
        import pharmpy.modeling as modeling
    except ImportError:
        raise ModelSpecError('reading NONMEM control streams needs pharmpy: pip install "pkdesign[nonmem]"') from None
    return modeling


def _printer():
    import sympy as sp
    from sympy.printing.str import StrPrinter

    class Printer(StrPrinter):
        """sympy -> pkdesign's expression language (``a if c else b``, ``and``/``or``/``not``, ``abs``)."""

        def _print_Piecewise(self, expr):
            *pairs, (last, cond) = expr.args
            out = self._print(last)
            if cond is not sp.true and cond != True:  # noqa: E712 - sympy's true
                raise ModelSpecError(f"an IF without ELSE that leaves the value undefined: {expr}")
            for value, c in reversed(pairs):
                out = f"({self._print(value)} if {self._print(c)} else {out})"
            return out

        def _print_And(self, expr):
            return "(" + " and ".join(self._print(a) for a in expr.args) + ")"

        def _print_Or(self, expr):
            return "(" + " or ".join(self._print(a) for a in expr.args) + ")"

        def _print_Not(self, expr):
            return f"(not {self._print(expr.args[0])})"

        def _print_Relational(self, expr):
            op = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[expr.rel_op]
            return f"({self._print(expr.lhs)} {op} {self._print(expr.rhs)})"

        def _print_Abs(self, expr):
            return f"abs({self._print(expr.args[0])})"

        def _print_Max(self, expr):
            return "max(" + ", ".join(self._print(a) for a in expr.args) + ")"

        def _print_Min(self, expr):
            return "min(" + ", ".join(self._print(a) for a in expr.args) + ")"

    return Printer()


def _num(v) -> str:
    return repr(float(v))


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Translator:
    def __init__(self, model, origin: str):
        import sympy as sp

        self.sp, self.model, self.origin = sp, model, origin
        self.printer = _printer()
        self.rv = model.random_variables
        self.inits = dict(model.parameters.inits)
        self.fixed = {p.name: bool(p.fix) for p in model.parameters}
        self.eta_names = list(self.rv.etas.names)
        self.eps_names = list(self.rv.epsilons.names)
        var_params = set(self.rv.etas.parameter_names) | set(self.rv.epsilons.parameter_names)
        self.thetas = [n for n in model.parameters.names if n not in var_params]

    def s(self, e):
        return self.sp.sympify(e)

    def text(self, e, where: str) -> str:
        try:
            return self.printer.doprint(e)
        except ModelSpecError as exc:
            raise ModelSpecError(f"{self.origin}: {where}: {exc}") from None

    def value(self, e) -> float:
        e = self.s(e)
        if e.is_Number:
            return float(e)
        name = str(e)
        if name not in self.inits:
            raise ModelSpecError(f"{self.origin}: cannot read the value of {e}")
        return float(self.inits[name])

    def fixed_of(self, e) -> bool:
        return self.fixed.get(str(self.s(e)), True)

    # -- the pieces ------------------------------------------------------------------------
    def translate(self) -> str:
        sp = self.sp
        st = self.model.statements
        ode = st.ode_system
        if ode is None:
            raise ModelSpecError(f"{self.origin}: no ODE system or ADVAN found; pkdesign imports PK models with $PK "
                                 "and an ADVAN (1-4, 11-13)")
        t = sp.Symbol("t")
        amounts = [self.s(a) for a in ode.amounts]
        # the amount A_X(t) becomes the state X
        states = {a: sp.Symbol((str(a.func) if a.args else str(a)).removeprefix("A_")) for a in amounts}
        # $PK (and $DES assignments, which may use the amounts) with SSA renaming of reassigned names: the k-th
        # assignment of NAME (k >= 2) is NAME_k
        current, assignments, count = {}, [], {}
        for stmt in st.before_odes:
            name = str(stmt.symbol)
            expr = self.s(stmt.expression).xreplace(current).xreplace(states)
            count[name] = count.get(name, 0) + 1
            new = name if count[name] == 1 else f"{name}_{count[name]}"
            if new != name and any(n == new for n, _ in assignments):
                raise ModelSpecError(f"{self.origin}: $PK: {name} is assigned again, and {new} (the name its "
                                     "reassignment takes) is already used; rename one of them")
            assignments.append((new, expr))
            current[sp.Symbol(name)] = sp.Symbol(new)
        ders = {}
        for eq in ode.eqs:
            lhs = self.s(eq.lhs)
            amount = lhs.args[0] if isinstance(lhs, sp.Derivative) else lhs
            ders[states[amount]] = self.s(eq.rhs).xreplace(states).xreplace(current)
        dosing = list(ode.dosing_compartments)
        if len(dosing) != 1:
            raise ModelSpecError(f"{self.origin}: {len(dosing)} dosing compartments; pkdesign models dose one compartment")
        comp = dosing[0]
        doses = list(comp.doses)
        kind = type(doses[0]).__name__ if doses else "Bolus"
        route = "infusion" if kind == "Infusion" else "bolus"
        dose_state = next((x for x in states.values() if x.name == comp.name), None)
        if dose_state is None:
            raise ModelSpecError(f"{self.origin}: cannot find the amount of dosing compartment {comp.name}")
        lag = self.s(comp.lag_time).xreplace(current)
        bio = self.s(comp.bioavailability).xreplace(current)
        # $ERROR: Y with every later assignment substituted
        after = {}
        y_expr = None
        dv = list(self.model.dependent_variables)[0] if self.model.dependent_variables else sp.Symbol("Y")
        for stmt in st.after_odes:
            e = self.s(stmt.expression).xreplace(after).xreplace(current).xreplace(states)
            after[sp.Symbol(str(stmt.symbol))] = e
            if str(stmt.symbol) == str(dv):
                y_expr = e
        if y_expr is None:
            raise ModelSpecError(f"{self.origin}: $ERROR does not define {dv}")
        eps = [sp.Symbol(n) for n in self.eps_names]
        pred = sp.simplify(y_expr.xreplace({e: 0 for e in eps}))
        terms = self.error_terms(y_expr, pred, eps)
        # covariates: data items the model uses
        known = {sp.Symbol(n) for n in self.thetas + self.eta_names} | {sp.Symbol(n) for n, _ in assignments}
        known |= set(states.values()) | {t}
        used = set()
        for _, e in assignments:
            used |= e.free_symbols
        for e in list(ders.values()) + [pred, lag, bio]:
            used |= e.free_symbols
        covariates = sorted(s.name for s in used - known - set(eps))
        return self.toml(assignments, list(states.values()), ders, route, dose_state, lag, bio, pred, terms,
                         covariates)

    def error_terms(self, y, pred, eps) -> list:
        sp = self.sp
        sig = self.rv.epsilons.covariance_matrix
        out = []
        zero = {e: 0 for e in eps}
        for k, e in enumerate(eps):
            g = sp.simplify(sp.diff(y, e).xreplace(zero))
            second = sp.simplify(sp.diff(y, e, 2).xreplace(zero))
            var = self.value(sig[k, k])
            fixed = self.fixed_of(sig[k, k])
            if any(sig[k, j] != 0 for j in range(len(eps)) if j != k):
                raise ModelSpecError(f"{self.origin}: $SIGMA: correlated EPS are not supported (give independent EPS)")
            if second != 0:
                if sp.simplify(y.xreplace({x: 0 for x in eps if x != e}) - pred * sp.exp(e)) == 0:
                    out.append(("exp", var, fixed))
                    continue
                raise ModelSpecError(f"{self.origin}: $ERROR: Y is not linear in {e} nor of the form F*EXP({e}); "
                                     "supported: F + F*EPS, F + EPS, both, F*EXP(EPS)")
            if g == 1:
                out.append(("add", var, fixed))
            elif sp.simplify(g - pred) == 0:
                out.append(("prop", var, fixed))
            else:
                raise ModelSpecError(f"{self.origin}: $ERROR: the coefficient of {e} is {g}; supported: 1 (additive) "
                                     "or F (proportional). A THETA as the residual SD: fix it and put its square in "
                                     "$SIGMA")
        return out

    def toml(self, assignments, states, ders, route, dose_state, lag, bio, pred, terms, covariates) -> str:
        L = ["# Imported from a NONMEM control stream by pkdesign (pharmpy): check the units and time unit.",
             "[model]", f"name = {_q(self.name)}", f"description = {_q(self.description)}", f"source = {_q(self.origin)}",
             'time_unit = "h"', "", "[parameters]"]
        for n in self.thetas:
            L.append(f"{n} = {{ value = {_num(self.inits[n])}{', fixed = true' if self.fixed[n] else ''} }}")
        for n in self.eta_names:
            L.append(f"{n} = {{ value = 0.0, fixed = true, description = \"random effect {n}\" }}")
        if covariates:
            L += ["", "[covariates]"]
            first = self.first_record()
            for c in covariates:
                v = first.get(c)
                L.append(f"{c} = {{ value = {_num(v)} }}" if v is not None and math.isfinite(v) else f"{c} = {{ }}")
        omega = self.rv.etas.covariance_matrix
        L += ["", "[variability]"]
        for k, n in enumerate(self.eta_names):
            fixed = ", fixed = true" if self.fixed_of(omega[k, k]) else ""
            L.append(f"{n} = {{ model = \"additive\", variance = {_num(self.value(omega[k, k]))}{fixed} }}")
        for i in range(len(self.eta_names)):
            for j in range(i):
                if omega[i, j] != 0:
                    L += ["", "[[covariance]]", f"between = [{_q(self.eta_names[j])}, {_q(self.eta_names[i])}]",
                          f"value = {_num(self.value(omega[i, j]))}"]
        L += ["", "[assignments]"]
        for n, e in assignments:
            L.append(f"{n} = {_q(self.text(e, f'$PK {n}'))}")
        L += ["", "[ode]", "states = [" + ", ".join(_q(s.name) for s in states) + "]", "[ode.derivatives]"]
        for s in states:
            L.append(f"{s.name} = {_q(self.text(ders.get(s, 0), f'd{s.name}/dt'))}")
        L += ["", "[dosing]", f"route = {_q(route)}", f"compartment = {_q(dose_state.name)}"]
        if bio != 1:
            L.append(f"bioavailability = {_q(self.text(bio, 'bioavailability'))}")
        if lag != 0:
            L.append(f"lag = {_q(self.text(lag, 'lag time'))}")
        kinds = [k for k, _, _ in terms]
        model = {("prop",): "proportional", ("add",): "additive", ("exp",): "exponential"}.get(tuple(kinds))
        if model is None and sorted(kinds) == ["add", "prop"]:
            model = "combined"
        if model is None:
            raise ModelSpecError(f"{self.origin}: $ERROR: the EPS terms {kinds} do not form a supported error model")
        err = ", ".join(f"{k} = {{ variance = {_num(v)}{', fixed = true' if f else ''} }}" for k, v, f in terms)
        L += ["", "[outputs.Y]", f"expression = {_q(self.text(pred, '$ERROR prediction'))}",
              f"error = {{ model = {_q(model)}, {err} }}"]
        L += self.design_lines(covariates)
        return "\n".join(L) + "\n"

    def first_record(self) -> dict:
        data = self.model.dataset
        if data is None or len(data) == 0:
            return {}
        return {c: float(data[c].iloc[0]) for c in data.columns if np.issubdtype(data[c].dtype, np.number)}

    def design_lines(self, covariates) -> list:
        data = self.model.dataset
        if data is None or len(data) == 0 or "ID" not in data or "TIME" not in data:
            return []
        L = []
        for sid, rows in data.groupby("ID", sort=False):
            amt = rows["AMT"] if "AMT" in rows else np.zeros(len(rows))
            evid = rows["EVID"] if "EVID" in rows else np.where(amt > 0, 1, 0)
            mdv = rows["MDV"] if "MDV" in rows else (evid != 0).astype(int)
            dose = rows[(np.asarray(evid) == 1) | (np.asarray(evid) == 4) | (np.asarray(amt) > 0)]
            obs = rows[(np.asarray(evid) == 0) & (np.asarray(mdv) == 0)]
            if obs.empty:
                continue
            L += ["", "[[design.groups]]", f"name = {_q(f'ID {sid:g}' if isinstance(sid, float) else f'ID {sid}')}",
                  "n = 1", "times = [" + ", ".join(_num(v) for v in obs["TIME"]) + "]"]
            if not dose.empty:
                parts = ["amount = [" + ", ".join(_num(v) for v in dose["AMT"]) + "]",
                         "times = [" + ", ".join(_num(v) for v in dose["TIME"]) + "]"]
                if "RATE" in dose and (dose["RATE"] > 0).any():
                    dur = np.where(dose["RATE"] > 0, dose["AMT"] / np.where(dose["RATE"] > 0, dose["RATE"], 1), 0)
                    parts.append("duration = [" + ", ".join(_num(v) for v in dur) + "]")
                L.append("dose = { " + ", ".join(parts) + " }")
            if covariates:
                first = rows.iloc[0]
                L.append("covariates = { " + ", ".join(f"{c} = {_num(first[c])}" for c in covariates if c in rows)
                         + " }")
        return L


def nonmem_to_toml(path, name: str | None = None) -> str:
    """The model file (TOML text) equivalent to the NONMEM control stream at ``path``."""
    modeling = _pharmpy()
    p = Path(path)
    if not p.is_file():
        raise ModelSpecError(f"{p}: no such control stream")
    text = p.read_text(errors="replace")
    if "$PRO" not in text.upper() or "$" not in text:
        raise ModelSpecError(f"{p}: not a NONMEM control stream (no $PROBLEM record)")
    if "$MIX" in text.upper():
        line = next(i + 1 for i, ln in enumerate(text.splitlines()) if "$MIX" in ln.upper())
        raise ModelSpecError(f"{p}:{line}: $MIX (mixture models) cannot be mapped to a pkdesign model")
    try:
        model = modeling.read_model(str(p))
    except Exception as exc:  # noqa: BLE001 - pharmpy's parse errors, reported with the file
        raise ModelSpecError(f"{p}: pharmpy could not read the control stream: {type(exc).__name__}: {exc}") from None
    tr = _Translator(model, str(p))
    tr.name = name or p.stem
    tr.description = str(getattr(model, "description", "") or "").strip() or f"imported from {p.name}"
    return tr.translate()


def from_nonmem(path, name: str | None = None):
    """A ``ModelSpec`` from a NONMEM control stream (see ``nonmem_to_toml``)."""
    from ..model.parse import parse_model_text

    return parse_model_text(nonmem_to_toml(path, name), str(path))
