"""The CPU roofline model of the host design point: units, monotonicity, binding resource,
interpolation and the probe record's validation (no timing)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sim.accel.host_model import AggregationWork, gather_rate, predict_aggregation, read_bandwidth
from sim.design.host import (CacheLevel, GatherRate, HostPoint, KernelCost, StreamRate, load_host)
from sim.design.point import DesignError, DesignPoint

KIB = 1 << 10
MIB = 1 << 20


def example_host(**changes) -> HostPoint:
    """A hand-made probe: rates fall with the working set; 1 ns per edge of compute."""
    sizes = (16 * KIB, 1 * MIB, 32 * MIB, 256 * MIB)
    stream = tuple(StreamRate(s, r, r, r) for s, r in zip(sizes, (100e9, 50e9, 20e9, 10e9)))
    gather = tuple(GatherRate(rb, s, r / (1 + rb // 64))
                   for rb in (16, 64, 256) for s, r in zip(sizes, (2e9, 1e9, 200e6, 50e6)))
    costs = tuple(KernelCost(k, 10e-6, 5e-9, 1e-9) for k in ("own_fp32", "int2", "int4", "int8"))
    h = HostPoint(cpu="test", logical_cpus=2, threads=2, simd_bytes=64, clock_hz=3e9,
                  caches=(CacheLevel(1, "Data", 32 * KIB), CacheLevel(2, "Unified", MIB),
                          CacheLevel(3, "Unified", 32 * MIB, 2)),
                  stream=stream, gather=gather, kernel_costs=costs, load_average=(0.5, 0.4, 0.3))
    return dataclasses.replace(h, **changes)


def work(**kw) -> AggregationWork:
    d = dict(kernel="int2", num_rows=10_000, num_edges=1_000_000, num_src_rows=10_000,
             row_bytes=16, index_bytes=2, weight_bytes=1, out_row_bytes=16, threads=2)
    d.update(kw)
    return AggregationWork(**d)


def test_units_and_parts_add_up():
    h = example_host()
    w = work()
    p = predict_aggregation(h, w)
    assert p.compute_s == pytest.approx(5e-9 * 10_000 + 1e-9 * 1_000_000)
    assert p.gather_s == pytest.approx(w.num_edges / gather_rate(h, 16, w.table_bytes))
    assert p.stream_s == pytest.approx(w.stream_bytes / read_bandwidth(h, w.working_set_bytes))
    assert p.time_s == pytest.approx(p.call_s + max(p.compute_s, p.memory_s))
    assert p.binds == ("compute" if p.compute_s >= p.memory_s else "memory")
    assert w.stream_bytes == 1_000_000 * 3 + 8 * 10_001 + 10_000 * 16


def test_monotone_in_edges_rows_and_table():
    h = example_host()
    t = [predict_aggregation(h, work(num_edges=e)).time_s for e in (10_000, 100_000, 1_000_000, 10_000_000)]
    assert t == sorted(t) and t[0] < t[-1]
    t = [predict_aggregation(h, work(num_src_rows=n, num_rows=n)).time_s
         for n in (1_000, 100_000, 10_000_000)]
    assert t == sorted(t)
    # wider rows move more lines: never faster
    t = [predict_aggregation(h, work(row_bytes=rb, kernel="own_fp32")).time_s for rb in (16, 64, 256)]
    assert t == sorted(t)


def test_big_table_is_memory_bound_small_is_compute_bound():
    h = example_host()
    small = predict_aggregation(h, work(num_rows=1000, num_src_rows=1000))
    big = predict_aggregation(h, work(kernel="own_fp32", num_rows=10_000_000, num_src_rows=10_000_000,
                                      row_bytes=256, index_bytes=4, weight_bytes=4, out_row_bytes=256))
    assert small.binds == "compute" and small.table_level == "L1"
    assert big.binds == "memory" and big.table_level == "DRAM"


def test_interpolation_is_clamped_and_log_linear():
    h = example_host()
    assert gather_rate(h, 16, 1) == pytest.approx(2e9 / 1)
    assert gather_rate(h, 16, 1 << 40) == pytest.approx(50e6)
    mid = gather_rate(h, 16, 128 * KIB)  # halfway in log2 between 16 KiB and 1 MiB
    assert 1 / mid == pytest.approx(0.5 / 2e9 + 0.5 / 1e9)
    assert read_bandwidth(h, 10) == pytest.approx(100e9)
    # between measured widths: linear in the width; past the widest: per byte of the widest
    assert gather_rate(h, 32, 16 * KIB) < gather_rate(h, 16, 16 * KIB)
    assert gather_rate(h, 512, 16 * KIB) == pytest.approx(gather_rate(h, 256, 16 * KIB) / 2)


def test_threads_scale_compute_only():
    h = example_host()
    p2 = predict_aggregation(h, work(threads=2))
    p1 = predict_aggregation(h, work(threads=1))
    assert p1.compute_s == pytest.approx(2 * p2.compute_s)
    assert p1.memory_s == pytest.approx(p2.memory_s)


def test_unknown_kernel_and_bad_work_are_refused():
    h = example_host(kernel_costs=(KernelCost("int2", 0, 0, 1e-9),))
    with pytest.raises(DesignError, match="int4"):
        predict_aggregation(h, work(kernel="int4"))
    with pytest.raises(DesignError, match="num_edges"):
        work(num_edges=-1)
    with pytest.raises(DesignError, match="threads"):
        work(threads=0)


def test_host_round_trip_and_design_point(tmp_path):
    h = example_host()
    path = h.save(tmp_path / "host.json")
    assert load_host(path) == h
    dp = h.design_point(bits=2)
    assert isinstance(dp, DesignPoint)
    assert dp.word_bits == 512 and dp.clock_hz == 3e9 and dp.agg_units == 2
    assert dp.feature_buffer_kib == 1024 and dp.dram_bandwidth_gbs == pytest.approx(10.0)
    assert h.cache_level_of(20 * MIB) == "L3"


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.update(clock_hz=-1.0), "clock_hz"),
    (lambda d: d.update(threads=0), "threads"),
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d.update(version=99), "version"),
    (lambda d: d.update(bogus=1), "bogus"),
    (lambda d: d["gather"][0].update(rows_per_s=0), "rows_per_s"),
    (lambda d: d["kernel_costs"][0].update(kernel="int3"), "int3"),
    (lambda d: d["kernel_costs"][0].update(edge_s=float("nan")), "edge_s"),
    (lambda d: d["caches"][0].update(kind="Weird"), "Weird"),
    (lambda d: d.update(stream=[]), "stream"),
    (lambda d: d.update(statistic="mean"), "statistic"),
    (lambda d: d["stream"][0].pop("read_bps"), "stream[0]"),
])
def test_bad_probe_files_name_the_field(tmp_path, edit, field):
    d = json.loads(example_host().to_json())
    edit(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(DesignError, match=field.replace("[", r"\[").replace("]", r"\]")):
        load_host(p)


def test_missing_and_malformed_probe_files(tmp_path):
    with pytest.raises(DesignError, match="does not exist.*host_probe"):
        load_host(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DesignError, match="not valid JSON"):
        load_host(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(DesignError, match="JSON object"):
        load_host(bad)


def test_source_coverage_and_skewed_gathers():
    import numpy as np

    from sim.accel.host_model import source_coverage

    cov = source_coverage(np.array([0, 0, 0, 0, 1, 1, 2, 3]), 4)
    assert cov == (0.5, 0.75, 1.0)  # top 1, 2, 4 rows
    uniform = source_coverage(np.arange(1024), 1024)
    assert uniform[5] == pytest.approx(32 / 1024)
    h = example_host()
    base = work(num_rows=1_000_000, num_src_rows=1_000_000, row_bytes=64, kernel="int8")
    assert base.hot_fraction(1000) == pytest.approx(1e-3)
    skew = dataclasses.replace(base, source_coverage=tuple(min(1.0, 0.5 + 0.05 * j) for j in range(21)))
    assert skew.hot_fraction(2 ** 4) == pytest.approx(0.7)
    p_uni, p_skew = predict_aggregation(h, base), predict_aggregation(h, skew)
    assert p_skew.l2_hot_fraction > p_uni.l2_hot_fraction
    assert p_skew.gather_s < p_uni.gather_s
    with pytest.raises(DesignError, match="source_coverage"):
        dataclasses.replace(base, source_coverage=(0.5, 0.2))
