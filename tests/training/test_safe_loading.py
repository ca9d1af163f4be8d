"""Graph and checkpoint files are data: loading them never runs code from the file."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from training.data import DatasetError, load_file


class Payload:
    """Unpickling this object with full pickle would create ``target``."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def _graph() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    return {"x": torch.from_numpy(rng.standard_normal((6, 3)).astype(np.float32)),
            "y": torch.tensor([0, 1, 0, 1, 0, 1]), "edge_index": torch.tensor([[0, 1, 2], [1, 2, 3]])}


def test_payload_would_run_under_full_pickle(tmp_path):
    """The payload is real: full unpickling creates the file (so the refusals below mean something)."""
    sentinel = tmp_path / "ran"
    torch.save(Payload(str(sentinel)), tmp_path / "p.pt")
    torch.load(tmp_path / "p.pt", weights_only=False)
    assert sentinel.exists()


def test_malicious_graph_file_is_refused_without_running(tmp_path):
    sentinel = tmp_path / "ran"
    torch.save(Payload(str(sentinel)), tmp_path / "g.pt")
    with pytest.raises(DatasetError, match=r"refused.*posix\.system.*never executed"):
        load_file(tmp_path / "g.pt")
    assert not sentinel.exists()


def test_malicious_object_inside_a_graph_dict_is_refused(tmp_path):
    sentinel = tmp_path / "ran"
    torch.save({**_graph(), "extra": Payload(str(sentinel))}, tmp_path / "g.pt")
    with pytest.raises(DatasetError, match="refused"):
        load_file(tmp_path / "g.pt")
    assert not sentinel.exists()


def test_malicious_checkpoint_is_refused_without_running(tmp_path):
    sentinel = tmp_path / "ran"
    torch.save({"model_config": {}, "train_config": {}, "dataset": "synthetic", "seed": 0,
                "state_dict": {"w": Payload(str(sentinel))}}, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"checkpoint .* refused.*posix\.system"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert not sentinel.exists()


def test_stage_gap_refuses_a_malicious_checkpoint(tmp_path, capsys):
    from training.stage_gap import main

    sentinel = tmp_path / "ran"
    torch.save(Payload(str(sentinel)), tmp_path / "checkpoint.pt")
    assert main([str(tmp_path)]) == 2
    assert "refused" in capsys.readouterr().err
    assert not sentinel.exists()


def test_graph_dict_and_pyg_data_files_load(tmp_path):
    from torch_geometric.data import Data

    torch.save(_graph(), tmp_path / "dict.pt")
    torch.save(Data(**_graph()), tmp_path / "data.pt")
    for name in ("dict.pt", "data.pt"):
        g = load_file(tmp_path / name)
        assert g.num_nodes == 6 and g.num_edges == 3 and torch.equal(g.y, _graph()["y"])


def test_checkpoint_roundtrip_and_missing_field(tmp_path):
    ck = {"model_config": {"model": "smp"}, "train_config": {"epochs": 1}, "dataset": "synthetic",
          "seed": 3, "state_dict": {"w": torch.ones(2)}}
    save_checkpoint(tmp_path / "c.pt", ck)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["seed"] == 3 and torch.equal(back["state_dict"]["w"], torch.ones(2))
    torch.save({k: v for k, v in ck.items() if k != "seed"}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="seed must be of type int, not NoneType"):
        load_checkpoint(tmp_path / "bad.pt")
