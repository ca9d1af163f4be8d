"""Exact torch versions of the integer reference (``quant.reference``), bit for bit.

Every function here takes and returns torch tensors and computes exactly what its numpy
namesake in :mod:`quant.reference` computes: integers in ``torch.int64`` while computing,
codes returned as ``torch.int32``, float -> code conversion in IEEE float32 with the same
operation order (``x / s + z``, then the spec's rounding, then the clamp).
``tests/quant`` checks each against the numpy reference with exact equality.

Validation (scale, zero point, shift, multiplier, finite input) reuses the reference's
checks, so the error messages (a :class:`~quant.errors.QuantError` naming the field and
the value) are the same in both paths.

This module and :mod:`quant.quantizers` are the only places in ``quant`` that import torch.
"""

from __future__ import annotations

import torch

from quant.errors import QuantError, invalid
from quant.reference import (_check_multiplier, _check_shift, add_shifted, check_scale,
                             product_fits, shift_half_up)
from quant.spec import QuantSpec, Rounding

__all__ = ["add_requantize", "check_finite", "dequantize", "linear_accumulate", "quantize",
           "relu_codes", "requantize", "round_float", "round_shift"]


# ---------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------

def check_finite(x: torch.Tensor, field: str = "x") -> None:
    """Raise :class:`QuantError` if ``x`` holds NaN or infinity, naming index and value."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise QuantError(f"{field} must be finite, not {float(x[idx])!r} at index {idx}")


def _as_int64(v: torch.Tensor, field: str) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        raise invalid(field, type(v).__name__, "a torch.Tensor")
    if v.dtype.is_floating_point or v.dtype.is_complex or v.dtype == torch.bool:
        raise invalid(f"{field}.dtype", str(v.dtype), "an integer dtype")
    return v.to(torch.int64)


# ---------------------------------------------------------------------------------------
# float <-> code
# ---------------------------------------------------------------------------------------

def round_float(v: torch.Tensor, rounding: Rounding | str) -> torch.Tensor:
    """Round float32 values to integral float32 values (same modes as the reference).

    ``half_even``: ``torch.round`` (ties to even, like ``np.rint``);
    ``half_up``: ``floor(v) + [v - floor(v) >= 0.5]`` (ties toward +inf, exact);
    ``floor``: ``floor(v)``.
    """
    rounding = Rounding.parse(rounding)
    if rounding is Rounding.HALF_EVEN:
        return torch.round(v)
    if rounding is Rounding.HALF_UP:
        f = torch.floor(v)
        return f + (v - f >= 0.5).to(f.dtype)
    return torch.floor(v)


def scaled_codes_float(x: torch.Tensor, scale: torch.Tensor | float, zero_point: int,
                       spec: QuantSpec) -> torch.Tensor:
    """``clamp(R(x / s + z), qmin, qmax)`` as float32, without validation.

    The float32 arithmetic of :func:`quantize`, shared with the fake-quant modules so that
    their forward pass and ``to_int`` produce the same codes.  ``scale`` may be a 0-d
    float32 tensor that requires grad; rounding is not differentiable here (the quantizer
    modules wrap it in a straight-through estimator).
    """
    s = scale if isinstance(scale, torch.Tensor) else torch.tensor(float(scale), dtype=torch.float32)
    v = x / s + torch.tensor(float(zero_point), dtype=torch.float32)
    return torch.clamp(round_float(v, spec.rounding), spec.qmin, spec.qmax)


def quantize(x: torch.Tensor, scale: float, zero_point: int, spec: QuantSpec) -> torch.Tensor:
    """Float -> integer codes ``clamp(R(x / s + z), qmin, qmax)`` in float32.

    Parameters
    ----------
    x : torch.Tensor, any shape
        Real values (converted to float32).
    scale : float
        Step size ``s > 0`` (used as float32).
    zero_point : int
        Code of real zero, inside ``[qmin, qmax]``.
    spec : QuantSpec

    Returns
    -------
    torch.Tensor of int32, same shape as ``x``; equal to
    ``quant.reference.quantize(x.numpy(), scale, zero_point, spec)``.
    """
    x = torch.as_tensor(x).detach().to(torch.float32)
    check_finite(x)
    s = check_scale(scale)
    z = spec.check_zero_point(zero_point)
    st = torch.tensor(float(s), dtype=torch.float32)
    return scaled_codes_float(x, st, z, spec).to(torch.int32)


def dequantize(q: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """Codes -> float32 values ``(q - z) * s`` (same shape as ``q``)."""
    q = _as_int64(q, "q")
    s = check_scale(scale)
    return (q - int(zero_point)).to(torch.float32) * torch.tensor(float(s), dtype=torch.float32)


# ---------------------------------------------------------------------------------------
# integer requantization
# ---------------------------------------------------------------------------------------

def round_shift(v: torch.Tensor, n: int) -> torch.Tensor:
    """Divide by ``2**n`` rounding half up, exactly (int64 in, int64 out).

    ``n > 0``: ``(v + 2**(n-1)) >> n`` (arithmetic shift); ``n == 0``: ``v``;
    ``n < 0``: ``v << -n``.

    >>> round_shift(torch.tensor([-3, -2, -1, 1, 2, 3]), 1).tolist()
    [-1, -1, 0, 1, 1, 2]
    """
    v = _as_int64(v, "v")
    n = _check_shift(n)
    return shift_half_up(v, n) if n else v.clone()


def _check_product(v: torch.Tensor, m: int, n: int) -> None:
    if v.numel():
        vmax = int(v.abs().max())
        if not product_fits(vmax, m, n):
            raise invalid("v * multiplier", vmax * m, f"below 2**62 (multiplier={m}, shift={n})")


def requantize(v: torch.Tensor, multiplier: int, shift: int, zero_point: int,
               spec: QuantSpec) -> torch.Tensor:
    """Integer-only rescale ``clamp(round_shift(v * M, n) + z, qmin, qmax)``.

    Shapes: ``v`` any shape (integer dtype, centred values); returns int32 of that shape.
    Same validation and result as :func:`quant.reference.requantize`.
    """
    v = _as_int64(v, "v")
    m = _check_multiplier(multiplier)
    n = _check_shift(shift)
    z = spec.check_zero_point(zero_point)
    _check_product(v, m, n)
    out = round_shift(v * m, n) + z
    return torch.clamp(out, spec.qmin, spec.qmax).to(torch.int32)


def add_requantize(a: torch.Tensor, a_zero: int, a_mult: int, b: torch.Tensor, b_zero: int,
                   b_mult: int, shift: int, zero_point: int, spec: QuantSpec) -> torch.Tensor:
    """``clamp(round_shift((a-za)*Ma + (b-zb)*Mb, n) + z)`` with signed multipliers.

    Shapes: ``a`` and ``b`` broadcast together; returns int32 of the broadcast shape.
    """
    out = add_shifted(_as_int64(a, "a"), a_zero, a_mult, _as_int64(b, "b"), b_zero, b_mult, shift,
                      zero_point, spec)
    return torch.clamp(out, spec.qmin, spec.qmax).to(torch.int32)


# ---------------------------------------------------------------------------------------
# layer-level integer operations
# ---------------------------------------------------------------------------------------

def relu_codes(q: torch.Tensor, zero_point: int) -> torch.Tensor:
    """ReLU on codes: ``max(q, z)``; returns int32 of ``q``'s shape."""
    return torch.clamp(_as_int64(q, "q"), min=int(zero_point)).to(torch.int32)


def linear_accumulate(x_q: torch.Tensor, x_zero: int, w_q: torch.Tensor, w_zero: int,
                      bias_q: torch.Tensor | None = None) -> torch.Tensor:
    """Integer GEMM ``(x - z_x) @ (w - z_w).T + b`` exactly in int64.

    Shapes: ``x_q`` (N, K), ``w_q`` (C, K), ``bias_q`` (C,); returns (N, C) int64.
    """
    x = _as_int64(x_q, "x_q") - int(x_zero)
    w = _as_int64(w_q, "w_q") - int(w_zero)
    if x.dim() != 2 or w.dim() != 2 or x.shape[1] != w.shape[1]:
        raise invalid("shapes", (tuple(x.shape), tuple(w.shape)), "(N, K) and (C, K)")
    acc = x @ w.T
    if bias_q is not None:
        acc = acc + _as_int64(bias_q, "bias_q")[None, :]
    return acc
