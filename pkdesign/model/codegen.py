"""Code generation: symbolic derivatives -> readable Python source for numba kernels.

Third step of the pipeline (spec -> derivatives -> *source* -> compiled kernels).  A chain of
pure steps ending in text: common-subexpression elimination per branch, a printer that emits
``math`` calls and float literals, and a template with plain loops over float64 arrays that
write into ``out`` arguments.  The text is what ``CompiledModel.source`` shows.

Generated kernels (``order`` = 0, 1, 2)::

    predict{order}(psi, t_obs, out_idx, dose_t, dose_amt, dose_dur, f[, d1, dt[, d2]])

    psi      (n_vec, n_psi)   individual parameters, model units
    t_obs    (n_obs,)         observation times (model time unit)
    out_idx  (n_obs,) int64   output index of each observation
    dose_*   (n_dose,)        dose times, amounts, infusion durations
    f        (n_vec, n_obs)   predictions (written)
    d1       (n_vec, n_obs, n_psi)          df/dpsi (written, order >= 1)
    dt       (n_vec, n_obs)                 df/dt (written, order >= 1)
    d2       (n_vec, n_obs, n_psi, n_psi)   d2f/dpsi2 (written, order 2)

Names in generated code (closed forms here; the ODE module ``ode.py`` uses the same ``p_`` names):

    p_<NAME>          parameter NAME of the current vector (only the parameters the model uses)
    a_<NAME>          assignment NAME; d_<NAME>_k, d2_<NAME>_k_l its derivatives in derivative
                      position k (and l >= k); a_<_LAG>, a_<_F> the lag time and bioavailability
    R<c>              response c (the c-th [responses] entry) summed over doses at the current time;
                      dR<c>_k, d2R<c>_k_l, dRt<c> its ψ- and time derivatives
    T_obs, T_dose, AMT_dose, TINF_dose   observation time, dose time, amount, infusion duration
    u<a>_<i>, r<c>_<i>, y<i>, w<i>, x<i> common subexpressions: assignment a, response c's series
                      branches, outputs, the vectorised dose loop, the exp/ediff call arguments
    c<k>              the k-th distinct exp(...) / ediff(...) call of the vectorised dose loop
    acc[a, j]         accumulator a at padded time j of the vectorised dose loop; calls[q, j] the
                      exp / ediff values of the split loops
    FILL_D1, FILL_D2_K, FILL_D2_L, *_VALUE   derivative entries not computed (0: unused parameter,
                      NaN: fixed without variability), written once per call

Derivative position k is the k-th entry of ``ModelSpec.derivative_indices()`` (the parameters a
FIM needs); it is written to ``d1[..., derivative_indices()[k]]``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .special import RUNTIME_IMPORTS, EDiff, ediff_function_name, ediff_source
from .spec import ModelSpec
from .symbolic import AMT, TD, TINF, T, derive_model, finite_powers


class KernelPrinter(PythonCodePrinter):
    """Prints float literals and cheap integer powers, so numba sees one numeric type."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})
        self.ediff_orders = set()  # (p, q) of every ediff derivative printed

    def _print_Integer(self, expr):
        return f"{int(expr)}.0"

    def _print_Rational(self, expr):
        return f"({int(expr.p)}.0/{int(expr.q)}.0)"

    def _print_Half(self, expr):
        return "0.5"

    def _print_EDiff(self, expr):
        p, q, x, y = expr.args
        self.ediff_orders.add((int(p), int(q)))
        return f"{ediff_function_name(int(p), int(q))}({self._print(x)}, {self._print(y)})"

    def _print_exp(self, expr):
        return f"_fexp({self._print(expr.args[0])})"

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.base, expr.exp
        b = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Pow"])
        if exp.is_Integer:
            n = int(exp)
            if n == -1:
                return f"(1.0/{b})"
            if 0 < n <= 3:
                return "(" + "*".join([b] * n) + ")" if n > 1 else b
            if -3 <= n < 0:
                return f"(1.0/({'*'.join([b] * -n)}))"
            return f"{b}**{n}"
        if exp == sp.Rational(1, 2):
            return f"math.sqrt({self._print(base)})"
        if exp == sp.Rational(-1, 2):
            return f"(1.0/math.sqrt({self._print(base)}))"
        return super()._print_Pow(expr, rational=rational)


