"""Lowering of an integer model (``quant.model_ir.IntModel``) onto the accelerator template.

Each op of the model becomes one :class:`OpSpec`: the unit that runs it and the widths it
runs at, read from the file (``linear`` -> dense unit at its input, weight and output
widths; ``propagate`` -> aggregation units at its input, edge-weight and output widths,
accumulator and requantizers as stored; ``input``, ``add``, ``relu``, ``truncate``,
``argmax`` -> vector unit at their own widths).  :func:`with_widths` gives the same op list
with every width replaced (the FP32 and INT8 baselines), and :func:`stand_in_ops` builds the
stand-in workloads (``appnp``, ``gcn``, ``aggregate``) as op lists of the same shape.
:func:`run_ops` prices an op list on a design point with :mod:`sim.accel.cycle`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from quant import model_ir as mi
from quant.checks import check_choice
from quant.errors import QuantError
from quant.reference import acc_bits_required
from sim.accel.cycle import (VECTOR_SUM_BITS, DenseWidths, PhaseResult, PropWidths, TemplateOptions,
                             aggregate_phase, dense_phase, vector_phase)
from sim.accel.energy import ActionCounts, centred_bits
from sim.design.point import DesignPoint

log = logging.getLogger(__name__)

OP_KINDS = ("input", "linear", "propagate", "add", "relu", "truncate", "argmax")
UNIT_OF = {"input": "vector_unit", "linear": "dense_unit", "propagate": "agg_unit", "add": "vector_unit",
           "relu": "vector_unit", "truncate": "vector_unit", "argmax": "vector_unit"}
#: Width of a stored FP32 value and of an argmax index, bits.
FLOAT_BITS = 32
INDEX_OUT_BITS = 32


@dataclass(frozen=True)
class OpSpec:
    """One op of a workload, as the template runs it.

    Parameters
    ----------
    index : int
        Position in the op list.
    op : str
        One of :data:`OP_KINDS`.
    name : str
        The op's output tensor.
    rows : int
        Rows (nodes) of the output.
    cols : int
        Features of the output (1 for argmax).
    in_bits : tuple of int
        Stored widths of the operands read from DRAM (constant operands are left out).
    in_cols : tuple of int
        Features per row of each of those operands.
    in_mult_bits : tuple of int
        Widths of those operands after zero-point subtraction (what a multiplier sees).
    out_bits : int
        Stored width of the output.
    w_bits, w_mult_bits : int
        Weight width (linear) or edge-weight width (propagate), stored and centred; 0 otherwise.
    k : int
        Input features of a linear op.
    acc_bits : int
        Accumulator width of a propagate op.
    msg, upd : bool
        Message / update requantizer of a propagate op.
    is_float : bool
        The op runs in FP32.
    """

    index: int
    op: str
    name: str
    rows: int
    cols: int
    in_bits: tuple[int, ...]
    in_cols: tuple[int, ...]
    in_mult_bits: tuple[int, ...]
    out_bits: int
    w_bits: int = 0
    w_mult_bits: int = 0
    k: int = 0
    acc_bits: int = 0
    msg: bool = False
    upd: bool = False
    is_float: bool = False

    def __post_init__(self) -> None:
        check_choice("op", self.op, OP_KINDS)

    @property
    def unit(self) -> str:
        return UNIT_OF[self.op]

    def widths(self) -> dict:
        """The widths the op runs at, for the JSON record."""
        d: dict = {"in_bits": list(self.in_bits), "out_bits": self.out_bits, "float": self.is_float}
        if self.op in ("linear", "propagate"):
            d["w_bits"] = self.w_bits
        if self.op == "propagate":
            d.update(acc_bits=self.acc_bits, msg_requant=self.msg, upd_requant=self.upd)
        return d


# ---------------------------------------------------------------------------- model files
def code_bits(codes: np.ndarray, zero_point: int) -> int:
    """The narrowest width that holds ``codes`` and ``zero_point``: unsigned if no code is
    negative, else two's complement.  Used for a linear op's weights, whose quantizer width
    the model file does not store separately."""
    c = np.asarray(codes)
    lo = min(int(c.min()) if c.size else 0, int(zero_point))
    hi = max(int(c.max()) if c.size else 0, int(zero_point))
    if lo >= 0:
        return max(1, hi.bit_length())
    return 1 + max(hi.bit_length(), (-lo - 1).bit_length())


def model_graph(model: mi.IntModel) -> tuple[np.ndarray, np.ndarray]:
    """The model's own CSR ``(indptr (N+1,), indices (E,))``: the tensors its propagate ops name
    (self loops and duplicates as trained).  Raises if the model has no propagate op or
    propagates over two graphs."""
    props = [op for op in model.ops if isinstance(op, mi.PropagateOp)]
    if not props:
        raise QuantError("model must have a propagate op to be lowered onto the aggregation units")
    names = {(op.indptr, op.indices) for op in props}
    if len(names) != 1:
        raise QuantError(f"model propagates over {len(names)} graphs ({sorted(names)}); the template runs one")
    ip, ix = next(iter(names))
    return (np.asarray(model.tensors[ip], dtype=np.int64), np.asarray(model.tensors[ix], dtype=np.int64))


def lower_model(model: mi.IntModel) -> list[OpSpec]:
    """The op list of ``model`` at the widths stored in the file.

    Shapes follow the model's graph: ``num_nodes`` rows; an ``input`` op reads
    ``num_features`` FP32 values per row.
    """
    n = int(model.graph["num_nodes"])
    f_in = int(model.graph["num_features"])
    info: dict[str, tuple[int, bool, int, int]] = {}  # tensor -> (bits, signed, zero point, cols)

    def operand(name: str) -> tuple[int, bool, int, int] | None:
        if name in info:
            return info[name]
        return None  # a constant tensor of the file (e.g. BT's one), not streamed per row

    out: list[OpSpec] = []
    for i, op in enumerate(model.ops):
        if isinstance(op, mi.InputOp):
            spec = OpSpec(i, "input", op.out, n, f_in, (FLOAT_BITS,), (f_in,), (FLOAT_BITS,), op.spec.bits)
            info[op.out] = (op.spec.bits, op.spec.signed, op.zero_point, f_in)
        elif isinstance(op, mi.LinearOp):
            xb, xs, xz, k = info[op.inp]
            w = model.tensors[op.weight]
            c = int(w.shape[0])
            wb = code_bits(w, op.w_zero)
            wsigned = bool((np.asarray(w) < 0).any() or op.w_zero < 0)
            rq = op.requant
            spec = OpSpec(i, "linear", op.out, n, c, (xb,), (k,), (centred_bits(xb, xs, op.x_zero),), rq.spec.bits,
                          w_bits=wb, w_mult_bits=centred_bits(wb, wsigned, op.w_zero), k=k)
            info[op.out] = (rq.spec.bits, rq.spec.signed, rq.zero_point, c)
        elif isinstance(op, mi.ReluOp):
            xb, xs, xz, f = info[op.inp]
            spec = OpSpec(i, "relu", op.out, n, f, (xb,), (f,), (xb,), xb)
            info[op.out] = (xb, xs, op.zero_point, f)
        elif isinstance(op, mi.PropagateOp):
            p = op.params
            f = info[op.inp][3]
            y = p.y_spec
            spec = OpSpec(i, "propagate", op.out, n, f, (p.x_spec.bits,), (f,),
                          (centred_bits(p.x_spec.bits, p.x_spec.signed, p.x_zero),), y.bits,
                          w_bits=p.w_spec.bits, w_mult_bits=centred_bits(p.w_spec.bits, p.w_spec.signed, p.w_zero),
                          acc_bits=p.acc_bits, msg=p.msg is not None, upd=p.upd is not None)
            info[op.out] = (y.bits, y.signed, p.y_zero, f)
        elif isinstance(op, mi.AddOp):
            ops_in = [(operand(op.a), op.a_zero)]
            if op.b != op.a:  # a requantizing copy (a * Ma + a * 0) streams its operand once
                ops_in.append((operand(op.b), op.b_zero))
            streamed = [(o, z) for o, z in ops_in if o is not None]
            f = max(o[3] for o, _ in streamed) if streamed else 1
            spec = OpSpec(i, "add", op.out, n, f, tuple(o[0] for o, _ in streamed), tuple(o[3] for o, _ in streamed),
                          tuple(centred_bits(o[0], o[1], z) for o, z in streamed), op.spec.bits)
            info[op.out] = (op.spec.bits, op.spec.signed, op.zero_point, f)
        elif isinstance(op, mi.TruncateOp):
            xb, xs, xz, f = info[op.inp]
            spec = OpSpec(i, "truncate", op.out, n, f, (xb,), (f,), (xb,), 2)
            info[op.out] = (2, False, 0, f)
        elif isinstance(op, mi.ArgmaxOp):
            xb, xs, xz, f = info[op.inp]
            spec = OpSpec(i, "argmax", op.out, n, 1, (xb,), (f,), (xb,), INDEX_OUT_BITS)
            info[op.out] = (INDEX_OUT_BITS, False, 0, 1)
        else:  # pragma: no cover - op_from_dict refuses unknown ops
            raise QuantError(f"op {op!r} has no lowering")
        out.append(spec)
    return out


def model_precision(model: mi.IntModel) -> str:
    """The precision tag of a model file (``int<b>``): its configured bits, else the input
    width of its first propagate op."""
    cfg = (model.meta or {}).get("model_config") or {}
    b = cfg.get("bits")
    if isinstance(b, int) and 1 <= b <= 8:
        return f"int{b}"
    for op in model.ops:
        if isinstance(op, mi.PropagateOp):
            return f"int{op.params.x_spec.bits}"
    raise QuantError("model has no propagate op, so its precision cannot be named")


def model_architecture(model: mi.IntModel) -> str | None:
    cfg = (model.meta or {}).get("model_config") or {}
    return cfg.get("model") or (model.meta or {}).get("model")


# ---------------------------------------------------------------------------- width replacement
def with_widths(ops: list[OpSpec], bits: int | None, max_degree: int) -> list[OpSpec]:
    """``ops`` with every stored width replaced by ``bits`` (``None``: FP32).

    Integer replacements take asymmetric codes (centred width ``bits + 1``) and the
    overflow-free accumulator for ``max_degree``; an ``input`` op still reads FP32 and an
    ``argmax`` still writes 32-bit indices.
    """
    out = []
    for s in ops:
        if bits is None:
            b, bm, fl = FLOAT_BITS, FLOAT_BITS, True
        else:
            b, bm, fl = bits, centred_bits(bits), False
        ch: dict = {"is_float": fl}
        if s.op != "input":
            ch["in_bits"] = tuple(b for _ in s.in_bits)
            ch["in_mult_bits"] = tuple(bm for _ in s.in_bits)
        if s.op != "argmax":
            ch["out_bits"] = b
        if s.op in ("linear", "propagate"):
            ch["w_bits"], ch["w_mult_bits"] = b, bm
        if s.op == "propagate":
            ch["acc_bits"] = 0 if fl else acc_bits_required(b, b, max(1, max_degree))
            if fl:  # FP32 has no requantizers
                ch["msg"] = ch["upd"] = False
        out.append(dataclasses.replace(s, **ch))
    return out


# ---------------------------------------------------------------------------- stand-ins
def stand_in_ops(kind: str, num_nodes: int, num_features: int, num_classes: int, *, hidden: int,
                 k_steps: int, features: int | None, bits: int | None, weight_bits: int,
                 max_degree: int) -> list[OpSpec]:
    """The op list of a stand-in workload at ``bits`` (``None``: FP32).

    ``appnp``: input, ``lin1 F_in -> hidden``, relu, ``lin2 hidden -> C``, then ``k_steps`` x
    (propagate C features, add the teleport term), argmax.  ``gcn``: input, lin1, propagate,
    relu, lin2, propagate, argmax.  ``aggregate``: one propagate of ``features`` features.
    Integer ops use asymmetric codes of ``bits`` and edge weights of ``weight_bits``.
    """
    n, f, c = num_nodes, num_features, num_classes
    fl = bits is None
    b = FLOAT_BITS if fl else bits
    bm = FLOAT_BITS if fl else centred_bits(bits)
    wb = FLOAT_BITS if fl else weight_bits
    wbm = FLOAT_BITS if fl else centred_bits(weight_bits)
    acc = 0 if fl else acc_bits_required(b, wb, max(1, max_degree))
    ops: list[OpSpec] = []

    def add(op: str, name: str, cols: int, ins: tuple[int, ...], **kw) -> None:
        k = len(ins)
        ops.append(OpSpec(len(ops), op, name, n, cols, (b,) * k if op != "input" else (FLOAT_BITS,),
                          ins, (bm,) * k if op != "input" else (FLOAT_BITS,),
                          INDEX_OUT_BITS if op == "argmax" else b, is_float=fl, **kw))

    def prop(name: str, cols: int) -> None:
        add("propagate", name, cols, (cols,), w_bits=wb, w_mult_bits=wbm, acc_bits=acc)

    if kind == "aggregate":
        prop("prop", features or f)
        return ops
    add("input", "x", f, (f,))
    add("linear", "lin1", hidden, (f,), w_bits=b, w_mult_bits=bm, k=f)
    if kind == "gcn":
        prop("prop1", hidden)
        add("relu", "relu1", hidden, (hidden,))
        add("linear", "lin2", c, (hidden,), w_bits=b, w_mult_bits=bm, k=hidden)
        prop("prop2", c)
    elif kind == "appnp":
        add("relu", "relu1", hidden, (hidden,))
        add("linear", "lin2", c, (hidden,), w_bits=b, w_mult_bits=bm, k=hidden)
        for s in range(k_steps):
            prop(f"step{s}.prop", c)
            add("add", f"step{s}.combine", c, (c, c))
    else:
        raise QuantError(f"workload must be one of ('appnp', 'gcn', 'aggregate'), not {kind!r}")
    add("argmax", "pred", 1, (c,))
    return ops


# ---------------------------------------------------------------------------- pricing
def _bytes(elements: int, bits: int) -> int:
    return -(-int(elements) * int(bits) // 8)


def run_op(s: OpSpec, indptr: np.ndarray, indices: np.ndarray, dp: DesignPoint, opts: TemplateOptions,
           memo: dict) -> PhaseResult:
    """Cycles, traffic and action counts of one op (shapes: ``indptr`` (N+1,), ``indices`` (E,))."""
    n = s.rows
    if s.op == "linear":
        dw = DenseWidths(s.in_bits[0], s.w_bits, s.out_bits, s.in_mult_bits[0], s.w_mult_bits, s.is_float)
        return dense_phase(s.name, n, s.k, s.cols, dp, dw, opts)
    if s.op == "propagate":
        pw = PropWidths(s.in_bits[0], s.w_bits, s.out_bits, s.in_mult_bits[0], s.w_mult_bits, s.acc_bits,
                        s.msg, s.upd, s.is_float)
        return aggregate_phase(s.name, indptr, indices, s.cols, dp, pw, opts, memo)
    counts = ActionCounts()
    u = "vector_unit"
    rd = sum(_bytes(n * c, b) for b, c in zip(s.in_bits, s.in_cols))
    if s.op == "argmax":
        elements = n * s.in_cols[0]
        wr = _bytes(n, s.out_bits)
    else:
        elements = n * s.cols
        wr = _bytes(elements, s.out_bits)
    if s.op == "input":  # scale (and normalise) FP32 values, round to codes
        counts.add(u, "fp32_mult", elements)
        if not s.is_float:
            counts.add(u, "int_add", elements, VECTOR_SUM_BITS)
    elif s.is_float:
        counts.add(u, "fp32_mult", elements * len(s.in_bits) if s.op == "add" else 0)
        counts.add(u, "fp32_add", elements * (1 if s.op != "truncate" else 2))
    elif s.op == "add":  # (a - za) * Ma + (b - zb) * Mb, round, shift, clamp
        for bm in s.in_mult_bits:
            counts.add(u, "int_mult", elements, bm, dp.mult_bits)
        counts.add(u, "int_add", elements * max(1, len(s.in_bits)), VECTOR_SUM_BITS)
    elif s.op == "relu":  # max(q, z)
        counts.add(u, "int_add", elements, s.in_bits[0])
    elif s.op == "truncate":  # floor((y + skew + 42) / 85): an add and a compare chain
        counts.add(u, "int_add", 2 * elements, s.in_bits[0])
    elif s.op == "argmax":  # one compare per code
        counts.add(u, "int_add", elements, s.in_bits[0])
    return vector_phase(s.name, elements, rd, wr, counts, dp, opts,
                        {"widths": s.widths()})


def run_ops(ops: list[OpSpec], indptr: np.ndarray, indices: np.ndarray, dp: DesignPoint,
            opts: TemplateOptions) -> list[PhaseResult]:
    """Price every op of ``ops``; identical ops (a model's repeated steps) are priced once."""
    memo: dict = {}
    seen: dict = {}
    out = []
    for s in ops:
        key = dataclasses.replace(s, index=0, name="")
        if key not in seen:
            seen[key] = run_op(s, indptr, indices, dp, opts, memo)
        r = seen[key]
        out.append(r if r.name == s.name else dataclasses.replace(r, name=s.name))
    return out
