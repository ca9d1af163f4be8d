"""Training one model on one split: Adam with a separate alpha group, step decay, best-val selection.

As in the paper: full-batch, negative log-likelihood on the training nodes, Adam with two
parameter groups (quantizer alphas: ``lr_alpha`` / ``weight_decay_alpha``; everything
else: ``lr`` / ``weight_decay``, multiplied by ``gamma`` every ``step_size`` epochs), and
the reported model is the one of the epoch with the best validation accuracy (ties: the
higher training accuracy, then the earlier epoch).  No progress bar here: pass
``on_epoch`` to observe progress.
"""

from __future__ import annotations

import copy
import logging
import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.config import ModelConfig, TrainConfig
from training.graph import PropGraph
from training.models import build_model

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU) RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Quantizer alphas (parameters named ``*alpha``) in their own group, the rest in another."""
    alphas, others, seen = [], [], set()
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        (alphas if name.split(".")[-1] == "alpha" else others).append(p)
    groups = [{"params": others, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "name": "main"}]
    if alphas:
        groups.append({"params": alphas, "lr": cfg.lr_alpha,
                       "weight_decay": cfg.weight_decay_alpha, "name": "alpha"})
    return groups


def accuracy(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    """Fraction of correct predictions on ``mask`` (0.0 for an empty mask)."""
    n = int(mask.sum())
    return float((pred[mask] == y[mask]).sum()) / n if n else 0.0


@dataclass
class FitResult:
    """Outcome of one training run (accuracies are fractions 0..1)."""

    model: nn.Module
    best_epoch: int
    train_acc: float
    val_acc: float
    test_acc: float
    history: list[dict] = field(default_factory=list)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, graph: PropGraph, y: torch.Tensor,
             masks: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> tuple[float, float, float, torch.Tensor]:
    """Eval-mode forward; returns train, val, test accuracy and the predictions (N,)."""
    model.eval()
    pred = model(x, graph).argmax(dim=1)
    return (*(accuracy(pred, y, m) for m in masks), pred)


def fit(mcfg: ModelConfig, tcfg: TrainConfig, x: torch.Tensor, y: torch.Tensor, graph: PropGraph,
        masks: tuple[torch.Tensor, torch.Tensor, torch.Tensor], seed: int,
        on_epoch: Callable[[int, dict], None] | None = None) -> FitResult:
    """Train a fresh model of ``mcfg`` with ``seed``; return it in its best-validation state.

    Shapes: ``x`` (N, F) float32 preprocessed features, ``y`` (N,) int64, masks (N,) bool.
    """
    teacher_logits, init_state = None, None
    if tcfg.teacher == "fp32":
        teacher_logits, init_state = _fp32_teacher(mcfg, tcfg, x, y, graph, masks, seed)
    seed_everything(seed)
    model = build_model(mcfg, x.shape[1], int(y.max()) + 1).to(x.device)
    if tcfg.init_from_teacher:
        missing = model.load_state_dict(init_state, strict=False)
        if missing.unexpected_keys:
            raise ValueError(f"teacher weights must fit the model, not {missing.unexpected_keys}")
    opt = torch.optim.Adam(param_groups(model, tcfg))
    decay = [(lambda e: tcfg.gamma ** (e // tcfg.step_size)) if g["name"] == "main" else (lambda e: 1.0)
             for g in opt.param_groups]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, decay)
    train_mask = masks[0]
    best = (-1.0, -1.0)
    best_state, best_epoch, best_accs = None, -1, (0.0, 0.0, 0.0)
    history = []
    for epoch in range(tcfg.epochs):
        model.train()
        opt.zero_grad()
        out = model(x, graph)
        loss = F.cross_entropy(out[train_mask], y[train_mask])
        if teacher_logits is not None and tcfg.distill_weight > 0:
            loss = loss + tcfg.distill_weight * distill_loss(out, teacher_logits, tcfg.distill_temp)
        loss.backward()
        opt.step()
        sched.step()
        tr, va, te, _ = evaluate(model, x, graph, y, masks)
        rec = {"epoch": epoch, "loss": float(loss.detach()), "train": tr, "val": va, "test": te}
        history.append(rec)
        if (va, tr) > best:
            best = (va, tr)
            best_epoch, best_accs = epoch, (tr, va, te)
            best_state = snapshot_state(model)
        if on_epoch is not None:
            on_epoch(epoch, rec)
    model.load_state_dict(best_state)
    log.info("seed %d: best epoch %d, val %.4f, test %.4f", seed, best_epoch, best_accs[1], best_accs[2])
    return FitResult(model, best_epoch, *best_accs, history=history)


def snapshot_state(model: nn.Module) -> dict:
    """A copy of ``model.state_dict()`` that later training steps do not change: each tensor
    cloned (detached), anything else deep-copied, the dict's ``_metadata`` (the modules'
    state versions, which ``load_state_dict`` reads) kept.  The same values as
    ``copy.deepcopy`` of the state dict, without its per-tensor Python overhead (a quantized
    model has hundreds of small buffers)."""
    state = model.state_dict()
    snap = type(state)((k, v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v))
                       for k, v in state.items())
    meta = getattr(state, "_metadata", None)
    if meta is not None:
        snap._metadata = copy.deepcopy(meta)
    return snap


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temp: float) -> torch.Tensor:
    """``T**2 KL(softmax(t / T) || softmax(s / T))``, mean over nodes (``batchmean``).

    Shapes: ``student`` (N, C) logits (with gradient), ``teacher`` (N, C) logits (constant).
    """
    log_p = F.log_softmax(student / temp, dim=1)
    q = F.softmax(teacher / temp, dim=1)
    return temp * temp * F.kl_div(log_p, q, reduction="batchmean")


#: the linear layers' parameters a warm start copies from the FP32 teacher
_WARM_KEYS = (".lin.weight", ".lin.bias")


def _fp32_teacher(mcfg: ModelConfig, tcfg: TrainConfig, x, y, graph, masks, seed: int):
    """Train the FP32 twin of ``mcfg`` (FP32 paper defaults) with the same split and seed;
    return its eval-mode logits (N, C) and its linear-layer weights."""
    import dataclasses

    from training.config import paper_defaults

    pd = paper_defaults(mcfg.model, None, None)
    t_m = dataclasses.replace(mcfg, bits=None, bt=None, dropout=pd["dropout"], alpha_c=pd["alpha_c"],
                              alpha_reinit=None, exact=None)
    t_t = dataclasses.replace(tcfg, teacher=None, distill_weight=0.0, init_from_teacher=False,
                              lr=pd["lr"], weight_decay=pd["weight_decay"])
    res = fit(t_m, t_t, x, y, graph, masks, seed)
    res.model.eval()
    with torch.no_grad():
        logits = res.model(x, graph).detach()
    log.info("seed %d: FP32 teacher val %.4f test %.4f", seed, res.val_acc, res.test_acc)
    state = {k: v.detach().clone() for k, v in res.model.state_dict().items() if k.endswith(_WARM_KEYS)}
    return logits, state
