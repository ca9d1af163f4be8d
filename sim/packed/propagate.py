"""One propagation step on packed feature rows: operand packing, the support test and the
entry point :func:`aggregate_packed`, equal bit for bit to :func:`sim.exact.functional.aggregate`
(and so to :func:`quant.aggregate.aggregate_reference`)."""

from __future__ import annotations

import numpy as np

from quant.aggregate import AggregationParams, AggregationResult
from quant.errors import invalid
from quant.pack import PACKABLE_BITS
from quant.reference import acc_range
from quant.spec import QuantSpec
from sim.exact.functional import centred_max, check_codes, rq_args, stage_bound_safe
from sim.graphs.csr import validate_csr
from sim.packed.aggregate import aggregate_planes
from sim.packed.layout import pack_rows
from sim.packed.thresholds import level_thresholds, vector_rows_supported

# ---------------------------------------------------------------------------------------
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


    x = np.asarray(x)
    if x.dtype.kind not in "iu" or x.ndim != 2:
        raise invalid("x", f"{x.dtype} {x.shape}", "an integer (N, F) array")
    if spec.bits not in PACKABLE_BITS:
        raise invalid("bits", spec.bits, f"one of {PACKABLE_BITS} for packing")
    check_codes("x", x, spec)
    return pack_rows(np.ascontiguousarray(x), packed_offset(spec), spec.bits,
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

    lo, hi = acc_range(params.acc_bits)
    ys = params.y_spec
    return (params.msg is None and params.x_spec.bits in PACKABLE_BITS and not params.w_spec.signed
            and params.w_spec.bits <= 16 and -(1 << 15) <= ys.qmin and ys.qmax < (1 << 15)
            and stage_bound_safe(max(-lo, hi), params.out)
            and stage_bound_safe(centred_max(params.out.spec, params.out.zero_point), params.upd))


def check_operands(indptr, indices, w, xb, num_features: int, params: AggregationParams,
                   check_weights: bool = True):
    """Validate the operands of one packed step; returns ``(indptr, indices, w)`` as checked.

    The CSR must be valid for ``xb``'s rows, ``w`` one integer code per edge (in
    ``params.w_spec`` when ``check_weights``), ``xb`` uint8 (N_src, ceil(F * b / 8)) from
    :func:`pack_operand`.  Raises ``QuantError`` naming the field and value.
    """
    indptr, indices = validate_csr(indptr, indices, xb.shape[0] if xb.ndim == 2 else 0)
    w = np.asarray(w)
    if w.shape != indices.shape:
        raise invalid("w.shape", w.shape, f"{indices.shape} (one code per edge)")
    if w.dtype.kind not in "iu":
        raise invalid("w.dtype", str(w.dtype), "an integer dtype")
    if check_weights:
        check_codes("w", w, params.w_spec)
    per = 8 // params.x_spec.bits
    if xb.dtype != np.uint8 or xb.ndim != 2 or xb.shape[1] != -(-int(num_features) // per):
        raise invalid("xb", f"{xb.dtype} {xb.shape}",
                      f"uint8 (N_src, {-(-int(num_features) // per)}) from pack_operand")
    return indptr, indices, w


def step_operands(indptr, indices, w, xb, num_features: int, params: AggregationParams,
                  validate: bool, check_weights: bool = True):
    """The operands of one packed step as ``(indptr, indices, w, xb)``: ``xb`` as an array,
    all four checked by :func:`check_operands` when ``validate``."""
    xb = np.asarray(xb)
    if validate:
        indptr, indices, w = check_operands(indptr, indices, w, xb, num_features, params,
                                            check_weights)
    return indptr, indices, w, xb


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
        in benchmarks and in :mod:`sim.packed.runner`, which validates once).
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

    if not packed_supported(params):
        raise invalid("params", "message requantizer, signed or wide weights, or unsafe requantizers",
                      "supported by the packed kernel (see packed_supported)")
    xs = params.x_spec
    indptr, indices, w, xb = step_operands(indptr, indices, w, xb, num_features, params, validate)
    if indices.dtype not in (np.uint16, np.int32, np.int64):
        indices = compact_indices(indices, xb.shape[0])
    if w.dtype not in (np.uint8, np.uint16):
        w = compact_weights(w, params.w_spec)

    ys = params.y_spec
    if packed_out and ys.bits not in PACKABLE_BITS:
        raise invalid("output bits", ys.bits, f"one of {PACKABLE_BITS} for packed_out")
    lo, hi = acc_range(params.acc_bits)
    upd = rq_args(params.upd)
    out = (params.out.multiplier, params.out.shift, params.out.zero_point, params.out.spec.qmin,
           params.out.spec.qmax)
    th = level_thresholds(*out, *upd)
    use_th = vector_rows_supported(xs.bits, xb.shape[1], ys.bits if packed_out else 0,
                                                  params.w_zero, th)
    y16, yb, sats = aggregate_planes(
        np.ascontiguousarray(indptr, dtype=np.int64), indices, w, xb, int(num_features), xs.bits,
        params.x_zero + packed_offset(xs), centred_max(xs, params.x_zero), params.w_zero, lo, hi,
        params.out.multiplier, params.out.shift, params.out.zero_point, params.out.spec.qmin,
        params.out.spec.qmax, *upd, int(block), ys.bits if packed_out else 0,
        packed_offset(ys) if packed_out else 0,
        th if th is not None else np.zeros(0, dtype=np.int64), use_th)
    return AggregationResult(y=yb if packed_out else y16, saturations=int(sats.sum()),
                             extra={"row_saturations": sats})
