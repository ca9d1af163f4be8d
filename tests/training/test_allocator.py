"""The training processes' allocator (``training/allocator.py``): the choice, the environment
a child gets, and ``quagga train`` under jemalloc and under the system allocator writing the
same files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from quant.errors import QuantError
from training import allocator

REPO = Path(__file__).resolve().parents[2]
HAVE_JEMALLOC = allocator.jemalloc_path() is not None


def test_choice_defaults_to_auto_and_names_a_bad_value():
    assert allocator.choice({}) == "auto"
    assert allocator.choice({allocator.ENV: " System "}) == "system"
    with pytest.raises(QuantError, match=r"QUAGGA_ALLOCATOR must be one of .*'tcmalloc'"):
        allocator.choice({allocator.ENV: "tcmalloc"})


def test_child_env_of_each_choice(monkeypatch):
    monkeypatch.setattr(allocator, "jemalloc_path", lambda: "/lib/libjemalloc.so.2")
    base = {"PATH": "/bin", "LD_PRELOAD": "/lib/other.so"}
    assert allocator.child_env({**base, allocator.ENV: "system"}) == {**base, allocator.ENV: "system"}
    env = allocator.child_env(base)
    assert env["LD_PRELOAD"] == "/lib/libjemalloc.so.2 /lib/other.so"
    assert env["MALLOC_CONF"] == allocator.JEMALLOC_CONF
    assert allocator.child_env({**base, "MALLOC_CONF": "narenas:1"})["MALLOC_CONF"] == "narenas:1"
    assert base == {"PATH": "/bin", "LD_PRELOAD": "/lib/other.so"}  # not modified
    monkeypatch.setattr(allocator, "jemalloc_path", lambda: None)
    assert allocator.child_env(base) == base  # auto without jemalloc: the system allocator
    with pytest.raises(QuantError, match="libjemalloc.so.2 is not installed"):
        allocator.child_env({**base, allocator.ENV: "jemalloc"})


def _python(code: str, env: dict) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.mark.skipif(not HAVE_JEMALLOC, reason="libjemalloc2 is not installed")
def test_reexec_loads_jemalloc_once():
    code = ("import os; from training import allocator; allocator.reexec_with_jemalloc(); "
            "print(allocator.active(), os.environ.get('QUAGGA_ALLOCATOR_CHILD'))")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF",
                                                            "QUAGGA_ALLOCATOR_CHILD")}
    assert _python(code, {**env, allocator.ENV: "auto"}) == "jemalloc 1"
    assert _python(code, {**env, allocator.ENV: "system"}) == "system None"


def _train(tmp: Path, name: str, env: dict) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "quagga.cli", "-v", "train", "--bits", "4", "--epochs", "2",
            "--seeds", "0", "--synthetic-nodes", "300", "--no-progress", "--out", str(tmp / name)]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)


@pytest.mark.skipif(not HAVE_JEMALLOC, reason="libjemalloc2 is not installed")
def test_quagga_train_writes_the_same_files_under_either_allocator(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF",
                                                            "QUAGGA_ALLOCATOR_CHILD")}
    runs = {}
    for choice in ("auto", "system"):
        p = _train(tmp_path, choice, {**env, allocator.ENV: choice})
        assert p.returncode == 0, p.stderr
        assert f"memory allocator: {'jemalloc' if choice == 'auto' else 'system'}" in p.stderr
        runs[choice] = p
    for f in ("model.qim", "metrics.json"):
        assert (tmp_path / "auto" / f).read_bytes() == (tmp_path / "system" / f).read_bytes(), f


def test_quagga_train_refuses_a_bad_allocator_choice(tmp_path):
    env = {**os.environ, allocator.ENV: "bogus"}
    p = _train(tmp_path, "bad", env)
    assert p.returncode == 2
    assert "QUAGGA_ALLOCATOR must be one of" in p.stderr and "'bogus'" in p.stderr
    assert not (tmp_path / "bad").exists()
