"""Roofline model of one aggregation step on the host CPU (the ``host`` design point).

The prediction of one call of an aggregation kernel on a graph is ::

    t = call_s + max(compute, memory)
    compute = row_s N + edge_s E                       (the kernel's calibrated cost)
    memory  = E / gather_rate(row_bytes, table_bytes)  (random source rows)
            + stream_bytes / read_bw(working_set)      (indices, weights, row pointers, output)

* ``call_s``, ``row_s``, ``edge_s`` come from :class:`sim.design.host.KernelCost`: the kernel's
  own instruction stream on cache-resident micro-graphs, measured once by the probe.  They
  hold everything that does not depend on where the data lives (index and weight loads,
  unpacking, multiplies, accumulators, requantization, the parallel region's start).
* ``gather_rate`` is the probe's random-row gather rate at the kernel's row width
  (``F * bits / 8`` bytes; 4 F for FP32), interpolated in ``log2(table_bytes)`` between the
  measured table sizes (clamped at the ends) and linearly between measured row widths.
* ``read_bw`` is the probe's streaming read rate interpolated the same way at the op's whole
  working set (table, indices, weights, row pointers, output), since the streams of one call
  evict one another before the next call reuses them.

Compute and memory overlap (out-of-order cores and hardware prefetch), so the larger of the
two binds, as in the accelerator's roofline (:mod:`sim.accel.cycle`).  All quantities are
seconds with the probe's threads; a different thread count scales the compute term by
``probe_threads / threads`` (the memory rates are those of the probe's threads).

Torch-free and does not touch the machine: it reads a :class:`sim.design.host.HostPoint`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from sim.design.host import HostPoint
from sim.design.point import DesignError

__all__ = ["AggregationWork", "HostPrediction", "gather_rate", "predict_aggregation", "read_bandwidth"]


@dataclass(frozen=True)
class AggregationWork:
    """What one aggregation call moves and computes.

    Parameters
    ----------
    kernel : str
        The calibrated kernel (:data:`sim.design.host.HOST_KERNELS`).
    num_rows : int
        Destination rows ``N``.
    num_edges : int
        CSR entries ``E``.
    num_src_rows : int
        Rows of the gathered table.
    row_bytes : int
        Bytes of one gathered source row (``F * bits / 8`` packed, ``4 F`` in FP32).
    index_bytes, weight_bytes : int
        Bytes per edge of the index and of the edge weight the kernel reads.
    out_row_bytes : int
        Bytes written per destination row.
    threads : int
        Threads of the call.
    """

    kernel: str
    num_rows: int
    num_edges: int
    num_src_rows: int
    row_bytes: int
    index_bytes: int
    weight_bytes: int
    out_row_bytes: int
    threads: int = 1

    def __post_init__(self) -> None:
        for f in ("num_rows", "num_edges", "num_src_rows", "row_bytes", "index_bytes",
                  "weight_bytes", "out_row_bytes", "threads"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if f == "threads" else 0):
                raise DesignError(f"{f} must be an int >= {1 if f == 'threads' else 0}, not {v!r}")

    @property
    def table_bytes(self) -> int:
        """Bytes of the gathered source table."""
        return self.num_src_rows * self.row_bytes

    @property
    def stream_bytes(self) -> int:
        """Bytes read or written once per call: indices, weights, row pointers (int64), output."""
        return (self.num_edges * (self.index_bytes + self.weight_bytes) + 8 * (self.num_rows + 1)
                + self.num_rows * self.out_row_bytes)

    @property
    def working_set_bytes(self) -> int:
        return self.table_bytes + self.stream_bytes


@dataclass(frozen=True)
class HostPrediction:
    """Predicted time of one call and its parts (seconds).

    ``binds`` is ``compute`` or ``memory``; ``table_level`` / ``stream_level`` the cache level
    (or DRAM) that holds the table / the whole working set.
    """

    time_s: float
    call_s: float
    compute_s: float
    memory_s: float
    gather_s: float
    stream_s: float
    binds: str
    table_level: str
    stream_level: str
    gather_rows_per_s: float
    read_bps: float

    def to_dict(self) -> dict:
        return asdict(self)


def _interp_log(points: list[tuple[float, float]], x: float) -> float:
    """Piecewise-linear interpolation of ``y`` in ``log2(x)`` over sorted ``(x, y)``; clamped."""
    pts = sorted(points)
    if x <= pts[0][0]:
        return pts[0][1]
    if x >= pts[-1][0]:
        return pts[-1][1]
    lx = math.log2(x)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            a = (lx - math.log2(x0)) / (math.log2(x1) - math.log2(x0)) if x1 > x0 else 0.0
            return y0 + a * (y1 - y0)
    return pts[-1][1]  # pragma: no cover


def gather_rate(host: HostPoint, row_bytes: int, table_bytes: float) -> float:
    """Rows/s of random gathers of ``row_bytes`` rows from a ``table_bytes`` table.

    Interpolates seconds per row (log2 table size) at each measured row width, then
    linearly in the row width between the two nearest measured widths (clamped).
    """
    widths = sorted({g.row_bytes for g in host.gather})

    def sec_per_row(width: int) -> float:
        pts = [(g.table_bytes, 1.0 / g.rows_per_s) for g in host.gather if g.row_bytes == width]
        return _interp_log(pts, table_bytes)

    if row_bytes <= widths[0]:
        return 1.0 / sec_per_row(widths[0])
    if row_bytes >= widths[-1]:
        # wider than any measured row: the widest rate per byte
        return 1.0 / (sec_per_row(widths[-1]) * row_bytes / widths[-1])
    lo = max(w for w in widths if w <= row_bytes)
    hi = min(w for w in widths if w >= row_bytes)
    if lo == hi:
        return 1.0 / sec_per_row(lo)
    a = (row_bytes - lo) / (hi - lo)
    return 1.0 / ((1 - a) * sec_per_row(lo) + a * sec_per_row(hi))


def read_bandwidth(host: HostPoint, size_bytes: float) -> float:
    """Streaming read bytes/s at a working set of ``size_bytes`` (interpolated, clamped)."""
    pts = [(s.size_bytes, 1.0 / s.read_bps) for s in host.stream]
    return 1.0 / _interp_log(pts, size_bytes)


def predict_aggregation(host: HostPoint, work: AggregationWork) -> HostPrediction:
    """Predicted wall time of one aggregation call on ``host`` (module docstring).

    Raises
    ------
    DesignError
        When the probe has no calibrated cost for ``work.kernel``.
    """
    cost = host.cost(work.kernel)
    scale = host.threads / work.threads
    compute = (cost.row_s * work.num_rows + cost.edge_s * work.num_edges) * scale
    call = cost.call_s
    g_rate = gather_rate(host, work.row_bytes, work.table_bytes)
    bw = read_bandwidth(host, work.working_set_bytes)
    gather = work.num_edges / g_rate
    stream = work.stream_bytes / bw
    memory = gather + stream
    return HostPrediction(time_s=call + max(compute, memory), call_s=call, compute_s=compute,
                          memory_s=memory, gather_s=gather, stream_s=stream,
                          binds="compute" if compute >= memory else "memory",
                          table_level=host.cache_level_of(work.table_bytes),
                          stream_level=host.cache_level_of(work.working_set_bytes),
                          gather_rows_per_s=g_rate, read_bps=bw)
