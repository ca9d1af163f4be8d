"""Full-length Cora training (slow: pass --runslow)."""

from __future__ import annotations

import pytest

from training.config import ModelConfig, TrainConfig, paper_defaults
from training.data import load_dataset
from training.run import run_seeds


@pytest.mark.slow
@pytest.mark.parametrize("bits", [4, 8])
def test_cora_smp_one_seed(data_root, bits):
    d = load_dataset("Cora", data_root)
    pd = paper_defaults("smp", bits, None)
    m = ModelConfig(model="smp", bits=bits, dropout=pd["dropout"], alpha_c=pd["alpha_c"])
    t = TrainConfig(epochs=200, lr=pd["lr"], weight_decay=pd["weight_decay"],
                    weight_decay_alpha=pd["weight_decay_alpha"], seeds=(0,))
    r = run_seeds(d, m, t)
    fq, it = r.metrics["test_acc"]["fake_quant"]["mean"], r.metrics["test_acc"]["integer"]["mean"]
    assert fq >= 0.77
    assert abs(fq - it) <= 0.01
    assert r.metrics["integer_equals_numpy_reference"] is True
