"""The aggregation benchmark runs end to end on a small graph: every width bit-exact (int16
and packed output), interleaved timings present, ratios consistent.  No timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys

from sim import bench_aggregation


def test_run_small_graph_is_bit_exact():
    res = bench_aggregation.run(num_nodes=600, num_edges=5000, num_features=24, repeats=2,
                                kind="powerlaw", seed=3, bits=(2, 4, 8), threads=1, check_rows=100)
    t = res["torch_fp32"]
    assert len(t["times_s"]) == 2 and t["median_s"] > 0
    for b in (2, 4, 8):
        r = res[f"int{b}"]
        assert r["bit_exact"] is True
        assert len(r["times_s"]) == 2
        assert r["speedup_vs_torch_fp32"] == t["median_s"] / r["median_s"]
        assert r["min_s"] == min(r["times_s"])
        assert r["speedup_best_vs_torch_fp32_best"] == t["min_s"] / r["min_s"]
        assert r["output"].startswith(f"packed INT{b} codes")
    assert "INT2 packed (bit-exact)" in bench_aggregation.format_table(res)


def test_cli_writes_json(tmp_path):
    out = tmp_path / "b"
    r = subprocess.run([sys.executable, "-m", "quagga.cli", "simulate", "--bench", "--nodes", "300",
                        "--edges", "2000", "--features", "8", "--repeats", "1", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((out / "bench_aggregation.json").read_text())
    assert all(d[f"int{b}"]["bit_exact"] for b in (2, 4, 8))
