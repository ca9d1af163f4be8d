"""One propagation op of the integer-exact forward as one pass over the edges.

In training, a propagation stage of :mod:`training.exact` computes two things from the same
edges: the integer op (:func:`training.exact.aggregate_fast`, the accumulators of the
looked-up integer messages) and the fake-quant message sum that carries the gradient
(:func:`training.fused_message.quantized_message_sum`, whose forward kernel also returns
the clipped positions and the scale-gradient coefficients).  The fake-quant path's inputs
are the dequantized node codes and the dequantized edge codes, so each of its float
messages, and each term its kernel adds, depends only on the message's pair of codes.
:func:`training.exact_kernels.exact_message_pass` therefore computes both in one pass,
looking the float terms up in per-pair tables built with the kernel's own float32
operations: the float results are bit-identical to the fake-quant kernel's and the integer
accumulators to the integer kernel's.

The stage announces the pass with :func:`pending` around its fake-quant call; the message
sum takes it (:meth:`PendingPass.applies` checks that its inputs are the stage's
dequantized codes) and runs it once the message quantizer's scale is known; the stage then
reads :meth:`PendingPass.accumulators`.  Wherever the pass does not apply (another device,
another quantizer kind, a call that reads the whole message tensor) both kernels run as
before.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import torch

from quant import torch_ops
from quant.reference import acc_bits_required, acc_range

__all__ = ["PendingPass", "current", "pending"]

#: set to ``False`` to run the two kernels separately (tests compare both ways)
ENABLED = True

_local = threading.local()


class PendingPass:
    """The combined pass of one propagation stage (module doc).

    Parameters
    ----------
    prop : training.layers.QuantPropagate
    x, edge : training.exact.QT
        The stage's node codes and edge codes.
    graph : training.graph.PropGraph
    mult_bits : int
    """

    def __init__(self, prop, x, edge, graph, mult_bits: int) -> None:
        self.prop, self.x, self.edge, self.graph, self.mult_bits = prop, x, edge, graph, mult_bits
        self._key = None
        self._acc = None

    def applies(self, xv: torch.Tensor, wv: torch.Tensor) -> bool:
        """Whether the message sum's inputs ``xv`` (N, C) and ``wv`` (E,) are this stage's
        dequantized node and edge codes (the same tensors, on the CPU, float32)."""
        def same(a, b):
            return (a.device.type == "cpu" and a.dtype == torch.float32 and b.dtype == torch.float32
                    and a.data_ptr() == b.data_ptr() and a.shape == b.shape
                    and a.stride() == b.stride())
        return (ENABLED and self.prop.q_msg is not None and self._key is None
                and same(xv, self.x.value) and same(wv, self.edge.value))

    def run(self, s: float, z: float, qmin: float, qmax: float, want_cut: bool, want_coef: bool):
        """The fake-quant forward kernel's results, and the integer accumulators kept.

        ``s``, ``z``, ``qmin``, ``qmax``: the message quantizer's float32 scale, zero point
        and code range at this call.  Returns ``(out (N, C) float32, cut or None, coef or
        None)`` as :func:`training.exact_kernels.quantized_message_sum`, or ``None`` when an
        integer message does not fit the pass's int32 table (the caller then runs that
        kernel).
        """
        from training.exact import message_requantizer, table_operands
        from training.exact_kernels import (can_saturate, compact_codes, exact_message_pass,
                                            pair_table)

        x, e, g = self.x, self.edge, self.graph
        msg = message_requantizer(self.prop, x.scale, e.scale, self.mult_bits)
        key = (msg, x.spec, x.zero, e.spec, e.zero)          # training.exact.table_key
        src, col, table = table_operands(g, e.codes, x.codes, key)
        xv = torch_ops.dequantize(torch.arange(x.spec.qmin, x.spec.qmax + 1), x.scale, x.zero)
        wv = torch_ops.dequantize(torch.arange(e.spec.qmin, e.spec.qmax + 1), e.scale, e.zero)
        xc, used = compact_codes(x.codes.numpy(), table.shape[0], x.spec.qmin)
        if used is not None:                   # only the rows of the codes that occur
            table, xv = table[used], xv[torch.from_numpy(used)]
        pairs = pair_table(table, xv.numpy(), wv.numpy(), s, z, qmin, qmax)
        if pairs is None:
            return None
        acc_bits = acc_bits_required(x.spec.bits, e.spec.bits, g.max_degree)
        lo, hi = acc_range(acc_bits)
        acc, out, cut, coef = exact_message_pass(
            g.indptr, src, col, xc, pairs, lo, hi,
            can_saturate(table, g.max_degree, lo, hi), want_cut, want_coef)
        self._key = (key, acc_bits)
        self._acc = acc
        return out, cut, coef

    def accumulators(self, params) -> torch.Tensor | None:
        """The (N, C) int64 accumulators of the integer op with ``params`` (an
        :class:`~quant.aggregate.AggregationParams`), or ``None`` when the pass did not run
        or ran with another message table or accumulator."""
        from training.exact import table_key

        if self._key is None or self._key != (table_key(params), params.acc_bits):
            return None
        return torch.from_numpy(self._acc)


@contextmanager
def pending(one_pass: PendingPass) -> Iterator[PendingPass]:
    """Make ``one_pass`` the current pass of this thread for the ``with`` block."""
    prev = getattr(_local, "current", None)
    _local.current = one_pass
    try:
        yield one_pass
    finally:
        _local.current = prev


def current() -> PendingPass | None:
    """This thread's pending pass, or ``None``."""
    return getattr(_local, "current", None)
