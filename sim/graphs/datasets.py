"""Dataset structure for the cycle and energy model: torch-free readers and the dataset names.

The cycle model needs only the structure of a graph (number of nodes, the destination-sorted
CSR adjacency) and the feature / class counts of the dataset.  This module reads them straight
from the raw files PyG uses (no torch): the Planetoid pickles for Cora and CiteSeer, the
``*.npz`` files of the heterophilous-graph datasets (Tolokers, Minesweeper), any ``.npz`` with an
``edges`` (E, 2) or ``edge_index`` (2, E) array, and seeded synthetic graphs.

Edges are directed ``src -> dst``; row ``i`` of the CSR holds the in-neighbours of ``i``
(the sources the aggregation unit gathers for destination ``i``), as in
:func:`quant.aggregate.aggregate_reference`.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quant.csr import csr_from_edge_index
from quant.errors import QuantError
from quant.graph_arrays import GraphFileError, read_npz
from sim.graphs.csr import CSRShape
from sim.graphs.synthetic import sorted_unique, synthetic_graph

log = logging.getLogger(__name__)

#: Environment variable holding the dataset root (PyG raw layout).
DATA_ROOT_ENV = "QUAGGA_DATA_ROOT"


class DatasetError(QuantError):
    """A dataset that cannot be found or read; the message names it."""


@dataclass(frozen=True)
class GraphStructure(CSRShape):
    """Destination-sorted CSR structure of a graph plus its feature/class counts.

    Parameters
    ----------
    name : str
        Dataset label used in reports.
    indptr : np.ndarray of int64, shape (N + 1,)
        Row pointers; row ``i`` lists the in-neighbours (sources) of node ``i``.
    indices : np.ndarray of int64, shape (E,)
        Source node of each edge, sorted by destination (row) and, within a row, by source.
    num_features : int
        Input feature count of the dataset (the width of the first linear layer).
    num_classes : int
        Output classes (the width propagated by APPNP/SMP).
    """

    name: str
    indptr: np.ndarray
    indices: np.ndarray
    num_features: int
    num_classes: int

    def __post_init__(self) -> None:
        ip = np.asarray(self.indptr, dtype=np.int64)
        ix = np.asarray(self.indices, dtype=np.int64)
        if ip.ndim != 1 or ip.size < 2 or ip[0] != 0 or ip[-1] != ix.size or (np.diff(ip) < 0).any():
            raise DatasetError(f"graph {self.name!r}: indptr must be a non-decreasing (N+1,) array "
                               f"from 0 to len(indices)={ix.size}")
        n = ip.size - 1
        if ix.size and (ix.min() < 0 or ix.max() >= n):
            raise DatasetError(f"graph {self.name!r}: indices must be in 0..{n - 1}, "
                               f"not {int(ix.min())}..{int(ix.max())}")
        for f in ("num_features", "num_classes"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise DatasetError(f"graph {self.name!r}: {f} must be a positive int, not {v!r}")
        object.__setattr__(self, "indptr", ip)
        object.__setattr__(self, "indices", ix)
        object.__setattr__(self, "num_features", int(self.num_features))
        object.__setattr__(self, "num_classes", int(self.num_classes))

    def summary(self) -> dict:
        deg = self.degrees
        return {"name": self.name, "num_nodes": self.num_nodes, "num_edges": self.num_edges,
                "num_features": self.num_features, "num_classes": self.num_classes,
                "max_degree": int(deg.max()) if deg.size else 0,
                "mean_degree": float(deg.mean()) if deg.size else 0.0,
                "zero_degree_rows": int((deg == 0).sum())}


def distinct_csr(src: np.ndarray, dst: np.ndarray, num_nodes: int, *,
                 drop_self_loops: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """CSR ``(indptr (N+1,), indices (E',))`` of the distinct edges ``src -> dst`` (E,), as
    the readers build a dataset's structure (duplicates removed, self loops optionally too),
    through :func:`quant.csr.csr_from_edge_index`."""
    src = np.asarray(src, dtype=np.int64).ravel()
    dst = np.asarray(dst, dtype=np.int64).ravel()
    if src.shape != dst.shape:
        raise DatasetError(f"edge arrays must have one shape, not src {src.shape} / dst {dst.shape}")
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= num_nodes):
        raise DatasetError(f"edge endpoints must be in 0..{num_nodes - 1}")
    if drop_self_loops:
        keep = src != dst
        src, dst = src[keep], dst[keep]
    key = sorted_unique(dst * num_nodes + src)
    indptr, indices, _ = csr_from_edge_index(np.stack([key % num_nodes, key // num_nodes]), num_nodes)
    return indptr, indices


# ---------------------------------------------------------------------------- readers
#: Planetoid feature/class counts (as PyG prints them; shared/datasets/README.md).  The
#: feature matrices are pickled scipy matrices, which this torch- and scipy-free reader skips.
_PLANETOID = {"cora": ("Cora", 1433, 7), "citeseer": ("CiteSeer", 3703, 6)}
_HETERO = {"tolokers": "tolokers", "minesweeper": "minesweeper"}


class _AdjacencyUnpickler(pickle.Unpickler):
    """Planetoid's ``ind.<name>.graph`` is a pickled ``defaultdict(list)`` of ints: this
    unpickler builds that and nothing else, so a crafted file cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "defaultdict"):
            import collections
            return collections.defaultdict
        if (module, name) in (("builtins", "list"), ("__builtin__", "list")):
            return list
        raise DatasetError(f"graph file refused: it asks for {module}.{name}, and a Planetoid "
                           "adjacency holds only a defaultdict of int lists")


def _read_planetoid(root: Path, key: str) -> GraphStructure:
    folder, n_feat, n_cls = _PLANETOID[key]
    path = root / folder / "raw" / f"ind.{key}.graph"
    if not path.is_file():
        raise DatasetError(f"dataset {folder!r}: file {str(path)!r} not found (data root {str(root)!r})")
    with path.open("rb") as fh:
        adj = _AdjacencyUnpickler(fh, encoding="latin1").load()  # {node: [neighbours]}
    num_nodes = max(max(adj), max((max(v) for v in adj.values() if v), default=0)) + 1
    src = np.fromiter((s for s, nb in adj.items() for _ in nb), dtype=np.int64)
    dst = np.fromiter((d for nb in adj.values() for d in nb), dtype=np.int64)
    # As PyG's Planetoid reader: drop self loops, remove duplicates.  The lists are
    # symmetric, so the in-neighbour CSR equals the out-neighbour one.
    indptr, indices = distinct_csr(src, dst, num_nodes, drop_self_loops=True)
    return GraphStructure(folder, indptr, indices, n_feat, n_cls)


def _read_npz(path: Path, name: str, *, undirected: bool) -> GraphStructure:
    if not path.is_file():
        raise DatasetError(f"dataset {name!r}: file {str(path)!r} not found")
    try:
        d = read_npz(path, f"dataset {name!r}: file")
    except GraphFileError as exc:
        raise DatasetError(str(exc)) from None
    files = set(d)
    if "edges" in files:
        e = np.asarray(d["edges"])
        if e.ndim != 2 or e.shape[1] != 2:
            raise DatasetError(f"dataset {name!r}: 'edges' must be (E, 2), not {e.shape}")
        src, dst = e[:, 0], e[:, 1]
    elif "edge_index" in files:
        e = np.asarray(d["edge_index"])
        if e.ndim != 2 or e.shape[0] != 2:
            raise DatasetError(f"dataset {name!r}: 'edge_index' must be (2, E), not {e.shape}")
        src, dst = e[0], e[1]
    else:
        raise DatasetError(f"dataset {name!r}: {str(path)!r} has neither 'edges' nor "
                           f"'edge_index' (keys: {sorted(files)})")
    if "node_features" in files:
        feats = d["node_features"].shape
        num_nodes, n_feat = int(feats[0]), int(feats[1])
    else:
        num_nodes = int(d["num_nodes"]) if "num_nodes" in files else int(max(src.max(), dst.max()) + 1)
        n_feat = int(d["num_features"]) if "num_features" in files else 64
    if "node_labels" in files:
        n_cls = int(np.asarray(d["node_labels"]).max()) + 1
    else:
        n_cls = int(d["num_classes"]) if "num_classes" in files else 2
    if undirected:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    indptr, indices = distinct_csr(src, dst, num_nodes)
    return GraphStructure(name, indptr, indices, max(n_feat, 1), max(n_cls, 2))


# ---------------------------------------------------------------------------- synthetic
_SYNTH = re.compile(r"^synthetic(?::(uniform|powerlaw))?(?::(\d+))?(?::(\d+))?(?::(\d+))?$")


# ---------------------------------------------------------------------------- dispatcher
KNOWN_DATASETS = ("Cora", "CiteSeer", "Tolokers", "Minesweeper",
                  "synthetic[:uniform|powerlaw[:NODES[:EDGES[:SEED]]]]", "PATH.npz")


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The dataset root: ``explicit``, else ``$QUAGGA_DATA_ROOT``, else ``./data``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env) if env else Path("data")


