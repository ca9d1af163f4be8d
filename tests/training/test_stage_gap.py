"""training.stage_gap: per-stage comparison of fake-quant and integer codes."""

from __future__ import annotations

import pytest
import torch

from training.layers import QuantLinear
from training.lowering import lower
from training.stage_gap import format_table, stage_gaps

from trainer_fixtures import train_tiny


def _gaps(res, d, g):
    res.model.eval()
    with torch.no_grad():
        res.model(d.x, g)
    im = lower(res.model, g, num_features=d.num_features, normalize=d.normalize)
    return stage_gaps(res.model, im, g, d.x.numpy())


@pytest.mark.parametrize("model,kw", [("smp", {}), ("appnp", {}), ("gcn", {"layers": 2}),
                                      ("smp", {"bt": "BT*"}), ("smp", {"msg_quant": False})])
def test_paper_code_linear_stages_have_no_gap(model, kw):
    # exact=False: the published-code model evaluated with its float fake-quant forward
    # (by default its evaluation is integer-exact), as stage_gap's --forward fake-quant
    d, g, res = train_tiny(model, 2, epochs=3, paper_code=True, exact=False, **kw)
    rows = _gaps(res, d, g)
    kinds = {r.kind for r in rows}
    assert {"agg", "pred"} <= kinds
    assert ("msg" in kinds) == kw.get("msg_quant", True)
    assert ("bt" in kinds) == ("bt" in kw)
    assert ("linear" in kinds) == ("bt" not in kw)   # BT linear stages end in their snap
    assert len({r.name for r in rows}) == len(rows)
    assert all(0 <= r.local <= 1 for r in rows)
    first = [r for r in rows if r.kind in ("linear", "bt")][:2]
    assert len(first) == 2 and all(r.local == 0 for r in first), format_table(rows, True)
    if model != "appnp":
        # every stage exact here; the APPNP model has a few message codes at float32 /
        # fixed-point near-ties (docs/training.md, "Fake-quant / integer gap")
        assert all(r.local == 0 for r in rows), format_table(rows, only_nonzero=True)
        assert all(not r.cumulative for r in rows)


def test_float_bias_gap_is_local_to_the_linear_stages():
    d, g, res = train_tiny("smp", 2, epochs=3, paper_code=True, exact=False)
    for m in res.model.modules():
        if isinstance(m, QuantLinear):
            m.bias_quant = False      # the float bias the integer model cannot hold
    rows = _gaps(res, d, g)
    bad = {r.kind for r in rows if r.local > 0}
    assert bad == {"linear"}
    lin = [r for r in rows if r.kind == "linear"]
    assert lin[0].local == lin[0].cumulative > 0
    assert all(0 <= r.local <= 1 for r in rows)
    assert "| lin1." in format_table(rows, only_nonzero=True)
