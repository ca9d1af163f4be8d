"""The integer model IR: what the trainer exports and every integer executor runs.

An :class:`IntModel` is a list of integer operations over named tensors, plus constant
tensors (weight codes, int32 biases, the propagation graph in canonical CSR order and its
edge-weight codes) and metadata (dataset, model, frozen constants such as SMP's lambda_k).
It is numpy-only, so the simulator can read it without torch.

Operations (each output is a new named tensor of int32 codes)::

    input      x_float (N, F_in) -> codes       preprocess (e.g. row-normalise) then quantize
    linear     (N, K) codes -> (N, C) codes     (x - z_x) @ (W - z_w).T + b, requantize
    relu       codes -> codes                   max(q, z)
    propagate  (N, F) codes -> (N, F) codes     one aggregation step, quant.aggregate semantics
    add        a, b -> codes                    clamp(round_shift((a-za)*Ma + (b-zb)*Mb, n) + z)
    truncate   8-bit codes -> BT codes          quant.truncation.truncate_codes (BT / BT*)
    argmax     (N, C) codes -> (N,) int32       first index of the largest code per row

File format (``.qim``): ``MAGIC`` (8 bytes), a little-endian uint32 header length, the
UTF-8 JSON header, an ``.npz`` payload with the constant tensors, and a trailing SHA-256 of
everything before it.  :func:`load` verifies the checksum first, then the format and
contract versions, then every op against the tensors.  See ``docs/numerics.md``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quant import CONTRACT_VERSION
from quant.aggregate import AggregationParams, Requantizer, aggregate_reference, check_csr
from quant.errors import QuantError, invalid
from quant.fileio import write_bytes_atomic
from quant.reference import (add_requantize, check_finite, check_scale, linear_accumulate,
                             quantize, relu_codes)
from quant.spec import QuantSpec

MAGIC = b"QUAGGAIM"
FORMAT_VERSION = 1
NORMALIZERS = (None, "row_sum")


class ModelFileError(QuantError):
    """A model file that is corrupt, truncated, of another version or inconsistent."""


# ---------------------------------------------------------------------------------------
# graph identity and preprocessing (shared by trainer and simulator)
# ---------------------------------------------------------------------------------------

def canonical_edges(edge_index: np.ndarray) -> np.ndarray:
    """Edges sorted by (destination, source), shape (2, E) int64 (row 0 source, row 1 destination)."""
    ei = np.asarray(edge_index)
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise invalid("edge_index.shape", ei.shape, "(2, E)")
    if ei.dtype.kind not in "iu":
        raise invalid("edge_index.dtype", str(ei.dtype), "an integer dtype")
    ei = ei.astype(np.int64)
    order = np.lexsort((ei[0], ei[1]))
    return ei[:, order]


def graph_hash(edge_index: np.ndarray, num_nodes: int, num_features: int) -> str:
    """SHA-256 (hex) of the graph's identity: node count, feature count and the edge set.

    Edge order does not matter (edges are put in canonical order first); duplicates do.
    """
    ei = canonical_edges(edge_index)
    h = hashlib.sha256()
    h.update(np.array([num_nodes, num_features, ei.shape[1]], dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(ei, dtype="<i8").tobytes())
    return h.hexdigest()


def preprocess_features(x: np.ndarray, normalize: str | None) -> np.ndarray:
    """Float preprocessing of input features before quantization, defined once (float32 out).

    ``"row_sum"``: divide each row by its sum (rows summing to 0 stay 0), computed in
    float64 and rounded once to float32 (PyG's ``NormalizeFeatures``, made exact).
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise invalid("x.shape", x.shape, "(N, F)")
    check_finite(x, "x")
    if normalize is None:
        return x.astype(np.float32)
    if normalize != "row_sum":
        raise invalid("normalize", normalize, f"one of {NORMALIZERS}")
    x64 = x.astype(np.float64)
    rs = x64.sum(axis=1, keepdims=True)
    rs[rs == 0] = 1.0
    return (x64 / rs).astype(np.float32)


# ---------------------------------------------------------------------------------------
# operations
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputOp:
    out: str
    spec: QuantSpec
    scale: float
    zero_point: int
    normalize: str | None = None
    op: str = field(default="input", init=False)

    def __post_init__(self) -> None:
        check_scale(self.scale, f"{self.out}.scale")
        self.spec.check_zero_point(self.zero_point, f"{self.out}.zero_point")
        if self.normalize not in NORMALIZERS:
            raise invalid(f"{self.out}.normalize", self.normalize, f"one of {NORMALIZERS}")


@dataclass(frozen=True)
class StreamOp:
    """Fields shared by the ops that read one tensor ``inp`` and write one tensor ``out``."""

    inp: str
    out: str


@dataclass(frozen=True)
class LinearOp(StreamOp):
    weight: str
    w_zero: int
    x_zero: int
    requant: Requantizer
    bias: str | None = None
    op: str = field(default="linear", init=False)


@dataclass(frozen=True)
class ReluOp(StreamOp):
    zero_point: int
    op: str = field(default="relu", init=False)


@dataclass(frozen=True)
class PropagateOp(StreamOp):
    edge_weight: str
    params: AggregationParams
    indptr: str = "graph.indptr"
    indices: str = "graph.indices"
    op: str = field(default="propagate", init=False)


@dataclass(frozen=True)
class AddOp:
    a: str
    b: str
    out: str
    a_zero: int
    a_mult: int
    b_zero: int
    b_mult: int
    shift: int
    zero_point: int
    spec: QuantSpec
    op: str = field(default="add", init=False)

    def __post_init__(self) -> None:
        self.spec.check_zero_point(self.zero_point, f"{self.out}.zero_point")


@dataclass(frozen=True)
class TruncateOp(StreamOp):
    """BT (``skew = 0``) or BT* truncation of 8-bit codes to ``{0, 85, 170, 255}``.

    The output stays on the 8-bit grid (same scale and zero point as the input); it is
    stored as 2-bit codes ``q // 85`` (:mod:`quant.truncation`).
    """

    skew: int = 0
    op: str = field(default="truncate", init=False)

    def __post_init__(self) -> None:
        from quant.truncation import check_skew

        check_skew(self.skew, f"{self.out}.skew")


@dataclass(frozen=True)
class ArgmaxOp(StreamOp):
    op: str = field(default="argmax", init=False)


Op = InputOp | LinearOp | ReluOp | PropagateOp | AddOp | TruncateOp | ArgmaxOp
_OP_TYPES: dict[str, type] = {"input": InputOp, "linear": LinearOp, "relu": ReluOp,
                              "propagate": PropagateOp, "add": AddOp, "truncate": TruncateOp,
                              "argmax": ArgmaxOp}


def op_to_dict(op: Op) -> dict[str, Any]:
    d: dict[str, Any] = {"op": op.op}
    for k, v in op.__dict__.items():
        if k == "op":
            continue
        if isinstance(v, (QuantSpec, Requantizer, AggregationParams)):
            d[k] = v.to_dict()
        elif isinstance(v, (np.floating, float)):
            d[k] = float(v)
        elif isinstance(v, np.integer):
            d[k] = int(v)
        else:
            d[k] = v
    return d


def op_from_dict(d: dict[str, Any]) -> Op:
    if not isinstance(d, dict) or d.get("op") not in _OP_TYPES:
        raise ModelFileError(f"op must be one of {sorted(_OP_TYPES)}, not {d.get('op') if isinstance(d, dict) else d!r}")
    kind = d["op"]
    args = {k: v for k, v in d.items() if k != "op"}
    try:
        if "spec" in args:
            args["spec"] = QuantSpec.from_dict(args["spec"])
        if kind == "linear":
            args["requant"] = Requantizer.from_dict(args["requant"])
        if kind == "propagate":
            args["params"] = AggregationParams.from_dict(args["params"])
        return _OP_TYPES[kind](**args)
    except (TypeError, KeyError) as exc:
        raise ModelFileError(f"op {kind!r} has bad fields: {exc}") from None


# ---------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------

@dataclass
class IntModel:
    """An integer model: ops over named tensors plus constant tensors and metadata.

    Parameters
    ----------
    ops : list of ops, executed in order
    tensors : name -> integer ndarray (weights int32 codes, biases int32, CSR int64, edge codes)
    graph : dict with ``num_nodes``, ``num_features``, ``num_edges``, ``hash`` (:func:`graph_hash`)
    output : name of the prediction tensor (an argmax output)
    meta : free-form JSON metadata (dataset, model, bits, frozen constants, float scales)
    """

    ops: list[Op]
    tensors: dict[str, np.ndarray]
    graph: dict[str, Any]
    output: str
    meta: dict[str, Any] = field(default_factory=dict)
    contract_version: int = CONTRACT_VERSION

    def validate(self) -> None:
        """Check tensors, op references and shapes; raise :class:`ModelFileError` naming the field."""
        for k in ("num_nodes", "num_features", "num_edges", "hash"):
            if k not in self.graph:
                raise ModelFileError(f"graph.{k} is missing")
        known = set(self.tensors)
        for name, arr in self.tensors.items():
            if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iu":
                raise ModelFileError(f"tensor {name!r} must be an integer array, not {getattr(arr, 'dtype', type(arr))}")
        if not any(isinstance(op, InputOp) for op in self.ops):
            raise ModelFileError("ops must start with an input op")
        for i, op in enumerate(self.ops):
            refs = [getattr(op, a) for a in ("inp", "a", "b", "weight", "bias", "edge_weight",
                                             "indptr", "indices") if getattr(op, a, None)]
            for r in refs:
                if r not in known:
                    raise ModelFileError(f"ops[{i}] ({op.op}) refers to tensor {r!r}, which is not defined before it")
            if op.out in known:
                raise ModelFileError(f"ops[{i}] ({op.op}) output {op.out!r} is defined twice")
            known.add(op.out)
            if isinstance(op, PropagateOp):
                ip, ix, ew = self.tensors[op.indptr], self.tensors[op.indices], self.tensors[op.edge_weight]
                check_csr(ip, ix, int(self.graph["num_nodes"]))
                if ew.shape != ix.shape:
                    raise ModelFileError(f"tensor {op.edge_weight!r} shape {ew.shape} must match {op.indices!r} {ix.shape}")
        if self.output not in known:
            raise ModelFileError(f"output {self.output!r} is not produced by any op")

    # ------------------------------------------------------------------ execution
    def check_input(self, x) -> np.ndarray:
        """``x`` as an array, refused unless its shape is (num_nodes, num_features) of the graph."""
        x = np.asarray(x)
        n, f = self.graph["num_nodes"], self.graph["num_features"]
        if x.shape != (n, f):
            raise invalid("x.shape", x.shape, f"({n}, {f}) as in the model's graph")
        return x

    def run(self, x: np.ndarray, *, keep: bool = True) -> dict[str, np.ndarray]:
        """Execute with the numpy reference; returns every named activation (int32).

        Shapes: ``x`` (num_nodes, num_features) float input features (raw, before the input
        op's preprocessing).
        """
        x = self.check_input(x)
        env: dict[str, np.ndarray] = {}

        def get(name: str) -> np.ndarray:
            return env[name] if name in env else self.tensors[name]

        for op in self.ops:
            env[op.out] = run_op(op, get, x)
        return env if keep else {self.output: env[self.output]}

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.run(x, keep=False)[self.output]

    # ------------------------------------------------------------------ persistence
    def header(self) -> dict[str, Any]:
        return {"format": "quagga-int-model", "format_version": FORMAT_VERSION,
                "contract_version": self.contract_version, "graph": self.graph,
                "output": self.output, "meta": self.meta,
                "ops": [op_to_dict(op) for op in self.ops],
                "tensors": {k: [str(v.dtype), list(v.shape)] for k, v in sorted(self.tensors.items())}}


def run_op(op: Op, get, x: np.ndarray) -> np.ndarray:
    """Execute one op with the numpy reference (``get(name)`` returns a tensor)."""
    if isinstance(op, InputOp):
        return quantize(preprocess_features(x, op.normalize), op.scale, op.zero_point, op.spec)
    if isinstance(op, LinearOp):
        acc = linear_accumulate(get(op.inp), op.x_zero, get(op.weight), op.w_zero,
                                get(op.bias) if op.bias else None)
        return op.requant(acc)
    if isinstance(op, ReluOp):
        return relu_codes(get(op.inp), op.zero_point)
    if isinstance(op, PropagateOp):
        return aggregate_reference(get(op.indptr), get(op.indices), get(op.edge_weight),
                                   get(op.inp), op.params).y
    if isinstance(op, AddOp):
        return add_requantize(get(op.a), op.a_zero, op.a_mult, get(op.b), op.b_zero, op.b_mult,
                              op.shift, op.zero_point, op.spec)
    if isinstance(op, TruncateOp):
        from quant.truncation import truncate_codes

        return truncate_codes(get(op.inp), op.skew)
    if isinstance(op, ArgmaxOp):
        return np.argmax(get(op.inp), axis=1).astype(np.int32)
    raise invalid("op", op, "a known op")


def _npz_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive with fixed entry timestamps, so equal models give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in sorted(tensors.items()):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def save(model: IntModel, path: str | os.PathLike) -> Path:
    """Write ``model`` atomically to ``path`` (format in the module docstring)."""
    model.validate()
    header = json.dumps(model.header(), sort_keys=True, separators=(",", ":")).encode()
    body = MAGIC + struct.pack("<I", len(header)) + header + _npz_bytes(model.tensors)
    data = body + hashlib.sha256(body).digest()
    return write_bytes_atomic(path, data)


def load(path: str | os.PathLike, *, expect_graph_hash: str | None = None) -> IntModel:
    """Read and validate a model file.

    Raises
    ------
    ModelFileError
        Truncated or corrupt (checksum), not a model file, another format or contract
        version, inconsistent ops/tensors, or a graph hash different from ``expect_graph_hash``.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"model file {str(p)!r} does not exist") from None
    if len(data) < len(MAGIC) + 4 + 32 or not data.startswith(MAGIC):
        raise ModelFileError(f"model file {str(p)!r} is not a Quagga model file (bad magic or too short: {len(data)} bytes)")
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest:
        raise ModelFileError(f"model file {str(p)!r} is corrupt or truncated: checksum mismatch")
    (hlen,) = struct.unpack("<I", body[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4
    try:
        header = json.loads(body[start:start + hlen].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"model file {str(p)!r} has an unreadable header: {exc}") from None
    if header.get("format") != "quagga-int-model":
        raise ModelFileError(f"format must be 'quagga-int-model', not {header.get('format')!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"format_version must be {FORMAT_VERSION}, not {header.get('format_version')!r} ({p})")
    if header.get("contract_version") != CONTRACT_VERSION:
        raise ModelFileError(
            f"contract_version must be {CONTRACT_VERSION} (this Quagga's numerics contract), "
            f"not {header.get('contract_version')!r}; re-export the model ({p})")
    with np.load(io.BytesIO(body[start + hlen:]), allow_pickle=False) as npz:
        tensors = {k: npz[k] for k in npz.files}
    for name, (dtype, shape) in header["tensors"].items():
        if name not in tensors or str(tensors[name].dtype) != dtype or list(tensors[name].shape) != shape:
            raise ModelFileError(f"tensor {name!r} must be {dtype}{shape} as the header says")
    model = IntModel(ops=[op_from_dict(d) for d in header["ops"]], tensors=tensors,
                     graph=header["graph"], output=header["output"], meta=header.get("meta", {}),
                     contract_version=header["contract_version"])
    model.validate()
    if expect_graph_hash is not None and expect_graph_hash != model.graph["hash"]:
        raise ModelFileError(
            f"graph hash must be {model.graph['hash'][:16]}... (the graph the model was trained on), "
            f"not {expect_graph_hash[:16]}...: the dataset differs")
    return model
