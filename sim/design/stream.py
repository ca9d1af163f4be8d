"""Stream protocol and timing of the aggregation unit, numpy side.

The RTL (``rtl/aggregator.py``), its testbenches and the cycle model all build their
stream words and cycle counts from this module, so the three agree by construction.
numpy + ``quant`` only (no amaranth, no torch).  The protocol is described in
``docs/rtl.md``; in short:

* **Input beat** (one per edge, ready/valid), fields LSB-first::

      feat   lanes x bits   the neighbour's feature chunk, lane 0 in the LSBs (quant.pack.pack_word)
      weight weight_bits    the edge-weight code
      last   1              last beat of this row
      empty  1              the row has no edges: this single beat carries no edge (last = 1)

* **Chunks**: ``lanes = word_bits // bits`` features per beat.  Pass ``c`` covers features
  ``[c*lanes, (c+1)*lanes)``; the whole graph is streamed once per pass, rows in order.
  Lanes past ``F`` in the last pass carry ``x_zero`` (their product is 0); their outputs are
  ignored.
* **Output word** (one per row per pass): ``lanes`` output codes of ``bits`` bits, lane 0 in
  the LSBs.
* **Timing** (ideal source and sink): one input beat per cycle, so
  ``cycles = total_beats + latency(dp)`` with
  ``total_beats = n_chunks * sum_i max(deg_i, 1)``; ``cycles`` counts clock edges from the edge
  that transfers the first input beat to the edge that transfers the last output word,
  both included.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quant.aggregate import AggregationParams, Requantizer, check_csr
from quant.errors import QuantError, invalid
from quant.pack import pack_fields, pack_word, unpack_fields, unpack_word
from quant.spec import QuantSpec
from sim.design.point import DesignPoint

#: Width of the unit's shift ports (``n`` in ``0 .. 2**SHIFT_BITS - 1``; quant allows up to 62).
SHIFT_BITS = 6
#: Largest shift the unit takes (``quant.reference.MAX_SHIFT``).
MAX_UNIT_SHIFT = 62
#: Pipeline stages of one requantizer (multiply; round-shift + zero point + clamp).
REQUANT_STAGES = 2
#: Stages of the edge path without message requantization: product register, accumulator.
BASE_STAGES = 2
#: Width of the saturation counter port (wraps modulo ``2**SAT_COUNT_BITS``).
SAT_COUNT_BITS = 32

__all__ = [
    "BASE_STAGES", "MAX_UNIT_SHIFT", "REQUANT_STAGES", "SAT_COUNT_BITS", "SHIFT_BITS",
    "beat_widths", "beats", "check_params", "chunks", "config_values", "degrees",
    "expected_words", "ideal_cycles", "latency", "pack_beat", "pack_out", "out_widths",
    "total_beats", "unpack_beat", "unpack_out",
]


# ---------------------------------------------------------------------------------------
# word layouts
# ---------------------------------------------------------------------------------------

def beat_widths(dp: DesignPoint) -> list[int]:
    """Field widths of one input beat, LSB first: ``lanes`` x ``bits``, weight, last, empty."""
    return [dp.bits] * dp.lanes + [dp.weight_bits, 1, 1]


def out_widths(dp: DesignPoint) -> list[int]:
    """Field widths of one output word: ``lanes`` x ``bits``."""
    return [dp.bits] * dp.lanes


def pack_beat(feat: Sequence[int], weight: int, last: bool, empty: bool, dp: DesignPoint) -> int:
    """One input beat as an integer (``feat`` has exactly ``dp.lanes`` codes)."""
    if len(feat) != dp.lanes:
        raise invalid("len(feat)", len(feat), f"lanes={dp.lanes}")
    return pack_fields(list(feat) + [int(weight), int(bool(last)), int(bool(empty))], beat_widths(dp))


def unpack_beat(word: int, dp: DesignPoint) -> tuple[list[int], int, bool, bool]:
    """Inverse of :func:`pack_beat`: ``(feat codes, weight, last, empty)``."""
    f = unpack_fields(word, beat_widths(dp), [dp.signed] * dp.lanes + [False] * 3)
    return f[:dp.lanes], f[dp.lanes], bool(f[dp.lanes + 1]), bool(f[dp.lanes + 2])


def pack_out(codes: Sequence[int], dp: DesignPoint) -> int:
    """One output word from ``dp.lanes`` output codes."""
    if len(codes) != dp.lanes:
        raise invalid("len(codes)", len(codes), f"lanes={dp.lanes}")
    return pack_word(list(codes), dp.bits)


def unpack_out(word: int, dp: DesignPoint) -> list[int]:
    """Inverse of :func:`pack_out` (signed codes if ``dp.signed``)."""
    return unpack_word(word, dp.bits, dp.lanes, dp.signed)


# ---------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------

def chunks(F: int, dp: DesignPoint) -> int:
    """Passes over the graph for ``F`` features: ``ceil(F / lanes)``."""
    if isinstance(F, bool) or not isinstance(F, (int, np.integer)) or F < 1:
        raise invalid("F", F, "a positive int (features per node)")
    return -(-int(F) // dp.lanes)


def degrees(indptr: np.ndarray) -> np.ndarray:
    """In-degree of every destination row, (N,) int64."""
    return np.diff(np.asarray(indptr, dtype=np.int64))


def total_beats(indptr: np.ndarray, F: int, dp: DesignPoint) -> int:
    """Input beats of a whole step: ``chunks(F) * sum_i max(deg_i, 1)``."""
    return chunks(F, dp) * int(np.maximum(degrees(indptr), 1).sum())


def latency(dp: DesignPoint) -> int:
    """Pipeline latency ``L`` in cycles: ``ideal_cycles = total_beats + L``.

    ``L = BASE_STAGES + REQUANT_STAGES * (1 + msg + upd)``: product register, accumulator,
    each enabled requantizer, and the edge that transfers the output word is the last one
    counted.  With the defaults: 4, +2 per enabled message / update requantizer.
    """
    return BASE_STAGES + REQUANT_STAGES * (1 + int(dp.msg_requant) + int(dp.upd_requant))


def ideal_cycles(indptr: np.ndarray, F: int, dp: DesignPoint) -> int:
    """Cycles of a whole step with an ideal source and sink (see the module docstring)."""
    return total_beats(indptr, F, dp) + latency(dp)


# ---------------------------------------------------------------------------------------
# parameters -> ports
# ---------------------------------------------------------------------------------------

def _same_codes(a: QuantSpec, b: QuantSpec) -> bool:
    return (a.bits, a.signed, a.narrow_range) == (b.bits, b.signed, b.narrow_range)


def _check_requant(rq: Requantizer | None, name: str, enabled: bool, dp: DesignPoint) -> None:
    if enabled and rq is None:
        raise QuantError(f"params.{name} must be set because the design has {name}_requant=True, not None")
    if not enabled:
        if rq is not None and name != "out":
            raise QuantError(f"params.{name} must be None because the design has {name}_requant=False, "
                             f"not {rq!r}")
        return
    if not _same_codes(rq.spec, dp.feat_spec):
        raise invalid(f"params.{name}.spec", rq.spec.to_dict(),
                      f"bits={dp.bits}, signed={dp.signed}, narrow_range=False (the unit's code range)")
    if rq.shift < 0:
        raise invalid(f"params.{name}.shift", rq.shift,
                      ">= 0 (the unit has no left shift; fold 2**-n into the multiplier at export)")
    if rq.shift > MAX_UNIT_SHIFT:
        raise invalid(f"params.{name}.shift", rq.shift, f"<= {MAX_UNIT_SHIFT}")
    if not 0 <= rq.multiplier < (1 << dp.mult_bits):
        raise invalid(f"params.{name}.multiplier", rq.multiplier,
                      f"in 0..2**mult_bits-1 = {(1 << dp.mult_bits) - 1} (mult_bits={dp.mult_bits})")


def check_params(dp: DesignPoint, params: AggregationParams) -> None:
    """Refuse configuration values the unit built from ``dp`` cannot take.

    Raises
    ------
    QuantError
        Naming the field and value: code ranges that differ from the design point's, an
        accumulator width other than ``dp.acc_width``, a missing or extra requantizer,
        a negative or too large shift, a multiplier of ``mult_bits`` bits or more.
    """
    if not _same_codes(params.x_spec, dp.feat_spec):
        raise invalid("params.x_spec", params.x_spec.to_dict(),
                      f"bits={dp.bits}, signed={dp.signed}, narrow_range=False")
    if not _same_codes(params.w_spec, dp.weight_spec):
        raise invalid("params.w_spec", params.w_spec.to_dict(),
                      f"bits={dp.weight_bits}, signed=False, narrow_range=False")
    if params.acc_bits != dp.acc_width:
        raise invalid("params.acc_bits", params.acc_bits, f"the design's acc_width={dp.acc_width}")
    _check_requant(params.out, "out", True, dp)
    _check_requant(params.msg, "msg", dp.msg_requant, dp)
    _check_requant(params.upd, "upd", dp.upd_requant, dp)


def config_values(dp: DesignPoint, params: AggregationParams) -> dict[str, int]:
    """Values of the unit's configuration ports, by port name (after :func:`check_params`).

    Ports: ``x_zero``, ``w_zero``, ``out_mult``, ``out_shift``, ``out_zero`` and, when enabled,
    ``msg_mult``/``msg_shift``/``msg_zero``, ``upd_mult``/``upd_shift``/``upd_zero``.
    Signed values are returned as Python ints (negative allowed).
    """
    check_params(dp, params)
    cfg = {"x_zero": params.x_zero, "w_zero": params.w_zero}
    for name, rq in (("out", params.out), ("msg", params.msg), ("upd", params.upd)):
        if rq is not None:
            cfg.update({f"{name}_mult": rq.multiplier, f"{name}_shift": rq.shift,
                        f"{name}_zero": rq.zero_point})
    return cfg


# ---------------------------------------------------------------------------------------
# streams
# ---------------------------------------------------------------------------------------

def _check_inputs(indptr, indices, w, x, dp, params):
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2:
        raise invalid("x.shape", x.shape, "(N_src, F)")
    check_csr(indptr, indices, x.shape[0])
    if w.shape != indices.shape:
        raise invalid("w.shape", w.shape, f"{indices.shape} (one code per edge)")
    check_params(dp, params)
    return indptr, indices, w, x


def beats(indptr: np.ndarray, indices: np.ndarray, w: np.ndarray, x: np.ndarray,
          dp: DesignPoint, params: AggregationParams) -> list[list[int]]:
    """The input stream of a whole step, one list of beat words per chunk pass.

    Shapes: ``indptr`` (N+1,), ``indices`` (E,), ``w`` (E,), ``x`` (N_src, F).
    Returns ``chunks(F)`` lists of ``sum_i max(deg_i, 1)`` integers each.
    """
    indptr, indices, w, x = _check_inputs(indptr, indices, w, x, dp, params)
    F = x.shape[1]
    n_chunks, lanes = chunks(F, dp), dp.lanes
    xp = np.full((x.shape[0], n_chunks * lanes), params.x_zero, dtype=np.int64)
    xp[:, :F] = x
    mask = (1 << dp.bits) - 1
    shifts = [k * dp.bits for k in range(lanes)]
    fw = lanes * dp.bits
    out: list[list[int]] = []
    for c in range(n_chunks):
        # pack each source node's chunk once
        cols = xp[:, c * lanes:(c + 1) * lanes] & mask
        feat_words = [sum(int(v) << s for v, s in zip(row, shifts)) for row in cols.tolist()]
        words: list[int] = []
        for i in range(indptr.size - 1):
            lo, hi = int(indptr[i]), int(indptr[i + 1])
            if lo == hi:
                words.append((1 << (fw + dp.weight_bits)) | (1 << (fw + dp.weight_bits + 1)))
                continue
            for e in range(lo, hi):
                last = 1 if e == hi - 1 else 0
                words.append(feat_words[int(indices[e])] | (int(w[e]) << fw)
                             | (last << (fw + dp.weight_bits)))
        out.append(words)
    return out


def expected_words(y: np.ndarray, dp: DesignPoint) -> list[list[list[int]]]:
    """Expected output codes per pass and row: ``[c][i]`` = codes of lanes ``< F`` only.

    Shapes: ``y`` (N, F); entry ``[c][i]`` has ``min(lanes, F - c*lanes)`` codes.  Padded
    lanes are left out: their value is not part of the contract.
    """
    y = np.asarray(y, dtype=np.int64)
    F = y.shape[1]
    return [[row.tolist() for row in y[:, c * dp.lanes:(c + 1) * dp.lanes]]
            for c in range(chunks(F, dp))]
