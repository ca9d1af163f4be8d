"""Cycle and action-count models of the accelerator's units.

Three units, each with a pure model ``(shape, design, widths, options) -> PhaseResult``:

* **aggregation units** (:func:`aggregate_phase`): ``dp.agg_units`` copies of the RTL unit, whose
  timing (one input beat per cycle, ``ceil(F / lanes)`` passes per row, ``total_beats + latency``
  cycles with an ideal source and sink) is owned by :mod:`sim.design.stream`, sharing windows of
  rows (hub rows split over units) and extended with the memory system of
  :mod:`sim.accel.memory`: each window takes ``max(compute, DRAM bytes / bandwidth)`` cycles;
* **dense unit** (:func:`dense_phase`): a weight-stationary systolic MAC array of
  ``dense_rows x dense_cols`` INT8-equivalent PEs whose PEs fuse for narrower operands
  (Bit Fusion: ``(8/b_x)(8/b_w)`` narrow MACs per PE per cycle);
* **vector unit** (:func:`vector_phase`): ``vector_lanes`` element operations per cycle.

Each op reports whether compute or memory bound it.  The unit-level aggregation model
(:func:`unit_total_beats`, :func:`unit_latency`, :func:`unit_ideal_cycles`) is what
``tests/sim/accel/test_cycle_rtl.py`` compares with the RTL's measured cycle counts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from quant.checks import check_choice, check_positive_ints
from quant.errors import QuantError
from sim.design.point import DesignError, DesignPoint
from sim.accel.energy import ActionCounts
from sim.accel.memory import CACHE_POLICIES, DRAM_BURST_BYTES, simulate_gather
from sim.design import stream as unit_stream

log = logging.getLogger(__name__)

#: Precisions the template is evaluated at (name -> operand bits).
PRECISIONS: dict[str, int] = {"fp32": 32, "int8": 8, "int4": 4, "int2": 2, "int1": 1}

#: Width of the dense unit's integer accumulator (int32 GEMM accumulation), bits.
DENSE_ACC_BITS = 32
#: Width of the vector unit's intermediate sum (add-with-requantize), bits.
VECTOR_SUM_BITS = 32


# ---------------------------------------------------------------------------- precision
@dataclass(frozen=True)
class Precision:
    """Operand precision of one evaluation: ``fp32`` or ``int<b>``."""

    name: str

    def __post_init__(self) -> None:
        check_choice("precision", self.name, sorted(PRECISIONS))

    @property
    def bits(self) -> int:
        return PRECISIONS[self.name]

    @property
    def is_float(self) -> bool:
        return self.name == "fp32"


def design_at(dp: DesignPoint, prec: Precision) -> DesignPoint:
    """The integer design point ``dp`` rebuilt for ``prec`` (integer precisions only).

    The accumulator is the design's explicit width if wide enough for the new code width,
    else the derived overflow-free width.
    """
    if prec.is_float:
        raise QuantError("design_at needs an integer precision, not 'fp32'")
    b = prec.bits
    if dp.word_bits % b:
        raise DesignError(f"word_bits must be a multiple of {b} to evaluate {prec.name}, not {dp.word_bits!r}")
    try:
        return dp.replace(bits=b)
    except DesignError:
        return dp.replace(bits=b, acc_bits=None)


def lanes_at(dp: DesignPoint, prec: Precision) -> int:
    """Feature lanes of the aggregation datapath at ``prec``: ``word_bits // bits``."""
    lanes = dp.word_bits // prec.bits
    if lanes < 1 or dp.word_bits % prec.bits:
        raise DesignError(f"word_bits must be a positive multiple of {prec.bits} to evaluate "
                          f"{prec.name} on this template, not {dp.word_bits!r}")
    return lanes


# ---------------------------------------------------------------------------- unit level
# The aggregation unit's timing is defined by the RTL side in sim/design/stream.py; this is
# the one place that binds to it.


