"""The accuracy tables merge seed-split runs and prefer the chosen method's runs."""

import json

import pytest

from training import experiments


def _metrics(seeds, test, val, teacher=None, config=None):
    def stats(v):
        return experiments._per_seed_stats(v)

    return {"seeds": seeds, "bits": 2, "exact_forward": True,
            "model_config": config or {"bits": 2, "alpha_reinit": 25},
            "train_config": {"teacher": teacher},
            "test_acc": {"fake_quant": stats(test), "integer": stats(test)},
            "val_acc": {"fake_quant": stats(val), "integer": stats(val)}, "gap_test_points": 0.0}


def test_merged_run_concatenates_seed_parts_in_seed_order():
    runs = {"cora-int2-seeds34": _metrics([3, 4], [0.70, 0.80], [0.71, 0.81]),
            "cora-int2-seeds012": _metrics([0, 1, 2], [0.60, 0.65, 0.75], [0.61, 0.66, 0.76])}
    m = experiments.merged_run(runs, "cora-int2")
    assert m["seeds"] == [0, 1, 2, 3, 4]
    assert m["test_acc"]["integer"]["per_seed"] == [0.60, 0.65, 0.75, 0.70, 0.80]
    assert m["test_acc"]["integer"]["mean"] == pytest.approx(0.70)
    assert m["gap_test_points"] == 0.0


def test_merged_run_prefers_the_whole_run_and_rejects_inconsistent_parts():
    whole = _metrics([0], [0.5], [0.5])
    assert experiments.merged_run({"a": whole, "a-seeds1": whole}, "a") is whole
    assert experiments.merged_run({}, "a") is None
    with pytest.raises(ValueError, match="repeat a seed"):
        experiments.merged_run({"a-seeds0": whole, "a-seeds0b": whole}, "a")
    other = _metrics([1], [0.5], [0.5], config={"bits": 4})
    with pytest.raises(ValueError, match="model_config"):
        experiments.merged_run({"a-seeds0": whole, "a-seeds1": other}, "a")


def test_method_names_forward_and_teacher():
    assert experiments._method(_metrics([0], [0.5], [0.5], teacher="fp32")) == "exact + FP32 teacher"
    assert experiments._method(_metrics([0], [0.5], [0.5])) == "exact"
    assert experiments._method({"bits": 32}) == "float"


def test_render_prefers_teacher_runs(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for name, m in {"cora-int2": _metrics([0, 1], [0.70, 0.72], [0.7, 0.7]),
                    "cora-int2-kd-init": _metrics([0, 1], [0.76, 0.78], [0.8, 0.8], teacher="fp32")}.items():
        (runs / name).mkdir(parents=True)
        (runs / name / "metrics.json").write_text(json.dumps(m))
    monkeypatch.setattr(experiments, "REPORTS", tmp_path)
    monkeypatch.setattr(experiments, "RUNS", runs)
    experiments.render()
    row = json.loads((tmp_path / "tables.json").read_text())["tables"]["cora"]["rows"][0]
    assert row["run"] == "cora-int2-kd-init" and row["method"] == "exact + FP32 teacher"
    assert "| INT2 | exact + FP32 teacher | 77.00 ± 1.00 |" in (tmp_path / "tables.md").read_text()
    assert "≥ 75.0 (met)" in (tmp_path / "tables.md").read_text()


def test_low_bit_depth_compares_k64_with_k10():
    runs = {}
    for k, acc in ((10, [0.78, 0.80]), (64, [0.77, 0.79])):
        m = _metrics([0, 1], acc, acc, teacher="fp32")
        m.update(layers=k, bt="sbt", model="smp")
        runs[f"depth-cora-smp-int2-btstar-kd-k{k}"] = m
    runs["depth-cora-smp-k64"] = dict(runs["depth-cora-smp-int2-btstar-kd-k64"], bits=4, bt="none")
    text = "\n".join(experiments._low_bit_depth(runs))
    assert "SMP K=64 is 1.00 points below K=10 (integer, 2 seeds" in text
    assert text.count("| smp |") == 2


def test_scale_refuses_a_repeat_count_below_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(experiments, "REPORTS", tmp_path)
    with pytest.raises(SystemExit) as exc:
        experiments.main(["scale", "--dataset", "Cora", "--repeats", "0"])
    assert exc.value.code == 2
    assert "--repeats must be at least 1, not 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="repeats must be an int >= 1, not 0"):
        experiments.scale("Cora", None, 2, ("smp-fp32",), repeats=0)
    assert list(tmp_path.iterdir()) == []
