"""Golden vectors: expected outputs equal the reference, every kind is what it says,
files round-trip exactly and corrupted or foreign files are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quant.aggregate import aggregate_reference
from sim.verify import golden
from sim.design.point import DesignPoint
from sim.verify.golden import GoldenFormatError


def _design(bits, msg, upd):
    return DesignPoint(bits=bits, msg_requant=msg, upd_requant=upd, max_degree=32)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("msg, upd", [(False, False), (True, True), (False, True)])
@pytest.mark.parametrize("kind", golden.KINDS)
def test_case_equals_reference_and_has_its_kind(bits, msg, upd, kind):
    dp = _design(bits, msg, upd)
    c = golden.make_random_case(dp, seed=bits * 10 + msg + 2 * upd, kind=kind, num_nodes=12)
    ref = aggregate_reference(c.indptr, c.indices, c.w, c.x, c.params)
    assert np.array_equal(ref.y, c.y) and ref.saturations == c.saturations
    assert (c.params.msg is not None) == msg and (c.params.upd is not None) == upd
    assert c.params.acc_bits == c.design.acc_width
    assert c.num_features == dp.lanes
    deg = np.diff(c.indptr)
    dst = np.repeat(np.arange(c.num_nodes), deg)
    if kind == "hub":
        assert deg.max() == dp.max_degree
    elif kind == "empty":
        assert (deg == 0).sum() >= c.num_nodes // 2
    elif kind == "selfloop":
        assert (c.indices == dst).sum() >= c.num_nodes
    elif kind == "duplicate":
        pairs = dst * c.num_nodes + c.indices
        assert np.unique(pairs).size < pairs.size
    elif kind == "saturate":
        assert c.saturations > 0 and deg.max() > c.design.max_degree
    if kind != "saturate":
        assert c.saturations == 0


def test_same_seed_same_case():
    dp = _design(4, True, False)
    a, b = (golden.make_random_case(dp, 3, kind="random") for _ in range(2))
    assert a.checksum() == b.checksum() and a.params == b.params


def test_round_trip_exact(tmp_path):
    cases = golden.make_suite(_design(2, True, True), count=len(golden.KINDS), seed=5)
    golden.save_cases(cases, tmp_path)
    back = golden.load_cases(tmp_path)
    assert [c.name for c in back] == [c.name for c in cases]
    for a, b in zip(cases, back):
        for k in golden.ARRAYS:
            x, y = getattr(a, k), getattr(b, k)
            assert x.dtype == y.dtype and np.array_equal(x, y)
        assert a.design == b.design and a.params == b.params
        assert a.saturations == b.saturations and a.meta == b.meta
    assert not list(tmp_path.glob(".*tmp"))


def _saved(tmp_path):
    c = golden.make_random_case(_design(4, False, False), 1, kind="random", name="c1")
    golden.save_case(c, tmp_path)
    return c, tmp_path / "c1.json", tmp_path / "c1.npz"


@pytest.mark.parametrize("field, value, msg", [
    ("format_version", 99, "format_version must be 1"),
    ("contract_version", 0, "contract_version must be"),
    ("format", "other", "format must be"),
    ("checksum", "0" * 64, "checksum"),
])
def test_refuses_mismatched_header(tmp_path, field, value, msg):
    _, js, _ = _saved(tmp_path)
    head = json.loads(js.read_text())
    head[field] = value
    js.write_text(json.dumps(head))
    with pytest.raises(GoldenFormatError, match=msg):
        golden.load_case(js)


def test_refuses_corrupted_arrays_and_unknown_design_key(tmp_path):
    c, js, npz = _saved(tmp_path)
    arrays = {k: getattr(c, k).copy() for k in golden.ARRAYS}
    arrays["y"][0, 0] ^= 1
    np.savez(npz, **arrays)
    with pytest.raises(GoldenFormatError, match="checksum"):
        golden.load_case(js)
    _, js, _ = _saved(tmp_path)
    head = json.loads(js.read_text())
    head["design"]["lane_count"] = 3
    js.write_text(json.dumps(head))
    with pytest.raises(GoldenFormatError, match="lane_count"):
        golden.load_case(js)
    with pytest.raises(GoldenFormatError, match="does not exist"):
        golden.load_case(tmp_path / "missing")


def test_case_from_propagation():
    dp = _design(4, False, False)
    src = golden.make_random_case(dp, 2, kind="duplicate")
    c = golden.case_from_propagation("layer0", dp, src.params, src.indptr, src.indices, src.w,
                                     src.x, source="test")
    assert np.array_equal(c.y, src.y) and c.meta["source"] == "test"
