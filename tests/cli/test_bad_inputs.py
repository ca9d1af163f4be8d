"""Every entry of the bad-input catalogue (``bad_inputs.CATALOGUE``) is refused: exit 2, one
line naming the field and the value, no traceback, no output left behind."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bad_inputs import CATALOGUE, base_arrays, render
from quagga.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> dict[str, str]:
    """A valid graph and a model trained on it (one epoch)."""
    d = tmp_path_factory.mktemp("shared")
    np.savez(d / "graph.npz", **base_arrays())
    rc = main(["train", "--dataset", str(d / "graph.npz"), "--epochs", "1", "--layers", "2", "--hidden", "8",
               "--no-progress", "--out", str(d / "train")])
    assert rc == 0
    return {"graph": str(d / "graph.npz"), "model": str(d / "train" / "model.qim")}


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _run_in_process(argv: list[str], cwd: Path, capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    return rc, capsys.readouterr().err


def _limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _run_in_child(argv: list[str], cwd: Path, fsize_limit: int | None) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "quagga.cli", *argv], cwd=cwd, env=env, capture_output=True,
                       text=True, preexec_fn=_limit_file_size(fsize_limit) if fsize_limit else None,
                       timeout=300)
    return r.returncode, r.stderr


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_bad_input_is_refused(case, shared, tmp_path, capsys, monkeypatch):
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    for name, make in case.files.items():
        make(case_dir, shared) if name == "." else make(case_dir / name, shared)
    before = _files(case_dir)
    argv = [a.replace("DIR", str(case_dir)) for a in case.argv]
    if case.process:
        rc, err = _run_in_child(argv, case_dir, case.fsize_limit)
    else:
        rc, err = _run_in_process(argv, case_dir, capsys, monkeypatch)
    err = err.replace(str(case_dir), "DIR")
    if os.environ.get("QUAGGA_CATALOGUE_DUMP"):
        with open(os.environ["QUAGGA_CATALOGUE_DUMP"], "a") as f:
            f.write(json.dumps({"id": case.id, "rc": rc, "err": err}) + "\n")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    prefix = f"quagga {case.command}: error: "
    assert lines[0].startswith(prefix), lines[0]
    message = lines[0][len(prefix):]
    assert case.field in message and case.value in message, message
    assert message == case.message
    assert _files(case_dir) == before, "output left behind"


def test_catalogue_is_large_and_covers_every_command():
    from quagga.cli import SUBCOMMANDS

    assert len(CATALOGUE) >= 40
    assert len({c.id for c in CATALOGUE}) == len(CATALOGUE)
    covered = {c.argv[0] for c in CATALOGUE}
    assert covered == set(SUBCOMMANDS)


def test_errors_doc_is_rendered_from_the_catalogue():
    assert (REPO / "docs" / "errors.md").read_text() == render()
