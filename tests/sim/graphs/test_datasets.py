"""Graph structures for the cycle model, read without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.graphs.datasets import DatasetError, load_graph
from sim.graphs.synthetic import synthetic_graph

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name,nodes,edges,feats,classes", [
    ("Cora", 2708, 10556, 1433, 7), ("citeseer", 3327, 9104, 3703, 6),
    ("Tolokers", 11758, 1038000, 10, 2), ("Minesweeper", 10000, 78804, 7, 2)])
def test_datasets_match_pyg_counts(data_root, name, nodes, edges, feats, classes):
    g = load_graph(name, data_root)
    assert (g.num_nodes, g.num_edges, g.num_features, g.num_classes) == (nodes, edges, feats, classes)
    assert np.all(np.diff(g.indptr) >= 0)


def test_loader_does_not_import_torch(data_root):
    code = ("import sys; from sim.graphs.datasets import load_graph; import sim.accel.accelerator; "
            f"load_graph('Cora', {str(data_root)!r}); "
            "bad = sorted(m for m in ('torch', 'torch_geometric', 'amaranth') if m in sys.modules); "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_unknown_and_missing_datasets(tmp_path):
    with pytest.raises(DatasetError, match="unknown"):
        load_graph("PubMed", tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_graph("Cora", tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_graph(str(tmp_path / "x.npz"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, foo=np.zeros(3))
    with pytest.raises(DatasetError, match="edges"):
        load_graph(str(bad))


def test_npz_path_and_synthetic(tmp_path):
    p = tmp_path / "g.npz"
    np.savez(p, edge_index=np.array([[0, 1, 2, 2], [1, 2, 0, 1]]), num_nodes=4, num_features=8)
    g = load_graph(str(p))
    assert (g.num_nodes, g.num_edges, g.num_features) == (4, 4, 8)
    assert g.indptr.tolist() == [0, 1, 3, 4, 4] and g.indices.tolist() == [2, 0, 2, 1]
    a = load_graph("synthetic:uniform:1000:5000:7")
    b = synthetic_graph(1000, 5000, kind="uniform", seed=7, duplicates=False)
    assert np.array_equal(a.indices, b.indices) and a.num_edges == 5000
    p = synthetic_graph(2000, 20000, kind="powerlaw", seed=1)
    assert p.num_edges == 20000 and p.degrees.max() > 10 * p.degrees.mean()


def test_truncated_or_pickled_npz_is_refused_naming_the_file(tmp_path):
    p = tmp_path / "g.npz"
    np.savez(p, edge_index=np.array([[0, 1], [1, 0]]), num_nodes=2)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="g.npz"):
        load_graph(str(p))
    q = tmp_path / "obj.npz"
    np.savez(q, edge_index=np.array([object()], dtype=object))
    with pytest.raises(DatasetError, match="obj.npz"):
        load_graph(str(q))
