"""The CPU model of the host design point: the table-cost model and the roofline of older
probes (units, monotonicity, binding resource, interpolation, access skew) and the probe
record's validation (no timing)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sim.accel.host_model import (AggregationWork, effective_table_bytes, gather_rate, predict_aggregation,
                                  read_bandwidth, table_cost, touch_bandwidth, uniform_hot_share)
from sim.design.host import (CacheLevel, GatherRate, HostPoint, KernelCost, StreamRate, TouchRate,
                             load_host)
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


# --------------------------------------------------------------------------- table costs
def curve_host(**changes) -> HostPoint:
    """:func:`example_host` with table costs: per edge 1 ns from a 16 KiB table rising to 20 ns
    from 256 MiB, per row 5 ns rising to 50 ns, measured on 2**21-edge graphs, and
    first-touch rates."""
    curve = ((16 * KIB, 5e-9, 1e-9), (1 * MIB, 10e-9, 2e-9), (32 * MIB, 30e-9, 8e-9),
             (256 * MIB, 50e-9, 20e-9))
    costs = tuple(KernelCost(k, 10e-6, 5e-9, 1e-9, table_costs=curve, table_edges=1 << 21)
                  for k in ("own_fp32", "int2", "int4", "int8"))
    fields = dict(kernel_costs=costs, first_touch=(TouchRate(64 * KIB, 100e9), TouchRate(256 * MIB, 4e9)))
    fields.update(changes)
    return example_host(**fields)


def test_table_costs_add_up():
    h = curve_host()
    w = work(num_src_rows=4_000_000, row_bytes=16)  # a 64 MiB table, no skew given
    p = predict_aggregation(h, w)
    out = w.num_rows * w.out_row_bytes
    row, edge = table_cost(h, "int2", w.table_bytes)
    assert 8e-9 < edge < 20e-9 and 30e-9 < row < 50e-9
    assert p.effective_table_bytes == w.table_bytes
    assert p.compute_s == pytest.approx(5e-9 * w.num_rows + 1e-9 * w.num_edges)
    assert p.gather_s == pytest.approx((row - 5e-9) * w.num_rows + (edge - 1e-9) * w.num_edges)
    assert p.stream_s == pytest.approx(out / touch_bandwidth(h.first_touch, out))
    assert p.time_s == pytest.approx(p.call_s + p.compute_s + p.gather_s + p.stream_s)
    assert p.memory_s == pytest.approx(p.gather_s + p.stream_s) and p.binds == "memory"
    # clamped at the curve's ends; log-linear between its points
    assert table_cost(h, "int2", 1) == pytest.approx((5e-9, 1e-9))
    assert table_cost(h, "int2", 1 << 40) == pytest.approx((50e-9, 20e-9))
    assert table_cost(h, "int2", 128 * KIB) == pytest.approx((7.5e-9, 1.5e-9))
    # no first-touch rates: no output term
    assert touch_bandwidth((), 1 << 30) == float("inf")
    assert predict_aggregation(curve_host(first_touch=()), w).stream_s == 0.0


def test_table_costs_monotone_and_threads():
    h = curve_host()
    t = [predict_aggregation(h, work(num_src_rows=n)).time_s for n in (1_000, 100_000, 10_000_000)]
    assert t == sorted(t) and t[0] < t[-1]
    p2, p1 = predict_aggregation(h, work(threads=2)), predict_aggregation(h, work(threads=1))
    assert p1.time_s - p1.call_s == pytest.approx(2 * (p2.time_s - p2.call_s))


def test_uniform_hot_share():
    assert uniform_hot_share(1.0, 5) == 1.0 and uniform_hot_share(0.0, 5) == 0.0
    # many edges per row: every row alike, the share is the row fraction
    assert uniform_hot_share(0.25, 1e12) == pytest.approx(0.25, abs=1e-5)
    # few edges per row: Poisson counts make the top rows hotter, as a simulation shows
    import numpy as np

    rng = np.random.default_rng(0)
    n, lam, q = 200_000, 8, 0.1
    counts = np.sort(np.bincount(rng.integers(0, n, lam * n), minlength=n))[::-1]
    sim = counts[: int(q * n)].sum() / counts.sum()
    assert uniform_hot_share(q, lam) == pytest.approx(sim, abs=0.01)


def test_skewed_graph_reads_a_smaller_effective_table():
    h = curve_host()
    base = work(num_rows=1_000_000, num_src_rows=4_000_000, num_edges=10_000_000, row_bytes=16)
    # inside L2: the table itself
    small = dataclasses.replace(base, num_src_rows=1000, source_coverage=(0.5, 1.0))
    assert effective_table_bytes(h, small) == small.table_bytes
    # uniform sources as many as the probe's micro-graph (2**21 edges): T_eff is T
    def uniform(edges):
        lam = edges / base.num_src_rows
        cov = tuple(uniform_hot_share(min(1.0, 2 ** j / base.num_src_rows), lam) for j in range(23))
        return dataclasses.replace(base, num_edges=edges, source_coverage=cov)

    assert effective_table_bytes(h, uniform(1 << 21)) == pytest.approx(base.table_bytes, rel=0.05)
    # more edges per source row than the micro-graph: fewer lucky hits, a larger T_eff
    uni = uniform(base.num_edges)
    assert effective_table_bytes(h, uni) > 1.5 * base.table_bytes
    # hubs: most gathers read a few rows, as from a table not much larger than L2
    hub = dataclasses.replace(base, source_coverage=tuple(min(1.0, 0.8 + 0.01 * j) for j in range(23)))
    t_hub = effective_table_bytes(h, hub)
    assert MIB <= t_hub < 2 * MIB
    assert predict_aggregation(h, hub).time_s < predict_aggregation(h, uni).time_s


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["kernel_costs"][0].update(table_costs=[[1024, 1e-9, 1e-9], [512, 2e-9, 1e-9]]), "increasing"),
    (lambda d: d["kernel_costs"][0].update(table_costs=[[1024, 1e-9]]), r"table_costs\[0\]"),
    (lambda d: d["kernel_costs"][0].update(table_costs=[[1024, -1.0, 1e-9]]), "row_s"),
    (lambda d: d["kernel_costs"][0].update(table_costs=[[1024, 1e-9, float("nan")]]), "edge_s"),
    (lambda d: d["kernel_costs"][0].update(table_costs=5), "table_costs"),
    (lambda d: d["kernel_costs"][0].update(table_edges=-3), "table_edges"),
    (lambda d: d["first_touch"][0].update(bps=0), "bps"),
])
def test_bad_table_costs_name_the_field(tmp_path, edit, field):
    d = json.loads(curve_host().to_json())
    edit(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(DesignError, match=field):
        load_host(p)


def test_table_costs_round_trip(tmp_path):
    h = curve_host()
    assert load_host(h.save(tmp_path / "host.json")) == h
    with pytest.raises(DesignError, match="table costs"):
        table_cost(example_host(), "int2", 1 << 20)