def _rename_map(spec: ModelSpec, md) -> dict:
    """Symbols -> names in generated code: ``p_<param>``, ``a_<assignment>``, response arrays."""
    rename = {sp.Symbol(n): sp.Symbol(f"p_{n}") for n in spec.parameter_names}
    for x, _ in md.assignments:
        rename[x.sym] = sp.Symbol(f"a_{x.name}")
    for c, (x, _) in enumerate(md.responses):
        rename[x.sym] = sp.Symbol(f"R{c}")
        rename[x.dt] = sp.Symbol(f"dRt{c}")
        for k, s in enumerate(x.d1):
            if s != 0:
                rename[s] = sp.Symbol(f"dR{c}_{k}")
        for (k, l), s in x.d2.items():
            if s != 0:
                rename[s] = sp.Symbol(f"d2R{c}_{k}_{l}")
    return rename


def _cse_block(exprs: list, indent: str, printer: KernelPrinter, prefix: str) -> tuple:
    """CSE a list of expressions; return (lines of temporaries, printed final expressions)."""
    exprs = [finite_powers(e) for e in exprs]
    repl, reduced = sp.cse(exprs, symbols=sp.numbered_symbols(prefix), order="none")
    lines = [f"{indent}{printer.doprint(s)} = {printer.doprint(e)}" for s, e in repl]
    return lines, [printer.doprint(e) for e in reduced]


def generate_source(spec: ModelSpec, header: str = "") -> str:
    """Return the Python source text of the kernels of ``spec`` (orders 0, 1 and 2)."""
    md = derive_model(spec, with_second=True)
    rename = _rename_map(spec, md)
    printer = KernelPrinter()
    n = len(spec.parameter_names)
    parts = [
        f'"""Kernels generated by pkdesign for model {spec.name!r}. Do not edit: regenerated from the model."""',
        header,
        "import math",
        "import numba",
        "import numpy as np",
        RUNTIME_IMPORTS,
        "",
        f"N_PSI = {n}",
        f"N_RESP = {len(md.responses)}",
        f"N_OUT = {len(md.outputs)}",
        f"PARAMETERS = {spec.parameter_names!r}",
        f"OUTPUTS = {spec.output_names!r}",
        "",
    ]
    parts += _fill_constants(spec)
    for order in (0, 1, 2):
        parts.append(_kernel(spec, order, md, rename, printer))
    parts.append(ediff_source(printer.ediff_orders))
    return "\n".join(parts) + "\n"


def _fill_constants(spec) -> list:
    """Module constants listing the derivative entries the kernels do not compute: 0 for parameters
    the model does not use, NaN ("not computed") for fixed parameters without variability."""
    k1, v1, k2, l2, v2 = spec.not_computed()

    def ints(a):
        return f"np.array({a.tolist()!r}, dtype=np.int64)"

    def floats(a):
        return f"np.array([{', '.join('np.nan' if np.isnan(v) else repr(float(v)) for v in a)}], dtype=np.float64)"

    return [
        "# derivative entries not computed by the kernels (filled once per call): parameters the model",
        "# does not use (0) and fixed parameters without variability (NaN: not needed by any FIM)",
        f"FILL_D1 = {ints(k1)}",
        f"FILL_D1_VALUE = {floats(v1)}",
        f"FILL_D2_K = {ints(k2)}",
        f"FILL_D2_L = {ints(l2)}",
        f"FILL_D2_VALUE = {floats(v2)}",
        "",
    ]


def _fill_lines(order: int, md, n_total: int) -> list:
    if order == 0 or len(md.active) == n_total:
        return []
    L = ["    for i in range(n_vec):  # entries not computed (see FILL_D1)",
         "        for j in range(n_obs):",
         "            for q in range(FILL_D1.shape[0]):",
         "                d1[i, j, FILL_D1[q]] = FILL_D1_VALUE[q]"]
    if order >= 2:
        L += ["            for q in range(FILL_D2_K.shape[0]):",
              "                d2[i, j, FILL_D2_K[q], FILL_D2_L[q]] = FILL_D2_VALUE[q]"]
    return L


