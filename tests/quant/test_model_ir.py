"""quant.model_ir: execution, save/load round trip, determinism and refusal of bad files."""

from __future__ import annotations


import numpy as np
import pytest
from model_files import rewrite_header

from quant.csr import csr_from_edge_index

from quant import model_ir as mi
from quant.aggregate import AggregationParams, Requantizer
from quant.reference import derive_multiplier
from quant.spec import QuantSpec


def _toy_model(seed: int = 0) -> tuple[mi.IntModel, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, f, c = 6, 5, 3
    ei = np.array([[0, 1, 2, 3, 4, 5, 0, 1], [1, 2, 3, 4, 5, 0, 0, 1]])
    ei = np.concatenate([ei, np.stack([np.arange(n)] * 2)], 1)
    indptr, indices, _ = csr_from_edge_index(ei, n)
    s4 = QuantSpec(4)
    ops = [
        mi.InputOp("x", QuantSpec(8), 0.01, 0, "row_sum"),
        mi.LinearOp("x", "h", "lin.w", 128, 0, Requantizer(*derive_multiplier(0.01, 16), 3, s4), bias="lin.b"),
        mi.ReluOp("h", "h1", 3),
        mi.PropagateOp("h1", "p", "ew", AggregationParams(
            s4, 3, QuantSpec(8), 0, 20, Requantizer(*derive_multiplier(1 / 255, 16), 3, s4))),
        mi.AddOp("p", "h1", "y", 3, 40000, 3, -10000, 16, 3, s4),
        mi.ArgmaxOp("y", "pred"),
    ]
    tensors = {"lin.w": rng.integers(0, 256, (c, f)).astype(np.int32),
               "lin.b": np.arange(c, dtype=np.int32), "graph.indptr": indptr,
               "graph.indices": indices, "ew": rng.integers(0, 256, indices.size).astype(np.int32)}
    graph = {"num_nodes": n, "num_features": f, "num_edges": ei.shape[1], "hash": mi.graph_hash(ei, n, f)}
    return mi.IntModel(ops, tensors, graph, "pred", {"dataset": "toy"}), rng.random((n, f))


def test_round_trip_is_exact_and_deterministic(tmp_path):
    model, x = _toy_model()
    env = model.run(x)
    a, b = tmp_path / "a.qim", tmp_path / "b.qim"
    mi.save(model, a)
    loaded = mi.load(a, expect_graph_hash=model.graph["hash"])
    env2 = loaded.run(x)
    assert set(env) == set(env2)
    for k in env:
        assert np.array_equal(env[k], env2[k]), k
    mi.save(loaded, b)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("where", [0, 20, 200, -40, -1])
def test_flipped_byte_is_refused(tmp_path, where):
    model, _ = _toy_model()
    p = mi.save(model, tmp_path / "m.qim")
    data = bytearray(p.read_bytes())
    data[where] ^= 0x10
    p.write_bytes(bytes(data))
    with pytest.raises(mi.ModelFileError, match="corrupt|not a Quagga model"):
        mi.load(p)


def test_truncated_file_is_refused(tmp_path):
    model, _ = _toy_model()
    p = mi.save(model, tmp_path / "m.qim")
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(mi.ModelFileError, match="corrupt or truncated"):
        mi.load(p)


@pytest.mark.parametrize("field,value,match", [
    ("contract_version", 999, "contract_version must be"),
    ("format_version", 0, "format_version must be"),
])
def test_other_version_is_refused(tmp_path, field, value, match):
    model, _ = _toy_model()
    p = mi.save(model, tmp_path / "m.qim")
    rewrite_header(p, **{field: value})
    with pytest.raises(mi.ModelFileError, match=match):
        mi.load(p)


def test_different_graph_is_refused(tmp_path):
    model, _ = _toy_model()
    p = mi.save(model, tmp_path / "m.qim")
    other = mi.graph_hash(np.array([[0], [1]]), 6, 5)
    with pytest.raises(mi.ModelFileError, match="graph hash must be"):
        mi.load(p, expect_graph_hash=other)


def test_wrong_feature_shape_is_refused():
    model, x = _toy_model()
    with pytest.raises(ValueError, match="x.shape"):
        model.run(x[:, :3])


def test_graph_hash_ignores_edge_order_but_not_duplicates():
    ei = np.array([[0, 1, 2], [1, 2, 0]])
    assert mi.graph_hash(ei, 3, 4) == mi.graph_hash(ei[:, ::-1], 3, 4)
    assert mi.graph_hash(ei, 3, 4) != mi.graph_hash(np.concatenate([ei, ei[:, :1]], 1), 3, 4)
    assert mi.graph_hash(ei, 3, 4) != mi.graph_hash(ei, 4, 4)


def test_csr_from_edges_is_destination_sorted():
    ei = np.array([[2, 0, 1, 1], [0, 2, 0, 2]])
    indptr, indices, perm = csr_from_edge_index(ei, 3)
    assert indptr.tolist() == [0, 2, 2, 4]
    assert indices.tolist() == [1, 2, 0, 1]
    assert np.array_equal(ei[0, perm], indices)


def test_truncate_op_round_trips_and_snaps_to_bt_levels(tmp_path):
    model, x = _toy_model()
    # insert a BT* truncation of the 8-bit input codes; nothing consumes it but it must run
    model.ops.insert(1, mi.TruncateOp("x", "x_bt", skew=2))
    env = model.run(x)
    assert set(np.unique(env["x_bt"])) <= {0, 85, 170, 255}
    p = mi.save(model, tmp_path / "m.qim")
    assert np.array_equal(mi.load(p).run(x)["x_bt"], env["x_bt"])
    with pytest.raises(ValueError, match="skew"):
        mi.TruncateOp("a", "b", skew=1000)
