"""The integer-exact forward: every quantized stage computes the integer model's codes.

Each stage of a model runs two things at once:

* its **fake-quant path** (float32, differentiable): the stage's float expression, then its
  quantizer.  It records the quantizer's range in training mode, runs the alpha grid search,
  and carries the gradient (LSQ-style in the quantizer, straight-through elsewhere);
* its **integer op**, the one :mod:`training.lowering` exports, on the integer codes of the
  stage's inputs, with the requantization constants derived from the quantizers' current
  scales by the same functions as the export (:func:`linear_requant`,
  :func:`propagate_params`, :func:`add_multipliers`, :func:`snap_codes`).

The stage's output value is the dequantized integer codes (``_Exact``: forward value from
the integer codes, gradient to the fake-quant path).  So in evaluation the model's logits
are the integer model's logits, stage for stage, and fake-quant and integer accuracy are the
same by construction.  In training mode every stage is exact too, except the linear layers
under dropout: there the dropped-out input's accumulator ``sum((x - z) m) (w - z) / (1 - p)``
is rounded half to even to an integer before its requantization (exact when ``1/(1 - p)`` is
an integer, e.g. ``p = 0.5``); the integer model itself has no dropout.

A stage's codes travel in a :class:`QT`.  ``record`` (a list, optional) receives the codes
of every integer op in the order the export writes its ops, BT's two snap ops included,
so tests compare them with :meth:`quant.model_ir.IntModel.run` tensor by tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from quant import torch_ops
from quant.aggregate import AggregationParams, Requantizer
from quant.errors import invalid
from quant.reference import (
    acc_bits_required,
    acc_range,
    derive_add_multipliers,
    derive_multiplier,
    quantize_bias,
)
from quant.spec import QuantSpec
from quant.truncation import BT_STEP

#: shift of BT's snap as an ``add`` (:func:`truncation_multipliers`)
TRUNC_SHIFT = 24
#: float64 holds every integer below 2**53 exactly: the linear accumulator's bound
_F64_EXACT = 1 << 53
#: the same for float32
_F32_EXACT = 1 << 24
#: numpy twins of the float dtypes of the exact linear product
_NUMPY_FLOAT = {torch.float32: np.float32, torch.float64: np.float64}


@dataclass(frozen=True)
class QT:
    """A quantized tensor of the exact forward.

    Attributes
    ----------
    value : torch.Tensor
        (N, F) float32 ``(codes - zero) * scale``, carrying the fake-quant path's gradient.
    codes : torch.Tensor
        (N, F) int64 integer codes (BT: on the 8-bit grid, in ``{0, 85, 170, 255}``).
    scale : float
        float32 scale, as a Python float.
    zero : int
    spec : QuantSpec
    src : int or None
        ``id`` of the quantizer that produced the codes (``None`` for a ReLU).
    """

    value: torch.Tensor
    codes: torch.Tensor
    scale: float
    zero: int
    spec: QuantSpec
    src: int | None = None


class _Exact(torch.autograd.Function):
    """Forward: the integer codes' value; backward: the gradient goes to the fake-quant path.

    The forward returns ``exact`` itself: autograd gives an input returned unchanged a new
    tensor object (a view of it) carrying this node, so no copy is made."""

    @staticmethod
    def forward(ctx, fake: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
        return exact

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return g, None


# ---------------------------------------------------------------------------------------
# constants shared with the export (training.lowering)
# ---------------------------------------------------------------------------------------

def qparams(q) -> tuple[float, int, QuantSpec]:
    """``(scale, zero_point, spec)`` of quantizer ``q`` as Python values."""
    s, z, spec = q.qparams()
    return float(s), int(z), spec


def requantizer(ratio: float, q, mult_bits: int) -> Requantizer:
    """Requantization to quantizer ``q``'s codes with ``(M, n)`` of ``ratio``."""
    _, z, spec = qparams(q)
    m, n = derive_multiplier(ratio, mult_bits)
    return Requantizer(m, n, z, spec)