def _kernel(spec, order, md, rename, printer) -> str:
    n = len(md.active)
    nr = len(md.responses)
    args = ["psi", "t_obs", "out_idx", "dose_t", "dose_amt", "dose_dur", "f"]
    if order >= 1:
        args += ["d1", "dt"]
    if order >= 2:
        args += ["d2"]
    L = [f"def predict{order}({', '.join(args)}):"]
    L.append("    n_vec = psi.shape[0]")
    L.append("    n_obs = t_obs.shape[0]")
    L.append("    n_dose = dose_t.shape[0]")
    L.extend(_fill_lines(order, md, len(spec.parameter_names)))
    L.append("    for i in range(n_vec):")
    used = spec.used_parameters()
    for k, name in enumerate(spec.parameter_names):
        if name in used:
            L.append(f"        p_{name} = psi[i, {k}]")
    if md.assignments:
        L.append("        # assignments, lag time and bioavailability with their derivatives (once per parameter vector)")
        for a, (x, dv) in enumerate(md.assignments):
            targets, exprs = _targets(dv, order, n, f"a_{x.name}", "{d1}", "{d2}", None, x)
            tmp, printed = _cse_block([e.xreplace(rename) for e in exprs], " " * 8, printer, f"u{a}_")
            L.extend(tmp)
            L.extend(f"        {t} = {p}" for t, p in zip(targets, printed))
    if not nr:
        L.append("        for j in range(n_obs):")
        L.append(f"            {T.name} = t_obs[j]")
        L.extend(_outputs(md, order, n, rename, printer, " " * 12))
        return "\n".join(L) + "\n"
    # the summed responses and their derivatives: names depend only on each response's
    # structural zeros, not on the branch; row a of ``acc`` holds accumulator a at every time
    acc = []
    for c, (x, resp) in enumerate(md.responses):
        acc += _targets(resp.branches[0].derivs, order, n, f"R{c}", f"dR{c}_{{k}}", f"d2R{c}_{{k}}_{{l}}",
                        f"dRt{c}", x)[0]
    guard = _regular_guard(md, rename, printer)
    body = " " * 8
    if guard is not None:
        L.append(f"        if {guard}:  # far from every removable singularity: no series branch needed")
        body = " " * 12
    regular, n_calls = _regular_path(md, order, n, acc, rename, printer, body)
    L.extend(regular)
    L[4:4] = [
        f"    # the vectorised loop over times runs over whole SIMD vectors ({SIMD_LANES} doubles): the times are",
        "    # padded with copies of the last one (results discarded); acc[a, j]: accumulator a at time j",
        f"    n_pad = (n_obs + {SIMD_LANES - 1}) // {SIMD_LANES} * {SIMD_LANES}",
        "    t_pad = np.empty(n_pad)",
        "    for j in range(n_pad):",
        "        t_pad[j] = t_obs[min(j, n_obs - 1)]",
        f"    acc = np.empty(({len(acc)}, n_pad))",
    ] + ([f"    calls = np.empty(({n_calls}, n_pad))  # exp and ediff values per time (split loops)"] if n_calls else [])
    if guard is not None:
        L.append("        else:")
        L.append("            for j in range(n_obs):")
        L.append(f"                {T.name} = t_obs[j]")
        L.append("                " + " = ".join(acc) + " = 0.0")
        L.extend(_dose_loop(md, order, n, rename, printer, " " * 16))
        L.extend(f"                acc[{a}, j] = {name}" for a, name in enumerate(acc))
    L.append("        for j in range(n_obs):")
    L.append(f"            {T.name} = t_obs[j]")
    L.extend(f"            {name} = acc[{a}, j]" for a, name in enumerate(acc))
    L.extend(_outputs(md, order, n, rename, printer, " " * 12))
    return "\n".join(L) + "\n"


def _outputs(md, order, n, rename, printer, ind) -> list:
    if len(md.outputs) == 1:  # out_idx is all 0 (checked by evaluate): no branch per observation
        return [f"{ind}# output {md.outputs[0].name}"] + _output_block(md.outputs[0].branches, order, n, rename,
                                                                       printer, ind, md.active)
    lines = [f"{ind}o = out_idx[j]"]
    for oi, out in enumerate(md.outputs):
        kw = "if" if oi == 0 else "elif"
        lines.append(f"{ind}{kw} o == {oi}:  # output {out.name}")
        lines.extend(_output_block(out.branches, order, n, rename, printer, ind + "    ", md.active))
    return lines


def _dose_variables(ind) -> list:
    """Lines unpacking dose ``m``: time, amount, infusion duration."""
    return [f"{ind}{TD.name} = dose_t[m]", f"{ind}{AMT.name} = dose_amt[m]", f"{ind}{TINF.name} = dose_dur[m]"]


def _dose_loop(md, order, n, rename, printer, ind) -> list:
    """Scalar loop over doses at one observation time, every branch (series or closed form) per dose."""
    ind2 = ind + "    "
    lines = [f"{ind}for m in range(n_dose):"] + _dose_variables(ind2)
    lines.append(f"{ind2}t_rel = {T.name} - {TD.name} - {printer.doprint(md.lag.xreplace(rename))}")
    lines.append(f"{ind2}if t_rel <= 0.0:  # a sample at a dose time is taken before that dose")
    lines.append(f"{ind2}    continue")
    for c, (x, resp) in enumerate(md.responses):
        lines.append(f"{ind2}# response {resp.name}")
        lines.extend(_branches(c, x, resp, order, n, rename, printer, ind2))
    return lines


