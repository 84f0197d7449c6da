"""Stochastic simulation and estimation (SSE): the check of a design that users trust most.

``sse(model, design, replicates=200, seed=0)`` simulates ``replicates`` studies of the design (η and κ per
occasion from Ω, residual error from σ, covariates per group: the same simulation as the dataset export) and
re-estimates the population parameters of each by maximum likelihood, then sets the empirical standard
errors (SD of the estimates over replicates), bias and RSE% beside the FIM's predicted RSE%.

No maintained Python library estimates nonlinear mixed-effects models from these datasets (pharmpy drives
NONMEM or nlmixr2 where they are installed; they are not a Python estimator), so the estimator is a compact
one on pkdesign's own kernels: the **FO marginal likelihood** (the model linearised in η at η = 0, exactly the
model behind the FO FIM): y_i ~ N(f(θ, 0), L Ω Lᵀ + R(f)), maximised over all estimated parameters (log scale
for positive ones) by L-BFGS-B from the true values, with the exact gradient (a compiled kernel that builds V and
∂V with the FO FIM kernel's own builders).  Subjects of one group share f and L, so one kernel call
per group and evaluation serves all of them.  With ``fim="full"`` the FIM compared is the full FO FIM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DesignError


@dataclass
class SSEResult:
    """Estimates (R, p) of ``replicates`` simulated studies beside the FIM's prediction."""

    names: tuple
    true: np.ndarray
    estimates: np.ndarray
    converged: np.ndarray
    fim_rse: np.ndarray
    approximation: str
    fim_type: str
    seed: object

    @property
    def ok(self) -> np.ndarray:
        return self.estimates[self.converged]

    @property
    def empirical_se(self) -> np.ndarray:
        return self.ok.std(axis=0, ddof=1)

    @property
    def empirical_rse(self) -> np.ndarray:
        return 100 * self.empirical_se / np.abs(self.true)

    @property
    def bias_percent(self) -> np.ndarray:
        return 100 * (self.ok.mean(axis=0) - self.true) / np.abs(self.true)

    def to_frame(self):
        """Per parameter: true value, mean estimate, bias%, empirical RSE% (with its Monte-Carlo SE), FIM RSE%,
        and their ratio."""
        import pandas as pd

        n = int(self.converged.sum())
        emp = self.empirical_rse
        return pd.DataFrame({"true": self.true, "mean_estimate": self.ok.mean(axis=0), "bias_percent": self.bias_percent,
                             "empirical_rse_percent": emp, "empirical_rse_mc_se": emp / np.sqrt(2 * (n - 1)),
                             "fim_rse_percent": self.fim_rse, "ratio": emp / self.fim_rse},
                            index=pd.Index(self.names, name="parameter"))

    def __repr__(self) -> str:
        ratio = self.empirical_rse / self.fim_rse
        worst = int(np.argmax(np.abs(ratio - 1)))
        return (f"<SSEResult {int(self.converged.sum())}/{self.converged.size} replicates converged; empirical/FIM "
                f"RSE% from {ratio.min():.2f} to {ratio.max():.2f} (worst {self.names[worst]})>")

    def summary(self) -> str:
        return repr(self)[1:-1] + "\n" + self.to_frame().to_string(float_format=lambda v: f"{v:.4g}")

    def _repr_html_(self) -> str:
        from .display import html_table

        return html_table(self.to_frame(), repr(self)[1:-1])

    def plot(self, ax=None):
        """Empirical RSE% (with ±2 Monte-Carlo SE) beside the FIM's, per parameter (a matplotlib Figure)."""
        from .plot import _figure

        fig, (a,) = _figure(ax)
        frame = self.to_frame()
        x = np.arange(len(frame))
        a.bar(x - 0.2, frame["fim_rse_percent"], 0.4, label=f"FIM ({self.approximation}, {self.fim_type})")
        a.bar(x + 0.2, frame["empirical_rse_percent"], 0.4, yerr=2 * frame["empirical_rse_mc_se"],
              label=f"simulation + estimation ({int(self.converged.sum())} replicates)")
        a.set_xticks(x, frame.index, rotation=45, ha="right")
        a.set_ylabel("RSE (%)")
        a.legend(fontsize=8)
        return fig


def _simulate(model, design, rng_seed):
    """Per group: (group, times, outputs, Y (n, m)) of one simulated study (the dataset export's simulation)."""
    from .dataset import simulate_group

    out = []
    for g, gs in zip(design.groups, rng_seed.spawn(len(design.groups))):
        t, idx, _, y = simulate_group(model, g, int(g.n), gs)
        out.append((g, t, idx, y))
    return out


