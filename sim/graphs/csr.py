"""The destination-sorted CSR graph type: construction (through :func:`quant.csr.csr_from_edge_index`),
validation, degree statistics and a content hash.

numpy only.  The canonical order is the order the aggregation unit streams edges in:
rows (destinations) ascending, and inside a row the edges sorted by source, stably, so
duplicate edges and self loops are kept exactly as given.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from quant.aggregate import check_csr
from quant.csr import csr_from_edge_index as build_csr
from quant.errors import invalid

__all__ = ["CSRGraph", "CSRShape", "csr_from_edge_index", "degree_stats", "graph_hash", "validate_csr"]


class CSRShape:
    """Sizes and degrees of anything holding a destination-sorted CSR as ``indptr`` (N + 1,)
    and ``indices`` (E,) attributes (graphs, dataset structures, golden cases)."""

    indptr: np.ndarray
    indices: np.ndarray

    @property
    def num_nodes(self) -> int:
        """Number of destination rows ``N``."""
        return int(self.indptr.size - 1)

    @property
    def num_edges(self) -> int:
        """Number of edges ``E``."""
        return int(self.indices.size)

    @property
    def degrees(self) -> np.ndarray:
        """In-degree of every row, int64 (N,)."""
        return np.diff(self.indptr)


@dataclass(frozen=True, eq=False)
class CSRGraph(CSRShape):
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
    """:func:`quant.csr.csr_from_edge_index` as a :class:`CSRGraph` (``edge_perm`` is its ``perm``)."""
    indptr, indices, perm = build_csr(edge_index, num_nodes, num_src)
    n_src = int(num_nodes if num_src is None else num_src)
    return CSRGraph(indptr=indptr, indices=indices, num_src=n_src, edge_perm=perm)


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
