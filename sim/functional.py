"""Bit-accurate functional simulation of one propagation step, and of the integer
operations around it, with the numba kernels of :mod:`sim.kernels`.

Every function here returns exactly what the matching function of :mod:`quant.reference`
/ :mod:`quant.aggregate` returns (same validation, same errors, same integers).  Where
int64 headroom cannot be proven from the parameters alone (huge left shifts), the
function falls back to the numpy reference so that the behaviour, including the error
raised, stays identical.
"""

from __future__ import annotations

import logging

import numpy as np

from quant.aggregate import AggregationParams, AggregationResult, Requantizer, aggregate_reference
from quant.errors import invalid
from quant.reference import PRODUCT_LIMIT, acc_range, linear_accumulate
from quant.spec import QuantSpec
from sim import kernels
from sim.graph import CSRGraph, validate_csr

log = logging.getLogger(__name__)

__all__ = ["accumulate", "aggregate", "aggregate_graph", "aggregate_packed", "compact_indices",
           "compact_weights", "linear", "pack_operand", "packed_offset", "packed_supported",
           "requantize", "stage_bound_safe"]


def _centred_max(spec: QuantSpec, zero: int) -> int:
    """Largest ``|q - zero|`` over the code range."""
    return max(spec.qmax - zero, zero - spec.qmin)


def stage_bound_safe(vmax: int, rq: Requantizer | None) -> bool:
    """True if ``|v| <= vmax`` can never trip the reference's int64 guard in ``rq``."""
    if rq is None:
        return True
    return vmax * rq.multiplier * (1 << max(0, -rq.shift)) < PRODUCT_LIMIT


def _rq_args(rq: Requantizer | None) -> tuple:
    if rq is None:
        return (False, 0, 0, 0, 0, 0)
    return (True, rq.multiplier, rq.shift, rq.zero_point, rq.spec.qmin, rq.spec.qmax)


def _check_codes(name: str, arr: np.ndarray, spec: QuantSpec) -> None:
    if arr.size and (arr.min() < spec.qmin or arr.max() > spec.qmax):
        raise invalid(f"{name} codes", (int(arr.min()), int(arr.max())),
                      f"in [{spec.qmin}, {spec.qmax}]")


