"""CSR graph utilities: canonical destination-sorted CSR, validation, degree statistics,
seeded synthetic graphs and a content hash.

numpy only.  The canonical order is the order the aggregation unit streams edges in:
rows (destinations) ascending, and inside a row the edges sorted by source, stably, so
duplicate edges and self loops are kept exactly as given.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from quant.aggregate import check_csr
from quant.errors import QuantError, invalid

__all__ = ["CSRGraph", "csr_from_edge_index", "degree_stats", "graph_hash", "synthetic_graph",
           "validate_csr"]


@dataclass(frozen=True, eq=False)
class CSRGraph:
    """A destination-sorted CSR graph.

    Attributes
    ----------
    indptr : np.ndarray of int64, shape (N + 1,)
        Row pointers; row ``i`` (destination ``i``) owns edges ``indptr[i]:indptr[i+1]``.
    indices : np.ndarray of int64, shape (E,)
        Source node of each edge.
    num_src : int
        Number of source nodes (``N_src``; equal to ``N`` for a homogeneous graph).
    edge_perm : np.ndarray of int64, shape (E,) or None
        For a graph built from an ``edge_index``: position of each CSR edge in the original
        edge list, so per-edge arrays (edge weights) can be reordered with ``w[edge_perm]``.
    """

    indptr: np.ndarray
    indices: np.ndarray
    num_src: int
    edge_perm: np.ndarray | None = None

    @property
    def num_nodes(self) -> int:
        """Number of destination rows ``N``."""
        return int(self.indptr.size - 1)

    @property
    def num_edges(self) -> int:
        return int(self.indices.size)

    @property
    def degrees(self) -> np.ndarray:
        """In-degree of every row, int64 (N,)."""
        return np.diff(self.indptr)

    def hash(self) -> str:
        """Content hash of the CSR structure (see :func:`graph_hash`)."""
        return graph_hash(self.indptr, self.indices, self.num_src)


def validate_csr(indptr: np.ndarray, indices: np.ndarray, num_src: int) -> tuple[np.ndarray, np.ndarray]:
    """Check a CSR structure and return it as contiguous int64 arrays.

    Raises
    ------
    QuantError
        Naming the first offending field and value (non-integer dtype, wrong shape,
        ``indptr`` not starting at 0 or decreasing, ``indptr[-1] != E``, an index out of range).
    """
    for name, arr in (("indptr", indptr), ("indices", indices)):
        a = np.asarray(arr)
        if a.dtype.kind not in "iu":
            raise invalid(f"{name}.dtype", str(a.dtype), "an integer dtype")
    if isinstance(num_src, bool) or not isinstance(num_src, (int, np.integer)) or num_src < 0:
        raise invalid("num_src", num_src, "a non-negative int")
    ip = np.ascontiguousarray(indptr, dtype=np.int64)
    ix = np.ascontiguousarray(indices, dtype=np.int64)
    if ix.ndim != 1:
        raise invalid("indices.shape", ix.shape, "(E,)")
    check_csr(ip, ix, int(num_src))
    return ip, ix


def csr_from_edge_index(edge_index: np.ndarray, num_nodes: int, num_src: int | None = None) -> CSRGraph:
    """Canonical destination-sorted CSR from a PyG-style ``edge_index``.

    Parameters
    ----------
    edge_index : integer array (2, E)
        Row 0 holds sources, row 1 destinations (PyG's ``source_to_target`` flow).
    num_nodes : int
        Number of destination rows ``N``.
    num_src : int, optional
        Number of source nodes; defaults to ``num_nodes``.

    Returns
    -------
    CSRGraph
        Edges sorted by ``(dst, src)`` with a stable sort; duplicates and self loops kept.
        ``edge_perm`` maps each CSR edge to its column in ``edge_index``.
    """
    ei = np.asarray(edge_index)
    if ei.dtype.kind not in "iu":
        raise invalid("edge_index.dtype", str(ei.dtype), "an integer dtype")
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise invalid("edge_index.shape", ei.shape, "(2, E)")
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)) or num_nodes < 0:
        raise invalid("num_nodes", num_nodes, "a non-negative int")
    num_src = int(num_nodes if num_src is None else num_src)
    src = ei[0].astype(np.int64)
    dst = ei[1].astype(np.int64)
    if dst.size and (dst.min() < 0 or dst.max() >= num_nodes):
        bad = int(dst[(dst < 0) | (dst >= num_nodes)][0])
        raise invalid("edge_index[1] (destination)", bad, f"in 0..{int(num_nodes) - 1}")
    if src.size and (src.min() < 0 or src.max() >= num_src):
        bad = int(src[(src < 0) | (src >= num_src)][0])
        raise invalid("edge_index[0] (source)", bad, f"in 0..{num_src - 1}")
    perm = np.lexsort((src, dst)).astype(np.int64)  # primary key dst, then src; lexsort is stable
    counts = np.bincount(dst, minlength=int(num_nodes)).astype(np.int64)
    indptr = np.zeros(int(num_nodes) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return CSRGraph(indptr=indptr, indices=np.ascontiguousarray(src[perm]), num_src=num_src,
                    edge_perm=perm)


def degree_stats(indptr: np.ndarray) -> dict:
    """Summary of the in-degree distribution.

    Returns
    -------
    dict
        ``num_nodes``, ``num_edges``, ``min``, ``max``, ``mean``, ``median``, ``p99``,
        ``zero_degree`` (rows with no edges) and ``skewness`` (Fisher, 0 for a constant).
    """
    ip = np.asarray(indptr, dtype=np.int64)
    d = np.diff(ip)
    if d.size == 0:
        return {"num_nodes": 0, "num_edges": 0, "min": 0, "max": 0, "mean": 0.0, "median": 0.0,
                "p99": 0.0, "zero_degree": 0, "skewness": 0.0}
    df = d.astype(np.float64)
    sd = df.std()
    skew = float(((df - df.mean()) ** 3).mean() / sd ** 3) if sd > 0 else 0.0
    return {"num_nodes": int(d.size), "num_edges": int(ip[-1]), "min": int(d.min()),
            "max": int(d.max()), "mean": float(df.mean()), "median": float(np.median(df)),
            "p99": float(np.percentile(df, 99)), "zero_degree": int((d == 0).sum()),
            "skewness": skew}


def graph_hash(indptr: np.ndarray, indices: np.ndarray, num_src: int) -> str:
    """SHA-256 (hex, first 16 digits) of the canonical CSR: int64 little-endian ``indptr``,
    ``indices`` and ``num_src``.  Equal graphs in canonical order hash equally."""
    h = hashlib.sha256()
    h.update(b"quagga-csr-v1")
    h.update(np.int64(num_src).astype("<i8").tobytes())
    h.update(np.ascontiguousarray(indptr, dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(indices, dtype="<i8").tobytes())
    return h.hexdigest()[:16]


def synthetic_graph(num_nodes: int, num_edges: int, seed: int, kind: str = "uniform",
                    alpha: float = 2.1, max_degree: int | None = None) -> CSRGraph:
    """Seeded random graph for benchmarks and fuzzing.

    Parameters
    ----------
    num_nodes, num_edges : int
        ``N`` and the exact number of edges ``E``.
    seed : int
        Seed of ``np.random.default_rng``.
    kind : {"uniform", "powerlaw"}
        ``uniform``: destinations and sources uniform at random.  ``powerlaw``: destination
        in-degrees follow a Zipf-like law with exponent ``alpha`` (a few hub rows), sources
        uniform.
    max_degree : int, optional
        Cap on the in-degree (``powerlaw`` only); excess edges are moved to random rows
        that still have room.

    Returns
    -------
    CSRGraph (canonical order; duplicates and self loops may occur, as in real data)
    """
    if num_nodes < 1 or num_edges < 0:
        raise invalid("num_nodes, num_edges", (num_nodes, num_edges), "N >= 1 and E >= 0")
    rng = np.random.default_rng(seed)
    src = rng.integers(0, num_nodes, size=num_edges, dtype=np.int64)
    if kind == "uniform":
        dst = rng.integers(0, num_nodes, size=num_edges, dtype=np.int64)
    elif kind == "powerlaw":
        if not alpha > 1:
            raise invalid("alpha", alpha, "> 1")
        weights = (np.arange(1, num_nodes + 1, dtype=np.float64)) ** (-1.0 / (alpha - 1.0))
        weights /= weights.sum()
        counts = rng.multinomial(num_edges, weights).astype(np.int64)
        if max_degree is not None:
            if max_degree * num_nodes < num_edges:
                raise invalid("max_degree", max_degree, f">= E / N = {num_edges / num_nodes:.1f}")
            excess = int(np.maximum(counts - max_degree, 0).sum())
            counts = np.minimum(counts, max_degree)
            while excess:
                room = np.flatnonzero(counts < max_degree)
                pick = rng.choice(room, size=min(excess, room.size), replace=False)
                counts[pick] += 1
                excess -= pick.size
        counts = counts[rng.permutation(num_nodes)]  # hubs at random positions
        dst = np.repeat(np.arange(num_nodes, dtype=np.int64), counts)
    else:
        raise invalid("kind", kind, "one of ['uniform', 'powerlaw']")
    return csr_from_edge_index(np.stack([src, dst]), num_nodes)


def _check_is_graph(obj: object) -> CSRGraph:
    if not isinstance(obj, CSRGraph):
        raise QuantError(f"graph must be a CSRGraph, not {type(obj).__name__}")
    return obj
