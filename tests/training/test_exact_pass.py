"""The combined propagation pass (training.exact_pass): the integer op and the fake-quant
message sum of a training forward in one pass give bit-identical results to the two
kernels run separately, over whole training runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from trainer_fixtures import train_tiny

from training import exact_pass


def _run(monkeypatch, enabled: bool, model: str, bits: int, epochs: int, **kw):
    monkeypatch.setattr(exact_pass, "ENABLED", enabled)
    runs = []
    orig = exact_pass.PendingPass.run

    def counted(self, *a):
        runs.append(1)
        return orig(self, *a)
    monkeypatch.setattr(exact_pass.PendingPass, "run", counted)
    d, g, res = train_tiny(model, bits, epochs=epochs, **kw)
    return res, len(runs)


@pytest.mark.parametrize("model,bits,kw", [
    ("smp", 4, {}), ("smp", 2, {}), ("smp", 8, {"dropout": 0.0}), ("appnp", 2, {}),
    ("smp", 2, {"bt": "BT*"}), ("smp", 4, {"alpha_reinit": 2}),
])
def test_combined_pass_is_bit_identical(monkeypatch, model, bits, kw):
    off, n_off = _run(monkeypatch, False, model, bits, 6, **kw)
    on, n_on = _run(monkeypatch, True, model, bits, 6, **kw)
    assert n_off == 0 and n_on > 0
    a, b = off.model.state_dict(), on.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (off.best_epoch, off.train_acc, off.val_acc, off.test_acc) == (
        on.best_epoch, on.train_acc, on.val_acc, on.test_acc)
    assert off.history == on.history


def test_pass_is_refused_for_other_inputs():
    # a message sum whose inputs are not the stage's dequantized codes does not take the pass
    from training.exact import QT
    from quant.spec import QuantSpec

    codes = torch.zeros((3, 2), dtype=torch.int64)
    x = QT(torch.zeros((3, 2)), codes, 1.0, 0, QuantSpec(4))
    e = QT(torch.zeros(4), torch.zeros(4, dtype=torch.int64), 1.0, 0, QuantSpec(8))

    class P:
        q_msg = object()
    p = exact_pass.PendingPass(P(), x, e, None, 16)
    assert p.applies(x.value, e.value)
    assert not p.applies(x.value.clone(), e.value)
    assert not p.applies(x.value, e.value.clone())
    assert not p.applies(x.value.to(torch.float64), e.value)
    assert p.accumulators(None) is None
    assert exact_pass.current() is None
    with exact_pass.pending(p) as q:
        assert exact_pass.current() is q
    assert exact_pass.current() is None


@pytest.mark.parametrize("seed", range(24))
def test_kernel_equals_the_two_kernels(seed):
    # random CSR rows (hubs, empty rows), clipped messages, narrow saturating accumulators;
    # every channel count with each choice of the clipped positions and the coefficients
    from training.exact_kernels import (aggregate_table, can_saturate, exact_message_pass,
                                        pair_table, quantized_message_sum)

    rng = np.random.default_rng(seed)
    n, c, lx, lw = 7, [1, 2, 3, 4, 5, 7][seed % 6], [4, 16, 256][seed % 3], 256
    deg = rng.integers(0, 12, n)
    deg[0] = 0
    indptr = np.concatenate([[0], np.cumsum(deg)]).astype(np.int64)
    e = int(indptr[-1])
    src = rng.integers(0, n, e).astype(np.int32)
    col = rng.integers(0, lw, e).astype(np.int32)
    x = rng.integers(0, lx, (n, c)).astype(np.int64)
    table = rng.integers(-(1 << 12), 1 << 12, (lx, lw)).astype(np.int64)
    lo, hi = [(-(1 << 13), (1 << 13) - 1), (-(1 << 40), 1 << 40)][seed % 2]
    xv = ((np.arange(lx) - lx // 3) * rng.uniform(0.01, 0.2)).astype(np.float32)
    wv = (np.arange(lw) * rng.uniform(1e-4, 1e-2)).astype(np.float32)
    s, z, qmin, qmax = np.float32(rng.uniform(1e-3, 0.05)), np.float32(3), np.float32(0), np.float32(15)
    pairs = pair_table(table, xv, wv, s, z, qmin, qmax)
    sat = can_saturate(table, int(deg.max()), lo, hi)
    want_cut, want_coef = [(True, True), (True, False), (False, True), (False, False)][seed // 6]
    acc, out, cut, coef = exact_message_pass(indptr, src, col, x, pairs, lo, hi, sat, want_cut,
                                             want_coef)
    assert np.array_equal(acc, aggregate_table(indptr, src, col, x, table, 0, lo, hi, int(deg.max())))
    r_out, r_cut, r_coef = quantized_message_sum(indptr, src, wv[col], xv[x], s, z, qmin, qmax, True, True)
    assert np.array_equal(out.view(np.int32), r_out.view(np.int32))
    if want_coef:
        assert np.array_equal(coef.view(np.int32), r_coef.view(np.int32))
    else:
        assert coef is None
    if want_cut:
        assert np.array_equal(cut, r_cut)
    else:
        assert cut is None
    assert pair_table(table * (1 << 20), xv, wv, s, z, qmin, qmax) is None


@pytest.mark.parametrize("seed", range(6))
def test_compacted_codes_give_the_same_pass(seed):
    # BT-like codes (four of 256 values): the pass over the table of the values that occur
    # equals the pass over the whole table, bit for bit, and so does the integer walk
    from training.exact_kernels import (aggregate_table, can_saturate, compact_codes,
                                        exact_message_pass, pair_table)

    rng = np.random.default_rng(100 + seed)
    n, c, lx, lw = 40, [1, 2, 4, 6][seed % 4], 256, 256
    deg = rng.integers(0, 30, n)
    indptr = np.concatenate([[0], np.cumsum(deg)]).astype(np.int64)
    e = int(indptr[-1])
    src = rng.integers(0, n, e).astype(np.int32)
    col = rng.integers(0, lw, e).astype(np.int32)
    x = rng.choice(np.array([0, 85, 170, 255]), (n, c)).astype(np.int64)
    table = rng.integers(-(1 << 12), 1 << 12, (lx, lw)).astype(np.int32)
    lo, hi = [(-(1 << 14), (1 << 14) - 1), (-(1 << 40), 1 << 40)][seed % 2]
    xv = ((np.arange(lx) - 85) * rng.uniform(0.001, 0.01)).astype(np.float32)
    wv = (np.arange(lw) * rng.uniform(1e-4, 1e-2)).astype(np.float32)
    s, z, qmin, qmax = np.float32(rng.uniform(1e-3, 0.05)), np.float32(2), np.float32(0), np.float32(3)

    index, used = compact_codes(x, lx)
    assert used is not None and set(used) <= {0, 85, 170, 255}
    assert index.dtype == np.uint8 and np.array_equal(used[index], x)
    full = exact_message_pass(indptr, src, col, x, pair_table(table, xv, wv, s, z, qmin, qmax),
                              lo, hi, can_saturate(table, int(deg.max()), lo, hi), True, True)
    part = exact_message_pass(indptr, src, col, index,
                              pair_table(table[used], xv[used], wv, s, z, qmin, qmax),
                              lo, hi, can_saturate(table[used], int(deg.max()), lo, hi), True, True)
    for a, b in zip(full, part):
        assert a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))
    assert np.array_equal(full[0], aggregate_table(indptr, src, col, x, table, 0, lo, hi,
                                                   int(deg.max())))


def test_codes_are_not_renumbered_when_most_values_occur():
    from training.exact_kernels import compact_codes

    x = np.arange(16).reshape(8, 2) % 9
    index, used = compact_codes(x, 16)
    assert used is None and index.dtype == np.uint8 and np.array_equal(index, x)
    index, used = compact_codes(np.zeros((0, 3), dtype=np.int64), 256)
    assert used is None and index.shape == (0, 3)


def test_compact_codes_refuses_codes_outside_the_levels():
    from training.exact_kernels import compact_codes

    with pytest.raises(ValueError, match=r"codes must be in \[0, 16\), not in \[0, 16\]"):
        compact_codes(np.array([[0, 16]]), 16)
    with pytest.raises(ValueError, match=r"not in \[-1, 3\]"):
        compact_codes(np.array([[3, -1]]), 256)
    with pytest.raises(ValueError, match=r"codes must be in \[-8, 8\), not in \[-9, 0\]"):
        compact_codes(np.array([[0, -9]]), 16, -8)


def test_compact_codes_subtracts_the_offset_as_it_reads():
    from training.exact_kernels import compact_codes

    x = np.array([[-8, 7], [-8, -2]])
    index, used = compact_codes(x, 16, -8)
    assert index.dtype == np.uint8 and np.array_equal(used, [0, 6, 15])
    assert np.array_equal(used[index] - 8, x)
    many = np.arange(-8, 8).reshape(4, 4)
    index, used = compact_codes(many, 16, -8)
    assert used is None and np.array_equal(index, many + 8)
