"""The project's one seeded synthetic-graph generator (benchmarks, fuzzing, the cycle model's
``synthetic:...`` datasets).  numpy only.

Endpoints are drawn uniformly (``kind="uniform"``) or from a power law over node ranks
(``kind="powerlaw"``, a Chung-Lu style skew on both endpoints that gives hub rows and hot
source rows, node ids shuffled so hubs are spread out).  Self loops and duplicate edges are
kept or removed by explicit flags; the graph always has exactly ``num_edges`` edges.
"""

from __future__ import annotations

import numpy as np

from quant.errors import invalid
from sim.graphs.csr import CSRGraph, csr_from_edge_index

__all__ = ["KINDS", "sorted_unique", "synthetic_graph"]

KINDS = ("uniform", "powerlaw")


def synthetic_graph(num_nodes: int, num_edges: int, *, seed: int = 0, kind: str = "uniform",
                    self_loops: bool = True, duplicates: bool = True,
                    exponent: float = 2.1) -> CSRGraph:
    """A seeded random directed graph in canonical CSR order.

    Parameters
    ----------
    num_nodes, num_edges : int
        ``N >= 1`` and the exact number of edges ``E >= 0``.
    seed : int
        Seed of ``np.random.default_rng``; the same arguments give the same graph.
    kind : {"uniform", "powerlaw"}
        ``powerlaw``: each endpoint is node rank ``r`` with density ``r**(-1/(exponent-1))``.
    self_loops : bool
        Keep edges ``i -> i`` as drawn (True) or redraw them (False).
    duplicates : bool
        Keep repeated ``(src, dst)`` pairs as drawn (True) or make every edge distinct (False).
    exponent : float
        Power-law exponent, ``> 1`` and ``!= 2``.

    Returns
    -------
    CSRGraph
        ``N`` rows, ``E`` edges, ``edge_perm`` relative to the drawn edge order.

    Raises
    ------
    QuantError
        Naming the field and value: ``N < 1``, ``E < 0``, an unknown ``kind``, a bad
        ``exponent``, or more distinct edges than the flags allow.
    """
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)) or num_nodes < 1:
        raise invalid("num_nodes", num_nodes, "an int >= 1")
    if isinstance(num_edges, bool) or not isinstance(num_edges, (int, np.integer)) or num_edges < 0:
        raise invalid("num_edges", num_edges, "an int >= 0")
    if kind not in KINDS:
        raise invalid("kind", kind, f"one of {list(KINDS)}")
    n, e = int(num_nodes), int(num_edges)
    if not duplicates:
        room = n * n - (0 if self_loops else n)
        if e > room:
            raise invalid("num_edges", e, f"<= {room} distinct edges on {n} nodes")
    rng = np.random.default_rng(seed)
    if kind == "powerlaw":
        if not exponent > 1.0 or exponent == 2.0:
            raise invalid("exponent", exponent, "> 1 and != 2")
        a = 1.0 - 1.0 / (exponent - 1.0)  # rank density x**(a-1) on [1, N+1); a != 0
        top = (n + 1.0) ** a - 1.0
        perm = rng.permutation(n)

        def draw(m: int) -> np.ndarray:  # inverse CDF of the continuous rank density
            r = (1.0 + rng.random(m) * top) ** (1.0 / a)
            return perm[np.clip(r.astype(np.int64) - 1, 0, n - 1)]
    else:
        def draw(m: int) -> np.ndarray:
            return rng.integers(0, n, size=m, dtype=np.int64)

    if duplicates and self_loops:
        src = draw(e)
        dst = draw(e)
    else:
        key = np.zeros(0, dtype=np.int64)  # dst * N + src
        factor = 1.15
        while key.size < e:  # oversample, filter, and draw again until enough edges
            m = int((e if not duplicates else e - key.size) * factor) + 16
            s, d = draw(m), draw(m)
            if not self_loops:
                s, d = s[s != d], d[s != d]
            key = np.concatenate([key, d.astype(np.int64) * n + s])
            if not duplicates:
                key = sorted_unique(key)
            factor *= 2
        if key.size > e:
            key = np.sort(key[rng.permutation(key.size)[:e]])
        dst, src = key // n, key % n
    return csr_from_edge_index(np.stack([src, dst]), n)


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique(a)`` of a 1-D int array (sorted distinct values) by sort and compare, which
    is several times faster than numpy's hash-based unique on millions of keys."""
    a = np.sort(a)
    if a.size < 2:
        return a
    keep = np.empty(a.size, dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]
