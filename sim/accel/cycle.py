"""Cycle and action-count models of the accelerator's units.

Three units, each with a pure model ``(shape, design, precision, options) -> PhaseResult``:

* **aggregation unit** (:func:`aggregate_phase`): the RTL's timing (one input beat per cycle,
  ``chunks(F)`` passes over the CSR graph, ``total_beats + latency`` cycles with an ideal
  source and sink; :mod:`sim.design.stream` owns those formulas) extended with the memory system
  of :mod:`sim.accel.memory`: per tile of rows the phase takes ``max(compute, DRAM bytes / bandwidth)``
  cycles, so each tile is compute-bound or bandwidth-bound;
* **dense unit** (:func:`dense_phase`): a weight-stationary systolic MAC array of
  ``dense_rows x dense_cols`` INT8-equivalent PEs whose PEs fuse for narrower operands
  (Bit Fusion: ``(8/b)^2`` b-bit MACs per PE per cycle);
* **vector unit** (:func:`vector_phase`): ``vector_lanes`` element-wise add-with-requantize
  operations per cycle (the SMP/APPNP combination step).

The unit-level aggregation model (:func:`unit_total_beats`, :func:`unit_latency`,
:func:`unit_ideal_cycles`) is what ``tests/sim/accel/test_cycle_rtl.py`` compares with the RTL's
measured cycle counts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

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
        if self.name not in PRECISIONS:
            raise QuantError(f"precision must be one of {sorted(PRECISIONS)}, not {self.name!r}")

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
    """Accelerator-template knobs that are not part of the RTL design point.

    Parameters
    ----------
    cache_policy : {"lru", "direct"}
        Feature buffer replacement policy.
    edge_buffer_kib : int
        On-chip edge buffer, KiB.  If the CSR stream of a step (indptr, indices, weights)
        fits, it is read from DRAM once and replayed from the buffer on the later passes.
    tile_rows : int
        Rows per tile of the compute / bandwidth overlap model.
    tech_nm : int
        Technology node of the energy table (45, 32, 16 or 7).
    agg_units : int
        Aggregation units working in parallel on consecutive tiles of rows; they share the
        DRAM bandwidth and the buffers.  1 is the RTL's single unit.
    """

    cache_policy: str = "lru"
    edge_buffer_kib: int = 256
    tile_rows: int = 32
    tech_nm: int = 45
    agg_units: int = 1

    def __post_init__(self) -> None:
        if self.cache_policy not in CACHE_POLICIES:
            raise QuantError(f"cache_policy must be one of {CACHE_POLICIES}, not {self.cache_policy!r}")
        for f in ("edge_buffer_kib", "tile_rows", "agg_units"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise QuantError(f"{f} must be a positive int, not {v!r}")

    def to_dict(self) -> dict:
        return {"cache_policy": self.cache_policy, "edge_buffer_kib": self.edge_buffer_kib,
                "tile_rows": self.tile_rows, "tech_nm": self.tech_nm, "agg_units": self.agg_units}


# ---------------------------------------------------------------------------- results
@dataclass
class PhaseResult:
    """Cycles, DRAM traffic and action counts of one phase of the workload.

    Attributes
    ----------
    name : str
        Phase label, e.g. ``"lin1"``, ``"prop3"``.
    unit : str
        Unit that runs it: ``"agg_unit"``, ``"dense_unit"`` or ``"vector_unit"``.
    cycles : int
        Cycles of the phase with the memory system (>= ``compute_cycles``).
    compute_cycles : int
        Cycles with an ideal memory (the unit alone).
    memory_cycles : int
        Cycles to move the phase's DRAM bytes at the design's bandwidth.
    dram_read_bytes, dram_write_bytes : int
        Off-chip traffic, bytes.
    bound_tiles : dict
        ``{"compute": n, "bandwidth": n}`` tiles (aggregation) or phases (others) by bound.
    counts : ActionCounts
        Priced later by :func:`sim.accel.energy.energy`.
    detail : dict
        Phase-specific figures (hit rate, passes, lanes, ...).
    """

    name: str
    unit: str
    cycles: int
    compute_cycles: int
    memory_cycles: int
    dram_read_bytes: int
    dram_write_bytes: int
    bound_tiles: dict[str, int]
    counts: ActionCounts
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "unit": self.unit, "cycles": self.cycles,
                "compute_cycles": self.compute_cycles, "memory_cycles": self.memory_cycles,
                "dram_read_bytes": self.dram_read_bytes, "dram_write_bytes": self.dram_write_bytes,
                "bound": self.bound_tiles, **self.detail}


def _bytes_per_cycle(dp: DesignPoint) -> float:
    return dp.dram_bandwidth_gbs * 1e9 / dp.clock_hz


def _add_dram(counts: ActionCounts, dp: DesignPoint, read_bytes: int, write_bytes: int) -> None:
    counts.add("dram", f"dram_bit:{dp.dram}", 8 * (int(read_bytes) + int(write_bytes)))


def _sram(capacity_bytes: int) -> str:
    return f"sram_bit:{int(capacity_bytes)}"


# ---------------------------------------------------------------------------- aggregation
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
                    dp: DesignPoint, prec: Precision, opts: TemplateOptions,
                    _gather_memo: dict | None = None) -> PhaseResult:
    """One propagation step ``Y = Q(A_hat X)`` of ``n_features`` features on the aggregation unit.

    The unit streams ``chunks = ceil(F / lanes)`` passes over the destination-sorted CSR graph
    (the RTL's order).  Per pass, the gather engine fetches each edge's neighbour chunk through
    the feature buffer (simulated over the real gather sequence), the CSR stream comes from
    DRAM (or, after the first pass, from the edge buffer if it fits), and the output chunk of
    each row is written to DRAM.  Per tile of ``opts.tile_rows`` rows the pass takes
    ``max(beats, DRAM bytes / bytes per cycle)`` cycles (with ``opts.agg_units`` units, per
    group of that many tiles: ``max(max beats, summed bytes / bytes per cycle)``); the
    pipeline latency is added once.

    Shapes: ``indptr`` (N + 1,), ``indices`` (E,).
    """
    b = prec.bits
    lanes = lanes_at(dp, prec)
    dpb = None if prec.is_float else design_at(dp, prec)
    latency = unit_latency(dpb if dpb is not None else dp)
    n = indptr.size - 1
    e = indices.size
    g = _graph_arrays(indptr)
    n_chunks = -(-n_features // lanes)
    line = DRAM_BURST_BYTES[dp.dram]
    bpc = _bytes_per_cycle(dp)
    w_bits = 32 if prec.is_float else dp.weight_bits
    idx_bits = dp.index_bits
    feat_cap = dp.feature_buffer_kib * 1024
    edge_cap = opts.edge_buffer_kib * 1024
    # CSR stream of one pass: indptr entries, then index + weight per edge.
    edge_row_bits = g.deg * (idx_bits + w_bits) + idx_bits
    edge_stream_bytes = -(-int(edge_row_bits.sum()) // 8) + idx_bits // 8
    edge_fits = edge_stream_bytes <= edge_cap

    counts = ActionCounts()
    cycles = 0
    compute_total = 0
    rd_total = 0
    wr_total = 0
    bound = {"compute": 0, "bandwidth": 0}
    misses_total = 0
    accesses_total = 0
    memo = _gather_memo if _gather_memo is not None else {}
    for c in range(n_chunks):
        f_c = min(lanes, n_features - c * lanes)
        row_bytes = -(-f_c * b // 8)
        key = (id(indices), n, row_bytes, line, feat_cap, opts.cache_policy)
        gs = memo.get(key)
        if gs is None:
            gs = simulate_gather(indices, n, row_bytes, line, feat_cap, opts.cache_policy)
            memo[key] = gs
        misses_total += gs.misses
        accesses_total += gs.accesses
        miss_row = np.bincount(g.row_of_edge, weights=gs.miss_lines_per_edge, minlength=n) * line
        edge_from_dram = (c == 0) or not edge_fits
        rd_row = miss_row + (edge_row_bits / 8.0 if edge_from_dram else 0.0)
        wr_row = np.full(n, float(row_bytes))
        compute_t = _tile_sum(g.beats_per_row, opts.tile_rows)
        mem_t = _tile_sum(rd_row + wr_row, opts.tile_rows)
        if opts.agg_units > 1:  # a group of consecutive tiles runs on the units at once
            compute_t = _group_max(compute_t, opts.agg_units)
            mem_t = _tile_sum(mem_t, opts.agg_units)
        mem_t = np.ceil(mem_t / bpc).astype(np.int64)
        cycles += int(np.maximum(compute_t, mem_t).sum())
        compute_total += int(compute_t.sum())
        bw = int((mem_t > compute_t).sum())
        bound["bandwidth"] += bw
        bound["compute"] += int(compute_t.size - bw)
        rd = gs.misses * line + (edge_stream_bytes if edge_from_dram else 0)
        wr = n * row_bytes
        rd_total += rd
        wr_total += wr
        # on-chip buffers: line fills and chunk reads; CSR stream into / out of the edge buffer
        counts.add("feature_buffer", _sram(feat_cap), 8 * gs.misses * line)
        counts.add("feature_buffer", _sram(feat_cap), e * f_c * b)
        if edge_from_dram:
            counts.add("edge_buffer", _sram(edge_cap), 8 * edge_stream_bytes)
        counts.add("edge_buffer", _sram(edge_cap), 8 * edge_stream_bytes)
    cycles += latency
    compute_total += latency
    _add_dram(counts, dp, rd_total, wr_total)

    # datapath actions (padded lanes are clock-gated: only the F real lanes are counted)
    ops = e * n_features
    rows_out = n * n_features
    if prec.is_float:
        counts.add("agg_unit", "fp32_mult", ops)
        counts.add("agg_unit", "fp32_add", ops)
    else:
        xb, wb = b + 1, dp.weight_bits + 1  # zero-point-centred operands
        acc = dpb.acc_width
        counts.add("agg_unit", "int_mult", ops, xb, wb)
        if dp.msg_requant:
            counts.add("agg_unit", "int_mult", ops, xb + wb, dp.mult_bits)
            counts.add("agg_unit", "int_add", ops, xb + wb + dp.mult_bits)
        counts.add("agg_unit", "int_add", ops, acc)
        counts.add("agg_unit", "int_mult", rows_out, acc, dp.mult_bits)
        counts.add("agg_unit", "int_add", rows_out, acc + dp.mult_bits)
        if dp.upd_requant:
            counts.add("agg_unit", "int_mult", rows_out, b + 1, dp.mult_bits)
            counts.add("agg_unit", "int_add", rows_out, b + 1 + dp.mult_bits)
    mem_cycles = int(math.ceil((rd_total + wr_total) / bpc))
    detail = {"features": n_features, "lanes": lanes, "passes": n_chunks, "latency": latency,
              "unit_ideal_cycles": compute_total, "edge_stream_bytes": edge_stream_bytes,
              "edge_buffer_holds_csr": bool(edge_fits),
              "feature_buffer_hit_rate": 1.0 - misses_total / accesses_total if accesses_total else 1.0,
              "dram_bytes_per_edge": (rd_total + wr_total) / e if e else 0.0}
    return PhaseResult(name, "agg_unit", cycles, compute_total, mem_cycles, rd_total, wr_total,
                       bound, counts, detail)


# ---------------------------------------------------------------------------- dense unit
def dense_array(dp: DesignPoint, prec: Precision) -> tuple[int, int]:
    """Effective rows x cols of the dense MAC array at ``prec``.

    INT8-equivalent PEs fuse into ``(8 / b)`` x ``(8 / b)`` b-bit MACs (Bit Fusion, ISCA 2018),
    so the effective array grows by ``8 / b`` per dimension; FP32 runs one MAC per PE per cycle
    (an iso-PE assumption that favours FP32, so speed-ups are conservative).
    """
    if prec.is_float or prec.bits >= 8:
        return dp.dense_rows, dp.dense_cols
    k = 8 // prec.bits
    return dp.dense_rows * k, dp.dense_cols * k


def dense_compute_cycles(m: int, k: int, n: int, rows: int, cols: int) -> int:
    """Cycles of an ``(m x k) @ (k x n)`` GEMM on a weight-stationary ``rows x cols`` array.

    ``k`` maps to rows, ``n`` to columns, ``m`` streams: each of the
    ``ceil(k / rows) * ceil(n / cols)`` folds loads its weights (``rows`` cycles, not
    overlapped) and streams ``m`` input rows; the pipeline fills and drains once
    (``rows + cols - 2``) because consecutive folds overlap in the array.
    """
    folds = -(-k // rows) * -(-n // cols)
    return folds * (m + rows) + rows + cols - 2


def dense_phase(name: str, m: int, k: int, n: int, dp: DesignPoint, prec: Precision,
                opts: TemplateOptions) -> PhaseResult:
    """A linear layer ``(m x k) @ (k x n)`` with int32 accumulation and output requantization."""
    rows, cols = dense_array(dp, prec)
    b = prec.bits
    compute = dense_compute_cycles(m, k, n, rows, cols)
    n_folds = -(-n // cols)
    a_bytes = -(-m * k * b // 8)
    w_bytes = -(-k * n * b // 8)
    o_bytes = -(-m * n * b // 8)
    rd = a_bytes * n_folds + w_bytes
    wr = o_bytes
    mem = int(math.ceil((rd + wr) / _bytes_per_cycle(dp)))
    cycles = max(compute, mem)
    counts = ActionCounts()
    macs = m * k * n
    if prec.is_float:
        counts.add("dense_unit", "fp32_mult", macs)
        counts.add("dense_unit", "fp32_add", macs)
    else:
        counts.add("dense_unit", "int_mult", macs, b, b)
        counts.add("dense_unit", "int_add", macs, DENSE_ACC_BITS)
        counts.add("dense_unit", "int_mult", m * n, DENSE_ACC_BITS, dp.mult_bits)
        counts.add("dense_unit", "int_add", m * n, DENSE_ACC_BITS + dp.mult_bits)
    cap = dp.feature_buffer_kib * 1024
    counts.add("feature_buffer", _sram(cap), 8 * (rd + wr))           # staging in / out
    counts.add("feature_buffer", _sram(cap), m * k * n_folds * b + k * n * b + m * n * b)
    _add_dram(counts, dp, rd, wr)
    bound = {"compute": int(compute >= mem), "bandwidth": int(mem > compute)}
    return PhaseResult(name, "dense_unit", cycles, compute, mem, rd, wr, bound, counts,
                       {"gemm": [m, k, n], "array": [rows, cols]})


# ---------------------------------------------------------------------------- vector unit
def vector_phase(name: str, elements: int, dp: DesignPoint, prec: Precision,
                 opts: TemplateOptions) -> PhaseResult:
    """Element-wise ``y = clamp(round_shift(a*Ma + b*Mb, n) + z)`` over ``elements`` values.

    The SMP/APPNP combination step; reads both operands from DRAM and writes the result.
    """
    b = prec.bits
    compute = -(-elements // dp.vector_lanes)
    nbytes = -(-elements * b // 8)
    rd, wr = 2 * nbytes, nbytes
    mem = int(math.ceil((rd + wr) / _bytes_per_cycle(dp)))
    counts = ActionCounts()
    if prec.is_float:
        counts.add("vector_unit", "fp32_mult", 2 * elements)
        counts.add("vector_unit", "fp32_add", elements)
    else:
        counts.add("vector_unit", "int_mult", 2 * elements, b + 1, dp.mult_bits)
        counts.add("vector_unit", "int_add", 2 * elements, VECTOR_SUM_BITS)
    cap = dp.feature_buffer_kib * 1024
    counts.add("feature_buffer", _sram(cap), 8 * (rd + wr))
    _add_dram(counts, dp, rd, wr)
    bound = {"compute": int(compute >= mem), "bandwidth": int(mem > compute)}
    return PhaseResult(name, "vector_unit", max(compute, mem), compute, mem, rd, wr, bound, counts,
                       {"elements": elements})
