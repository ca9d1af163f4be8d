"""``quagga estimate`` / ``quagga sweep`` command lines: outputs, errors, no partial files."""

from __future__ import annotations

import json

import pytest

from quagga.cli import main


def test_estimate_json_markdown_plot(tmp_path, data_root, capsys):
    rc = main(["estimate", "--dataset", "Cora", "--workload", "appnp", "--k-steps", "3", "--data-root", str(data_root),
               "--json", str(tmp_path / "e.json"), "--markdown", str(tmp_path / "e.md"), "--plot", str(tmp_path / "e.png"),
               "--roofline", str(tmp_path / "r.png")])
    assert rc == 0
    d = json.loads((tmp_path / "e.json").read_text())
    for p in ("fp32", "int8", "int4", "int2"):
        r = d["results"][p]
        for k in ("cycles", "seconds", "energy_j", "speedup_vs_fp32", "energy_ratio_vs_fp32", "energy_by_unit",
                  "cycles_by_unit", "ceiling"):
            assert k in r, (p, k)
    assert d["stand_in"] and d["model"] is None and d["workload"]["stand_in"]
    md = (tmp_path / "e.md").read_text()
    assert "Aggregation against the ceiling" in md and "Stand-in workload" in md and "Command: `quagga estimate" in md
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["e.json", "e.md", "e.png", "r.png"]


@pytest.mark.parametrize("argv,msg", [
    (["--dataset", "NoSuchGraph", "--workload", "gcn"], "unknown"),
    (["--dataset", "Cora", "--workload", "gcn", "--set", "dram=SRAM"], "dram"),
    (["--dataset", "Cora", "--workload", "gcn", "--set", "word_bits=16"], "word_bits"),
    (["--dataset", "Cora", "--workload", "gcn", "--precisions", "fp32,int3"], "precisions"),
    (["--dataset", "Cora", "--workload", "gcn", "--design", "/nonexistent.toml"], "does not exist"),
    (["--dataset", "Cora", "--workload", "gcn", "--design", "laptop"], "preset"),
    (["--dataset", "Cora", "--workload", "gcn", "--set", "agg_units=0"], "agg_units"),
    (["--dataset", "Cora"], "--workload"),
    (["/nonexistent/model.qim"], "does not exist"),
])
def test_estimate_errors_are_clear_and_write_nothing(tmp_path, data_root, capsys, argv, msg):
    out = tmp_path / "e.json"
    rc = main(["estimate", "--data-root", str(data_root), "--json", str(out), *argv])
    assert rc == 2
    assert msg in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_sweep_in_process_and_rerun(tmp_path, capsys):
    argv = ["sweep", "--dataset", "synthetic:uniform:300:2000:1", "--workload", "appnp", "--vary", "word_bits=64,128",
            "--precisions", "fp32,int2", "--csv", str(tmp_path / "s.csv"), "--plot", str(tmp_path / "s.png"),
            "--cache-dir", str(tmp_path / "cache"), "--no-dask", "--k-steps", "2"]
    assert main(argv) == 0
    first = (tmp_path / "s.csv").read_text()
    assert first.count("\n") == 1 + 2 * 2
    assert main(argv) == 0
    assert "0 computed, 2 from cache" in capsys.readouterr().out
    assert (tmp_path / "s.csv").read_text() == first
    assert main(["sweep", "--dataset", "Cora", "--workload", "gcn", "--vary", "bits=2,4", "--csv", str(tmp_path / "x.csv"),
                 "--no-dask"]) == 2
