"""Interleaved timing: every kernel of one workload is timed in the same loop, so a change in
machine load hits all of them alike; medians are reported."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                     cpu_times: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Run each callable ``warmup`` times, then ``repeats`` rounds in which every callable runs
    once (the order rotates each round).  Returns name -> list of wall-clock seconds.

    ``cpu_times``, if given, is filled with name -> the process CPU seconds of each timed call
    (all threads; with ``OMP_WAIT_POLICY=PASSIVE`` idle workers sleep, so this is the work
    done, without the time the scheduler gave to other processes)."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            c0 = time.process_time()
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
            if cpu_times is not None:
                cpu_times.setdefault(name, []).append(time.process_time() - c0)
    return times


def median(ts: list[float]) -> float:
    return float(statistics.median(ts))


def timing_table(workload: dict, ratios: list[tuple[str, str]], width: int = 20) -> list[str]:
    """Plain-text table lines of one timed workload.

    ``workload`` holds ``baselines`` (name -> ``median_s``, ``edges_per_s``) and ``int<b>``
    entries (the same plus ``bit_exact`` and the ratio keys); ``ratios`` lists the
    ``(column header, entry key)`` of the speed-up columns.
    """
    ints = [v for k, v in workload.items() if k.startswith("int") and isinstance(v, dict)]
    pred = any("predicted_s" in v for v in [*workload["baselines"].values(), *ints])

    def predicted(v: dict) -> str:
        if not pred:
            return ""
        if "predicted_s" not in v:
            return f"{'-':>13}"
        return f"{v['predicted_s'] * 1e3:>8.2f} {v['predicted_over_measured']:>4.2f}"

    head = f"  {'kernel':<{width}}{'median ms':>11}" + (f"{'predicted':>13}" if pred else "")
    head += f"{'Medges/s':>10}"
    head += "".join(f"{h:>{max(len(h) + 2, 8)}}" for h, _ in ratios) + f"{'bit-exact':>11}"
    lines = [head]
    blank = "".join(f"{'':>{max(len(h) + 2, 8)}}" for h, _ in ratios)
    for k, v in workload["baselines"].items():
        mark = " *" if k == workload.get("fastest_fp32") else ""
        lines.append(f"  {k + mark:<{width}}{v['median_s'] * 1e3:>11.2f}{predicted(v)}"
                     f"{v['edges_per_s'] / 1e6:>10.1f}{blank}{'-':>11}")
    for k, v in workload.items():
        if k.startswith("int") and isinstance(v, dict):
            cols = "".join(f"{v[key]:>{max(len(h) + 2, 8)}.2f}" for h, key in ratios)
            lines.append(f"  {k.upper() + ' packed':<{width}}{v['median_s'] * 1e3:>11.2f}{predicted(v)}"
                         f"{v['edges_per_s'] / 1e6:>10.1f}{cols}{str(v['bit_exact']):>11}")
    if pred:
        stat = workload.get("host_model", {}).get("compared_with", "median_s")
        what = {"median_s": "median", "min_s": "fastest round", "busy_s": "busy time (CPU s / threads)"}
        lines.append(f"  (predicted: the host model's ms and predicted / measured "
                     f"{what.get(stat, stat)})")
    return lines
