"""Graphs for training: PyG datasets by name, a user's file, or the built-in synthetic graph.

Every loader returns a :class:`GraphData`: raw float features (before the model's input
preprocessing), int64 labels, the directed edge list as given (no self loops added) and
boolean train/val/test masks.  Everything is on the CPU; models move it where they run.

Data roots: ``--data-root`` or the environment variable ``QUAGGA_DATA_ROOT``.  PyG writes a
``processed/`` folder next to ``raw/``, so a data root that is not writable (for example a
shared read-only copy) is mirrored into a temporary directory whose ``<name>/raw`` are
symlinks to the originals; nothing is ever written into the data root in that case.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from quant.graph_arrays import GraphFileError, read_npz
from quant.graph_arrays import validate_graph as check_graph_arrays
from training.tensor_files import TensorFileError, pyg_data_globals, read_tensor_file

log = logging.getLogger(__name__)

#: PyG loader -> the dataset names it takes
_PYG_LOADERS = {"Planetoid": ("Cora", "CiteSeer", "PubMed"),
                "HeterophilousGraphDataset": ("Tolokers", "Minesweeper", "Roman-empire",
                                              "Amazon-ratings", "Questions"),
                "Amazon": ("Computers", "Photo"), "Coauthor": ("CS", "Physics")}


def _folder(loader: str, name: str) -> str:
    """The folder PyG keeps a dataset in under the root (the heterophilous loader lower-cases
    the name and writes ``-`` as ``_``)."""
    return name.lower().replace("-", "_") if loader == "HeterophilousGraphDataset" else name


#: dataset name (case-insensitive) -> (PyG loader, name passed to it, folder under the root)
PYG_DATASETS: dict[str, tuple[str, str, str]] = {
    name.lower(): (loader, name, _folder(loader, name))
    for loader, names in _PYG_LOADERS.items() for name in names}
SYNTHETIC = "synthetic"
DATA_ROOT_ENV = "QUAGGA_DATA_ROOT"


class DatasetError(GraphFileError):
    """A dataset that cannot be found, loaded or validated; the message says which and why."""


@dataclass
class GraphData:
    """A node-classification graph.

    Attributes
    ----------
    name : str
    x : torch.Tensor, (N, F) float32
        Raw node features (the model's input op normalises them if configured).
    y : torch.Tensor, (N,) int64
        Class labels in ``0..num_classes-1``.
    edge_index : torch.Tensor, (2, E) int64
        Directed edges, row 0 source, row 1 destination.
    train_mask, val_mask, test_mask : torch.Tensor, (N,) bool
        The split (may be replaced by :func:`training.splits.apply_split`).
    normalize : str or None
        Input preprocessing the model should apply (``"row_sum"`` for bag-of-words features).
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor
    edge_index: torch.Tensor
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    normalize: str | None = None

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1 if self.y.numel() else 0

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------

def validate_graph(x, y, edge_index, masks: dict | None = None, source: str = "graph") -> None:
    """Check shapes, dtypes, index and label range, finiteness and masks (:func:`quant.graph_arrays.validate_graph`).

    Raises
    ------
    DatasetError
        Naming the field and the offending value.
    """
    try:
        check_graph_arrays(x, y, edge_index, masks, source)
    except GraphFileError as exc:
        raise DatasetError(str(exc)) from None


def _to_graph(name, x, y, edge_index, masks, normalize) -> GraphData:
    n = np.asarray(x).shape[0]
    empty = np.zeros(n, dtype=bool)
    return GraphData(
        name=name,
        x=torch.as_tensor(np.asarray(x, dtype=np.float32)),
        y=torch.as_tensor(np.asarray(y, dtype=np.int64)),
        edge_index=torch.as_tensor(np.asarray(edge_index, dtype=np.int64)),
        train_mask=torch.as_tensor(np.asarray(masks.get("train_mask", empty))),
        val_mask=torch.as_tensor(np.asarray(masks.get("val_mask", empty))),
        test_mask=torch.as_tensor(np.asarray(masks.get("test_mask", empty))),
        normalize=normalize)


# ---------------------------------------------------------------------------------------
# synthetic graph: contextual stochastic block model
# ---------------------------------------------------------------------------------------

def synthetic_csbm(num_nodes: int = 1000, num_classes: int = 4, num_features: int = 32,
                   avg_degree: float = 8.0, homophily: float = 0.8, feature_snr: float = 1.0,
                   seed: int = 0, degree_exponent: float | None = None) -> GraphData:
    """A contextual stochastic block model (homophilous SBM edges, Gaussian class features).

    Parameters
    ----------
    num_nodes, num_classes, num_features : int
    avg_degree : float
        Expected undirected degree; each undirected edge is stored in both directions.
    homophily : float
        Probability that an edge joins two nodes of the same class, 0..1.
    feature_snr : float
        Norm of each class mean (random direction), in units of the per-feature noise std 1.
    seed : int
        Seed of the generator (numpy ``default_rng``); the same seed gives the same graph.
    degree_exponent : float, optional
        ``None`` (default): every node has the same expected degree (the SBM above).  A value
        ``g > 2`` gives a power-law degree distribution ``P(d) ~ d**-g`` (Chung-Lu weights
        ``theta_i ~ (i + 1)**(-1 / (g - 1))``, node order shuffled): each edge's endpoints are
        drawn in proportion to ``theta``, the second one among the nodes of the first's class
        with probability ``homophily`` and among the other classes otherwise.  The expected
        degree stays ``avg_degree`` (slightly less after removing self loops and duplicates).

    Returns
    -------
    GraphData with random 20-per-class / 500 / 1000 masks only if the graph is big enough;
    :func:`training.splits.apply_split` sets the split actually used.
    """
    for nm, v, lo in (("num_nodes", num_nodes, 2), ("num_classes", num_classes, 2),
                      ("num_features", num_features, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise DatasetError(f"synthetic: {nm} must be an int >= {lo}, not {v!r}")
    if not 0.0 <= homophily <= 1.0:
        raise DatasetError(f"synthetic: homophily must be in 0..1, not {homophily!r}")
    if not avg_degree > 0:
        raise DatasetError(f"synthetic: avg_degree must be > 0, not {avg_degree!r}")
    if degree_exponent is not None and not (isinstance(degree_exponent, (int, float))
                                            and not isinstance(degree_exponent, bool)
                                            and 2.0 < degree_exponent < 100.0):
        raise DatasetError(f"synthetic: degree_exponent must be a number in (2, 100) or None, "
                           f"not {degree_exponent!r}")
    if degree_exponent is not None:
        return _power_law_csbm(num_nodes, num_classes, num_features, float(avg_degree), homophily,
                               feature_snr, seed, float(degree_exponent))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, size=num_nodes)
    means = rng.standard_normal((num_classes, num_features))
    means *= feature_snr / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    x = means[y] + rng.standard_normal((num_nodes, num_features))
    n_edges = int(round(avg_degree * num_nodes / 2))
    src = rng.integers(0, num_nodes, size=n_edges)
    same = rng.random(n_edges) < homophily
    by_class = [np.flatnonzero(y == c) for c in range(num_classes)]
    dst = rng.integers(0, num_nodes, size=n_edges)
    for c in range(num_classes):
        pick = same & (y[src] == c)
        if by_class[c].size and pick.any():
            dst[pick] = by_class[c][rng.integers(0, by_class[c].size, size=int(pick.sum()))]
    diff = ~same
    # a "different class" edge: resample destinations until classes differ (bounded tries)
    for _ in range(8):
        bad = diff & (y[dst] == y[src])
        if not bad.any():
            break
        dst[bad] = rng.integers(0, num_nodes, size=int(bad.sum()))
    keep = src != dst
    und = np.unique(np.sort(np.stack([src[keep], dst[keep]]), axis=0), axis=1)
    edge_index = np.concatenate([und, und[::-1]], axis=1)
    return _to_graph(SYNTHETIC, x.astype(np.float32), y, edge_index, {}, None)


def _power_law_csbm(num_nodes: int, num_classes: int, num_features: int, avg_degree: float,
                    homophily: float, feature_snr: float, seed: int, exponent: float) -> GraphData:
    """:func:`synthetic_csbm` with power-law expected degrees (its ``degree_exponent``)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, size=num_nodes)
    means = rng.standard_normal((num_classes, num_features))
    means *= feature_snr / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    x = means[y] + rng.standard_normal((num_nodes, num_features))
    theta = rng.permutation((np.arange(num_nodes) + 1.0) ** (-1.0 / (exponent - 1.0)))
    n_edges = int(round(avg_degree * num_nodes / 2))

    def draw(nodes: np.ndarray, count: int) -> np.ndarray:
        """``count`` nodes of ``nodes`` drawn in proportion to their weights."""
        cdf = np.cumsum(theta[nodes])
        pos = np.searchsorted(cdf, rng.random(count) * cdf[-1], side="right")
        return nodes[np.minimum(pos, nodes.size - 1)]

    src = draw(np.arange(num_nodes), n_edges)
    same = rng.random(n_edges) < homophily
    dst = np.empty(n_edges, dtype=np.int64)
    for c in range(num_classes):
        inside, outside = np.flatnonzero(y == c), np.flatnonzero(y != c)
        for pick, pool in ((same & (y[src] == c), inside), (~same & (y[src] == c), outside)):
            pool = pool if pool.size else np.arange(num_nodes)
            dst[pick] = draw(pool, int(pick.sum()))
    keep = src != dst
    und = np.unique(np.sort(np.stack([src[keep], dst[keep]]), axis=0), axis=1)
    edge_index = np.concatenate([und, und[::-1]], axis=1)
    return _to_graph(f"{SYNTHETIC}-powerlaw", x.astype(np.float32), y, edge_index, {}, None)


#: ``synthetic:powerlaw:`` fields -> (synthetic_csbm argument, type)
POWERLAW_FIELDS = {"nodes": ("num_nodes", int), "degree": ("avg_degree", float),
                   "exponent": ("degree_exponent", float), "classes": ("num_classes", int),
                   "features": ("num_features", int), "homophily": ("homophily", float),
                   "snr": ("feature_snr", float), "seed": ("seed", int)}
#: defaults of a ``synthetic:powerlaw:`` spec (the graph of the training-cost measurement)
POWERLAW_DEFAULTS = {"num_nodes": 20000, "avg_degree": 10.0, "degree_exponent": 2.5,
                     "num_classes": 4, "num_features": 32}


def parse_synthetic_spec(spec: str) -> dict:
    """The :func:`synthetic_csbm` arguments of a ``synthetic:powerlaw[:FIELDS]`` dataset name.

    ``FIELDS`` is either positional, ``NODES[:EDGES[:SEED]]`` as the simulator's graph specs
    (``sim.graphs.datasets``; ``EDGES`` directed edges, so the average degree is
    ``EDGES / NODES``), e.g. ``synthetic:powerlaw:20000:200000``, or comma-separated
    ``key=value`` pairs with keys ``nodes``, ``degree`` (average degree), ``exponent``
    (power-law exponent, > 2), ``classes``, ``features``, ``homophily``, ``snr`` and
    ``seed``, e.g. ``synthetic:powerlaw:nodes=20000,degree=10,exponent=2.5``.  Unset fields
    take :data:`POWERLAW_DEFAULTS` (20000 nodes, average degree 10, exponent 2.5, 4 classes,
    32 features), then :func:`synthetic_csbm`'s defaults.

    Raises
    ------
    DatasetError
        Naming the field and the value, for an unknown kind or key or a bad value.
    """
    parts = spec.split(":", 2)
    if len(parts) < 2 or parts[0].lower() != SYNTHETIC or parts[1].lower() != "powerlaw":
        raise DatasetError(f"synthetic spec must start with 'synthetic:powerlaw', not {spec!r}")
    args = dict(POWERLAW_DEFAULTS)
    fields = parts[2] if len(parts) > 2 else ""
    items = [f for f in fields.split(",") if f.strip()] if fields else []
    if len(items) == 1 and "=" not in items[0]:           # positional NODES[:EDGES[:SEED]]
        pos = items[0].split(":")
        if len(pos) > 3:
            raise DatasetError(f"synthetic:powerlaw: fields must be NODES[:EDGES[:SEED]] or key=value "
                               f"pairs, not {fields!r}")
        for name, val in zip(("nodes", "edges", "seed"), pos):
            if not val.strip().isdigit():
                raise DatasetError(f"synthetic:powerlaw: {name} must be an int, not {val.strip()!r}")
        items = [f"nodes={pos[0]}"] + ([f"seed={pos[2]}"] if len(pos) > 2 else [])
        if len(pos) > 1:
            nodes, edges = int(pos[0]), int(pos[1])
            if nodes < 1 or edges < 1:
                raise DatasetError(f"synthetic:powerlaw: nodes and edges must be >= 1, not {(nodes, edges)!r}")
            items.append(f"degree={edges / nodes!r}")
    for item in items:
        key, eq, val = item.partition("=")
        key = key.strip().lower()
        if not eq or key not in POWERLAW_FIELDS:
            raise DatasetError(f"synthetic:powerlaw: field must be one of {sorted(POWERLAW_FIELDS)} "
                               f"as key=value, not {item!r}")
        name, typ = POWERLAW_FIELDS[key]
        try:
            args[name] = typ(val.strip())
        except ValueError:
            raise DatasetError(f"synthetic:powerlaw: {key} must be a{'n int' if typ is int else ' number'}, "
                               f"not {val.strip()!r}") from None
        if typ is float and not np.isfinite(args[name]):
            raise DatasetError(f"synthetic:powerlaw: {key} must be finite, not {val.strip()!r}")
    return args


# ---------------------------------------------------------------------------------------
# user files
# ---------------------------------------------------------------------------------------

def _pt_arrays(p: Path) -> dict:
    try:
        obj = read_tensor_file(p, "dataset file", pyg_data_globals())
    except TensorFileError as exc:
        raise DatasetError(str(exc)) from None
    if isinstance(obj, (list, tuple)) and obj:
        obj = obj[0]
    if hasattr(obj, "to_dict") and hasattr(obj, "edge_index"):
        obj = obj.to_dict()
    if not isinstance(obj, dict) or "x" not in obj or "edge_index" not in obj:
        kind = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise DatasetError(f"dataset file {str(p)!r} must hold a PyG Data or a dict with x, y and "
                           f"edge_index tensors, not {kind}")
    return {k: (v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
            for k, v in obj.items() if v is not None}


def load_file(path: str | Path) -> GraphData:
    """Load a graph file, validated: ``.npz`` (``edge_index``, ``x``, ``y``, optional
    ``train_mask``/``val_mask``/``test_mask``) or ``.pt`` (a saved PyG ``Data`` or a dict of
    those tensors).  Neither format can run code: ``.npz`` without pickles, ``.pt`` with
    ``torch.load(weights_only=True)``."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"dataset file {str(p)!r} does not exist")
    if p.suffix == ".npz":
        try:
            arrays = read_npz(p, "dataset file")
        except GraphFileError as exc:
            raise DatasetError(str(exc)) from None
    else:
        arrays = _pt_arrays(p)
    for k in ("x", "y", "edge_index"):
        if k not in arrays:
            raise DatasetError(f"dataset file {str(p)!r} must contain {k!r}; it has {sorted(arrays)}")
    masks = {k: arrays[k] for k in ("train_mask", "val_mask", "test_mask") if k in arrays}
    validate_graph(arrays["x"], arrays["y"], arrays["edge_index"], masks, source=str(p))
    return _to_graph(p.stem, arrays["x"], arrays["y"], arrays["edge_index"], masks, None)


# ---------------------------------------------------------------------------------------
# PyG datasets
# ---------------------------------------------------------------------------------------

def resolve_data_root(data_root: str | Path | None) -> Path | None:
    """``data_root`` if given, else ``$QUAGGA_DATA_ROOT``, else ``None`` (PyG's own download root)."""
    if data_root:
        return Path(data_root)
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env) if env else None


def _mirror_root(root: Path, folder: str) -> Path:
    """Always mirror ``root/folder/raw`` into a private temp root (keeps shared roots clean)."""
    tmp = Path(tempfile.mkdtemp(prefix="quagga_pyg_"))
    (tmp / folder).mkdir()
    os.symlink((root / folder / "raw").resolve(), tmp / folder / "raw")
    return tmp


def load_pyg(name: str, data_root: str | Path | None = None) -> GraphData:
    """Load a PyG dataset by (case-insensitive) name from the data root.

    If the raw files are present under ``<root>/<folder>/raw`` they are used through a
    private temporary mirror (PyG's ``processed/`` goes there); otherwise PyG tries to
    download into ``root``.  Failure gives a :class:`DatasetError` saying how to set the root.
    """
    key = name.lower()
    if key not in PYG_DATASETS:
        raise DatasetError(
            f"dataset must be {SYNTHETIC!r}, a path to a .npz/.pt file, or one of "
            f"{sorted(v[1] for v in PYG_DATASETS.values())}, not {name!r}")
    loader_name, pyg_name, folder = PYG_DATASETS[key]
    root = resolve_data_root(data_root)
    hint = (f"point --data-root (or ${DATA_ROOT_ENV}) at a directory holding {folder}/raw/ "
            f"in PyG's layout, or allow PyG to download it")
    if root is None:
        raise DatasetError(f"dataset {pyg_name!r}: no data root given; {hint}")
    import torch_geometric.datasets as pyg_datasets

    raw = root / folder / "raw"
    use_root = _mirror_root(root, folder) if raw.is_dir() and any(raw.iterdir()) else root
    loader = getattr(pyg_datasets, loader_name)
    try:
        if loader_name == "Planetoid":
            ds = loader(str(use_root), pyg_name, split="public")
        else:
            ds = loader(str(use_root), pyg_name)
        data = ds[0]
    except Exception as exc:  # noqa: BLE001 - network / missing file errors from PyG
        raise DatasetError(f"dataset {pyg_name!r} is not under {str(root)!r} and could not be "
                           f"downloaded ({type(exc).__name__}: {exc}); {hint}") from None
    masks = {}
    for k in ("train_mask", "val_mask", "test_mask"):
        m = getattr(data, k, None)
        if m is not None:
            m = m.numpy()
            masks[k] = m[:, 0] if m.ndim == 2 else m  # heterophilous sets carry 10 splits
    normalize = "row_sum" if loader_name == "Planetoid" else None
    validate_graph(data.x.numpy(), data.y.numpy(), data.edge_index.numpy(), masks, source=pyg_name)
    log.info("loaded %s: %d nodes, %d edges", pyg_name, data.num_nodes, data.edge_index.shape[1])
    return _to_graph(pyg_name, data.x.numpy(), data.y.numpy(), data.edge_index.numpy(), masks, normalize)


def load_dataset(name: str | None, data_root: str | Path | None = None, *,
                 synthetic_args: dict | None = None) -> GraphData:
    """Dispatch: ``None``/``"synthetic"`` -> :func:`synthetic_csbm`; ``"synthetic:powerlaw..."``
    -> :func:`synthetic_csbm` with the arguments of :func:`parse_synthetic_spec`; an existing path or a name
    ending in ``.npz``/``.pt`` -> :func:`load_file`; otherwise a PyG dataset name."""
    if name is None or name.lower() == SYNTHETIC:
        return synthetic_csbm(**(synthetic_args or {}))
    if name.lower().startswith(SYNTHETIC + ":"):
        return synthetic_csbm(**parse_synthetic_spec(name))
    if name.endswith((".npz", ".pt")) or os.sep in name or Path(name).exists():
        return load_file(name)
    return load_pyg(name, data_root)
