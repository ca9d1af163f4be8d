"""The integer-exact forward (training.exact): training's eval-mode forward computes the
integer model's codes at every stage, so fake-quant and integer accuracy are equal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from trainer_fixtures import train_tiny

from quant.model_ir import preprocess_features
from training import integer
from training.lowering import lower

CONFIGS = {"int8": (8, None), "int4": (4, None), "int2": (2, None), "int2-bt": (2, "BT"),
           "int2-btstar": (2, "BT*")}


def _recorded(model, d, g):
    x = torch.from_numpy(preprocess_features(d.x.numpy(), d.normalize))
    rec: list = []
    model.eval()
    with torch.no_grad():
        logits = model(x, g, record=rec)
    return rec, logits


def _assert_stages_equal(model, d, g):
    """The recorded eval forward equals the exported model's every stage; returns the logits,
    the exported model and its reference activations."""
    rec, logits = _recorded(model, d, g)
    im = lower(model, g, num_features=d.num_features, normalize=d.normalize)
    ref = im.run(d.x.numpy(), keep=True)
    assert [k for k, _ in rec] == [op.op for op in im.ops]
    for (kind, codes), op in zip(rec, im.ops):
        assert np.array_equal(codes.numpy(), ref[op.out]), (kind, op.out)
    return logits, im, ref


@pytest.mark.parametrize("model", ["smp", "appnp", "gcn"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_eval_forward_equals_int_model_at_every_stage(model, config):
    bits, bt = CONFIGS[config]
    kw = {"layers": 2} if model == "gcn" else {}
    d, g, res = train_tiny(model, bits, epochs=3, bt=bt, **kw)
    assert res.model.cfg.exact_forward
    logits, im, ref = _assert_stages_equal(res.model, d, g)
    # the forward without recording (its fast paths) gives the same logits
    with torch.no_grad():
        x = torch.from_numpy(preprocess_features(d.x.numpy(), d.normalize))
        assert torch.equal(res.model(x, g), logits)
    # the logits are the integer logits' values: same argmax as the integer model
    pred = logits.argmax(1).numpy()
    assert np.array_equal(pred, ref[im.output])
    assert np.array_equal(integer.predict(im, d.x).numpy(), pred)
    if bt is not None:
        assert any(".bt" in op.out for op in im.ops)


@pytest.mark.parametrize("model", ["appnp", "gcn"])
def test_training_forward_is_exact_without_dropout(model):
    # training mode (ranges recorded) with dropout 0: the forward's codes are those of the
    # integer model lowered from the quantizer state that forward left behind (SMP is left
    # out only because the export takes the lambdas of an eval pass)
    kw = {"layers": 2} if model == "gcn" else {}
    d, g, res = train_tiny(model, 2, epochs=2, dropout=0.0, **kw)
    m = res.model
    x = torch.from_numpy(preprocess_features(d.x.numpy(), d.normalize))
    rec: list = []
    m.train()
    m(x, g, record=rec)
    m.eval()
    im = lower(m, g, num_features=d.num_features, normalize=d.normalize)
    ref = im.run(d.x.numpy(), keep=True)
    assert [k for k, _ in rec] == [op.op for op in im.ops]
    for (kind, codes), op in zip(rec, im.ops):
        assert np.array_equal(codes.numpy(), ref[op.out]), (kind, op.out)


def test_fake_quant_and_integer_accuracy_are_equal():
    from trainer_fixtures import tiny_graph

    from training.config import ModelConfig, TrainConfig
    from training.run import run_seeds

    d = tiny_graph(1)
    r = run_seeds(d, ModelConfig(model="smp", bits=2, bt="BT*", layers=3, hidden=8),
                  TrainConfig(epochs=4, seeds=(0, 1)))
    m = r.metrics
    assert m["test_acc"]["fake_quant"] == m["test_acc"]["integer"]
    assert m["val_acc"]["fake_quant"] == m["val_acc"]["integer"]
    assert m["gap_test_points"] == 0
    assert m["exact_forward"] is True and m["integer_equals_forward"] is True


def test_stage_gap_of_an_exact_model_is_zero():
    from training.stage_gap import stage_gaps

    d, g, res = train_tiny("smp", 2, epochs=2, bt="BT")
    im = lower(res.model, g, num_features=d.num_features, normalize=d.normalize)
    rows = stage_gaps(res.model, im, g, d.x.numpy())
    assert rows[-1].kind == "pred" and {"propagate", "add", "linear", "input"} <= {r.kind for r in rows}
    assert all(r.local == 0 and r.cumulative == 0 for r in rows)


@pytest.mark.parametrize("bits,bt", [(8, None), (2, "BT*")])
def test_smp_constraint_coefficient_keeps_its_precision(bits, bt):
    # docs/numerics.md section 6: 16 significant bits within 2**14 of the larger ratio, and
    # 30 - log2(ratio spread) bits beyond (here at least 12, the old shared shift gave 0-5)
    import math

    d, g, res = train_tiny("smp", bits, epochs=2, bt=bt)
    m = res.model
    im = lower(m, g, num_features=d.num_features, normalize=d.normalize)
    ys = [op for op in im.ops if op.op == "add" and ".y." in op.out and ".bt" not in op.out]
    assert len(ys) == len(m.steps)
    for k, (op, step) in enumerate(zip(ys, m.steps)):
        c = 2 * m.cfg.teleport * float(m.last_lambdas[k])
        ratio = c * float(step.q_d.qparams()[0]) / float(step.q_y.qparams()[0])
        if ratio == 0:
            assert op.b_mult == 0
            continue
        ra = float(step.q_xt.qparams()[0]) / float(step.q_y.qparams()[0])
        spread = math.frexp(ra)[1] - math.frexp(ratio)[1]
        bits = min(16, 30 - spread)
        assert bits >= 12 and op.b_mult != 0
        assert abs(op.b_mult / 2 ** op.shift - ratio) <= ratio * 2.0 ** -bits


@pytest.mark.parametrize("seed", range(12))
def test_fast_aggregate_equals_reference(seed):
    # hubs, self loops, duplicates, isolated nodes; wide and narrow (saturating) accumulators
    from quant.aggregate import AggregationParams, Requantizer, aggregate_reference
    from quant.spec import QuantSpec
    from training.exact import aggregate_fast
    from training.graph import build_prop_graph

    rng = np.random.default_rng(seed)
    n, f = 9, [3, 1, 6, 4][seed % 4]
    e = int(rng.integers(0, 30))
    src = rng.integers(0, n, e)
    dst = np.zeros(e, dtype=np.int64) if seed % 3 == 0 else rng.integers(0, n, e)
    g = build_prop_graph(torch.from_numpy(np.stack([src, dst])), n)
    bits = [2, 4, 8][seed % 3]
    xs, ws = QuantSpec(bits), QuantSpec(8)
    out = QuantSpec(bits)
    req = lambda: Requantizer(int(rng.integers(1, 1 << 15)), int(rng.integers(6, 18)),
                              int(rng.integers(0, out.qmax + 1)), out)
    acc_bits = [None, bits + 4][seed % 2] or 40
    p = AggregationParams(xs, int(rng.integers(0, xs.qmax + 1)), ws, 0, acc_bits, out=req(),
                          msg=req() if seed % 4 else None, upd=req() if seed % 5 else None)
    x = rng.integers(0, xs.qmax + 1, (n, f))
    w = rng.integers(0, 256, g.indices.shape)
    ref = aggregate_reference(g.indptr, g.indices, w, x, p).y
    got = aggregate_fast(g, torch.from_numpy(w), torch.from_numpy(x), p)
    assert np.array_equal(got.numpy(), ref)


@pytest.mark.parametrize("model,kw", [("smp", {"msg_quant": False}), ("appnp", {"upd_quant": False}),
                                      ("smp", {"warm_start": True})])
def test_other_stage_options_are_exact(model, kw):
    d, g, res = train_tiny(model, 4, epochs=2, **kw)
    _assert_stages_equal(res.model, d, g)


@pytest.mark.parametrize("seed", range(8))
def test_add_codes_equals_reference(seed):
    # signed multipliers, every shift sign, broadcast-free shapes, clamped extremes
    from quant.reference import add_requantize
    from quant.spec import QuantSpec
    from training.exact_kernels import add_codes

    rng = np.random.default_rng(seed)
    spec = QuantSpec([2, 4, 8][seed % 3], signed=bool(seed % 2))
    a = rng.integers(-255, 256, (7, 5))
    b = rng.integers(-255, 256, (7, 5))
    a[0, 0], b[0, 0] = 255, 255
    ma, mb = (int(v) for v in rng.integers(-(1 << 15), 1 << 15, 2))
    n = [0, 5, 17, -2][seed % 4]
    za, zb, z = int(rng.integers(0, 256)), int(rng.integers(0, 256)), int(spec.qmin + seed % 2)
    want = add_requantize(a, za, ma, b, zb, mb, n, z, spec)
    got, vals = add_codes(a, za, ma, b, zb, mb, n, z, spec.qmin, spec.qmax)
    assert vals is None
    assert got.dtype == np.int64 and np.array_equal(got, want)


@pytest.mark.parametrize("seed", range(12))
def test_requant_chain_equals_reference(seed):
    # one or two requantizers, every shift sign, clamped extremes; a product past the
    # reference's limit is left to the validated path (None), which refuses it
    from quant.aggregate import Requantizer
    from quant.errors import QuantError
    from quant.reference import requantize
    from quant.spec import QuantSpec
    from quant.torch_ops import requantize as requantize_t
    from training.exact_kernels import requant_chain

    rng = np.random.default_rng(seed)
    spec1 = QuantSpec([2, 4, 8, 3][seed % 4], signed=bool(seed % 2))
    spec2 = QuantSpec([8, 4, 2][seed % 3], signed=bool(seed % 3 == 1))

    def req(spec, n):
        return Requantizer(int(rng.integers(1, 1 << 20)), n,
                           int(rng.integers(spec.qmin, spec.qmax + 1)) if not spec.signed else 0,
                           spec)

    first = req(spec1, [0, 9, 23, -2][seed % 4])
    second = req(spec2, [14, 0, -1][seed % 3]) if seed % 2 else None
    v = rng.integers(-(1 << 30), 1 << 30, (13, 3))
    v[0, 0], v[0, 1], v[0, 2] = 0, (1 << 30) - 1, -(1 << 30)
    want = requantize(v, first.multiplier, first.shift, first.zero_point, first.spec)
    if second is not None:
        want = requantize(want.astype(np.int64) - first.zero_point, second.multiplier,
                          second.shift, second.zero_point, second.spec)
    got, vals = requant_chain(v, first, second)
    assert vals is None
    assert got.dtype == np.int64 and np.array_equal(got, want)
    big = np.full((2, 2), 1 << 40, dtype=np.int64)
    huge = Requantizer((1 << 31) - 1, -8, 0, QuantSpec(8))
    assert requant_chain(big, huge) is None
    with pytest.raises(QuantError):
        requantize_t(torch.from_numpy(big), huge.multiplier, huge.shift, 0, huge.spec)


@pytest.mark.parametrize("skew", [-42, -5, 0, 17, 42])
@pytest.mark.parametrize("bt", [None, "BT*"])
def test_kernel_tail_equals_snap_and_dequantize(skew, bt):
    # the add and requantization kernels' tail: BT's snap (the two add ops' arithmetic) and
    # the dequantization in the same call equal snap_codes with a record and dequantize
    from quant.aggregate import Requantizer
    from quant.quantizers import QLRQuantizer
    from training.exact import _tail, snap_codes
    from training.exact_kernels import add_codes, dequantize, requant_chain

    q = QLRQuantizer(2, bt_mode=bt) if bt else QLRQuantizer(8)
    if bt:
        q.skew.fill_(skew)
    spec, s, z = q.code_spec, float(np.float32(0.0123 * (1 + abs(skew)))), 3
    tail = _tail(q, s, z)
    rng = np.random.default_rng(skew + 50)
    v = rng.integers(-(1 << 14), 1 << 14, (40, 7))
    first = Requantizer(int(rng.integers(1 << 11, 1 << 12)), 18, z, spec)
    plain, _ = requant_chain(v, first)
    codes, vals = requant_chain(v, first, None, tail)
    a, b = rng.integers(0, 256, (2, 40, 7))
    plain_add, _ = add_codes(a, 7, 3001, b, 250, -977, 13, z, spec.qmin, spec.qmax)
    codes_add, vals_add = add_codes(a, 7, 3001, b, 250, -977, 13, z, spec.qmin, spec.qmax, tail)
    for raw, got, got_vals in ((plain, codes, vals), (plain_add, codes_add, vals_add)):
        assert len(np.unique(raw)) > 4
        want = snap_codes(q, torch.from_numpy(raw), record=[]).numpy()
        assert got.dtype == np.int64 and np.array_equal(got, want)
        assert got_vals.dtype == np.float32
        assert np.array_equal(got_vals.view(np.int32), dequantize(want, z, s).view(np.int32))


@pytest.mark.parametrize("seed", range(10))
def test_message_table_kernel_equals_tensor_ops(seed):
    # every pair's requantized, centred message (or the bare product), as the validated
    # tensor ops compute it; a product past the reference's limit is left to them (None)
    from quant.aggregate import Requantizer
    from quant.spec import QuantSpec
    from quant.torch_ops import requantize
    from training.exact_kernels import message_table

    rng = np.random.default_rng(seed)
    xs, ws = QuantSpec([2, 4, 8][seed % 3]), QuantSpec([8, 4][seed % 2], signed=seed % 4 == 3)
    xz = int(rng.integers(xs.qmin, xs.qmax + 1))
    wz = int(rng.integers(ws.qmin, ws.qmax + 1))
    ms = QuantSpec([4, 8, 2][seed % 3])
    msg = None if seed % 5 == 4 else Requantizer(int(rng.integers(1, 1 << 16)),
                                                  [3, 17, -2, 0][seed % 4],
                                                  int(rng.integers(ms.qmin, ms.qmax + 1)), ms)
    x = torch.arange(xs.qmin, xs.qmax + 1, dtype=torch.int64)
    w = torch.arange(ws.qmin, ws.qmax + 1, dtype=torch.int64)
    want = (x - xz)[:, None] * (w - wz)[None, :]
    if msg is not None:
        want = requantize(want, msg.multiplier, msg.shift, msg.zero_point, msg.spec).to(
            torch.int64) - msg.zero_point
    got = message_table((xs.qmin, xs.qmax), xz, (ws.qmin, ws.qmax), wz, msg)
    assert got.dtype == (np.int16 if int(want.abs().max()) <= 32767 else np.int32)
    assert np.array_equal(got.astype(np.int64), want.numpy())
    huge = Requantizer((1 << 31) - 1, -30, 0, QuantSpec(8))
    assert message_table((0, 255), 0, (0, 255), 0, huge) is None


@pytest.mark.parametrize("scale", [1.0, 0.1, 3.0e-5, 7.25e3])
def test_dequantize_kernel_equals_torch_bits(scale):
    from quant.torch_ops import dequantize as dequantize_t
    from training.exact_kernels import dequantize

    s = float(np.float32(scale))
    q = torch.arange(-300, 300, dtype=torch.int64).reshape(60, 10)
    q[0, 0] = (1 << 25) + 1  # rounded to float32 like torch's conversion
    for z in (0, 7, -128, 255):
        got = torch.from_numpy(dequantize(q.numpy(), z, s))
        want = dequantize_t(q, s, z)
        assert torch.equal(got.view(torch.int32), want.view(torch.int32))


@pytest.mark.parametrize("seed", range(6))
def test_linear_kernels_equal_the_tensor_ops(seed):
    # the exact linear layer's one-pass operand and accumulators against the tensor ops
    # they replace: codes.to(dt) - zero, masked where the dropped-out input is 0, the float
    # product to int64, the dropout rescaling rounded half to even, the int32 bias
    from training.exact_kernels import centred_max, centred_operand, linear_accumulators

    rng = np.random.default_rng(seed)
    n, k, c = 50, [3, 16, 64][seed % 3], [2, 7][seed % 2]
    codes = torch.from_numpy(rng.integers(-128, 256, (n, k)))
    zero = int(rng.integers(-10, 130))
    assert centred_max(codes.numpy(), zero) == int((codes - zero).abs().max())
    assert centred_max(np.zeros((0, 3), dtype=np.int64), 5) == 0
    xv = torch.from_numpy(rng.standard_normal((n, k)).astype(np.float32))
    xv[rng.random((n, k)) < 0.4] = 0.0
    xv[0, 0] = -0.0
    for dt, npdt in ((torch.float32, np.float32), (torch.float64, np.float64)):
        want = codes.to(dt) - zero
        assert torch.equal(torch.from_numpy(centred_operand(codes.numpy(), zero, npdt, None)), want)
        want.masked_fill_(xv == 0, 0)
        got = torch.from_numpy(centred_operand(codes.numpy(), zero, npdt, xv.numpy()))
        assert torch.equal(got.view(torch.int64 if dt == torch.float64 else torch.int32),
                           want.view(torch.int64 if dt == torch.float64 else torch.int32))
    prod = torch.from_numpy(rng.integers(-(1 << 20), 1 << 20, (n, c)).astype(np.float64))
    prod[0, :2] = torch.tensor([3.0, -5.0])        # ties after the rescaling by 1/2
    bias = rng.integers(-(1 << 20), 1 << 20, c).astype(np.int64)
    for p in (0.5, 0.1, 0.3, 0.7):
        want = torch.round(prod.to(torch.int64).to(torch.float64) / (1.0 - p)).to(torch.int64)
        want = want + torch.from_numpy(bias)[None, :]
        assert np.array_equal(linear_accumulators(prod.numpy(), 1.0 - p, bias), want.numpy())
        assert np.array_equal(linear_accumulators(prod.float().numpy(), None, None),
                              prod.float().to(torch.int64).numpy())


@pytest.mark.parametrize("skew", [-42, -7, 0, 13, 42])
def test_snap_lookup_equals_the_two_add_ops(skew):
    # BT's snap without a record (the table lookup: one numba pass on the CPU) gives the
    # codes of the export's two add ops, for every 8-bit code; a code off the table raises
    from quant.quantizers import QLRQuantizer
    from training.exact import snap_codes

    q = QLRQuantizer(2, bt_mode="BT*")
    q.skew.fill_(skew)
    perm = torch.randperm(256, generator=torch.Generator().manual_seed(skew + 42))
    codes = torch.arange(256, dtype=torch.int64).repeat(3).reshape(3, 256)[:, perm]
    want = snap_codes(q, codes, record=[])
    got = snap_codes(q, codes)
    assert got.dtype == torch.int64 and torch.equal(got, want)
    with pytest.raises(IndexError):
        snap_codes(q, torch.tensor([[3, 256]]))


@pytest.mark.parametrize("model", ["smp", "gcn"])
@pytest.mark.parametrize("config", ["int4", "int2", "int2-bt", "int2-btstar"])
def test_published_code_mode_evaluates_with_the_exact_forward(model, config):
    # --paper-code trains with the published float forward, and its evaluation forward is
    # the integer-exact one: every stage equals the exported model's, on the published BT
    # grid (no exact zero) and SMP update too
    bits, bt = CONFIGS[config]
    kw = {"layers": 2} if model == "gcn" else {}
    d, g, res = train_tiny(model, bits, epochs=3, bt=bt, paper_code=True, **kw)
    cfg = res.model.cfg
    assert not cfg.exact_forward and cfg.exact_eval
    logits, im, ref = _assert_stages_equal(res.model, d, g)
    assert np.array_equal(integer.predict(im, d.x).numpy(), logits.argmax(1).numpy())


def test_published_code_mode_accuracies_are_equal_and_exact_false_keeps_the_float_forward():
    import dataclasses

    from trainer_fixtures import tiny_graph

    from training.config import ModelConfig, TrainConfig
    from training.run import run_seeds

    d = tiny_graph(1)
    cfg = ModelConfig(model="smp", bits=2, layers=3, hidden=8, paper_code=True)
    m = run_seeds(d, cfg, TrainConfig(epochs=4, seeds=(0, 1))).metrics
    assert m["test_acc"]["fake_quant"] == m["test_acc"]["integer"]
    assert m["val_acc"]["fake_quant"] == m["val_acc"]["integer"]
    assert m["exact_forward"] is False and m["exact_eval"] is True
    assert m["integer_equals_forward"] is True
    # exact=False: the float fake-quant forward in evaluation too (what stage_gap's
    # --forward fake-quant compares)
    flt = dataclasses.replace(cfg, exact=False)
    assert not flt.exact_forward and not flt.exact_eval
    assert not ModelConfig(model="emp", bits=2, paper_code=True).exact_eval
    assert not ModelConfig(model="smp", bits=None, paper_code=True).exact_eval
