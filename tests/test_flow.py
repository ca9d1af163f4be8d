"""`quagga run` end to end on a tiny configuration, and its failure isolation."""

from __future__ import annotations

import json

from quagga.cli import main


def test_run_small_flow_writes_report(tmp_path):
    out = tmp_path / "run"
    rc = main(["run", "--out", str(out), "--epochs", "3", "--precisions", "fp32,int4", "--rtl-rows", "8",
               "--skip", "bench,depth,sweep", "--no-progress"])
    assert rc == 0
    run = json.loads((out / "run.json").read_text())
    status = {k: v["status"] for k, v in run["stages"].items()}
    assert status == {"data": "ok", "train": "ok", "simulate": "ok", "rtl": "ok", "estimate": "ok",
                      "depth": "skipped", "sweep": "skipped", "bench": "skipped", "report": "ok"}
    sim = json.loads((out / "simulate" / "int4" / "simulate.json").read_text())
    assert sim["bit_exact"] is True and sim["mismatches"] == 0 and sim["trainer_mismatches"] == 0
    rtl = json.loads((out / "rtl" / "verify-int4.json").read_text())
    assert rtl["mismatches"] == 0 and rtl["failed_cases"] == 0
    index = (out / "report" / "index.md").read_text()
    assert "| INT4 |" in index and "accuracy_vs_bits.png" in index


def test_bad_dataset_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--dataset", "NoSuchDataset", "--no-progress"]) == 2
    assert "NoSuchDataset" in capsys.readouterr().err
    assert not out.exists()


def test_failed_stage_is_reported_and_later_stages_skipped(tmp_path, capsys, monkeypatch):
    from quagga.flow import Flow, StageError

    def fail(self):
        raise StageError("train broke")

    monkeypatch.setattr(Flow, "train", fail)
    out = tmp_path / "run"
    rc = main(["run", "--out", str(out), "--skip", "rtl,depth,sweep,bench", "--no-progress"])
    assert rc == 1
    run = json.loads((out / "run.json").read_text())
    st = run["stages"]
    assert st["data"]["status"] == "ok" and (out / "data" / "graph.npz").is_file()
    assert st["train"]["status"] == "failed" and "train broke" in st["train"]["error"]
    assert st["simulate"]["status"] == "skipped" and "needs train" in st["simulate"]["error"]
    assert st["estimate"]["status"] == "skipped" and "needs train" in st["estimate"]["error"]
    assert st["report"]["status"] == "ok"
    assert "failed" in capsys.readouterr().out


def test_resume_keeps_finished_stages_and_refuses_other_options(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--skip", "train,simulate,rtl,depth,sweep,bench", "--no-progress"]
    assert main(argv) == 0
    first = json.loads((out / "run.json").read_text())["stages"]
    capsys.readouterr()
    assert main(argv + ["--resume"]) == 0
    text = capsys.readouterr()
    assert "data: ok (kept from the previous run)" in text.out + text.err
    again = json.loads((out / "run.json").read_text())["stages"]
    assert again["data"]["seconds"] == first["data"]["seconds"]
    assert again["estimate"]["status"] == "skipped"  # it prices the trained models
    assert main(argv + ["--resume", "--epochs", "7"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_bad_options_are_refused(capsys):
    assert main(["run", "--precisions", "int3"]) == 2
    assert "--precisions entry must be one of" in capsys.readouterr().err
    assert main(["run", "--skip", "nothing"]) == 2
