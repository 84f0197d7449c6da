"""The design report: one self-contained HTML (or Markdown) file a reviewer can open offline.

``build_report(model, design, optimized=...)`` collects, in order: the model and its parameter
table; the design; the predictions with a prediction interval and the sampling times; the RSE% of
every parameter under each FIM approximation beside the exact (Monte-Carlo) FIM, with the advice
which approximation to trust; and, given an optimisation result, the optimised design, its status
and equivalence certificate, the efficiency against the starting design and both RSE% side by side.
``Report.save(path)`` writes HTML (``.html``/``.htm``) or Markdown (``.md``) atomically; images are
embedded as base64 PNG (without matplotlib the figures are replaced by a line saying so), nothing refers
to the network.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PkdesignError
from .files import write_atomic

_CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table.pkdesign{border-collapse:collapse;font-size:90%}"
        "table.pkdesign td,table.pkdesign th{border-bottom:1px solid #ddd;padding:2px 8px;text-align:right}"
        "h1{font-size:150%}h2{font-size:120%;border-bottom:1px solid #999}img{max-width:100%}")


@dataclass
class Report:
    """A titled list of sections; each section is (heading, [blocks]); a block is ("text", str),
    ("table", DataFrame) or ("image", PNG bytes)."""

    title: str
    sections: list = field(default_factory=list)

    def add(self, heading: str, *blocks) -> None:
        self.sections.append((heading, list(blocks)))

    def to_html(self) -> str:
        out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
               f"<style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"]
        for heading, blocks in self.sections:
            out.append(f"<h2>{html.escape(heading)}</h2>")
            for kind, value in blocks:
                if kind == "text":
                    out.append(f"<p>{html.escape(value)}</p>")
                elif kind == "table":
                    out.append(value.to_html(float_format=lambda v: f"{v:.5g}", na_rep="", border=0,
                                             classes="pkdesign"))
                else:
                    out.append(f"<img alt='{html.escape(heading)}' src='data:image/png;base64,"
                               f"{base64.b64encode(value).decode()}'>")
        out.append("</body></html>")
        return "\n".join(out)

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for heading, blocks in self.sections:
            out += [f"## {heading}", ""]
            for kind, value in blocks:
                if kind == "text":
                    out += [value, ""]
                elif kind == "table":
                    out += [_markdown_table(value), ""]
                else:
                    out += [f"![{heading}](data:image/png;base64,{base64.b64encode(value).decode()})", ""]
        return "\n".join(out)

    def save(self, path) -> Path:
        """Write HTML or Markdown by the suffix; atomically (a failed write leaves nothing behind)."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix not in (".html", ".htm", ".md"):
            raise PkdesignError(f"report: {p}: expected a .html or .md file name")
        text = self.to_markdown() if suffix == ".md" else self.to_html()
        return write_atomic(p, text, "report", PkdesignError)


def _markdown_table(frame) -> str:
    f = frame.reset_index() if frame.index.name or not frame.index.equals(frame.index.__class__(range(len(frame)))) \
        else frame
    cols = [str(c) for c in f.columns]

    def cell(v):
        if isinstance(v, float):
            return f"{v:.5g}"
        return str(v).replace("|", "\\|")

    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rows += ["| " + " | ".join(cell(v) for v in r) + " |" for r in f.itertuples(index=False)]
    return "\n".join(rows)


def _figure(draw) -> tuple:
    """An ("image", PNG) block from ``draw()`` (a Figure), or, without matplotlib (a plain install), a text
    block saying how to get the figure: the report's tables do not need it."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return ("text", "(figure omitted: plotting needs matplotlib: pip install 'pkdesign[plot]')")
    buf = io.BytesIO()
    draw().savefig(buf, format="png", dpi=100)
    return ("image", buf.getvalue())


def build_report(model, design, *, optimized=None, approximation: str = "fo", fim=None, compare_approximations=True,
                 seed: int = 0, draws: int | None = None) -> Report:
    """The report of ``design`` for ``model`` (see the module docstring).

    optimized : a ``DesignResult`` (or None)
    compare_approximations : include every approximation against exact-MC (seconds on small models)
    """
    from . import plot
    from .comparison import compare
    from .fim.api import evaluate_fim
    from .report import advice, approximation_report

    spec = model.spec
    rep = Report(f"pkdesign report: {spec.name}")
    head = [("text", repr(spec)[1:-1])]
    if spec.description:
        head.append(("text", spec.description))
    if spec.source:
        head.append(("text", f"Source: {spec.source}"))
    rep.add("Model", *head, ("table", spec.to_frame()))
    rep.add("Design", ("text", repr(design)[1:-1]), ("table", design.to_frame()),
            _figure(lambda: plot.predictions(model, design, seed=seed,
                                             title=f"{spec.name}: predictions, 90% prediction interval")))
    res = evaluate_fim(model, design, approximation, fim, check=False)
    rep.add(f"Expected precision ({res.approximation.upper()}, {res.fim_type} FIM)", ("text", res.headline()),
            ("table", res.to_frame()), _figure(lambda: plot.correlation(res)))
    if compare_approximations:
        frame = approximation_report(model, design, ("reduced", "full"), seed=seed, draws=draws)
        rep.add("Which approximation to trust (against the exact Monte-Carlo FIM)",
                ("text", f"Every approximation beside exact-MC (ln det Monte-Carlo SE "
                         f"{frame.attrs['logdet_mc_se']:.3g}); 'trusted' when ln det is within {frame.attrs['z']:g} "
                         f"SE and every RSE% within {frame.attrs['rse_tol']:.0%}."),
                ("table", frame), ("text", advice(frame)))
    if optimized is not None:
        blocks = [("text", optimized.headline()), ("text", optimized.message)]
        if optimized.status.advice:
            blocks.append(("text", "Advice: " + optimized.status.advice))
        c = optimized.certificate
        if c is not None:
            eff = "n/a" if c.efficiency_lower_bound is None else f"{c.efficiency_lower_bound:.4f}"
            blocks.append(("text", f"Equivalence theorem: max sensitivity {c.sensitivity_max:.6g} vs bound "
                                   f"{c.bound:.6g} ({'holds' if c.holds else 'NOT met'}); efficiency >= {eff}."))
        blocks.append(("table", optimized.to_frame()))
        opt_design = optimized.design
        if optimized.approximate:
            n_total = optimized.info.get("rounded_total_n") or max(1, int(round(design.total_n)))
            opt_design = optimized.rounded_design(n_total)
            blocks.append(("text", f"Rounded to {n_total} subjects for the comparison below."))
        table = compare(model, {"start": design, "optimised": opt_design}, approximation, fim,
                        criterion=optimized.criterion if optimized.criterion in ("D", "A") else "D")
        blocks.append(("text", f"Efficiency of the optimised design against the start: "
                               f"{table.loc['efficiency', 'optimised']:.4f} ({table.attrs['criterion']})."))
        blocks.append(("table", table))
        blocks.append(_figure(lambda: plot.predictions(model, opt_design, seed=seed, title="optimised design")))
        rep.add("Optimised design", *blocks)
    return rep