def aggregate(indptr: np.ndarray, indices: np.ndarray, w: np.ndarray, x: np.ndarray,
              params: AggregationParams) -> AggregationResult:
    """One propagation step ``Y = Q(A_hat X)``, bit-exact with
    :func:`quant.aggregate.aggregate_reference`.

    Parameters
    ----------
    indptr : integer array (N + 1,)
        Row pointers of the destination-sorted CSR graph.
    indices : integer array (E,)
        Source node of each edge.
    w : integer array (E,)
        Edge-weight codes.
    x : integer array (N_src, F)
        Input feature codes.
    params : AggregationParams

    Returns
    -------
    AggregationResult
        ``y`` int32 (N, F), ``saturations`` (total count) and
        ``extra["row_saturations"]`` int64 (N,) per row.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise invalid("x.dtype", str(x.dtype), "an integer dtype")
    if x.ndim != 2:
        raise invalid("x.shape", x.shape, "(N_src, F)")
    indptr, indices = validate_csr(indptr, indices, x.shape[0])
    w = np.asarray(w)
    if w.dtype.kind not in "iu":
        raise invalid("w.dtype", str(w.dtype), "an integer dtype")
    if w.shape != indices.shape:
        raise invalid("w.shape", w.shape, f"{indices.shape} (one code per edge)")
    x64 = np.ascontiguousarray(x, dtype=np.int64)
    w64 = np.ascontiguousarray(w, dtype=np.int64)
    _check_codes("x", x64, params.x_spec)
    _check_codes("w", w64, params.w_spec)
    lo, hi = acc_range(params.acc_bits)

    p_max = _centred_max(params.x_spec, params.x_zero) * _centred_max(params.w_spec, params.w_zero)
    if not stage_bound_safe(p_max, params.msg):
        log.debug("message requantizer may exceed int64 headroom; using the numpy reference")
        res = aggregate_reference(indptr, indices, w64, x64, params)
        res.extra["row_saturations"] = None
        return res
    out_safe = stage_bound_safe(max(-lo, hi), params.out)
    upd_safe = stage_bound_safe(_centred_max(params.out.spec, params.out.zero_point), params.upd)
    fused = out_safe and upd_safe
    y, sats = kernels.aggregate_exact(
        indptr, indices, w64, x64, params.x_zero, params.w_zero, lo, hi,
        *_rq_args(params.msg), *(_rq_args(params.out) if fused else (False, 0, 0, 0, 0, 0)),
        *(_rq_args(params.upd) if fused else (False, 0, 0, 0, 0, 0)))
    if not fused:  # numpy requantizers: same values, same overflow errors as the reference
        y = params.out(y)
        if params.upd is not None:
            y = params.upd(y.astype(np.int64) - params.out.zero_point)
    return AggregationResult(y=y.astype(np.int32), saturations=int(sats.sum()),
                             extra={"row_saturations": sats})


def accumulate(indptr: np.ndarray, indices: np.ndarray, w: np.ndarray, x: np.ndarray,
               params: AggregationParams) -> tuple[np.ndarray, np.ndarray]:
    """The row sums before the aggregate requantizer (the accumulator contents).

    Returns
    -------
    acc : int64 (N, F)
        Saturated accumulator of every row and lane.
    row_saturations : int64 (N,)
    """
    x = np.asarray(x)
    if x.dtype.kind not in "iu" or x.ndim != 2:
        raise invalid("x", f"{x.dtype} {x.shape}", "an integer (N_src, F) array")
    indptr, indices = validate_csr(indptr, indices, x.shape[0])
    w64 = np.ascontiguousarray(w, dtype=np.int64)
    if w64.shape != indices.shape:
        raise invalid("w.shape", w64.shape, f"{indices.shape} (one code per edge)")
    x64 = np.ascontiguousarray(x, dtype=np.int64)
    _check_codes("x", x64, params.x_spec)
    _check_codes("w", w64, params.w_spec)
    p_max = _centred_max(params.x_spec, params.x_zero) * _centred_max(params.w_spec, params.w_zero)
    if not stage_bound_safe(p_max, params.msg):
        raise invalid("message multiplier", params.msg.multiplier, "small enough for int64 headroom")
    lo, hi = acc_range(params.acc_bits)
    off = (False, 0, 0, 0, 0, 0)
    return kernels.aggregate_exact(indptr, indices, w64, x64, params.x_zero, params.w_zero, lo, hi,
                                   *_rq_args(params.msg), *off, *off)


def aggregate_graph(graph: CSRGraph, w: np.ndarray, x: np.ndarray,
                    params: AggregationParams) -> AggregationResult:
    """:func:`aggregate` on a :class:`sim.graph.CSRGraph` (``w`` in CSR edge order)."""
    if x.shape[0] != graph.num_src:
        raise invalid("x.shape[0]", x.shape[0], f"the graph's source count {graph.num_src}")
    return aggregate(graph.indptr, graph.indices, w, x, params)


def requantize(v: np.ndarray, rq: Requantizer) -> np.ndarray:
    """:meth:`Requantizer.__call__` (int32 out) with the numba kernel when safe."""
    v = np.asarray(v)
    if v.dtype.kind not in "iu":
        raise invalid("v.dtype", str(v.dtype), "an integer dtype")
    v64 = np.ascontiguousarray(v, dtype=np.int64)
    vmax = int(np.abs(v64).max()) if v64.size else 0
    if v64.ndim == 0 or not stage_bound_safe(vmax, rq):
        return rq(v64)
    flat = v64.reshape(v64.shape[0] if v64.ndim > 1 else 1, -1)
    out = kernels.requantize_2d(flat, rq.multiplier, rq.shift, rq.zero_point, rq.spec.qmin,
                                rq.spec.qmax)
    return out.reshape(v64.shape).astype(np.int32)


def linear(x_q: np.ndarray, x_zero: int, w_q: np.ndarray, w_zero: int,
           bias_q: np.ndarray | None = None) -> np.ndarray:
    """Integer GEMM, equal to :func:`quant.reference.linear_accumulate`.

    Shapes: ``x_q`` (N, K), ``w_q`` (C, K), ``bias_q`` (C,); returns int64 (N, C).
    """
    x = np.asarray(x_q)
    w = np.asarray(w_q)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1] or x.dtype.kind not in "iu" \
            or w.dtype.kind not in "iu":
        return linear_accumulate(x_q, x_zero, w_q, w_zero, bias_q)  # raises the reference's error
    b = np.zeros(w.shape[0], dtype=np.int64) if bias_q is None else np.asarray(bias_q)
    if b.dtype.kind not in "iu" or b.shape != (w.shape[0],):
        return linear_accumulate(x_q, x_zero, w_q, w_zero, bias_q)
    return kernels.gemm_i64(np.ascontiguousarray(x, dtype=np.int64), int(x_zero),
                            np.ascontiguousarray(w, dtype=np.int64), int(w_zero),
                            np.ascontiguousarray(b, dtype=np.int64), bias_q is not None)


# ---------------------------------------------------------------------------------------
# packed operands (the fast path, sim.packed_kernels)
# ---------------------------------------------------------------------------------------

def packed_offset(spec: QuantSpec) -> int:
    """Offset that maps codes to unsigned lanes: ``2**(bits-1)`` for signed codes, else 0."""
    return (1 << (spec.bits - 1)) if spec.signed else 0


def pack_operand(x: np.ndarray, spec: QuantSpec, block: int = 256) -> np.ndarray:
    """Pack feature codes into offset-binary bytes for :func:`aggregate_packed`.

    Codes become unsigned lanes ``u = q + packed_offset(spec)`` (for signed codes this is the
    two's complement code with its sign bit flipped), packed as
    :func:`quant.pack.pack_codes` packs them (lane 0 in the least significant bits).

    Shapes: ``x`` (N, F) codes -> uint8 (N, ceil(F * bits / 8)).

    Raises
    ------
    QuantError
        For codes outside ``spec``'s range or a width that cannot be packed.
    """
    from quant.pack import PACKABLE_BITS

    from sim import packed_kernels

    x = np.asarray(x)
    if x.dtype.kind not in "iu" or x.ndim != 2:
        raise invalid("x", f"{x.dtype} {x.shape}", "an integer (N, F) array")
    if spec.bits not in PACKABLE_BITS:
        raise invalid("bits", spec.bits, f"one of {PACKABLE_BITS} for packing")
    _check_codes("x", x, spec)
    return packed_kernels.pack_rows(np.ascontiguousarray(x), packed_offset(spec), spec.bits,
                                    int(block))


def compact_indices(indices: np.ndarray, num_src: int) -> np.ndarray:
    """The narrowest index dtype that holds ``0..num_src-1``: uint16, int32 or int64.

    Index bytes are read once per edge, so narrow indices are part of what the packed
    kernel saves; the values are unchanged.
    """
    if num_src <= (1 << 16):
        return np.ascontiguousarray(indices, dtype=np.uint16)
    if num_src <= (1 << 31):
        return np.ascontiguousarray(indices, dtype=np.int32)
    return np.ascontiguousarray(indices, dtype=np.int64)


def compact_weights(w: np.ndarray, spec: QuantSpec) -> np.ndarray:
    """Unsigned edge-weight codes as uint8 (``bits <= 8``) or uint16."""
    return np.ascontiguousarray(w, dtype=np.uint8 if spec.bits <= 8 else np.uint16)


def packed_supported(params: AggregationParams) -> bool:
    """Whether :func:`aggregate_packed` handles ``params`` (else use :func:`aggregate`).

    Needs: no message requantizer (a per-edge nonlinear stage), packable feature widths,
    unsigned edge weights of at most 16 bits, output codes within int16, and requantizers
    that cannot trip the reference's int64 guard.
    """
    from quant.pack import PACKABLE_BITS

    lo, hi = acc_range(params.acc_bits)
    ys = params.y_spec
    return (params.msg is None and params.x_spec.bits in PACKABLE_BITS and not params.w_spec.signed
            and params.w_spec.bits <= 16 and -(1 << 15) <= ys.qmin and ys.qmax < (1 << 15)
            and stage_bound_safe(max(-lo, hi), params.out)
            and stage_bound_safe(_centred_max(params.out.spec, params.out.zero_point), params.upd))


def aggregate_packed(indptr: np.ndarray, indices: np.ndarray, w: np.ndarray, xb: np.ndarray,
                     num_features: int, params: AggregationParams, block: int = 64,
                     validate: bool = True, packed_out: bool = False) -> AggregationResult:
    """One propagation step on packed operands, bit-exact with :func:`aggregate`.

    Parameters
    ----------
    indptr, indices, w : CSR structure and edge-weight codes, as in :func:`aggregate`
        (``indices`` and ``w`` may be pre-narrowed with :func:`compact_indices` /
        :func:`compact_weights`; other integer dtypes are converted).
    xb : uint8 (N_src, B)
        Feature codes packed by :func:`pack_operand`.
    num_features : int
        ``F``.
    params : AggregationParams
        Must satisfy :func:`packed_supported`.
    block : int
        Destination rows per parallel work item.
    validate : bool
        Check the CSR structure, weight codes and ``xb`` (skip only on trusted inputs, e.g.
        in benchmarks and in :mod:`sim.packed_model`, which validates once).
    packed_out : bool
        Return the output codes packed as :func:`pack_operand` packs them (what the unit
        writes for the next layer) instead of as int16; needs a packable output width.

    Returns
    -------
    AggregationResult
        ``y``: int16 (N, F) output codes, or with ``packed_out`` uint8
        (N, ceil(F * out_bits / 8)) offset-binary packed codes equal to
        ``pack_operand(codes, params.y_spec)``; ``saturations``; ``extra["row_saturations"]``.
    """
    from sim import packed_kernels

    if not packed_supported(params):
        raise invalid("params", "message requantizer, signed or wide weights, or unsafe requantizers",
                      "supported by the packed kernel (see packed_supported)")
    xs = params.x_spec
    xb = np.asarray(xb)
    if validate:
        indptr, indices = validate_csr(indptr, indices, xb.shape[0] if xb.ndim == 2 else 0)
        w = np.asarray(w)
        if w.shape != indices.shape:
            raise invalid("w.shape", w.shape, f"{indices.shape} (one code per edge)")
        if w.dtype.kind not in "iu":
            raise invalid("w.dtype", str(w.dtype), "an integer dtype")
        _check_codes("w", w, params.w_spec)
        per = 8 // xs.bits
        if xb.dtype != np.uint8 or xb.ndim != 2 or xb.shape[1] != -(-int(num_features) // per):
            raise invalid("xb", f"{xb.dtype} {xb.shape}",
                          f"uint8 (N_src, {-(-int(num_features) // per)}) from pack_operand")
    if indices.dtype not in (np.uint16, np.int32, np.int64):
        indices = compact_indices(indices, xb.shape[0])
    if w.dtype not in (np.uint8, np.uint16):
        w = compact_weights(w, params.w_spec)
    from quant.pack import PACKABLE_BITS

    ys = params.y_spec
    if packed_out and ys.bits not in PACKABLE_BITS:
        raise invalid("output bits", ys.bits, f"one of {PACKABLE_BITS} for packed_out")
    lo, hi = acc_range(params.acc_bits)
    upd = _rq_args(params.upd)
    out = (params.out.multiplier, params.out.shift, params.out.zero_point, params.out.spec.qmin,
           params.out.spec.qmax)
    th = packed_kernels.level_thresholds(*out, *upd)
    use_th = packed_kernels.vector_rows_supported(xs.bits, xb.shape[1], ys.bits if packed_out else 0,
                                                  params.w_zero, th)
    y16, yb, sats = packed_kernels.aggregate_planes(
        np.ascontiguousarray(indptr, dtype=np.int64), indices, w, xb, int(num_features), xs.bits,
        params.x_zero + packed_offset(xs), _centred_max(xs, params.x_zero), params.w_zero, lo, hi,
        params.out.multiplier, params.out.shift, params.out.zero_point, params.out.spec.qmin,
        params.out.spec.qmax, *upd, int(block), ys.bits if packed_out else 0,
        packed_offset(ys) if packed_out else 0,
        th if th is not None else np.zeros(0, dtype=np.int64), use_th)
    return AggregationResult(y=yb if packed_out else y16, saturations=int(sats.sum()),
                             extra={"row_saturations": sats})
