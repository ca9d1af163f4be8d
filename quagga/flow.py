"""The end-to-end flow behind ``quagga run``: each stage is one ``quagga`` subcommand, run
in-process with its outputs under one run directory (layout in :mod:`quagga.rundir`).

A stage that fails is recorded with its error; stages that need its outputs are skipped,
and every stage before it keeps its outputs.  ``run.json`` is rewritten after every stage,
so an interrupted run still says how far it got.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from quagga.rundir import read_json
from quant.errors import QuantError
from quant.fileio import write_json_atomic
from quant.fileio import atomic_path

log = logging.getLogger(__name__)

#: (tag, --bits) of the trained precisions.
PRECISIONS = (("fp32", "32"), ("int8", "8"), ("int4", "4"), ("int2", "2"))


@dataclass
class FlowOptions:
    """Knobs of ``quagga run`` (defaults: the built-in synthetic graph, a few minutes on 2 cores)."""

    out: Path
    dataset: str | None = None
    data_root: str | None = None
    model: str = "smp"
    layers: int = 10
    epochs: int = 100
    seeds: str = "0"
    precisions: tuple[str, ...] = ("fp32", "int8", "int4", "int2")
    rtl_precisions: tuple[str, ...] = ("int4", "int2")
    rtl_rows: int = 64
    rtl_simulator: str = "icarus"
    bench_dataset: str = "synthetic"
    bench_repeats: int = 3
    bench_steps: int = 2
    skip: tuple[str, ...] = ()
    extra_train_args: tuple[str, ...] = ()
    resume: bool = False
    verbose: int = 0

    def key_options(self) -> dict:
        """The options that determine the outputs (a resumed run must be given the same)."""
        return {"dataset": self.dataset, "model": self.model, "layers": self.layers, "epochs": self.epochs,
                "seeds": self.seeds, "precisions": list(self.precisions),
                "rtl_precisions": list(self.rtl_precisions), "rtl_rows": self.rtl_rows,
                "rtl_simulator": self.rtl_simulator, "bench_dataset": self.bench_dataset,
                "bench_repeats": self.bench_repeats, "bench_steps": self.bench_steps,
                "extra_train_args": list(self.extra_train_args)}


@dataclass
class StageResult:
    status: str  # ok | failed | skipped
    seconds: float = 0.0
    error: str | None = None
    outputs: list[str] = field(default_factory=list)


def machine_description() -> str:
    from quagga.bench.machine import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} logical cores, Python {platform.python_version()}, {platform.system()}"


def _call(argv: list[str]) -> tuple[int, str]:
    """Run ``quagga <argv>`` in-process, its console output captured (the flow prints one line
    per stage); return (exit code, captured stderr tail)."""
    from quagga.cli import EXIT_INTERRUPTED, main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse errors
            rc = int(exc.code) if isinstance(exc.code, int) else 2
    if rc == EXIT_INTERRUPTED:  # Ctrl-C inside a stage stops the whole flow
        raise KeyboardInterrupt
    tail = err.getvalue().strip().splitlines()[-3:]
    return rc, " ".join(tail)


class Flow:
    """Runs the stages in order, recording each in ``run.json``."""

    STAGES = ("data", "train", "simulate", "rtl", "depth", "estimate", "sweep", "bench", "report")

    def __init__(self, opts: FlowOptions, progress: Callable[[str, str], None] | None = None) -> None:
        self.o = opts
        self.run_dir = Path(opts.out)
        self.progress = progress or (lambda stage, msg: None)
        self.results: dict[str, StageResult] = {}
        self.graph_npz = self.run_dir / "data" / "graph.npz"
        self.finished: dict[str, StageResult] = {}
        self._ran = False  # has a stage run (not been kept) in this invocation
        self.graph = None  # a GraphData the caller already loaded (and so validated)

    # ------------------------------------------------------------------ bookkeeping
    def _record(self) -> None:
        write_json_atomic(self.run_dir / "run.json", {
            "dataset": self.o.dataset or "synthetic", "model": self.o.model, "layers": self.o.layers,
            "epochs": self.o.epochs, "seeds": self.o.seeds, "machine": machine_description(),
            "options": self.o.key_options(),
            "stages": {k: vars(v) for k, v in self.results.items()}})

    def finished_stages(self) -> dict[str, StageResult]:
        """Stages a previous run in this directory finished (status ok, every output present).

        Raises
        ------
        ResumeError
            When the previous run was made with other options (its outputs would not match).
        """
        prev = read_json(self.run_dir / "run.json") or {}
        if prev.get("options", self.o.key_options()) != self.o.key_options():
            old, new = prev["options"], self.o.key_options()
            diff = [k for k in new if old.get(k) != new[k]]
            raise ResumeError(f"--resume: {str(self.run_dir)!r} was run with {diff[0]}={old.get(diff[0])!r}, "
                              f"not {new[diff[0]]!r}; use another --out or the same options")
        done = {}
        for name, rec in (prev.get("stages") or {}).items():
            if rec.get("status") == "ok" and all(Path(p).exists() for p in rec.get("outputs") or []):
                done[name] = StageResult("ok", rec.get("seconds", 0.0), None, list(rec.get("outputs") or []))
        return done

    def _stage(self, name: str, fn: Callable[[], list[str]], needs: tuple[str, ...] = ()) -> None:
        # a finished stage is kept only while every stage before it was kept too: a stage that
        # runs again may change what the later ones read
        if name in self.finished and name not in self.o.skip and not self._ran:
            self.results[name] = self.finished[name]
            self.progress(name, "ok")
            self._record()
            return
        if name in self.o.skip:
            self.results[name] = StageResult("skipped", error="skipped by --skip")
        elif any(self.results.get(n) is None or self.results[n].status != "ok" for n in needs):
            missing = [n for n in needs if self.results.get(n) is None or self.results[n].status != "ok"]
            self.results[name] = StageResult("skipped", error=f"needs {', '.join(missing)}")
        else:
            self._ran = True
            self.progress(name, "running")
            t0 = time.perf_counter()
            try:
                outputs = fn()
                self.results[name] = StageResult("ok", time.perf_counter() - t0, None, outputs)
            except StageError as exc:
                self.results[name] = StageResult("failed", time.perf_counter() - t0, str(exc))
                log.error("stage %s failed: %s", name, exc)
        self.progress(name, self.results[name].status)
        self._record()

    def _quagga(self, *argv: str) -> None:
        rc, tail = _call(["-v"] * self.o.verbose + [str(a) for a in argv])
        if rc != 0:
            raise StageError(f"`quagga {' '.join(map(str, argv))}` exited {rc}: {tail}")

    # ------------------------------------------------------------------ stages
    def data(self) -> list[str]:
        """Load the dataset once and write its arrays (x, y, edge_index) for the numpy-only stages."""
        import numpy as np

        from training.data import load_dataset

        g = self.graph
        if g is None:
            try:
                g = load_dataset(self.o.dataset, self.o.data_root)
            except Exception as exc:  # noqa: BLE001 - reported as the stage's error
                raise StageError(str(exc)) from None
        with atomic_path(self.graph_npz, suffix=".npz") as tmp:
            np.savez(tmp, x=g.x.numpy(), y=g.y.numpy(), edge_index=g.edge_index.numpy())
        return [str(self.graph_npz)]

    def _dataset_args(self) -> list[str]:
        args = ["--dataset", self.o.dataset] if self.o.dataset else []
        return args + (["--data-root", self.o.data_root] if self.o.data_root else [])

    def _each(self, stage: str, tags: list[str], fn: Callable[[str], str]) -> list[str]:
        """Run ``fn(tag)`` for every tag (each returns an output path); failures are collected,
        so one precision failing does not stop the others, and the stage fails at the end."""
        outs, errors = [], []
        for tag in tags:
            self.progress(stage, tag)
            try:
                outs.append(fn(tag))
            except StageError as exc:
                errors.append(str(exc))
        if errors:
            raise StageError("; ".join(errors))
        return outs

    def train(self) -> list[str]:
        bits = dict(PRECISIONS)

        def one(tag: str) -> str:
            out = self.run_dir / "train" / tag
            self._quagga("train", *self._dataset_args(), "--model", self.o.model, "--bits", bits[tag],
                         "--layers", self.o.layers, "--epochs", self.o.epochs, "--seeds", self.o.seeds,
                         "--no-progress", *self.o.extra_train_args, "--out", out)
            return str(out)

        return self._each("train", list(self.o.precisions), one)

    def _int_tags(self) -> list[str]:
        return [t for t in self.o.precisions if t != "fp32"
                and (self.run_dir / "train" / t / "model.qim").is_file()]

    def simulate(self) -> list[str]:
        def one(tag: str) -> str:
            out = self.run_dir / "simulate" / tag
            self._quagga("simulate", self.run_dir / "train" / tag / "model.qim", "--dataset", self.graph_npz,
                         "--out", out)
            doc = read_json(out / "simulate.json") or {}
            if not doc.get("bit_exact"):
                raise StageError(f"{tag}: simulator is not bit-exact ({doc.get('mismatches')} mismatches)")
            return str(out)

        return self._each("simulate", self._int_tags(), one)

    def rtl(self) -> list[str]:
        def one(tag: str) -> str:
            js = self.run_dir / "rtl" / f"verify-{tag}.json"
            self._quagga("rtl", "verify", "--simulator", self.o.rtl_simulator,
                         "--model", self.run_dir / "train" / tag / "model.qim",
                         "--dataset", self.graph_npz, "--max-rows", self.o.rtl_rows,
                         "--build-dir", self.run_dir / "rtl" / f"build-{tag}", "--json", js)
            doc = read_json(js) or {}
            if doc.get("mismatches") or doc.get("failed_cases"):
                raise StageError(f"{tag}: RTL mismatches {doc.get('mismatches')}")
            return str(js)

        return self._each("rtl", [t for t in self.o.rtl_precisions if t in self._int_tags()], one)

    def depth(self) -> list[str]:
        """Accuracy against depth on the run's graph: SMP at K = 2, 8, 32 and a plain deep GCN at
        L = 2, 8, 16, all INT4 (message stage not quantized, to keep it short)."""
        points = []
        epochs = str(min(self.o.epochs, 60))

        def one(spec: str) -> str:
            model, layers = spec.split(":")
            out = self.run_dir / "depth" / f"{model}-{layers}"
            self._quagga("train", *self._dataset_args(), "--model", model, "--bits", "4", "--layers", layers,
                         "--epochs", epochs, "--seeds", self.o.seeds.split(",")[0], "--no-msg-quant",
                         "--no-progress", "--out", out)
            m = read_json(out / "metrics.json") or {}
            points.append({"label": f"{model.upper()} INT4", "model": model, "layers": int(layers),
                           "test_acc": m["test_acc"]["fake_quant"]["mean"],
                           "test_acc_integer": (m["test_acc"].get("integer") or {}).get("mean")})
            return str(out)

        outs = self._each("depth", ["smp:2", "smp:8", "smp:32", "gcn:2", "gcn:8", "gcn:16"], one)
        write_json_atomic(self.run_dir / "depth" / "depth.json",
                          {"dataset": self.o.dataset or "synthetic", "epochs": int(epochs), "points": points})
        return outs

    def sweep(self) -> list[str]:
        """A small design-space sweep (word width x DRAM bandwidth x precision) through Dask."""
        d = self.run_dir / "sweep"
        self._quagga("sweep", "--dataset", self.graph_npz, "--workload", "appnp", "--k-steps", self.o.layers,
                     "--vary", "word_bits=32,64,128", "--vary", "dram_bandwidth_gbs=64,256",
                     "--csv", d / "sweep.csv", "--plot", d / "pareto.png", "--cache-dir", d / "cache")
        return [str(d / "sweep.csv")]

    def estimate(self) -> list[str]:
        """``quagga estimate RUN/train/<tag>/model.qim`` for every trained integer precision: the
        exported model lowered op by op on its own graph, at FP32 / INT8 / INT4 / INT2."""
        def one(tag: str) -> str:
            d = self.run_dir / "estimate" / tag
            self._quagga("estimate", self.run_dir / "train" / tag / "model.qim", "--dataset", self.graph_npz,
                         "--json", d / "estimate.json", "--markdown", d / "estimate.md",
                         "--plot", d / "estimate.png", "--roofline", d / "roofline.png")
            return str(d / "estimate.json")

        return self._each("estimate", self._int_tags(), one)

    def bench(self) -> list[str]:
        js = self.run_dir / "bench" / "bench.json"
        args = ["bench", "--json", js, "--repeats", self.o.bench_repeats, "--steps", self.o.bench_steps]
        if self.o.bench_dataset == "quick":
            args.append("--quick")
        else:
            args += ["--dataset", self.o.bench_dataset]
        self._quagga(*args)
        outs = [str(js)]
        # the trained INT2 / INT4 models end to end on the run's graph (quagga bench MODEL)
        for tag in [t for t in ("int2", "int4") if t in self._int_tags()]:
            mj = self.run_dir / "bench" / f"model-{tag}.json"
            self._quagga("bench", self.run_dir / "train" / tag / "model.qim", "--dataset",
                         self.graph_npz, "--workload", "smp", "--repeats", self.o.bench_repeats,
                         "--json", mj)
            outs.append(str(mj))
        return outs

    def report(self) -> list[str]:
        from quagga.report import render

        return [str(render(self.run_dir))]

    def run(self) -> dict[str, StageResult]:
        if self.o.resume:
            self.finished = self.finished_stages()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._stage("data", self.data)
        self._stage("train", self.train, needs=("data",))
        self._stage("simulate", self.simulate, needs=("train",))
        self._stage("rtl", self.rtl, needs=("train",))
        self._stage("depth", self.depth, needs=("data",))
        self._stage("estimate", self.estimate, needs=("train",))
        self._stage("sweep", self.sweep, needs=("data",))
        self._stage("bench", self.bench)
        self._stage("report", self.report)
        return self.results


class StageError(RuntimeError):
    """A stage failed; the message says which command and why."""


class ResumeError(QuantError):
    """``--resume`` on a run directory made with other options."""
