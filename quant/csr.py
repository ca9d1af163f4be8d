"""The project's one CSR builder: a PyG-style ``edge_index`` to the destination-sorted CSR
that the trainer, the model file, the simulator, the aggregation unit and the cycle model
all use.  numpy only.

Canonical order: rows (destinations) ascending and, inside a row, edges by source, with a
stable sort, so self loops and duplicate edges are kept exactly as given (``A_hat`` is built
from the edge list as it is; see ``docs/numerics.md``).
"""

from __future__ import annotations

import numpy as np

from quant.errors import invalid

__all__ = ["csr_from_edge_index"]


def csr_from_edge_index(edge_index: np.ndarray, num_nodes: int,
                        num_src: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Destination-sorted CSR of ``edge_index`` (messages flow source -> destination).

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
    indptr : int64 (N + 1,)
        Row pointers; row ``i`` owns edges ``indptr[i]:indptr[i + 1]``.
    indices : int64 (E,)
        Source of each edge in canonical order.
    perm : int64 (E,)
        Column of ``edge_index`` each CSR edge came from (reorders per-edge arrays: ``w[perm]``).

    Raises
    ------
    QuantError
        Naming the field and value: a non-integer dtype, a shape other than (2, E), a
        negative ``num_nodes``, or an endpoint out of range.
    """
    ei = np.asarray(edge_index)
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise invalid("edge_index.shape", ei.shape, "(2, E)")
    if ei.dtype.kind not in "iu":
        raise invalid("edge_index.dtype", str(ei.dtype), "an integer dtype")
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)) or num_nodes < 0:
        raise invalid("num_nodes", num_nodes, "a non-negative int")
    n = int(num_nodes)
    n_src = n if num_src is None else int(num_src)
    src = ei[0].astype(np.int64)
    dst = ei[1].astype(np.int64)
    if dst.size and (dst.min() < 0 or dst.max() >= n):
        bad = int(dst[(dst < 0) | (dst >= n)][0])
        raise invalid("edge_index[1] (destination)", bad, f"in 0..{n - 1}")
    if src.size and (src.min() < 0 or src.max() >= n_src):
        bad = int(src[(src < 0) | (src >= n_src)][0])
        raise invalid("edge_index[0] (source)", bad, f"in 0..{n_src - 1}")
    perm = np.lexsort((src, dst)).astype(np.int64)  # primary key dst, then src; stable
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(dst, minlength=n), out=indptr[1:])
    return indptr, np.ascontiguousarray(src[perm]), perm
