"""The host probe: OS parsing on fake trees, a tiny real probe, the predictions in the bench
JSON and the CLI's refusals of bad probe files (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from quagga.bench import host_probe
from sim.design.host import HostPoint, load_host

QUAGGA = str(Path(sys.executable).parent / "quagga")


def _fake_sysfs(root: Path, entries) -> Path:
    base = root / "devices" / "system" / "cpu" / "cpu0" / "cache"
    for i, (level, kind, size, shared) in enumerate(entries):
        d = base / f"index{i}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
        (d / "shared_cpu_list").write_text(f"{shared}\n")
    return root


def test_read_caches_from_a_fake_sysfs(tmp_path):
    root = _fake_sysfs(tmp_path, [(1, "Data", "32K", "0"), (1, "Instruction", "32K", "0"),
                                  (2, "Unified", "1024K", "0"), (3, "Unified", "32M", "0-1,4")])
    caches = host_probe.read_caches(root)
    assert [(c.level, c.kind, c.size_bytes, c.shared_cpus) for c in caches] == [
        (1, "Data", 32 << 10, 1), (1, "Instruction", 32 << 10, 1), (2, "Unified", 1 << 20, 1),
        (3, "Unified", 32 << 20, 3)]


def test_read_caches_skips_bad_entries_and_falls_back(tmp_path):
    root = _fake_sysfs(tmp_path, [(1, "Data", "lots", "0"), (2, "Unified", "2M", "0")])
    caches = host_probe.read_caches(root)
    assert [(c.level, c.size_bytes) for c in caches] == [(2, 2 << 20)]
    # no tree at all: os.sysconf (whatever it says here), never an error
    assert isinstance(host_probe.read_caches(tmp_path / "none"), list)


@pytest.mark.parametrize("text, size", [("32K", 32 << 10), ("1024K", 1 << 20), ("32M", 32 << 20),
                                        ("512", 512), (" 1G\n", 1 << 30), ("64KB", 64 << 10)])
def test_parse_size(text, size):
    assert host_probe.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "K", "12Q", "abc"])
def test_parse_size_refuses_garbage(text):
    with pytest.raises(ValueError, match="cache size"):
        host_probe.parse_size(text)


@pytest.mark.parametrize("flags, simd", [("fpu sse2 avx avx2 avx512f avx512bw", 64),
                                         ("fpu sse2 avx avx2", 32), ("fpu sse2", 16), ("fpu", 8)])
def test_read_cpuinfo(tmp_path, flags, simd):
    p = tmp_path / "cpuinfo"
    p.write_text(f"processor\t: 0\nmodel name\t: Test CPU 9000\ncpu MHz\t\t: 2596.142\n"
                 f"flags\t\t: {flags}\n\nprocessor\t: 1\nmodel name\t: other\n")
    info = host_probe.read_cpuinfo(p)
    assert info["cpu"] == "Test CPU 9000" and info["simd_bytes"] == simd
    assert info["mhz"] == pytest.approx(2596.142)
    assert host_probe.read_cpuinfo(tmp_path / "missing")["cpu"] == "unknown"


@pytest.fixture(scope="module")
def tiny_probe(tmp_path_factory) -> Path:
    """A real probe, as small as it gets (structure only; the numbers are not checked)."""
    h = host_probe.probe(threads=1, repeats=1, sizes=(16 << 10, 64 << 10),
                         kernels=("own_fp32", "int2", "int4", "int8"))
    return h.save(tmp_path_factory.mktemp("probe") / "host.json")


def test_probe_record(tiny_probe):
    h = load_host(tiny_probe)
    assert isinstance(h, HostPoint) and h.threads == 1 and h.clock_hz > 0
    assert {g.row_bytes for g in h.gather} == set(host_probe.GATHER_ROW_BYTES)
    assert [s.size_bytes for s in h.stream] == [16 << 10, 64 << 10]
    assert [c.kernel for c in h.kernel_costs] == ["own_fp32", "int2", "int4", "int8"]
    assert [t.size_bytes for t in h.first_touch] == list(host_probe.TOUCH_SIZES)
    for c in h.kernel_costs:
        assert min(c.call_s, c.row_s, c.edge_s) >= 0 and "micro-graphs" in c.calibration
        rb = host_probe.kernel_row_bytes(c.kernel, 64)
        # one row and edge cost per probe size, at the table the probe built (whole rows)
        assert [t for t, _, _ in c.table_costs] == [(s // rb) * rb for s in (16 << 10, 64 << 10)]
        assert all(r >= 0 and e >= 0 for _, r, e in c.table_costs)
        (n, d), _ = host_probe.TABLE_GRAPHS
        assert c.table_edges == n * d


def test_first_touch_rate_is_bounded_by_the_stream_copy_rate():
    """A small array's write can hide in the spread of the call term; its rate is then the
    stream copy rate of the nearest working set, never an unbounded figure."""
    from sim.design.host import StreamRate

    slow = (StreamRate(16 << 10, 1e6, 1e6, 1e6), StreamRate(1 << 30, 1e6, 2e6, 1e6))
    rates = host_probe.measure_first_touch(1, sizes=(4 << 10, 64 << 10), repeats=3, streams=slow)
    assert [r.size_bytes for r in rates] == [4 << 10, 64 << 10]
    assert all(0 < r.bps <= 1e6 for r in rates)
    assert host_probe._stream_copy_bps(slow, 1 << 29) == 2e6


def test_bench_json_has_predictions(tiny_probe, tmp_path):
    out = tmp_path / "b.json"
    r = subprocess.run([QUAGGA, "bench", "--quick", "--workload", "aggregation", "--repeats", "1",
                        "--threads", "1", "--host-probe", str(tiny_probe), "--json", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "predicted" in r.stdout
    agg = json.loads(out.read_text())["workloads"]["aggregation"]
    assert agg["host_model"]["threads"] == 1
    assert agg["host_model"]["host"]["format"] == "quagga-host-probe"
    for ent in (agg["baselines"]["own_fp32"], agg["int2"], agg["int4"], agg["int8"]):
        assert ent["predicted_s"] > 0
        assert ent["predicted_over_measured"] == pytest.approx(ent["predicted_s"] / ent["median_s"])
        p = ent["predicted"]
        assert ent["busy_s"] == pytest.approx(ent["cpu_median_s"] / 1)
        assert ent["predicted_over_busy"] == pytest.approx(ent["predicted_s"] / ent["busy_s"])
        assert len(ent["cpu_times_s"]) == len(ent["times_s"]) == 1
        assert p["binds"] in ("compute", "memory")
        # the probe measured table costs: the terms add
        assert p["time_s"] == pytest.approx(p["call_s"] + p["compute_s"] + p["memory_s"])
        assert p["effective_table_bytes"] > 0
    for form in ("torch_csr_spmm", "pyg_sparse_csr"):
        assert "predicted_s" not in agg["baselines"][form]


def test_bench_refuses_missing_or_bad_probe(tmp_path, tiny_probe):
    out = tmp_path / "b.json"
    missing = tmp_path / "nope.json"
    r = subprocess.run([QUAGGA, "bench", "--quick", "--host-probe", str(missing), "--json", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "nope.json" in r.stderr and "host_probe" in r.stderr
    assert not out.exists()
    d = json.loads(Path(tiny_probe).read_text())
    d["clock_hz"] = -1.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    r = subprocess.run([QUAGGA, "bench", "--quick", "--host-probe", str(bad), "--json", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "clock_hz" in r.stderr and "-1" in r.stderr
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_report_table_of_predictions():
    from quagga.report import host_model_rows, host_model_table

    def ent(med, best, pred, binds):
        return {"median_s": med, "min_s": best, "times_s": [best, med], "predicted_s": pred,
                "predicted": {"binds": binds, "compute_s": pred, "memory_s": pred / 2,
                              "table_level": "L2"}}

    agg = {"baselines": {"own_fp32": ent(0.010, 0.008, 0.011, "memory"),
                         "torch_csr_spmm": {"median_s": 0.02, "times_s": [0.02]}},
           "int2": ent(0.002, 0.0015, 0.001, "compute"), "int8": ent(0.004, 0.003, 0.0045, "compute"),
           "host_model": {"compared_with": "median_s"}}
    rows = host_model_rows(agg)
    assert [r["width"] for r in rows] == ["FP32", "INT8", "INT2"]
    assert rows[0]["ratio"] == pytest.approx(1.1) and rows[2]["ratio"] == pytest.approx(0.5)
    res = {"dataset": {"name": "tolokers", "num_edges_with_self_loops": 1049758},
           "machine": {"load_average_start": [1.5, 1.0, 0.5]}, "workloads": {"aggregation": agg}}
    lines = host_model_table({"host-tolokers": res})
    assert len(lines) == 2 + 3
    assert "| FP32 | `own_fp32` | 1.5 | 10.00 | 8.00 | 11.00 | 1.10 (median) | yes | – | – | memory" in lines[2]
    assert "| INT2 |" in lines[4] and "| 0.50 (median) | no |" in lines[4]
    agg["host_model"]["compared_with"] = "min_s"
    assert host_model_rows(agg)[0]["ratio"] == pytest.approx(0.011 / 0.008)
    agg["baselines"]["own_fp32"].update(busy_s=0.005, predicted_over_busy=2.2)
    agg["host_model"]["compared_with"] = "busy_s"
    assert host_model_rows(agg)[0]["ratio"] == pytest.approx(2.2)
    assert "| 2.20 (busy) | no | 5.00 | 2.20 |" in host_model_table({"t": res})[2]
    assert host_model_table({"x": {"workloads": {"aggregation": {"baselines": {}}}}}) == []


def test_design_host_from_a_probe(tiny_probe):
    import argparse

    from quagga.design_args import design_from_args
    from sim.design.point import DesignError

    ns = argparse.Namespace(design="host", set=["bits=2"], host_probe=str(tiny_probe))
    dp = design_from_args(ns)
    h = load_host(tiny_probe)
    assert dp.name == "host" and dp.bits == 2 and dp.agg_units == h.threads
    assert dp.clock_hz == h.clock_hz and dp.word_bits == 8 * h.simd_bytes
    with pytest.raises(DesignError, match="--host-probe"):
        design_from_args(argparse.Namespace(design="host", set=[], host_probe=None))
