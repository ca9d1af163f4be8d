"""The accelerator template: a model workload mapped onto the aggregation, dense and vector
units plus the memory system, evaluated at FP32 / INT8 / INT4 / INT2.

:func:`estimate` runs one (graph, design, precision) point and returns cycles, seconds, action
counts and energy; :func:`compare` runs several precisions on the same graph and template and
adds the ratios against FP32 and INT8 and the bytes-per-edge ceiling.  Phases run one after the
other (no overlap between units), each with its own compute / bandwidth bound.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from quant.errors import QuantError
from sim.accel.cycle import (PRECISIONS, PhaseResult, Precision, TemplateOptions, aggregate_phase,
                       dense_phase, lanes_at, vector_phase)
from sim.design.point import DesignPoint
from sim.accel.energy import ActionCounts, EnergyTable, energy
from sim.graphs.datasets import GraphStructure
from sim.accel.systolic_reference import scalesim_ws_cycles

log = logging.getLogger(__name__)

WORKLOADS = ("appnp", "gcn", "aggregate")


@dataclass(frozen=True)
class Workload:
    """The model run on the accelerator.

    Parameters
    ----------
    kind : {"appnp", "gcn", "aggregate"}
        ``appnp``: the seed paper's model (SMP with its constraint inactive is APPNP):
        ``lin1 (F_in -> hidden)``, ``lin2 (hidden -> C)``, then ``k_steps`` x (aggregate C
        features, vector combine with the teleport term).  ``gcn``: two GCN layers
        (``lin1``, aggregate ``hidden``, ``lin2``, aggregate ``C``).  ``aggregate``: a single
        propagation step of ``features`` (default: the dataset's input features).
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
        if self.kind not in WORKLOADS:
            raise QuantError(f"workload must be one of {WORKLOADS}, not {self.kind!r}")
        for f in ("hidden", "k_steps"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise QuantError(f"{f} must be a positive int, not {v!r}")
        if self.features is not None and (isinstance(self.features, bool) or not isinstance(self.features, int)
                                          or self.features < 1):
            raise QuantError(f"features must be a positive int or None, not {self.features!r}")

    def aggregation_width(self, g: GraphStructure) -> int:
        """Feature width of the workload's (main) aggregation, for the bytes-per-edge ceiling."""
        if self.kind == "appnp":
            return g.num_classes
        if self.kind == "gcn":
            return self.hidden
        return self.features or g.num_features

    def to_dict(self) -> dict:
        return {"kind": self.kind, "hidden": self.hidden, "k_steps": self.k_steps, "features": self.features}


@dataclass
class Estimate:
    """One (graph, design, precision) evaluation."""

    precision: str
    cycles: int
    seconds: float
    phases: list[PhaseResult]
    counts: ActionCounts
    energy: dict
    dram_bytes: int
    wall_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def energy_j(self) -> float:
        return float(self.energy["energy_j"])

    def breakdown_by_unit(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for p in self.phases:
            d = out.setdefault(p.unit, {"cycles": 0, "compute_cycles": 0, "memory_cycles": 0,
                                        "dram_bytes": 0, "phases": 0})
            d["cycles"] += p.cycles
            d["compute_cycles"] += p.compute_cycles
            d["memory_cycles"] += p.memory_cycles
            d["dram_bytes"] += p.dram_read_bytes + p.dram_write_bytes
            d["phases"] += 1
        return out

    def to_dict(self, phases: bool = True) -> dict:
        d = {"precision": self.precision, "cycles": self.cycles, "seconds": self.seconds,
             "energy_j": self.energy_j, "energy_j_low": self.energy["energy_j_low"],
             "energy_j_high": self.energy["energy_j_high"], "dram_bytes": self.dram_bytes,
             "cycles_by_unit": self.breakdown_by_unit(),
             "energy_by_unit": self.energy["by_unit"], "energy_by_primitive": self.energy["by_primitive"],
             **self.extra}
        if phases:
            d["phases"] = [p.to_dict() for p in self.phases]
            d["action_counts"] = self.counts.to_list()
        return d


def _phases(g: GraphStructure, wl: Workload, dp: DesignPoint, prec: Precision,
            opts: TemplateOptions) -> list[PhaseResult]:
    n, c = g.num_nodes, g.num_classes
    memo: dict = {}
    out: list[PhaseResult] = []

    def agg(name: str, f: int) -> PhaseResult:
        return aggregate_phase(name, g.indptr, g.indices, f, dp, prec, opts, memo)

    if wl.kind == "aggregate":
        out.append(agg("prop", wl.features or g.num_features))
        return out
    out.append(dense_phase("lin1", n, g.num_features, wl.hidden, dp, prec, opts))
    if wl.kind == "gcn":
        out.append(agg("prop1", wl.hidden))
        out.append(dense_phase("lin2", n, wl.hidden, c, dp, prec, opts))
        out.append(agg("prop2", c))
        return out
    out.append(dense_phase("lin2", n, wl.hidden, c, dp, prec, opts))
    first = agg("prop", c)
    comb = vector_phase("combine", n * c, dp, prec, opts)
    # the K steps are identical: evaluate once, repeat (phase objects are shared read-only)
    for _ in range(wl.k_steps):
        out.extend([first, comb])
    return out


def estimate(g: GraphStructure, dp: DesignPoint, precision: str | Precision,
             workload: Workload | None = None, opts: TemplateOptions | None = None,
             table: EnergyTable | None = None) -> Estimate:
    """Cycles, time, action counts and energy of ``workload`` on ``g`` at ``precision``.

    Parameters
    ----------
    g : GraphStructure
        The graph (only its structure and feature/class counts are used).
    dp : DesignPoint
        The template's design point (its ``bits`` is replaced by ``precision``).
    precision : str or Precision
        ``fp32``, ``int8``, ``int4``, ``int2`` (or ``int1``).
    workload, opts, table
        Defaults: :class:`Workload()`, :class:`TemplateOptions()`, the 45 nm energy table.

    Returns
    -------
    Estimate
        ``cycles`` (int), ``seconds`` (s), ``energy`` (J, with low/high and breakdowns).
    """
    t0 = time.perf_counter()
    prec = precision if isinstance(precision, Precision) else Precision(precision)
    wl = workload or Workload()
    opts = opts or TemplateOptions()
    table = table or EnergyTable(tech_nm=opts.tech_nm)
    lanes_at(dp, prec)  # validates word_bits for this precision up front
    phases = _phases(g, wl, dp, prec, opts)
    counts = ActionCounts()
    for p in phases:
        counts.merge(p.counts)
    rep = energy(counts, table)
    cycles = sum(p.cycles for p in phases)
    dram = sum(p.dram_read_bytes + p.dram_write_bytes for p in phases)
    agg = [p for p in phases if p.unit == "agg_unit"]
    extra = {"lanes": lanes_at(dp, prec),
             "agg_cycles": sum(p.cycles for p in agg),
             "agg_unit_ideal_cycles": sum(p.compute_cycles for p in agg),
             "feature_buffer_hit_rate": agg[0].detail["feature_buffer_hit_rate"] if agg else None,
             "agg_passes": agg[0].detail["passes"] if agg else None,
             "agg_bound_tiles": agg[0].bound_tiles if agg else None,
             "agg_dram_bytes_per_edge": agg[0].detail["dram_bytes_per_edge"] if agg else None,
             "agg_csr_restreamed": (not agg[0].detail["edge_buffer_holds_csr"]) if agg else None,
             "max_degree_exceeded": bool(g.num_edges and int(g.degrees.max()) > dp.max_degree)}
    est = Estimate(prec.name, int(cycles), cycles / dp.clock_hz, phases, counts, rep.to_dict(),
                   int(dram), time.perf_counter() - t0, extra)
    log.debug("estimate %s %s %s: %d cycles in %.3f s", g.name, dp.key(), prec.name, cycles,
              est.wall_seconds)
    return est


def bytes_per_edge(n_features: int, bits: int, index_bits: int) -> float:
    """The physical floor of aggregation traffic: one neighbour row plus one index, bytes/edge."""
    return n_features * bits / 8 + index_bits / 8


def compare(g: GraphStructure, dp: DesignPoint, precisions: tuple[str, ...] = ("fp32", "int8", "int4", "int2"),
            workload: Workload | None = None, opts: TemplateOptions | None = None,
            table: EnergyTable | None = None) -> dict:
    """Evaluate several precisions on one graph and template; add ratios and the ceiling.

    Returns a JSON-ready dict: ``results[precision]`` has ``cycles``, ``seconds``, ``energy_j``
    (geometric mean of the low/high range), ``speedup_vs_fp32`` (= cycles_fp32 / cycles),
    ``energy_ratio_vs_fp32`` (= energy_fp32 / energy, an x-fold saving: > 1 is better, with
    ``_low``/``_high`` taken table-variant by table-variant), the same against INT8, and the
    ``ceiling`` (bytes-per-edge ratio of the main aggregation).
    """
    wl = workload or Workload()
    opts = opts or TemplateOptions()
    for p in precisions:
        if p not in PRECISIONS:
            raise QuantError(f"precision must be one of {sorted(PRECISIONS)}, not {p!r}")
    ests = {p: estimate(g, dp, p, wl, opts, table) for p in precisions}
    f_agg = wl.aggregation_width(g)
    res: dict[str, dict] = {}
    for p, e in ests.items():
        d = e.to_dict()
        bpe = bytes_per_edge(f_agg, PRECISIONS[p], dp.index_bits)
        d["ceiling"] = {"bytes_per_edge": bpe}
        for ref in ("fp32", "int8"):
            if ref not in ests:
                continue
            r = ests[ref]
            d[f"speedup_vs_{ref}"] = r.cycles / e.cycles
            d[f"energy_ratio_vs_{ref}"] = r.energy_j / e.energy_j
            d[f"energy_ratio_vs_{ref}_low"] = r.energy["energy_j_low"] / e.energy["energy_j_low"]
            d[f"energy_ratio_vs_{ref}_high"] = r.energy["energy_j_high"] / e.energy["energy_j_high"]
            d[f"agg_speedup_vs_{ref}"] = r.extra["agg_cycles"] / e.extra["agg_cycles"] if e.extra["agg_cycles"] else None
            d["ceiling"][f"vs_{ref}"] = bytes_per_edge(f_agg, PRECISIONS[ref], dp.index_bits) / bpe
        res[p] = d
    cross = []
    for p, e in ests.items():
        for ph in e.phases:
            if ph.unit == "dense_unit" and ph.name not in {c["phase"] for c in cross if c["precision"] == p}:
                m, k, n = ph.detail["gemm"]
                rows, cols = ph.detail["array"]
                ref = scalesim_ws_cycles(m, k, n, rows, cols)
                cross.append({"precision": p, "phase": ph.name, "gemm": [m, k, n], "array": [rows, cols],
                              "model_cycles": ph.compute_cycles, "scalesim_closed_form_cycles": ref,
                              "difference": (ph.compute_cycles - ref) / ref})
    return {"graph": g.summary(), "design": dp.to_dict(), "design_key": dp.key(), "dense_crosscheck": cross,
            "workload": wl.to_dict(), "options": opts.to_dict(),
            "energy_table": {"tech_nm": opts.tech_nm, "leakage": "not modelled"},
            "aggregation_features": f_agg, "results": res}
