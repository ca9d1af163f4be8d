"""The accelerator-level cycle model: feature-buffer cache, aggregation/dense/vector phases."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from quant.errors import QuantError
from sim.accel.accelerator import Workload, bytes_per_edge, compare, estimate
from sim.accel.cycle import (DenseWidths, Precision, PropWidths, TemplateOptions, aggregate_phase,
                             dense_compute_cycles, dense_phase, design_at, unit_ideal_cycles)
from sim.design.point import DesignError, DesignPoint
from sim.graphs.datasets import GraphStructure
from sim.graphs.synthetic import synthetic_graph
from sim.accel.memory import simulate_gather
from sim.accel.systolic_reference import scalesim_ws_cycles


def _lru_reference(indices, row_bytes, line, cap_lines, policy):
    cache: OrderedDict = OrderedDict()
    tags: dict = {}
    miss = []
    for v in indices:
        m = 0
        for ln in range(v * row_bytes // line, ((v + 1) * row_bytes - 1) // line + 1):
            if policy == "lru":
                if ln in cache:
                    cache.move_to_end(ln)
                else:
                    m += 1
                    cache[ln] = True
                    if len(cache) > cap_lines:
                        cache.popitem(last=False)
            else:
                k = ln % cap_lines
                if tags.get(k) != ln:
                    tags[k] = ln
                    m += 1
        miss.append(m)
    return np.array(miss)


@pytest.mark.parametrize("policy", ["lru", "direct"])
@pytest.mark.parametrize("row_bytes,line,cap", [(1, 32, 64), (3, 32, 96), (40, 32, 320), (8, 64, 4096),
                                               (64, 32, 256), (64, 32, 96), (256, 32, 4096)])
def test_gather_cache_matches_python_reference(policy, row_bytes, line, cap, rng):
    n = 300
    idx = rng.integers(0, n, 2000)
    idx[500:700] = rng.integers(0, 5, 200)  # a hot set
    got = simulate_gather(idx, n, row_bytes, line, cap, policy)
    ref = _lru_reference(idx.tolist(), row_bytes, line, max(1, cap // line), policy)
    assert np.array_equal(got.miss_lines_per_edge, ref)
    assert got.misses == int(ref.sum()) and got.misses >= got.compulsory or policy == "direct"


def test_gather_cache_big_buffer_only_compulsory(rng):
    idx = rng.integers(0, 100, 1000)
    g = simulate_gather(idx, 100, 4, 32, 1 << 20)
    assert g.misses == g.compulsory == len(np.unique(idx * 4 // 32))
    with pytest.raises(QuantError, match="policy"):
        simulate_gather(idx, 100, 4, 32, 1024, "fifo")


_g = synthetic_graph(500, 4000, kind="powerlaw", seed=3, duplicates=False)
G = GraphStructure("synthetic-powerlaw-500-4000-s3", _g.indptr, _g.indices, 40, 5)
DP = DesignPoint(bits=4, word_bits=64, max_degree=512, agg_units=1)


def _pw(prec: str, dp: DesignPoint = DP) -> PropWidths:
    b = Precision(prec).bits
    if prec == "fp32":
        return PropWidths(32, 32, 32, 32, 32, 0, is_float=True)
    d = design_at(dp, Precision(prec))
    return PropWidths(b, dp.weight_bits, b, b + 1, dp.weight_bits + 1, d.acc_width)


@pytest.mark.parametrize("prec", ["int2", "int4", "int8"])
@pytest.mark.parametrize("F", [1, 5, 16, 40])
def test_aggregation_compute_cycles_equal_unit_model(prec, F):
    r = aggregate_phase("p", G.indptr, G.indices, F, DP, _pw(prec), TemplateOptions())
    assert r.compute_cycles == unit_ideal_cycles(G.indptr, F, design_at(DP, Precision(prec)))
    assert r.detail["unit_ideal_cycles"] == r.compute_cycles
    assert r.cycles >= r.compute_cycles
    assert r.counts.total("agg_unit", "int_add") >= G.num_edges * F


def test_aggregation_turns_memory_bound_when_bandwidth_is_low():
    fast = aggregate_phase("p", G.indptr, G.indices, 16, DP, _pw("int8"), TemplateOptions())
    slow_dp = DP.replace(dram_bandwidth_gbs=0.5, feature_buffer_kib=1)
    slow = aggregate_phase("p", G.indptr, G.indices, 16, slow_dp, _pw("int8"), TemplateOptions())
    assert fast.bound == "compute" and fast.cycles == fast.compute_cycles
    assert slow.bound == "memory" and slow.cycles > slow.compute_cycles
    assert slow.dram_read_bytes > fast.dram_read_bytes  # the 1 KiB buffer misses more


def test_parallel_units_share_bandwidth_and_split_hub_rows():
    one = aggregate_phase("p", G.indptr, G.indices, 16, DP, _pw("int8"), TemplateOptions())
    four_dp = DP.replace(agg_units=4)
    four = aggregate_phase("p", G.indptr, G.indices, 16, four_dp, _pw("int8"), TemplateOptions(tile_rows=2))
    whole = aggregate_phase("p", G.indptr, G.indices, 16, four_dp, _pw("int8"),
                            TemplateOptions(tile_rows=2, split_rows=False))
    assert four.cycles < one.cycles
    assert four.dram_read_bytes == one.dram_read_bytes
    # without splitting, the hub rows of the power-law graph make their unit a straggler
    assert whole.detail["load_imbalance"] > four.detail["load_imbalance"] >= 1.0
    assert whole.compute_cycles > four.compute_cycles


def test_hub_row_csr_is_restreamed_when_it_does_not_fit_the_edge_buffer():
    kw = dict(indptr=G.indptr, indices=G.indices, n_features=40, dp=DP, pw=_pw("fp32"))
    big = aggregate_phase("p", opts=TemplateOptions(edge_buffer_kib=1024), **kw)
    small = aggregate_phase("p", opts=TemplateOptions(edge_buffer_kib=1), **kw)
    deg = np.diff(G.indptr)
    hub = deg * (32 + 32) > 8 * 1024
    assert big.detail["passes"] == 20 and big.detail["csr_rows_restreamed"] == 0
    assert small.detail["csr_rows_restreamed"] == int(hub.sum()) > 0
    extra = 19 * ((deg[hub] * 64 + 32) / 8.0).sum()
    assert small.dram_read_bytes - big.dram_read_bytes == pytest.approx(extra, abs=1)


@pytest.mark.parametrize("m,k,n", [(2708, 1433, 64), (2708, 64, 7), (11758, 10, 64), (11758, 64, 2), (5, 3, 2)])
@pytest.mark.parametrize("rows,cols", [(16, 16), (64, 64), (8, 32)])
def test_dense_cycles_close_to_scalesim_closed_form(m, k, n, rows, cols):
    ours = dense_compute_cycles(m, k, n, rows, cols)
    ref = scalesim_ws_cycles(m, k, n, rows, cols)
    folds = -(-k // rows) * -(-n // cols)
    # ours overlaps fill/drain of consecutive folds; SCALE-Sim pays them per fold
    assert abs(ref - ours) <= folds * (2 * rows + cols) + rows + cols
    if m >= 1000:
        assert abs(ref - ours) / ref < 0.05


def test_dense_bit_fusion_and_one_multiply_rule():
    d8 = dense_phase("l", 1000, 64, 64, DP, DenseWidths(8, 8, 8, 9, 9), TemplateOptions())
    d2 = dense_phase("l", 1000, 64, 64, DP, DenseWidths(2, 2, 2, 3, 3), TemplateOptions())
    mixed = dense_phase("l", 1000, 64, 64, DP, DenseWidths(8, 2, 2, 9, 3), TemplateOptions())
    assert d2.detail["array"] == [64, 64] and d8.detail["array"] == [16, 16] and mixed.detail["array"] == [64, 16]
    assert d2.compute_cycles < d8.compute_cycles / 3
    # the dense unit prices a product at the centred widths, as the aggregation unit does
    assert ("dense_unit", "int_mult", 3, 3) in d2.counts.counts
    agg = aggregate_phase("p", G.indptr, G.indices, 4, DP, _pw("int2"), TemplateOptions())
    assert ("agg_unit", "int_mult", 3, DP.weight_bits + 1) in agg.counts.counts


def test_stand_in_estimate_and_compare():
    r = compare(G, DP, workload=Workload("appnp", k_steps=3))
    res = r["results"]
    assert r["stand_in"] and r["model"] is None
    assert set(res) == {"fp32", "int8", "int4", "int2"}
    for p, d in res.items():
        assert d["cycles"] > 0 and d["seconds"] == pytest.approx(d["cycles"] / DP.clock_hz)
        assert d["energy_j_low"] <= d["energy_j"] <= d["energy_j_high"]
        assert set(d["energy_by_unit"]) >= {"agg_unit", "dense_unit", "dram", "feature_buffer"}
        assert [o["op"] for o in d["ops"]] == ["input", "linear", "relu", "linear"] + ["propagate", "add"] * 3 + ["argmax"]
        assert sum(o["cycles"] for o in d["ops"]) == d["cycles"]
        assert sum(o["energy_j"] for o in d["ops"]) == pytest.approx(d["energy_j"], rel=0.05)
        assert all(o["bound"] in ("compute", "memory") for o in d["ops"])
    assert res["fp32"]["speedup_vs_fp32"] == 1.0
    assert res["int2"]["energy_ratio_vs_fp32"] > res["int8"]["energy_ratio_vs_fp32"] > 1.0
    assert res["int2"]["ceiling"]["vs_fp32"] == pytest.approx(bytes_per_edge(5, 32, 32) / bytes_per_edge(5, 2, 32))


def test_estimate_is_deterministic_and_workloads_differ():
    a = estimate(G, DP, "int4").to_dict()
    b = estimate(G, DP, "int4").to_dict()
    assert a == b
    g = estimate(G, DP, "int4", Workload("gcn"))
    s = estimate(G, DP, "int4", Workload("aggregate"))
    assert [p.name for p in g.phases] == ["x", "lin1", "prop1", "relu1", "lin2", "prop2", "pred"]
    assert [p.name for p in s.phases] == ["prop"]


def test_invalid_inputs_are_named():
    with pytest.raises(QuantError, match="precision"):
        estimate(G, DP, "int3")
    with pytest.raises(DesignError, match="word_bits"):
        estimate(G, DP.replace(word_bits=16), "fp32")
    with pytest.raises(QuantError, match="workload"):
        Workload("gat")
    with pytest.raises(QuantError, match="cache_policy"):
        TemplateOptions(cache_policy="random")
    with pytest.raises(DesignError, match="agg_units"):
        DP.replace(agg_units=0)
