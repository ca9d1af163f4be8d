"""Design-space sweeps of the cycle and energy model: design points x precisions x datasets.

A sweep is a list of *tasks*, one per (dataset, design point); a task evaluates every requested
precision on that design and writes one cache file
``<cache_dir>/<dataset>__<design key>__<setup hash>.json`` (atomically), so an interrupted sweep
resumes where it stopped and a finished one reruns from the cache.  Tasks run through any
object with the ``dask.distributed.Client`` interface (``submit`` + ``as_completed``): a local
cluster or a remote scheduler.  The rows are assembled in task order, so the CSV does not
depend on where or in which order the tasks ran.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import itertools
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from quant.fileio import read_toml, write_text_atomic
from quant.errors import QuantError
from sim.design.point import DesignError, DesignPoint

log = logging.getLogger(__name__)

#: Columns of the sweep CSV, in order (design fields are appended after these).
RESULT_COLUMNS = ("dataset", "workload", "design_key", "precision", "cycles", "seconds", "energy_j", "energy_j_low",
                  "energy_j_high", "speedup_vs_fp32", "energy_ratio_vs_fp32", "speedup_vs_int8",
                  "energy_ratio_vs_int8", "dram_bytes", "agg_cycles", "agg_unit_ideal_cycles",
                  "feature_buffer_hit_rate", "lanes", "agg_bound")
DESIGN_COLUMNS = tuple(f.name for f in fields(DesignPoint) if f.name not in ("name", "bits"))
CACHE_FORMAT = "quagga-sweep-point/2"


@dataclass(frozen=True)
class SweepTask:
    """One (dataset, design point) evaluation at several precisions."""

    dataset: str
    design: dict
    precisions: tuple[str, ...]
    workload: dict
    options: dict
    data_root: str | None = None
    model: str | None = None
    model_sha256: str | None = None

    @property
    def design_key(self) -> str:
        return DesignPoint.from_dict(self.design).key()

    @property
    def setup_hash(self) -> str:
        blob = json.dumps({"p": self.precisions, "w": self.workload, "o": self.options,
                           "m": self.model_sha256, "format": CACHE_FORMAT}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    def cache_name(self) -> str:
        ds = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.dataset).name if self.dataset.endswith(".npz")
                    else self.dataset)
        return f"{ds}__{self.design_key}__{self.setup_hash}.json"


def expand_grid(base: DesignPoint, grid: dict[str, Sequence[Any]]) -> list[DesignPoint]:
    """Cartesian product of ``grid`` over ``base`` (later keys vary fastest).

    Raises
    ------
    DesignError
        For an unknown key, an empty value list, or a combination the design point refuses
        (the message names the combination).
    """
    known = {f.name for f in fields(DesignPoint)}
    for k, vals in grid.items():
        if k == "bits":
            raise DesignError("sweep key 'bits' is the precision axis: pass the precisions instead")
        if k not in known or k == "name":
            raise DesignError(f"sweep key {k!r} is not a design field; known: {sorted(known - {'name'})}")
        if not isinstance(vals, (list, tuple)) or not vals:
            raise DesignError(f"sweep values of {k!r} must be a non-empty list, not {vals!r}")
    keys = list(grid)
    out: list[DesignPoint] = []
    seen: set[str] = set()
    for combo in itertools.product(*(grid[k] for k in keys)):
        changes = dict(zip(keys, combo))
        try:
            dp = base.replace(**changes)
        except DesignError as exc:
            raise DesignError(f"sweep point {changes} is invalid: {exc}") from None
        if dp.key() not in seen:
            seen.add(dp.key())
            out.append(dp)
    return out


def load_grid(path: str | os.PathLike) -> tuple[dict, dict[str, list]]:
    """Read a sweep TOML: ``[base]`` design keys and ``[grid]`` lists of values per key."""
    p = Path(path)
    data = read_toml(p, "sweep file", QuantError)
    unknown = set(data) - {"base", "grid"}
    if unknown:
        raise QuantError(f"sweep file {str(p)!r}: unknown table(s) {sorted(unknown)}; use [base] and [grid]")
    return dict(data.get("base", {})), {k: list(v) if isinstance(v, list) else v
                                        for k, v in data.get("grid", {}).items()}


def make_tasks(datasets: Sequence[str], designs: Sequence[DesignPoint], precisions: Sequence[str],
               workload: dict, options: dict, data_root: str | None = None,
               model: str | None = None) -> list[SweepTask]:
    """Tasks in a fixed order: dataset-major, then design order.  With ``model`` (a ``.qim``
    path) every task estimates that model on its own graph and ``datasets`` only names it."""
    sha = hashlib.sha256(Path(model).read_bytes()).hexdigest() if model else None
    return [SweepTask(ds, dp.to_dict(), tuple(precisions), dict(workload), dict(options), data_root, model, sha)
            for ds in datasets for dp in designs]


@functools.lru_cache(maxsize=8)
def _graph(dataset: str, data_root: str | None):
    from sim.graphs.datasets import load_graph

    return load_graph(dataset, data_root)


def evaluate_task(task: SweepTask) -> dict:
    """Run one task (in a worker): returns the cache document with one row per precision."""
    from sim.accel.accelerator import ModelWorkload, Workload, compare
    from sim.accel.cycle import TemplateOptions

    dp = DesignPoint.from_dict(task.design)
    if task.model:
        wl = ModelWorkload.load(task.model)
        g = wl.graph
    else:
        wl = Workload(**{k: v for k, v in task.workload.items() if k != "stand_in"})
        g = _graph(task.dataset, task.data_root)
    res = compare(g, dp, task.precisions, wl, TemplateOptions(**task.options))
    rows = []
    for p in task.precisions:
        r = res["results"][p]
        workload = f"model:{task.model}" if task.model else f"stand-in:{task.workload.get('kind')}"
        row = {"dataset": task.dataset, "workload": workload, "design_key": dp.key(), "precision": p}
        for c in RESULT_COLUMNS[4:]:
            row[c] = r.get(c)
        for c in DESIGN_COLUMNS:
            row[c] = task.design[c]
        rows.append(row)
    return {"format": CACHE_FORMAT, "dataset": task.dataset, "design_key": dp.key(),
            "setup_hash": task.setup_hash, "rows": rows}


def _read_cached(path: Path, task: SweepTask) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if (doc.get("format") != CACHE_FORMAT or doc.get("design_key") != task.design_key
            or doc.get("setup_hash") != task.setup_hash):
        log.warning("ignoring stale or foreign cache file %s", path)
        return None
    return doc


@dataclass
class SweepResult:
    """Rows of a finished sweep plus how many tasks ran and how many came from the cache."""

    rows: list[dict]
    computed: int
    cached: int
    failures: list[str] = field(default_factory=list)


def missing_tasks(tasks: Sequence[SweepTask], cache_dir: str | os.PathLike) -> int:
    """How many of ``tasks`` have no valid cache file yet."""
    cache = Path(cache_dir)
    return sum(_read_cached(cache / t.cache_name(), t) is None for t in tasks)


def run_sweep(tasks: Sequence[SweepTask], cache_dir: str | os.PathLike, client: Any | None = None,
              progress: Callable[[int], None] | None = None) -> SweepResult:
    """Evaluate ``tasks`` (cached ones are read back), through ``client`` if given.

    Parameters
    ----------
    client : dask.distributed.Client, optional
        Runs the missing tasks on its workers; without a client they run in this process.
    progress : callable, optional
        Called with the number of tasks finished since the last call (for a progress bar).
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    docs: dict[int, dict] = {}
    todo: list[int] = []
    for i, t in enumerate(tasks):
        doc = _read_cached(cache / t.cache_name(), t)
        if doc is None:
            todo.append(i)
        else:
            docs[i] = doc
    if progress and docs:
        progress(len(docs))
    cached = len(docs)

    def done(i: int, doc: dict) -> None:
        write_text_atomic(cache / tasks[i].cache_name(), json.dumps(doc, sort_keys=True) + "\n")
        docs[i] = doc
        if progress:
            progress(1)

    if todo and client is None:
        for i in todo:
            done(i, evaluate_task(tasks[i]))
    elif todo:
        from dask.distributed import as_completed

        futures = {client.submit(evaluate_task, tasks[i], key=f"quagga-sweep-{tasks[i].cache_name()}",
                                 pure=False): i for i in todo}
        try:
            for fut in as_completed(futures):
                done(futures[fut], fut.result())
        finally:
            for fut in futures:
                fut.release()
    rows = [r for i in range(len(tasks)) for r in docs[i]["rows"]]
    return SweepResult(rows, computed=len(todo), cached=cached)


# ---------------------------------------------------------------------------- outputs
def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return repr(v)
    return str(v)


def rows_to_csv(rows: Iterable[dict]) -> str:
    """CSV text (``\\n`` line ends, floats as ``repr``) with :data:`RESULT_COLUMNS` then design fields."""
    cols = list(RESULT_COLUMNS) + list(DESIGN_COLUMNS)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in cols])
    return buf.getvalue()


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated in (time, energy), both minimised, sorted by time."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front: list[int] = []
    best = float("inf")
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front
