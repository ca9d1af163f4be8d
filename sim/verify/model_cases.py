"""Golden cases taken from the propagation steps of an exported model: the real input codes,
edge codes and parameters of each step, run through the functional simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from quant import model_ir as mi
from quant.errors import QuantError
from sim.design.point import DesignError, DesignPoint
from sim.exact.model_sim import run_model
from sim.verify import golden

__all__ = ["golden_cases_from_model"]


def _design_for(k: int, p, max_degree: int):
    """A design point for a model's propagation step: its widths and switches, the graph's
    largest degree, and the step's accumulator width (``max_degree`` shrinks to what that
    width supports when the exporter chose a narrower accumulator)."""
    kw = dict(name=f"model-op{k}", bits=p.x_spec.bits, signed=p.x_spec.signed,
              weight_bits=p.w_spec.bits, acc_bits=p.acc_bits, msg_requant=p.msg is not None,
              upd_requant=p.upd is not None, max_degree=max(1, max_degree))
    try:
        return DesignPoint(**kw)
    except DesignError:
        kw["max_degree"] = max(1, 1 << max(0, p.acc_bits - p.x_spec.bits - p.w_spec.bits - 1))
        return DesignPoint(**kw)


def golden_cases_from_model(path: str | Path, x: np.ndarray, design=None,
                            max_rows: int = 64) -> list:
    """Golden cases from every propagation step of an exported model (see
    :func:`sim.verify.golden.case_from_propagation`): the step's real input codes, edge codes and
    parameters, restricted to the first ``max_rows`` destination rows (sources kept whole).

    ``x`` (N, F) float holds the raw input features of the model's graph.
    """
    model = mi.load(path)
    env, _ = run_model(model, x)
    cases = []
    for k, op in enumerate(model.ops):
        if not isinstance(op, mi.PropagateOp):
            continue
        p = op.params
        dp = design or _design_for(k, p, int(np.diff(model.tensors[op.indptr]).max(initial=1)))
        ip = np.asarray(model.tensors[op.indptr])
        rows = min(max_rows, ip.size - 1)
        e = int(ip[rows])
        xin = env[op.inp] if op.inp in env else model.tensors[op.inp]
        cases.append(golden.case_from_propagation(
            f"{Path(path).stem}-{k:02d}-{op.out}".replace("/", "_"), dp, p, ip[:rows + 1],
            model.tensors[op.indices][:e], model.tensors[op.edge_weight][:e], xin,
            source=f"model:{path}#{op.out}", op_index=k, rows=rows))
    if not cases:
        raise QuantError(f"model {str(path)!r} has no propagate op to take golden vectors from")
    return cases
