"""Reference semantics of one quantized propagation step ``Y = Q(A_hat X)``.

This is the behaviour of the aggregation unit (``rtl/``) and of the simulator's numba
kernel (``sim/``), written as a plain loop.  For every destination row ``i`` (CSR,
destination-sorted) and every feature lane ``l``::

    acc = 0
    for e in indptr[i] .. indptr[i+1]-1:           # in stream order
        p = (x[indices[e], l] - z_x) * (w[e] - z_w)  # exact integer product
        if message requantization is on:
            m = clamp(round_shift(p * M_msg, n_msg) + z_msg, msg range)
            p = m - z_msg
        acc = clamp(acc + p, acc range)              # saturate; count each clamp
    y = clamp(round_shift(acc * M_out, n_out) + z_out, out range)
    if update requantization is on:
        y = clamp(round_shift((y - z_out) * M_upd, n_upd) + z_upd, upd range)

A row with no edges produces ``requantize(0)`` (= ``z_out``, then the update step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from quant.errors import invalid
from quant.reference import (_check_multiplier, _check_shift, acc_range, requantize,
                             round_shift)
from quant.spec import QuantSpec


@dataclass(frozen=True)
class Requantizer:
    """One integer requantization stage: ``(M, n)``, output zero point and code range."""

    multiplier: int
    shift: int
    zero_point: int
    spec: QuantSpec

    def __post_init__(self) -> None:
        _check_multiplier(self.multiplier)
        _check_shift(self.shift)
        self.spec.check_zero_point(self.zero_point)

    def __call__(self, v: np.ndarray) -> np.ndarray:
        return requantize(v, self.multiplier, self.shift, self.zero_point, self.spec)

    def to_dict(self) -> dict:
        return {"multiplier": self.multiplier, "shift": self.shift,
                "zero_point": self.zero_point, "spec": self.spec.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "Requantizer":
        return cls(int(d["multiplier"]), int(d["shift"]), int(d["zero_point"]),
                   QuantSpec.from_dict(d["spec"]))


@dataclass(frozen=True)
class AggregationParams:
    """Configuration values of one propagation step (what the RTL takes as inputs).

    Parameters
    ----------
    x_spec, x_zero : input feature codes and their zero point.
    w_spec, w_zero : edge-weight codes and their zero point.
    acc_bits : accumulator width (saturating).
    out : requantizer of the row sum (aggregate stage).
    msg : optional requantizer of each edge's product (message stage).
    upd : optional requantizer applied to the output codes (update stage).
    """

    x_spec: QuantSpec
    x_zero: int
    w_spec: QuantSpec
    w_zero: int
    acc_bits: int
    out: Requantizer
    msg: Requantizer | None = None
    upd: Requantizer | None = None

    def __post_init__(self) -> None:
        self.x_spec.check_zero_point(self.x_zero, "x_zero")
        self.w_spec.check_zero_point(self.w_zero, "w_zero")
        acc_range(self.acc_bits)

    @property
    def y_spec(self) -> QuantSpec:
        return (self.upd or self.out).spec

    @property
    def y_zero(self) -> int:
        return (self.upd or self.out).zero_point

    def to_dict(self) -> dict:
        return {"x_spec": self.x_spec.to_dict(), "x_zero": self.x_zero,
                "w_spec": self.w_spec.to_dict(), "w_zero": self.w_zero,
                "acc_bits": self.acc_bits, "out": self.out.to_dict(),
                "msg": self.msg.to_dict() if self.msg else None,
                "upd": self.upd.to_dict() if self.upd else None}

    @classmethod
    def from_dict(cls, d: dict) -> "AggregationParams":
        return cls(QuantSpec.from_dict(d["x_spec"]), int(d["x_zero"]),
                   QuantSpec.from_dict(d["w_spec"]), int(d["w_zero"]), int(d["acc_bits"]),
                   Requantizer.from_dict(d["out"]),
                   Requantizer.from_dict(d["msg"]) if d.get("msg") else None,
                   Requantizer.from_dict(d["upd"]) if d.get("upd") else None)


@dataclass
class AggregationResult:
    """Output codes (N, F) int32 and the number of accumulator saturation events."""

    y: np.ndarray
    saturations: int = 0
    extra: dict = field(default_factory=dict)


def check_csr(indptr: np.ndarray, indices: np.ndarray, num_src: int) -> None:
    """Validate a CSR structure, naming the first offending field and value."""
    indptr = np.asarray(indptr)
    indices = np.asarray(indices)
    if indptr.ndim != 1 or indptr.size < 1:
        raise invalid("indptr.shape", indptr.shape, "(N + 1,)")
    if indptr[0] != 0:
        raise invalid("indptr[0]", int(indptr[0]), "0")
    d = np.diff(indptr)
    if (d < 0).any():
        i = int(np.argmax(d < 0))
        raise invalid(f"indptr[{i + 1}]", int(indptr[i + 1]), f">= indptr[{i}]={int(indptr[i])}")
    if indptr[-1] != indices.size:
        raise invalid("indptr[-1]", int(indptr[-1]), f"len(indices)={indices.size}")
    if indices.size and (indices.min() < 0 or indices.max() >= num_src):
        bad = int(indices[(indices < 0) | (indices >= num_src)][0])
        raise invalid("indices", bad, f"in 0..{num_src - 1}")


def aggregate_reference(indptr: np.ndarray, indices: np.ndarray, w: np.ndarray,
                        x: np.ndarray, params: AggregationParams) -> AggregationResult:
    """One propagation step exactly as the hardware computes it (plain loops).

    Shapes
    ------
    indptr : (N + 1,) row pointers of the destination-sorted CSR graph
    indices : (E,) source node of each edge
    w : (E,) edge-weight codes
    x : (N_src, F) input feature codes
    returns ``y`` : (N, F) int32 output codes
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    check_csr(indptr, indices, x.shape[0])
    if w.shape != indices.shape:
        raise invalid("w.shape", w.shape, f"{indices.shape} (one code per edge)")
    for name, arr, spec in (("x", x, params.x_spec), ("w", w, params.w_spec)):
        if arr.size and (arr.min() < spec.qmin or arr.max() > spec.qmax):
            raise invalid(f"{name} codes", (int(arr.min()), int(arr.max())),
                          f"in [{spec.qmin}, {spec.qmax}]")
    lo, hi = acc_range(params.acc_bits)
    n_rows, n_feat = indptr.size - 1, x.shape[1]
    xc = x - params.x_zero
    wc = w - params.w_zero
    # Every edge's (possibly requantized) message, exactly: (E, F) int64.
    p_all = xc[indices] * wc[:, None]
    if params.msg is not None:
        p_all = params.msg(p_all).astype(np.int64) - params.msg.zero_point
    # Rows whose sum of |message| stays inside the accumulator can never saturate, whatever
    # the order: their sums are exact.  The others are accumulated edge by edge with clamping.
    deg = np.diff(indptr)
    acc_all = np.zeros((n_rows, n_feat), dtype=np.int64)
    safe = np.ones(n_rows, dtype=bool)
    rows = np.flatnonzero(deg > 0)
    if rows.size:
        # consecutive non-empty rows' starts bound exactly their edge ranges
        sums = np.add.reduceat(p_all, indptr[rows], axis=0)
        abs_sums = np.add.reduceat(np.abs(p_all), indptr[rows], axis=0)
        ok = (abs_sums <= min(hi, -lo)).all(axis=1)
        acc_all[rows[ok]] = sums[ok]
        safe[rows[~ok]] = False
    sats = 0
    for i in np.flatnonzero(~safe):
        acc = np.zeros(n_feat, dtype=np.int64)
        for e in range(indptr[i], indptr[i + 1]):
            s = acc + p_all[e]
            clipped = np.clip(s, lo, hi)
            sats += int((clipped != s).sum())
            acc = clipped
        acc_all[i] = acc
    y = params.out(acc_all)
    if params.upd is not None:
        y = params.upd(y.astype(np.int64) - params.out.zero_point)
    return AggregationResult(y=y.astype(np.int32), saturations=sats)


__all__ = ["AggregationParams", "AggregationResult", "Requantizer", "aggregate_reference",
           "check_csr", "round_shift"]
