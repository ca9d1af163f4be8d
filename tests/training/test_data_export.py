"""``quagga data export``: the synthetic graph (or any dataset) as an .npz graph file."""

from __future__ import annotations

import json

import numpy as np

from quagga.cli import main
from quant.model_ir import graph_hash
from training.data import load_dataset, load_file

ARGS = ["--synthetic-nodes", "60", "--synthetic-features", "5", "--synthetic-classes", "3",
        "--synthetic-seed", "4"]


def test_export_synthetic_round_trips(tmp_path, capsys):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["data", "export", *ARGS, "--out", str(a)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert main(["data", "export", *ARGS, "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()                 # fixed timestamps: same bytes
    want = load_dataset("synthetic", synthetic_args={"num_nodes": 60, "num_features": 5,
                                                     "num_classes": 3, "seed": 4})
    got = load_file(a)
    for k in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert np.array_equal(getattr(got, k).numpy(), getattr(want, k).numpy()), k
    assert info["graph_hash"] == graph_hash(want.edge_index.numpy(), 60, 5)
    assert info["num_nodes"] == 60 and info["num_edges"] == want.num_edges


def test_export_needs_an_action_and_npz(tmp_path):
    assert main(["data"]) == 2
    assert main(["data", "export", "--out", str(tmp_path / "g.txt")]) == 2


def test_synthetic_model_names_its_graph(tmp_path, capsys):
    # a model trained on a non-default synthetic graph records its parameters, so
    # `quagga data export --from-model` rebuilds the same graph (same hash)
    run = tmp_path / "run"
    assert main(["train", "--synthetic-nodes", "70", "--synthetic-features", "6", "--epochs", "2",
                 "--layers", "2", "--hidden", "8", "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    g = tmp_path / "g.npz"
    assert main(["data", "export", "--from-model", str(run / "model.qim"), "--out", str(g)]) == 0
    info = json.loads(capsys.readouterr().out)
    from quant.model_ir import load

    assert info["num_nodes"] == 70 and info["graph_hash"] == load(run / "model.qim").graph["hash"]
