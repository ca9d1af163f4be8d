"""The feature buffer's hit and miss counts against an independent cache simulator (pycachesim).

The gather trace is the CSR's: one load of the neighbour's packed row per edge, in stream
order.  pycachesim (PyPI ``pycachesim``) is configured the same way: one level, line = DRAM
burst, fully associative LRU (one set) or direct mapped (one way).  Counts must be equal.
``python tests/sim/accel/test_cache_crosscheck.py`` prints the table of docs/cycle-model.md.
"""

from __future__ import annotations

import pytest

from sim.accel.memory import simulate_gather
from sim.graphs.datasets import load_graph

GRAPHS = ("Cora", "synthetic:uniform:4000:40000:1", "synthetic:powerlaw:4000:40000:1")
#: (row bytes, line bytes, buffer bytes): rows inside a line, rows straddling lines, rows of whole lines
CONFIGS = ((4, 32, 4096), (24, 32, 8192), (64, 32, 16384))


def reference_counts(indices, row_bytes: int, line: int, capacity: int, policy: str) -> tuple[int, int]:
    """(hits, misses) of pycachesim over the gather trace, in lines (a load that spans two lines
    counts one hit or miss per line)."""
    from cachesim import Cache, CacheSimulator, MainMemory

    lines = capacity // line
    sets, ways = (1, lines) if policy == "lru" else (lines, 1)
    mem = MainMemory()
    cache = Cache("feature_buffer", sets, ways, line, "LRU")
    mem.load_to(cache)
    mem.store_from(cache)
    sim = CacheSimulator(cache, mem)
    for v in indices.tolist():
        sim.load(v * row_bytes, length=row_bytes)
    b = cache.backend
    return int(b.HIT_count), int(b.MISS_count)


def rows(data_root) -> list[tuple]:
    out = []
    for name in GRAPHS:
        g = load_graph(name, data_root)
        for row_bytes, line, cap in CONFIGS:
            for policy in ("lru", "direct"):
                ours = simulate_gather(g.indices, g.num_nodes, row_bytes, line, cap, policy)
                ref = reference_counts(g.indices, row_bytes, line, cap, policy)
                out.append((g.name, g.num_edges, row_bytes, line, cap, policy, ours.accesses - ours.misses,
                            ours.misses, *ref))
    return out


@pytest.mark.parametrize("name", GRAPHS)
def test_hits_and_misses_equal_pycachesim(name, data_root):
    pytest.importorskip("cachesim")
    g = load_graph(name, data_root)
    for row_bytes, line, cap in CONFIGS:
        for policy in ("lru", "direct"):
            ours = simulate_gather(g.indices, g.num_nodes, row_bytes, line, cap, policy)
            hits, miss = reference_counts(g.indices, row_bytes, line, cap, policy)
            assert (ours.accesses - ours.misses, ours.misses) == (hits, miss), (name, row_bytes, line, cap, policy)
            assert int(ours.miss_lines_per_edge.sum()) == ours.misses


if __name__ == "__main__":  # the table of docs/cycle-model.md
    import os

    print("| graph | edges | row B | line B | buffer B | policy | hits | misses | pycachesim hits "
          "| pycachesim misses |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in rows(os.environ.get("QUAGGA_DATA_ROOT")):
        print("| " + " | ".join(f"{x:,}" if isinstance(x, int) else str(x) for x in r) + " |")
