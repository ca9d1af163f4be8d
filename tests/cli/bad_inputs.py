"""The catalogue of bad inputs: every entry is refused by a ``quagga`` command with exit 2 and
one line naming the field and the value, without a traceback and without output files.

The tests (``test_bad_inputs.py``) are generated from :data:`CATALOGUE`, and ``docs/errors.md``
is rendered from it (``python tests/cli/bad_inputs.py > docs/errors.md``; a test checks the
file is current).  In commands and messages ``DIR`` stands for the case's own directory,
where its input files are made.
"""

from __future__ import annotations

import dataclasses

import hashlib
import json
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim.design.point import DesignPoint

#: Nodes, features and classes of the base graph (big enough for the random 20-per-class split).
N, F, C = 120, 8, 3


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes
    ----------
    id : str
        Short name (the test id).
    input : str
        What is wrong, in words (the catalogue's first column).
    argv : tuple of str
        The command line after ``quagga`` (``DIR`` is the case's directory).
    message : str
        The exact error line the command prints (after ``quagga CMD: error: ``).
    field, value : str
        The field the message must name, and the offending value it must show.
    files : dict
        File name (under DIR) -> maker ``f(path, shared)``; ``shared`` holds the paths of the
        shared inputs (a valid graph ``graph``, a model trained on it ``model``).
    process : bool
        Run in a child process (for resource limits); otherwise in-process.
    fsize_limit : int or None
        ``RLIMIT_FSIZE`` of the child process, bytes (writes beyond fail with EFBIG: a full disk).
    """

    id: str
    input: str
    argv: tuple[str, ...]
    message: str
    field: str
    value: str
    files: dict[str, Callable] = field(default_factory=dict)
    process: bool = False
    fsize_limit: int | None = None

    @property
    def command(self) -> str:
        return " ".join(self.argv[:2] if self.argv[0] == "rtl" else self.argv[:1])


# ------------------------------------------------------------------------------ input makers
def base_arrays(n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    """A valid graph: ``x`` (n, F) float32, ``y`` (n,) in 0..C-1, ``edge_index`` (2, E) symmetric."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    x = (rng.standard_normal((n, F)) + y[:, None]).astype(np.float32)
    src = rng.integers(0, n, 3 * n)
    dst = rng.integers(0, n, 3 * n)
    keep = src != dst
    ei = np.unique(np.concatenate([np.stack([src[keep], dst[keep]]), np.stack([dst[keep], src[keep]])], 1), axis=1)
    return {"x": x, "y": y, "edge_index": ei}


def masks(n: int = N) -> dict[str, np.ndarray]:
    tr, va, te = (np.zeros(n, bool) for _ in range(3))
    tr[:60], va[60:80], te[80:] = True, True, True
    return {"train_mask": tr, "val_mask": va, "test_mask": te}


def npz(**changes) -> Callable:
    """Maker of an ``.npz`` graph: the base graph with ``changes`` (a value of None drops the key)."""
    def make(path: Path, shared: dict) -> None:
        arrays = {**base_arrays(), **changes}
        np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return make


def graph_with(**changes) -> dict[str, Callable]:
    return {"g.npz": npz(**changes)}


def raw(data: bytes) -> Callable:
    def make(path: Path, shared: dict) -> None:
        path.write_bytes(data)
    return make


def damaged(source: str, how: str) -> Callable:
    """A copy of shared input ``source`` cut to half (``truncate``) or with one byte flipped (``flip``)."""
    def make(path: Path, shared: dict) -> None:
        data = bytearray(Path(shared[source]).read_bytes())
        if how == "truncate":
            data = data[: len(data) // 2]
        else:
            data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    return make


def copy(source: str) -> Callable:
    def make(path: Path, shared: dict) -> None:
        path.write_bytes(Path(shared[source]).read_bytes())
    return make


def model_header(**changes) -> Callable:
    """A copy of the shared model with header fields changed and a valid checksum."""
    def make(path: Path, shared: dict) -> None:
        from quant.model_ir import MAGIC

        data = Path(shared["model"]).read_bytes()[:-32]
        (hlen,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
        start = len(MAGIC) + 4
        header = json.loads(data[start:start + hlen])
        header.update(changes)
        h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        body = MAGIC + struct.pack("<I", len(h)) + h + data[start + hlen:]
        path.write_bytes(body + hashlib.sha256(body).digest())
    return make


def torch_file(kind: str) -> Callable:
    """``.pt`` files: ``tensor`` (a lone tensor), ``graph`` (a valid graph dict), ``graph-truncated``
    (its first half), ``malicious``
    (an object whose unpickling would create ``DIR/pwned``)."""
    def make(path: Path, shared: dict) -> None:
        import torch

        if kind == "tensor":
            torch.save(torch.zeros(3), path)
        elif kind.startswith("graph"):
            torch.save({k: torch.from_numpy(v) for k, v in base_arrays().items()}, path)
            if kind.endswith("truncated"):
                path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        else:
            torch.save(Payload(str(path.parent / "pwned")), path)
    return make


class Payload:
    """Unpickling this object would run a shell command (it must never be unpickled)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.target}",))


def text(content: str) -> Callable:
    def make(path: Path, shared: dict) -> None:
        path.write_text(content)
    return make


def directory(path: Path, shared: dict) -> None:
    path.mkdir()


def run_json(**options) -> Callable:
    """A ``run.json`` of the default ``quagga run`` options with ``options`` changed."""
    def make(path: Path, shared: dict) -> None:
        from quagga.flow import FlowOptions

        opts = FlowOptions(out=path.parent, skip=("train", "simulate", "rtl", "depth", "sweep", "bench"))
        path.write_text(json.dumps({"options": {**opts.key_options(), **options}, "stages": {}}))
    return make


# ------------------------------------------------------------------------------ the catalogue
TRAIN = ("train", "--epochs", "1", "--layers", "2", "--hidden", "8", "--no-progress", "--out", "DIR/out")
G = ("--dataset", "DIR/g.npz")
SIM = ("simulate", "DIR/m.qim", "--dataset", "DIR/g.npz", "--out", "DIR/sim")
#: the design point's keys, as the unknown-key message lists them
DESIGN_KEYS = str(sorted(f.name for f in dataclasses.fields(DesignPoint)))
#: the keys a sweep may vary (every design key but the name)
SWEEP_KEYS = str(sorted(f.name for f in dataclasses.fields(DesignPoint) if f.name != "name"))
EST = ("estimate", "--workload", "aggregate", "--dataset", "synthetic:uniform:50:200", "--json", "DIR/e.json")
DESIGN = ("--design", "DIR/d.toml")
SHARED_GRAPH = {"g.npz": copy("graph")}
SHARED = {"g.npz": copy("graph"), "m.qim": copy("model")}

CATALOGUE: tuple[Case, ...] = (
    # ---------------------------------------------------------------- graph files (.npz)
    Case("npz-empty", "graph file of 0 bytes", TRAIN + G,
         "dataset file 'DIR/g.npz' is empty (0 bytes), not an .npz archive", "dataset file", "0 bytes",
         {"g.npz": raw(b"")}),
    Case("npz-truncated", "graph .npz cut to half its size", TRAIN + G,
         "dataset file 'DIR/g.npz' is truncated or corrupt, not a readable .npz archive (BadZipFile: File is not a zip file)", "dataset file", "truncated",
         {"g.npz": damaged("graph", "truncate")}),
    Case("npz-corrupt", "graph .npz with one byte flipped", TRAIN + G,
         "dataset file 'DIR/g.npz' is truncated or corrupt, not a readable .npz archive (BadZipFile: Bad CRC-32 for file 'edge_index.npy')", "dataset file", "corrupt",
         {"g.npz": damaged("graph", "flip")}),
    Case("npz-not-npz", "a text file named .npz", TRAIN + G,
         "dataset file 'DIR/g.npz' is not an .npz archive (it starts with b'x,y\\n', not the zip signature b'PK\\x03\\x04')", "dataset file", "zip signature",
         {"g.npz": text("x,y\n1,2\n")}),
    Case("npz-pickled-object", "graph .npz whose x is a pickled object array", TRAIN + G,
         "dataset file 'DIR/g.npz' holds pickled Python objects, which are refused (graph files must hold plain numeric arrays)", "dataset file", "pickled",
         graph_with(x=np.array([{"a": 1}] * N, dtype=object))),
    Case("npz-missing-x", "graph .npz without x", TRAIN + G,
         "dataset file 'DIR/g.npz' must contain 'x'; it has ['edge_index', 'y']", "'x'", "['edge_index', 'y']", graph_with(x=None)),
    Case("x-strings", "x of strings", TRAIN + G,
         "DIR/g.npz: x.dtype must be a numeric dtype, not <U1", "x.dtype", "<U1", graph_with(x=np.full((N, F), "a"))),
    Case("x-nan", "a NaN feature", TRAIN + G,
         "DIR/g.npz: x must be finite, not nan at index (0, 0)", "x must be finite", "nan", graph_with(x=np.where(np.eye(N, F) > 0, np.nan, 1.0).astype(np.float32))),
    Case("x-inf", "an infinite feature", TRAIN + G,
         "DIR/g.npz: x must be finite, not inf at index (0, 0)", "x must be finite", "inf", graph_with(x=np.where(np.eye(N, F) > 0, np.inf, 1.0).astype(np.float32))),
    Case("zero-nodes", "a graph of 0 nodes", TRAIN + G,
         "DIR/g.npz: x.shape must be (N, F) with N, F > 0, not (0, 8)", "x.shape", "(0, 8)",
         graph_with(x=np.zeros((0, F), np.float32), y=np.zeros(0, np.int64), edge_index=np.zeros((2, 0), np.int64))),
    Case("y-length", "one label fewer than nodes", TRAIN + G,
         "DIR/g.npz: y.shape must be (120,) (one label per node), not (119,)", "y.shape", f"({N - 1},)", graph_with(y=np.zeros(N - 1, np.int64))),
    Case("y-float", "float labels", TRAIN + G,
         "DIR/g.npz: y.dtype must be an integer dtype, not float64", "y.dtype", "float64", graph_with(y=np.zeros(N))),
    Case("y-negative", "a negative label", TRAIN + G,
         "DIR/g.npz: y must hold labels >= 0, not -1", "y must hold labels >= 0", "-1", graph_with(y=np.r_[-1, np.zeros(N - 1, np.int64)])),
    Case("y-out-of-range", "a label beyond the node count", TRAIN + G,
         "DIR/g.npz: y must hold labels in 0..119 (at most one class per node), not 1000000", "y must hold labels", "1000000", graph_with(y=np.r_[1_000_000, np.zeros(N - 1, np.int64)])),
    Case("edge-index-shape", "edge_index of 3 rows", TRAIN + G,
         "DIR/g.npz: edge_index.shape must be (2, E), not (3, 4)", "edge_index.shape", "(3, 4)", graph_with(edge_index=np.zeros((3, 4), np.int64))),
    Case("edge-index-float", "float node ids", TRAIN + G,
         "DIR/g.npz: edge_index.dtype must be an integer dtype, not float64", "edge_index.dtype", "float64", graph_with(edge_index=np.zeros((2, 4)))),
    Case("edge-index-negative", "a negative node id", TRAIN + G,
         "DIR/g.npz: edge_index must hold node ids in 0..119, not -5", "edge_index", "-5", graph_with(edge_index=np.array([[0, -5], [1, 2]]))),
    Case("edge-index-out-of-range", "a node id past the last node", TRAIN + G,
         "DIR/g.npz: edge_index must hold node ids in 0..119, not 120", "edge_index", str(N), graph_with(edge_index=np.array([[0, N], [1, 2]]))),
    Case("mask-empty", "train_mask selects no node", TRAIN + G,
         "DIR/g.npz: train_mask must select at least one node, not 0 of 120", "train_mask", "0 of 120", graph_with(**{**masks(), "train_mask": np.zeros(N, bool)})),
    Case("masks-overlap", "val_mask and test_mask share nodes", TRAIN + G,
         "DIR/g.npz: test_mask and val_mask must be disjoint, not sharing 20 nodes (first: node 60)", "test_mask and val_mask", "20 nodes",
         graph_with(**{**masks(), "test_mask": np.r_[np.zeros(60, bool), np.ones(N - 60, bool)]})),
    Case("mask-length", "train_mask one entry short", TRAIN + G,
         "DIR/g.npz: train_mask.shape must be (120,), not (119,)", "train_mask.shape", f"({N - 1},)", graph_with(**{**masks(), "train_mask": np.ones(N - 1, bool)})),
    Case("mask-dtype", "integer train_mask", TRAIN + G,
         "DIR/g.npz: train_mask.dtype must be bool, not int64", "train_mask.dtype", "int64", graph_with(**{**masks(), "train_mask": np.ones(N, np.int64)})),
    Case("masks-absent-public", "no masks, with --split public", TRAIN + G + ("--split", "public"),
         "split 'public': dataset 'g' ships no train_mask, val_mask, test_mask; use --split random", "split 'public'", "train_mask, val_mask, test_mask", graph_with()),
    Case("graph-too-small", "30 nodes: the random split leaves no validation nodes", TRAIN + G,
         "split 'random' of dataset 'g' leaves val_mask empty: 30 nodes are too few for 20 training nodes per class plus validation and test nodes", "val_mask", "30 nodes",
         {"g.npz": lambda p, s: np.savez(p, **base_arrays(30))}),
    Case("dataset-missing", "a graph file that does not exist", TRAIN + ("--dataset", "DIR/none.npz"),
         "dataset file 'DIR/none.npz' does not exist", "dataset file", "DIR/none.npz"),
    Case("data-root-empty", "a data root that does not hold the dataset",
         ("estimate", "--workload", "aggregate", "--dataset", "Cora", "--data-root", "DIR/root"),
         "dataset 'Cora': file 'DIR/root/Cora/raw/ind.cora.graph' not found (data root 'DIR/root')", "data root", "DIR/root", {"root": directory}),
    # ---------------------------------------------------------------- graph files (.pt)
    Case("pt-not-graph", "a .pt holding a lone tensor", TRAIN + ("--dataset", "DIR/g.pt"),
         "dataset file 'DIR/g.pt' must hold a PyG Data or a dict with x, y and edge_index tensors, not Tensor", "dataset file", "Tensor", {"g.pt": torch_file("tensor")}),
    Case("pt-truncated", "a .pt graph cut to half its size", TRAIN + ("--dataset", "DIR/g.pt"),
         "dataset file 'DIR/g.pt' is truncated or corrupt, not a readable torch file (OSError: [Errno 22] Invalid argument)", "dataset file", "truncated", {"g.pt": torch_file("graph-truncated")}),
    Case("pt-garbage", "a .pt of random bytes", TRAIN + ("--dataset", "DIR/g.pt"),
         "dataset file 'DIR/g.pt' is truncated or corrupt, not a readable torch file (Unsupported operand 255)", "dataset file", "corrupt", {"g.pt": raw(bytes(np.random.default_rng(1).integers(0, 256, 4096, np.uint8)))}),
    Case("pt-malicious", "a .pt whose unpickling would run a shell command", TRAIN + ("--dataset", "DIR/g.pt"),
         "dataset file 'DIR/g.pt' is refused: it holds Python objects other than tensors and plain containers (posix.system); it is data and is never executed", "dataset file", "posix.system", {"g.pt": torch_file("malicious")}),
    # ---------------------------------------------------------------- graph files in the numpy-only commands
    Case("estimate-npz-truncated", "graph .npz cut to half its size", ("estimate", "--workload", "aggregate", "--dataset", "DIR/g.npz"),
         "--dataset 'DIR/g.npz' is truncated or corrupt, not a readable .npz archive (BadZipFile: File is not a zip file)", "--dataset", "truncated", {"g.npz": damaged("graph", "truncate")}),
    Case("sweep-npz-not-npz", "a text file named .npz",
         ("sweep", "--workload", "aggregate", "--dataset", "DIR/g.npz", "--no-dask", "--csv", "DIR/s.csv", "--cache-dir", "DIR/cache"),
         "--dataset 'DIR/g.npz' is not an .npz archive (it starts with b'not ', not the zip signature b'PK\\x03\\x04')", "--dataset", "zip signature", {"g.npz": text("not an archive")}),
    Case("simulate-graph-nan", "a NaN feature in the graph given to simulate", SIM,
         "DIR/g.npz: x must be finite, not nan at index (0, 0)", "x must be finite", "nan",
         {"m.qim": copy("model"), "g.npz": npz(x=np.full((N, F), np.nan, np.float32))}),
    # ---------------------------------------------------------------- model files
    Case("model-truncated", "model file cut to half its size", SIM,
         "model file 'DIR/m.qim' is corrupt or truncated: checksum mismatch", "model file", "checksum", {**SHARED_GRAPH, "m.qim": damaged("model", "truncate")}),
    Case("model-flipped-byte", "model file with one byte flipped", SIM,
         "model file 'DIR/m.qim' is corrupt or truncated: checksum mismatch", "model file", "checksum", {**SHARED_GRAPH, "m.qim": damaged("model", "flip")}),
    Case("model-format-version", "model file of format version 99", SIM,
         "format_version must be 1, not 99 (DIR/m.qim)", "format_version", "99", {**SHARED_GRAPH, "m.qim": model_header(format_version=99)}),
    Case("model-contract-version", "model file of another numerics contract", SIM,
         "contract_version must be 1 (this Quagga's numerics contract), not 7; re-export the model (DIR/m.qim)", "contract_version", "7", {**SHARED_GRAPH, "m.qim": model_header(contract_version=7)}),
    Case("model-other-graph", "a model given a graph with other edges", SIM,
         "graph hash must be 496458f7d45e5529... (the graph the model was exported for), not 6d246654054ea36d...: the dataset differs", "graph hash", "the dataset differs",
         {"m.qim": copy("model"), "g.npz": npz(edge_index=base_arrays(seed=1)["edge_index"])}),
    Case("model-other-node-count", "a model given a graph of other size", SIM,
         "num_nodes must be 120 (the model's graph), not 150", "num_nodes", "150", {"m.qim": copy("model"), "g.npz": lambda p, s: np.savez(p, **base_arrays(150))}),
    Case("model-missing", "a model file that does not exist", SIM,
         "model file 'DIR/m.qim' does not exist", "model file", "DIR/m.qim", SHARED_GRAPH),
    Case("model-not-a-model", "a text file given as model", SIM,
         "model file 'DIR/m.qim' is not a Quagga model file (bad magic or too short: 5 bytes)", "model file", "bad magic", {**SHARED_GRAPH, "m.qim": text("hello")}),
    Case("golden-model-truncated", "truncated model for golden vectors",
         ("golden", "--from-model", "DIR/m.qim", "--dataset", "DIR/g.npz", "--out", "DIR/golden"),
         "model file 'DIR/m.qim' is corrupt or truncated: checksum mismatch", "model file", "checksum", {**SHARED_GRAPH, "m.qim": damaged("model", "truncate")}),
    Case("rtl-verify-model-flipped", "model with a flipped byte for RTL verification",
         ("rtl", "verify", "--model", "DIR/m.qim", "--dataset", "DIR/g.npz", "--json", "DIR/v.json",
          "--build-dir", "DIR/build"),
         "model file 'DIR/m.qim' is corrupt or truncated: checksum mismatch", "model file", "checksum", {**SHARED_GRAPH, "m.qim": damaged("model", "flip")}),
    # ---------------------------------------------------------------- design files
    Case("design-empty", "an empty design file", EST + DESIGN,
         "design file 'DIR/d.toml' is empty: a design file must set at least one key (e.g. bits = 4)", "design file", "empty", {"d.toml": text("")}),
    Case("design-not-toml", "a design file that is not TOML", EST + DESIGN,
         "design file 'DIR/d.toml' is not valid TOML: Expected '=' after a key in a key/value pair (at line 1, column 5)", "design file", "not valid TOML", {"d.toml": text("bits: 4\n")}),
    Case("design-unknown-key", "a design key that does not exist", EST + DESIGN,
         "design point key 'lanes' is unknown; known keys: " + DESIGN_KEYS, "design point key", "'lanes'", {"d.toml": text("bits = 4\nlanes = 16\n")}),
    Case("design-wrong-type", "bits given as a string", EST + DESIGN,
         "bits must be an int, not 'four'", "bits", "'four'", {"d.toml": text('bits = "four"\n')}),
    Case("design-bits-unsupported", "bits = 3", EST + DESIGN,
         "bits must be one of (1, 2, 4, 8), not 3", "bits", "3", {"d.toml": text("bits = 3\nword_bits = 60\n")}),
    Case("design-impossible", "word_bits not a multiple of bits", EST + DESIGN,
         "word_bits must be a multiple of bits=4 so lanes divide the word, not 30", "word_bits", "30", {"d.toml": text("bits = 4\nword_bits = 30\n")}),
    Case("design-narrow-accumulator", "an accumulator too narrow for the design", EST + DESIGN,
         "acc_bits must be >= 23 (bits=4 + weight_bits=8 + ceil(log2(max_degree=1024)) + 1), not 8", "acc_bits", "8", {"d.toml": text("bits = 4\nacc_bits = 8\n")}),
    Case("design-missing", "a design file that does not exist", EST + DESIGN,
         "design file 'DIR/d.toml' does not exist", "design file", "DIR/d.toml"),
    Case("design-set-unknown", "--set of an unknown key", ("golden", "--set", "lanez=4", "--out", "DIR/golden"),
         "design point key 'lanez' is unknown; known keys: " + DESIGN_KEYS, "design point key", "'lanez'"),
    Case("rtl-export-bad-design", "an impossible design for the Verilog export",
         ("rtl", "export", "--set", "bits=2", "--set", "word_bits=7", "-o", "DIR/unit.v"),
         "word_bits must be a multiple of bits=2 so lanes divide the word, not 7", "word_bits", "7"),
    Case("sweep-vary-unknown", "a sweep over an unknown key",
         ("sweep", "--workload", "aggregate", "--dataset", "synthetic:uniform:50:200", "--vary", "word_bitz=32,64", "--no-dask",
          "--csv", "DIR/s.csv", "--cache-dir", "DIR/cache"),
         "sweep key 'word_bitz' is not a design field; known: " + SWEEP_KEYS, "sweep key", "'word_bitz'"),
    Case("sweep-grid-not-toml", "a sweep grid that is not TOML",
         ("sweep", "--workload", "aggregate", "--dataset", "synthetic:uniform:50:200", "--grid", "DIR/grid.toml", "--no-dask",
          "--csv", "DIR/s.csv", "--cache-dir", "DIR/cache"),
         "sweep file 'DIR/grid.toml' is not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 6)", "grid", "DIR/grid.toml", {"grid.toml": text("[grid\nbits = [2, 4]\n")}),
    # ---------------------------------------------------------------- command-line values
    Case("epochs-zero", "--epochs 0", TRAIN + ("--epochs", "0"), "epochs must be an int >= 1, not 0", "epochs", "0"),
    Case("epochs-negative", "--epochs -3", TRAIN + ("--epochs", "-3"), "epochs must be an int >= 1, not -3", "epochs", "-3"),
    Case("epochs-not-int", "--epochs x", TRAIN + ("--epochs", "x"), "argument --epochs: invalid int value: 'x' (see quagga train --help)", "--epochs", "'x'"),
    Case("train-bits-16", "an unsupported width", TRAIN + ("--bits", "16"), "bits must be 1..8, 32 or fp32, not '16'", "bits", "'16'"),
    Case("train-hidden-zero", "--hidden 0", TRAIN + ("--hidden", "0"), "hidden must be an int >= 1, not 0", "hidden", "0"),
    Case("train-seeds-empty", "--seeds ''", TRAIN + ("--seeds", ","), "--seeds must name at least one seed, not ','", "--seeds", "','"),
    Case("golden-cases-negative", "--cases -1", ("golden", "--cases", "-1", "--out", "DIR/golden"),
         "--cases must be >= 0, not -1", "--cases", "-1"),
    Case("bench-bits-3", "an unsupported width", ("bench", "--quick", "--bits", "3"), "--bits must list widths from 1, 2, 4, 8, not '3'", "--bits", "'3'"),
    Case("bench-repeats-zero", "--repeats 0", ("bench", "--quick", "--repeats", "0"), "--repeats must be >= 1, not 0", "--repeats", "0"),
    Case("estimate-precision", "an unknown precision", EST + ("--precisions", "int3"), "--precisions entry must be one of ['fp32', 'int1', 'int2', 'int4', 'int8'], not 'int3'", "--precisions", "'int3'"),
    Case("estimate-synthetic-zero", "a synthetic graph of 0 nodes",
         ("estimate", "--workload", "aggregate", "--dataset", "synthetic:uniform:0:10"), "num_nodes must be an int >= 1, not 0", "num_nodes", "0"),
    Case("data-export-not-npz", "an export file that is not .npz", ("data", "export", "--out", "DIR/g.txt"),
         "--out must end in .npz, not 'g.txt'", "--out", "'g.txt'"),
    Case("data-no-action", "data without an action", ("data",),
         "ACTION is required: quagga data export --out FILE.npz", "ACTION", "export"),
    Case("run-layers-zero", "--layers 0", ("run", "--layers", "0", "--out", "DIR/run"), "--layers must be >= 1, not 0", "--layers", "0"),
    Case("run-precision", "an unknown precision", ("run", "--precisions", "int3", "--out", "DIR/run"),
         "--precisions entry must be one of ['fp32', 'int2', 'int4', 'int8'], not 'int3'", "--precisions", "'int3'"),
    Case("run-bad-graph", "a graph with an out-of-range node id",
         ("run", "--dataset", "DIR/g.npz", "--out", "DIR/run"), "DIR/g.npz: edge_index must hold node ids in 0..119, not 120", "edge_index", str(N),
         graph_with(edge_index=np.array([[0, N], [1, 2]]))),
    Case("sweep-workers-zero", "--workers 0",
         ("sweep", "--workload", "aggregate", "--dataset", "synthetic:uniform:50:200", "--workers", "0", "--csv", "DIR/s.csv",
          "--cache-dir", "DIR/cache"), "--workers must be >= 1, not 0", "--workers", "0"),
    Case("rtl-bubbles", "a stall probability of 1.5",
         ("rtl", "verify", "--bubbles", "1.5", "--json", "DIR/v.json"), "--bubbles must be a probability in [0, 1), not 1.5", "--bubbles", "1.5"),
    Case("report-missing", "a run directory that does not exist", ("report", "DIR/nope"), "RUN_DIR must be an existing directory, not 'DIR/nope'", "RUN_DIR", "DIR/nope"),
    Case("report-not-run", "a directory that holds no run", ("report", "DIR"), "RUN_DIR 'DIR' holds no run.json and no train/: not a run directory", "RUN_DIR", "DIR"),
    Case("report-corrupt-run-json", "a run directory whose run.json is not JSON", ("report", "DIR/run"),
         "run file 'DIR/run/run.json' is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)", "run file", "DIR/run/run.json", {"run": directory, "run/run.json": text("{oops")}),
    Case("resume-corrupt-run-json", "--resume on a run directory whose run.json is not JSON",
         ("run", "--resume", "--skip", "train,simulate,rtl,depth,sweep,bench", "--no-progress", "--out", "DIR/run"),
         "run file 'DIR/run/run.json' is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)", "run file", "DIR/run/run.json", {"run": directory, "run/run.json": text("{oops")}),
    Case("resume-other-options", "--resume with other options than the run directory's",
         ("run", "--resume", "--epochs", "7", "--skip", "train,simulate,rtl,depth,sweep,bench", "--no-progress",
          "--out", "DIR/run"),
         "--resume: 'DIR/run' was run with epochs=100, not 7; use another --out or the same options", "epochs", "7", {"run": directory, "run/run.json": run_json(epochs=100)}),
    Case("rtl-golden-missing", "a golden-vector directory that does not exist",
         ("rtl", "verify", "--golden", "DIR/golden", "--json", "DIR/v.json"), "golden case 'DIR/golden/index.json': file does not exist (not a golden-vector directory)", "golden case", "DIR/golden"),
    # ---------------------------------------------------------------- where outputs go
    Case("out-under-file", "an output directory below a regular file",
         TRAIN[:-1] + ("DIR/afile/out",), "'DIR/afile': Not a directory [ENOTDIR]", "DIR/afile", "Not a directory", {"afile": text("x")}),
    Case("json-under-file", "a --json path below a regular file",
         ("estimate", "--workload", "aggregate", "--dataset", "synthetic:uniform:50:200", "--json", "DIR/afile/e.json"),
         "'DIR/afile': Not a directory [ENOTDIR]", "DIR/afile", "Not a directory", {"afile": text("x")}),
    Case("simulate-out-is-file", "--out naming an existing file", SIM[:-1] + ("DIR/afile",),
         "'DIR/afile': File exists and is not a directory [EEXIST]", "DIR/afile", "exists", {**SHARED, "afile": text("x")}),
    Case("disk-full", "a full disk (file size limit of 4 KiB: writes fail with EFBIG)",
         ("estimate", "--workload", "aggregate", "--dataset", "synthetic:uniform:50:200", "--json", "DIR/e.json"),
         "'DIR/e.json': File too large [EFBIG]", "DIR/e.json", "File too large", process=True, fsize_limit=4096),
)


def render() -> str:
    """``docs/errors.md``: one row per catalogue entry."""
    lines = ["# Bad inputs and their errors", "",
             "Every input below is refused by the command shown: exit status 2, one line on stderr",
             "(`quagga COMMAND: error: MESSAGE`) naming the field and the value, no traceback, and no",
             "output file left behind.  `DIR` stands for the directory holding the input.  The table is",
             "generated from `tests/cli/bad_inputs.py` (`python tests/cli/bad_inputs.py > docs/errors.md`),",
             "the same table the tests in `tests/cli/test_bad_inputs.py` are generated from.", "",
             "Ctrl-C (SIGINT) in any command prints `quagga COMMAND: interrupted` and exits 130, leaving",
             "no partial file (every output is written to a temporary file and renamed into place).",
             "A killed `quagga sweep` rerun with the same arguments computes only the points missing from",
             "its cache; a killed `quagga run` rerun with `--resume` keeps the stages it finished (same",
             "options required, else exit 2).  Either gives the outputs of an uninterrupted run, timings",
             "aside (`tests/cli/test_interrupt.py`, `tests/cli/test_kill_resume.py`).", "",
             f"{len(CATALOGUE)} entries.", "",
             "| # | input | command | message |", "| --- | --- | --- | --- |"]
    for i, c in enumerate(CATALOGUE, 1):
        cmd = "quagga " + " ".join(a if a else "''" for a in c.argv)
        msg = c.message.replace("|", "\\|")
        lines.append(f"| {i} | {c.input} | `{cmd}` | `quagga {c.command}: error: {msg}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