def unit_total_beats(indptr: np.ndarray, n_features: int, lanes: int) -> int:
    """Input beats of one propagation step: ``ceil(F / lanes) * sum_i max(deg_i, 1)``.

    Shapes: ``indptr`` (N + 1,).
    """
    deg = np.diff(np.asarray(indptr, dtype=np.int64))
    return -(-int(n_features) // int(lanes)) * int(np.maximum(deg, 1).sum())


def unit_latency(dp: DesignPoint) -> int:
    """Pipeline latency of the unit built from ``dp``, cycles (``sim.design.stream.latency``)."""
    return int(unit_stream.latency(dp))


def unit_ideal_cycles(indptr: np.ndarray, n_features: int, dp: DesignPoint) -> int:
    """Cycles of one step of the unit built from ``dp`` with an ideal source and sink.

    Equal to ``sim.design.stream.ideal_cycles`` (asserted by the tests) and, through it, to the
    RTL's measured count.
    """
    return int(unit_stream.ideal_cycles(np.asarray(indptr, dtype=np.int64), int(n_features), dp))


# ---------------------------------------------------------------------------- options
@dataclass(frozen=True)
class TemplateOptions:
    """Accelerator-template knobs that are not part of the design point.

    Parameters
    ----------
    cache_policy : {"lru", "direct"}
        Feature buffer replacement policy.
    edge_buffer_kib : int
        On-chip edge buffer, KiB.  A row's CSR slice (its indices and weights) is read from
        DRAM once and replayed from the buffer on the row's later passes if it fits; a longer
        (hub) row is re-read on every pass.
    tile_rows : int
        Rows per unit in a window of the compute / bandwidth overlap model: a window of
        ``tile_rows * agg_units`` consecutive rows is shared by the design's units.
    tech_nm : int
        Technology node of the energy table (45, 32, 16 or 7).
    split_rows : bool
        Split a row longer than a unit's share of its window over several units, merging
        their partial sums (run-time rebalancing as in AWB-GCN, Geng et al., MICRO 2020);
        False leaves each row on one unit, so hub rows serialise their window.
    """

    cache_policy: str = "lru"
    edge_buffer_kib: int = 256
    tile_rows: int = 32
    tech_nm: int = 45
    split_rows: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.split_rows, bool):
            raise QuantError(f"split_rows must be a bool, not {self.split_rows!r}")
        check_choice("cache_policy", self.cache_policy, CACHE_POLICIES)
        check_positive_ints(self, "edge_buffer_kib", "tile_rows")

    def to_dict(self) -> dict:
        return {"cache_policy": self.cache_policy, "edge_buffer_kib": self.edge_buffer_kib,
                "tile_rows": self.tile_rows, "tech_nm": self.tech_nm, "split_rows": self.split_rows}


# ---------------------------------------------------------------------------- results
@dataclass
class PhaseResult:
    """Cycles, DRAM traffic and action counts of one op on one unit.

    Attributes
    ----------
    name : str
        Op label, e.g. ``"lin1"``, ``"prop3"``.
    unit : str
        Unit that runs it: ``"agg_unit"``, ``"dense_unit"`` or ``"vector_unit"``.
    cycles : int
        Cycles with the memory system (>= ``compute_cycles`` without latency effects).
    compute_cycles : int
        Cycles with an ideal memory (the units alone, including load imbalance).
    memory_cycles : int
        Cycles to move the op's DRAM bytes at the design's peak bandwidth.
    dram_read_bytes, dram_write_bytes : int
        Off-chip traffic, bytes.
    bound : {"compute", "memory"}
        Which resource sets most of the op's cycles.
    work : int
        Element operations of the op (MACs for linear and propagate, elements for the
        vector unit): the numerator of the roofline's operational intensity.
    peak_work_per_cycle : float
        The unit's peak element operations per cycle at the op's widths (its compute roof).
    counts : ActionCounts
        Priced later by :func:`sim.accel.energy.energy`.
    detail : dict
        Op-specific figures (hit rate, passes, lanes, utilisation, ...).
    """

    name: str
    unit: str
    cycles: int
    compute_cycles: int
    memory_cycles: int
    dram_read_bytes: int
    dram_write_bytes: int
    bound: str
    work: int
    peak_work_per_cycle: float
    counts: ActionCounts
    detail: dict = field(default_factory=dict)

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes

    def to_dict(self) -> dict:
        return {"name": self.name, "unit": self.unit, "cycles": self.cycles,
                "compute_cycles": self.compute_cycles, "memory_cycles": self.memory_cycles,
                "dram_read_bytes": self.dram_read_bytes, "dram_write_bytes": self.dram_write_bytes,
                "bound": self.bound, "work": self.work, "peak_work_per_cycle": self.peak_work_per_cycle,
                **self.detail}


