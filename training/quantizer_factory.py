"""One place that decides which quantizer every stage of a model gets.

The models ask for a quantizer by *role*; this factory turns the run's bit configuration
into a :mod:`quant.quantizers` module.  Roles:

``act``
    Linear-layer inputs and outputs, propagation message / aggregate / update outputs, and
    every tensor that feeds a propagation step: ``bits`` (QLR; BT / BT* when configured).
``inner``
    The message and aggregate stages inside a propagation step when an update stage follows:
    ``bits``, plain QLR even in BT modes (the aggregation unit has no truncation stage).
``weight``
    Linear weights: ``bits`` (QLR, BT as configured, like the published code).
``edge``
    GCN edge weights ``A_hat[i, j] > 0``: unsigned QLR at ``edge_bits`` (zero point 0
    because the tensor is non-negative); never truncated.
``comb``
    Intermediates of the element-wise combination steps that no propagation step reads,
    and the model's final output: unsigned QLR at ``comb_bits``.

With ``bits=None`` (FP32) every quantizer is a passthrough.  In ``paper_code`` mode every
QLR uses the published backward pass, and quantizers given the same ``share`` key share
one alpha parameter (the published code's single message / aggregate / update alpha for
all propagation steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from quant.errors import invalid
from quant.quantizers import FakeQuantizer, QLRQuantizer

ROLES = ("act", "inner", "weight", "edge", "comb")
BT_CHOICES = (None, "BT", "BT*")


@dataclass
class QuantizerFactory:
    """Builds the quantizer of each stage from the run's bit configuration.

    Parameters
    ----------
    bits : int or None
        Width of activations, weights and propagation stages; ``None`` = FP32.
    bt : {None, "BT", "BT*"}
        INT2 bitwise truncation for the ``act`` and ``inner``
    The message and aggregate stages inside a propagation step when an update stage follows:
    ``bits``, plain QLR even in BT modes (the aggregation unit has no truncation stage).
``weight`` roles (needs ``bits=2``).
    edge_bits, comb_bits : int
        Widths of the ``edge`` and ``comb`` roles.
    bt_zero : bool
        BT / BT* quantizers put zero on their four-level grid
        (:class:`quant.quantizers.QLRQuantizer` ``bt_zero``; docs/training.md, "BT / BT*").
    paper_code : bool
        Published-code compatibility: its QLR backward pass and shared alphas.
    alpha_reinit : int or None
        Every quantizer re-runs its alpha grid search every ``alpha_reinit`` training calls.
    """

    bits: int | None
    bt: str | None = None
    edge_bits: int = 8
    comb_bits: int = 8
    paper_code: bool = False
    alpha_reinit: int | None = None
    bt_zero: bool = False
    _shared: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.bt not in BT_CHOICES:
            raise invalid("bt", self.bt, f"one of {list(BT_CHOICES)}")
        if self.bt is not None and self.bits != 2:
            raise invalid("bits", self.bits, f"2 when bt={self.bt!r}")

    @property
    def enabled(self) -> bool:
        return self.bits is not None

    def make(self, role: str, share: str | None = None) -> FakeQuantizer:
        """A new quantizer for ``role``; ``share`` names an alpha shared in paper-code mode."""
        if role not in ROLES:
            raise invalid("role", role, f"one of {ROLES}")
        if not self.enabled:
            return QLRQuantizer(None)
        alpha = None
        if self.paper_code and share is not None:
            if share not in self._shared:
                self._shared[share] = nn.Parameter(torch.ones(()))
            alpha = self._shared[share]
        kw = {"paper_code": self.paper_code, "alpha": alpha, "reinit_every": self.alpha_reinit}
        if role == "edge":
            return QLRQuantizer(self.edge_bits, **kw)
        if role == "comb":
            return QLRQuantizer(self.comb_bits, **kw)
        bt = None if role == "inner" else self.bt
        return QLRQuantizer(self.bits, bt_mode=bt, bt_zero=bt is not None and self.bt_zero, **kw)
