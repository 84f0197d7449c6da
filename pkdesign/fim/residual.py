"""The residual-error model, one object for every approximation and kernel.

For observation i of output o(i), y_i = f_i + ε_i with

    Var ε_i = r_i = Σ_{additive terms t of o(i)} σ²_t + Σ_{proportional terms t of o(i)} σ²_t · m2_i,

where m2_i is the second moment the approximation puts there: f_i² (FO, FOCE, exact likelihood),
f_i² + (L Ω Lᵀ)_ii with the η–ε interaction (FOI, FOCEI), E_η[f_i²] (MC).  An exponential error is
additive on the log scale (predictions are log-transformed upstream, ``log_scale``).  Terms are
``ErrorTerm`` (``pkdesign.fim.params``): output index, kind add | prop | exp, variance, fixed, name.

Correlated additive and proportional ε (``combined`` with ``correlation = ρ``; PFIM's "Combined1",
``combined1``: SD = a + b·f with one ε, is ρ = 1; a² = σ²_add, b² = σ²_prop) add the cross term 2ρab·m1_i,
m1_i the first moment there (f_i, or E_η[f_i] for MC):

    r_i = σ²_add + σ²_prop · m2_i + 2ρ √(σ²_add σ²_prop) · m1_i,

so ∂r/∂σ²_add = 1 + ρ√(σ²_prop/σ²_add) m1, ∂r/∂σ²_prop = m2 + ρ√(σ²_add/σ²_prop) m1, ∂r/∂f = 2σ²_prop f + 2ρab
(ρ is fixed, not estimated).
With the η–ε interaction (FOI) the single ε multiplies a + b·f(η), which adds σ²_prop (L Ω Lᵀ)_ii: the
same term as for the uncorrelated combined error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NonIdentifiableError


def zero_variance_error(where: str, output: int, time=None, prediction=None) -> NonIdentifiableError:
    """The error for a sample whose residual variance is zero although its prediction depends on the
    parameters (a singular covariance the design cannot escape)."""
    when = "" if time is None else f" at time {float(time):.6g}"
    pred = "" if prediction is None else f"prediction {float(prediction):.6g}, "
    return NonIdentifiableError(
        f"{where}: the sample{when} (output index {int(output)}) has zero residual variance ({pred}no additive "
        "error term) although its prediction depends on the parameters; add an additive error term or move the sample")


@dataclass(frozen=True)
class ResidualError:
    """All residual-error terms of a model (``terms``, in FIM order) and its number of outputs."""

    terms: tuple
    n_outputs: int

    @property
    def free_terms(self) -> list:
        """The estimated terms, in FIM order (their σ² are FIM parameters)."""
        return [e for e in self.terms if not e.fixed]

    @property
    def has_prop(self) -> bool:
        return any(e.kind == "prop" for e in self.terms)

    def _per_output(self, kind_test) -> np.ndarray:
        out = np.zeros(self.n_outputs)
        for e in self.terms:
            if kind_test(e.kind):
                out[e.output] += e.variance
        return out

    def additive_variance(self, idx) -> np.ndarray:
        """Σ σ² of the additive (and log-scale) terms of each observation's output, (n,)."""
        return self._per_output(lambda k: k != "prop")[idx]

    def prop_weight(self, idx) -> np.ndarray:
        """Σ σ² of the proportional terms of each observation's output, (n,): the weight of m2."""
        return self._per_output(lambda k: k == "prop")[idx]

    def _pair(self, output: int) -> tuple:
        """(σ²_add, σ²_prop, ρ) of an output whose additive and proportional ε are correlated, else (0, 0, 0)."""
        terms = [e for e in self.terms if e.output == output and e.correlation != 0]
        add = sum(e.variance for e in terms if e.kind != "prop")
        prop = sum(e.variance for e in terms if e.kind == "prop")
        return add, prop, (terms[0].correlation if terms else 0.0)

    @property
    def has_cross(self) -> bool:
        return any(e.correlation != 0 for e in self.terms)

    def _cross_ab(self, output: int) -> float:
        """ρ·a·b of an output (0 without correlation)."""
        a2, b2, rho = self._pair(output)
        return rho * np.sqrt(a2 * b2)

    def cross_weight(self, idx) -> np.ndarray:
        """2ρab of each observation's output (0 without correlation), (n,): the weight of m1."""
        w = np.array([2.0 * self._cross_ab(o) for o in range(self.n_outputs)])
        return w[np.asarray(idx)] if w.size else np.zeros(np.shape(idx))

    def variance(self, idx, m2, m1=None) -> np.ndarray:
        """r = additive + prop_weight · m2 (+ cross_weight · m1 for combined1), shaped like ``m2``
        (observations on the last axis); ``m1`` (the first moment) is needed when the model has a
        combined1 error."""
        r = self.additive_variance(idx) + self.prop_weight(idx) * m2
        if self.has_cross:
            r = r + self.cross_weight(idx) * m1
        return r

    def slope(self, idx, f) -> np.ndarray:
        """∂r/∂f at m2 = f², m1 = f, same shape as ``f``."""
        s = 2.0 * self.prop_weight(idx) * f
        return s + self.cross_weight(idx) if self.has_cross else s

    def columns(self, idx, m2, m1=None) -> list:
        """∂r/∂σ²_t of each free term t (a list, FIM order), each shaped like ``m2``."""
        idx = np.asarray(idx)
        out = []
        for e in self.free_terms:
            mask = (idx == e.output).astype(float)
            col = mask * m2 if e.kind == "prop" else np.broadcast_to(mask, np.shape(m2)).copy()
            if e.correlation != 0:  # ∂(2ρab m1)/∂σ²_t = (ρab / σ²_t) m1
                col = col + mask * (self._cross_ab(e.output) / e.variance) * m1
            out.append(col)
        return out

    def prop_only(self) -> np.ndarray:
        """Per output: True where it has no additive term (a zero prediction then has zero variance)."""
        return self._per_output(lambda k: k != "prop") == 0

    def log_scale(self) -> np.ndarray:
        """Per output: True where the error is exponential (analysed on the log scale)."""
        flags = np.zeros(self.n_outputs, dtype=bool)
        for e in self.terms:
            if e.kind == "exp":
                flags[e.output] = True
        return flags

    def kernel_arrays(self) -> tuple:
        """(output int64, proportional bool, variance float64, estimated bool, ab float64) per term, for numba
        kernels; ab = √(σ²_add σ²_prop) of a combined1 pair (0 for the other terms)."""
        t = self.terms
        ab = [self._cross_ab(e.output) if e.correlation != 0 else 0.0 for e in t]
        return (np.array([e.output for e in t], dtype=np.int64), np.array([e.kind == "prop" for e in t], dtype=bool),
                np.array([e.variance for e in t], dtype=float), np.array([not e.fixed for e in t], dtype=bool),
                np.array(ab, dtype=float))
