"""Train / validation / test splits.

``public``: the masks the dataset ships (Planetoid's public split; the first of the
heterophilous datasets' ten splits).  ``random``: the paper's protocol, ``per_class``
labelled nodes of every class for training, then ``num_val`` and ``num_test`` nodes drawn
from the rest, with a seeded generator (numpy ``default_rng``), so a seed names a split.
"""

from __future__ import annotations

import numpy as np
import torch

from training.data import DatasetError, GraphData

SPLITS = ("random", "public")


def random_split(y: np.ndarray, seed: int, per_class: int = 20, num_val: int = 500,
                 num_test: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean (N,) masks: ``per_class`` training nodes per class, then val and test.

    Classes with fewer than ``per_class`` nodes contribute all they have.  If fewer than
    ``num_val + num_test`` nodes remain, validation and test share what remains 1:2.
    """
    y = np.asarray(y)
    n = y.shape[0]
    rng = np.random.default_rng(seed)
    train = np.zeros(n, dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        take = rng.permutation(idx)[:per_class]
        train[take] = True
    rest = rng.permutation(np.flatnonzero(~train))
    if rest.size < num_val + num_test:
        num_val = rest.size // 3
        num_test = rest.size - num_val
    val = np.zeros(n, dtype=bool)
    test = np.zeros(n, dtype=bool)
    val[rest[:num_val]] = True
    test[rest[num_val:num_val + num_test]] = True
    return train, val, test


def apply_split(data: GraphData, split: str, seed: int) -> GraphData:
    """Return ``data`` with the masks of ``split`` (``"random"`` uses ``seed``)."""
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, not {split!r}")
    if split == "public":
        missing = [k for k in ("train_mask", "val_mask", "test_mask") if not bool(getattr(data, k).any())]
        if missing:
            raise DatasetError(f"split 'public': dataset {data.name!r} ships no {', '.join(missing)}; "
                               f"use --split random")
        return data
    tr, va, te = random_split(data.y.numpy(), seed)
    return GraphData(data.name, data.x, data.y, data.edge_index, torch.from_numpy(tr),
                     torch.from_numpy(va), torch.from_numpy(te), data.normalize)


def require_nonempty_split(data: GraphData, split: str) -> None:
    """Refuse a split that leaves the training, validation or test set empty (a model trained
    or selected on nothing, or an accuracy over no nodes).

    Raises
    ------
    DatasetError
        Naming the empty mask and the node count.
    """
    for name in ("train_mask", "val_mask", "test_mask"):
        if not bool(getattr(data, name).any()):
            raise DatasetError(
                f"split {split!r} of dataset {data.name!r} leaves {name} empty: {data.num_nodes} nodes "
                f"are too few for 20 training nodes per class plus validation and test nodes")
