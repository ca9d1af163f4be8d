"""FP32 teacher: distillation over all nodes and a warm start of the linear layers."""

from __future__ import annotations

import pytest
import torch

from quant.errors import QuantError
from training.config import ModelConfig, TrainConfig
from training.trainer import distill_loss


def test_distill_loss_is_zero_for_equal_logits_and_positive_otherwise():
    t = torch.randn(20, 4)
    assert float(distill_loss(t, t, 2.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_loss(torch.zeros(20, 4), t, 1.0)) > 0


def test_teacher_config_is_checked():
    with pytest.raises(QuantError, match="teacher"):
        TrainConfig(distill_weight=1.0)
    with pytest.raises(QuantError, match="teacher"):
        TrainConfig(teacher="int8")


def test_warm_start_and_distillation_train_and_stay_exact():
    from trainer_fixtures import tiny_graph

    from training.run import run_seeds

    d = tiny_graph(0, n=120)  # 60 training nodes leave validation and test nodes
    r = run_seeds(d, ModelConfig(model="smp", bits=4, layers=2, hidden=8),
                  TrainConfig(epochs=3, seeds=(0,), teacher="fp32", distill_weight=1.0,
                              init_from_teacher=True))
    m = r.metrics
    assert m["test_acc"]["fake_quant"] == m["test_acc"]["integer"]
    assert m["train_config"]["teacher"] == "fp32"
    assert r.int_model is not None


def test_same_command_same_result_with_teacher():
    from trainer_fixtures import tiny_graph

    from training.run import run_seeds

    d = tiny_graph(2, n=120)
    mk = lambda: run_seeds(d, ModelConfig(model="appnp", bits=2, layers=2, hidden=8),
                           TrainConfig(epochs=2, seeds=(0,), teacher="fp32", distill_weight=2.0,
                                       distill_temp=2.0, init_from_teacher=True)).metrics
    assert mk() == mk()
