"""The worked example of docs/cycle-model.md: one SMP step at INT2 on a 5-node graph, by hand."""

from __future__ import annotations

import numpy as np

from sim.accel.cycle import TemplateOptions
from sim.accel.lowering import OpSpec, run_ops
from sim.design.presets import preset

# in-neighbours (self loops included): 0 <- {0,1}, 1 <- {0,1,2}, 2 <- {1,2,3}, 3 <- {2,3,4}, 4 <- {3,4}
INDPTR = np.array([0, 2, 5, 8, 11, 13])
INDICES = np.array([0, 1, 0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4])
N, C = 5, 4
DP = preset("balanced", agg_units=1, dram_bandwidth_gbs=4.0, vector_lanes=16)  # 8 B/cycle at 500 MHz, HBM2 32 B bursts


def _prop(i: int, name: str) -> OpSpec:
    return OpSpec(i, "propagate", name, N, C, (2,), (C,), (3,), 2, w_bits=8, w_mult_bits=9, acc_bits=16,
                  msg=True, upd=True)


def _add(i: int, name: str, a: int, b: int, out: int) -> OpSpec:
    return OpSpec(i, "add", name, N, C, (a, b), (C, C), (a + 1, b + 1), out)


STEP = [_prop(0, "prop"), _add(1, "xt", 2, 2, 8), _add(2, "g", 8, 2, 2), _prop(3, "gap"),
        _add(4, "d", 2, 2, 8), _add(5, "y", 8, 8, 2)]

# the document's hand figures: (cycles, DRAM bytes, bound) per op
HAND = {"prop": (24, 122, "memory"), "xt": (4, 30, "memory"), "g": (4, 30, "memory"),
        "gap": (24, 122, "memory"), "d": (4, 30, "memory"), "y": (6, 45, "memory")}


def test_worked_example_equals_the_hand_figures():
    ph = run_ops(STEP, INDPTR, INDICES, DP, TemplateOptions())
    got = {p.name: (p.cycles, p.dram_bytes, p.bound) for p in ph}
    assert got == HAND
    prop = ph[0]
    assert prop.compute_cycles == 13 + 8          # 13 beats + latency 2 + 2 * 3
    assert prop.dram_read_bytes == 32 + 85 and prop.dram_write_bytes == 5
    fb = prop.detail["feature_buffer"]
    assert (fb["accesses"], fb["misses"]) == (13, 1)
    assert sum(p.cycles for p in ph) == 66 and sum(p.dram_bytes for p in ph) == 379
