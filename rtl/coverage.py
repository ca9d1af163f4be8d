"""Functional coverage of the cocotb bench (``cocotb-coverage`` cover points).

The bench samples, per design (one simulator run):

``degree``       each row's degree: ``0``, ``1``, ``2..max-1``, ``max`` (= the design's
                 ``max_degree``) and ``>max`` (rows deeper than the design's bound);
``row_sat``      each row (and pass): ``saturating`` (some lane's accumulator clamps) or not;
``out_code``     every output code the unit sends, one bin per code of the design's width
                 (``int<bits>u`` / ``int<bits>s``);
``handshake``    each cycle's ``(i.valid, i.ready, o.valid, o.ready)``, the 8 states
                 ``i.ready = ~o.valid | o.ready`` allows;
``stall``        every stall with the handshake position it hits: a sink stall (``o.valid &
                 ~o.ready``) while the beat on offer is a row's ``first``, ``mid``, ``last``,
                 ``single`` (degree 1) or ``empty`` beat, or while the pipeline ``drain``s after
                 the last beat; a source bubble before a ``first``, ``mid``, ``last``, ``single``
                 or ``empty`` beat.

:class:`Collector` holds the cover points of one run and exports their hits;
:func:`merge` adds runs together (bins of the same name add up; output codes are kept per
width) and :func:`markdown` renders the table.  Requirement: every bin hit at least once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from quant.aggregate import aggregate_reference
from sim.design.point import DesignPoint

__all__ = ["BEAT_KINDS", "Collector", "STALL_BINS", "beat_kinds", "markdown", "merge", "row_saturations"]

#: Position of a beat in its row.
BEAT_KINDS = ("first", "mid", "last", "single", "empty")
#: Stall bins: sink stalls at each beat position and while draining, source bubbles before each beat.
STALL_BINS = tuple([f"sink stall @ {k}" for k in BEAT_KINDS + ("drain",)]
                   + [f"source bubble @ {k}" for k in BEAT_KINDS])
DEGREE_BINS = ("0", "1", "2..max-1", "max", ">max")
#: Reachable handshake states ``(i.valid, i.ready, o.valid, o.ready)``.
HANDSHAKE_BINS = tuple(f"iv={iv} ir={int((not ov) or ordy)} ov={ov} or={ordy}"
                       for iv in (0, 1) for ov in (0, 1) for ordy in (0, 1))
#: Bins every run must hit together: all but ``>max`` (rows past the bound are a stress
#: case, not a requirement of the protocol).
REQUIRED = ("degree", "row_sat", "out_code", "handshake", "stall")


def width_name(dp: DesignPoint) -> str:
    return f"int{dp.bits}{'s' if dp.signed else 'u'}"


def degree_bin(deg: int, max_degree: int) -> str:
    if deg <= 1:
        return str(deg)
    if deg < max_degree:
        return "2..max-1"
    return "max" if deg == max_degree else ">max"


def beat_kinds(indptr: np.ndarray, n_chunks: int) -> list[str]:
    """The :data:`BEAT_KINDS` label of every beat of the stream (all passes, in order)."""
    one = []
    for deg in np.diff(np.asarray(indptr, np.int64)):
        if deg == 0:
            one.append("empty")
        elif deg == 1:
            one.append("single")
        else:
            one += ["first"] + ["mid"] * int(deg - 2) + ["last"]
    return one * n_chunks


def row_saturations(case, dp: DesignPoint) -> list[bool]:
    """For every row of ``case`` and every pass: does any lane's accumulator clamp?"""
    lanes = dp.lanes
    F = case.n_feat
    out = []
    for c in range(-(-F // lanes)):
        x = case.x[:, c * lanes:(c + 1) * lanes]
        for i in range(case.n_rows):
            a, b = int(case.indptr[i]), int(case.indptr[i + 1])
            res = aggregate_reference(np.array([0, b - a]), case.indices[a:b], case.w[a:b], x, case.params)
            out.append(res.saturations > 0)
    return out


class Collector:
    """The cover points of one bench run (one design).

    Parameters
    ----------
    dp : DesignPoint
    prefix : str
        Root of the cover point names in ``cocotb_coverage.coverage.coverage_db``.
    """

    def __init__(self, dp: DesignPoint, prefix: str = "unit") -> None:
        from cocotb_coverage.coverage import CoverPoint

        self.dp = dp
        self.prefix = prefix
        spec = dp.feat_spec
        self.codes = list(range(spec.qmin, spec.qmax + 1))
        md = dp.max_degree
        self._degree = CoverPoint(f"{prefix}.degree", xf=lambda d: degree_bin(d, md), bins=list(DEGREE_BINS))(
            lambda d: None)
        self._row_sat = CoverPoint(f"{prefix}.row_sat", xf=lambda s: "saturating" if s else "non-saturating",
                                   bins=["saturating", "non-saturating"])(lambda s: None)
        self._code = CoverPoint(f"{prefix}.out_code", bins=self.codes)(lambda c: None)
        self._handshake = CoverPoint(f"{prefix}.handshake", bins=list(HANDSHAKE_BINS))(lambda s: None)
        self._stall = CoverPoint(f"{prefix}.stall", bins=list(STALL_BINS))(lambda s: None)

    def case(self, case, words: Sequence[int]) -> None:
        """Sample one finished case: row degrees, saturating rows, the output codes received."""
        from sim.design.stream import unpack_out

        for d in np.diff(case.indptr):
            self._degree(int(d))
        for s in row_saturations(case, self.dp):
            self._row_sat(bool(s))
        lanes, F = self.dp.lanes, case.n_feat
        for k, w in enumerate(words):
            used = min(lanes, F - (k // case.n_rows) * lanes) if case.n_rows else lanes
            for code in unpack_out(w, self.dp)[:max(used, 0)]:
                self._code(int(code))

    def cycle(self, i_valid: int, i_ready: int, o_valid: int, o_ready: int, next_kind: str | None,
              bubble: bool) -> None:
        """Sample one clock cycle: the handshake state and any stall with its position.

        ``next_kind`` is the :data:`BEAT_KINDS` label of the beat on offer or next to be
        offered (None when every beat has been accepted); ``bubble`` means the source had
        a beat left but did not offer it.
        """
        self._handshake(f"iv={i_valid} ir={i_ready} ov={o_valid} or={o_ready}")
        if o_valid and not o_ready:
            self._stall(f"sink stall @ {next_kind or 'drain'}")
        if bubble and next_kind is not None:
            self._stall(f"source bubble @ {next_kind}")

    def export(self) -> dict:
        """Hits per bin of every cover point: ``{point: {bin: hits}}`` (JSON-ready)."""
        from cocotb_coverage.coverage import coverage_db

        out = {}
        for name in ("degree", "row_sat", "out_code", "handshake", "stall"):
            hits = coverage_db[f"{self.prefix}.{name}"].detailed_coverage
            out[name] = {str(k): int(v) for k, v in hits.items()}
        return {"design_key": self.dp.key(), "width": width_name(self.dp), "points": out}


def merge(runs: Iterable[dict]) -> dict:
    """Add exported runs together.  Returns ``{points: {point: {bin: hits}}, bins, hit, missed}``;
    ``out_code`` bins are named ``<width>:<code>``; ``degree >max`` is reported, not required."""
    points: dict[str, dict[str, int]] = {}
    designs = []
    for run in runs:
        designs.append(run["design_key"])
        for name, hits in run["points"].items():
            dst = points.setdefault(name, {})
            for b, n in hits.items():
                key = f"{run['width']}:{b}" if name == "out_code" else b
                dst[key] = dst.get(key, 0) + n
    required = [(p, b) for p in REQUIRED for b in points.get(p, {}) if not (p == "degree" and b == ">max")]
    missed = [f"{p}/{b}" for p, b in required if points[p][b] == 0]
    return {"designs": designs, "points": points, "bins": len(required), "hit": len(required) - len(missed),
            "missed": missed}


def markdown(report: dict, command: str, machine: str) -> str:
    """Coverage table: per cover point, bins hit of bins; then the hits of every bin."""
    lines = ["# Aggregation unit: functional coverage of the cocotb CI set", "",
             f"Generated by `{command}` on {machine}. Cover points from `cocotb-coverage`, sampled by "
             "the bench (`rtl/bench.py`, `rtl/coverage.py`) in every CI run "
             f"({len(report['designs'])} runs: {', '.join(report['designs'])}).", "",
             f"**{report['hit']} of {report['bins']} required bins hit**"
             + (f"; missed: {', '.join(report['missed'])}" if report["missed"] else "") + ".", "",
             "| cover point | bins hit | bins |", "| --- | --- | --- |"]
    for p, hits in report["points"].items():
        req = {b: n for b, n in hits.items() if not (p == "degree" and b == ">max")}
        lines.append(f"| {p} | {sum(1 for n in req.values() if n)} | {len(req)} |")
    for p, hits in report["points"].items():
        lines += ["", f"## {p}", "", "| bin | hits |", "| --- | --- |"]
        lines += [f"| {b} | {n} |" for b, n in hits.items()]
    return "\n".join(lines) + "\n"
