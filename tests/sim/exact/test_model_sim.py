"""Whole-model simulation equals the model IR's numpy executor, stage by stage; the CLI
writes its report; foreign model files, graphs and designs are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_files import rewrite_header

from quagga.cli import main
from quant import model_ir as mi
from sim.design.point import DesignError, DesignPoint
from sim.exact.model_sim import check_graph, compare_stages, run_model
from sim.verify.model_cases import golden_cases_from_model
from sim.verify.random_models import ARCHS, GraphSpec, random_model


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_models_bit_exact_every_stage(arch, bits):
    gs = GraphSpec(num_nodes=14, avg_degree=2.0, hub_degree=25, isolated=0.2, self_loops=True,
                   duplicates=True)
    model, x = random_model(bits * 7 + len(arch), arch, bits=bits, graph=gs, narrow_acc=True,
                            msg=bits == 4, upd=bits == 2)
    rep = compare_stages(model, x)
    assert rep.bit_exact, [s.to_dict() for s in rep.stages if s.mismatches]
    assert len(rep.stages) == len(model.ops)
    assert np.array_equal(rep.predictions, model.predict(x))


def _model_file(tmp_path, seed=1):
    model, x = random_model(seed, "appnp", bits=4, graph=GraphSpec(num_nodes=10, self_loops=True))
    p = mi.save(model, tmp_path / "m.qim")
    return model, x, p


def _graph_npz(tmp_path, model, x, seed=1, name="g.npz"):
    # regenerate the same edges the model was built on
    from sim.verify.random_models import random_graph_edges
    rng = np.random.default_rng(seed)
    ei = random_graph_edges(GraphSpec(num_nodes=10, self_loops=True), rng)
    y = np.arange(x.shape[0]) % 3
    path = tmp_path / name
    np.savez(path, x=x, y=y, edge_index=ei)
    return path, ei


def test_cli_simulate_writes_report(tmp_path):
    model, x, p = _model_file(tmp_path)
    g, _ = _graph_npz(tmp_path, model, x)
    out = tmp_path / "out"
    assert main(["simulate", str(p), "--dataset", str(g), "--out", str(out)]) == 0
    rep = json.loads((out / "simulate.json").read_text())
    assert rep["bit_exact"] is True and rep["mismatches"] == 0
    assert rep["stages_checked"] == len(model.ops)
    pred = np.load(out / "predictions.npy")
    assert np.array_equal(pred, model.predict(x))
    assert rep["accuracy"] == float((pred == np.arange(10) % 3).mean())


def test_trainer_predictions_compared(tmp_path):
    model, x = random_model(3, "gcn", bits=2)
    model.tensors["trainer.pred"] = model.predict(x).astype(np.int32)
    assert compare_stages(model, x).trainer_mismatches == 0
    model.tensors["trainer.pred"] = (model.tensors["trainer.pred"] + 1) % 3
    rep = compare_stages(model, x)
    assert rep.trainer_mismatches == x.shape[0] and not rep.bit_exact


def test_refuses_other_contract_version(tmp_path, capsys):
    model, x, p = _model_file(tmp_path)
    g, _ = _graph_npz(tmp_path, model, x)
    rewrite_header(p, contract_version=999)
    assert main(["simulate", str(p), "--dataset", str(g), "--out", str(tmp_path / "o")]) == 2
    assert "contract_version must be" in capsys.readouterr().err
    assert not (tmp_path / "o" / "simulate.json").exists()


def test_refuses_other_graph(tmp_path, capsys):
    model, x, p = _model_file(tmp_path)
    _, ei = _graph_npz(tmp_path, model, x)
    with pytest.raises(mi.ModelFileError, match="num_nodes must be 10"):
        check_graph(model, ei, 11, x.shape[1])
    with pytest.raises(mi.ModelFileError, match="num_features must be"):
        check_graph(model, ei, 10, x.shape[1] + 1)
    ei2 = ei.copy()
    ei2[0, 0] = (ei2[0, 0] + 1) % 10
    with pytest.raises(mi.ModelFileError, match="graph hash must be"):
        check_graph(model, ei2, 10, x.shape[1])
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=x, y=np.zeros(10, int), edge_index=ei2)
    assert main(["simulate", str(p), "--dataset", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "graph hash must be" in capsys.readouterr().err


def test_refuses_bad_design(tmp_path, capsys):
    cfg = tmp_path / "d.toml"
    cfg.write_text('bits = 4\nlane_count = 8\n')
    assert main(["golden", "--design", str(cfg), "--out", str(tmp_path / "g")]) == 2
    assert "lane_count" in capsys.readouterr().err
    cfg.write_text('bits = 4\nacc_bits = 10\nmax_degree = 64\n')
    assert main(["golden", "--design", str(cfg), "--out", str(tmp_path / "g")]) == 2
    assert "acc_bits must be >=" in capsys.readouterr().err
    with pytest.raises(DesignError, match="acc_bits"):
        DesignPoint(bits=2, acc_bits=5)
    assert not (tmp_path / "g").exists()


def test_golden_from_model(tmp_path):
    model, x, p = _model_file(tmp_path)
    cases = golden_cases_from_model(p, x, max_rows=6)
    props = [op for op in model.ops if isinstance(op, mi.PropagateOp)]
    assert len(cases) == len(props)
    env, _ = run_model(model, x)
    for c, op in zip(cases, props):
        assert np.array_equal(c.y, env[op.out][:6])
        assert c.params == op.params


def test_cli_golden(tmp_path):
    out = tmp_path / "g"
    assert main(["golden", "--set", "bits=2", "--set", "max_degree=8", "--cases", "7",
                 "--seed", "4", "--out", str(out)]) == 0
    from sim.verify.golden import load_cases
    cases = load_cases(out)
    assert len(cases) == 7 and cases[5].saturations > 0
