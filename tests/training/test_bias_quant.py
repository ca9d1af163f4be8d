"""Paper-code mode fake-quantizes the linear bias as the integer model stores it (at s_x s_w),
so the fake-quant linear outputs equal the integer model's codes exactly; the corrected mode
keeps the float bias (its saved runs stay valid)."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.model_ir import LinearOp
from quant.reference import quantize_bias
from training import integer
from training.layers import QuantLinear, fake_quant_bias
from training.lowering import lower

from trainer_fixtures import train_tiny



@settings(max_examples=200, deadline=None)
@given(b=st.lists(st.floats(-8.0, 8.0, width=32), min_size=1, max_size=16),
       sx=st.floats(2.0 ** -13, 4.0, width=32), sw=st.floats(2.0 ** -13, 4.0, width=32))
def test_fake_quant_bias_is_the_exported_int32_bias(b, sx, sw):
    bias = torch.tensor(b, dtype=torch.float32, requires_grad=True)
    out = fake_quant_bias(bias, torch.tensor(sx), torch.tensor(sw))
    want = quantize_bias(np.asarray(b, np.float32), np.float32(sx), np.float32(sw))
    s = float(np.float32(sx)) * float(np.float32(sw))
    assert out.dtype == torch.float32
    assert np.array_equal(np.rint(out.detach().double().numpy() / s).astype(np.int64), want.astype(np.int64))
    assert np.array_equal(out.detach().numpy(), (want.astype(np.float64) * s).astype(np.float32))
    out.sum().backward()
    assert torch.equal(bias.grad, torch.ones_like(bias))  # straight-through


def test_bias_saturates_to_int32_in_both_paths():
    # a layer whose s_x * s_w is tiny against its bias (a collapsed deep GCN): the bias code is
    # the nearest int32, the same in the export and in the fake-quant path
    from quant.reference import BIAS_MAX, BIAS_MIN

    b = np.array([3.0, -3.0, 1e-9, 0.0], dtype=np.float32)
    sx, sw = np.float32(1e-6), np.float32(1e-4)
    want = quantize_bias(b, sx, sw)
    assert want.dtype == np.int32 and want.tolist()[:2] == [BIAS_MAX, BIAS_MIN]
    s = float(sx) * float(sw)
    assert want.tolist()[2:] == [int(np.rint(1e-9 / s)), 0]
    out = fake_quant_bias(torch.tensor(b), torch.tensor(sx), torch.tensor(sw))
    # the straight-through form b + (v - b) is v up to one float32 rounding at b's magnitude
    # when v is far from b
    np.testing.assert_allclose(out.numpy(), (want.astype(np.float64) * s).astype(np.float32),
                               rtol=0, atol=float(np.spacing(np.abs(b)).max()))


def _fake_linear_codes(model, x, graph) -> list[torch.Tensor]:
    """The q_out codes of every QuantLinear of an eval-mode forward, in call order."""
    lins = [m for m in model.modules() if isinstance(m, QuantLinear)]
    codes = []
    hooks = [m.q_out.register_forward_hook(lambda mod, inp, out: codes.append(mod.to_int(inp[0])))
             for m in lins]
    model.eval()
    with torch.no_grad():
        logits = model(x, graph)
    for h in hooks:
        h.remove()
    return codes, logits


@pytest.mark.parametrize("model,kw", [("smp", {}), ("gcn", {"layers": 2}), ("smp", {"bt": "BT*"})])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_paper_code_linear_outputs_equal_integer_codes(model, kw, bits):
    if kw.get("bt") and bits != 2:
        pytest.skip("BT is INT2 only")
    # exact=False: the published-code model's float fake-quant forward in evaluation too (by
    # default its evaluation is the integer-exact forward)
    d, g, res = train_tiny(model, bits, epochs=3, paper_code=True, exact=False, **kw)
    assert all(m.bias_quant for m in res.model.modules() if isinstance(m, QuantLinear))
    codes, logits = _fake_linear_codes(res.model, d.x, g)
    im = lower(res.model, g, num_features=d.num_features, normalize=d.normalize)
    env = integer.run(im, d.x, keep=True)
    lin_ops = [op for op in im.ops if isinstance(op, LinearOp)]
    assert len(lin_ops) == len(codes) >= 2
    for op, fq in zip(lin_ops, codes):
        # a BT stage's codes are those after its snap to four levels (``<out>.bt.<n>``)
        name = ([o.out for o in im.ops if o.out.startswith(f"{op.out}.bt.")] or [op.out])[-1]
        assert torch.equal(env[name], fq), name
    assert torch.equal(env["pred"], logits.argmax(1).to(torch.int32))


def test_corrected_mode_keeps_the_float_bias():
    d, g, res = train_tiny("smp", 2, epochs=2)
    lin = res.model.lin1
    assert lin.bias_quant is False
    lin.eval()
    with torch.no_grad():
        xq = lin.q_in(d.x)
        want = lin.q_out(F.linear(xq, lin.q_w(lin.lin.weight), lin.lin.bias))
        assert torch.equal(lin(d.x), want)


def test_saved_run_reexports_identically(tmp_path):
    """A ``quagga train`` INT2 run re-exported from its checkpoint (loaded as data, tensors
    only) gives the saved model file's ops, tensors and integer predictions, exactly."""
    from quagga.cli import main

    run = tmp_path / "run"
    assert main(["train", "--bits", "2", "--epochs", "3", "--layers", "3", "--no-progress",
                 "--out", str(run)]) == 0
    from quant import model_ir
    from quant.model_ir import preprocess_features
    from training.config import ModelConfig
    from training.data import load_dataset
    from training.graph import build_prop_graph
    from training.models import build_model

    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    cfg = ModelConfig(**ck["model_config"])
    assert not cfg.paper_code
    data = load_dataset(ck["dataset"], None)
    model = build_model(cfg, data.num_features, data.num_classes)
    model.load_state_dict(ck["state_dict"])
    graph = build_prop_graph(data.edge_index, data.num_nodes)
    model.eval()
    with torch.no_grad():
        model(torch.from_numpy(preprocess_features(data.x.numpy(), data.normalize)), graph)
    im = lower(model, graph, num_features=data.num_features, normalize=data.normalize)
    saved = model_ir.load(run / "model.qim")
    assert [model_ir.op_to_dict(o) for o in im.ops] == [model_ir.op_to_dict(o) for o in saved.ops]
    for k, v in im.tensors.items():
        assert np.array_equal(v, saved.tensors[k]), k
    assert np.array_equal(integer.predict(im, data.x).numpy(), saved.tensors["trainer.pred"])
