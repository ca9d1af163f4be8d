"""``quagga bench MODEL.qim``: the trained model, end to end, against FP32 inference of the
same model on the same graph.

Integer side
    :class:`sim.packed.runner.PackedRunner` on the exported model (its own CSR, edge codes
    and constants), checked stage by stage against :meth:`quant.model_ir.IntModel.run`
    (numpy reference) and :func:`sim.exact.model_sim.run_model` (exact kernels).
FP32 side
    The same architecture with the trained float weights of the run's ``checkpoint.pt``
    (loaded with ``weights_only=True``; the SMP multipliers are the ``lambda_k`` frozen in the
    model file, so both sides use the same constants), in every CPU form
    (:data:`MODEL_FP32_FORMS`): PyG with ``edge_index``, PyG with a sparse-CSR ``adj_t``,
    ``torch.sparse.mm`` with int64 and with int32 indices, and our own FP32 forward
    (:func:`own_fp32_forward`: numpy BLAS for the linear layers, the register-resident FP32
    row kernels of :mod:`quagga.bench.fp32_spmm` with fused combination passes).

All forms are timed in one interleaved loop (:func:`quagga.bench.timing.time_interleaved`),
and reported by medians with every repeat.  Ratios are taken against the fastest FP32 form and
against our own.  Optionally one 64-feature aggregation on the model's graph is timed too
(:func:`quagga.bench.aggregation.measure`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from quagga.bench import machine
from quagga.bench.timing import median, time_interleaved
from quant import model_ir as mi
from quant import paper
from quant.errors import QuantError

log = logging.getLogger(__name__)

__all__ = ["MODEL_FP32_FORMS", "format_model_table", "own_fp32_forward", "run_model_bench"]

MODEL_FP32_FORMS = ("pyg_edge_index", "pyg_sparse_csr", "torch_csr_spmm", "torch_csr_spmm_i32",
                    "own_fp32")


def own_fp32_forward(fw, indptr: np.ndarray, ixc: np.ndarray, wf: np.ndarray, x: np.ndarray,
                     logits: bool = False) -> np.ndarray:
    """Our own FP32 inference of a :class:`quagga.bench.torch_baselines.FloatGNN`.

    Linear layers in numpy's float32 BLAS; propagations with the register-resident row
    kernels of :mod:`quagga.bench.fp32_spmm` on narrow indices ``ixc``, or for rows of at most
    :data:`quagga.bench.fp32_gather.GATHER_MAX_FEATURES` features with the sixteen-edge
    gather kernels of :mod:`quagga.bench.fp32_gather` (the technique of the integer side's
    narrow rows); each SMP step in two fused passes (``A x`` with the teleport combination
    and the change ``g``, then ``A g`` with the update).  Returns the predicted class per node (int64 (N,)), or with ``logits`` the
    float32 (N, C) outputs.
    """
    from quagga.bench.fp32_gather import (GATHER_MAX_FEATURES, smp_gap_f32_gather,
                                          smp_prop_f32_gather)
    from quagga.bench.fp32_spmm import smp_gap_f32, smp_prop_f32, spmm_f32

    def lin(h: np.ndarray, k: int) -> np.ndarray:
        wt, b = fw.lins[k]
        return np.ascontiguousarray(h @ wt.T + b, dtype=np.float32)

    if fw.arch == "gcn":
        h = x
        for k in range(len(fw.lins)):
            h = spmm_f32(indptr, ixc, wf, lin(h, k), 64)
            if k < len(fw.lins) - 1:
                np.maximum(h, 0, out=h)
        return h if logits else h.argmax(axis=1)
    h0 = lin(np.maximum(lin(x, 0), 0), 1)
    xk = h0
    if h0.shape[1] <= GATHER_MAX_FEATURES:
        smp_prop_f32, smp_gap_f32 = smp_prop_f32_gather, smp_gap_f32_gather  # noqa: F811
    if fw.arch == "appnp":
        for _ in range(fw.steps):
            xk, _g = smp_prop_f32(indptr, ixc, wf, xk, h0, fw.teleport, 64)
        return xk if logits else xk.argmax(axis=1)
    for c in fw.coefs:
        xt, g = smp_prop_f32(indptr, ixc, wf, xk, h0, fw.teleport, 64)
        xk = smp_gap_f32(indptr, ixc, wf, g, xt, c, fw.paper_code, 64)
    return xk if logits else xk.argmax(axis=1)


def _stage_mismatches(env: dict, other: dict) -> dict[str, int]:
    return {k: int((np.asarray(v).astype(np.int64) != np.asarray(env[k]).astype(np.int64)).sum())
            for k, v in other.items()}


def _load(model_path: str | Path, dataset: str | None, data_root: str | None):
    from quagga.commands.simulate import load_graph_arrays
    from sim.exact.model_sim import check_graph

    model = mi.load(model_path)
    name = dataset or model.meta.get("dataset")
    arrays = load_graph_arrays(name, data_root, model.meta)
    x = np.ascontiguousarray(arrays["x"], dtype=np.float32)
    check_graph(model, arrays["edge_index"], x.shape[0], x.shape[1])
    return model, name, arrays, x


def run_model_bench(model_path: str | Path, dataset: str | None = None, data_root: str | None = None,
                    checkpoint: str | Path | None = None, repeats: int = 7, threads: int = 2,
                    aggregation_features: int | None = 64,
                    progress: Callable[[str], None] | None = None, host=None) -> dict:
    """Time the exported model end to end against FP32 inference of the same model.

    Parameters
    ----------
    model_path : path of the ``.qim`` file.
    dataset, data_root : where the features come from (default: the dataset the model names;
        the graph must hash to the model's).
    checkpoint : the run's ``checkpoint.pt`` (default: next to the model file).
    repeats, threads : timed rounds and numba / torch threads.
    host : a :class:`sim.design.host.HostPoint`: the aggregation's kernels get the host
        host model's ``predicted_s`` beside their medians.
    aggregation_features : also time one aggregation of this many features on the model's
        graph at the model's width (None: skip).

    Returns
    -------
    dict
        JSON-ready: ``model``, ``dataset``, ``machine``, ``bit_exact``, ``fp32`` (form ->
        ``median_s``, ``times_s``), ``fastest_fp32``, ``int`` (``median_s``, ``times_s``,
        ``time_share_by_op``, ...), ``speedup_vs_fastest_fp32``, ``speedup_vs_own_fp32``,
        ``speedup_vs`` (every form), ``goal_vs_fp32`` and optionally ``aggregation``.

    Raises
    ------
    QuantError
        For a missing checkpoint, a graph that is not the model's, or an unsupported model.
    """
    import torch

    from quagga.bench.torch_baselines import (FloatGNNTorch, GCNProp, csr_tensor,
                                              edge_index_tensors, float_gnn_from_checkpoint)
    from sim.exact.model_sim import run_model
    from sim.packed import propagate
    from sim.packed.runner import PackedRunner
    from training.graph import build_prop_graph

    say = progress or log.info
    mach = machine.use_threads(threads, repeats)
    say(f"loading {model_path}")
    model, name, arrays, x = _load(model_path, dataset, data_root)
    ck = Path(checkpoint) if checkpoint else Path(model_path).parent / "checkpoint.pt"
    if not ck.is_file():
        raise QuantError(f"checkpoint {str(ck)!r} does not exist: the FP32 side needs the run's "
                         "float weights (pass --checkpoint)")
    try:
        fw, cfg = float_gnn_from_checkpoint(ck, model.meta.get("lambdas"))
    except ValueError as e:
        raise QuantError(str(e)) from None
    n = x.shape[0]
    pg = build_prop_graph(torch.from_numpy(np.asarray(arrays["edge_index"], np.int64)), n)
    indptr, indices = np.asarray(pg.indptr, np.int64), np.asarray(pg.indices, np.int64)
    prop_ops = [op for op in model.ops if isinstance(op, mi.PropagateOp)]
    for op in prop_ops[:1]:
        if not (np.array_equal(model.tensors[op.indptr], indptr)
                and np.array_equal(model.tensors[op.indices], indices)):
            raise QuantError("the model's CSR differs from the normalised dataset graph")
    wf = np.ascontiguousarray(pg.edge_weight.numpy(), dtype=np.float32)
    ixc = propagate.compact_indices(indices, n)
    inp = next(op for op in model.ops if isinstance(op, mi.InputOp))

    say("preparing the integer runner and the FP32 forms")
    runner = PackedRunner(model)
    tm = FloatGNNTorch(fw).eval()
    gp = GCNProp()
    a64 = csr_tensor(indptr, indices, wf, n)
    a32 = torch.sparse_csr_tensor(torch.from_numpy(indptr.astype(np.int32)),
                                  torch.from_numpy(indices.astype(np.int32)),
                                  torch.from_numpy(wf), size=(n, n), dtype=torch.float32)
    ei_t, ew_t = edge_index_tensors(indptr, indices, wf)

    def tin() -> torch.Tensor:  # the same preprocessing the integer input stage does
        return torch.from_numpy(mi.preprocess_features(x, inp.normalize) if inp.normalize else x)

    props = {"pyg_edge_index": lambda h: gp(h, ei_t, ew_t), "pyg_sparse_csr": lambda h: gp(h, a64),
             "torch_csr_spmm": lambda h: torch.sparse.mm(a64, h),
             "torch_csr_spmm_i32": lambda h: torch.sparse.mm(a32, h)}
    fns: dict[str, Callable[[], object]] = {
        f: (lambda p=props[f]: tm(tin(), p)) for f in MODEL_FP32_FORMS if f in props}
    fns["own_fp32"] = lambda: own_fp32_forward(
        fw, indptr, ixc, wf, mi.preprocess_features(x, inp.normalize) if inp.normalize else x)
    fns["int"] = lambda: runner.run(x, keep=False)
    say(f"timing {', '.join(fns)} x {repeats} (interleaved)")
    with torch.inference_mode():
        times = time_interleaved(fns, repeats)
        preds = {f: np.asarray(fns[f]()) for f in MODEL_FP32_FORMS}

    say("bit-exactness: every stage against IntModel.run and the exact kernels")
    env, sats = runner.run(x, keep=True)
    mism_ref = _stage_mismatches(env, model.run(x))
    sim_env, _ = run_model(model, x)
    mism_sim = _stage_mismatches(env, sim_env)
    prof: dict[str, float] = {}
    for _ in range(3):
        runner.run(x, keep=False, timings=prof)
    total = max(sum(prof.values()), 1e-12)

    fp32 = {f: {"median_s": median(times[f]), "min_s": min(times[f]), "times_s": times[f]}
            for f in MODEL_FP32_FORMS}
    fastest = min(MODEL_FP32_FORMS, key=lambda f: fp32[f]["median_s"])
    t_int = median(times["int"])
    pred_int = np.asarray(env[model.output]).astype(np.int64)
    ref_form = preds["torch_csr_spmm"]
    bits = int(cfg.get("bits", model.meta.get("bits", 0)))
    res: dict = {
        "model": {"path": str(model_path), "bits": bits, "arch": cfg.get("model"),
                  "steps": int(cfg.get("layers", 0)), "msg_quant": bool(cfg.get("msg_quant")),
                  "upd_quant": bool(cfg.get("upd_quant")), "checkpoint": str(ck),
                  "ops": len(model.ops), "propagations": len(prop_ops)},
        "dataset": {"name": name, "num_nodes": n, "num_features": int(x.shape[1]),
                    "num_edges_csr": int(indices.size), "num_classes": int(fw.lins[-1][0].shape[0]),
                    "graph_hash": model.graph["hash"]},
        "machine": mach,
        "config": {"repeats": repeats, "threads": threads,
                   "timing": "interleaved rounds after one warm-up each; medians"},
        "bit_exact": sum(mism_ref.values()) + sum(mism_sim.values()) == 0,
        "stage_mismatches": {"quant.model_ir.IntModel.run": sum(mism_ref.values()),
                             "sim.exact.model_sim.run_model": sum(mism_sim.values())},
        "stages_checked": len(mism_ref),
        "fp32": fp32, "fastest_fp32": fastest,
        "fp32_prediction_agreement_with_torch_csr_spmm": {
            f: float((preds[f] == ref_form).mean()) for f in MODEL_FP32_FORMS},
        "int": {"median_s": t_int, "min_s": min(times["int"]), "times_s": times["int"],
                "time_share_by_op": {k: v / total for k, v in sorted(prof.items())},
                "saturations": int(sum(sats.values())),
                "fast_path_fallbacks": dict(runner.fallbacks),
                "message_table_steps": len(runner._tables),
                "prediction_agreement_with_fp32": float((pred_int == ref_form).mean())},
        "speedup_vs_fastest_fp32": fp32[fastest]["median_s"] / t_int,
        "speedup_vs_own_fp32": fp32["own_fp32"]["median_s"] / t_int,
        "speedup_vs": {f: fp32[f]["median_s"] / t_int for f in MODEL_FP32_FORMS},
        "goal_vs_fp32": {f"int{b}": t for b, t in paper.SPEEDUP_VS_FP32.items()},
    }
    if aggregation_features:
        from quagga.bench.aggregation import measure

        w_codes = np.clip(np.rint(wf / (float(wf.max()) / 255.0)), 0, 255).astype(np.int64)
        agg_bits = tuple(b for b in (2, 4) if b == bits) or (2, 4)
        res["aggregation"] = measure(indptr, indices, w_codes, wf, aggregation_features,
                                     agg_bits, repeats, say=say, host=host)
    res["machine"]["load_average_end"] = machine.load_average()
    res["machine"]["numba_threading_layer"] = machine._threading_layer()
    if "aggregation" in res:
        res["bit_exact"] = res["bit_exact"] and all(
            v["bit_exact"] for k, v in res["aggregation"].items() if k.startswith("int"))
    res["notes"] = _notes(res, prop_ops)
    return res


def _notes(res: dict, prop_ops: list) -> list[str]:
    """What the measured ratio rests on: the dominant op and the bytes per gathered row."""
    it, md, d = res["int"], res["model"], res["dataset"]
    share = it["time_share_by_op"]
    top = max(share, key=share.get) if share else "propagate"
    goal = res["goal_vs_fp32"].get(f"int{md['bits']}")
    s = res["speedup_vs_fastest_fp32"]
    notes = [f"INT{md['bits']}: {s:.2f}x over the fastest FP32 form ({res['fastest_fp32']}), "
             f"{res['speedup_vs_own_fp32']:.2f}x over our own FP32 forward"
             + (f"; the paper's goal is {goal}x" if goal else "") + "."]
    notes.append(f"{top} takes {100 * share.get(top, 0):.0f}% of the integer run.")
    if prop_ops:
        p = prop_ops[0].params
        c = d["num_classes"]
        row = -(-c * p.x_spec.bits // 8)
        how = ("sixteen edges per vector, the message requantizer in vector arithmetic or "
               "read from one byte of every message of the edge, fused with the adds after "
               "the propagation (sim.packed.smp_step)" if p.msg is not None and row <= 4
               else "one table lookup per packed byte and edge (message requantizer)"
               if p.msg is not None else "the row-sum identity on packed planes")
        notes.append(f"each propagation gathers {row} B per edge at INT{p.x_spec.bits} against "
                     f"{4 * c} B in FP32 (C={c}), summed by {how}; at a few bytes per row the "
                     "per-edge index and weight loads and the loop overhead, not the gathered "
                     "bytes, set the time on both sides.")
    return notes


def format_model_table(res: dict) -> str:
    """Plain-text summary of a :func:`run_model_bench` result."""
    m, d, md = res["machine"], res["dataset"], res["model"]
    goal = res["goal_vs_fp32"].get(f"int{md['bits']}")
    lines = [f"machine: {m['cpu']} ({m['logical_cpus']} logical CPUs, {m['threads']} threads used), "
             f"load {m['load_average_start']} -> {m.get('load_average_end')}",
             f"model: {md['path']} ({md['arch']} K={md['steps']}, INT{md['bits']}, message "
             f"requantizer {'on' if md['msg_quant'] else 'off'}); graph {d['name']} N={d['num_nodes']} "
             f"E={d['num_edges_csr']} (CSR with self loops), F_in={d['num_features']}, C={d['num_classes']}",
             f"{res['config']['repeats']} interleaved repeats, medians", "",
             f"  {'form':<22}{'median ms':>11}{'best ms':>10}"]
    for f, v in res["fp32"].items():
        mark = " *" if f == res["fastest_fp32"] else ""
        lines.append(f"  {f + mark:<22}{v['median_s'] * 1e3:>11.2f}{v['min_s'] * 1e3:>10.2f}")
    it = res["int"]
    lines.append(f"  {'INT' + str(md['bits']) + ' packed':<22}{it['median_s'] * 1e3:>11.2f}"
                 f"{it['min_s'] * 1e3:>10.2f}")
    lines.append(f"  (* fastest FP32 form by median: {res['fastest_fp32']})")
    lines.append(f"speed-up vs fastest FP32 {res['speedup_vs_fastest_fp32']:.2f}x, vs own FP32 "
                 f"{res['speedup_vs_own_fp32']:.2f}x" + (f"  (goal: the paper's {goal}x)" if goal else ""))
    lines.append("integer time by op: " + ", ".join(
        f"{k} {100 * v:.0f}%" for k, v in sorted(it["time_share_by_op"].items(), key=lambda kv: -kv[1])))
    lines.append(f"bit-exact: {res['bit_exact']} ({res['stages_checked']} stages against "
                 "IntModel.run and the exact kernels)")
    lines += [f"note: {n}" for n in res.get("notes", [])]
    if "aggregation" in res:
        from quagga.bench.aggregation import format_table

        lines += ["", f"aggregation F={res['aggregation']['num_features']} on the model's graph",
                  *format_table(res["aggregation"])]
    return "\n".join(lines)
