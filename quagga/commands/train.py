"""``quagga train``: quantization-aware training, fake-quant and integer evaluation, export.

Writes ``OUT/metrics.json`` (accuracies per seed, mean and std, for fake-quant and integer
inference), ``OUT/model.qim`` (the first seed's integer model, :mod:`quant.model_ir`) and
``OUT/checkpoint.pt`` (the first seed's trained torch state).  Without ``--dataset`` it
trains on the built-in synthetic graph, offline.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from quagga.cli import CLIError
from quagga.dataset_args import add_synthetic_arguments, synthetic_args
from quant.fileio import write_text_atomic
from training import allocator

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default=None,
                   help="PyG name (Cora, CiteSeer, PubMed, Tolokers, Minesweeper, Computers, Photo, "
                        "CS, Physics, ...), a .npz/.pt graph file, or 'synthetic' (default)")
    g.add_argument("--data-root", default=None,
                   help="directory holding <Name>/raw/ in PyG's layout (default: $QUAGGA_DATA_ROOT)")
    g.add_argument("--split", choices=("random", "public"), default="random",
                   help="random: 20 per class / 500 / 1000, seeded (the paper's protocol); public: the dataset's masks")
    g.add_argument("--split-seed", type=int, default=None,
                   help="seed of the random split (default: each run seed makes its own split)")
    add_synthetic_arguments(g)
    m = parser.add_argument_group("model")
    m.add_argument("--model", choices=("smp", "appnp", "emp", "gcn"), default="smp")
    m.add_argument("--bits", default="4", help="2, 4, 8 (any 1..8), or 32/fp32 for full precision")
    m.add_argument("--bt", choices=("none", "bt", "sbt"), default="none",
                   help="INT2 bitwise truncation: BT or skewness-aware BT* (sbt)")
    m.add_argument("--layers", type=int, default=None,
                   help="propagation steps K (smp/appnp/emp, default 10) or GCN layers (default 2)")
    m.add_argument("--hidden", type=int, default=64)
    m.add_argument("--dropout", type=float, default=None, help="default: the paper's per-config value")
    m.add_argument("--alpha-c", type=float, default=None, help="SMP constraint budget factor (default per config)")
    m.add_argument("--edge-bits", type=int, default=8)
    m.add_argument("--comb-bits", type=int, default=8)
    m.add_argument("--mult-bits", type=int, default=16)
    m.add_argument("--no-msg-quant", action="store_true", help="do not quantize per-edge messages")
    m.add_argument("--no-upd-quant", action="store_true", help="do not quantize the update stage")
    m.add_argument("--alpha-reinit", type=int, default=None,
                   help="re-run the alpha grid search every N epochs (0: never; default 50, "
                        "with --paper-code only on CiteSeer as the published code)")
    m.add_argument("--paper-code", action="store_true",
                   help="reproduce the published code's behaviour (labelled as such in the outputs)")
    t = parser.add_argument_group("training")
    t.add_argument("--seeds", default="0", help="comma-separated run seeds, e.g. 0,1,2,3,4")
    t.add_argument("--epochs", type=int, default=200)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--weight-decay", type=float, default=None)
    t.add_argument("--lr-alpha", type=float, default=None)
    t.add_argument("--teacher", choices=["none", "fp32"], default="none",
                   help="train the model's FP32 twin first (same split and seed) as a teacher")
    t.add_argument("--distill", type=float, default=0.0, metavar="W",
                   help="weight of the distillation loss from the teacher, over all nodes")
    t.add_argument("--distill-temp", type=float, default=1.0, metavar="T")
    t.add_argument("--init-from-teacher", action="store_true",
                   help="start the linear layers from the FP32 teacher's weights")
    t.add_argument("--device", default="cpu")
    t.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default 1: the machine is shared)")
    t.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", required=True, help="output directory")


def parse_seeds(text: str) -> tuple[int, ...]:
    """The run seeds of ``--seeds`` (comma-separated integers, at least one)."""
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise CLIError(f"--seeds must be comma-separated integers, not {text!r}") from None
    if not seeds:
        raise CLIError(f"--seeds must name at least one seed, not {text!r}")
    return seeds


def _write_outputs(out: Path, writers: list) -> None:
    """Run each ``(name, write(path))`` into ``out``; if one fails, remove those already written,
    so a failed command leaves no partial set of outputs."""
    done: list[Path] = []
    try:
        for name, write in writers:
            write(out / name)
            done.append(out / name)
    except BaseException:
        for p in done:
            p.unlink(missing_ok=True)
        raise


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from quant import model_ir
    from training.checkpoint import save_checkpoint
    from training.config import ModelConfig, TrainConfig, bt_mode, paper_defaults, parse_bits
    from training.data import SYNTHETIC, load_dataset
    from training.run import run_seeds

    bits = parse_bits(args.bits)
    bt = bt_mode(args.bt)
    seeds = parse_seeds(args.seeds)
    torch.set_num_threads(args.threads or 1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    log.info("memory allocator: %s (training/allocator.py)", allocator.active())
    syn_args = synthetic_args(args)
    data = load_dataset(args.dataset, args.data_root, synthetic_args=syn_args)
    pd = paper_defaults(args.model, bits, bt, paper_code=args.paper_code, dataset=data.name)
    if args.alpha_reinit is not None and args.alpha_reinit < 0:
        raise CLIError(f"--alpha-reinit must be >= 0, not {args.alpha_reinit}")
    reinit = pd["alpha_reinit"] if args.alpha_reinit is None else (args.alpha_reinit or None)
    layers = args.layers if args.layers is not None else (2 if args.model == "gcn" else 10)
    mcfg = ModelConfig(model=args.model, bits=bits, bt=bt, layers=layers, hidden=args.hidden,
                       dropout=pd["dropout"] if args.dropout is None else args.dropout,
                       alpha_c=pd["alpha_c"] if args.alpha_c is None else args.alpha_c,
                       edge_bits=args.edge_bits, comb_bits=args.comb_bits, mult_bits=args.mult_bits,
                       msg_quant=not args.no_msg_quant, upd_quant=not args.no_upd_quant,
                       paper_code=args.paper_code, alpha_reinit=reinit)
    tcfg = TrainConfig(epochs=args.epochs,
                       lr=pd["lr"] if args.lr is None else args.lr,
                       weight_decay=pd["weight_decay"] if args.weight_decay is None else args.weight_decay,
                       lr_alpha=pd["lr_alpha"] if args.lr_alpha is None else args.lr_alpha,
                       weight_decay_alpha=pd["weight_decay_alpha"], seeds=seeds, split=args.split,
                       split_seed=args.split_seed,
                       teacher=None if args.teacher == "none" else args.teacher,
                       distill_weight=args.distill, distill_temp=args.distill_temp,
                       init_from_teacher=args.init_from_teacher)
    out = Path(args.out)
    bar = None if args.no_progress else tqdm(total=len(seeds) * tcfg.epochs, unit="epoch",
                                             desc=f"{data.name} {args.model} bits={args.bits}")

    def on_epoch(seed, epoch, rec):
        if bar is not None:
            bar.update(1)
            bar.set_postfix(seed=seed, val=f"{rec['val']:.3f}", test=f"{rec['test']:.3f}")

    try:
        res = run_seeds(data, mcfg, tcfg, device=args.device, on_epoch=on_epoch)
    finally:
        if bar is not None:
            bar.close()
    metrics = res.metrics
    metrics["mode"] = "paper-code (reproduces the published code)" if args.paper_code else "corrected"
    metrics["model_file"] = "model.qim" if res.int_model is not None else None
    metrics["checkpoint"] = "checkpoint.pt"
    if res.int_model is not None and data.name == SYNTHETIC:
        res.int_model.meta["dataset_args"] = syn_args  # so simulate / data export rebuild the graph
    ckpt = {"model_config": mcfg.to_dict(), "train_config": tcfg.to_dict(), "dataset": data.name,
            "seed": seeds[0], "state_dict": res.model.state_dict()}
    writers = [("checkpoint.pt", lambda p: save_checkpoint(p, ckpt))]
    if res.int_model is not None:
        writers.append(("model.qim", lambda p: model_ir.save(res.int_model, p)))
    writers.append(("metrics.json", lambda p: write_text_atomic(
        p, json.dumps(metrics, indent=2, sort_keys=True) + "\n")))
    _write_outputs(out, writers)
    fq, it = metrics["test_acc"]["fake_quant"], metrics["test_acc"]["integer"]
    line = f"{data.name} {args.model} bits={args.bits} bt={args.bt}: test fake-quant {100 * fq['mean']:.2f} ± {100 * fq['std']:.2f}"
    if it:
        line += f", integer {100 * it['mean']:.2f} ± {100 * it['std']:.2f}"
    print(line)
    print(f"wrote {out / 'metrics.json'}" + (f", {out / 'model.qim'}" if res.int_model is not None else ""))
    return 0
