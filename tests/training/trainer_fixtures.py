"""Small graphs and tiny trained models shared by the trainer tests (imported by them)."""

from __future__ import annotations

import torch

from quant.model_ir import preprocess_features
from training.config import ModelConfig, TrainConfig
from training.data import synthetic_csbm
from training.graph import build_prop_graph
from training.splits import apply_split
from training.trainer import fit


def tiny_graph(seed: int = 0, n: int = 60):
    d = synthetic_csbm(num_nodes=n, num_classes=3, num_features=8, avg_degree=4.0, seed=seed)
    return apply_split(d, "random", seed)


def train_tiny(model: str = "smp", bits: int | None = 4, epochs: int = 3, seed: int = 0, **kw):
    """A few epochs on a 60-node CSBM graph; returns (data, graph, fit result)."""
    torch.set_num_threads(1)
    d = tiny_graph(seed)
    x = torch.from_numpy(preprocess_features(d.x.numpy(), d.normalize))
    g = build_prop_graph(d.edge_index, d.num_nodes)
    cfg = ModelConfig(model=model, bits=bits, layers=kw.pop("layers", 3), hidden=8, **kw)
    res = fit(cfg, TrainConfig(epochs=epochs), x, d.y, g, (d.train_mask, d.val_mask, d.test_mask), seed)
    return d, g, res