#: doubles per SIMD register assumed when padding the loop over times (AVX2: 4; AVX-512 would take 8)
SIMD_LANES = 4

#: kernels with more accumulators than this split the vectorised loop over times into loops of
#: LOOP_ACCUMULATORS each (see _regular_path)
SPLIT_ABOVE = 12
LOOP_ACCUMULATORS = 6

#: symbols that vary within one parameter vector (per observation or per dose)
_VARIANT = frozenset({T, TD, AMT, TINF})


def _vector_part(cond):
    """The conjuncts of a branch condition that depend on the parameter vector only (a necessary
    condition for the branch), or None when there are none."""
    args = cond.args if isinstance(cond, sp.And) else (cond,)
    keep = [a for a in args if not (a.free_symbols & _VARIANT)]
    return sp.And(*keep) if keep else None


def _regular_guard(md, rename, printer):
    """Python text of 'no series branch can be taken for this parameter vector', None if every
    vector is regular (no series branches), or the string 'False' if it cannot be decided per vector."""
    parts = []
    for _, resp in md.responses:
        for branch in resp.branches:
            if branch.condition is None:
                continue
            v = _vector_part(branch.condition)
            if v is None:
                return "False"
            parts.append(f"({printer.doprint(v.xreplace(rename))})")
    return f"not ({' or '.join(parts)})" if parts else None


def _regular_path(md, order, n, acc, rename, printer, ind) -> list:
    """Vectorisable dose and time loops with the closed-form branch of every response.

    The loop over times has no branch: a sample before or at a dose gets that dose's
    contribution masked to zero by a ``select``, so LLVM turns the loop into SIMD code with the
    inlined ``_fexp`` (and hoists what depends on the parameter vector only).
    """
    keep = []  # (accumulator row, expression)
    for c, (x, resp) in enumerate(md.responses):
        targets, exprs = _targets(resp.branches[-1].derivs, order, n, f"R{c}", f"dR{c}_{{k}}",
                                  f"d2R{c}_{{k}}_{{l}}", f"dRt{c}", x)
        keep += [(acc.index(t), e.xreplace(rename)) for t, e in zip(targets, exprs) if e != 0]
    i2, i3 = ind + "    ", ind + "        "
    lines = [f"{ind}acc[:, :] = 0.0", f"{ind}for m in range(n_dose):"] + _dose_variables(i2)
    lag = printer.doprint(md.lag.xreplace(rename))
    head = [f"{i2}for j in range(n_pad):  # (a loop starting after the dose is not vectorised by LLVM)",
            f"{i3}{T.name} = t_pad[j]"]
    mask = f"{i3}after = {T.name} - {TD.name} - {lag} > 0.0  # a sample at a dose time is taken before that dose"
    calls, exprs = _extract_calls([e for _, e in keep])
    tmp, printed = _cse_block([e for _, e in calls], i3, printer, "x")
    call_lines = tmp + [f"{i3}{sym} = {p}" for (sym, _), p in zip(calls, printed)]
    if len(keep) <= SPLIT_ABOVE:
        lines += head + [mask] + call_lines
        tmp, printed = _cse_block(exprs, i3, printer, "w")
        lines.extend(tmp)
        lines.extend(f"{i3}acc[{row}, j] += _select(after, {p}, 0.0)" for (row, _), p in zip(keep, printed))
        return lines, 0
    # Many accumulators: one loop body would exceed the vector registers and spill.  A first loop
    # stores every exp/ediff value per time in ``calls``; then one loop per group of accumulators.
    lines.append(f"{i2}# exp and ediff values per time, shared by the loops below")
    lines += head + call_lines
    lines.extend(f"{i3}calls[{c}, j] = {sym}" for c, (sym, _) in enumerate(calls))
    for g in range(0, len(keep), LOOP_ACCUMULATORS):
        rows = [row for row, _ in keep[g:g + LOOP_ACCUMULATORS]]
        group = exprs[g:g + LOOP_ACCUMULATORS]
        used = set().union(*(e.free_symbols for e in group))
        lines += head + [mask]
        lines.extend(f"{i3}{sym} = calls[{c}, j]" for c, (sym, _) in enumerate(calls) if sym in used)
        tmp, printed = _cse_block(group, i3, printer, "w")
        lines.extend(tmp)
        lines.extend(f"{i3}acc[{row}, j] += _select(after, {p}, 0.0)" for row, p in zip(rows, printed))
    return lines, len(calls)


