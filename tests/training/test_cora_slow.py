"""Full-length Cora training (slow: pass --runslow)."""

from __future__ import annotations

import pytest

from training.config import ModelConfig, TrainConfig, paper_defaults
from training.data import load_dataset
from training.run import run_seeds


@pytest.mark.slow
@pytest.mark.parametrize("bits, floor", [(4, 0.77), (8, 0.77), (2, 0.70)])
def test_cora_smp_one_seed(data_root, bits, floor):
    """One seed of the paper's protocol; with the integer-exact forward the fake-quant and
    integer predictions are the same."""
    d = load_dataset("Cora", data_root)
    pd = paper_defaults("smp", bits, None)
    m = ModelConfig(model="smp", bits=bits, dropout=pd["dropout"], alpha_c=pd["alpha_c"],
                    alpha_reinit=pd["alpha_reinit"])
    t = TrainConfig(epochs=200, lr=pd["lr"], weight_decay=pd["weight_decay"],
                    weight_decay_alpha=pd["weight_decay_alpha"], seeds=(0,))
    r = run_seeds(d, m, t)
    fq, it = r.metrics["test_acc"]["fake_quant"]["mean"], r.metrics["test_acc"]["integer"]["mean"]
    assert fq >= floor
    assert fq == it
    assert r.metrics["integer_equals_forward"] is True
    assert r.metrics["integer_equals_numpy_reference"] is True
