"""Where a trained model's integer inference departs from its fake-quant forward, stage by stage.

For every quantized stage of a lowered model (:func:`training.lowering.lower`) this compares
the fake-quant model's codes (``q.to_int`` of each quantizer's input in an eval-mode forward)
with the integer model's codes, two ways:

``cumulative``
    the integer executor's codes for the whole model (:func:`training.integer.run`) against
    the fake-quant codes: differences carried from earlier stages included;
``local``
    the stage's integer op run on the *fake-quant* codes of its inputs against the fake-quant
    codes of its output: the differences the stage itself introduces.  A propagation step is
    split into its message, aggregate and update requantizations.

A model with the integer-exact forward (``cfg.exact_forward``, :mod:`training.exact`) records
the codes of every integer op during its eval-mode forward; for it both columns compare those
codes with the integer executor's (:func:`exact_stage_gaps`), and every entry is 0 by
construction.

Usage: ``python -m training.stage_gap RUN_DIR`` (a ``quagga train`` output with
``checkpoint.pt``; data root from ``--data-root`` or ``$QUAGGA_DATA_ROOT``).  See
docs/training.md, "Fake-quant / integer gap".
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from quant.errors import QuantError
from quant.model_ir import (AddOp, ArgmaxOp, InputOp, IntModel, LinearOp, PropagateOp, ReluOp,
                            preprocess_features, run_op)
from quant.quantizers import FakeQuantizer
from quant.reference import requantize
from training.graph import PropGraph
from training.layers import QuantLinear, QuantPropagate
from training.models import DecoupledGNN, DeepGCN


@dataclass(frozen=True)
class StageGap:
    """One quantized stage.

    Attributes
    ----------
    name : str
        IR tensor name; propagation sub-stages are ``<name>:msg`` / ``:agg`` / ``:upd``.
    kind : str
        ``input``, ``linear``, ``add``, ``msg``, ``agg``, ``upd`` or ``pred``.
    size : int
        Number of codes (messages: one per edge and feature).
    local : float
        Fraction of codes that differ when the stage's integer op reads fake-quant codes.
    cumulative : float or None
        Fraction of codes that differ between the integer executor and the fake-quant model
        (``None`` for message / aggregate codes, which the executor does not keep).
    """

    name: str
    kind: str
    size: int
    local: float
    cumulative: float | None


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _stage_module(model: torch.nn.Module, stem: str):
    """The quantizer (or QuantPropagate) whose codes an IR op named ``<stem>.<n>`` holds."""
    if stem.endswith(".bt"):
        return _stage_module(model, _stem(stem[:-3]))
    parts = stem.split(".")
    if isinstance(model, DecoupledGNN):
        if stem == "x":
            return model.lin1.q_in
        if parts[0] in ("lin1", "lin2"):
            lin = getattr(model, parts[0])
            return lin.q_in if parts[1:] == ["in"] else lin.q_out
        if parts[0].startswith("step"):
            step = model.steps[int(parts[0][4:])]
            if parts[1] in ("prop", "gap"):
                return getattr(step, parts[1])
            return getattr(step, f"q_{parts[1]}")
    if isinstance(model, DeepGCN):
        if stem == "x":
            return model.lins[0].q_in
        if parts[0].startswith("gcn"):
            i = int(parts[0][3:])
            if parts[1] == "prop":
                return model.props[i]
            if parts[1] == "lin":
                return model.lins[i].q_in if parts[2:] == ["in"] else model.lins[i].q_out
    raise QuantError(f"IR tensor name must belong to a known stage, not {stem!r}")


def _final_quantizer(mod):
    """The quantizer that gives a stage its output codes (a propagation's last stage)."""
    if isinstance(mod, QuantPropagate):
        return mod.q_upd if mod.q_upd is not None else mod.q_agg
    return mod


def fake_codes(model: torch.nn.Module, x: torch.Tensor, graph: PropGraph) -> tuple[dict, torch.Tensor]:
    """Eval-mode forward recording each quantizer's codes.

    Returns ``({id(quantizer): [codes of each call]}, logits)``.  Propagation steps run their
    per-edge hooks (``fused=False``; same forward values) so message codes are recorded,
    one (E, F) tensor per step in the graph's canonical edge order.
    """
    rec: dict[int, list[torch.Tensor]] = {}

    def hook(mod, inp, out):
        rec.setdefault(id(mod), []).append(mod.to_int(inp[0].detach()))

    props = [m for m in model.modules() if isinstance(m, QuantPropagate)]
    fused = [getattr(m, "fused", True) for m in props]
    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, FakeQuantizer) and m.enabled]
    try:
        for m in props:
            m.fused = False
        model.eval()
        with torch.no_grad():
            logits = model(x, graph)
    finally:
        for h in hooks:
            h.remove()
        for m, f in zip(props, fused):
            m.fused = f
    return rec, logits


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.asarray(a) != np.asarray(b))) if np.size(a) else 0.0


