"""Designs: groups of subjects, their dose regimens (``pkdesign.regimen``) and sampling times.

Sits between the model and the FIM: a ``Design`` says, for each group, how many subjects
(``n``; a weight in an approximate design), which doses at which times, and when each output is
sampled.  All validation of user-supplied times and doses happens here, with messages that give
the group, the output and the index of the first offending entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .covariates import check_covariates, covariate_combinations
from .errors import DesignError, fmt
from .regimen import Regimen, _as_float_array, check_occasions, check_times, occasion_starts  # noqa: F401  (re-exported)


#: upper limits that keep a typo from allocating gigabytes (stated in the messages)
MAX_SAMPLES = 10_000_000   # sampling times of one output of one group
MAX_SUBJECTS = 1e9         # subjects (or weight) of one group


@dataclass(frozen=True)
class Group:
    """A group (arm) of subjects sharing dose regimen and sampling times.

    Attributes
    ----------
    n : float
        Number of subjects (exact design) or weight (approximate design), > 0.
    times : dict of str -> ndarray
        Sampling times per output name, each sorted, >= 0 (model time units).
    regimen : Regimen
        Dose events.
    name : str
    covariates : dict of str -> float or {"values": [...], "proportions": [...]}
        Values of the model's ``[covariates]`` for this group (model units).  A distribution splits the
        group: its FIM is the proportion-weighted sum of the FIMs at each value (several distributions
        combine as independent).
    occasions : list of float, or "doses"
        Start times of the occasions (inter-occasion variability: one κ per occasion), each with at least one
        dose in it; "doses": every dose opens an occasion.  Empty: the group is one occasion.  A sample at an
        occasion's start (its trough) belongs to the occasion before.
    """

    n: float
    times: dict
    regimen: Regimen = field(default_factory=Regimen)
    name: str = ""
    covariates: dict = field(default_factory=dict)
    occasions: object = ()

    def __post_init__(self):
        where = f"group {self.name!r}" if self.name else "group"
        if isinstance(self.n, bool) or not isinstance(self.n, (int, float, np.integer, np.floating)):
            raise DesignError(f"{where}: n must be a number > 0, got {fmt(self.n)} ({type(self.n).__name__})")
        if not (np.isfinite(self.n) and 0 < self.n <= MAX_SUBJECTS):
            raise DesignError(f"{where}: n must be > 0 and at most {MAX_SUBJECTS:g}, got {fmt(self.n)}")
        if not isinstance(self.times, dict):
            raise DesignError(f"{where}: times must be a table output -> list of times, got {fmt(self.times)}")
        checked = {}
        for k, v in self.times.items():
            arr = check_times(v, f"{where}, output {k!r}")
            if arr.size > MAX_SAMPLES:
                raise DesignError(f"{where}, output {k!r}: {arr.size} sampling times; the limit is {MAX_SAMPLES}")
            checked[k] = arr
        object.__setattr__(self, "times", checked)
        object.__setattr__(self, "covariates", check_covariates(self.covariates, where))
        object.__setattr__(self, "occasions", check_occasions(self.occasions, self.regimen, where))

    def covariate_cases(self) -> list:
        """``[(proportion, {covariate: value}), ...]`` (see ``pkdesign.covariates.covariate_combinations``)."""
        return covariate_combinations(self.covariates)

    def occasion_starts(self) -> np.ndarray:
        """Start times of the occasions (empty: one occasion)."""
        return occasion_starts(self.occasions, self.regimen)

    def observations(self, output_names) -> tuple:
        """Flatten the sampling times: (times (n_obs,), output index (n_obs,) int64), outputs in model order."""
        unknown = sorted(set(self.times) - set(output_names))
        if unknown:
            raise DesignError(
                f"group {self.name!r}: sampling times for unknown output(s) {unknown}; the model has {list(output_names)}"
            )
        ts, idx = [], []
        for k, name in enumerate(output_names):
            if name in self.times:
                ts.append(self.times[name])
                idx.append(np.full(self.times[name].size, k, dtype=np.int64))
        if not ts:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        return np.concatenate(ts), np.concatenate(idx)


def check_window(window, where: str = "window") -> tuple:
    """A sampling window (lo, hi): finite, 0 <= lo < hi (model time units)."""
    arr = _as_float_array(window, where)
    if arr.size != 2 or not np.all(np.isfinite(arr)) or not 0 <= arr[0] < arr[1]:
        raise DesignError(f"{where}: expected [lo, hi] with finite 0 <= lo < hi, got {fmt(list(arr))}")
    return (float(arr[0]), float(arr[1]))


@dataclass(frozen=True)
class Design:
    """A design: a tuple of groups, and optionally the window (lo, hi) in which a search may move
    the sampling times (default: from 0 to the last sampling time)."""

    groups: tuple
    window: tuple | None = None

    def __post_init__(self):
        object.__setattr__(self, "groups", tuple(self.groups))
        if not self.groups:
            raise DesignError("a design needs at least one group")
        if self.window is not None:
            object.__setattr__(self, "window", check_window(self.window))

    @property
    def last_time(self) -> float:
        """The latest sampling time of any group and output (0 if there is none)."""
        return max((float(v.max()) for g in self.groups for v in g.times.values() if v.size), default=0.0)

    @property
    def total_n(self) -> float:
        return float(sum(g.n for g in self.groups))

    @classmethod
    def from_dict(cls, data, output_names=None, where: str = "design") -> "Design":
        """Build from ``{"groups": [{n, times, dose, name, covariates}, ...]}`` as in a model or design file.

        ``times`` is a table output -> list, or a plain list for a one-output model (``output_names``
        needed then).
        """
        if not isinstance(data, dict) or "groups" not in data:
            got = f"a table with keys {sorted(data)}" if isinstance(data, dict) else fmt(data)
            raise DesignError(f"{where}: expected a table with a 'groups' list, got {got}")
        unknown = sorted(set(data) - {"groups", "window"})
        if unknown:
            raise DesignError(f"{where}: unknown key(s) {unknown}; allowed: ['groups', 'window']")
        window = check_window(data["window"], f"{where}.window") if "window" in data else None
        groups = data["groups"]
        if not isinstance(groups, list) or not groups:
            raise DesignError(f"{where}.groups: expected a non-empty list of groups")
        out = []
        for i, g in enumerate(groups):
            w = f"{where}.groups[{i}]"
            if not isinstance(g, dict):
                raise DesignError(f"{w}: expected a table, got {fmt(g)}")
            unknown = sorted(set(g) - {"n", "times", "dose", "name", "covariates", "occasions"})
            if unknown:
                raise DesignError(f"{w}: unknown key(s) {unknown}; allowed: ['covariates', 'dose', 'n', 'name', "
                                  "'occasions', 'times']")
            if "n" not in g or "times" not in g:
                raise DesignError(f"{w}: each group needs 'n' and 'times'")
            times = g["times"]
            if not isinstance(times, dict):
                if output_names is None:
                    raise DesignError(f"{w}.times: a plain list needs the model (for its output name); give the "
                                      "model, or write times as a table output -> list")
                if len(output_names) != 1:
                    raise DesignError(
                        f"{w}.times: the model has outputs {list(output_names)}; give times as a table output -> list"
                    )
                times = {output_names[0]: times}
            name = str(g.get("name", f"group{i + 1}"))
            regimen = Regimen.from_dict(g.get("dose"), f"{w}.dose")  # its messages carry the location already
            try:
                out.append(Group(g["n"], times, regimen, name, g.get("covariates", {}), g.get("occasions", ())))
            except DesignError as exc:
                raise DesignError(f"{w}: {exc}") from None
        return cls(tuple(out), window)

    @classmethod
    def load(cls, path, model=None) -> "Design":
        """Read the design of a design file (TOML, or JSON by suffix; see ``designfile``).  ``model`` (a
        model or spec) is needed only for times written as plain lists."""
        from .designfile import read_design_file

        spec = getattr(model, "spec", model)
        return read_design_file(path, spec.output_names if spec is not None else None).design

    def to_dataset(self, model, *, simulate: bool = False, replicates: int = 1, seed=0):
        """This design as a NONMEM-format DataFrame (``pkdesign.dataset.to_dataset``)."""
        from .dataset import to_dataset

        return to_dataset(model, self, simulate=simulate, replicates=replicates, seed=seed)

    def save(self, path):
        """Write this design to ``path`` (TOML, or JSON by suffix), atomically; ``Design.load`` reads it back
        exactly.  Returns the path."""
        from .designfile import save_design

        return save_design(self, path)

    # -- how it reads ------------------------------------------------------------------------
    def __repr__(self) -> str:
        groups = "; ".join(f"{g.name or 'group'} n={g.n:g}: " + ", ".join(
            f"{k} x{v.size}" for k, v in g.times.items()) for g in self.groups[:3])
        more = f"; ... ({len(self.groups)} groups)" if len(self.groups) > 3 else ""
        win = f"; window {self.window[0]:g}-{self.window[1]:g}" if self.window is not None else ""
        return f"<Design {len(self.groups)} group(s), {self.total_n:g} subjects: {groups}{more}{win}>"

    def to_frame(self):
        """pandas DataFrame, one row per group and output: n, doses, number of samples, sampling times."""
        import pandas as pd

        from .display import num, times_text

        rows = []
        for g in self.groups:
            r = g.regimen
            dose = "none" if r.times.size == 0 else (
                f"{num(r.amounts[0])} x{r.times.size}" if np.all(r.amounts == r.amounts[0]) else
                "/".join(num(a) for a in r.amounts[:4]) + ("/..." if r.amounts.size > 4 else ""))
            if np.any(r.durations > 0):
                dose += f" over {num(r.durations.max())}"
            cov = "; ".join(f"{k}={num(v)}" if not isinstance(v, dict) else
                            f"{k}=" + "/".join(f"{num(x)}:{num(p)}" for x, p in zip(v["values"], v["proportions"]))
                            for k, v in g.covariates.items())
            for out, t in (g.times.items() or [("", np.zeros(0))]):
                occ = ("each dose" if g.occasions == "doses" else
                       f"{len(g.occasions)} from " + ", ".join(num(x) for x in g.occasions)) if g.occasions else ""
                rows.append({"group": g.name, "n": g.n, "dose": dose} | ({"covariates": cov} if cov else {}) |
                            ({"occasions": occ} if occ else {}) |
                            {"output": out, "samples": int(t.size), "times": times_text(t, 12)})
        frame = pd.DataFrame(rows)
        for col in ("covariates", "occasions"):
            if col in frame:
                frame[col] = frame[col].fillna("")
        return frame

    def summary(self) -> str:
        """Text table of the groups (see ``to_frame``)."""
        return repr(self) + "\n" + self.to_frame().to_string(index=False)

    def _repr_html_(self) -> str:
        from .display import html_table

        return html_table(self.to_frame(), repr(self)[1:-1])

    def to_dict(self) -> dict:
        return ({"window": list(self.window)} if self.window is not None else {}) | {
            "groups": [
                {
                    "name": g.name,
                    "n": g.n,
                    "times": {k: v.tolist() for k, v in g.times.items()},
                    "dose": g.regimen.to_dict(),
                } | ({"covariates": {k: dict(v, values=list(v["values"]), proportions=list(v["proportions"]))
                                     if isinstance(v, dict) else v for k, v in g.covariates.items()}}
                     if g.covariates else {})
                  | ({"occasions": g.occasions if isinstance(g.occasions, str) else list(g.occasions)}
                     if g.occasions else {})
                for g in self.groups
            ]
        }
