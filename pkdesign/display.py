"""How results read: short numbers, one-line reprs, HTML tables for Jupyter, parameter units.

Every user-facing object (``ModelSpec`` and the compiled models, ``Design``, ``FIMResult``,
``DesignResult``) prints in a line or two (``__repr__``), renders as a table in Jupyter
(``_repr_html_``), has a text ``summary()`` and a ``to_frame()``.  The helpers here keep them
consistent; pandas is imported only when a table is asked for.
"""

from __future__ import annotations

import html

import numpy as np


def num(x, digits: int = 4) -> str:
    """A number in ``digits`` significant figures (``inf``, ``nan`` spelled out)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not np.isfinite(x):
        return "nan" if np.isnan(x) else ("inf" if x > 0 else "-inf")
    return f"{x:.{digits}g}"


def times_text(times, limit: int = 8) -> str:
    """``0.5, 1, 2, ..., 120 (8)`` for a sampling-time vector."""
    t = np.asarray(times, dtype=float)
    if t.size <= limit:
        return ", ".join(num(v) for v in t)
    return ", ".join(num(v) for v in t[:limit - 2]) + f", ..., {num(t[-1])} ({t.size})"


def html_table(frame, caption: str = "", footer: str = "") -> str:
    """A DataFrame as a small HTML table with an escaped caption and footer line."""
    body = frame.to_html(float_format=lambda v: num(v, 5), na_rep="", border=0, classes="pkdesign")
    cap = f"<p><b>{html.escape(caption)}</b></p>" if caption else ""
    foot = f"<p>{html.escape(footer)}</p>" if footer else ""
    return f"<div>{cap}{body}{foot}</div>"


def parameter_units(spec, names) -> tuple:
    """The unit of each FIM parameter name of ``spec`` (``""`` when dimensionless or not declared).

    Fixed effects carry their declared unit; an Ω variance of an exponential or proportional random
    effect is dimensionless, of an additive one the parameter's unit squared; ``sigma2_add`` is the
    output's unit squared, ``sigma2_prop``/``sigma2_exp`` dimensionless.  On the sd scale (``omega(.)``,
    ``sigma_add``) the square goes.
    """
    punit = {p.name: p.unit for p in spec.parameters}
    vmodel = {v.parameter: v.model for v in spec.variability}
    ounit = {o.name: o.unit for o in spec.outputs}
    first_out = spec.outputs[0].name if spec.outputs else ""

    from .model.spec import squared_unit

    def sq(u, squared):
        return squared_unit(u) if squared else u

    out = []
    for n in names:
        if n in punit:
            out.append(punit[n])
        elif n.startswith(("omega2(", "omega(")):
            p = n[n.index("(") + 1:-1]
            out.append(sq(punit.get(p, ""), n.startswith("omega2(")) if vmodel.get(p) == "additive" else "")
        elif n.startswith("OMEGA("):
            a, b = n[len("OMEGA("):-1].split(",")
            both = vmodel.get(a) == "additive" and vmodel.get(b) == "additive"
            out.append(f"{punit.get(a, '')}*{punit.get(b, '')}" if both and punit.get(a) and punit.get(b) else "")
        elif n.startswith(("sigma2_add", "sigma_add")):
            o = n[n.index("(") + 1:-1] if "(" in n else first_out
            out.append(sq(ounit.get(o, ""), n.startswith("sigma2_")))
        else:
            out.append("")
    return tuple(out)
