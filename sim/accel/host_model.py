"""Model of one aggregation step on the host CPU (the ``host`` design point).

With a probe that measured each kernel's table costs (:attr:`sim.design.host.KernelCost.
table_costs`, every probe of this version) the prediction of one call is ::

    t = call_s + row(T_eff) N + N out_bytes / touch_bw(N out_bytes) + edge(T_eff) E

* ``call_s`` comes from the kernel's calibration on cache-resident micro-graphs
  (:class:`sim.design.host.KernelCost`).
* ``row(T)`` and ``edge(T)`` are the kernel's measured seconds per destination row and per
  edge when its gathers read uniformly random rows of a ``T``-byte source table,
  interpolated in ``log2 T`` between the probe's table sizes (clamped at the ends).  They hold
  the kernel's own arithmetic, its index and weight streams and however many of its misses
  overlap, which no bandwidth figure says: a loop that adds each gathered row into
  accumulators in memory keeps fewer misses in flight than one whose accumulators live in
  registers, and a kernel that decides a row's path from its weights before gathering
  exposes a miss at the start of every row, so its row cost grows with the table.
* The output term is the first touch of the freshly allocated output (``out_bytes`` per
  row): the kernels allocate it per call, and writing a new array pays its page faults.
  ``touch_bw`` is the probe's first-touch write rate (:class:`sim.design.host.TouchRate`) at
  the array's size.
* ``T_eff`` is the table size at which the probe's uniform micro-graph would hit the L2 as
  often as this graph does.  A real graph's gathers are skewed (a hub is the source of many
  edges), so the share ``h`` of its gathers that read the most gathered rows fitting in one
  core's L2 (:attr:`AggregationWork.source_coverage`) can be far above a uniform graph's.
  The micro-graph's own share at table size ``T`` is that of uniformly random sources,
  ``q + phi(z) / sqrt(lambda)`` with ``q = L2 / T`` of the rows, ``z`` the standard normal
  quantile of ``1 - q`` and ``lambda`` its edges per source row (:func:`uniform_hot_share`,
  the normal approximation of the Poisson counts); ``T_eff`` solves ``share(T_eff) = h``.  A
  table within L2, or a graph without a measured skew, keeps ``T_eff = T``.
* ``compute`` is reported as ``row(T_min) N + edge(T_min) E`` (the smallest,
  cache-resident table) and ``memory`` as the rest (the output's first touch and what the
  larger table adds); they add, since the costs were measured with both in play.

A probe without table costs (older files) gets the roofline below, from the probe's random-row
gather and streaming rates:

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
two binds, as in the accelerator's roofline (:mod:`sim.accel.cycle`).

All quantities are seconds with the probe's threads.  A different thread count scales the
compute term (with table costs: the row and edge terms) by ``probe_threads / threads``;
the roofline's memory rates stay those of the probe's threads.

Torch-free and does not touch the machine: it reads a :class:`sim.design.host.HostPoint`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

from sim.design.host import HostPoint, TouchRate
from sim.design.point import DesignError

__all__ = ["AggregationWork", "HostPrediction", "effective_table_bytes", "gather_rate", "predict_aggregation",
           "read_bandwidth", "source_coverage", "table_cost", "touch_bandwidth", "uniform_hot_share"]


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

    ``binds`` is the larger of ``compute`` and ``memory`` (with table costs they add; in the
    roofline the larger binds); ``table_level`` / ``stream_level`` the cache level (or DRAM)
    that holds the table / the whole working set; ``effective_table_bytes`` the ``T_eff`` of
    the table-cost model (0 for the roofline), whose ``stream_s`` is the output's first touch
    (the roofline's: indices, weights, row pointers and output); ``gather_rows_per_s`` the
    interpolated rate (``1 / edge(T_eff)`` with table costs, or the probe's random-row rate).
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
    effective_table_bytes: float = 0.0

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


def _l2_hot_fraction(host: HostPoint, work: AggregationWork) -> float:
    """Share of ``work``'s gathers that read its most gathered rows fitting in one core's L2
    (0 when the whole table fits there, or the OS reports no L2)."""
    l2 = host.cache_bytes(2)
    return work.hot_fraction(l2 / work.row_bytes) if l2 and work.table_bytes > l2 else 0.0


def uniform_hot_share(q: float, edges_per_row: float) -> float:
    """Share of the gathers that read the most gathered fraction ``q`` of the rows when each
    edge picks its source uniformly at random, ``edges_per_row`` edges per source row on
    average: ``min(1, q + phi(z) / sqrt(edges_per_row))``, ``z`` the standard normal quantile
    of ``1 - q`` (the Poisson counts in the normal approximation)."""
    if q >= 1.0:
        return 1.0
    if q <= 0.0 or edges_per_row <= 0:
        return max(0.0, q)
    nd = NormalDist()
    z = nd.inv_cdf(1.0 - q)
    return min(1.0, q + nd.pdf(z) / math.sqrt(edges_per_row))


def effective_table_bytes(host: HostPoint, work: AggregationWork) -> float:
    """``T_eff`` (module docstring): the table size at which the probe's uniform micro-graph
    hits the L2 as often as ``work``'s gathers do; ``T`` for a table within one core's L2, a
    graph without a measured skew or a probe without table costs."""
    l2 = host.cache_bytes(2)
    t = float(work.table_bytes)
    cal_edges = host.cost(work.kernel).table_edges
    if not l2 or t <= l2 or not work.source_coverage or not cal_edges:
        return t
    h = _l2_hot_fraction(host, work)

    def share(size: float) -> float:  # the micro-graph's L2 share at a table of ``size`` bytes
        return uniform_hot_share(l2 / size, cal_edges * work.row_bytes / size)

    if h >= share(l2):
        return float(l2)
    lo, hi = math.log2(l2), math.log2(t)
    while share(2.0 ** hi) > h and hi < 60:
        hi += 1.0
    for _ in range(60):  # share falls as the table grows: bisect in log2 of the size
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if share(2.0 ** mid) > h else (lo, mid)
    return 2.0 ** hi


def touch_bandwidth(first_touch: tuple[TouchRate, ...], size_bytes: float) -> float:
    """First-touch write bytes/s of a fresh ``size_bytes`` array from a probe's
    ``first_touch`` rates (interpolated in ``log2`` of the size, clamped); ``inf`` without
    rates."""
    if not first_touch:
        return math.inf
    return 1.0 / _interp_log([(t.size_bytes, 1.0 / t.bps) for t in first_touch], size_bytes)


def table_cost(host: HostPoint, kernel: str, table_bytes: float) -> tuple[float, float]:
    """``(row(T), edge(T))``: the kernel's measured seconds per destination row and per edge
    at a uniform ``table_bytes`` source table, each interpolated in ``log2`` of the size
    (clamped).

    Raises
    ------
    DesignError
        When the probe has no cost or no table costs for ``kernel``.
    """
    tc = host.cost(kernel).table_costs
    if not tc:
        raise DesignError(f"kernel {kernel!r} has no measured table costs (table_costs) in this host "
                          f"probe; measure a new probe")
    return (_interp_log([(t, r) for t, r, _ in tc], table_bytes),
            _interp_log([(t, e) for t, _, e in tc], table_bytes))


def _predict_from_table_costs(host: HostPoint, work: AggregationWork) -> HostPrediction:
    cost = host.cost(work.kernel)
    scale = host.threads / work.threads
    t_eff = effective_table_bytes(host, work)
    _, r_min, e_min = cost.table_costs[0]
    row, edge = table_cost(host, work.kernel, t_eff)
    out_bytes = work.num_rows * work.out_row_bytes
    out_s = out_bytes / touch_bandwidth(host.first_touch, out_bytes) if out_bytes else 0.0
    compute = (r_min * work.num_rows + e_min * work.num_edges) * scale
    gather = max(0.0, (row * work.num_rows + edge * work.num_edges) * scale - compute)
    memory = gather + out_s * scale
    return HostPrediction(time_s=cost.call_s + compute + memory, call_s=cost.call_s, compute_s=compute,
                          memory_s=memory, gather_s=gather, stream_s=out_s * scale,
                          binds="compute" if compute >= memory else "memory",
                          table_level=host.cache_level_of(work.table_bytes),
                          stream_level=host.cache_level_of(work.working_set_bytes),
                          gather_rows_per_s=1.0 / edge if edge > 0 else math.inf, read_bps=0.0,
                          l2_hot_fraction=_l2_hot_fraction(host, work), effective_table_bytes=t_eff)


def predict_aggregation(host: HostPoint, work: AggregationWork) -> HostPrediction:
    """Predicted wall time of one aggregation call on ``host`` (module docstring): from the
    kernel's table costs when the probe measured them, else the roofline.

    Raises
    ------
    DesignError
        When the probe has no calibrated cost for ``work.kernel``.
    """
    cost = host.cost(work.kernel)
    if cost.table_costs:
        return _predict_from_table_costs(host, work)
    scale = host.threads / work.threads
    compute = (cost.row_s * work.num_rows + cost.edge_s * work.num_edges) * scale
    call = cost.call_s
    g_rate = gather_rate(host, work.row_bytes, work.table_bytes)
    bw = read_bandwidth(host, work.working_set_bytes)
    # the most gathered rows that fit in one core's L2 hit there; the rest at the table's rate
    l2 = host.cache_bytes(2)
    hot = _l2_hot_fraction(host, work)
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