def add_multipliers(ca: float, a_scale: float, cb: float, b_scale: float, out_scale: float,
                    mult_bits: int) -> tuple[int, int, int]:
    """``(Ma, Mb, n)`` of ``Q(ca a + cb b)``: ratios ``ca s_a / s_out`` and ``cb s_b / s_out``,
    each kept to ``mult_bits`` significant bits (:func:`quant.reference.derive_add_multipliers`)."""
    (ma, mb), n = derive_add_multipliers((ca * a_scale / out_scale, cb * b_scale / out_scale),
                                         mult_bits)
    return ma, mb, n


@cache
def truncation_multipliers(skew: int) -> tuple[int, int, int]:
    """``(Ma, Mb, n)`` with ``round_shift(y * Ma + Mb, n) == floor((y + skew + 42) / 85)``
    for every 8-bit code ``y`` (checked exhaustively): BT's snap to four levels as an ``add``
    whose ``b`` operand is the (1, 1) constant 1."""
    n = TRUNC_SHIFT
    ma = round((1 << n) / BT_STEP)
    mb = round((skew + BT_STEP // 2 + 0.5) * (1 << n) / BT_STEP) - (1 << (n - 1))
    y = np.arange(256, dtype=np.int64)
    want = (y + skew + BT_STEP // 2) // BT_STEP
    got = (y * ma + mb + (1 << (n - 1))) >> n
    if not np.array_equal(got, want):  # pragma: no cover - guarded by the exhaustive check
        raise ValueError(f"skew must allow an exact truncation multiplier, not {skew!r}")
    return ma, mb, n


def is_bt(q) -> bool:
    return getattr(q, "bt_mode", None) is not None


def _snap_adds(codes: torch.Tensor, skew: int, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The export's two snap ``add`` ops on ``codes``: ``(level, 85 * level)``."""
    ma, mb, n = truncation_multipliers(skew)
    one = torch.ones((1, 1), dtype=torch.int64, device=codes.device)
    level = torch_ops.add_requantize(codes, 0, ma, one, 0, mb, n, 0, QuantSpec(2))
    return level, torch_ops.add_requantize(level, 0, BT_STEP, level, 0, 0, 0, 0, spec)


@cache
def _snap_table(skew: int, spec: QuantSpec) -> torch.Tensor:
    """(256,) int64: the two snap ``add`` ops evaluated on every 8-bit code."""
    return _snap_adds(torch.arange(256, dtype=torch.int64), skew, spec)[1].reshape(-1).to(torch.int64)


def _tail(q, s: float, z: int) -> tuple:
    """The tail a stage's CPU kernel runs on its codes for quantizer ``q`` (scale ``s``, zero
    point ``z``): ``(snap, s, z)``, ``snap`` the constants of BT's two snap ``add`` ops
    (:func:`_snap_adds`) or ``None``; see :func:`training.exact_kernels.add_codes`."""
    return (_snap_constants(q._skew(), q.code_spec) if is_bt(q) else None), s, z


@cache
def _snap_constants(skew: int, spec: QuantSpec) -> tuple[int, ...]:
    """``(Ma, Mb, n, level qmin, level qmax, 85, qmin, qmax)``: the arithmetic of
    :func:`_snap_adds` as :func:`training.exact_kernels.add_codes`' tail takes it."""
    ma, mb, n = truncation_multipliers(skew)
    level = QuantSpec(2)
    return ma, mb, n, level.qmin, level.qmax, BT_STEP, spec.qmin, spec.qmax


def snap_codes(q, codes: torch.Tensor, record: list | None = None) -> torch.Tensor:
    """BT / BT*'s snap of 8-bit codes, as the export's two ``add`` ops (identity otherwise).

    Without ``record`` the result is looked up in the table of the same two ops evaluated on
    all 256 codes (one gather instead of two passes of int64 arithmetic; on the CPU one
    numba pass, :func:`training.exact_kernels.lookup`)."""
    if not is_bt(q):
        return codes
    if record is None:
        table = _snap_table(q._skew(), q.code_spec).to(codes.device)
        if codes.device.type == "cpu" and codes.dtype == torch.int64:
            from training.exact_kernels import lookup

            return torch.from_numpy(lookup(codes.numpy(), table.numpy()))
        return table.index_select(0, codes.reshape(-1)).reshape(codes.shape)
    level, out = _snap_adds(codes, q._skew(), q.code_spec)
    record.extend([("add", level), ("add", out)])
    return out.to(torch.int64)


def linear_requant(x_scale: float, lin, mult_bits: int) -> Requantizer:
    """The linear op's requantization ``s_x s_w / s_out`` to ``lin.q_out``."""
    sw, _, _ = qparams(lin.q_w)
    so, _, _ = qparams(lin.q_out)
    return requantizer(x_scale * sw / so, lin.q_out, mult_bits)


def message_requantizer(prop, x_scale: float, e_scale: float, mult_bits: int) -> Requantizer | None:
    """The message requantization ``s_x s_w / s_msg`` of ``prop`` (``None`` without ``q_msg``)."""
    if prop.q_msg is None:
        return None
    sm, _, _ = qparams(prop.q_msg)
    return requantizer(x_scale * e_scale / sm, prop.q_msg, mult_bits)


def propagate_params(prop, x_scale: float, x_zero: int, x_spec: QuantSpec, e_scale: float,
                     e_zero: int, e_spec: QuantSpec, max_degree: int, mult_bits: int):
    """``(AggregationParams, last quantizer)`` of one ``QuantPropagate`` (message ``s_x s_w /
    s_msg``, row ``s_msg / s_agg`` (or ``s_x s_w / s_agg``), update ``s_agg / s_upd``)."""
    prod = x_scale * e_scale
    msg, acc_scale = message_requantizer(prop, x_scale, e_scale, mult_bits), prod
    if msg is not None:
        acc_scale, _, _ = qparams(prop.q_msg)
    sa, _, _ = qparams(prop.q_agg)
    out = requantizer(acc_scale / sa, prop.q_agg, mult_bits)
    upd, last = None, prop.q_agg
    if prop.q_upd is not None:
        su, _, _ = qparams(prop.q_upd)
        upd = requantizer(sa / su, prop.q_upd, mult_bits)
        last = prop.q_upd
    acc_bits = acc_bits_required(x_spec.bits, e_spec.bits, max_degree)
    return AggregationParams(x_spec=x_spec, x_zero=x_zero, w_spec=e_spec, w_zero=e_zero,
                             acc_bits=acc_bits, out=out, msg=msg, upd=upd), last


# ---------------------------------------------------------------------------------------
# exact stages
# ---------------------------------------------------------------------------------------

def fake_needed(*qs) -> bool:
    """Whether a stage must run its fake-quant path besides its integer op.

    The fake-quant path's value is replaced by the integer codes' value; it is needed only
    for the gradient (autograd recording), for the quantizers' training-mode state (range,
    call counter, alpha grid search) and to initialise a quantizer at its first call.  An
    evaluation forward under ``torch.no_grad`` of a model whose quantizers ``qs`` (``None``
    entries ignored) are all initialised skips it: the stage's value is then the dequantized
    codes alone, the same tensor values.
    """
    if torch.is_grad_enabled():
        return True
    return any(q is not None and (q.training or not bool(q.initialized)) for q in qs)


def _requantize(v: torch.Tensor, first: Requantizer, second: Requantizer | None = None
                ) -> torch.Tensor:
    """``second(first(v))`` (or ``first(v)``): each requantizer on its centred input (``v``,
    then the first codes minus ``first.zero_point``), as :func:`quant.torch_ops.requantize`
    computes and validates it.  CPU int64 ``v`` takes one numba pass
    (:func:`training.exact_kernels.requant_chain`, int64 out) unless a product could leave
    the admitted range; everything else the validated tensor ops (int32 out)."""
    return _requantize_tail(v, first, second)[0]


def _requantize_tail(v: torch.Tensor, first: Requantizer, second: Requantizer | None = None,
                     tail: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(codes, values)``: :func:`_requantize`, and with ``tail`` (:func:`_tail`) on the
    numba pass the snapped codes and their dequantized values from the same pass; ``values``
    is ``None`` (and the codes are not snapped) wherever that pass does not run."""
    if v.device.type == "cpu" and v.dtype == torch.int64:
        from training.exact_kernels import requant_chain

        out = requant_chain(v.numpy(), first, second, tail)
        if out is not None:
            return _from_kernel(*out)
    y = torch_ops.requantize(v, first.multiplier, first.shift, first.zero_point, first.spec)
    if second is not None:
        y = torch_ops.requantize(y.to(torch.int64) - first.zero_point, second.multiplier,
                                 second.shift, second.zero_point, second.spec)
    return y, None


def _from_kernel(codes: np.ndarray, values: np.ndarray | None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A numba kernel's ``(codes, values)`` as tensors (``values`` may be ``None``)."""
    return torch.from_numpy(codes), None if values is None else torch.from_numpy(values)


def _dequantize(codes: torch.Tensor, s: float, z: int) -> torch.Tensor:
    """:func:`quant.torch_ops.dequantize`, in one numba pass for CPU int64 codes."""
    if codes.device.type != "cpu" or codes.dtype != torch.int64:
        return torch_ops.dequantize(codes, s, z)
    from training.exact_kernels import dequantize

    return torch.from_numpy(dequantize(codes.numpy(), z, s))


def wrap(q, fake: torch.Tensor | None, codes: torch.Tensor,
         exact: torch.Tensor | None = None) -> QT:
    """A :class:`QT` of quantizer ``q``'s final ``codes``, its value carrying ``fake``'s gradient
    (``fake=None``: no fake-quant path, the value is the dequantized codes).  ``exact``: the
    dequantized codes, when the stage's kernel computed them already."""
    s, z, spec = qparams(q)
    if exact is None:
        exact = _dequantize(codes, s, z)
    value = exact if fake is None else _Exact.apply(fake, exact)
    return QT(value, codes.to(torch.int64), s, z, spec, id(q))


def input_stage(q, x: torch.Tensor, record: list | None = None) -> QT:
    """The ``input`` op: ``q``'s codes of the preprocessed features (BT: then the snap).

    The quantizer's forward is ``dequantize(to_int(x))`` bit for bit (``quant.quantizers``),
    so without ``record`` the codes are read back from it: ``round(fake / s) + z`` is exact,
    the float32 error of ``((q - z) s) / s`` being below ``255 * 2**-23`` of a code.  With
    ``record`` they are computed as the ``input`` op and the snap ``add`` ops compute them.
    """
    fake = q(x)
    if record is None:
        s, z, _ = qparams(q)
        codes = torch.round(fake.detach() / torch.tensor(s, dtype=torch.float32)).to(torch.int64) + z
        return wrap(q, fake, codes)
    q8 = torch_ops.quantize(x, *q.qparams()).to(torch.int64)
    record.append(("input", q8))
    return wrap(q, fake, snap_codes(q, q8, record))


def relu_stage(x: QT, record: list | None = None) -> QT:
    """The ``relu`` op: ``max(q, z)``."""
    codes = torch.clamp(x.codes, min=x.zero)
    if record is not None:
        record.append(("relu", codes))
    return QT(F.relu(x.value), codes, x.scale, x.zero, x.spec, None)


def add_stage(q, a: QT, ca: float, b: QT, cb: float, mult_bits: int,
              record: list | None = None, ca_t=None, cb_t=None) -> QT:
    """``Q(ca a + cb b)`` as the export's ``add`` op (then BT's snap if ``q`` truncates).

    ``ca_t`` / ``cb_t`` (tensors, optional) replace ``ca`` / ``cb`` in the fake-quant path so
    that a data-dependent coefficient (SMP's ``c_k``) keeps its gradient.
    """
    fake = None
    if fake_needed(q):
        y = (ca if ca_t is None else ca_t) * a.value + (cb if cb_t is None else cb_t) * b.value
        fake = q(y)
    s, z, spec = qparams(q)
    ma, mb, n = add_multipliers(ca, a.scale, cb, b.scale, s, mult_bits)
    return _add_op(q, fake, a, ma, b, mb, n, s, z, spec, record)


def _add_op(q, fake: torch.Tensor | None, a: QT, ma: int, b: QT, mb: int, n: int, s: float,
            z: int, spec: QuantSpec, record: list | None) -> QT:
    """The :class:`QT` of the ``add`` op ``(a, ma) + (b, mb) >> n`` to quantizer ``q``'s codes
    (scale ``s``, zero point ``z``, ``spec``), then BT's snap."""
    return _stage_out(q, fake, "add", lambda tail: _add_codes_tail(
        a.codes, a.zero, ma, b.codes, b.zero, mb, n, z, spec, tail), record)


def _stage_out(q, fake: torch.Tensor | None, op: str, compute, record: list | None) -> QT:
    """The :class:`QT` of a stage whose integer op ``op`` ends in quantizer ``q``'s codes.

    ``compute(tail)`` returns ``(codes, values)`` as :func:`_requantize_tail` does.  Without
    ``record`` it gets the stage's :func:`_tail`, so BT's snap and the dequantization run in
    the op's own kernel; with ``record`` (or where that kernel does not run) the codes are
    recorded as ``op`` and the snap's two ``add`` ops follow (:func:`snap_codes`)."""
    if record is None:
        s, z, _ = qparams(q)
        codes, exact = compute(_tail(q, s, z))
        if exact is not None:
            return wrap(q, fake, codes, exact)
    else:
        codes, _ = compute(None)
        record.append((op, codes))
    return wrap(q, fake, snap_codes(q, codes.to(torch.int64), record))


def _add_codes_tail(a: torch.Tensor, a_zero: int, ma: int, b: torch.Tensor, b_zero: int, mb: int,
                    n: int, z: int, spec: QuantSpec, tail: tuple | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(codes, values)`` of the ``add`` op: :func:`quant.torch_ops.add_requantize` (int32
    codes), or for two CPU int64 tensors of one shape the same arithmetic in one numba pass
    (:func:`training.exact_kernels.add_codes`, int64).  With ``tail`` (:func:`_tail`) that
    pass also gives the snapped codes and their dequantized values; ``values`` is ``None``
    (and the codes are not snapped) wherever it does not run."""
    if (a.device.type == "cpu" and b.device.type == "cpu" and a.dtype == torch.int64
            and b.dtype == torch.int64 and a.shape == b.shape):
        from quant.reference import _check_multiplier, _check_shift
        from training.exact_kernels import add_codes

        _check_multiplier(ma, "a_mult", signed=True)
        _check_multiplier(mb, "b_mult", signed=True)
        return _from_kernel(*add_codes(a.numpy(), a_zero, ma, b.numpy(), b_zero, mb,
                                       _check_shift(n), spec.check_zero_point(z), spec.qmin,
                                       spec.qmax, tail))
    return torch_ops.add_requantize(a, a_zero, ma, b, b_zero, mb, n, z, spec), None


def convert_stage(q, a: QT, mult_bits: int, record: list | None = None) -> QT:
    """``a`` requantized to ``q``'s codes (the export's ``add`` with ``b_mult = 0``; nothing
    when ``q`` produced ``a`` or its parameters are identical)."""
    if a.src == id(q):
        return a
    fake = q(a.value) if fake_needed(q) else None
    s, z, spec = qparams(q)
    if s == a.scale and z == a.zero and spec == a.spec:
        value = a.value.detach() if fake is None else _Exact.apply(fake, a.value.detach())
        return QT(value, a.codes, s, z, spec, id(q))
    ma, mb, n = add_multipliers(1.0, a.scale, 0.0, a.scale, s, mult_bits)
    return _add_op(q, fake, a, ma, a, mb, n, s, z, spec, record)


def _int_matmul(codes: torch.Tensor, zero: int, wc: torch.Tensor,
                dropped: torch.Tensor | None = None) -> torch.Tensor:
    """Exact ``((codes - zero) * keep) @ wc.T`` with ``keep = dropped != 0`` (``None``: all
    kept).

    float32 (float64) BLAS when ``K max|codes - zero| max|wc|``, a bound on every product
    and partial sum, is below ``2**24`` (``2**53``): every intermediate is then an exactly
    representable integer, in any summation order; int64 otherwise.  ``dropped`` is the
    dropped-out float input (an input is dropped where it is 0).  For CPU codes the centred
    operand is built in one numba pass and the product is returned in its float dtype
    (integral values; :func:`training.exact_kernels.linear_accumulators` takes it to int64).

    Shapes: ``codes`` (N, K) int64, ``wc`` (C, K) int64 centred weights, ``dropped`` (N, K)
    float32; returns (N, C) float32 / float64 integral values, or int64.
    """
    k = codes.shape[1]
    fast = codes.device.type == "cpu" and codes.dtype == torch.int64
    if fast:
        from training.exact_kernels import centred_max

        xmax = centred_max(codes.numpy(), zero)
    else:
        xmax = max(abs(int(codes.max()) - zero), abs(int(codes.min()) - zero)) if codes.numel() else 0
    bound = k * xmax * (int(wc.abs().max()) if wc.numel() else 0)
    dt = torch.float32 if bound < _F32_EXACT else torch.float64 if bound < _F64_EXACT else torch.int64
    if fast and dt != torch.int64:
        from training.exact_kernels import centred_operand

        mask = None if dropped is None else dropped.detach().numpy()
        xc = torch.from_numpy(centred_operand(codes.numpy(), zero, _NUMPY_FLOAT[dt], mask))
        return xc @ wc.to(dt).T
    xc = codes.to(dt) - zero
    if dropped is not None:
        xc.masked_fill_(dropped == 0, 0)
    return (xc @ wc.to(dt).T).to(torch.int64)


def linear_stage(lin, x: QT, dropout: float, mult_bits: int, record: list | None = None) -> QT:
    """The ``linear`` op of ``lin`` (a :class:`training.layers.QuantLinear`) on ``x``'s codes,
    preceded by a conversion to ``lin.q_in`` when ``x`` has other codes."""
    from training.layers import fake_quant_bias

    x = convert_stage(lin.q_in, x, mult_bits, record)
    w = lin.lin.weight
    need = fake_needed(lin.q_w, lin.q_out)
    wq = lin.q_w(w) if need else None
    sw, zw, _ = qparams(lin.q_w)
    w_codes = lin.q_w.to_int(w.detach()).to(torch.int64)
    rescale = lin.training and dropout > 0
    xv = F.dropout(x.value, dropout, True) if rescale else x.value
    acc = _int_matmul(x.codes, x.zero, w_codes - zw, xv if rescale else None)
    bias, b_codes = lin.lin.bias, None
    if bias is not None:
        b_codes = quantize_bias(bias.detach().cpu().numpy().astype(np.float64), x.scale, sw)
    if acc.dtype != torch.int64:          # the float product of the one-pass operand (CPU)
        from training.exact_kernels import linear_accumulators

        acc = torch.from_numpy(linear_accumulators(
            acc.numpy(), 1.0 - dropout if rescale else None,
            None if b_codes is None else b_codes.astype(np.int64)))
    else:
        if rescale:
            acc = torch.round(acc.to(torch.float64) / (1.0 - dropout)).to(torch.int64)
        if b_codes is not None:
            acc = acc + torch.from_numpy(b_codes.astype(np.int64)).to(acc.device)[None, :]
    if bias is not None:
        if need:
            bias = fake_quant_bias(bias, torch.tensor(x.scale, dtype=torch.float32),
                                   torch.tensor(sw, dtype=torch.float32))
    fake = lin.q_out(F.linear(xv, wq, bias)) if need else None
    r = linear_requant(x.scale, lin, mult_bits)
    return _stage_out(lin.q_out, fake, "linear", lambda tail: _requantize_tail(acc, r, None, tail),
                      record)


def propagate_stage(prop, x: QT, edge: QT, graph, mult_bits: int,
                    record: list | None = None) -> QT:
    """The ``propagate`` op of ``prop`` (a :class:`training.layers.QuantPropagate`) on ``x``'s
    codes: message, in-order saturating accumulation, row and update requantizations."""
    from training.exact_pass import PendingPass, pending

    fake, acc = None, None
    if fake_needed(prop.q_msg, prop.q_agg, prop.q_upd):
        with pending(PendingPass(prop, x, edge, graph, mult_bits)) as one_pass:
            fake = prop(x.value, graph, edge.value)
    params, last = propagate_params(prop, x.scale, x.zero, x.spec, edge.scale, edge.zero,
                                    edge.spec, graph.max_degree, mult_bits)
    if is_bt(prop.q_msg) or (prop.q_upd is not None and is_bt(prop.q_agg)):
        raise ValueError("BT inside a propagation step (message / aggregate) has no integer form")
    if fake is not None:
        acc = one_pass.accumulators(params)
    return _stage_out(last, fake, "propagate", lambda tail: _aggregate_tail(
        graph, edge.codes, x.codes, params, acc, tail), record)


#: message tables kept.  A table's key holds the message requantizer, which the scales of
#: every training step change, so few are met again (about one lookup in ten, training
#: SMP at K = 10); one table of BT's 8-bit codes is 128 KiB (int16) and takes about 30 us
#: to build, so a short cache keeps the hits that come close together and little memory
MESSAGE_TABLES_KEPT = 8


@lru_cache(maxsize=MESSAGE_TABLES_KEPT)
def _message_table_np(msg: Requantizer | None, x_spec: QuantSpec, x_zero: int, w_spec: QuantSpec,
                      w_zero: int) -> np.ndarray:
    """(levels_x, levels_w), read-only: every message ``(x - z_x)(w - z_w)`` of the codes'
    ranges, requantized by ``msg`` and centred (the exact integer op on every code pair), or
    the products themselves without a message requantizer.  int16 when every entry is within
    ``+-32767`` (requantized messages are), else int32 (products of 8-bit codes are at most
    ``255 * 255`` in magnitude); the kernels add them into int64."""
    from training.exact_kernels import message_table

    table = message_table((x_spec.qmin, x_spec.qmax), x_zero, (w_spec.qmin, w_spec.qmax), w_zero,
                          msg)
    if table is None:                        # the validated path, which refuses the product
        xs = torch.arange(x_spec.qmin, x_spec.qmax + 1, dtype=torch.int64)
        ws = torch.arange(w_spec.qmin, w_spec.qmax + 1, dtype=torch.int64)
        prod = (xs - x_zero)[:, None] * (ws - w_zero)[None, :]
        table = (_requantize(prod, msg).to(torch.int64) - msg.zero_point).numpy().astype(np.int32)
    table.setflags(write=False)
    return table


def _message_table(params: AggregationParams) -> torch.Tensor:
    """(levels_x, levels_w) int64: :func:`_message_table_np` of ``params`` (cached)."""
    return torch.from_numpy(_message_table_np(params.msg, params.x_spec, params.x_zero,
                                              params.w_spec, params.w_zero).astype(np.int64))


def table_key(params) -> tuple:
    """The arguments of :func:`_message_table_np` for ``params`` (an
    :class:`~quant.aggregate.AggregationParams`)."""
    return params.msg, params.x_spec, params.x_zero, params.w_spec, params.w_zero


def table_operands(graph, w: torch.Tensor, x: torch.Tensor, key: tuple
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(src, col, table)`` of :func:`training.exact_kernels.aggregate_table` for one
    propagation op (CPU): int32 sources, each edge code's column of the message table
    (cached per edge-code tensor) and :func:`_message_table_np` of ``key`` (a
    :func:`table_key`: ``(msg, x_spec, x_zero, w_spec, w_zero)``).  Codes outside their spec
    are refused (the kernels index the table with them).

    Shapes: ``w`` (E,) edge codes, ``x`` (N, F) node codes.
    """
    from training.fused_message import _cached

    _, xs, _, ws, _ = key

    def check(name, arr, spec):
        if not arr.numel():
            return
        if arr.device.type == "cpu":
            from training.exact_kernels import min_max

            lo, hi = min_max(arr.numpy())
        else:
            lo, hi = int(arr.min()), int(arr.max())
        if lo < spec.qmin or hi > spec.qmax:
            raise invalid(f"{name} codes", (lo, hi), f"in [{spec.qmin}, {spec.qmax}]")

    def columns():                           # once per edge-code tensor
        check("w", w, ws)
        return (w.to(torch.int64) - ws.qmin).to(torch.int32)

    check("x", x, xs)
    table = _message_table_np(*key)
    src = _cached("src32", graph.edge_index[0], (), lambda: graph.edge_index[0].to(torch.int32))
    col = _cached("col32", w, (ws.qmin, ws.qmax), columns)
    return src.numpy(), col.numpy(), table


def aggregate_fast(graph, w: torch.Tensor, x: torch.Tensor, params: AggregationParams,
                   acc: torch.Tensor | None = None) -> torch.Tensor:
    """One propagation op, equal to :func:`training.integer.aggregate` (and so to
    :func:`quant.aggregate.aggregate_reference`), in one pass over the edges.

    A message depends only on its pair of codes, so each message is a lookup in
    :func:`_message_table_np` (the requantized product of every pair of codes).  On the CPU
    the rows are accumulated by :func:`training.exact_kernels.aggregate_table` (edge by edge
    in CSR order, each partial sum clamped to the accumulator: the reference's saturating
    accumulation, and the plain row sum for rows that cannot saturate), then requantized.
    On other devices: the rows are summed at once (exact in int64) when
    ``max in-degree * max |message|`` fits the accumulator, otherwise accumulated by
    :func:`training.integer.aggregate`.

    ``acc`` (N, F) int64, optional: the accumulators, already computed (by
    :class:`training.exact_pass.PendingPass`); only the requantizations are left.

    Shapes: ``w`` (E,) edge codes in the graph's canonical order, ``x`` (N, F) codes;
    returns (N, F) int64 (CPU) or int32.
    """
    return _aggregate_tail(graph, w, x, params, acc)[0]


def _aggregate_tail(graph, w: torch.Tensor, x: torch.Tensor, params: AggregationParams,
                    acc: torch.Tensor | None = None, tail: tuple | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(codes, values)``: :func:`aggregate_fast`, and with ``tail`` (:func:`_tail`) on the
    numba requantization the snapped codes and their dequantized values from the same call;
    ``values`` is ``None`` (and the codes are not snapped) wherever that call does not run."""
    from training import integer

    lo, hi = acc_range(params.acc_bits)
    if acc is None and x.device.type == "cpu" and w.device.type == "cpu":
        from training.exact_kernels import aggregate_table

        src, col, table = table_operands(graph, w, x, table_key(params))
        acc = torch.from_numpy(aggregate_table(
            graph.indptr, src, col, x.numpy(), table, params.x_spec.qmin, lo, hi,
            graph.max_degree))
    elif acc is None:
        src, dst = graph.edge_index
        table = _message_table(params).to(x.device)
        nw = table.shape[1]
        idx = (x - params.x_spec.qmin)[src] * nw + (w.to(torch.int64) - params.w_spec.qmin)[:, None]
        p = table.reshape(-1)[idx]
        pmax = int(table.abs().max())
        if graph.max_degree * pmax > min(hi, -lo):
            return integer.aggregate(graph.indptr_t, graph.indices_t, w, x, params)[0], None
        acc = torch.zeros(graph.num_nodes, x.shape[1], dtype=torch.int64, device=x.device)
        acc.index_add_(0, dst, p)
    return _requantize_tail(acc, params.out, params.upd, tail)


def edge_stage(q, edge_weight: torch.Tensor) -> QT:
    """Edge-weight codes (constant: no gradient).

    The quantizer still runs on the weights when :func:`fake_needed` (its training-mode
    state); the codes are remembered for the same weight tensor and quantizer parameters,
    so every forward of a model passes the same codes tensor to its propagation ops."""
    from training.fused_message import _cached

    if fake_needed(q):
        q(edge_weight)
    s, z, spec = qparams(q)

    def build():
        codes = q.to_int(edge_weight.detach()).to(torch.int64)
        return torch_ops.dequantize(codes, s, z), codes
    value, codes = _cached("edge_codes", edge_weight, (id(q), s, z, spec), build)
    return QT(value, codes, s, z, spec, id(q))
