"""Integer inference equals the quant/ reference exactly: every stage, every op, whole models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quant.aggregate import AggregationParams, Requantizer, aggregate_reference
from quant.csr import csr_from_edge_index
from quant.reference import acc_bits_required
from quant.spec import QuantSpec
from training import integer
from training.lowering import LoweringError, lower

from trainer_fixtures import train_tiny


def _params(bits, wbits, acc_bits, msg, upd, rng):
    x_spec, w_spec = QuantSpec(bits), QuantSpec(wbits)
    out_spec = QuantSpec(bits)
    r = lambda: Requantizer(int(rng.integers(1, 1 << 15)), int(rng.integers(8, 20)),  # noqa: E731
                            int(rng.integers(0, out_spec.qmax + 1)), out_spec)
    return AggregationParams(x_spec, int(rng.integers(0, x_spec.qmax + 1)), w_spec, 0, acc_bits,
                             out=r(), msg=r() if msg else None, upd=r() if upd else None)


def _check(edges, n, f, bits, wbits, msg, upd, seed, acc_bits=None):
    rng = np.random.default_rng(seed)
    ei = np.asarray(edges, dtype=np.int64).reshape(2, -1)
    indptr, indices, _ = csr_from_edge_index(ei, n)
    deg = max(1, int(np.diff(indptr).max()) if n else 1)
    acc = acc_bits or acc_bits_required(bits, wbits, deg)
    p = _params(bits, wbits, acc, msg, upd, rng)
    x = rng.integers(0, 1 << bits, size=(n, f))
    w = rng.integers(0, 1 << wbits, size=indices.shape)
    ref = aggregate_reference(indptr, indices, w, x, p)
    got, sats = integer.aggregate(torch.from_numpy(indptr), torch.from_numpy(indices),
                                  torch.from_numpy(w), torch.from_numpy(x), p)
    assert got.dtype == torch.int32
    assert np.array_equal(got.numpy(), ref.y)
    assert sats == ref.saturations


HAND_GRAPHS = {
    "hub": ([[1, 2, 3, 4, 5, 0], [0, 0, 0, 0, 0, 1]], 6),
    "isolated": ([[0, 1], [1, 0]], 5),
    "self_loops": ([[0, 1, 1, 2], [0, 1, 2, 2]], 3),
    "duplicates": ([[0, 0, 0, 1], [1, 1, 1, 0]], 2),
    "empty": ([[], []], 3),
}


@pytest.mark.parametrize("name", sorted(HAND_GRAPHS))
@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("msg,upd", [(False, False), (True, False), (True, True), (False, True)])
def test_aggregate_hand_built(name, bits, msg, upd):
    edges, n = HAND_GRAPHS[name]
    _check(edges, n, 5, bits, 8, msg, upd, seed=bits)


def test_aggregate_saturates_like_reference():
    # narrow accumulator: rows overflow and must be clamped edge by edge in CSR order
    edges = [[1, 2, 3, 4, 5, 1, 2, 3], [0, 0, 0, 0, 0, 1, 1, 1]]
    for seed in range(5):
        _check(edges, 6, 4, 8, 8, False, False, seed, acc_bits=12)
        _check(edges, 6, 4, 4, 8, True, False, seed, acc_bits=5)


@st.composite
def graphs(draw):
    n = draw(st.integers(1, 12))
    e = draw(st.integers(0, 40))
    hub = draw(st.booleans())
    src = draw(st.lists(st.integers(0, n - 1), min_size=e, max_size=e))
    dst = [0] * e if hub else draw(st.lists(st.integers(0, n - 1), min_size=e, max_size=e))
    return [src, dst], n


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(g=graphs(), bits=st.sampled_from([2, 4, 8]), wbits=st.sampled_from([4, 8]),
       msg=st.booleans(), upd=st.booleans(), seed=st.integers(0, 2**16),
       narrow=st.booleans())
def test_aggregate_hypothesis(g, bits, wbits, msg, upd, seed, narrow):
    edges, n = g
    _check(edges, n, 3, bits, wbits, msg, upd, seed, acc_bits=(bits + 3) if narrow else None)


@pytest.mark.parametrize("model,kw", [("smp", {}), ("appnp", {}), ("gcn", {"layers": 2}),
                                      ("smp", {"paper_code": True}), ("smp", {"msg_quant": False}),
                                      ("appnp", {"upd_quant": False})])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_whole_model_every_tensor_equals_numpy(model, kw, bits):
    d, g, res = train_tiny(model, bits, epochs=2, **kw)
    res.model.eval()
    with torch.no_grad():
        res.model(torch.from_numpy(np.asarray(d.x.numpy(), np.float32)), g)
    im = lower(res.model, g, num_features=d.num_features, normalize=d.normalize)
    got = integer.run(im, d.x, keep=True)
    ref = im.run(d.x.numpy(), keep=True)
    assert set(got) == set(ref)
    for name in ref:
        assert np.array_equal(got[name].numpy(), ref[name]), name
    assert {op.op for op in im.ops} >= {"input", "linear", "propagate", "argmax"}


def test_fake_quant_and_integer_agree_closely(tiny_smp):
    d, g, res = tiny_smp
    res.model.eval()
    with torch.no_grad():
        fq = res.model(d.x, g).argmax(1)
    im = lower(res.model, g, num_features=d.num_features, normalize=d.normalize)
    it = integer.predict(im, d.x).long()
    assert float((fq == it).float().mean()) >= 0.9


def test_fp32_and_emp_refuse_lowering():
    d, g, res = train_tiny("smp", None, epochs=1)
    with pytest.raises(LoweringError, match="FP32"):
        lower(res.model, g, num_features=d.num_features, normalize=None)
    d, g, res = train_tiny("emp", 4, epochs=1)
    with pytest.raises(LoweringError, match="emp"):
        lower(res.model, g, num_features=d.num_features, normalize=None)


@pytest.mark.parametrize("model", ["smp", "appnp", "gcn"])
@pytest.mark.parametrize("bt", ["BT", "BT*"])
def test_bt_models_every_tensor_equals_numpy(model, bt):
    d, g, res = train_tiny(model, 2, epochs=2, bt=bt, **({"layers": 2} if model == "gcn" else {}))
    im = lower(res.model, g, num_features=d.num_features, normalize=d.normalize)
    got = integer.run(im, d.x, keep=True)
    ref = im.run(d.x.numpy(), keep=True)
    for name in ref:
        assert np.array_equal(got[name].numpy(), ref[name]), name
    snapped = [n for n in ref if n.endswith(".bt") or ".bt." in n]
    assert snapped
    for n in snapped:
        if not n.split(".")[-2].endswith("bt_level"):
            assert set(np.unique(ref[n])) <= {0, 85, 170, 255}


@pytest.mark.parametrize("skew", [-127, -5, 0, 1, 3, 42, 127])
def test_truncation_add_is_exact(skew):
    from quant.truncation import truncate_codes
    from training.lowering import truncation_multipliers
    ma, mb, n = truncation_multipliers(skew)
    y = np.arange(256)
    c = np.clip(((y * ma + mb + (1 << (n - 1))) >> n), 0, 3)
    assert np.array_equal(85 * c, truncate_codes(y, skew))
