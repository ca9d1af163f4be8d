"""CSR utilities: canonical order, validation, degree statistics, generators, hashing."""

from __future__ import annotations

import numpy as np
import pytest

from quant.errors import QuantError
from sim.graphs.csr import csr_from_edge_index, degree_stats, graph_hash, validate_csr
from sim.graphs.synthetic import synthetic_graph


def test_canonical_order_keeps_duplicates_and_self_loops():
    # edges (src, dst): duplicates (2->0 twice), a self loop 1->1, unsorted input
    ei = np.array([[2, 1, 0, 2, 1, 0],
                   [0, 1, 2, 0, 0, 0]])
    g = csr_from_edge_index(ei, 3)
    assert g.indptr.tolist() == [0, 4, 5, 6]
    assert g.indices.tolist() == [0, 1, 2, 2, 1, 0]
    # edge_perm maps CSR edges back to edge_index columns; stable for the duplicate pair
    assert g.edge_perm.tolist() == [5, 4, 0, 3, 1, 2]
    assert np.array_equal(ei[0][g.edge_perm], g.indices)
    assert g.num_nodes == 3 and g.num_edges == 6


def test_empty_and_zero_degree_rows():
    g = csr_from_edge_index(np.zeros((2, 0), dtype=np.int64), 4)
    assert g.indptr.tolist() == [0, 0, 0, 0, 0]
    s = degree_stats(g.indptr)
    assert s["zero_degree"] == 4 and s["max"] == 0


@pytest.mark.parametrize("ei, n, msg", [
    (np.array([[0, 5], [0, 1]]), 3, "source"),
    (np.array([[0, 1], [0, 3]]), 3, "destination"),
    (np.array([[0.0, 1.0], [0.0, 1.0]]), 3, "dtype"),
    (np.array([0, 1, 2]), 3, "shape"),
])
def test_edge_index_errors_name_the_field(ei, n, msg):
    with pytest.raises(QuantError, match=msg):
        csr_from_edge_index(ei, n)


@pytest.mark.parametrize("indptr, indices, msg", [
    ([1, 2], [0, 0], r"indptr\[0\]"),
    ([0, 2, 1], [0, 0], r"indptr\[2\]"),
    ([0, 3], [0, 0], r"indptr\[-1\]"),
    ([0, 2], [0, 7], "indices"),
])
def test_validate_csr_errors(indptr, indices, msg):
    with pytest.raises(QuantError, match=msg):
        validate_csr(np.array(indptr), np.array(indices), 3)


def test_degree_stats_values():
    s = degree_stats(np.array([0, 1, 1, 4, 8]))
    assert (s["num_nodes"], s["num_edges"], s["min"], s["max"], s["zero_degree"]) == (4, 8, 0, 4, 1)
    assert s["mean"] == 2.0


def test_hash_is_content_based():
    a = synthetic_graph(50, 200, seed=3)
    b = synthetic_graph(50, 200, seed=3)
    c = synthetic_graph(50, 200, seed=4)
    assert a.hash() == b.hash() != c.hash()
    assert graph_hash(a.indptr, a.indices, 50) != graph_hash(a.indptr, a.indices, 51)


def test_powerlaw_generator_is_skewed():
    g = synthetic_graph(1000, 8000, seed=1, kind="powerlaw")
    s = degree_stats(g.indptr)
    assert g.num_edges == 8000 and s["skewness"] > 2.0
    u = degree_stats(synthetic_graph(1000, 8000, seed=1).indptr)
    assert u["skewness"] < s["skewness"]
    with pytest.raises(QuantError, match="kind"):
        synthetic_graph(10, 10, seed=1, kind="nope")


@pytest.mark.parametrize("kind", ["uniform", "powerlaw"])
@pytest.mark.parametrize("self_loops,duplicates", [(True, True), (False, True), (True, False),
                                                   (False, False)])
def test_synthetic_flags(kind, self_loops, duplicates):
    g = synthetic_graph(30, 400, seed=2, kind=kind, self_loops=self_loops, duplicates=duplicates)
    assert g.num_edges == 400
    dst = np.repeat(np.arange(30), np.diff(g.indptr))
    if not self_loops:
        assert not (g.indices == dst).any()
    if not duplicates:
        assert np.unique(dst * 30 + g.indices).size == 400
    again = synthetic_graph(30, 400, seed=2, kind=kind, self_loops=self_loops, duplicates=duplicates)
    assert np.array_equal(g.indices, again.indices) and np.array_equal(g.indptr, again.indptr)


def test_synthetic_refuses_more_distinct_edges_than_fit():
    with pytest.raises(QuantError, match="num_edges"):
        synthetic_graph(3, 7, seed=0, self_loops=False, duplicates=False)