class _FOLikelihood:
    """−log likelihood of the FO-linearised model for one simulated study, in the FIM's parameters, with its exact
    gradient (``kernels.fo_likelihood``: V and ∂V from the FO FIM kernel's builders; needs the model's second
    derivatives ∂²f/∂η∂θ, as the full FIM does)."""

    def __init__(self, model, values0: dict, data):
        from .fim.params import population_parameters

        self.model = model
        self.names = list(population_parameters(model.spec, values0).names)
        # per group: (group, times, outputs, subjects m, Σ yᵢ (n,), Σ yᵢyᵢᵀ (n, n)): the residual sums at any f
        self.data = [(g, t, idx, Y.shape[0], Y.sum(axis=0), Y.T @ Y) for g, t, idx, Y in data]

    def __call__(self, values: np.ndarray) -> tuple:
        """(NLL, gradient (p,)) at the FIM parameters ``values``; (inf, zeros) at an infeasible point."""
        from .fim.params import population_parameters
        from .fim.predict import predict
        from .kernels.fo_likelihood import fo_nll

        bad = (np.inf, np.zeros(len(values)))
        try:
            pp = population_parameters(self.model.spec, dict(zip(self.names, values)))
        except Exception:  # noqa: BLE001 - an infeasible point (Ω not PSD, negative variance) for the optimiser
            return bad
        total, grad = 0.0, np.zeros(len(values))
        for g, t, idx, m, ysum, yy in self.data:
            ppx = pp.for_occasions(g.occasion_starts())
            try:
                P = predict(self.model, ppx, np.zeros(ppx.n_eta), t, idx, g.regimen, 2)
            except DesignError:
                return bad
            f = P.f[0]
            esum = ysum - m * f  # Σ (yᵢ − f) and Σ (yᵢ − f)(yᵢ − f)ᵀ from the data's sums
            S = yy - np.outer(ysum, f) - np.outer(f, ysum) + m * np.outer(f, f)
            gx = np.zeros(len(ppx.names))
            nll = fo_nll(f.copy(), np.ascontiguousarray(P.fth[0]), np.ascontiguousarray(P.L[0]),
                         np.ascontiguousarray(P.Lth[0]), *ppx.variance_kernel_arrays(), np.asarray(idx, dtype=np.int64),
                         S, esum, float(m), gx)
            if not np.isfinite(nll):
                return bad
            total += nll
            grad += gx if ppx.collapse is None else ppx.collapse.T @ gx
        return total, grad


def _estimate(model, design, names, true, rep_seed, max_iter):
    """(estimates (p,), converged) of one simulated study."""
    from scipy.optimize import minimize

    positive = true > 0
    x0 = np.where(positive, np.log(np.where(positive, true, 1.0)), true)

    def back(x):
        return np.where(positive, np.exp(x), x)

    nll = _FOLikelihood(model, dict(zip(names, true)), _simulate(model, design, rep_seed))

    def objective(x):  # in x (log scale for positive parameters): dα/dx = α there
        a = back(x)
        value, grad = nll(a)
        return value, np.where(positive, grad * a, grad)

    out = minimize(objective, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return back(out.x), bool(out.success) and bool(np.isfinite(out.fun))


#: executor tasks per SSE run
TASKS = 8


def _estimate_many(args_list):
    return [_estimate(*a) for a in args_list]


def sse(model, design, replicates: int = 200, seed=0, *, approximation: str = "fo", fim=None,
        max_iter: int = 500, executor=None) -> SSEResult:
    """Simulate ``replicates`` studies of ``design`` and re-estimate each (FO maximum likelihood); returns an
    ``SSEResult`` with the empirical RSE% beside the FIM's (``approximation``, ``fim``).  ``executor``: the
    replicates as tasks (each has its own seed stream: the same result as serially)."""
    from .executors import check_executor, gather, submit
    from .fim.api import evaluate_fim

    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or not 2 <= replicates <= 100_000:
        raise DesignError(f"sse: replicates must be a whole number from 2 to 100000, got {replicates!r}")
    for g in design.groups:
        if not float(g.n).is_integer():
            raise DesignError(f"sse: group {g.name!r} has n = {g.n:g}, not a whole number of subjects")
    res = evaluate_fim(model, design, approximation, fim)
    names, true = tuple(res.names), np.asarray(res.values, dtype=float)
    seeds = np.random.SeedSequence(seed).spawn(replicates)
    args = [(model, design, names, true, s, max_iter) for s in seeds]
    if executor is not None:  # a few tasks of several replicates each (a model travels once per task)
        check_executor(executor)
        n = min(len(args), TASKS)
        chunks = gather([submit(executor, _estimate_many, args[i::n]) for i in range(n)], "sse replicates")
        runs = [None] * len(args)
        for i, part in enumerate(chunks):
            runs[i::n] = part
    else:
        runs = [_estimate(*a) for a in args]
    est = np.array([e for e, _ in runs])
    ok = np.array([c for _, c in runs], dtype=bool)
    if ok.sum() < 2:
        raise DesignError("sse: fewer than 2 replicates converged; the design or model may not identify the "
                          "parameters")
    return SSEResult(names, true, est, ok, np.asarray(res.rse_percent, dtype=float), res.approximation,
                     res.fim_type, seed)
