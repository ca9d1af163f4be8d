"""Whole-model integer inference with the simulator's kernels, stage by stage.

Runs an exported :class:`quant.model_ir.IntModel` with :mod:`sim.exact.functional` (numba) and
compares every named tensor with the model IR's plain numpy executor
(:meth:`IntModel.run`), and optionally with predictions the trainer stored in the file.
numpy + numba only: no torch here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from quant import model_ir as mi
from quant.errors import invalid
from quant.reference import quantize
from sim.exact import functional, kernels

log = logging.getLogger(__name__)

__all__ = ["StageCheck", "SimulationReport", "TRAINER_PRED_TENSORS", "check_graph",
           "compare_stages", "run_model", "run_op_sim"]

#: Tensor names under which an exporter may store the trainer's integer predictions (N,).
TRAINER_PRED_TENSORS = ("trainer.pred", "trainer.int_pred", "int_pred")


def _add_requantize(op: mi.AddOp, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:  # broadcasting shapes: the reference handles them
        from quant.reference import add_requantize

        return add_requantize(a, op.a_zero, op.a_mult, b, op.b_zero, op.b_mult, op.shift,
                              op.zero_point, op.spec)
    from quant.reference import _check_multiplier, _check_shift

    _check_multiplier(op.a_mult, "a_mult", signed=True)
    _check_multiplier(op.b_mult, "b_mult", signed=True)
    _check_shift(op.shift)
    out = kernels.add_requantize_2d(np.ascontiguousarray(a, dtype=np.int64), op.a_zero, op.a_mult,
                                    np.ascontiguousarray(b, dtype=np.int64), op.b_zero, op.b_mult,
                                    op.shift, op.zero_point, op.spec.qmin, op.spec.qmax)
    return out.astype(np.int32)


def run_op_sim(op: mi.Op, get, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """Execute one op with the simulator's kernels.

    Returns the output tensor (int32) and per-op statistics (``saturations`` for propagate).
    """
    if isinstance(op, mi.InputOp):
        return quantize(mi.preprocess_features(x, op.normalize), op.scale, op.zero_point, op.spec), {}
    if isinstance(op, mi.LinearOp):
        acc = functional.linear(get(op.inp), op.x_zero, get(op.weight), op.w_zero,
                                get(op.bias) if op.bias else None)
        return functional.requantize(acc, op.requant), {}
    if isinstance(op, mi.ReluOp):
        q = np.asarray(get(op.inp))
        return np.maximum(q.astype(np.int64), int(op.zero_point)).astype(np.int32), {}
    if isinstance(op, mi.PropagateOp):
        res = functional.aggregate(get(op.indptr), get(op.indices), get(op.edge_weight),
                                   get(op.inp), op.params)
        return res.y, {"saturations": res.saturations}
    if isinstance(op, mi.AddOp):
        return _add_requantize(op, get(op.a), get(op.b)), {}
    if isinstance(op, mi.ArgmaxOp):
        q = np.asarray(get(op.inp))
        return kernels.argmax_rows(np.ascontiguousarray(q, dtype=np.int64)).astype(np.int32), {}
    raise invalid("op", op, "a known op")


def run_model(model: mi.IntModel, x: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Run ``model`` on raw float features ``x`` (N, F) with the simulator.

    Returns
    -------
    env : dict name -> int32 array
        Every op's output.
    stats : dict op output name -> dict
        Per-op statistics (``saturations`` of propagation steps).
    """
    x = model.check_input(x)
    env: dict[str, np.ndarray] = {}
    stats: dict[str, dict] = {}

    def get(name: str) -> np.ndarray:
        return env[name] if name in env else model.tensors[name]

    for op in model.ops:
        env[op.out], stats[op.out] = run_op_sim(op, get, x)
    return env, stats


@dataclass
class StageCheck:
    """One op's comparison: name, op kind, shape and the number of differing elements."""

    name: str
    op: str
    shape: tuple[int, ...]
    mismatches: int
    first_mismatch: list | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "op": self.op, "shape": list(self.shape),
                "mismatches": self.mismatches, "first_mismatch": self.first_mismatch}


@dataclass
class SimulationReport:
    """Result of :func:`compare_stages`."""

    predictions: np.ndarray
    stages: list[StageCheck]
    saturations: int
    trainer_mismatches: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def mismatches(self) -> int:
        return sum(s.mismatches for s in self.stages) + (self.trainer_mismatches or 0)

    @property
    def bit_exact(self) -> bool:
        return self.mismatches == 0


def _diff(name: str, op: str, a: np.ndarray, b: np.ndarray) -> StageCheck:
    if a.shape != b.shape:
        return StageCheck(name, op, tuple(a.shape), int(max(a.size, b.size)), ["shape", list(b.shape)])
    bad = a != b
    n = int(bad.sum())
    first = None
    if n:
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        first = [list(idx), int(a[idx]), int(b[idx])]
    return StageCheck(name, op, tuple(a.shape), n, first)


def trainer_predictions(model: mi.IntModel) -> np.ndarray | None:
    """The trainer's integer predictions stored in the model file, if any (N,) int."""
    for k in TRAINER_PRED_TENSORS:
        if k in model.tensors:
            return np.asarray(model.tensors[k])
    return None


def compare_stages(model: mi.IntModel, x: np.ndarray, reference: bool = True) -> SimulationReport:
    """Simulate ``model`` and compare every stage with the numpy executor, exactly.

    Parameters
    ----------
    model : IntModel
    x : float array (N, F)
        Raw input features.
    reference : bool
        Run the numpy executor and compare every named tensor (slow on big graphs).

    Returns
    -------
    SimulationReport
        Per-stage mismatch counts (0 everywhere when bit-exact), the predictions, the total
        accumulator saturations and, if the file holds the trainer's predictions, the number
        of nodes where they differ.
    """
    env, stats = run_model(model, x)
    stages = []
    if reference:
        ref = model.run(x)
        for op in model.ops:
            stages.append(_diff(op.out, op.op, env[op.out], np.asarray(ref[op.out])))
    pred = env[model.output]
    tp = trainer_predictions(model)
    tmis = None
    if tp is not None:
        tmis = int((tp.astype(np.int64) != pred.astype(np.int64)).sum()) if tp.shape == pred.shape \
            else int(pred.size)
    sats = sum(s.get("saturations", 0) for s in stats.values())
    return SimulationReport(predictions=pred, stages=stages, saturations=sats,
                            trainer_mismatches=tmis,
                            extra={"saturations_per_stage": {k: v["saturations"] for k, v in stats.items()
                                                             if "saturations" in v}})


def check_graph(model: mi.IntModel, edge_index: np.ndarray, num_nodes: int, num_features: int) -> None:
    """Refuse a dataset graph that is not the one the model was exported for.

    Raises
    ------
    ModelFileError
        Naming the node count, feature count or graph hash that differs.
    """
    g = model.graph
    if int(num_nodes) != int(g["num_nodes"]):
        raise mi.ModelFileError(f"num_nodes must be {g['num_nodes']} (the model's graph), not {num_nodes}")
    if int(num_features) != int(g["num_features"]):
        raise mi.ModelFileError(
            f"num_features must be {g['num_features']} (the model's graph), not {num_features}")
    h = mi.graph_hash(np.asarray(edge_index), int(num_nodes), int(num_features))
    if h != g["hash"]:
        raise mi.ModelFileError(f"graph hash must be {str(g['hash'])[:16]}... (the graph the model "
                                f"was exported for), not {h[:16]}...: the dataset differs")