def load_graph(name: str, root: str | os.PathLike | None = None) -> GraphStructure:
    """Load the structure of dataset ``name`` (case-insensitive) without torch.

    ``name`` is one of Cora, CiteSeer, Tolokers, Minesweeper, a ``synthetic[:kind[:N[:E[:seed]]]]``
    spec (default ``synthetic:powerlaw:10000:100000:0``) or a path to an ``.npz`` file.

    Raises
    ------
    DatasetError
        Unknown name, missing or unreadable files.
    """
    if not isinstance(name, str) or not name:
        raise DatasetError(f"dataset must be a non-empty name, not {name!r}")
    m = _SYNTH.match(name.lower())
    if m:
        kind = m.group(1) or "powerlaw"
        n = int(m.group(2) or 10000)
        e = int(m.group(3) or 10 * n)
        seed = int(m.group(4) or 0)
        g = synthetic_graph(n, e, kind=kind, seed=seed, duplicates=False)
        return GraphStructure(f"synthetic-{kind}-{n}-{e}-s{seed}", g.indptr, g.indices, 64, 8)
    if name.lower().endswith(".npz"):
        p = Path(name)
        return _read_npz(p, p.stem, undirected=False)
    key = name.lower()
    r = data_root(root)
    if key in _PLANETOID:
        return _read_planetoid(r, key)
    if key in _HETERO:
        folder = _HETERO[key]
        g = _read_npz(r / folder / "raw" / f"{folder}.npz", name, undirected=True)
        return GraphStructure(folder.capitalize(), g.indptr, g.indices, g.num_features, g.num_classes)
    raise DatasetError(f"dataset {name!r} is unknown; known: {', '.join(KNOWN_DATASETS)}")


