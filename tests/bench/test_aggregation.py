"""The aggregation benchmark runs end to end on a small graph: every width bit-exact (int16
and packed output), interleaved timings present, ratios consistent.  No timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys

from quagga.bench import aggregation as bench_aggregation
def test_run_small_graph_is_bit_exact():
    res = bench_aggregation.run(num_nodes=600, num_edges=5000, num_features=24, repeats=2,
                                kind="powerlaw", seed=3, bits=(2, 4, 8), threads=1, check_rows=100)
    agg = res["aggregation"]
    assert set(agg["baselines"]) == set(bench_aggregation.FP32_FORMS)
    fastest = agg["baselines"][agg["fastest_fp32"]]
    assert fastest["median_s"] == min(v["median_s"] for v in agg["baselines"].values())
    for b in (2, 4, 8):
        r = agg[f"int{b}"]
        assert r["bit_exact"] is True
        assert len(r["times_s"]) == 2
        assert r["speedup_vs_fastest_fp32"] == fastest["median_s"] / r["median_s"]
        assert r["min_s"] == min(r["times_s"])
        assert r["speedup_best_vs_fastest_fp32_best"] == fastest["min_s"] / r["min_s"]
        for f in bench_aggregation.FP32_FORMS:
            assert r[f"speedup_vs_{f}"] == agg["baselines"][f]["median_s"] / r["median_s"]
        assert r["output"].startswith(f"packed INT{b} codes")
    assert "INT2 packed" in bench_aggregation.describe_run(res)


def test_cli_writes_json(tmp_path):
    out = tmp_path / "b"
    r = subprocess.run([sys.executable, "-m", "quagga.cli", "simulate", "--bench", "--nodes", "300",
                        "--edges", "2000", "--features", "8", "--repeats", "1", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((out / "bench_aggregation.json").read_text())
    assert all(d["aggregation"][f"int{b}"]["bit_exact"] for b in (2, 4, 8))