def exact_stage_gaps(model: torch.nn.Module, im: IntModel, graph: PropGraph, x_raw: np.ndarray,
                     int_env: dict | None = None) -> list[StageGap]:
    """Stage gaps of an integer-exact model: its eval-forward codes (recorded in the export's
    op order) against the integer executor's, op by op (``local == cumulative``)."""
    from training import integer

    normalize = next(op.normalize for op in im.ops if isinstance(op, InputOp))
    xf = torch.from_numpy(preprocess_features(np.asarray(x_raw), normalize))
    rec: list = []
    model.eval()
    with torch.no_grad():
        model(xf, graph, record=rec)
    if [k for k, _ in rec] != [op.op for op in im.ops]:
        raise QuantError("recorded ops must follow the model file's ops one to one")
    if int_env is None:
        int_env = integer.run(im, x_raw, keep=True)
    out = []
    for (kind, codes), op in zip(rec, im.ops):
        if isinstance(op, ReluOp):
            continue
        d = _diff(codes.cpu().numpy(), int_env[op.out].cpu().numpy())
        k = "pred" if isinstance(op, ArgmaxOp) else kind
        out.append(StageGap("pred" if k == "pred" else op.out, k, int(codes.numel()), d, d))
    return out


def stage_gaps(model: torch.nn.Module, im: IntModel, graph: PropGraph, x_raw: np.ndarray,
               int_env: dict | None = None) -> list[StageGap]:
    """Compare ``model`` (fake-quant) with its lowered ``im`` stage by stage.

    Models whose evaluation forward is integer-exact (``cfg.exact_eval``, ``model`` in
    eval mode) are compared by :func:`exact_stage_gaps`.

    Parameters
    ----------
    model : DecoupledGNN or DeepGCN, the model ``im`` was lowered from
    graph : its PropGraph
    x_raw : (N, F) raw features (the integer model applies its own preprocessing)
    int_env : every tensor of ``training.integer.run(im, x_raw, keep=True)``; computed if omitted
    """
    from training import integer

    if getattr(model.cfg, "exact_eval", False) and not model.training:
        return exact_stage_gaps(model, im, graph, x_raw, int_env)
    x_raw = np.asarray(x_raw)
    normalize = next(op.normalize for op in im.ops if isinstance(op, InputOp))
    xf = torch.from_numpy(preprocess_features(x_raw, normalize))
    rec, logits = fake_codes(model, xf, graph)
    if int_env is None:
        int_env = integer.run(im, x_raw, keep=True)
    env = {k: v.cpu().numpy() for k, v in int_env.items()}

    def one(q) -> np.ndarray:
        calls = rec.get(id(q), [])
        if len(calls) != 1:
            raise QuantError(f"quantizer calls in one forward must be 1, not {len(calls)}")
        return calls[0].numpy()

    fake: dict[str, np.ndarray] = {}
    local: dict[str, np.ndarray] = {}
    get_fake = lambda n: fake[n] if n in fake else im.tensors[n]  # noqa: E731
    get_local = lambda n: local[n] if n in local else get_fake(n)  # noqa: E731
    out: list[StageGap] = []
    src, dst = (t.cpu().numpy() for t in graph.edge_index)
    for op in im.ops:
        name, stem = op.out, _stem(op.out)
        if isinstance(op, ArgmaxOp):
            fp = logits.argmax(1).cpu().numpy()
            out.append(StageGap(name, "pred", fp.size, _diff(np.argmax(fake[op.inp], 1), fp),
                                _diff(env[name], fp)))
            continue
        if isinstance(op, ReluOp):
            fake[name] = run_op(op, get_fake, x_raw)
            continue
        if stem.endswith(".bt_level"):          # BT snap, first half: fake side has no such codes
            fake[name] = local[name] = run_op(op, get_local, x_raw)
            continue
        mod = _stage_module(model, stem)
        if isinstance(op, PropagateOp):
            p = op.params
            if not (np.array_equal(im.tensors[op.indices], src)
                    and np.array_equal(np.repeat(np.arange(graph.num_nodes), np.diff(im.tensors[op.indptr])), dst)):
                raise QuantError("graph edge order must equal the IR's CSR order")
            xc = get_fake(op.inp).astype(np.int64) - p.x_zero
            prod = xc[src] * (im.tensors[op.edge_weight].astype(np.int64)[:, None] - p.w_zero)
            if p.msg is not None:
                fm = one(mod.q_msg)
                out.append(StageGap(f"{name}:msg", "msg", fm.size, _diff(p.msg(prod), fm), None))
                terms = fm.astype(np.int64) - p.msg.zero_point
            else:
                terms = prod
            acc = np.zeros((graph.num_nodes, xc.shape[1]), dtype=np.int64)
            np.add.at(acc, dst, terms)
            fa = one(mod.q_agg)
            if p.upd is None:
                local[name] = p.out(acc)
                fake[name] = fa
            else:
                out.append(StageGap(f"{name}:agg", "agg", fa.size, _diff(p.out(acc), fa), None))
                local[name] = requantize(fa.astype(np.int64) - p.out.zero_point, p.upd.multiplier,
                                         p.upd.shift, p.upd.zero_point, p.upd.spec)
                fake[name] = one(mod.q_upd)
            kind = "upd" if p.upd is not None else "agg"
            label = f"{name}:{kind}"
        else:
            snap = stem.endswith(".bt")       # BT snap, second half: the stage's final codes
            kind = "bt" if snap else {InputOp: "input", LinearOp: "linear", AddOp: "add"}[type(op)]
            label = name
            local[name] = run_op(op, get_local if snap else get_fake, x_raw)
            fake[name] = one(_final_quantizer(mod))
        if getattr(_final_quantizer(mod), "bt_mode", None) is not None and not stem.endswith(".bt"):
            continue                          # pre-snap codes: compared after the snap
        out.append(StageGap(label, kind, fake[name].size, _diff(local[name], fake[name]),
                            _diff(env[name], fake[name])))
    return out


