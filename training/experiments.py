"""The acceptance experiments of the trainer, as one command each; results in ``reports/training/``.

Usage (long: run with ``nice`` in the background)::

    python -m training.experiments table --dataset Cora [--paper-code] [--seeds 0,1,2,3,4]
    python -m training.experiments depth --dataset Cora
    python -m training.experiments scale --dataset Tolokers
    python -m training.experiments scale --dataset synthetic:powerlaw:20000
    python -m training.experiments render           # tables / plots from the saved runs

Every configuration writes ``reports/training/runs/<name>/metrics.json`` (the same file
``quagga train`` writes) and is skipped when that file already exists, so an interrupted
sweep resumes.  ``render`` turns the saved runs into markdown + JSON tables and the depth plot.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quant import paper
from training import allocator

REPORTS = Path(__file__).resolve().parent.parent / "reports" / "training"
RUNS = REPORTS / "runs"

#: (label, bits, bt) rows of the accuracy table
TABLE_ROWS = [("FP32", "32", "none"), ("INT8", "8", "none"), ("INT4", "4", "none"),
              ("INT2", "2", "none"), ("INT2-BT", "2", "bt"), ("INT2-BT*", "2", "sbt")]
#: paper-notes section 4 pass bands (test accuracy, %)
TARGETS = {"FP32": 81.3, "INT8": 80.6, "INT4": 79.5, "INT2": 70.3, "INT2-BT": 72.6, "INT2-BT*": 74.8}
#: the project's accuracy goals for integer inference (test %, 5 seeds): the paper's numbers
#: or better where the paper has them (docs/training.md)
GOALS = {("cora", "INT8"): 81.5, ("cora", "INT4"): 81.0, ("cora", "INT2"): 75.0, ("cora", "INT2-BT*"): 77.0,
         ("citeseer", "INT4"): 67.5, ("citeseer", "INT2-BT*"): 62.0}
#: the authors' notebook (Cora, one random split, one run, SMP)
NOTEBOOK = paper.CORA_TEST_ACCURACY
DEPTHS = (2, 4, 8, 10, 16, 32, 64)
#: alternating runs of each model in the scale measurement (each keeps its fastest epoch)
SCALE_REPEATS = 3
#: epochs of each scale run (the first, with the quantizers' alpha grid search, is not counted)
SCALE_EPOCHS = 5

log = logging.getLogger(__name__)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def train_cli(name: str, argv: list[str]) -> dict:
    """Run ``quagga train ... --out RUNS/name`` in a subprocess unless its metrics exist."""
    out = RUNS / name
    mfile = out / "metrics.json"
    if not mfile.exists():
        cmd = [sys.executable, "-m", "quagga.cli", "train", *argv, "--out", str(out), "--no-progress",
               "--threads", "1"]
        log.warning("running %s", " ".join(cmd))
        subprocess.run(cmd, check=True)
    return json.loads(mfile.read_text())


#: the method chosen on Cora validation accuracy (docs/training.md, "Accuracy with the
#: integer-exact forward"): an FP32 teacher, distillation W = 1, T = 1, and a warm start
TEACHER_ARGS = ["--teacher", "fp32", "--distill", "1", "--init-from-teacher"]
#: run-name suffix of the runs trained with :data:`TEACHER_ARGS`
TEACHER_SUFFIX = "-kd-init"


def table(dataset: str, seeds: str, paper_code: bool, data_root: str | None, epochs: int,
          teacher: bool = False) -> None:
    """Train every row of the accuracy table (skipping finished runs), then :func:`render`.

    With ``teacher`` the quantized rows use :data:`TEACHER_ARGS` and are saved as
    ``<dataset>-<row>-kd-init``; the FP32 row never has a teacher."""
    for label, bits, bt in TABLE_ROWS:
        kd = teacher and label != "FP32"
        name = (f"{dataset.lower()}-{label.lower().replace('*', 'star')}" + ("-paper" if paper_code else "")
                + (TEACHER_SUFFIX if kd else ""))
        argv = ["--dataset", dataset, "--bits", bits, "--bt", bt, "--seeds", seeds,
                "--epochs", str(epochs)] + (["--paper-code"] if paper_code else []) + (TEACHER_ARGS if kd else [])
        if data_root:
            argv += ["--data-root", data_root]
        train_cli(name, argv)
    render()


def depth(dataset: str, seeds: str, data_root: str | None, epochs: int) -> None:
    """SMP INT4 at K = 2..64 and the deep GCN at L = 2..32, every stage quantized as in the
    accuracy tables (per-edge message quantization through ``training/fused_message.py``)."""
    extra = ["--data-root", data_root] if data_root else []
    for k in DEPTHS:
        train_cli(f"depth-{dataset.lower()}-smp-k{k}", ["--dataset", dataset, "--bits", "4", "--model", "smp",
                                                         "--layers", str(k), "--seeds", seeds,
                                                         "--epochs", str(epochs)] + extra)
    for k in (2, 4, 8, 16, 32):
        train_cli(f"depth-{dataset.lower()}-gcn-l{k}", ["--dataset", dataset, "--bits", "4", "--model", "gcn",
                                                         "--layers", str(k), "--seeds", seeds,
                                                         "--epochs", str(epochs)] + extra)
    render()


#: the models of the scale measurement: kind -> (label, bits, bt); ``None`` bits = FP32
SCALE_KINDS = {
    "smp-fp32": ("SMP FP32 (our trainer; the reference)", None, None),
    "smp-fp32-spmm": ("SMP FP32, each propagation one CSR SpMM (no message stage)", None, None),
    "smp-int4": ("SMP INT4, integer-exact QAT", 4, None),
    "smp-int2": ("SMP INT2, integer-exact QAT", 2, None),
    "smp-int2-btstar": ("SMP INT2-BT*, integer-exact QAT", 2, "BT*"),
    "pyg-appnp-fp32": ("PyG APPNP FP32 (MLP + `APPNP`, K=10)", None, None),
}
#: the reference of the ratios
SCALE_BASE = "smp-fp32"
#: the fastest FP32 form of the same model: the second reference of the time ratios
SCALE_FASTEST_FP32 = "smp-fp32-spmm"


def scale(dataset: str, data_root: str | None, epochs: int, kinds: tuple[str, ...] | None = None,
          repeats: int = SCALE_REPEATS) -> None:
    """Training cost of QAT against FP32 on one graph: seconds per epoch and peak memory.

    Each measurement runs in its own subprocess (``python -m training.experiments
    _scale_one``) so that peak RSS (``ru_maxrss``) belongs to one model only.  The models
    run in turn, ``repeats`` times over, and each keeps its fastest epoch after
    the first (in wall time and in process CPU time): on a shared machine the minimum is the
    least disturbed measurement, and alternating spreads any background load over all of
    them.  Results: ``reports/training/scale-<dataset>.json``, the ratios to
    :data:`SCALE_BASE`.
    """
    kinds = tuple(kinds or SCALE_KINDS)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, not {repeats!r}")
    rows: dict = {}
    for rep in range(repeats):
        for kind in kinds:
            cmd = [sys.executable, "-m", "training.experiments", "_scale_one", kind, "--dataset", dataset,
                   "--epochs", str(epochs)] + (["--data-root", data_root] if data_root else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                                 env=allocator.child_env()).stdout
            r = json.loads(out.strip().splitlines()[-1])
            if kind in rows:
                old = rows[kind]
                for key in ("sec_per_epoch", "cpu_sec_per_epoch", "first_epoch_sec"):
                    r[key] = min(r[key], old[key])
                r["peak_rss_mib"] = max(r["peak_rss_mib"], old["peak_rss_mib"])
                r["load_avg_1min"] = old["load_avg_1min"] + [r["load_avg_1min"]]
            else:
                r["load_avg_1min"] = [r["load_avg_1min"]]
            r["repeats"] = rep + 1
            rows[kind] = r
            log.warning("scale %s %s run %d: %.3f s/epoch (CPU %.3f), %.0f MiB", dataset, kind, rep + 1,
                        r["sec_per_epoch"], r["cpu_sec_per_epoch"], r["peak_rss_mib"])
    base = rows.get(SCALE_BASE)
    if base is not None:
        for r in rows.values():
            r["ratio_time"] = r["sec_per_epoch"] / base["sec_per_epoch"]
            r["ratio_cpu_time"] = r["cpu_sec_per_epoch"] / base["cpu_sec_per_epoch"]
            r["ratio_memory"] = r["peak_rss_mib"] / base["peak_rss_mib"]
    fast = rows.get(SCALE_FASTEST_FP32)
    if fast is not None:
        for r in rows.values():
            r["ratio_cpu_time_vs_spmm"] = r["cpu_sec_per_epoch"] / fast["cpu_sec_per_epoch"]
    rows["_meta"] = {"base": SCALE_BASE, "repeats": repeats, "epochs": epochs,
                     "cpu_count": os.cpu_count(), "machine": platform.machine(),
                     "processor": _cpu_model(), "torch_threads": 1}
    name = dataset.lower().replace(":", "-").replace("=", "").replace(",", "-")
    _write(REPORTS / f"scale-{name}.json", json.dumps(rows, indent=2, sort_keys=True) + "\n")
    render()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _scale_one(kind: str, dataset: str, data_root: str | None, epochs: int) -> None:
    """One measurement process: train ``kind`` for ``epochs`` epochs, print one JSON line.

    The SMP kinds train with :func:`training.trainer.fit`, the trainer's own loop (training
    step, evaluation forward, best-state bookkeeping: one epoch as ``quagga train`` runs
    it), K = 10, hidden 64, the paper's per-configuration defaults, the corrected mode
    (integer-exact forward for the quantized ones), one thread.  PyG's APPNP has its own
    training step plus an evaluation forward.
    """
    import torch
    import torch.nn.functional as F

    from quant.model_ir import preprocess_features
    from training.config import ModelConfig, TrainConfig, paper_defaults
    from training.data import load_dataset
    from training.graph import build_prop_graph
    from training.splits import apply_split
    from training.trainer import fit

    if kind not in SCALE_KINDS:
        raise ValueError(f"kind must be one of {sorted(SCALE_KINDS)}, not {kind!r}")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    d = load_dataset(dataset, data_root)
    d = apply_split(d, "public" if bool(d.train_mask.any()) else "random", 0)
    x = torch.from_numpy(preprocess_features(d.x.numpy(), d.normalize))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times, cpu = [], []
    mark = [time.perf_counter(), time.process_time()]

    def tick(*_):
        t, c = time.perf_counter(), time.process_time()
        times.append(t - mark[0])
        cpu.append(c - mark[1])
        mark[:] = [t, c]

    _, bits, bt = SCALE_KINDS[kind]
    if kind.startswith("smp-"):
        g = build_prop_graph(d.edge_index, d.num_nodes)
        pd = paper_defaults("smp", bits, bt)
        mcfg = ModelConfig(model="smp", bits=bits, bt=bt, dropout=pd["dropout"], alpha_c=pd["alpha_c"],
                           alpha_reinit=None if bits is None else pd["alpha_reinit"],
                           msg_quant=kind != SCALE_FASTEST_FP32)
        tcfg = TrainConfig(epochs=epochs, lr=pd["lr"], weight_decay=pd["weight_decay"],
                           lr_alpha=pd["lr_alpha"], weight_decay_alpha=pd["weight_decay_alpha"])
        masks = (d.train_mask, d.val_mask, d.test_mask)
        mark[:] = [time.perf_counter(), time.process_time()]
        fit(mcfg, tcfg, x, d.y, g, masks, 0, on_epoch=tick)
        exact = mcfg.exact_forward
    else:
        from torch_geometric.nn import APPNP, MLP

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.mlp = MLP([d.num_features, 64, d.num_classes], dropout=0.5, norm=None)
                self.prop = APPNP(K=10, alpha=0.1)

            def forward(self):
                return self.prop(self.mlp(x), d.edge_index)

        model = Net()
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        mark[:] = [time.perf_counter(), time.process_time()]
        for _ in range(epochs):
            model.train()
            opt.zero_grad()
            loss = F.cross_entropy(model()[d.train_mask], d.y[d.train_mask])
            loss.backward()
            opt.step()
            model.eval()
            with torch.no_grad():
                model().argmax(dim=1)
            tick()
        exact = False
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"kind": kind, "dataset": d.name, "num_nodes": d.num_nodes, "num_edges": d.num_edges,
                      "num_classes": d.num_classes, "epochs": epochs, "exact_forward": exact,
                      "sec_per_epoch": min(times[1:]) if len(times) > 1 else times[0],
                      "first_epoch_sec": times[0],
                      "cpu_sec_per_epoch": min(cpu[1:]) if len(cpu) > 1 else cpu[0],
                      "peak_rss_mib": peak, "rss_before_model_mib": base_rss,
                      "load_avg_1min": os.getloadavg()[0], "allocator": allocator.active()}))


# ---------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------

def _pct(s: dict | None) -> str:
    return "n/a" if not s else f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"


def _forward(m: dict) -> str:
    """The forward a run was trained with: ``float`` (FP32), ``exact`` or ``fake-quant`` (with
    ``, exact evaluation`` where its evaluations ran the integer-exact forward).

    Runs that predate the ``exact_forward`` field resolve it from their model configuration
    (a configuration without the ``exact`` field predates the integer-exact forward)."""
    if m.get("bits") == 32:
        return "float"
    exact = m.get("exact_forward")
    if exact is None and "exact" in m.get("model_config", {}):
        from training.config import ModelConfig

        exact = ModelConfig(**m["model_config"]).exact_forward
    if exact:
        return "exact"
    return "fake-quant, exact evaluation" if m.get("exact_eval") else "fake-quant"


def _per_seed_stats(values: list[float]) -> dict:
    """``{"mean", "std", "per_seed"}`` as ``quagga train`` writes them (population std)."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(v.mean()), 6), "per_seed": [float(x) for x in v], "std": round(float(v.std()), 6)}


