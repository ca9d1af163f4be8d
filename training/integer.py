"""Integer inference in torch: execute an :class:`~quant.model_ir.IntModel` with exact int64 ops.

The torch twin of :meth:`quant.model_ir.IntModel.run`: the same ops, built from
:mod:`quant.torch_ops`, giving the same int32 codes bit for bit (``tests/training`` checks
it against the numpy executor and against :func:`quant.aggregate.aggregate_reference`).
Device-agnostic: tensors live on ``device``.
"""

from __future__ import annotations

import numpy as np
import torch

from quant import torch_ops
from quant.aggregate import AggregationParams, Requantizer
from quant.errors import invalid
from quant.model_ir import (AddOp, ArgmaxOp, InputOp, IntModel, LinearOp, PropagateOp, ReluOp,
                            preprocess_features)
from quant.reference import acc_range


def _requant(v: torch.Tensor, r: Requantizer) -> torch.Tensor:
    return torch_ops.requantize(v, r.multiplier, r.shift, r.zero_point, r.spec)


def aggregate(indptr: torch.Tensor, indices: torch.Tensor, w: torch.Tensor, x: torch.Tensor,
              params: AggregationParams) -> tuple[torch.Tensor, int]:
    """One integer propagation step, exactly as :func:`quant.aggregate.aggregate_reference`.

    Shapes: ``indptr`` (N+1,), ``indices`` (E,), ``w`` (E,) codes, ``x`` (N_src, F) codes;
    returns ``(y (N, F) int32, saturation count)``.  Rows whose sum of ``|message|`` fits the
    accumulator are summed at once (exact in int64, order-free); other rows are accumulated
    edge by edge with saturation, in CSR order.
    """
    indptr = indptr.to(torch.int64)
    indices = indices.to(torch.int64)
    xc = x.to(torch.int64) - params.x_zero
    wc = w.to(torch.int64) - params.w_zero
    for name, arr, spec in (("x", x, params.x_spec), ("w", w, params.w_spec)):
        if arr.numel() and (int(arr.min()) < spec.qmin or int(arr.max()) > spec.qmax):
            raise invalid(f"{name} codes", (int(arr.min()), int(arr.max())), f"in [{spec.qmin}, {spec.qmax}]")
    n_rows = indptr.numel() - 1
    deg = indptr[1:] - indptr[:-1]
    dst = torch.repeat_interleave(torch.arange(n_rows, device=x.device), deg)
    p = xc[indices] * wc[:, None]
    if params.msg is not None:
        p = _requant(p, params.msg).to(torch.int64) - params.msg.zero_point
    lo, hi = acc_range(params.acc_bits)
    acc = torch.zeros(n_rows, x.shape[1], dtype=torch.int64, device=x.device)
    acc.index_add_(0, dst, p)
    max_deg = int(deg.max()) if n_rows else 0
    if p.numel() == 0 or max_deg * int(p.abs().max()) <= min(hi, -lo):
        unsafe = []                   # no row can reach the accumulator's range
    else:
        abs_sum = torch.zeros_like(acc).index_add_(0, dst, p.abs())
        unsafe = torch.nonzero((abs_sum > min(hi, -lo)).any(dim=1)).flatten().tolist()
    sats = 0
    for i in unsafe:
        a = torch.zeros(x.shape[1], dtype=torch.int64, device=x.device)
        for e in range(int(indptr[i]), int(indptr[i + 1])):
            s = a + p[e]
            c = torch.clamp(s, lo, hi)
            sats += int((c != s).sum())
            a = c
        acc[i] = a
    y = _requant(acc, params.out)
    if params.upd is not None:
        y = _requant(y.to(torch.int64) - params.out.zero_point, params.upd)
    return y, sats


def run(model: IntModel, x: np.ndarray | torch.Tensor, device: str | torch.device = "cpu",
        keep: bool = False) -> dict[str, torch.Tensor]:
    """Execute ``model`` on raw features ``x`` (num_nodes, num_features).

    Returns the output tensor (``keep=False``) or every named activation, as int32 tensors.
    """
    xn = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if xn.shape != (model.graph["num_nodes"], model.graph["num_features"]):
        raise invalid("x.shape", xn.shape,
                      f"({model.graph['num_nodes']}, {model.graph['num_features']}) as in the model's graph")
    consts = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in model.tensors.items()}
    env: dict[str, torch.Tensor] = {}

    def get(name: str) -> torch.Tensor:
        return env[name] if name in env else consts[name]

    for op in model.ops:
        if isinstance(op, InputOp):
            xf = torch.from_numpy(preprocess_features(xn, op.normalize)).to(device)
            out = torch_ops.quantize(xf, op.scale, op.zero_point, op.spec)
        elif isinstance(op, LinearOp):
            acc = torch_ops.linear_accumulate(get(op.inp), op.x_zero, get(op.weight), op.w_zero,
                                              get(op.bias) if op.bias else None)
            out = _requant(acc, op.requant)
        elif isinstance(op, ReluOp):
            out = torch_ops.relu_codes(get(op.inp), op.zero_point)
        elif isinstance(op, PropagateOp):
            out, _ = aggregate(get(op.indptr), get(op.indices), get(op.edge_weight), get(op.inp), op.params)
        elif isinstance(op, AddOp):
            out = torch_ops.add_requantize(get(op.a), op.a_zero, op.a_mult, get(op.b), op.b_zero,
                                           op.b_mult, op.shift, op.zero_point, op.spec)
        elif isinstance(op, ArgmaxOp):
            out = torch.argmax(get(op.inp), dim=1).to(torch.int32)
        else:
            raise invalid("op", op, "a known op")
        env[op.out] = out
    return env if keep else {model.output: env[model.output]}


def predict(model: IntModel, x, device: str | torch.device = "cpu") -> torch.Tensor:
    """Integer predictions (N,) int32."""
    return run(model, x, device)[model.output]