def format_table(rows: list[StageGap], only_nonzero: bool = False) -> str:
    """Markdown table of ``rows`` (fractions as percentages); ``only_nonzero`` keeps the stages
    with local differences and the predictions."""
    lines = ["| stage | kind | codes | local % | cumulative % |", "|---|---|---|---|---|"]
    for r in rows:
        if only_nonzero and r.local == 0 and r.kind != "pred":
            continue
        cum = "–" if r.cumulative is None else f"{100 * r.cumulative:.3f}"
        lines.append(f"| {r.name} | {r.kind} | {r.size} | {100 * r.local:.3f} | {cum} |")
    return "\n".join(lines)


def load_run(run_dir: str | Path, data_root: str | None = None, exact: bool | None = None):
    """``(model, data, graph, seed)`` of a ``quagga train`` output's ``checkpoint.pt`` (first
    seed, loaded as data: tensors and plain containers only).  ``exact`` overrides the model's
    forward (``ModelConfig.exact``); checkpoints saved before the integer-exact forward existed
    have no such field and load with the default."""
    from training.checkpoint import load_checkpoint
    from training.config import ModelConfig
    from training.data import load_dataset
    from training.graph import build_prop_graph
    from training.models import build_model

    ck = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    mc = dict(ck["model_config"])
    if exact is not None:
        mc["exact"] = exact
    cfg = ModelConfig(**mc)
    data = load_dataset(ck["dataset"], data_root)
    model = build_model(cfg, data.num_features, data.num_classes)
    model.load_state_dict(ck["state_dict"])
    return model, data, build_prop_graph(data.edge_index, data.num_nodes), int(ck["seed"])


def main(argv: list[str] | None = None) -> int:
    from training.lowering import lower

    p = argparse.ArgumentParser(prog="python -m training.stage_gap", description=__doc__.splitlines()[0])
    p.add_argument("run", help="a quagga train output directory (with checkpoint.pt)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--all", action="store_true",
                   help="list every stage, not only those with local differences")
    p.add_argument("--float-bias", action="store_true",
                   help="evaluate with the float linear bias (paper-code runs trained before the "
                        "bias was fake-quantized)")
    p.add_argument("--forward", choices=["saved", "exact", "fake-quant"], default="saved",
                   help="the forward to compare: the checkpoint's (default), the integer-exact one, "
                        "or the float fake-quant one (as runs trained before the exact forward)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    exact = {"saved": None, "exact": True, "fake-quant": False}[a.forward]
    try:
        model, data, graph, seed = load_run(a.run, a.data_root, exact)
    except QuantError as exc:  # bad checkpoint or dataset: one line, no traceback
        sys.stderr.write(f"{p.prog}: error: {exc}\n")
        return 2
    if a.float_bias:
        for m in model.modules():
            if isinstance(m, QuantLinear):
                m.bias_quant = False
    model.eval()
    with torch.no_grad():
        model(torch.from_numpy(preprocess_features(data.x.numpy(), data.normalize)), graph)
    im = lower(model, graph, num_features=data.num_features, normalize=data.normalize)
    rows = stage_gaps(model, im, graph, data.x.numpy())
    n_stages = sum(r.kind != "pred" for r in rows)
    bad = [r for r in rows if r.kind != "pred" and r.local > 0]
    pred = rows[-1]
    sys.stdout.write(f"{a.run} (seed {seed}): {n_stages} stages, {len(bad)} with local differences; "
                     f"predictions differ on {100 * pred.cumulative:.2f} % of nodes\n\n")
    sys.stdout.write(format_table(rows, only_nonzero=not a.all) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
