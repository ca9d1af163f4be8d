"""The packed (SWAR) kernel equals the exact kernel and the reference, saturating rows included."""

from __future__ import annotations

import numpy as np
import pytest

from quant.aggregate import aggregate_reference
from sim import functional as fn
from sim.design import DesignPoint
from sim.golden import KINDS, make_random_case


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_packed_equals_reference(bits, signed, kind):
    dp = DesignPoint(bits=bits, signed=signed, upd_requant=kind in ("hub", "empty"), max_degree=32)
    for seed, f in ((1, None), (2, 7), (3, 100)):
        c = make_random_case(dp, seed, kind=kind, num_features=f)
        assert fn.packed_supported(c.params)
        r = fn.aggregate_packed(c.indptr, c.indices, c.w, fn.pack_operand(c.x, c.params.x_spec),
                                c.num_features, c.params)
        ref = aggregate_reference(c.indptr, c.indices, c.w, c.x, c.params)
        assert np.array_equal(r.y.astype(np.int32), ref.y) and r.saturations == ref.saturations


def test_packed_refuses_message_stage():
    c = make_random_case(DesignPoint(bits=4, msg_requant=True), 1)
    assert not fn.packed_supported(c.params)
    with pytest.raises(ValueError, match="packed kernel"):
        fn.aggregate_packed(c.indptr, c.indices, c.w, fn.pack_operand(c.x, c.params.x_spec),
                            c.num_features, c.params)
