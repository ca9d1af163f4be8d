"""Test vectors for the aggregation unit: cases, seeded fuzzing, batch files, checking.

A case is one propagation step (CSR graph, edge-weight codes, feature codes, parameters)
with its expected output from :func:`quant.aggregate.aggregate_reference`.  Golden cases
written by ``sim.verify.golden`` (``quagga golden``) convert with :func:`from_golden`.
numpy + ``quant`` + ``sim`` only (the cocotb bench imports it inside the simulator).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quant.fileio import atomic_path
from quant.aggregate import AggregationParams, Requantizer, aggregate_reference
from quant.errors import QuantError, invalid
from sim.design.point import DesignPoint
from sim.design.stream import MAX_UNIT_SHIFT, check_params, chunks, expected_words, unpack_out
from sim.verify.step_case import StepCase

__all__ = ["FUZZ_KINDS", "RtlCase", "compare_words", "fuzz_case", "fuzz_cases", "from_golden", "group_by_design",
           "clamp_exact_case", "code_sweep_case", "load_batch", "overflow_cases", "save_batch",
           "shift_sweep_cases"]

#: Kinds of fuzz case, cycled through by :func:`fuzz_cases`.
FUZZ_KINDS = ("random", "hub", "empty", "selfloop", "duplicate", "saturate", "extreme")


@dataclass(frozen=True)
class RtlCase(StepCase):
    """One propagation step with its expected result (:class:`sim.verify.step_case.StepCase`,
    int64 arrays) and the design point it needs, if not the run's own.

    Shapes: ``indptr`` (N+1,), ``indices`` (E,), ``w`` (E,), ``x`` (N_src, F), ``y`` (N, F).
    """

    design: DesignPoint | None = None

    @property
    def n_rows(self) -> int:
        return int(len(self.indptr) - 1)

    @property
    def n_feat(self) -> int:
        return int(self.x.shape[1])

    @classmethod
    def build(cls, name: str, params: AggregationParams, indptr, indices, w, x,
              design: DesignPoint | None = None) -> "RtlCase":
        """Make a case, computing ``y`` and ``saturations`` with the reference."""
        indptr = np.asarray(indptr, np.int64)
        indices = np.asarray(indices, np.int64)
        w = np.asarray(w, np.int64)
        x = np.asarray(x, np.int64)
        res = aggregate_reference(indptr, indices, w, x, params)
        return cls(name, params, indptr, indices, w, x, res.y.astype(np.int64), int(res.saturations), design)


def from_golden(case) -> RtlCase:
    """Convert a ``sim.verify.golden.GoldenCase`` (duck-typed) into an :class:`RtlCase`."""
    return RtlCase(str(case.name), case.params, np.asarray(case.indptr, np.int64),
                   np.asarray(case.indices, np.int64), np.asarray(case.w, np.int64),
                   np.asarray(case.x, np.int64), np.asarray(case.y, np.int64), int(case.saturations),
                   getattr(case, "design", None))


# ---------------------------------------------------------------------------------------
# fuzzing
# ---------------------------------------------------------------------------------------

def _extreme_requant(rng, dp: DesignPoint, base: Requantizer) -> Requantizer:
    m = int(rng.choice([0, 1, (1 << dp.mult_bits) - 1, base.multiplier]))
    n = int(rng.choice([0, 1, MAX_UNIT_SHIFT, base.shift]))
    return Requantizer(m, n, base.zero_point, base.spec)


def fuzz_case(dp: DesignPoint, seed: int, kind: str = "random") -> RtlCase:
    """One seeded random case of the given kind (see :data:`FUZZ_KINDS`).

    The kinds of ``sim.verify.golden.KINDS`` come from :func:`sim.verify.golden.make_random_case` (its
    ``saturate`` kind narrows the design: ``max_degree <= 8``, derived accumulator; the
    case's :attr:`RtlCase.design` says so).  ``extreme`` is a ``random`` case whose
    multipliers and shifts are pushed to their limits (``M`` in {0, 1, 2**mult_bits - 1},
    ``n`` in {0, 1, 62}).  Graphs have 2..16 nodes; ``F`` is ``lanes`` half the time, less
    than ``lanes`` a quarter of the time, and spans 2..3 chunk passes otherwise.
    """
    from sim.verify import golden
    if kind not in FUZZ_KINDS:
        raise invalid("kind", kind, f"one of {FUZZ_KINDS}")
    rng = np.random.default_rng([int(seed), FUZZ_KINDS.index(kind), dp.bits, dp.lanes])
    u = rng.random()
    if u < 0.5:
        F = dp.lanes
    elif u < 0.75:
        F = int(rng.integers(1, dp.lanes + 1))
    else:
        F = int(rng.integers(dp.lanes + 1, 3 * dp.lanes + 1))
    n = int(rng.integers(2, 17))
    gkind = "random" if kind == "extreme" else kind
    g = golden.make_random_case(dp, int(seed), kind=gkind, num_nodes=n, num_features=F,
                                name=f"{kind}-s{seed}")
    case = from_golden(g)
    if kind == "extreme":
        p = case.params
        params = dataclasses.replace(
            p, out=_extreme_requant(rng, dp, p.out),
            msg=_extreme_requant(rng, dp, p.msg) if p.msg is not None else None,
            upd=_extreme_requant(rng, dp, p.upd) if p.upd is not None else None)
        case = RtlCase.build(case.name, params, case.indptr, case.indices, case.w, case.x, design=g.design)
    return case


def overflow_cases(dp: DesignPoint, seed: int = 0) -> list[RtlCase]:
    """Rows deeper than ``dp.max_degree`` that drive ``dp``'s own accumulator into saturation.

    Two cases, one per direction: ``x_zero`` at ``qmin`` (products up) or ``qmax`` (down),
    ``w_zero = 0``, the largest weight.  Each has a row that saturates the even lanes (the odd
    ones see ``x = x_zero``, product 0), one that saturates the odd lanes, an empty row and
    three ordinary edges.  The row requantizer has the largest multiplier and the shift that
    maps a saturated sum into the middle of the code range, so its widest products are checked
    exactly.  Unlike the ``saturate`` fuzz kind this needs no narrower build.  (With a message
    requantizer the addends are codes and the rows do not saturate; they are still deep rows.)
    """
    base = fuzz_case(dp, seed, "random")
    spec = base.params.x_spec
    w_max = (1 << dp.weight_bits) - 1
    step = (spec.qmax - spec.qmin) * w_max
    depth = (1 << (dp.acc_width - 1)) // step + 4
    shift = min(MAX_UNIT_SHIFT, dp.acc_width + dp.mult_bits - dp.bits)
    out = dataclasses.replace(base.params.out, multiplier=(1 << dp.mult_bits) - 1, shift=shift)
    lanes = np.arange(dp.lanes)
    cases = []
    for k, (x_zero, x_far) in enumerate(((spec.qmin, spec.qmax), (spec.qmax, spec.qmin))):
        params = dataclasses.replace(base.params, x_zero=x_zero, w_zero=0, out=out)
        rng = np.random.default_rng([int(seed), dp.bits, dp.lanes, 7, k])
        x = rng.integers(spec.qmin, spec.qmax + 1, size=(5, dp.lanes))
        x[0] = np.where(lanes % 2 == 0, x_far, x_zero)
        x[1] = np.where(lanes % 2 == 1, x_far, x_zero)
        indptr = [0, depth, 2 * depth, 2 * depth, 2 * depth + 3]
        indices = [0] * depth + [1] * depth + [2, 3, 4]
        w = [w_max] * (2 * depth) + list(rng.integers(0, w_max + 1, size=3))
        cases.append(RtlCase.build(f"overflow{'+-'[k]}-s{seed}", params, indptr, indices, w, x))
    return cases


def shift_sweep_cases(dp: DesignPoint, seed: int = 0) -> list[RtlCase]:
    """One small case per row-requantizer shift ``n`` in ``0..min(62, acc_bits + mult_bits)``,
    the multiplier chosen so that typical row sums land inside the code range after the shift
    (the exact path of the requantizer at every shift), plus rows of 8 and 128 largest products
    of either sign (its saturation at every shift) and four rows of 6..96 random large products
    (the bits just above the shifted window, set and clear)."""
    base = fuzz_case(dp, seed, "random")
    spec = base.params.x_spec
    cases = []
    rng = np.random.default_rng([int(seed), dp.bits, dp.lanes, 11])
    typical = max(1, ((spec.qmax - spec.qmin) * ((1 << dp.weight_bits) - 1)) // 4)
    w_mid = 1 << (dp.weight_bits - 1)
    for n in range(min(MAX_UNIT_SHIFT, dp.acc_width + dp.mult_bits) + 1):
        m = int(np.clip((1 << (n + max(dp.bits - 1, 0))) // typical, 1, (1 << dp.mult_bits) - 1))
        m = int(np.clip(m + int(rng.integers(-m // 4, m // 4 + 1)), 1, (1 << dp.mult_bits) - 1))
        out = dataclasses.replace(base.params.out, multiplier=m, shift=n)
        params = dataclasses.replace(base.params, out=out, x_zero=spec.qmin, w_zero=w_mid)
        x = rng.integers(spec.qmin, spec.qmax + 1, size=(5, dp.lanes))
        x[4] = spec.qmax                                          # largest products of either sign
        w_top = (1 << dp.weight_bits) - 1
        deep = [(4, w) for w in [w_top] * 8 + [0] * 8 + [w_top] * 128]
        degrees = [1, 2, 3, 8, 8, 128]
        for d in (6, 20, 48, 96):                              # random large sums: every bit pattern
            up = bool(rng.integers(0, 2))
            deep += [(4, int(v)) for v in rng.integers(w_mid if up else 0, w_top + 1 if up else w_mid, size=d)]
            degrees.append(d)
        indptr = np.cumsum([0] + degrees)
        indices = list(rng.integers(0, 4, size=6)) + [e[0] for e in deep]
        w = list(rng.integers(0, 1 << dp.weight_bits, size=6)) + [e[1] for e in deep]
        cases.append(RtlCase.build(f"shift{n}-s{seed}", params, indptr, indices, w, x))
    return cases


def _edges_summing_to(delta: int, big: int, w_zero: int, w_max: int) -> list[tuple[int, int]]:
    """``(node, w)`` edges whose products sum to exactly ``delta``: steps of ``big * (w - w_zero)``
    on node 0, then unit steps ``(w - w_zero)`` on node 1."""
    out = []
    hi_r, lo_r = w_max - w_zero, -w_zero
    r = hi_r if delta > 0 else lo_r
    while delta and abs(delta) >= abs(big * r):
        out.append((0, r + w_zero))
        delta -= big * r
    while delta:
        step = max(lo_r, min(hi_r, delta))
        out.append((1, step + w_zero))
        delta -= step
    return out


def clamp_exact_case(dp: DesignPoint, seed: int = 0) -> RtlCase:
    """Two rows that walk every lane's accumulator exactly onto its top (then bottom), one edge
    past it (one clamp), and exactly back to a code in range; identity requantizers.

    A clamp bound or clamp value off by one, or a compare that counts the bound itself as an
    overflow, changes the output code or the saturation count.  ``x_zero = qmin``,
    ``w_zero = 2**(weight_bits-1)``; node 0 has ``qmax`` on every lane (steps of
    ``(qmax - qmin) * r``), node 1 ``qmin + 1`` (unit steps).
    """
    base = code_sweep_case(dp, seed)
    spec = base.params.x_spec
    w_zero, w_max = 1 << (dp.weight_bits - 1), (1 << dp.weight_bits) - 1
    params = dataclasses.replace(base.params, w_zero=w_zero)
    big = spec.qmax - spec.qmin
    hi, lo = (1 << (dp.acc_width - 1)) - 1, -(1 << (dp.acc_width - 1))
    c = (1 << max(dp.bits - 1, 0)) - 1
    rows = []
    for bound, past in ((hi, w_max), (lo, 0)):
        edges = _edges_summing_to(bound, big, w_zero, w_max) + [(0, past)]
        edges += _edges_summing_to(c - bound, big, w_zero, w_max)
        rows.append(edges)
    x = np.full((2, dp.lanes), spec.qmax)
    x[1] = spec.qmin + 1
    indptr = np.cumsum([0] + [len(r) for r in rows])
    return RtlCase.build(f"clamp-exact-s{seed}", params, indptr, [e[0] for r in rows for e in r],
                         [e[1] for r in rows for e in r], x)


def code_sweep_case(dp: DesignPoint, seed: int = 0) -> RtlCase:
    """One-edge rows whose outputs are every code of the design's width, each at least once.

    Every requantizer is the identity (``M = 1``, ``n = 0``, zero point ``qmin``), ``x_zero =
    qmin`` and the centred weight is 1, so each output code equals the input code; row ``i``
    carries codes ``qmin + i*lanes .. qmin + i*lanes + lanes - 1`` (wrapping).
    """
    base = fuzz_case(dp, seed, "random")
    p = base.params
    spec = p.x_spec

    def ident(r):
        return None if r is None else Requantizer(1, 0, spec.qmin, r.spec)

    params = dataclasses.replace(p, x_zero=spec.qmin, w_zero=0, out=ident(p.out), msg=ident(p.msg),
                                 upd=ident(p.upd))
    n_codes = spec.qmax - spec.qmin + 1
    rows = -(-n_codes // dp.lanes)
    x = spec.qmin + (np.arange(rows * dp.lanes).reshape(rows, dp.lanes) % n_codes)
    return RtlCase.build(f"codes-s{seed}", params, np.arange(rows + 1), np.arange(rows), np.ones(rows), x)


def fuzz_cases(dp: DesignPoint, n: int, seed: int = 0) -> list[RtlCase]:
    """``n`` seeded cases cycling through :data:`FUZZ_KINDS` (seeds ``seed, seed+1, ...``)."""
    return [fuzz_case(dp, seed + k, FUZZ_KINDS[k % len(FUZZ_KINDS)]) for k in range(n)]


def group_by_design(cases: Sequence[RtlCase], default: DesignPoint) -> list[tuple[DesignPoint, list[RtlCase]]]:
    """Split cases by the design they need (one RTL build each), in first-seen order."""
    groups: dict[str, tuple[DesignPoint, list[RtlCase]]] = {}
    for c in cases:
        d = c.design or default
        groups.setdefault(d.key(), (d, []))[1].append(c)
    return list(groups.values())


# ---------------------------------------------------------------------------------------
# batch files (what the cocotb bench reads)
# ---------------------------------------------------------------------------------------

_ARRAYS = ("indptr", "indices", "w", "x", "y")


def save_batch(path: str | os.PathLike, cases: Sequence[RtlCase]) -> Path:
    """Write cases to one ``.npz`` (no pickles), atomically."""
    path = Path(path)
    meta = [{"name": c.name, "params": c.params.to_dict(), "saturations": c.saturations,
             "design": c.design.to_dict() if c.design else None} for c in cases]
    arrays = {"meta": np.array(json.dumps(meta))}
    for k, c in enumerate(cases):
        for a in _ARRAYS:
            arrays[f"c{k}_{a}"] = np.asarray(getattr(c, a), np.int64)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return path


def load_batch(path: str | os.PathLike) -> list[RtlCase]:
    """Read a file written by :func:`save_batch`."""
    with np.load(Path(path), allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return [RtlCase(m["name"], AggregationParams.from_dict(m["params"]),
                        *(z[f"c{k}_{a}"] for a in _ARRAYS), int(m["saturations"]),
                        DesignPoint.from_dict(m["design"]) if m.get("design") else None)
                for k, m in enumerate(meta)]


# ---------------------------------------------------------------------------------------
# checking
# ---------------------------------------------------------------------------------------

def compare_words(case: RtlCase, words: Sequence[int], dp: DesignPoint, limit: int = 10) -> list[dict]:
    """Compare the unit's output words (all passes, rows in order) with ``case.y``.

    Returns up to ``limit`` mismatch records ``{pass, row, lane, got, expected}`` (an empty
    list means bit-exact); a wrong number of words is one record with ``row = -1``.
    """
    exp = expected_words(case.y, dp)
    n_expected = sum(len(p) for p in exp)
    out: list[dict] = []
    if len(words) != n_expected:
        out.append({"pass": -1, "row": -1, "lane": -1, "got": len(words), "expected": n_expected})
    k = 0
    for c, rows in enumerate(exp):
        for i, codes in enumerate(rows):
            if k >= len(words):
                return out
            got = unpack_out(words[k], dp)[:len(codes)]
            k += 1
            for lane, (g, e) in enumerate(zip(got, codes)):
                if g != e and len(out) < limit:
                    out.append({"pass": c, "row": i, "lane": lane, "got": int(g), "expected": int(e)})
    return out


def check_case(case: RtlCase, dp: DesignPoint) -> None:
    """Raise :class:`QuantError` if the unit built from ``dp`` cannot run ``case``."""
    try:
        check_params(dp, case.params)
        chunks(case.n_feat, dp)
    except QuantError as exc:
        raise QuantError(f"case {case.name!r}: {exc}") from None


def iter_checked(cases: Iterable[RtlCase], dp: DesignPoint) -> Iterable[RtlCase]:
    for c in cases:
        check_case(c, dp)
        yield c
