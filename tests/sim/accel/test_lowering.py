"""Lowering of model files onto the template: one ops record per IR op, at the op's own unit and widths."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from quagga.cli import main
from quant import model_ir as mi
from sim.accel.accelerator import ModelWorkload, compare
from sim.accel.lowering import UNIT_OF, code_bits, lower_model
from sim.design.presets import preset
from sim.verify.random_models import GraphSpec, random_model

GRAPH = GraphSpec(num_nodes=60, avg_degree=4.0, hub_degree=25, isolated=0.1, self_loops=True, duplicates=True)


def _with_truncation(model: mi.IntModel) -> mi.IntModel:
    """The model with a BT* truncation of its logits before the argmax (as an INT2-BT* export)."""
    ops = list(model.ops)
    am = ops[-1]
    assert isinstance(am, mi.ArgmaxOp)
    ops[-1:] = [mi.TruncateOp(inp=am.inp, out="logits.bt", skew=3), mi.ArgmaxOp(inp="logits.bt", out=am.out)]
    m = mi.IntModel(ops=ops, tensors=model.tensors, graph=model.graph, output=model.output, meta=model.meta)
    m.validate()
    return m


def _check_record(op, rec: dict, widths: dict[str, int]) -> None:
    """``rec`` (one ops entry) matches IR op ``op``; ``widths`` maps tensor -> stored bits."""
    assert rec["op"] == op.op and rec["unit"] == UNIT_OF[op.op]
    w = rec["widths"]
    if isinstance(op, mi.InputOp):
        assert w["in_bits"] == [32] and w["out_bits"] == op.spec.bits
    elif isinstance(op, mi.LinearOp):
        assert w["in_bits"] == [widths[op.inp]] and w["out_bits"] == op.requant.spec.bits
        assert w["w_bits"] >= 1
    elif isinstance(op, mi.PropagateOp):
        p = op.params
        assert w["in_bits"] == [p.x_spec.bits] == [widths[op.inp]]
        assert w["w_bits"] == p.w_spec.bits and w["out_bits"] == p.y_spec.bits and w["acc_bits"] == p.acc_bits
        assert w["msg_requant"] == (p.msg is not None) and w["upd_requant"] == (p.upd is not None)
    elif isinstance(op, mi.AddOp):
        streamed = [t for t in dict.fromkeys((op.a, op.b)) if t in widths]
        assert w["in_bits"] == [widths[t] for t in streamed] and w["out_bits"] == op.spec.bits
    elif isinstance(op, (mi.ReluOp, mi.ArgmaxOp, mi.TruncateOp)):
        assert w["in_bits"] == [widths[op.inp]]
        assert w["out_bits"] == {"relu": widths[op.inp], "argmax": 32, "truncate": 2}[op.op]


def _stored_widths(model: mi.IntModel) -> dict[str, int]:
    return {s.name: s.out_bits for s in lower_model(model)}


@pytest.mark.parametrize("arch", ["smp", "appnp", "gcn"])
@pytest.mark.parametrize("bits,msg,upd,bt", [(8, False, False, False), (4, True, False, False),
                                             (2, True, True, False), (8, True, True, True)])
def test_one_record_per_op_at_its_unit_and_widths(arch, bits, msg, upd, bt):
    model, _ = random_model(7, arch, bits=bits, graph=GRAPH, msg=msg, upd=upd, steps=3)
    if bt:
        model = _with_truncation(model)
    wl = ModelWorkload.from_model(model)
    d = compare(wl.graph, preset("balanced", agg_units=4), workload=wl)
    widths = _stored_widths(model)
    own = d["results"][wl.precision]
    assert own["widths"] == "as stored"
    assert len(own["ops"]) == len(model.ops)
    for i, (op, rec) in enumerate(zip(model.ops, own["ops"])):
        assert rec["index"] == i
        _check_record(op, rec, widths)
        assert rec["bound"] in ("compute", "memory") and rec["cycles"] > 0 and rec["energy_j"] > 0
    fp = d["results"]["fp32"]
    assert fp["widths"] == "replaced" and [o["op"] for o in fp["ops"]] == [op.op for op in model.ops]
    assert all(o["widths"]["float"] for o in fp["ops"])
    rep = "int4" if wl.precision == "int8" else "int8"
    b = int(rep[3:])
    assert d["results"][rep]["widths"] == "replaced"
    assert all(o["widths"]["in_bits"] == [b] * len(o["widths"]["in_bits"])
               for o in d["results"][rep]["ops"] if o["op"] != "input")
    # the model's own graph, self loops and duplicates included
    assert d["graph"]["num_edges"] == model.tensors["graph.indices"].size
    assert d["graph_hash"] == model.graph["hash"] and not d["stand_in"]


def test_weight_width_is_the_narrowest_that_holds_the_codes():
    assert code_bits(np.array([0, 3, 1]), 2) == 2
    assert code_bits(np.array([0, 15]), 0) == 4
    assert code_bits(np.array([-2, 1]), 0) == 2
    assert code_bits(np.array([-128, 127]), 0) == 8


def test_cli_estimates_a_model_file_and_checks_the_graph_hash(tmp_path, capsys):
    model, x = random_model(3, "smp", bits=2, graph=GRAPH, msg=True, steps=2)
    path = mi.save(model, tmp_path / "m.qim")
    out = tmp_path / "e.json"
    assert main(["estimate", str(path), "--design", "edge", "--json", str(out), "--markdown", str(tmp_path / "e.md"),
                 "--roofline", str(tmp_path / "r.png")]) == 0
    d = json.loads(out.read_text())
    assert d["model"]["path"] == str(path)
    assert d["model"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert d["graph_hash"] == model.graph["hash"] and d["design"]["name"] == "edge"
    for p in ("fp32", "int8", "int4", "int2"):
        r = d["results"][p]
        for k in ("cycles", "seconds", "energy_j", "speedup_vs_fp32", "energy_ratio_vs_fp32"):
            assert k in r, (p, k)
        assert [o["index"] for o in r["ops"]] == list(range(len(model.ops)))
        for o in r["ops"]:
            assert set(o) >= {"index", "op", "unit", "cycles", "bound", "dram_bytes", "energy_j"}
    md = (tmp_path / "e.md").read_text()
    assert str(path) in md and "| propagate | agg_unit |" in md and "| add | vector_unit |" in md
    # a dataset whose graph is not the model's is refused, and nothing is written
    ei = np.stack([np.arange(model.graph["num_nodes"]), np.zeros(model.graph["num_nodes"], dtype=np.int64)])
    np.savez(tmp_path / "other.npz", edge_index=ei, x=np.zeros((model.graph["num_nodes"], model.graph["num_features"])))
    bad = tmp_path / "bad.json"
    assert main(["estimate", str(path), "--dataset", str(tmp_path / "other.npz"), "--json", str(bad)]) == 2
    assert "graph hash" in capsys.readouterr().err and not bad.exists()


def test_sweep_of_a_model_file(tmp_path, capsys):
    model, _ = random_model(5, "appnp", bits=4, graph=GRAPH, steps=2)
    path = mi.save(model, tmp_path / "m.qim")
    csv = tmp_path / "s.csv"
    assert main(["sweep", str(path), "--vary", "agg_units=2,8", "--csv", str(csv), "--no-dask",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    lines = csv.read_text().splitlines()
    assert len(lines) == 1 + 2 * 4 and "agg_bound" in lines[0]
    assert main(["sweep", str(path), "--workload", "gcn", "--csv", str(tmp_path / "x.csv"), "--no-dask"]) == 2