def _bytes_per_cycle(dp: DesignPoint) -> float:
    return dp.dram_bandwidth_gbs * 1e9 / dp.clock_hz


def _add_dram(counts: ActionCounts, dp: DesignPoint, read_bytes: int, write_bytes: int) -> None:
    counts.add("dram", f"dram_bit:{dp.dram}", 8 * (int(read_bytes) + int(write_bytes)))


def _sram(capacity_bytes: int) -> str:
    return f"sram_bit:{int(capacity_bytes)}"


def _simple_bound(compute: int, mem: int) -> str:
    return "memory" if mem > compute else "compute"


# ---------------------------------------------------------------------------- aggregation
@dataclass(frozen=True)
class PropWidths:
    """Widths of one propagation step on the aggregation unit.

    Parameters
    ----------
    x_bits, w_bits, y_bits : int
        Stored widths of the input feature codes, the edge-weight codes and the output codes
        (32 for an FP32 step).
    x_mult_bits, w_mult_bits : int
        Widths the multiplier sees after zero-point subtraction (:func:`sim.accel.energy.centred_bits`).
    acc_bits : int
        Accumulator width.
    msg, upd : bool
        Message and update requantizers on.
    is_float : bool
        An FP32 step (FP32 multiply-add per lane, no requantizers).
    """

    x_bits: int
    w_bits: int
    y_bits: int
    x_mult_bits: int
    w_mult_bits: int
    acc_bits: int
    msg: bool = False
    upd: bool = False
    is_float: bool = False

    def to_dict(self) -> dict:
        return {"x_bits": self.x_bits, "w_bits": self.w_bits, "y_bits": self.y_bits, "acc_bits": self.acc_bits,
                "msg_requant": self.msg, "upd_requant": self.upd, "float": self.is_float}


def unit_design(dp: DesignPoint, pw: PropWidths) -> DesignPoint:
    """The RTL design point of the unit that runs a step of widths ``pw`` (integer steps).

    The accumulator is the step's own width when the design's ``max_degree`` admits it, else
    the derived overflow-free width; edge weights wider than 8 bits are refused by the RTL and
    cannot occur in a model file.
    """
    base = dict(bits=pw.x_bits, weight_bits=pw.w_bits, msg_requant=pw.msg, upd_requant=pw.upd)
    try:
        return dp.replace(**base, acc_bits=pw.acc_bits)
    except DesignError:
        return dp.replace(**base, acc_bits=None)


@dataclass(frozen=True)
class _GraphCache:
    """Per-graph arrays reused by every aggregation phase on that graph."""

    beats_per_row: np.ndarray   # max(deg, 1), (N,)
    deg: np.ndarray             # (N,)
    row_of_edge: np.ndarray     # (E,)


_GRAPH_CACHE: dict[int, tuple[np.ndarray, _GraphCache]] = {}


