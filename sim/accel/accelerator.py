"""Estimates of a workload on the accelerator template at FP32 / INT8 / INT4 / INT2.

The workload is either an exported integer model (:class:`ModelWorkload`: the ``.qim`` op list
lowered by :mod:`sim.accel.lowering`, on the model's own CSR) or a stand-in
(:class:`Workload`: ``appnp``, ``gcn`` or ``aggregate``, labelled as such in every output).
:func:`estimate` runs one op list and returns cycles, seconds, action counts, energy and one
record per op; :func:`compare` runs several precisions and adds the ratios against FP32 and
INT8 and the bytes-per-edge ceiling of the aggregation.  Ops run one after the other (no
overlap between units), each with its own compute / memory bound.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from quant import model_ir as mi
from quant.checks import check_choice, check_positive_ints
from quant.errors import QuantError
from sim.accel.cycle import PRECISIONS, PhaseResult, Precision, TemplateOptions, lanes_at
from sim.accel.energy import ActionCounts, EnergyTable, energy
from sim.accel.lowering import (OpSpec, lower_model, model_architecture, model_graph, model_precision,
                                run_ops, stand_in_ops, with_widths)
from sim.accel.systolic_reference import scalesim_ws_cycles
from sim.design.point import DesignPoint
from sim.graphs.datasets import GraphStructure

log = logging.getLogger(__name__)

WORKLOADS = ("appnp", "gcn", "aggregate")
#: Tolerance within which an aggregation speed-up counts as "at the bytes-per-edge ceiling".
CEILING_TOLERANCE = 0.15


@dataclass(frozen=True)
class Workload:
    """A stand-in workload (not a trained model).

    Parameters
    ----------
    kind : {"appnp", "gcn", "aggregate"}
        See :func:`sim.accel.lowering.stand_in_ops`.
    hidden : int
        Hidden width of the linear layers.
    k_steps : int
        Propagation steps of ``appnp``.
    features : int or None
        Feature width of the ``aggregate`` workload (None: the dataset's feature count).
    """

    kind: str = "appnp"
    hidden: int = 64
    k_steps: int = 10
    features: int | None = None

    def __post_init__(self) -> None:
        check_choice("workload", self.kind, WORKLOADS)
        check_positive_ints(self, "hidden", "k_steps")
        if self.features is not None and (isinstance(self.features, bool) or not isinstance(self.features, int)
                                          or self.features < 1):
            raise QuantError(f"features must be a positive int or None, not {self.features!r}")

    def ops(self, g: GraphStructure, prec: Precision, dp: DesignPoint) -> list[OpSpec]:
        return stand_in_ops(self.kind, g.num_nodes, g.num_features, g.num_classes, hidden=self.hidden,
                            k_steps=self.k_steps, features=self.features,
                            bits=None if prec.is_float else prec.bits, weight_bits=dp.weight_bits,
                            max_degree=int(g.degrees.max()) if g.num_edges else 1)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "stand_in": True, "hidden": self.hidden, "k_steps": self.k_steps,
                "features": self.features}


@dataclass(frozen=True)
class ModelWorkload:
    """An exported integer model: its op list, its graph and its identity.

    Build with :meth:`load`.  ``precision`` is the model's own tag (``int<b>``): that result is
    the model at the widths stored in the file; the other precisions are the same op list with
    the widths replaced.
    """

    model: mi.IntModel
    path: str | None
    sha256: str | None
    graph: GraphStructure
    precision: str
    architecture: str | None

    @classmethod
    def load(cls, path: str | Path, expect_graph_hash: str | None = None) -> "ModelWorkload":
        p = Path(path)
        model = mi.load(p, expect_graph_hash=expect_graph_hash)
        return cls.from_model(model, str(p), hashlib.sha256(p.read_bytes()).hexdigest())

    @classmethod
    def from_model(cls, model: mi.IntModel, path: str | None = None, sha256: str | None = None) -> "ModelWorkload":
        indptr, indices = model_graph(model)
        ops = lower_model(model)
        classes = max(2, next((s.in_cols[0] for s in ops if s.op == "argmax"), 2))
        name = str((model.meta or {}).get("dataset") or (Path(path).parent.name if path else "model"))
        g = GraphStructure(name, indptr, indices, int(model.graph["num_features"]), int(classes))
        return cls(model, path, sha256, g, model_precision(model), model_architecture(model))

    def ops(self, g: GraphStructure, prec: Precision, dp: DesignPoint) -> list[OpSpec]:
        stored = lower_model(self.model)
        if prec.name == self.precision:
            return stored
        return with_widths(stored, None if prec.is_float else prec.bits,
                           int(g.degrees.max()) if g.num_edges else 1)

    @property
    def kind(self) -> str:
        return "model"

    def to_dict(self) -> dict:
        return {"kind": "model", "stand_in": False, "architecture": self.architecture,
                "precision": self.precision, "ops": len(self.model.ops)}

    def model_record(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "precision": self.precision,
                "architecture": self.architecture, "graph_hash": self.model.graph["hash"]}


@dataclass
class Estimate:
    """One (graph, design, precision) evaluation: one phase per op."""

    precision: str
    cycles: int
    seconds: float
    ops: list[OpSpec]
    phases: list[PhaseResult]
    counts: ActionCounts
    energy: dict
    op_energy_j: list[float]
    dram_bytes: int
    clock_hz: float
    widths: str
    wall_seconds: float = 0.0

    @property
    def energy_j(self) -> float:
        return float(self.energy["energy_j"])

    def agg(self) -> list[PhaseResult]:
        return [p for p in self.phases if p.unit == "agg_unit"]

    def breakdown_by_unit(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for p in self.phases:
            d = out.setdefault(p.unit, {"cycles": 0, "compute_cycles": 0, "memory_cycles": 0,
                                        "dram_bytes": 0, "ops": 0})
            d["cycles"] += p.cycles
            d["compute_cycles"] += p.compute_cycles
            d["memory_cycles"] += p.memory_cycles
            d["dram_bytes"] += p.dram_bytes
            d["ops"] += 1
        return out

    def op_records(self) -> list[dict]:
        """One record per op: index, op, unit, cycles, bound, dram_bytes, energy_j and the
        roofline coordinates (operational intensity, attainable throughput)."""
        out = []
        for s, p, ej in zip(self.ops, self.phases, self.op_energy_j):
            sec = p.cycles / self.clock_hz
            rec = {"index": s.index, "op": s.op, "name": s.name, "unit": p.unit, "cycles": p.cycles,
                   "bound": p.bound, "dram_bytes": p.dram_bytes, "energy_j": ej, "widths": s.widths(),
                   "compute_cycles": p.compute_cycles, "memory_cycles": p.memory_cycles, "work": p.work,
                   "intensity_ops_per_byte": p.work / p.dram_bytes if p.dram_bytes else None,
                   "throughput_ops_per_s": p.work / sec if sec else None,
                   "peak_ops_per_s": p.peak_work_per_cycle * self.clock_hz}
            for k in ("lanes", "passes", "load_imbalance", "compute_utilisation", "bandwidth_utilisation",
                      "dram_bytes_per_edge", "dram_bytes_split", "rows_split", "gemm", "array"):
                if k in p.detail:
                    rec[k] = p.detail[k]
            if "feature_buffer" in p.detail:
                fb = p.detail["feature_buffer"]
                rec["feature_buffer_hit_rate"] = fb["hit_rate"]
                rec["row_bytes"], rec["line_bytes"] = fb["row_bytes"], fb["line_bytes"]
            out.append(rec)
        return out

    def to_dict(self, phases: bool = False) -> dict:
        agg = self.agg()
        d = {"precision": self.precision, "widths": self.widths,
             "cycles": self.cycles, "seconds": self.seconds,
             "energy_j": self.energy_j, "energy_j_low": self.energy["energy_j_low"],
             "energy_j_high": self.energy["energy_j_high"], "dram_bytes": self.dram_bytes,
             "cycles_by_unit": self.breakdown_by_unit(),
             "energy_by_unit": self.energy["by_unit"], "energy_by_primitive": self.energy["by_primitive"],
             "agg_cycles": sum(p.cycles for p in agg),
             "agg_unit_ideal_cycles": sum(p.detail["unit_ideal_cycles"] for p in agg),
             "agg_dram_bytes": sum(p.dram_bytes for p in agg),
             "agg_bound": _majority_bound(agg),
             "feature_buffer_hit_rate": agg[0].detail["feature_buffer"]["hit_rate"] if agg else None,
             "lanes": agg[0].detail["lanes"] if agg else None,
             "agg_passes": agg[0].detail["passes"] if agg else None,
             "agg_dram_bytes_per_edge": agg[0].detail["dram_bytes_per_edge"] if agg else None,
             "agg_load_imbalance": agg[0].detail["load_imbalance"] if agg else None,
             "ops": self.op_records()}
        if phases:
            d["phases"] = [p.to_dict() for p in self.phases]
            d["action_counts"] = self.counts.to_list()
        return d


def _majority_bound(phases: list[PhaseResult]) -> str | None:
    if not phases:
        return None
    mem = sum(p.cycles for p in phases if p.bound == "memory")
    return "memory" if mem * 2 > sum(p.cycles for p in phases) else "compute"


def estimate(g: GraphStructure, dp: DesignPoint, precision: str | Precision,
             workload: Workload | ModelWorkload | None = None, opts: TemplateOptions | None = None,
             table: EnergyTable | None = None) -> Estimate:
    """Cycles, time, action counts and energy of ``workload`` on ``g`` at ``precision``.

    Parameters
    ----------
    g : GraphStructure
        The graph (for a :class:`ModelWorkload`, its ``graph``).
    dp : DesignPoint
        The template's design point (its ``bits`` is replaced by each op's widths).
    precision : str or Precision
        ``fp32``, ``int8``, ``int4``, ``int2`` (or ``int1``).
    workload, opts, table
        Defaults: the ``appnp`` stand-in, :class:`TemplateOptions()`, the 45 nm energy table.

    Returns
    -------
    Estimate
        ``cycles`` (int), ``seconds`` (s), ``energy`` (J, with low/high and breakdowns), one
        phase per op.
    """
    t0 = time.perf_counter()
    prec = precision if isinstance(precision, Precision) else Precision(precision)
    wl = workload or Workload()
    opts = opts or TemplateOptions()
    table = table or EnergyTable(tech_nm=opts.tech_nm)
    lanes_at(dp, prec)  # validates word_bits for this precision up front
    ops = wl.ops(g, prec, dp)
    phases = run_ops(ops, g.indptr, g.indices, dp, opts)
    counts = ActionCounts()
    op_e = []
    for p in phases:
        counts.merge(p.counts)
        op_e.append(energy(p.counts, table).mid_j)
    rep = energy(counts, table)
    cycles = sum(p.cycles for p in phases)
    dram = sum(p.dram_bytes for p in phases)
    if isinstance(wl, ModelWorkload):
        widths = "as stored" if prec.name == wl.precision else "replaced"
    else:
        widths = "stand-in"
    est = Estimate(prec.name, int(cycles), cycles / dp.clock_hz, ops, phases, counts, rep.to_dict(), op_e,
                   int(dram), float(dp.clock_hz), widths, time.perf_counter() - t0)
    log.debug("estimate %s %s %s: %d cycles in %.3f s", g.name, dp.key(), prec.name, cycles, est.wall_seconds)
    return est


def bytes_per_edge(n_features: int, bits: int, index_bits: int) -> float:
    """The physical floor of aggregation traffic: one neighbour row plus one index, bytes/edge."""
    return n_features * bits / 8 + index_bits / 8


def _limit(r: dict, f: dict, ceiling_ratio: float, dp: DesignPoint) -> dict:
    """Where the aggregation speed-up of result ``r`` vs FP32 result ``f`` stands against the
    bytes-per-edge ceiling, and the resource that sets it."""
    sp = f["agg_cycles"] / r["agg_cycles"] if r["agg_cycles"] else None
    if sp is None:
        return {}
    rel = sp / ceiling_ratio
    out = {"speedup": sp, "ceiling": ceiling_ratio, "fraction_of_ceiling": rel,
           "within_tolerance": abs(rel - 1) <= CEILING_TOLERANCE}
    agg_ops = [o for o in r["ops"] if o["op"] == "propagate"]
    main = agg_ops[0] if agg_ops else {}
    if r["agg_bound"] == "memory" and f["agg_bound"] == "memory" and out["within_tolerance"]:
        out["limit"] = "DRAM bandwidth at both precisions (the ceiling's premise)"
    elif r["agg_bound"] == "compute":
        imb = main.get("load_imbalance") or 1.0
        if imb > 1 + CEILING_TOLERANCE:
            out["limit"] = (f"aggregation compute with load imbalance {imb:.2f}x: hub rows keep one of the "
                            f"{dp.agg_units} units busy while the others wait")
        else:
            out["limit"] = (f"aggregation compute: {dp.agg_units} units x {main.get('lanes')} lanes, "
                            f"{main.get('passes')} passes per row; the DRAM is "
                            f"{100 * (main.get('bandwidth_utilisation') or 0):.0f}% busy")
    else:
        split = main.get("dram_bytes_split") or {}
        tot = sum(split.values()) or 1
        share = ", ".join(f"{k} {100 * v / tot:.0f}%" for k, v in split.items())
        hit = 100 * (r.get("feature_buffer_hit_rate") or 0)
        hit_f = 100 * (f.get("feature_buffer_hit_rate") or 0)
        if rel > 1:
            out["limit"] = (f"DRAM bandwidth, beyond the ceiling: the feature buffer serves {hit:.1f}% of the "
                            f"gathered lines vs {hit_f:.1f}% at FP32 (the ceiling reads every row from DRAM); "
                            f"traffic {share}")
        else:
            burst = ""
            if main.get("row_bytes") and main.get("line_bytes") and main["row_bytes"] < main["line_bytes"]:
                burst = (f"; a miss fetches a whole {main['line_bytes']} B burst for a {main['row_bytes']} B "
                         f"row (burst granularity)")
            out["limit"] = (f"DRAM bandwidth, short of the ceiling: traffic {share}; the CSR stream (index and "
                            f"edge-weight bits per edge) does not shrink with the feature width{burst}; the "
                            f"feature buffer serves {hit:.1f}% of the gathered lines vs {hit_f:.1f}% at FP32")
    return out


def compare(g: GraphStructure, dp: DesignPoint, precisions: tuple[str, ...] = ("fp32", "int8", "int4", "int2"),
            workload: Workload | ModelWorkload | None = None, opts: TemplateOptions | None = None,
            table: EnergyTable | None = None, phases: bool = False) -> dict:
    """Evaluate several precisions on one graph and template; add ratios and the ceiling.

    Returns a JSON-ready dict: ``results[precision]`` has ``cycles``, ``seconds``, ``energy_j``
    (geometric mean of the low/high range), ``speedup_vs_fp32`` (= cycles_fp32 / cycles),
    ``energy_ratio_vs_fp32`` (= energy_fp32 / energy, an x-fold saving: > 1 is better, with
    ``_low``/``_high`` taken table-variant by table-variant), the same against INT8, ``ops``
    (one record per op), and the ``ceiling`` (bytes-per-edge ratio of the first aggregation)
    with ``agg_vs_ceiling`` naming the resource that sets the aggregation speed-up.  Top
    level: ``model`` (path, checksum; None for a stand-in) and ``graph_hash``.
    """
    wl = workload or Workload()
    opts = opts or TemplateOptions()
    precisions = tuple(precisions)
    if isinstance(wl, ModelWorkload) and wl.precision not in precisions:
        precisions = precisions + (wl.precision,)
    for p in precisions:
        if p not in PRECISIONS:
            raise QuantError(f"precision must be one of {sorted(PRECISIONS)}, not {p!r}")
    ests = {p: estimate(g, dp, p, wl, opts, table) for p in precisions}
    first = next((s for s in next(iter(ests.values())).ops if s.op == "propagate"), None)
    f_agg = first.cols if first is not None else 0
    res: dict[str, dict] = {p: e.to_dict(phases) for p, e in ests.items()}
    for p, d in res.items():
        e = ests[p]
        agg_bits = next((s.in_bits[0] for s in e.ops if s.op == "propagate"), PRECISIONS[p])
        bpe = bytes_per_edge(f_agg, agg_bits, dp.index_bits)
        d["ceiling"] = {"bytes_per_edge": bpe, "features": f_agg, "bits": agg_bits}
        for ref in ("fp32", "int8"):
            if ref not in ests:
                continue
            r = ests[ref]
            d[f"speedup_vs_{ref}"] = r.cycles / e.cycles
            d[f"energy_ratio_vs_{ref}"] = r.energy_j / e.energy_j
            d[f"energy_ratio_vs_{ref}_low"] = r.energy["energy_j_low"] / e.energy["energy_j_low"]
            d[f"energy_ratio_vs_{ref}_high"] = r.energy["energy_j_high"] / e.energy["energy_j_high"]
            d[f"agg_speedup_vs_{ref}"] = (res[ref]["agg_cycles"] / d["agg_cycles"]) if d["agg_cycles"] else None
            ref_bits = next((s.in_bits[0] for s in r.ops if s.op == "propagate"), PRECISIONS[ref])
            d["ceiling"][f"vs_{ref}"] = bytes_per_edge(f_agg, ref_bits, dp.index_bits) / bpe
        if "fp32" in res and p != "fp32" and f_agg:
            d["agg_vs_ceiling"] = _limit(d, res["fp32"], d["ceiling"]["vs_fp32"], dp)
    cross = []
    for p, e in ests.items():
        seen = set()
        for ph in e.phases:
            if ph.unit == "dense_unit" and ph.name not in seen:
                seen.add(ph.name)
                m, k, n = ph.detail["gemm"]
                rows, cols = ph.detail["array"]
                ref = scalesim_ws_cycles(m, k, n, rows, cols)
                cross.append({"precision": p, "phase": ph.name, "gemm": [m, k, n], "array": [rows, cols],
                              "model_cycles": ph.compute_cycles, "scalesim_closed_form_cycles": ref,
                              "difference": (ph.compute_cycles - ref) / ref})
    is_model = isinstance(wl, ModelWorkload)
    return {"graph": g.summary(), "design": dp.to_dict(), "design_key": dp.key(), "dense_crosscheck": cross,
            "workload": wl.to_dict(), "stand_in": not is_model,
            "model": wl.model_record() if is_model else None,
            "graph_hash": wl.model.graph["hash"] if is_model else None,
            "options": opts.to_dict(), "energy_table": {"tech_nm": opts.tech_nm, "leakage": "not modelled"},
            "aggregation_features": f_agg, "results": res}
