"""The vectorisable dose and time loops of closed-form kernels (the path taken far from every series branch).

The loop over observation times is padded to whole SIMD vectors and has no branch, so LLVM vectorises
it; kernels with many accumulators split it into several loops (see :func:`regular_path`).
Names in the generated text are those of :mod:`pkdesign.model.codegen`.
"""

from __future__ import annotations

import sympy as sp

from .printer import cse_lines, derivative_targets, dose_variables
from .special import EDiff, ediff_lines
from .symbolic import AMT, TD, TINF, T

#: doubles per SIMD register assumed when padding the loop over times (AVX2: 4; AVX-512 would take 8)
SIMD_LANES = 4

#: kernels with more accumulators than this split the vectorised loop over times into loops of
#: LOOP_ACCUMULATORS each (see regular_path)
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


def regular_guard(md, rename, printer):
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


def regular_path(md, order, n, acc, rename, printer, ind) -> list:
    """Vectorisable dose and time loops with the closed-form branch of every response.

    The loop over times has no branch: a sample before or at a dose gets that dose's
    contribution masked to zero by a ``select``, so LLVM turns the loop into SIMD code with the
    inlined ``_fexp`` (and hoists what depends on the parameter vector only).
    """
    keep = []  # (accumulator row, expression)
    for c, (x, resp) in enumerate(md.responses):
        targets, exprs = derivative_targets(resp.branches[-1].derivs, order, n, f"R{c}", f"dR{c}_{{k}}",
                                  f"d2R{c}_{{k}}_{{l}}", f"dRt{c}", x)
        keep += [(acc.index(t), e.xreplace(rename)) for t, e in zip(targets, exprs) if e != 0]
    i2, i3 = ind + "    ", ind + "        "
    lines = [f"{ind}acc[:, :] = 0.0", f"{ind}for m in range(n_dose):"] + dose_variables(i2)
    lag = printer.doprint(md.lag.xreplace(rename))
    head = [f"{i2}for j in range(n_pad):  # (a loop starting after the dose is not vectorised by LLVM)",
            f"{i3}{T.name} = t_pad[j]"]
    mask = f"{i3}after = {T.name} - {TD.name} - {lag} > 0.0  # a sample at a dose time is taken before that dose"
    calls, exprs = _extract_calls([e for _, e in keep])
    call_lines = _call_lines(calls, i3, printer)
    if len(keep) <= SPLIT_ABOVE:
        lines += head + [mask] + call_lines
        tmp, printed = cse_lines(exprs, i3, printer, "w")
        lines.extend(tmp)
        lines.extend(f"{i3}acc[{row}, j] += _select(after, {p}, 0.0)" for (row, _), p in zip(keep, printed))
        return lines, 0
    # Many accumulators: one loop body would exceed the vector registers and spill.  A first loop
    # stores every exp/ediff value per time in ``calls``; then one loop per group of accumulators.
    lines.append(f"{i2}# exp and ediff values per time, shared by the loops below")
    lines += head + call_lines
    lines.extend(f"{i3}calls[{c}, j] = {sym}" for c, (sym, _) in enumerate(calls))
    # Each loop gets names of its own (time, mask, loaded calls, CSE temporaries): numba rebuilds SSA form for
    # every variable assigned more than once, one pass over the whole function each, which dominated the
    # compile of large order-2 kernels (three_comp_infusion: ~120 such names).
    for g in range(0, len(keep), LOOP_ACCUMULATORS):
        rows = [row for row, _ in keep[g:g + LOOP_ACCUMULATORS]]
        own = {T: sp.Symbol(f"{T.name}_{g}")}
        own.update({sym: sp.Symbol(f"{sym.name}_{g}") for sym, _ in calls})
        group = [e.xreplace(own) for e in exprs[g:g + LOOP_ACCUMULATORS]]
        used = set().union(*(e.free_symbols for e in group))
        after = f"after_{g}"
        lines += [head[0], f"{i3}{own[T].name} = t_pad[j]",
                  f"{i3}{after} = {own[T].name} - {TD.name} - {lag} > 0.0"]
        lines.extend(f"{i3}{own[sym].name} = calls[{c}, j]" for c, (sym, _) in enumerate(calls) if own[sym] in used)
        tmp, printed = cse_lines(group, i3, printer, f"w{g}_")
        lines.extend(tmp)
        lines.extend(f"{i3}acc[{row}, j] += _select({after}, {p}, 0.0)" for row, p in zip(rows, printed))
    return lines, len(calls)


def _call_lines(calls: list, indent: str, printer) -> list:
    """Lines setting each call symbol ``c{k}`` of :func:`_extract_calls`: an exp as an ``_fexp`` call, an ediff
    derivative as the statements of its evaluator written out in place (``special.ediff_lines``, temporaries
    ``c{k}_*``): the operations of ``_ediff_p_q``, without numba copying the function's IR into the kernel at each
    call (0.6 s of three_comp_oral's order-2 compile).  The arguments of all calls share one CSE."""
    flat = []
    for _, call in calls:
        flat.extend(call.args[2:] if isinstance(call, EDiff) else [call])
    tmp, printed = cse_lines(flat, indent, printer, "x")
    lines, it = list(tmp), iter(printed)
    for sym, call in calls:
        if isinstance(call, EDiff):
            p, q = int(call.args[0]), int(call.args[1])
            lines += ediff_lines(p, q, next(it), next(it), indent, f"{sym.name}_", sym.name)
        else:
            lines.append(f"{indent}{sym.name} = {next(it)}")
    return lines


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


def vector_preamble(n_acc: int, n_calls: int) -> list:
    """Lines before the loop over parameter vectors: the padded times and the accumulator arrays."""
    return [
        f"    # the vectorised loop over times runs over whole SIMD vectors ({SIMD_LANES} doubles): the times are",
        "    # padded with copies of the last one (results discarded); acc[a, j]: accumulator a at time j",
        f"    n_pad = (n_obs + {SIMD_LANES - 1}) // {SIMD_LANES} * {SIMD_LANES}",
        "    t_pad = np.empty(n_pad)",
        "    for j in range(n_pad):",
        "        t_pad[j] = t_obs[min(j, n_obs - 1)]",
        f"    acc = np.empty(({n_acc}, n_pad))",
    ] + ([f"    calls = np.empty(({n_calls}, n_pad))  # exp and ediff values per time (split loops)"] if n_calls else [])