def _extract_calls(exprs: list) -> tuple:
    """Replace every exp(...) and ediff(...) (innermost first) by a symbol ``c{k}``; return
    ``([(symbol, call with inner calls replaced)], rewritten exprs)``.

    Calls equal up to the form of their arguments (``exp(-K*(T - TD))`` and ``exp(K*(TD - T))``,
    which differentiation produces side by side) share one symbol: the key is the call with
    expanded arguments; the first form seen is the one evaluated (no cancellation added)."""
    found, keys, memo = {}, {}, {}

    def walk(e):
        r = memo.get(e)
        if r is not None:
            return r
        if e.is_Atom:
            r = e
        else:
            args = [walk(a) for a in e.args]
            r = e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e
            if isinstance(r, (sp.exp, EDiff)):
                key = r.func(*[sp.expand(a) for a in r.args])
                sym = keys.get(key)
                if sym is None:
                    sym = keys[key] = found[r] = sp.Symbol(f"c{len(found)}")
                r = sym
        memo[e] = r
        return r

    out = [walk(e) for e in exprs]
    return [(sym, call) for call, sym in found.items()], out


def _open_branch(lines, b, branch, ind, printer, rename) -> str:
    """Append the ``if``/``elif``/``else`` line of branch ``b`` (none for a lone default branch);
    return the indentation of its body."""
    if branch.condition is not None:
        kw = "if" if b == 0 else "elif"
        lines.append(f"{ind}{kw} {printer.doprint(branch.condition.xreplace(rename))}:  # series near the limit")
        return ind + "    "
    if b > 0:
        lines.append(f"{ind}else:")
        return ind + "    "
    return ind


def _branches(c, x, resp, order, n, rename, printer, ind) -> list:
    lines = []
    for b, branch in enumerate(resp.branches):
        body_ind = _open_branch(lines, b, branch, ind, printer, rename)
        targets, exprs = _targets(branch.derivs, order, n, f"R{c}", f"dR{c}_{{k}}", f"d2R{c}_{{k}}_{{l}}",
                                  f"dRt{c}", x)
        keep = [(t, e.xreplace(rename)) for t, e in zip(targets, exprs) if e != 0]
        if not keep:
            lines.append(f"{body_ind}pass")
            continue
        tmp, printed = _cse_block([e for _, e in keep], body_ind, printer, f"r{c}_")
        lines.extend(tmp)
        lines.extend(f"{body_ind}{t} += {p}" for (t, _), p in zip(keep, printed))
    return lines


def _targets(d, order, n, f_name, d1_name, d2_name, dt_name, inner=None, index=None):
    """Assignment targets and expressions for value and derivatives up to ``order``.

    With ``inner`` given, derivatives that are structurally zero for it are skipped, and the
    names ``{d1}``/``{d2}`` stand for its placeholder symbols.  ``index`` maps derivative
    positions to the indices printed in the names (default: the positions themselves).
    """
    ix = index if index is not None else list(range(n))
    targets, exprs = [f_name], [d.f]
    if order >= 1:
        for k in range(n):
            if inner is not None and inner.d1[k] == 0:
                continue
            targets.append(d1_name.format(k=ix[k], l=0, d1=inner.d1[k] if inner is not None else ""))
            exprs.append(d.d1[k])
        if dt_name is not None:
            targets.append(dt_name)
            exprs.append(d.dt)
    if order >= 2:
        for k in range(n):
            for l in range(k, n):
                if inner is not None and inner.d2[(k, l)] == 0:
                    continue
                targets.append(d2_name.format(k=ix[k], l=ix[l], d2=inner.d2[(k, l)] if inner is not None else ""))
                exprs.append(d.d2[(k, l)])
    return targets, exprs


def _output_block(branches, order, n, rename, printer, ind, index) -> list:
    lines = []
    for b, branch in enumerate(branches):
        body = _open_branch(lines, b, branch, ind, printer, rename)
        targets, exprs = _targets(branch.derivs, order, n, "f[i, j]", "d1[i, j, {k}]", "d2[i, j, {k}, {l}]",
                                  "dt[i, j]", index=index)
        tmp, printed = _cse_block([e.xreplace(rename) for e in exprs], body, printer, "y")
        lines.extend(tmp)
        for t, p in zip(targets, printed):
            lines.append(f"{body}{t} = {p}")
            if t.startswith("d2["):
                k, l = t[len("d2[i, j, "):-1].split(", ")
                if k != l:
                    lines.append(f"{body}d2[i, j, {l}, {k}] = d2[i, j, {k}, {l}]")
    return lines
