"""Interleaved timing: every kernel of one workload is timed in the same loop, so a change in
machine load hits all of them alike; medians are reported."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
                     ) -> dict[str, list[float]]:
    """Run each callable ``warmup`` times, then ``repeats`` rounds in which every callable runs
    once (the order rotates each round).  Returns name -> list of wall-clock seconds."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def median(ts: list[float]) -> float:
    return float(statistics.median(ts))
