"""quagga bench on the small graph: end to end, bit-exact, JSON schema (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from quagga.bench import harness
from quagga.bench.smp_int import smp_int_model
from sim.packed.runner import PackedRunner
from sim.verify.random_models import GraphSpec, random_model

QUAGGA = str(Path(sys.executable).parent / "quagga")


def _runner_equals_reference(model, x):
    """Run ``model`` with PackedRunner and IntModel.run; every stage equal.  Returns the
    runner and the reference environment."""
    runner = PackedRunner(model)
    env, _ = runner.run(x)
    ref = model.run(x)
    for k, v in ref.items():
        assert np.array_equal(np.asarray(v).astype(np.int64), env[k].astype(np.int64)), k
    return runner, ref


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_packed_runner_equals_reference_on_smp(bits):
    rng = np.random.default_rng(bits)
    n = 200
    ei = np.stack([rng.integers(0, n, 1500), rng.integers(0, n, 1500)])
    x = rng.random((n, 9)).astype(np.float32)
    model, _, _, _ = smp_int_model(ei, x, 3, bits, seed=bits, steps=2)
    runner, ref = _runner_equals_reference(model, x)
    assert not runner.fallbacks
    only, _ = runner.run(x, keep=False)
    assert list(only) == ["pred"] and np.array_equal(only["pred"], ref["pred"])


@pytest.mark.parametrize("bits, classes", [(2, 16), (4, 16), (4, 8), (2, 32)])
def test_packed_runner_packed_propagation_path(bits, classes):
    """Rows of 4+ packed bytes go through the vector-IR kernel with packed output and are
    unpacked for the adds; every stage still equals IntModel.run."""
    from sim.packed.thresholds import vector_rows_shape

    rng = np.random.default_rng(100 + bits + classes)
    n = 300
    ei = np.stack([rng.integers(0, n, 2500), rng.integers(0, n, 2500)])
    x = rng.random((n, 12)).astype(np.float32)
    model, _, _, _ = smp_int_model(ei, x, classes, bits, seed=bits, steps=2)
    assert vector_rows_shape(bits, classes * bits // 8, bits, 0)
    runner, ref = _runner_equals_reference(model, x)
    assert not runner.fallbacks


@pytest.mark.parametrize("seed", range(6))
def test_packed_runner_equals_reference_on_random_models(seed):
    """Random models: signed codes, narrow (saturating) accumulators, hubs, isolated rows,
    message requantizers (table path) and update requantizers."""
    arch = ("gcn", "appnp", "smp")[seed % 3]
    gs = GraphSpec(num_nodes=40, avg_degree=3, hub_degree=30, isolated=0.2, self_loops=True,
                   duplicates=seed % 2 == 0)
    model, x = random_model(seed, arch, bits=(2, 4, 8)[seed % 3], graph=gs,
                            narrow_acc=seed % 2 == 1, msg=seed == 4, upd=seed >= 3)
    runner, _ = _runner_equals_reference(model, x)
    if seed == 4:  # every message-requantized step takes the table kernel
        assert runner._tables and not set(runner._tables) & set(runner.fallbacks)


def test_harness_quick_json_schema(tmp_path):
    out = tmp_path / "b.json"
    r = subprocess.run([QUAGGA, "bench", "--quick", "--bits", "2,4",
                        "--repeats", "1", "--json", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "vs own FP32" in r.stdout and "SMP end-to-end" in r.stdout
    res = json.loads(out.read_text())
    assert res["bit_exact"] is True
    m = res["machine"]
    for k in ("cpu", "logical_cpus", "threads", "load_average_start", "load_average_end"):
        assert k in m
    assert res["dataset"]["name"] == "quick" and res["dataset"]["num_edges"] == 30_000
    for wl in ("aggregation", "smp"):
        w = res["workloads"][wl]
        for k in ("pyg_edge_index", "pyg_sparse_csr", "own_fp32"):
            assert w["baselines"][k]["median_s"] > 0 and len(w["baselines"][k]["times_s"]) == 1
        for b in (2, 4):
            e = w[f"int{b}"]
            assert e["bit_exact"] is True
            for k in ("median_s", "times_s", "edges_per_s", "speedup_vs_pyg",
                      "speedup_vs_pyg_edge_index", "speedup_vs_pyg_sparse_csr",
                      "speedup_vs_own_fp32"):
                assert k in e
    assert isinstance(res["notes"], list)
    assert not list(tmp_path.glob(".*.tmp"))


def test_bench_cli_refuses_bad_arguments(tmp_path):
    for argv, field in ((["--bits", "3"], "--bits"), (["--dataset", "nope"], "--dataset"),
                        (["--repeats", "0"], "--repeats")):
        out = tmp_path / "x.json"
        r = subprocess.run([QUAGGA, "bench", *argv, "--json", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 2 and field in r.stderr
        assert not out.exists()


def test_unknown_dataset_is_a_quant_error():
    from quant.errors import QuantError

    with pytest.raises(QuantError, match="dataset"):
        harness.load_graph("nope")
