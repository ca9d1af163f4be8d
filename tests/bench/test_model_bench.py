"""``quagga bench MODEL.qim``: a trained run timed end to end (bit-exact integer side, every
FP32 form of the same model), and our own FP32 kernels against torch (float tolerance).
No timing assertions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from quagga.bench.fp32_spmm import smp_gap_f32, smp_prop_f32, spmm_f32, spmm_f32_loop
from quagga.bench.model_bench import MODEL_FP32_FORMS, own_fp32_forward
from quagga.bench.torch_baselines import FloatGNNTorch, float_gnn_from_checkpoint
from sim.graphs.synthetic import synthetic_graph


def _train(tmp_path, model: str, bits: int) -> "Path":  # noqa: F821
    from quagga.cli import main

    run = tmp_path / f"{model}-{bits}"
    assert main(["train", "--model", model, "--bits", str(bits), "--epochs", "2", "--layers", "3",
                 "--synthetic-nodes", "300", "--no-progress", "--out", str(run)]) == 0
    return run


@pytest.mark.parametrize("model, bits", [("smp", 2), ("smp", 4), ("appnp", 2), ("gcn", 4)])
def test_bench_model_json(tmp_path, model, bits):
    from quagga.cli import main

    run = _train(tmp_path, model, bits)
    out = tmp_path / "b.json"
    argv = ["bench", str(run / "model.qim"), "--repeats", "2", "--json", str(out)]
    if model != "smp":
        argv += ["--workload", "smp"]
    assert main(argv) == 0
    res = json.loads(out.read_text())
    assert res["bit_exact"] is True and res["stages_checked"] > 0
    assert res["model"]["bits"] == bits and res["model"]["path"].endswith("model.qim")
    assert set(res["fp32"]) == set(MODEL_FP32_FORMS)
    for f, v in res["fp32"].items():
        assert len(v["times_s"]) == 2 and v["median_s"] > 0
        # every FP32 form computes the same model (float rounding may flip a near tie)
        assert res["fp32_prediction_agreement_with_torch_csr_spmm"][f] >= 0.99
    assert res["fastest_fp32"] in MODEL_FP32_FORMS
    it = res["int"]
    assert len(it["times_s"]) == 2 and abs(sum(it["time_share_by_op"].values()) - 1) < 1e-9
    assert it["fast_path_fallbacks"] == {}
    assert res["speedup_vs_fastest_fp32"] == pytest.approx(
        res["fp32"][res["fastest_fp32"]]["median_s"] / it["median_s"])
    assert res["speedup_vs_own_fp32"] == pytest.approx(res["fp32"]["own_fp32"]["median_s"] / it["median_s"])
    assert res["goal_vs_fp32"] == {"int2": 5.11, "int4": 4.70}
    for k in ("cpu", "load_average_start", "load_average_end"):
        assert k in res["machine"]
    if model == "smp":
        assert res["aggregation"][f"int{bits}"]["bit_exact"] is True
    else:
        assert "aggregation" not in res


def test_own_fp32_forward_equals_torch_forward(tmp_path):
    """The same weights through our FP32 forward and through torch: logits to float tolerance."""
    from quant import model_ir as mi
    from training.data import load_dataset
    from training.graph import build_prop_graph

    run = _train(tmp_path, "smp", 2)
    m = mi.load(run / "model.qim")
    fw, _ = float_gnn_from_checkpoint(run / "checkpoint.pt", m.meta["lambdas"])
    d = load_dataset("synthetic", None, synthetic_args={"num_nodes": 300})
    g = build_prop_graph(d.edge_index, d.num_nodes)
    wf = g.edge_weight.numpy()
    n = d.num_nodes
    a = torch.sparse_csr_tensor(torch.from_numpy(g.indptr), torch.from_numpy(g.indices), g.edge_weight,
                                size=(n, n))
    want = FloatGNNTorch(fw).eval()(d.x, lambda h: torch.sparse.mm(a, h), logits=True).detach().numpy()
    for ix in (g.indices.astype(np.uint16), g.indices.astype(np.int32)):
        got = own_fp32_forward(fw, g.indptr, ix, wf, d.x.numpy(), logits=True)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_missing_checkpoint_is_refused(tmp_path, capsys):
    from quagga.cli import main

    run = _train(tmp_path, "smp", 2)
    (run / "checkpoint.pt").unlink()
    out = tmp_path / "x.json"
    assert main(["bench", str(run / "model.qim"), "--repeats", "1", "--workload", "smp",
                 "--json", str(out)]) != 0
    assert "checkpoint" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("f", [1, 2, 3, 4, 10, 16, 64, 96, 128])
def test_fp32_row_kernels_match_torch(f):
    g = synthetic_graph(3000, 30000, seed=f, kind="powerlaw")
    rng = np.random.default_rng(f)
    w = rng.random(g.indices.size).astype(np.float32)
    x = rng.standard_normal((3000, f)).astype(np.float32)
    h0 = rng.standard_normal((3000, f)).astype(np.float32)
    a = torch.sparse_csr_tensor(torch.from_numpy(g.indptr), torch.from_numpy(g.indices),
                                torch.from_numpy(w), size=(3000, 3000))
    ref = torch.sparse.mm(a, torch.from_numpy(x)).numpy()
    for ix in (g.indices.astype(np.uint16), g.indices.astype(np.int32), g.indices):
        np.testing.assert_allclose(spmm_f32(g.indptr, ix, w, x, 64), ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(spmm_f32_loop(g.indptr, ix, w, x, 7), ref, rtol=1e-4, atol=1e-4)
        xt, gd = smp_prop_f32(g.indptr, ix, w, x, h0, 0.1, 64)
        np.testing.assert_allclose(xt, 0.9 * ref + 0.1 * h0, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(gd, xt - x, rtol=1e-5, atol=1e-5)
        pg = torch.sparse.mm(a, torch.from_numpy(gd)).numpy()
        for paper in (False, True):
            y = smp_gap_f32(g.indptr, ix, w, gd, xt, 0.3, paper, 64)
            want = xt + 0.3 * pg if paper else xt + 0.3 * (pg - gd)
            np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
