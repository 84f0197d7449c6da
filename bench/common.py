"""Helpers shared by the benchmarks (not a benchmark itself)."""

from __future__ import annotations

import time


def best(fn, repeat: int = 5) -> float:
    """Best wall time in seconds of ``repeat`` calls of ``fn`` after one warm-up call."""
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def timed(fn):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out
