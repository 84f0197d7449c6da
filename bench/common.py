"""Helpers shared by the benchmarks (not a benchmark itself)."""

from __future__ import annotations

import json
import time

import numpy as np


def best(fn, repeat: int = 5) -> float:
    """Best wall time in seconds of ``repeat`` calls of ``fn`` after one warm-up call."""
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def report(res: dict) -> None:
    """Print the figures as an aligned table, then as one JSON object on the last line."""
    width = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:>{width}}: {v:.6g}")
    print(json.dumps({k: float(f"{v:.6g}") for k, v in res.items()}))


def timed(fn):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def fd_fo_fim(alpha, predict, n_times, n=32, h_eta=1e-5, rel_alpha=1e-5):
    """PopED-style FO full FIM of the warfarin design, every derivative by central differences.

    ``alpha`` = (CL, V, KA, omega2 x 3, sigma2_prop, sigma2_add); ``predict(theta, eta)`` gives the
    predictions at the ``n_times`` sampling times.  L = df/deta by steps ``h_eta``; the FIM from
    differences of the FO mean and covariance in each alpha_a (step ``rel_alpha``*max(|alpha_a|, 1e-3)).
    """

    def moments(a):
        theta, om, s2p, s2a = a[:3], np.diag(a[3:6]), a[6], a[7]
        f0 = predict(theta, np.zeros(3))
        L = np.empty((n_times, 3))
        for j in range(3):
            e = np.zeros(3)
            e[j] = h_eta
            L[:, j] = (predict(theta, e) - predict(theta, -e)) / (2 * h_eta)
        return f0, L @ om @ L.T + np.diag(s2a + s2p * f0**2)

    _, V0 = moments(alpha)
    Vi = np.linalg.inv(V0)
    dmu, dV = [], []
    for a in range(alpha.size):
        step = rel_alpha * max(abs(alpha[a]), 1e-3)
        ap, am = alpha.copy(), alpha.copy()
        ap[a] += step
        am[a] -= step
        (mp, Vp), (mm, Vm) = moments(ap), moments(am)
        dmu.append((mp - mm) / (2 * step))
        dV.append((Vp - Vm) / (2 * step))
    p = alpha.size
    F = np.empty((p, p))
    for a in range(p):
        for b in range(p):
            F[a, b] = dmu[a] @ Vi @ dmu[b] + 0.5 * np.trace(Vi @ dV[a] @ Vi @ dV[b])
    return n * F
