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
* Gathers are skewed on real graphs (a hub is the source of many edges): the share of the
  gathers that read the source rows which fit in one core's L2 (the most gathered ones,
  :attr:`AggregationWork.source_coverage`, counted from the graph) is charged at the L2 rate,
  the rest at the table's; a uniform graph gets ``L2 / table`` of its gathers from L2.
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

__all__ = ["AggregationWork", "HostPrediction", "gather_rate", "predict_aggregation", "read_bandwidth",
           "source_coverage"]


def source_coverage(indices, num_src_rows: int) -> tuple[float, ...]:
    """The access skew of a gather sequence: entry ``j`` is the fraction of ``indices`` that
    name the ``2**j`` most frequent rows, ``j = 0 .. ceil(log2 num_src_rows)``.

    ``indices`` : int array (E,) of source rows (numpy).
    """
    import numpy as np

    counts = np.sort(np.bincount(np.asarray(indices, dtype=np.int64), minlength=num_src_rows))[::-1]
    csum = np.cumsum(counts, dtype=np.float64)
    total = float(csum[-1]) if csum.size and csum[-1] > 0 else 1.0
    ks = [min(1 << j, counts.size) for j in range(max(1, math.ceil(math.log2(max(2, num_src_rows)))) + 1)]
    return tuple(min(1.0, float(csum[k - 1]) / total) for k in ks)


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
    source_coverage : tuple of float
        Optional access skew of the gathers: entry ``j`` is the fraction of the ``E`` gathers
        that read the ``2**j`` most gathered source rows (non-decreasing, ending at 1).  Empty:
        uniform (every row as likely).  See :func:`source_coverage`.
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
    source_coverage: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for f in ("num_rows", "num_edges", "num_src_rows", "row_bytes", "index_bytes",
                  "weight_bytes", "out_row_bytes", "threads"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if f == "threads" else 0):
                raise DesignError(f"{f} must be an int >= {1 if f == 'threads' else 0}, not {v!r}")
        cov = self.source_coverage
        if not isinstance(cov, tuple) or any(not 0.0 <= c <= 1.0 + 1e-9 for c in cov) \
                or any(b < a - 1e-12 for a, b in zip(cov, cov[1:])):
            raise DesignError(f"source_coverage must be a non-decreasing tuple of fractions, not {cov!r}")

    def hot_fraction(self, rows: float) -> float:
        """Fraction of the gathers that read the ``rows`` most gathered source rows
        (``rows / num_src_rows`` without :attr:`source_coverage`)."""
        if rows >= self.num_src_rows:
            return 1.0
        if not self.source_coverage:
            return rows / max(1, self.num_src_rows)
        if rows < 1:
            return self.source_coverage[0] * rows
        j = math.log2(rows)
        lo = min(int(j), len(self.source_coverage) - 1)
        hi = min(lo + 1, len(self.source_coverage) - 1)
        a = j - int(j)
        return (1 - a) * self.source_coverage[lo] + a * self.source_coverage[hi]

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
    l2_hot_fraction: float = 0.0

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
    # the most gathered rows that fit in one core's L2 hit there; the rest at the table's rate
    l2 = host.cache_bytes(2)
    hot = work.hot_fraction(l2 / work.row_bytes) if l2 and work.table_bytes > l2 else 0.0
    gather = work.num_edges * (hot / gather_rate(host, work.row_bytes, l2) if hot else 0.0) \
        + work.num_edges * (1 - hot) / g_rate
    stream = work.stream_bytes / bw
    memory = gather + stream
    return HostPrediction(time_s=call + max(compute, memory), call_s=call, compute_s=compute,
                          memory_s=memory, gather_s=gather, stream_s=stream,
                          binds="compute" if compute >= memory else "memory",
                          table_level=host.cache_level_of(work.table_bytes),
                          stream_level=host.cache_level_of(work.working_set_bytes),
                          gather_rows_per_s=g_rate, read_bps=bw, l2_hot_fraction=hot)
