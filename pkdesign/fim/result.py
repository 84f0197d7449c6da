"""The FIM result: matrix with names, and everything a user reads off it.

``FIMResult`` holds the population (or individual) FIM with the parameter names in FIM order,
their values, the approximation used and, for Monte-Carlo methods, the Monte-Carlo standard
error of each element.  Derived quantities (covariance, SE, RSE%, correlation, ln det,
det^(1/p), eigenvalues, condition number) are computed on demand; a singular FIM raises
``NonIdentifiableError`` naming the parameter combinations that span its null space.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..choices import SCALES
from ..errors import NonIdentifiableError
from ..numerics import SINGULAR_RTOL

#: relative eigenvalue of the diagonally scaled FIM at or below which a direction counts as not
#: identifiable (the one threshold of pkdesign.numerics)
SINGULAR_TOL = SINGULAR_RTOL


def _unsquare(unit: str) -> str:
    """``(L/h)^2`` -> ``L/h``; ``L^2`` -> ``L``."""
    if unit.endswith("^2"):
        unit = unit[:-2]
        return unit[1:-1] if unit.startswith("(") and unit.endswith(")") else unit
    return unit


def _sd_name(name: str) -> str:
    if name.startswith("omega2("):
        return "omega(" + name[len("omega2("):]
    if name.startswith("sigma2_"):
        return "sigma_" + name[len("sigma2_"):]
    return name


def format_direction(direction: dict) -> str:
    """``{"KA": 0.707, "K": -0.707}`` -> ``"0.71*KA - 0.71*K"``."""
    text = ""
    for i, (n, c) in enumerate(direction.items()):
        sign = "-" if c < 0 else "+"
        if i == 0:
            text += ("-" if c < 0 else "") + f"{abs(c):.2g}*{n}"
        else:
            text += f" {sign} {abs(c):.2g}*{n}"
    return text


def null_directions(names, matrix: np.ndarray, tol: float = SINGULAR_TOL) -> list:
    """Parameter combinations of an information matrix (p, p) with (near) zero information.

    Returns a list of dicts name -> coefficient (unit norm, largest coefficients first, the first
    positive).  Judged on the diagonally scaled matrix D^-1/2 M D^-1/2, so parameter units do not
    matter; a direction counts when its eigenvalue is at most ``tol`` times the largest.
    """
    F = 0.5 * (matrix + matrix.T)
    d = np.diag(F).copy()
    if np.all(d > 0):  # the usual case first, by the eigenvalues alone (criteria.nonsingular's test)
        s = 1 / np.sqrt(d)
        w = np.linalg.eigvalsh(F * s[:, None] * s[None, :])
        if w[0] > tol * w[-1]:
            return []
    dirs = []
    zero = d <= 0
    for k in np.flatnonzero(zero):
        dirs.append({names[k]: 1.0})
    keep = np.flatnonzero(~zero)
    if keep.size:
        s = 1 / np.sqrt(d[keep])
        w, v = np.linalg.eigh(F[np.ix_(keep, keep)] * np.outer(s, s))
        for j in np.flatnonzero(w <= tol * max(w.max(), 1e-300)):
            vec = v[:, j] * s
            vec /= np.linalg.norm(vec)
            order = sorted(range(vec.size), key=lambda i: (-round(abs(vec[i]), 6), i))
            if vec[order[0]] < 0:
                vec = -vec
            dirs.append({names[keep[i]]: float(vec[i]) for i in order if abs(vec[i]) > 1e-3})
    return dirs


def describe_null(names, matrix: np.ndarray) -> str:
    """``"0.71*KA - 0.71*K; ..."`` for the null directions of ``matrix`` ("numerically singular" if none)."""
    return "; ".join(format_direction(d) for d in null_directions(names, matrix)) or "numerically singular"


@dataclass(frozen=True)
class FIMResult:
    """A Fisher information matrix with its parameter names.

    Attributes
    ----------
    names : tuple of str (p,)     parameters in FIM order
    matrix : ndarray (p, p)       the FIM (per design: summed over groups and subjects)
    values : ndarray (p,)         parameter values at which it was computed (same scale)
    approximation : str           fo | foi | foce | focei | mc | exact-mc | individual
    fim_type : str                full | reduced
    scale : str                   variance | sd | declared (scale of Ω and σ entries)
    mc_se : ndarray (p, p) or None  Monte-Carlo standard error of each element (exact-mc)
    info : dict                   draws, seed and other settings
    units : tuple of str (p,)     unit of each parameter, from the model (``display.parameter_units``)

    Prints in one line; ``summary()`` is the text table, ``to_frame()`` the DataFrame (value, unit,
    SE, RSE%), and Jupyter renders it as a table.
    """

    names: tuple
    matrix: np.ndarray
    values: np.ndarray
    approximation: str
    fim_type: str = "full"
    scale: str = "variance"
    mc_se: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    declared_scale: tuple = ()
    units: tuple = ()              # unit of each parameter ("" if dimensionless or undeclared)
    log_scale: tuple = ()          # names of parameters declared on the log scale (RSE% = 100*SE)

    # -- scale -------------------------------------------------------------------------------
    def on_scale(self, scale: str) -> "FIMResult":
        """The same information for Ω variances and σ² on another scale.

        ``"sd"``: every variance parameter v is replaced by s = √v (FIM_s = J FIM J, J = ∂v/∂s = 2s);
        ``"declared"``: the scale each parameter was declared on in the model file;
        ``"variance"``: back to variances.  Covariances stay covariances.
        """
        if scale not in SCALES:
            raise ValueError(f"scale: expected 'variance', 'sd' or 'declared', got {scale!r}")
        if self.scale != "variance":
            raise ValueError("on_scale converts from the variance scale only")
        if scale == "variance":
            return self
        to_sd = []
        for k, n in enumerate(self.names):
            is_var = n.startswith("omega2(") or n.startswith("sigma2_")
            wants = scale == "sd" or (self.declared_scale and self.declared_scale[k] == "sd")
            to_sd.append(is_var and wants)
        to_sd = np.array(to_sd)
        values = self.values.copy()
        values[to_sd] = np.sqrt(values[to_sd])
        J = np.where(to_sd, 2 * values, 1.0)
        names = tuple(_sd_name(n) if s else n for n, s in zip(self.names, to_sd))
        mc = None if self.mc_se is None else self.mc_se * np.abs(np.outer(J, J))
        units = tuple(_unsquare(u) if s else u for u, s in zip(self.units, to_sd)) if self.units else ()
        return replace(self, names=names, matrix=self.matrix * np.outer(J, J), values=values, scale=scale, mc_se=mc,
                       units=units)

    # -- identifiability ---------------------------------------------------------------------
    def null_directions(self, tol: float = SINGULAR_TOL) -> list:
        """Parameter combinations (dicts name -> coefficient, unit norm) with (near) zero information
        (``null_directions`` of this matrix)."""
        return null_directions(self.names, self.matrix, tol)

    @property
    def identifiable(self) -> bool:
        return not self.null_directions()

    def check_identifiable(self) -> "FIMResult":
        """Raise ``NonIdentifiableError`` if the FIM is singular; return self otherwise."""
        dirs = self.null_directions()
        if dirs:
            text = "; ".join(format_direction(d) for d in dirs)
            raise NonIdentifiableError(
                f"the FIM ({self.approximation}, {self.fim_type}) is singular: the parameters are not identifiable "
                f"along {text} (the design gives no information on these combinations)", dirs)
        return self

    # -- derived quantities ------------------------------------------------------------------
    @property
    def p(self) -> int:
        return len(self.names)

    @property
    def covariance(self) -> np.ndarray:
        """Inverse FIM (p, p): the asymptotic covariance of the estimates."""
        self.check_identifiable()
        return np.linalg.inv(self.matrix)

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance))

    @property
    def rse_percent(self) -> np.ndarray:
        """100·SE/|value| (inf for a parameter whose value is 0); for a parameter declared on the log scale,
        100·SE (the approximate CV% of the parameter it is the log of)."""
        return self._rse(self.se)

    def _rse(self, se) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            rse = 100 * se / np.abs(self.values)
        for k, n in enumerate(self.names):
            if n in self.log_scale:
                rse[k] = 100 * se[k]
        return rse

    @property
    def correlation(self) -> np.ndarray:
        c = self.covariance
        s = np.sqrt(np.diag(c))
        return c / np.outer(s, s)

    @property
    def logdet(self) -> float:
        """ln det FIM (−inf if singular)."""
        sign, val = np.linalg.slogdet(self.matrix)
        return float(val) if sign > 0 else -np.inf

    @property
    def det_root(self) -> float:
        """det(FIM)^(1/p)."""
        return float(np.exp(self.logdet / self.p))

    @property
    def eigenvalues(self) -> np.ndarray:
        return np.linalg.eigvalsh(0.5 * (self.matrix + self.matrix.T))

    @property
    def condition_number(self) -> float:
        w = self.eigenvalues
        return float(w.max() / w.min()) if w.min() > 0 else np.inf

    def to_frame(self):
        """pandas DataFrame, one row per parameter: value, unit, se, rse_percent, fim_diagonal.

        A singular FIM gives NaN SE and RSE% (``null_directions()`` says why) instead of raising."""
        import pandas as pd

        try:
            se = self.se
        except NonIdentifiableError:
            se = np.full(self.p, np.nan)
        rse = self._rse(se)
        units = self.units if len(self.units) == self.p else ("",) * self.p
        return pd.DataFrame({"value": self.values, "unit": list(units), "se": se, "rse_percent": rse,
                             "fim_diagonal": np.diag(self.matrix)}, index=pd.Index(self.names, name="parameter"))

    def headline(self) -> str:
        """``FO reduced FIM, 7 parameters: ln det 55.3964; largest RSE 43.5% (omega2(KA))``."""
        what = f"{self.approximation.upper() if len(self.approximation) <= 5 else self.approximation} {self.fim_type}"
        text = f"{what} FIM, {self.p} parameters: ln det {self.logdet:.6g}"
        dirs = self.null_directions()
        if dirs:
            return text + f"; singular along {format_direction(dirs[0])}"
        rse = self.rse_percent
        k = int(np.nanargmax(rse)) if np.any(np.isfinite(rse)) else 0
        return text + f"; largest RSE {rse[k]:.3g}% ({self.names[k]})"

    def __repr__(self) -> str:
        return f"<FIMResult {self.headline()}>"

    def summary(self) -> str:
        """Text table: parameter, value, unit, SE, RSE%, then ln det, det^(1/p) and condition number."""
        from ..display import num

        f = self.to_frame()
        lines = [self.headline(), f"{'parameter':>16} {'value':>11} {'unit':>8} {'SE':>11} {'RSE%':>8}"]
        for name, r in f.iterrows():
            lines.append(f"{name:>16} {num(r['value'], 6):>11} {r['unit']:>8} {num(r['se'], 5):>11} "
                         f"{num(r['rse_percent'], 4):>8}")
        lines.append(f"ln det = {self.logdet:.6f}   det^(1/p) = {num(self.det_root, 6)}   condition number = "
                     f"{num(self.condition_number, 3)}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..display import html_table

        return html_table(self.to_frame(), self.headline(),
                          f"det^(1/p) = {self.det_root:.6g}, condition number {self.condition_number:.3g}")

    def to_dict(self) -> dict:
        """The JSON shape of ``pkdesign evaluate --json``."""
        out = {"parameters": list(self.names), "values": self.values.tolist(), "fim": self.matrix.tolist(),
               "se": self.se.tolist(), "rse_percent": self.rse_percent.tolist(), "logdet": self.logdet,
               "det_root": self.det_root, "condition_number": self.condition_number,
               "approximation": self.approximation, "fim_type": self.fim_type, "scale": self.scale}
        if self.mc_se is not None:
            out["fim_mc_se"] = self.mc_se.tolist()
        out.update({k: v for k, v in self.info.items() if isinstance(v, (int, float, str, type(None)))})
        return out