def dataset_graph_hash(name: str, root: str | os.PathLike | None = None) -> str:
    """The graph hash (:func:`quant.model_ir.graph_hash`) of dataset ``name`` as a model file
    records it: over the dataset's edges as loaded (before self loops are added), its node
    count and its input feature count.

    An ``.npz`` with ``edge_index`` (2, E) (and ``x`` (N, F)) is hashed as stored; a named
    dataset is hashed over its distinct edges, which is what PyG loads for the shipped
    datasets (they are coalesced).
    """
    from quant.model_ir import graph_hash

    if isinstance(name, str) and name.lower().endswith(".npz"):
        p = Path(name)
        if not p.is_file():
            raise DatasetError(f"dataset {name!r}: file not found")
        with np.load(p, allow_pickle=False) as d:
            if "edge_index" in d.files:
                ei = np.asarray(d["edge_index"])
                n = int(d["x"].shape[0]) if "x" in d.files else int(ei.max()) + 1
                f = int(d["x"].shape[1]) if "x" in d.files else load_graph(name, root).num_features
                return graph_hash(ei, n, f)
    g = load_graph(name, root)
    dst = np.repeat(np.arange(g.num_nodes, dtype=np.int64), np.diff(g.indptr))
    return graph_hash(np.stack([g.indices, dst]), g.num_nodes, g.num_features)
