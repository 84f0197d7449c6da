"""Plots (optional dependency matplotlib: ``pip install pkdesign[plot]``).

Every function returns a ``matplotlib.figure.Figure``, draws into ``ax=`` when given (an Axes, or
a sequence of Axes where one per output is needed), never touches pyplot's global state or the
backend, and labels its axes with the model's units.

- ``predictions(model, design)``: typical-value curve of every group and output, a simulated
  prediction interval (η from Ω, ε from σ; seeded, as PopED's ``plot_model_prediction(PI=TRUE)``)
  and the sampling times marked;
- ``sensitivity(result)``: the sensitivity function of an approximate design against its bound;
- ``rse(results)``: RSE% of several designs side by side;
- ``correlation(fim)``: the correlation matrix of the estimates as a heatmap.
"""

from __future__ import annotations

import numpy as np

from .errors import PkdesignError


def _figure(ax, n_axes: int = 1, figsize=(7.0, 3.4)):
    """(figure, list of axes): the given axes, or a new Figure (no pyplot) with ``n_axes`` rows."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PkdesignError("plotting needs matplotlib: pip install 'pkdesign[plot]'") from None
    if ax is not None:
        axes = list(np.atleast_1d(ax).ravel())
        if len(axes) < n_axes:
            raise PkdesignError(f"ax: {n_axes} axes needed (one per output), got {len(axes)}")
        return axes[0].figure, axes
    fig = Figure(figsize=(figsize[0], figsize[1] * n_axes), layout="constrained")
    return fig, list(np.atleast_1d(fig.subplots(n_axes, 1, squeeze=False)).ravel())


def _label(name: str, unit: str) -> str:
    return f"{name} ({unit})" if unit else name


def predictions(model, design, *, interval: float | None = 0.9, n_sim: int = 1000, seed=0, outputs=None,
                n_points: int = 200, ax=None, title: str = ""):
    """Model predictions per group and output with a simulated prediction interval and the sampling times.

    interval : central coverage of the band (0.9: 5th to 95th percentile of simulated observations,
        residual error included); None for no band
    n_sim : simulated subjects per group; seed : their seed (same seed, same band)
    outputs : output names to plot (default: all)
    """
    from .fim.params import population_parameters
    from .search.rounding import apportion
    from .simulation import simulate

    spec = model.spec
    names = list(outputs) if outputs is not None else list(spec.output_names)
    unknown = sorted(set(names) - set(spec.output_names))
    if unknown:
        raise PkdesignError(f"outputs: unknown {unknown}; the model has {spec.output_names}")
    if interval is not None and not 0 < interval < 1:
        raise PkdesignError(f"interval: expected a coverage between 0 and 1, got {interval!r}")
    fig, axes = _figure(ax, len(names))
    t_max = design.last_time if any(v.size for g in design.groups for v in g.times.values()) else 1.0
    grid = np.linspace(0.0, t_max * 1.05 + 1e-9, n_points)
    units = {o.name: o.unit for o in spec.outputs}
    seeds = np.random.SeedSequence(seed).spawn(len(design.groups))
    for a, out in zip(axes, names):
        oi = spec.output_names.index(out)
        for g, ss in zip(design.groups, seeds):
            cases = g.covariate_cases()
            theta = population_parameters(spec, cases[0][1] or None).theta  # the typical curve: the first case
            f = model.evaluate(theta, grid, g.regimen, np.full(grid.size, oi), order=0)["f"]
            line = a.plot(grid, f, label=f"{g.name} (n={g.n:g})")[0]
            if interval is not None:  # subjects of each covariate case in proportion, with IOV per occasion
                counts = apportion(np.array([w for w, _ in cases]), n_sim)
                y = np.concatenate([simulate(model, g.regimen, grid, out, int(k), cs, common_epsilon=True,
                                             covariates=cov, occasions=g.occasion_starts())
                                    for (k, (_, cov)), cs in zip(zip(counts, cases), ss.spawn(len(cases))) if k > 0])
                lo, hi = np.quantile(y, [(1 - interval) / 2, (1 + interval) / 2], axis=0)
                a.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0,
                               label=f"{100 * interval:g}% prediction interval")
            if out in g.times and g.times[out].size:
                ts = g.times[out]
                fs = model.evaluate(theta, ts, g.regimen, np.full(ts.size, oi), order=0)["f"]
                a.plot(ts, fs, "o", color=line.get_color(), markersize=5)
        a.set_xlabel(_label("time", spec.time_unit))
        a.set_ylabel(_label(out, units.get(out, "")))
        a.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def sensitivity(result, *, ax=None, title: str = ""):
    """Sensitivity function tr(∇Φ μ(x)) of an approximate design over all candidates, with its bound
    tr(∇Φ M) (the equivalence theorem: no candidate above it at the optimum) and the support marked.

    One-sample schedules are plotted against their time; longer ones against the candidate number."""
    s = getattr(result, "sensitivity", None)
    if not s:
        raise PkdesignError("sensitivity: expected the DesignResult of an approximate design (optimize_approximate)")
    fig, (a,) = _figure(ax)
    cand, d, bound = np.asarray(s["candidates"]), np.asarray(s["values"]), float(s["bound"])
    one = cand.shape[1] == 1 or np.all(np.isnan(cand[:, 1:]))
    x = cand[:, 0] if one else np.arange(cand.shape[0])
    a.plot(x, d, ".", markersize=3, color="C0", label="candidates")
    a.axhline(bound, color="C3", linestyle="--", label=f"bound {bound:.4g}")
    support = [int(np.argmin(np.nansum(np.abs(np.nan_to_num(cand[:, :len(t)]) - np.nan_to_num(t)), axis=1)))
               for t in np.atleast_2d(result.candidates)]
    a.plot(x[support], d[support], "o", color="C3", markersize=6, label="support")
    design = getattr(result, "design", None)
    a.set_xlabel("sampling time" if one else "candidate schedule")
    a.set_ylabel("sensitivity  tr(∇Φ μ)")
    a.legend(fontsize=8)
    if title:
        a.set_title(title)
    elif design is not None:
        a.set_title(f"{result.criterion}-optimal design: {len(design.groups)} support point(s)")
    return fig


def rse(results: dict, *, ax=None, title: str = ""):
    """RSE% per parameter of several designs side by side (a dict name -> FIMResult or DesignResult)."""
    from .comparison import _fim_of

    if not isinstance(results, dict) or not results:
        raise PkdesignError("rse: expected a dict name -> FIMResult or DesignResult")
    fims = {k: _fim_of(v) for k, v in results.items()}
    names = list(next(iter(fims.values())).names)
    fig, (a,) = _figure(ax, figsize=(max(6.0, 0.8 * len(names) * len(fims) ** 0.5 + 2), 3.6))
    width = 0.8 / len(fims)
    x = np.arange(len(names))
    for k, (label, f) in enumerate(fims.items()):
        if list(f.names) != names:
            raise PkdesignError(f"rse: {label!r} has parameters {list(f.names)}, the first has {names}")
        a.bar(x + (k - (len(fims) - 1) / 2) * width, f.to_frame()["rse_percent"].to_numpy(), width, label=label)
    a.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    a.set_ylabel("RSE (%)")
    a.legend(fontsize=8)
    if title:
        a.set_title(title)
    return fig


def correlation(fim, *, ax=None, title: str = ""):
    """Correlation matrix of the estimates (from the inverse FIM) as a heatmap with the values written."""
    from .comparison import _fim_of

    f = _fim_of(fim)
    c = f.correlation
    fig, (a,) = _figure(ax, figsize=(1.0 + 0.6 * f.p, 0.6 + 0.55 * f.p))
    im = a.imshow(c, vmin=-1, vmax=1, cmap="RdBu_r")
    a.set_xticks(range(f.p), f.names, rotation=45, ha="right", fontsize=8)
    a.set_yticks(range(f.p), f.names, fontsize=8)
    for i in range(f.p):
        for j in range(f.p):
            a.text(j, i, f"{c[i, j]:.2f}", ha="center", va="center", fontsize=7,
                   color="white" if abs(c[i, j]) > 0.6 else "black")
    fig.colorbar(im, ax=a, label="correlation (unitless)")
    a.set_title(title or f"correlation of the estimates ({f.approximation}, {f.fim_type} FIM)")
    return fig


def plot_design(model, design, path, title: str = ""):
    """``predictions(model, design)`` saved to ``path`` (format from the extension)."""
    fig = predictions(model, design, title=title)
    fig.savefig(path)
    return fig