def merged_run(runs: dict[str, dict], name: str) -> dict | None:
    """The run ``name``, or the union of its seed-split parts ``name-seeds*`` (one command per
    group of seeds), as one metrics dict with per-seed lists concatenated in seed order.

    Raises
    ------
    ValueError
        If two parts hold the same seed or were trained with different configurations.
    """
    if name in runs:
        return runs[name]
    parts = [runs[n] for n in sorted(runs) if n.startswith(f"{name}-seeds")]
    if not parts:
        return None
    seeds = [s for m in parts for s in m["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"run {name!r}: seed-split parts repeat a seed: {seeds}")
    configs = {json.dumps(m["model_config"], sort_keys=True) for m in parts}
    if len(configs) != 1:
        raise ValueError(f"run {name!r}: seed-split parts have different model_config")
    order = sorted(range(len(seeds)), key=seeds.__getitem__)
    m = dict(parts[0], seeds=sorted(seeds))
    for split in ("test_acc", "val_acc"):
        m[split] = {}
        for kind in ("fake_quant", "integer"):
            if parts[0][split].get(kind) is None:
                m[split][kind] = None
                continue
            vals = [v for p in parts for v in p[split][kind]["per_seed"]]
            m[split][kind] = _per_seed_stats([vals[i] for i in order])
    fq, it = m["test_acc"]["fake_quant"], m["test_acc"]["integer"]
    m["gap_test_points"] = None if it is None else round(100 * (fq["mean"] - it["mean"]), 2)
    return m


def _method(m: dict) -> str:
    """How a run was trained: forward (``float``/``exact``/``fake-quant``) and ``+ teacher``."""
    teacher = (m.get("train_config") or {}).get("teacher") not in (None, "none")
    return _forward(m) + (" + FP32 teacher" if teacher else "")


def render() -> None:
    """Markdown + JSON tables of every saved run, and the depth plot.

    A corrected-mode row shows the run trained with the chosen method (``-kd-init``, an FP32
    teacher) where it exists, else the plain run; seed-split parts are merged."""
    runs = {p.parent.name: json.loads(p.read_text()) for p in sorted(RUNS.glob("*/metrics.json"))}
    tables = {}
    for key, title in (("cora", "Cora"), ("citeseer", "CiteSeer"), ("cora-paper", "Cora, --paper-code")):
        rows = []
        for label, _, _ in TABLE_ROWS:
            base = label.lower().replace("*", "star")
            name = f"{key.split('-')[0]}-{base}" + ("-paper" if key.endswith("paper") else "")
            m = None
            if not key.endswith("paper") and label != "FP32":
                m = merged_run(runs, name + TEACHER_SUFFIX)
                name = name + TEACHER_SUFFIX if m is not None else name
            m = m if m is not None else merged_run(runs, name)
            if m is None:
                continue
            fq, it = m["test_acc"]["fake_quant"], m["test_acc"]["integer"]
            rows.append({"config": label, "run": name, "seeds": m["seeds"],
                         "fake_quant": fq, "integer": it, "gap_points": m["gap_test_points"],
                         "val_fake_quant": m["val_acc"]["fake_quant"],
                         "target": TARGETS[label] if key == "cora" else None,
                         "goal": GOALS.get((key, label)),
                         "notebook": NOTEBOOK[label] if key.startswith("cora") else None,
                         "alpha_reinit": m["model_config"].get("alpha_reinit"),
                         "forward": _forward(m), "method": _method(m)})
        if rows:
            tables[key] = {"title": title, "rows": rows}
    lines = ["# Trainer accuracy tables", "",
             "Generated by `python -m training.experiments render` from `reports/training/runs/*/metrics.json`.",
             "Test accuracy (%) at the best-validation epoch, mean ± std over the seeds (per seed in the",
             "last column: integer, FP32 float); random split (20 per class / 500 / 1000) drawn per seed; K = 10,",
             "hidden 64, 200 epochs, the paper's per-configuration hyper-parameters.  *target*: the pass",
             "band of paper-notes section 4; *notebook*: the authors' own run (Cora, one split, one seed).",
             "*goal*: the project's integer-accuracy goal (the paper's number or better).",
             "*reinit*: epochs between alpha grid searches (`-`: only at the first call).",
             "*method*: `exact` for runs trained with the integer-exact forward (fake-quant and integer",
             "accuracy equal by construction), `fake-quant, exact evaluation` for runs trained with the",
             "published float fake-quant forward and evaluated (best epoch included) with the integer-exact",
             "one (the published-code mode; equal by construction too), `fake-quant` for runs trained and",
             "evaluated with the float forward; `+ FP32 teacher`: distillation from an FP32 twin and a",
             "warm start from its weights, the method chosen on Cora validation accuracy (docs/training.md).",
             "Rows with a teacher come from the `*-kd-init` runs.", ""]
    notes = {"cora": "Corrected mode (docs/training.md).",
             "citeseer": "Corrected mode, Cora's hyper-parameters (the published README has no CiteSeer "
                         "commands); no paper numbers were retrieved for CiteSeer.",
             "cora-paper": "`--paper-code`: the published code's quantizer backward, shared alphas, SMP "
                           "update and dropout order (docs/training.md); the notebook column is what it "
                           "reproduces."}
    for key, t in tables.items():
        lines += [f"## {t['title']}", "", notes[key], "",
                  "| config | method | fake-quant | integer | gap (points) | target | goal | notebook | reinit | seeds | per seed (integer) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in t["rows"]:
            tgt = f"≥ {r['target']}" if r["target"] else ""
            goal = ""
            if r["goal"]:
                ok = r["integer"] is not None and 100 * r["integer"]["mean"] >= r["goal"] - 1e-9
                goal = f"≥ {r['goal']} ({'met' if ok else 'not met'})"
            nb = f"{r['notebook']}" if r["notebook"] else ""
            gap = "" if r["gap_points"] is None else f"{r['gap_points']:.2f}"
            acc = r["integer"] or r["fake_quant"]
            per = " ".join(f"{100 * v:.1f}" for v in acc["per_seed"]) if acc else ""
            ri = "" if r["config"] == "FP32" else (r["alpha_reinit"] or "-")
            lines.append(f"| {r['config']} | {r['method']} | {_pct(r['fake_quant'])} | {_pct(r['integer'])} | {gap} | "
                         f"{tgt} | {goal} | {nb} | {ri} | {len(r['seeds'])} | {per} |")
        lines.append("")
    depth_rows = sorted((m["model"], m["layers"], m["test_acc"]["fake_quant"], m["test_acc"]["integer"],
                         _method(m))
                        for n, m in runs.items() if n.startswith("depth-") and m.get("bits") == 4)
    if depth_rows:
        reinit = sorted({str(m["model_config"].get("alpha_reinit")) for n, m in runs.items() if n.startswith("depth-")})
        k_acc = {k: (fq["mean"], meth) for model, k, fq, _, meth in depth_rows if model == "smp"}
        verdict = ""
        if 10 in k_acc and 64 in k_acc:
            d = 100 * (k_acc[10][0] - k_acc[64][0])
            how = (k_acc[10][1] if k_acc[10][1] == k_acc[64][1]
                   else f"K=10 {k_acc[10][1]}, K=64 {k_acc[64][1]}")
            verdict = f"SMP K=64 is {d:.2f} points below K=10 (fake-quant accuracy; {how}; the bound is 3). "
        lines += ["## Depth (INT4, Cora; every stage quantized, per-edge message quantization)", "",
                  verdict + "The plain GCN collapses past 4 layers.", "",
                  f"Alpha grid search every {'/'.join(reinit)} epochs (None: only at the first call).", "",
                  "| model | depth | method | fake-quant | integer |", "|---|---|---|---|---|"]
        for model, k, fq, it, method in depth_rows:
            lines.append(f"| {model} | {k} | {method} | {_pct(fq)} | {_pct(it)} |")
        lines.append("")
        _plot_depth(depth_rows)
        lines += ["![accuracy against depth](depth.png)", ""]
    lines += _low_bit_depth(runs)
    for p in sorted(REPORTS.glob("scale-*.json")):
        lines += _render_scale(json.loads(p.read_text()))
    _write(REPORTS / "tables.md", "\n".join(lines))
    _write(REPORTS / "tables.json", json.dumps({"tables": tables, "depth": [
        {"model": m, "layers": k, "fake_quant": fq, "integer": it, "method": meth}
        for m, k, fq, it, meth in depth_rows]},
        indent=2, sort_keys=True) + "\n")


def _render_scale(s: dict) -> list[str]:
    """The markdown section of one ``scale-*.json``."""
    meta = s.get("_meta", {})
    rows = {k: v for k, v in s.items() if not k.startswith("_")}
    if SCALE_BASE not in rows:          # a measurement made before the FP32 SMP reference
        return []
    b = rows[SCALE_BASE]
    loads = [v for r in rows.values() for v in r.get("load_avg_1min", [])]
    lines = [f"## Scale: {b['dataset']} ({b['num_nodes']} nodes, {b['num_edges']} edges, "
             f"{b['num_classes']} classes), one thread", "",
             "One training epoch as the trainer runs it (training step, evaluation forward, best-state",
             f"bookkeeping): the fastest epoch after the first, over {meta.get('repeats', b.get('repeats'))} "
             "alternating runs of each model, each",
             f"run {meta.get('epochs', b['epochs'])} epochs in its own process (the machine is shared: the "
             "minimum is the least disturbed); CPU s / epoch",
             "is the process CPU time of an epoch (again the minimum), the steadier figure on a loaded machine;",
             "peak RSS of the process (`ru_maxrss`, dataset loading included).  Ratios to SMP FP32 trained by",
             "the same trainer (same model, K = 10, hidden 64).  QAT is the corrected mode with the",
             "integer-exact forward.  `python -m training.experiments scale --dataset "
             f"{b['dataset'] if b['dataset'] != 'synthetic-powerlaw' else 'synthetic:powerlaw:20000'}`.", ""]
    if loads:
        lines += [f"Machine: {meta.get('processor', '?')}, {meta.get('cpu_count', '?')} vCPUs, shared; "
                  f"1-minute load average during the runs {min(loads):.1f} to {max(loads):.1f}.", ""]
    allocs = sorted({r["allocator"] for r in rows.values() if "allocator" in r})
    if allocs:
        lines += [f"Memory allocator of every process: {', '.join(allocs)} "
                  "(`training/allocator.py`, as `quagga train` runs).", ""]
    spmm = all("ratio_cpu_time_vs_spmm" in r for r in rows.values())
    if spmm:
        lines += ["The FP32 SMP reference sums each propagation's messages in edge order "
                  "(`segment_reduce`), the order the quantized path's float sums use; the SpMM row "
                  "is the same FP32 model with each propagation one CSR sparse product, the fastest "
                  "FP32 form of it, and the last column is the ratio to that row.", ""]
    lines += ["| model | s / epoch | CPU s / epoch | first epoch (s) | peak RSS (MiB) | time ratio (wall) "
              "| time ratio (CPU) | memory ratio |" + (" time ratio (CPU) to the SpMM FP32 |" if spmm else ""),
              "|---|---|---|---|---|---|---|---|" + ("---|" if spmm else "")]
    for k, r in rows.items():
        label = SCALE_KINDS.get(k, (k,))[0]
        lines.append(f"| {label} | {r['sec_per_epoch']:.3f} | {r['cpu_sec_per_epoch']:.3f} | "
                     f"{r['first_epoch_sec']:.1f} | {r['peak_rss_mib']:.0f} | {r['ratio_time']:.2f} | "
                     f"{r['ratio_cpu_time']:.2f} | {r['ratio_memory']:.2f} |"
                     + (f" {r['ratio_cpu_time_vs_spmm']:.2f} |" if spmm else ""))
    return lines + [""]


def _low_bit_depth(runs: dict[str, dict]) -> list[str]:
    """Markdown of the INT2-BT* depth runs (``depth-<dataset>-smp-int2-btstar-*``): integer test
    accuracy per K and K=64 against K=10."""
    rows = sorted((m["layers"], m) for n, m in runs.items() if n.startswith("depth-") and m.get("bits") == 2
                  and m.get("bt") == "sbt")
    if not rows:
        return []
    by_k = {k: m["test_acc"]["integer"] for k, m in rows}
    out = ["## Depth at INT2-BT* (Cora; integer-exact forward, FP32 teacher)", ""]
    if 10 in by_k and 64 in by_k:
        d = 100 * (by_k[64]["mean"] - by_k[10]["mean"])
        out += [f"SMP K=64 is {abs(d):.2f} points {'above' if d >= 0 else 'below'} K=10 (integer, "
                f"{len(rows[0][1]['seeds'])} seeds; the goal is at most 1.5 points below).", ""]
    out += ["| model | K | method | integer | validation | per seed (integer) |", "|---|---|---|---|---|---|"]
    for k, m in rows:
        it = m["test_acc"]["integer"]
        per = " ".join(f"{100 * v:.1f}" for v in it["per_seed"])
        out.append(f"| {m['model']} | {k} | {_method(m)} | {_pct(it)} | {_pct(m['val_acc']['integer'])} | {per} |")
    return out + [""]


def _plot_depth(rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    for model, style in (("smp", "o-"), ("gcn", "s--")):
        pts = [(k, fq["mean"] * 100, fq["std"] * 100) for m, k, fq, _, _ in rows if m == model and fq]
        if pts:
            ks, mu, sd = zip(*pts)
            ax.errorbar(ks, mu, yerr=sd, fmt=style, capsize=3,
                        label="SMP (K steps)" if model == "smp" else "deep GCN (L layers)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("depth (propagation steps / layers)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Cora, INT4 fake-quant")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(REPORTS / "depth.png", metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.experiments")
    p.add_argument("what", choices=("table", "depth", "scale", "render", "_scale_one"))
    p.add_argument("kind", nargs="?")
    p.add_argument("--dataset", default="Cora")
    p.add_argument("--data-root", default=None)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--paper-code", action="store_true")
    p.add_argument("--teacher", action="store_true",
                   help="table: train the quantized rows with the FP32 teacher (runs named *-kd-init)")
    p.add_argument("--kinds", default=None, help=f"scale: comma-separated subset of {list(SCALE_KINDS)}")
    p.add_argument("--repeats", type=int, default=SCALE_REPEATS,
                   help=f"scale: alternating runs of each model (default {SCALE_REPEATS})")
    a = p.parse_args(argv)
    if a.repeats < 1:
        p.error(f"--repeats must be at least 1, not {a.repeats}")
    logging.basicConfig(level=logging.WARNING)
    if a.what == "table":
        table(a.dataset, a.seeds, a.paper_code, a.data_root, a.epochs or 200, teacher=a.teacher)
    elif a.what == "depth":
        depth(a.dataset, a.seeds, a.data_root, a.epochs or 200)
    elif a.what == "scale":
        scale(a.dataset, a.data_root, a.epochs or SCALE_EPOCHS,
              tuple(a.kinds.split(",")) if a.kinds else None, a.repeats)
    elif a.what == "_scale_one":
        _scale_one(a.kind, a.dataset, a.data_root, a.epochs or SCALE_EPOCHS)
    else:
        render()
    return 0


if __name__ == "__main__":
    sys.exit(main())
