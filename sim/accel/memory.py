"""Memory system of the accelerator template: DRAM parameters and the on-chip feature buffer.

The feature buffer is modelled as a cache of DRAM lines (one line = one DRAM burst) simulated
over the *actual* gather sequence of the CSR graph, so degree skew and gather locality show
up in the DRAM traffic.  Feature rows are stored packed and contiguous in DRAM (node ``v``'s
row occupies bytes ``[v * row_bytes, (v + 1) * row_bytes)``), so several narrow rows share a
line and a wide row spans several lines.  Two replacement policies: fully associative LRU and
direct mapped.  The kernels are numba-compiled (``cache=True``) and take plain integers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numba
import numpy as np

from quant.errors import QuantError

log = logging.getLogger(__name__)

#: Burst (access granularity) of each memory type in bytes: burst length x channel width of
#: the JEDEC standard.  HBM2 (JESD235): pseudo-channel 64 bit x BL4 = 32 B.  LPDDR4
#: (JESD209-4): x16 channel x BL16 = 32 B.  DDR4 (JESD79-4): 64-bit DIMM x BL8 = 64 B.
#: GDDR5 (JESD212): x32 x BL8 = 32 B.
DRAM_BURST_BYTES: dict[str, int] = {"HBM2": 32, "LPDDR4": 32, "DDR4": 64, "GDDR5": 32}

CACHE_POLICIES = ("lru", "direct")


@dataclass(frozen=True)
class GatherStats:
    """Result of simulating the feature buffer over one gather sequence.

    Attributes
    ----------
    accesses : int
        Line accesses (hits + misses).
    misses : int
        Lines fetched from DRAM.
    miss_lines_per_edge : np.ndarray of int32, shape (E,)
        Lines fetched from DRAM for each gathered edge (stream order).
    compulsory : int
        Distinct lines touched (the misses of an infinite buffer).
    """

    accesses: int
    misses: int
    miss_lines_per_edge: np.ndarray
    compulsory: int

    @property
    def hit_rate(self) -> float:
        return 1.0 - self.misses / self.accesses if self.accesses else 1.0


@numba.njit(cache=True, inline="always")
def _row_lines(v, row_bytes, line_bytes):  # pragma: no cover - jit
    """First and last buffer line (inclusive) holding feature row ``v``."""
    return (v * row_bytes) // line_bytes, ((v + 1) * row_bytes - 1) // line_bytes


@numba.njit(cache=True, nogil=True)
def _gather_lru(indices, row_bytes, line_bytes, capacity, n_lines):  # pragma: no cover - jit
    e_count = indices.shape[0]
    miss = np.zeros(e_count, dtype=np.int32)
    slot_of = np.full(n_lines, -1, dtype=np.int64)
    prev = np.full(capacity, -1, dtype=np.int64)
    nxt = np.full(capacity, -1, dtype=np.int64)
    line_at = np.full(capacity, -1, dtype=np.int64)
    head = -1
    tail = -1
    used = 0
    accesses = 0
    for e in range(e_count):
        first, last = _row_lines(indices[e], row_bytes, line_bytes)
        for ln in range(first, last + 1):
            accesses += 1
            s = slot_of[ln]
            if s >= 0:
                if s != head:  # unlink s, push to front
                    p = prev[s]
                    n = nxt[s]
                    nxt[p] = n
                    if n >= 0:
                        prev[n] = p
                    else:
                        tail = p
                    prev[s] = -1
                    nxt[s] = head
                    prev[head] = s
                    head = s
                continue
            miss[e] += 1
            if used < capacity:
                s = used
                used += 1
            else:  # evict the least recently used line
                s = tail
                slot_of[line_at[s]] = -1
                tail = prev[s]
                if tail >= 0:
                    nxt[tail] = -1
                else:
                    head = -1
            line_at[s] = ln
            slot_of[ln] = s
            prev[s] = -1
            nxt[s] = head
            if head >= 0:
                prev[head] = s
            head = s
            if tail < 0:
                tail = s
    return miss, accesses


@numba.njit(cache=True, nogil=True)
def _gather_direct(indices, row_bytes, line_bytes, capacity, n_lines):  # pragma: no cover - jit
    e_count = indices.shape[0]
    miss = np.zeros(e_count, dtype=np.int32)
    tag = np.full(capacity, -1, dtype=np.int64)
    accesses = 0
    for e in range(e_count):
        first, last = _row_lines(indices[e], row_bytes, line_bytes)
        for ln in range(first, last + 1):
            accesses += 1
            k = ln % capacity
            if tag[k] != ln:
                tag[k] = ln
                miss[e] += 1
    return miss, accesses


@numba.njit(cache=True, nogil=True)
def _gather_compulsory(indices, row_bytes, line_bytes, n_lines):  # pragma: no cover - jit
    e_count = indices.shape[0]
    miss = np.zeros(e_count, dtype=np.int32)
    seen = np.zeros(n_lines, dtype=np.bool_)
    accesses = 0
    for e in range(e_count):
        first, last = _row_lines(indices[e], row_bytes, line_bytes)
        for ln in range(first, last + 1):
            accesses += 1
            if not seen[ln]:
                seen[ln] = True
                miss[e] += 1
    return miss, accesses


def simulate_gather(indices: np.ndarray, num_nodes: int, row_bytes: int, line_bytes: int,
                    capacity_bytes: int, policy: str = "lru") -> GatherStats:
    """Simulate the feature buffer over the gather sequence ``indices``.

    Parameters
    ----------
    indices : np.ndarray of int, shape (E,)
        Source node of each gathered edge, in stream order (the CSR ``indices``).
    num_nodes : int
        Nodes whose rows are stored in DRAM.
    row_bytes : int
        Packed bytes of one node's feature row, ``ceil(F * bits / 8)``.
    line_bytes : int
        Buffer line = DRAM burst, bytes.
    capacity_bytes : int
        Buffer capacity, bytes (``capacity_bytes // line_bytes`` lines, at least 1).
    policy : {"lru", "direct"}
        Fully associative LRU, or direct mapped.

    Returns
    -------
    GatherStats
    """
    if policy not in CACHE_POLICIES:
        raise QuantError(f"cache policy must be one of {CACHE_POLICIES}, not {policy!r}")
    for name, v in (("row_bytes", row_bytes), ("line_bytes", line_bytes), ("capacity_bytes", capacity_bytes)):
        if int(v) < 1:
            raise QuantError(f"{name} must be >= 1, not {v!r}")
    idx = np.ascontiguousarray(indices, dtype=np.int64)
    capacity = max(1, int(capacity_bytes) // int(line_bytes))
    k = row_bytes // line_bytes
    if row_bytes % line_bytes == 0 and k > 1 and capacity % k == 0:
        # Rows of whole lines are always touched as a group of k lines in a row, so an LRU or
        # direct-mapped buffer of capacity lines behaves as one of capacity / k row-sized
        # lines with every count multiplied by k (exact; checked against line granularity).
        g = simulate_gather(idx, num_nodes, row_bytes, row_bytes, capacity // k * row_bytes, policy)
        return GatherStats(accesses=g.accesses * k, misses=g.misses * k,
                           miss_lines_per_edge=g.miss_lines_per_edge * np.int32(k), compulsory=g.compulsory * k)
    n_lines = (num_nodes * row_bytes + line_bytes - 1) // line_bytes + 1
    miss_c, acc = _gather_compulsory(idx, int(row_bytes), int(line_bytes), int(n_lines))
    compulsory = int(miss_c.sum())
    if (policy == "lru" and capacity >= compulsory) or capacity >= n_lines:
        miss = miss_c  # no line is ever evicted: only compulsory misses
    elif policy == "lru":
        miss, acc = _gather_lru(idx, int(row_bytes), int(line_bytes), int(capacity), int(n_lines))
    else:
        miss, acc = _gather_direct(idx, int(row_bytes), int(line_bytes), int(capacity), int(n_lines))
    return GatherStats(accesses=int(acc), misses=int(miss.sum()), miss_lines_per_edge=miss,
                       compulsory=compulsory)


def lines_of_stream(nbytes: int, line_bytes: int) -> int:
    """DRAM bursts needed to stream ``nbytes`` contiguous bytes."""
    return -(-int(nbytes) // int(line_bytes))
