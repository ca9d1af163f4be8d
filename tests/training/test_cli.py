"""``quagga train``: outputs, determinism, user errors."""

from __future__ import annotations

import json

import pytest

from quagga.cli import main

TINY = ["--synthetic-nodes", "80", "--synthetic-features", "8", "--synthetic-classes", "3",
        "--epochs", "3", "--layers", "2", "--hidden", "8", "--no-progress"]


def test_train_twice_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", *TINY, "--seeds", "0,1", "--out", str(a)]) == 0
    assert main(["train", *TINY, "--seeds", "0,1", "--out", str(b)]) == 0
    assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()
    assert (a / "model.qim").read_bytes() == (b / "model.qim").read_bytes()
    m = json.loads((a / "metrics.json").read_text())
    for k in ("dataset", "model", "bits", "bt", "layers", "seeds"):
        assert k in m
    for acc in ("test_acc", "val_acc"):
        for kind in ("fake_quant", "integer"):
            s = m[acc][kind]
            assert set(s) == {"mean", "std", "per_seed"} and len(s["per_seed"]) == 2
            assert all(0.0 <= v <= 1.0 for v in s["per_seed"])
    assert m["model_file"] == "model.qim" and m["integer_equals_numpy_reference"] is True


@pytest.mark.parametrize("model", ["gcn", "emp", "appnp"])
def test_models_and_fp32(tmp_path, model):
    out = tmp_path / model
    bits = "32" if model == "appnp" else "2"
    assert main(["train", *TINY, "--model", model, "--bits", bits, "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    if model in ("emp", "appnp"):
        assert m["test_acc"]["integer"] is None and m["integer_unavailable"]
        assert m["model_file"] is None
    else:
        assert m["test_acc"]["integer"] is not None


def test_bt_modes_run(tmp_path):
    for bt in ("bt", "sbt"):
        assert main(["train", *TINY, "--bits", "2", "--bt", bt, "--out", str(tmp_path / bt)]) == 0


@pytest.mark.parametrize("argv, msg", [
    (["--dataset", "NoSuchGraph"], "dataset must be"),
    (["--dataset", "CiteSeer", "--data-root", "{tmp}"], "data-root"),
    (["--bits", "3.5"], "bits"),
    (["--bits", "4", "--bt", "bt"], "bits must be 2"),
    (["--seeds", "a,b"], "--seeds"),
])
def test_user_errors_exit_2(tmp_path, capsys, argv, msg):
    argv = [a.replace("{tmp}", str(tmp_path / "empty")) for a in argv]
    (tmp_path / "empty").mkdir()
    assert main(["train", *TINY, *argv, "--out", str(tmp_path / "o")]) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "o" / "metrics.json").exists()
