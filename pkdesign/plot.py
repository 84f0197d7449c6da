"""Plots (optional dependency matplotlib: ``pip install pkdesign[plot]``)."""

from __future__ import annotations

import numpy as np

from .errors import PkdesignError


def plot_design(model, design, path, title: str = ""):
    """Typical-value predictions of every group and output with the sampling times marked; saved to ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PkdesignError("plotting needs matplotlib: pip install 'pkdesign[plot]'") from None
    spec = model.spec
    names = spec.output_names
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 3.2 * len(names)), squeeze=False)
    t_max = max(float(np.max(v)) for g in design.groups for v in g.times.values())
    grid = np.linspace(0.0, t_max * 1.05 + 1e-9, 400)
    for oi, (ax, out) in enumerate(zip(axes[:, 0], names)):
        for g in design.groups:
            f = model.evaluate(spec.theta, grid, g.regimen, np.full(grid.size, oi), order=0)["f"]
            line = ax.plot(grid, f, label=f"{g.name} (n={g.n:g})")[0]
            if out in g.times:
                ts = g.times[out]
                fs = model.evaluate(spec.theta, ts, g.regimen, np.full(ts.size, oi), order=0)["f"]
                ax.plot(ts, fs, "o", color=line.get_color())
        ax.set_xlabel(f"time ({spec.time_unit})")
        ax.set_ylabel(out)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
