"""Bit-accurate functional simulation of one propagation step, and of the integer
operations around it, with the numba kernels of :mod:`sim.exact.kernels`.

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
from quant.reference import acc_range, linear_accumulate, product_fits
from quant.spec import QuantSpec
from sim.exact import kernels
from sim.graphs.csr import validate_csr

log = logging.getLogger(__name__)

__all__ = ["accumulate", "aggregate", "linear", "requantize", "stage_bound_safe"]


def centred_max(spec: QuantSpec, zero: int) -> int:
    """Largest ``|q - zero|`` over the code range."""
    return max(spec.qmax - zero, zero - spec.qmin)


def stage_bound_safe(vmax: int, rq: Requantizer | None) -> bool:
    """True if ``|v| <= vmax`` can never trip the reference's int64 guard in ``rq``."""
    if rq is None:
        return True
    return product_fits(vmax, rq.multiplier, rq.shift)


def rq_args(rq: Requantizer | None) -> tuple:
    if rq is None:
        return (False, 0, 0, 0, 0, 0)
    return (True, rq.multiplier, rq.shift, rq.zero_point, rq.spec.qmin, rq.spec.qmax)


def check_codes(name: str, arr: np.ndarray, spec: QuantSpec) -> None:
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
    check_codes("x", x64, params.x_spec)
    check_codes("w", w64, params.w_spec)
    lo, hi = acc_range(params.acc_bits)

    p_max = centred_max(params.x_spec, params.x_zero) * centred_max(params.w_spec, params.w_zero)
    if not stage_bound_safe(p_max, params.msg):
        log.debug("message requantizer may exceed int64 headroom; using the numpy reference")
        res = aggregate_reference(indptr, indices, w64, x64, params)
        res.extra["row_saturations"] = None
        return res
    out_safe = stage_bound_safe(max(-lo, hi), params.out)
    upd_safe = stage_bound_safe(centred_max(params.out.spec, params.out.zero_point), params.upd)
    fused = out_safe and upd_safe
    y, sats = kernels.aggregate_exact(
        indptr, indices, w64, x64, params.x_zero, params.w_zero, lo, hi,
        *rq_args(params.msg), *(rq_args(params.out) if fused else (False, 0, 0, 0, 0, 0)),
        *(rq_args(params.upd) if fused else (False, 0, 0, 0, 0, 0)))
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
    check_codes("x", x64, params.x_spec)
    check_codes("w", w64, params.w_spec)
    p_max = centred_max(params.x_spec, params.x_zero) * centred_max(params.w_spec, params.w_zero)
    if not stage_bound_safe(p_max, params.msg):
        raise invalid("message multiplier", params.msg.multiplier, "small enough for int64 headroom")
    lo, hi = acc_range(params.acc_bits)
    off = (False, 0, 0, 0, 0, 0)
    return kernels.aggregate_exact(indptr, indices, w64, x64, params.x_zero, params.w_zero, lo, hi,
                                   *rq_args(params.msg), *off, *off)


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
