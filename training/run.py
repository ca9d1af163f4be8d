"""Several seeds of one configuration: train, evaluate fake-quant and integer, collect metrics.

Used by ``quagga train`` and by :mod:`training.experiments`.  The metrics dictionary holds
no timestamps or timings, so the same inputs give the same JSON.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from quant.model_ir import IntModel, preprocess_features
from training import integer
from training.config import ModelConfig, TrainConfig
from training.data import GraphData
from training.graph import build_prop_graph
from training.lowering import LoweringError, lower
from training.splits import apply_split, require_nonempty_split
from training.trainer import accuracy, evaluate, fit

log = logging.getLogger(__name__)


def summary(values: list[float | None]) -> dict | None:
    """``{"mean", "std", "per_seed"}`` (population std), or ``None`` if any value is missing."""
    if not values or any(v is None for v in values):
        return None
    a = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(a.mean()), 6), "std": round(float(a.std()), 6),
            "per_seed": [round(float(v), 6) for v in a]}


@dataclass
class SeedResult:
    seed: int
    best_epoch: int
    train_acc: float
    val_acc: float
    test_acc: float
    int_val_acc: float | None
    int_test_acc: float | None
    lambdas: list[float] = field(default_factory=list)


@dataclass
class RunResult:
    """All seeds of one configuration; ``int_model`` / ``model`` are those of the first seed."""

    metrics: dict
    int_model: IntModel | None
    model: torch.nn.Module
    seeds: list[SeedResult]


def run_seeds(data: GraphData, mcfg: ModelConfig, tcfg: TrainConfig, *, device: str = "cpu",
              verify_reference: bool = True,
              on_epoch: Callable[[int, int, dict], None] | None = None) -> RunResult:
    """Train ``mcfg`` once per seed of ``tcfg`` and evaluate fake-quant and integer accuracy.

    Parameters
    ----------
    data : GraphData (raw features; the split is set per seed, see :mod:`training.splits`)
    verify_reference : bool
        Also run the first seed's integer model with the numpy reference executor
        (:meth:`quant.model_ir.IntModel.predict`) and record whether it equals the torch one.
    on_epoch : callable(seed, epoch, record), optional
    """
    graph = build_prop_graph(data.edge_index, data.num_nodes)
    xf = torch.from_numpy(preprocess_features(data.x.numpy(), data.normalize)).to(device)
    y = data.y.to(device)
    gdev = graph.to(device)
    seeds: list[SeedResult] = []
    first_int, first_model, int_reason, ref_equal = None, None, None, None
    forward_equal = None
    for i, seed in enumerate(tcfg.seeds):
        split_seed = seed if tcfg.split_seed is None else tcfg.split_seed
        d = apply_split(data, tcfg.split, split_seed)
        require_nonempty_split(d, tcfg.split)
        masks = tuple(m.to(device) for m in (d.train_mask, d.val_mask, d.test_mask))
        cb = (lambda e, r, s=seed: on_epoch(s, e, r)) if on_epoch else None
        res = fit(mcfg, tcfg, xf, y, gdev, masks, seed, on_epoch=cb)
        tr, va, te, fpred = evaluate(res.model, xf, gdev, y, masks)
        if (tr, va, te) != (res.train_acc, res.val_acc, res.test_acc):
            log.warning("seed %d: re-evaluated best state differs from the recorded epoch", seed)
        lambdas = [float(v) for v in getattr(res.model, "last_lambdas", torch.zeros(0))] \
            if mcfg.model == "smp" else []
        int_va = int_te = None
        try:
            im = lower(res.model, graph, num_features=data.num_features, normalize=data.normalize,
                       meta={"dataset": data.name, "seed": seed},
                       source_edge_index=data.edge_index.cpu().numpy())
            pred = integer.predict(im, data.x, device).to(torch.int64)
            # the trainer's own integer predictions travel with the model, for the simulator
            im.tensors["trainer.pred"] = pred.cpu().numpy().astype(np.int32)
            int_va, int_te = accuracy(pred, y, masks[1]), accuracy(pred, y, masks[2])
            same = bool(torch.equal(pred.cpu(), fpred.cpu().to(torch.int64)))
            forward_equal = same if forward_equal is None else (forward_equal and same)
            if mcfg.exact_eval and not same:
                log.error("seed %d: the integer-exact forward's predictions differ from the "
                          "integer model's", seed)
            if i == 0:
                first_int = im
                if verify_reference:
                    ref_equal = bool(np.array_equal(im.predict(data.x.numpy()), pred.cpu().numpy()))
        except LoweringError as exc:
            int_reason = str(exc)
        if i == 0:
            first_model = res.model
        seeds.append(SeedResult(seed, res.best_epoch, tr, va, te, int_va, int_te, lambdas))
    fq_test = summary([s.test_acc for s in seeds])
    int_test = summary([s.int_test_acc for s in seeds])
    metrics = {
        "dataset": data.name,
        "model": mcfg.model,
        "bits": mcfg.bits if mcfg.bits is not None else 32,
        "bt": {None: "none", "BT": "bt", "BT*": "sbt"}[mcfg.bt],
        "layers": mcfg.layers,
        "paper_code": mcfg.paper_code,
        "split": tcfg.split,
        "seeds": list(tcfg.seeds),
        "graph": {"num_nodes": data.num_nodes, "num_edges": data.num_edges,
                  "num_features": data.num_features, "num_classes": data.num_classes,
                  "max_degree": graph.max_degree},
        "test_acc": {"fake_quant": fq_test, "integer": int_test},
        "val_acc": {"fake_quant": summary([s.val_acc for s in seeds]),
                    "integer": summary([s.int_val_acc for s in seeds])},
        "train_acc": summary([s.train_acc for s in seeds]),
        "gap_test_points": (round(100 * (fq_test["mean"] - int_test["mean"]), 4)
                            if fq_test and int_test else None),
        "best_epoch": [s.best_epoch for s in seeds],
        "smp_lambdas": {str(s.seed): [round(v, 8) for v in s.lambdas] for s in seeds} if mcfg.model == "smp" else None,
        "integer_unavailable": int_reason,
        "integer_equals_numpy_reference": ref_equal,
        "exact_forward": mcfg.exact_forward,
        "exact_eval": mcfg.exact_eval,
        "integer_equals_forward": forward_equal,
        "model_config": mcfg.to_dict(),
        "train_config": tcfg.to_dict(),
    }
    return RunResult(metrics, first_int, first_model, seeds)
