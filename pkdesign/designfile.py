"""Design files: the groups of a design, its sampling space and a prior, in TOML or JSON.

A design file stands on its own (no reference to a model file)::

    window = [0, 120]                      # optional: where a search may move the times

    [[groups]]
    name = "group1"
    n = 32
    times = { conc = [0.5, 2, 6, 24] }     # or a plain list for a one-output model
    dose = { amount = 70 }

    [space]                                # optional: the sampling space of searches
    window = [0, 120]                      # every free sample; or windows = [[lo, hi], ...] per sample
    # clock-time windows: clock_start = "08:00" (the clock time of t = 0, e.g. the first dose) and
    # windows = ["09:00-10:00", "14:00-16:00", "day 2 08:00-09:00"] (hours after t = 0)
    grid = { start = 0, stop = 120, num = 121 }   # or a list of times
    samples = 4                            # approximate designs: free samples per subject, or per output
                                           # for a joint protocol: samples = { conc = 2, effect = 3 }
    min_spacing = 0.25
    fixed = [0.5]                          # samples every schedule keeps
    cost_subject = 1.0                     # cost-normalised designs
    cost_sample = 0.1
    total_n = 40                           # group sizes are a decision: allocate 40 subjects
    [space.groups.group1]                  # per-group overrides of any key above
    window = [0, 48]
    dose = [10, 500]                       # the dose amount is a decision within [lo, hi] (exact designs)
    dose_levels = [50, 100, 200]           # or one of these levels (exact and approximate designs)

    [prior]                                # robust (ED) designs: distribution, a, b per fixed effect
    CL = ["lognormal", 0.15, 0.3]
    KA = ["uniform", 0.5, 2.0]

``read_design_file`` returns a ``DesignFile``; ``Design.load`` / ``Design.save`` read and write the
groups alone (exact round trip: floats are written with ``repr``).  The CLI's ``--window``,
``--grid``, ``--samples``, ``--min-spacing`` and ``--prior`` flags are shorthands for the same
tables and go through the same checks (``space_table``, ``prior_table``).  Defaults: the window is
the table's, else the grid's range, else the design's window, else 0 to the design's last time;
approximate designs get a grid of 16 times across the window and each group's sample count.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .design import Design, check_window
from .errors import DesignError, fmt
from .files import write_atomic

#: keys of a ``[space]`` table (and of each ``[space.groups.NAME]`` override)
SPACE_KEYS = ("window", "windows", "grid", "samples", "min_spacing", "fixed", "cost_subject", "cost_sample",
              "output", "dose", "dose_levels", "total_n", "clock_start")
#: at most this many grid times
MAX_GRID = 100_000
#: default number of grid times across the window for approximate designs
APPROXIMATE_GRID = 16


@dataclass(frozen=True)
class DesignFile:
    """What a design file holds: the design, its sampling-space table (checked) and the prior (or None)."""

    design: Design
    space: dict = field(default_factory=dict)
    prior: object = None

    def exact_space(self, output_names, overrides: dict | None = None) -> dict:
        """``{group name: SamplingSpace}`` for ``optimize_design(space=...)`` (empty table: {})."""
        table = merge_space(self.space, overrides)
        if not table:
            return {}
        return {g.name: _space(table, g, output_names, exact=True, design=self.design)
                for g in self.design.groups}

    def approximate_spaces(self, output_names, overrides: dict | None = None) -> list:
        """One ``SamplingSpace`` per group (its regimen, its sample count unless ``samples`` is given); a group
        with ``dose_levels`` gives one space per level (``space.dose_levels``)."""
        from .space import dose_levels

        table = merge_space(self.space, overrides)
        out = []
        for g in self.design.groups:
            sp = _space(table, g, output_names, exact=False, design=self.design)
            levels = _group_table(table, g).get("dose_levels")
            out += dose_levels(sp, levels) if levels is not None else [sp]
        return out

    def dose_decisions(self) -> dict:
        """``{group: (lo, hi) or [levels]}`` from ``dose`` / ``dose_levels`` (for ``optimize_design(doses=...)``)."""
        out = {}
        for g in self.design.groups:
            t = _group_table(self.space, g)
            if "dose" in t:
                out[g.name] = tuple(float(v) for v in t["dose"])
            elif "dose_levels" in t:
                out[g.name] = [float(v) for v in t["dose_levels"]]
        return out

    @property
    def total_n(self):
        """``total_n`` of the ``[space]`` table (group sizes as a decision), or None."""
        return self.space.get("total_n")


def _group_table(table: dict, group) -> dict:
    t = {k: v for k, v in table.items() if k != "groups"}
    t.update(table.get("groups", {}).get(group.name, {}))
    return t


def merge_space(table: dict, overrides: dict | None) -> dict:
    """``table`` with the top-level keys of ``overrides`` (e.g. CLI flags) replacing its own."""
    if not overrides:
        return dict(table)
    out = dict(table)
    out.update({k: v for k, v in overrides.items() if v is not None})
    if "window" in overrides and overrides["window"] is not None:
        out.pop("windows", None)
    return out


def space_table(data, where: str = "space", label=None) -> dict:
    """Check a ``[space]`` table (keys, types); values are converted later, per group.

    ``label(key)`` spells a key in messages (default ``"{where}.{key}"``; the CLI's flags say ``--min-spacing``)."""
    label = label or (lambda key: f"{where}.{key}")
    if not isinstance(data, dict):
        raise DesignError(f"{where}: expected a table, got {fmt(data)}")
    allowed = set(SPACE_KEYS) | {"groups"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise DesignError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    out = {k: v for k, v in data.items() if k != "groups"}
    if "window" in out:
        out["window"] = check_window(out["window"], label("window"))
    if "grid" in out:
        out["grid"] = grid_times(out["grid"], label("grid"))
    for key in ("min_spacing", "cost_subject", "cost_sample"):
        if key in out and (isinstance(out[key], bool) or not isinstance(out[key], (int, float))
                           or not math.isfinite(out[key]) or out[key] < 0):
            raise DesignError(f"{label(key)}: expected a finite number >= 0, got {fmt(out[key])}")
    if "samples" in out:
        per = out["samples"] if isinstance(out["samples"], dict) else {"": out["samples"]}
        for key, k in per.items():
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
                at = label("samples") + (f".{key}" if key else "")
                raise DesignError(f"{at}: expected a whole number from 1 to 1000 (or a table output -> number for "
                                  f"a protocol over several outputs), got {fmt(k)}")
    if "output" in out and not isinstance(out["output"], str):
        raise DesignError(f"{label('output')}: expected an output name, got {fmt(out['output'])}")
    if "clock_start" in out:
        out["clock_start"] = clock_hours(out["clock_start"], label("clock_start"))
    if "windows" in out and any(isinstance(w, str) for w in out["windows"] or []):
        if "clock_start" not in out:
            raise DesignError(f"{label('windows')}: clock-time windows need clock_start (the clock time of t = 0, "
                              "e.g. clock_start = \"08:00\")")
        out["windows"] = [clock_window(w, out["clock_start"], f"{label('windows')}[{i}]") if isinstance(w, str) else w
                          for i, w in enumerate(out["windows"])]
    if "dose" in out:
        d = out["dose"]
        ok = (isinstance(d, (list, tuple)) and len(d) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in d))
        if not (ok and 0 < d[0] <= d[1]):
            raise DesignError(f"{label('dose')}: expected [lo, hi] amounts with 0 < lo <= hi, got {fmt(d)}")
    if "dose_levels" in out:
        d = out["dose_levels"]
        ok = (isinstance(d, (list, tuple)) and len(d) >= 1
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                      for v in d))
        if not ok:
            raise DesignError(f"{label('dose_levels')}: expected a list of amounts > 0, got {fmt(d)}")
    if "dose" in out and "dose_levels" in out:
        raise DesignError(f"{where}: give dose (bounds) or dose_levels, not both")
    if "total_n" in out:
        k = out["total_n"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise DesignError(f"{label('total_n')}: expected a whole number of subjects >= 1, got {fmt(k)}")
    groups = data.get("groups", {})
    if not isinstance(groups, dict):
        raise DesignError(f"{where}.groups: expected a table group name -> overrides, got {fmt(groups)}")
    out["groups"] = {}
    for name, sub in groups.items():
        if isinstance(sub, dict) and "groups" in sub:
            raise DesignError(f"{where}.groups.{name}: overrides cannot nest 'groups'")
        if isinstance(sub, dict) and "clock_start" in out and "clock_start" not in sub:
            sub = {**sub, "clock_start": out["clock_start"]}  # the design's clock applies to its groups' windows
        out["groups"][str(name)] = {k: v for k, v in space_table(sub, f"{where}.groups.{name}").items()
                                    if k != "groups"}
        if "total_n" in out["groups"][str(name)]:
            raise DesignError(f"{where}.groups.{name}: total_n is a property of the whole design; put it in [space]")
    if not out["groups"]:
        del out["groups"]
    return out


def clock_hours(text, where: str) -> float:
    """Hours after midnight of a clock time "HH:MM" (24-hour); a number in [0, 24) is taken as hours already."""
    import re

    if isinstance(text, (int, float)) and not isinstance(text, bool) and 0 <= text < 24:
        return float(text)
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", text) if isinstance(text, str) else None
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise DesignError(f"{where}: expected a clock time \"HH:MM\" (24-hour), got {fmt(text)}")
    return int(m.group(1)) + int(m.group(2)) / 60.0


def clock_window(text, start: float, where: str) -> list:
    """[lo, hi] in hours after t = 0 of a clock-time window "HH:MM-HH:MM" (optionally "day N HH:MM-HH:MM", day 1
    being the day of t = 0) when t = 0 is at clock time ``start`` (hours after midnight).  The model's time unit
    must be hours."""
    import re

    m = re.fullmatch(r"\s*(?:day\s+(\d+)\s+)?(\S+)\s*-\s*(\S+)\s*", text)
    if m is None:
        raise DesignError(f"{where}: expected \"HH:MM-HH:MM\" or \"day N HH:MM-HH:MM\", got {fmt(text)}")
    day = int(m.group(1) or 1)
    if day < 1:
        raise DesignError(f"{where}: days count from 1 (the day of t = 0), got {fmt(text)}")
    lo = clock_hours(m.group(2), where) + 24.0 * (day - 1) - start
    hi = clock_hours(m.group(3), where) + 24.0 * (day - 1) - start
    if hi < lo:  # a window across midnight
        hi += 24.0
    if lo < 0:
        raise DesignError(f"{where}: the window {fmt(text)} starts before t = 0 (clock_start {start:g} h); give the day "
                          "(\"day 2 ...\")")
    return [lo, hi]


def grid_times(spec, where: str = "grid") -> np.ndarray:
    """Candidate times from a list or ``{start, stop, num}``: sorted, unique, finite, >= 0."""
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - {"start", "stop", "num"})
        if unknown or not {"start", "stop", "num"} <= set(spec):
            raise DesignError(f"{where}: expected {{start, stop, num}}, got keys {sorted(spec)}")
        lo, hi, n = spec["start"], spec["stop"], spec["num"]
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lo, hi))
        if not (ok and 0 <= lo < hi and isinstance(n, int) and not isinstance(n, bool) and 2 <= n <= MAX_GRID):
            raise DesignError(f"{where}: needs finite 0 <= start < stop and num from 2 to {MAX_GRID}, got "
                              f"{fmt([lo, hi, n])}")
        return np.linspace(float(lo), float(hi), n)
    if not isinstance(spec, (list, tuple, np.ndarray)) or len(spec) == 0 or len(spec) > MAX_GRID:
        raise DesignError(f"{where}: expected a list of 1 to {MAX_GRID} times or {{start, stop, num}}, got {fmt(spec)}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) for v in spec):
        raise DesignError(f"{where}: expected numbers, got {fmt(list(spec))}")
    g = np.asarray(spec, dtype=float)
    if not np.all(np.isfinite(g)) or np.any(g < 0):
        raise DesignError(f"{where}: times must be finite and >= 0, got {fmt(list(g))}")
    return np.unique(g)


def prior_table(data, where: str = "prior"):
    """A ``Prior`` from ``{NAME: [distribution, a, b]}`` (or ``{distribution, a, b}`` tables)."""
    from .prior import Prior

    if not isinstance(data, dict):
        raise DesignError(f"{where}: expected a table parameter -> [distribution, a, b], got {fmt(data)}")
    spec = {}
    for name, entry in data.items():
        if isinstance(entry, dict):
            if sorted(entry) != ["a", "b", "distribution"]:
                raise DesignError(f"{where}.{name}: expected {{distribution, a, b}}, got keys {sorted(entry)}")
            entry = [entry["distribution"], entry["a"], entry["b"]]
        spec[name] = tuple(entry) if isinstance(entry, list) else entry
    return Prior(spec)


def _space(table, group, output_names, *, exact: bool, design):
    """The SamplingSpace of one group from the merged table (group overrides applied)."""
    from .space import SamplingSpace

    t = {k: v for k, v in table.items() if k != "groups"}
    t.update(table.get("groups", {}).get(group.name, {}))
    times = np.concatenate([v for v in group.times.values()]) if group.times else np.zeros(0)
    output = t.get("output")
    if output is not None and output not in output_names:
        raise DesignError(f"space for group {group.name!r}: unknown output {output!r}; the model has "
                          f"{list(output_names)}")
    per_output = t.get("samples") if isinstance(t.get("samples"), dict) else None
    if per_output is not None:
        if exact:
            raise DesignError(f"space for group {group.name!r}: samples per output apply to approximate designs")
        unknown = sorted(set(per_output) - set(output_names))
        if unknown:
            raise DesignError(f"space for group {group.name!r}: samples for unknown output(s) {unknown}; the model "
                              f"has {list(output_names)}")
    if output is None and not exact and per_output is None:
        if len(output_names) > 1:
            raise DesignError(f"the model has outputs {list(output_names)}: say what an approximate design samples "
                              f"(group {group.name!r}): one output with --output NAME (or output = ... in the design "
                              f"file's [space]), or a joint protocol with samples = {{ {output_names[0]} = 2, "
                              f"{output_names[1]} = 3 }} in [space]")
        output = output_names[0]
    grid = t.get("grid")
    win = t.get("window") or ((float(grid.min()), float(grid.max())) if grid is not None else
                              design.window or (0.0, design.last_time))
    if grid is None and not exact:
        grid = np.linspace(win[0], win[1], APPROXIMATE_GRID)
    fixed = np.asarray(t.get("fixed", []), dtype=float)
    if per_output is not None:
        n = int(sum(per_output.values()))
    else:
        n = t.get("samples") or max(1, int(times.size - np.isin(times, fixed).sum()))
    return SamplingSpace(n, tuple(win), windows=t.get("windows"), grid=grid, min_spacing=float(t.get("min_spacing", 0)),
                         fixed=fixed, output=None if per_output is not None else output, regimen=group.regimen,
                         covariates=group.covariates, occasions=group.occasions,
                         cost_subject=float(t.get("cost_subject", 1.0)), cost_sample=float(t.get("cost_sample", 0.0)),
                         name=group.name, samples_per_output=per_output)


def read_design_file(path, output_names=None) -> DesignFile:
    """Read a design file (TOML, or JSON by the ``.json`` suffix).

    ``output_names`` (the model's) are needed only when times are plain lists (one-output models);
    a file written by ``Design.save`` names its outputs and loads without a model.
    """
    from .library import read_text

    p = Path(path)
    text = read_text(p, "design file")
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise DesignError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'TOML'}: {exc}") from None
    if isinstance(data, dict) and "design" in data and "groups" not in data:
        data = data["design"]  # a model file's [design] section
    if not isinstance(data, dict):
        raise DesignError(f"{p}: expected a table with a 'groups' list, got {fmt(data)}")
    data = dict(data)
    space = space_table(data.pop("space"), f"{p}: space") if "space" in data else {}
    prior = prior_table(data.pop("prior"), f"{p}: prior") if "prior" in data else None
    design = Design.from_dict(data, output_names, where=str(p))
    unknown = sorted(set(space.get("groups", {})) - {g.name for g in design.groups})
    if unknown:
        raise DesignError(f"{p}: space.groups names unknown group(s) {unknown}; the design has "
                          f"{[g.name for g in design.groups]}")
    return DesignFile(design, space, prior)


def save_design(design: Design, path) -> Path:
    """Write ``design`` as TOML (or JSON by the ``.json`` suffix), atomically; returns the path."""
    p = Path(path)
    data = design.to_dict()
    text = json.dumps(data, indent=1) + "\n" if p.suffix.lower() == ".json" else _toml(data)
    return write_atomic(p, text, f"{p}", DesignError)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string (JSON escapes are TOML escapes)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_value(x)}" for k, x in v.items()) + " }"
    raise DesignError(f"cannot write {fmt(v)} to TOML")


def _toml(data: dict) -> str:
    lines = ["# pkdesign design file"]
    if "window" in data:
        lines.append(f"window = {_value(data['window'])}")
    for g in data["groups"]:
        lines += ["", "[[groups]]"] + [f"{k} = {_value(v)}" for k, v in g.items()]
    return "\n".join(lines) + "\n"