def _graph_arrays(indptr: np.ndarray) -> _GraphCache:
    key = id(indptr)
    hit = _GRAPH_CACHE.get(key)
    if hit is not None and hit[0] is indptr:
        return hit[1]
    deg = np.diff(indptr)
    gc = _GraphCache(np.maximum(deg, 1), deg, np.repeat(np.arange(deg.size, dtype=np.int64), deg))
    if len(_GRAPH_CACHE) > 8:
        _GRAPH_CACHE.clear()
    _GRAPH_CACHE[key] = (indptr, gc)
    return gc


def _tile_sum(per_row: np.ndarray, tile_rows: int) -> np.ndarray:
    n = per_row.size
    pad = (-n) % tile_rows
    if pad:
        per_row = np.concatenate([per_row, np.zeros(pad, dtype=per_row.dtype)])
    return per_row.reshape(-1, tile_rows).sum(axis=1)


def _group_max(per_tile: np.ndarray, group: int) -> np.ndarray:
    pad = (-per_tile.size) % group
    if pad:
        per_tile = np.concatenate([per_tile, np.zeros(pad, dtype=per_tile.dtype)])
    return per_tile.reshape(-1, group).max(axis=1)


def aggregate_phase(name: str, indptr: np.ndarray, indices: np.ndarray, n_features: int,
                    dp: DesignPoint, pw: PropWidths, opts: TemplateOptions,
                    _gather_memo: dict | None = None) -> PhaseResult:
    """One propagation step ``Y = Q(A_hat X)`` of ``n_features`` features on the aggregation units.

    Order and timing.  Rows are taken in destination order; a row is streamed
    ``passes = ceil(F / lanes)`` times, one chunk of ``lanes = word_bits // x_bits`` features
    per pass, one edge per beat: ``passes * max(deg, 1)`` beats, the RTL's count
    (:func:`unit_ideal_cycles`).  A window of ``opts.tile_rows * dp.agg_units`` consecutive rows
    runs on the ``agg_units`` units at once, each unit taking the next row when it is free.
    A row longer than a unit's share ``ceil(window beats / units)`` is split over several
    units (``opts.split_rows``; one merge beat per extra segment and pass), else it makes its
    unit the straggler of the window.  The window takes ``max(compute, window DRAM bytes /
    bytes per cycle)`` cycles; the pipeline latency is added once.

    Memory.  Feature rows are stored packed and node-major (``ceil(F * x_bits / 8)`` bytes
    per node).  On a row's first pass the gather engine fetches each neighbour's whole row
    through the feature buffer, simulated over the real gather sequence of the CSR; the
    later passes read their chunks from the buffer, except in rows whose gathered rows
    exceed the buffer (hubs), which re-fetch each later chunk's lines from DRAM.  A row's CSR
    slice (index and weight per edge, one row pointer) is read once if it fits the edge
    buffer, else once per pass.  The output row (``ceil(F * y_bits / 8)`` bytes) is written once.

    Shapes: ``indptr`` (N + 1,), ``indices`` (E,).
    """
    b = pw.x_bits
    if b < 1 or dp.word_bits % b:
        raise DesignError(f"word_bits must be a positive multiple of {b} to run a {b}-bit propagation "
                          f"on this template, not {dp.word_bits!r}")
    lanes = dp.word_bits // b
    latency = unit_latency(dp if pw.is_float else unit_design(dp, pw))
    n = indptr.size - 1
    e = indices.size
    g = _graph_arrays(indptr)
    passes = -(-n_features // lanes)
    line = DRAM_BURST_BYTES[dp.dram]
    bpc = _bytes_per_cycle(dp)
    units = dp.agg_units
    feat_cap = dp.feature_buffer_kib * 1024
    edge_cap = opts.edge_buffer_kib * 1024
    row_bytes = -(-n_features * b // 8)
    out_row_bytes = -(-n_features * pw.y_bits // 8)
    memo = _gather_memo if _gather_memo is not None else {}
    key = (id(indices), n, row_bytes, line, feat_cap, opts.cache_policy)
    gs = memo.get(key)
    if gs is None:
        gs = simulate_gather(indices, n, row_bytes, line, feat_cap, opts.cache_policy)
        memo[key] = gs
    miss_row = np.bincount(g.row_of_edge, weights=gs.miss_lines_per_edge, minlength=n) * line
    # rows whose gathered rows exceed the buffer: split into buffer-sized segments (split_rows),
    # else their later passes re-fetch their chunks
    buf_seg = np.maximum(1, -(-(g.deg * row_bytes) // feat_cap))
    spill = (buf_seg > 1) & (not opts.split_rows) & (passes > 1)
    chunk_bytes = [-(-min(lanes, n_features - c * lanes) * b // 8) for c in range(passes)]
    later_lines = sum(-(-cb // line) for cb in chunk_bytes[1:])
    refetch_row = np.where(spill, g.deg * later_lines * line, 0).astype(np.float64)
    csr_edge_bits = dp.index_bits + pw.w_bits
    csr_fits = g.deg * csr_edge_bits <= 8 * edge_cap
    csr_row_bits = (g.deg * csr_edge_bits + dp.index_bits).astype(np.float64)
    csr_rd_row = csr_row_bits / 8.0 * np.where(csr_fits, 1, passes)
    rd_row = miss_row + refetch_row + csr_rd_row
    beats_row = passes * g.beats_per_row
    window = opts.tile_rows * units
    share = -(-_tile_sum(beats_row, window) // units)          # a unit's fair share of each window
    if opts.split_rows:
        # a row longer than the share is split over ceil(beats / share) units; each extra
        # segment costs one merge beat per pass (adding its partial sums)
        share_row = np.repeat(share, window)[:n]
        seg = np.maximum(buf_seg, -(-beats_row // np.maximum(share_row, 1)))
        compute_w = share + _tile_sum((seg - 1) * passes, window)
        split_rows = int((seg > 1).sum())
    else:
        compute_w = np.maximum(share, _group_max(beats_row, window))
        split_rows = 0
    mem_w = np.ceil(_tile_sum(rd_row + out_row_bytes, window) / bpc).astype(np.int64)
    cycles = int(np.maximum(compute_w, mem_w).sum()) + latency
    compute_cycles = int(compute_w.sum()) + latency
    mem_bound = mem_w > compute_w
    bound = "memory" if int(mem_w[mem_bound].sum()) > int(compute_w[~mem_bound].sum()) else "compute"
    total_beats = int(beats_row.sum())
    rd_feat = gs.misses * line + int(refetch_row.sum())
    rd_csr = int(math.ceil(csr_rd_row.sum()))
    rd_total = rd_feat + rd_csr
    wr_total = n * out_row_bytes
    counts = ActionCounts()
    # on-chip buffers: line fills and the unit's chunk reads; CSR into and out of the edge buffer
    counts.add("feature_buffer", _sram(feat_cap), 8 * rd_feat)
    counts.add("feature_buffer", _sram(feat_cap), e * n_features * b)
    counts.add("edge_buffer", _sram(edge_cap), 8 * rd_csr)
    counts.add("edge_buffer", _sram(edge_cap), int(passes * csr_row_bits.sum()))
    _add_dram(counts, dp, rd_total, wr_total)
    # datapath actions (padded lanes are clock-gated: only the F real lanes are counted)
    ops = e * n_features
    rows_out = n * n_features
    if pw.is_float:
        counts.add("agg_unit", "fp32_mult", ops)
        counts.add("agg_unit", "fp32_add", ops)
    else:
        xb, wb, acc = pw.x_mult_bits, pw.w_mult_bits, pw.acc_bits
        counts.add("agg_unit", "int_mult", ops, xb, wb)
        if pw.msg:
            counts.add("agg_unit", "int_mult", ops, xb + wb, dp.mult_bits)
            counts.add("agg_unit", "int_add", ops, xb + wb + dp.mult_bits)
        counts.add("agg_unit", "int_add", ops, acc)
        counts.add("agg_unit", "int_mult", rows_out, acc, dp.mult_bits)
        counts.add("agg_unit", "int_add", rows_out, acc + dp.mult_bits)
        if pw.upd:
            counts.add("agg_unit", "int_mult", rows_out, pw.y_bits + 1, dp.mult_bits)
            counts.add("agg_unit", "int_add", rows_out, pw.y_bits + 1 + dp.mult_bits)
    mem_cycles = int(math.ceil((rd_total + wr_total) / bpc))
    balanced = total_beats / units
    detail = {"features": n_features, "lanes": lanes, "passes": passes, "latency": latency,
              "agg_units": units, "widths": pw.to_dict(),
              "unit_ideal_cycles": total_beats + latency,
              "load_imbalance": float((compute_w.sum()) / balanced) if balanced else 1.0,
              "rows_split": split_rows,
              "compute_utilisation": total_beats / (units * cycles) if cycles else 0.0,
              "bandwidth_utilisation": (rd_total + wr_total) / (bpc * cycles) if cycles else 0.0,
              "windows": {"compute": int((~mem_bound).sum()), "memory": int(mem_bound.sum())},
              "feature_buffer": {"policy": opts.cache_policy, "line_bytes": line, "row_bytes": row_bytes,
                                 "accesses": gs.accesses, "misses": gs.misses, "compulsory": gs.compulsory,
                                 "hit_rate": gs.hit_rate, "hub_rows_refetched": int(spill.sum())},
              "csr_rows_restreamed": int((~csr_fits).sum()),
              "dram_bytes_split": {"features": int(rd_feat), "csr": int(rd_csr), "output": int(wr_total)},
              "dram_bytes_per_edge": (rd_total + wr_total) / e if e else 0.0}
    return PhaseResult(name, "agg_unit", cycles, compute_cycles, mem_cycles, rd_total, wr_total,
                       bound, ops, float(units * lanes), counts, detail)


# ---------------------------------------------------------------------------- dense unit
def _fuse(bits: int) -> int:
    """INT8-equivalent PE fusion factor for a ``bits``-wide operand: ``8 // 2^ceil(log2 bits)``."""
    p = 1
    while p < bits:
        p *= 2
    return max(1, 8 // p)


def dense_array(dp: DesignPoint, x_bits: int, w_bits: int, is_float: bool = False) -> tuple[int, int]:
    """Effective rows x cols of the dense MAC array for ``x_bits`` x ``w_bits`` operands.

    INT8-equivalent PEs fuse into ``(8 / b_x) x (8 / b_w)`` narrow MACs (Bit Fusion, ISCA
    2018; widths rounded up to 1, 2, 4 or 8): the array grows by ``8 / b_w`` along the weight
    rows and ``8 / b_x`` along the columns.  FP32 runs one MAC per PE per cycle (an iso-PE
    assumption that favours FP32, so speed-ups are conservative).
    """
    if is_float:
        return dp.dense_rows, dp.dense_cols
    return dp.dense_rows * _fuse(w_bits), dp.dense_cols * _fuse(x_bits)


def dense_compute_cycles(m: int, k: int, n: int, rows: int, cols: int) -> int:
    """Cycles of an ``(m x k) @ (k x n)`` GEMM on a weight-stationary ``rows x cols`` array.

    ``k`` maps to rows, ``n`` to columns, ``m`` streams: each of the
    ``ceil(k / rows) * ceil(n / cols)`` folds loads its weights (``rows`` cycles, not
    overlapped) and streams ``m`` input rows; the pipeline fills and drains once
    (``rows + cols - 2``) because consecutive folds overlap in the array.
    """
    folds = -(-k // rows) * -(-n // cols)
    return folds * (m + rows) + rows + cols - 2


@dataclass(frozen=True)
class DenseWidths:
    """Widths of one linear layer: stored ``x_bits``, ``w_bits``, ``y_bits`` and the
    zero-point-centred ``x_mult_bits``, ``w_mult_bits`` the multipliers see (32 and
    ``is_float`` for FP32)."""

    x_bits: int
    w_bits: int
    y_bits: int
    x_mult_bits: int
    w_mult_bits: int
    is_float: bool = False

    def to_dict(self) -> dict:
        return {"x_bits": self.x_bits, "w_bits": self.w_bits, "y_bits": self.y_bits, "float": self.is_float}


def dense_phase(name: str, m: int, k: int, n: int, dp: DesignPoint, dw: DenseWidths,
                opts: TemplateOptions) -> PhaseResult:
    """A linear layer ``(m x k) @ (k x n)`` with int32 accumulation and output requantization.

    The input is re-read once per column fold, weights and outputs move once.
    """
    rows, cols = dense_array(dp, dw.x_bits, dw.w_bits, dw.is_float)
    compute = dense_compute_cycles(m, k, n, rows, cols)
    n_folds = -(-n // cols)
    a_bytes = -(-m * k * dw.x_bits // 8)
    w_bytes = -(-k * n * dw.w_bits // 8)
    o_bytes = -(-m * n * dw.y_bits // 8)
    rd = a_bytes * n_folds + w_bytes
    wr = o_bytes
    mem = int(math.ceil((rd + wr) / _bytes_per_cycle(dp)))
    cycles = max(compute, mem)
    counts = ActionCounts()
    macs = m * k * n
    if dw.is_float:
        counts.add("dense_unit", "fp32_mult", macs)
        counts.add("dense_unit", "fp32_add", macs)
    else:
        counts.add("dense_unit", "int_mult", macs, dw.x_mult_bits, dw.w_mult_bits)
        counts.add("dense_unit", "int_add", macs, DENSE_ACC_BITS)
        counts.add("dense_unit", "int_mult", m * n, DENSE_ACC_BITS, dp.mult_bits)
        counts.add("dense_unit", "int_add", m * n, DENSE_ACC_BITS + dp.mult_bits)
    cap = dp.feature_buffer_kib * 1024
    counts.add("feature_buffer", _sram(cap), 8 * (rd + wr))           # staging in / out
    counts.add("feature_buffer", _sram(cap), m * k * n_folds * dw.x_bits + k * n * dw.w_bits + m * n * dw.y_bits)
    _add_dram(counts, dp, rd, wr)
    return PhaseResult(name, "dense_unit", cycles, compute, mem, rd, wr, _simple_bound(compute, mem),
                       macs, float(rows * cols), counts,
                       {"gemm": [m, k, n], "array": [rows, cols], "widths": dw.to_dict()})


# ---------------------------------------------------------------------------- vector unit
def vector_phase(name: str, elements: int, read_bytes: int, write_bytes: int, counts: ActionCounts,
                 dp: DesignPoint, opts: TemplateOptions, detail: dict | None = None) -> PhaseResult:
    """An element-wise op of ``elements`` lane operations on the vector unit.

    ``ceil(elements / vector_lanes)`` cycles of compute against ``read_bytes + write_bytes``
    of DRAM traffic (operands are streamed from and to DRAM); ``counts`` holds the datapath
    actions, to which the staging through the feature buffer and the DRAM bits are added.
    """
    compute = -(-int(elements) // dp.vector_lanes)
    mem = int(math.ceil((read_bytes + write_bytes) / _bytes_per_cycle(dp)))
    counts = ActionCounts().merge(counts)
    cap = dp.feature_buffer_kib * 1024
    counts.add("feature_buffer", _sram(cap), 8 * (read_bytes + write_bytes))
    _add_dram(counts, dp, read_bytes, write_bytes)
    return PhaseResult(name, "vector_unit", max(compute, mem), compute, mem, int(read_bytes), int(write_bytes),
                       _simple_bound(compute, mem), int(elements), float(dp.vector_lanes), counts,
                       {"elements": int(elements), **(detail or {})})
