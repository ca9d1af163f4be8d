"""Dependencies point one way (DESIGN.md): quant's numpy modules import no torch, sim imports
neither torch nor amaranth, rtl imports no torch.  Checked in a fresh interpreter per package."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: modules allowed to import torch inside quant (the fake-quant side)
QUANT_TORCH = {"quant.torch_ops", "quant.quantizers"}
#: sim modules that are benchmarks comparing against torch (torch imported lazily inside functions)
SIM_BENCH = {"sim.bench_aggregation"}


def _modules(pkg: str) -> list[str]:
    return sorted(f"{pkg}.{m.name}" for m in pkgutil.iter_modules([str(REPO / pkg)]))


@pytest.mark.parametrize("pkg,forbidden,allowed", [
    ("quant", ("torch", "amaranth", "numba"), QUANT_TORCH),
    ("sim", ("torch", "torch_geometric", "amaranth"), set()),
    ("rtl", ("torch", "torch_geometric"), {"rtl.bench"}),
])
def test_package_does_not_import_upstream_frameworks(pkg, forbidden, allowed):
    mods = [m for m in _modules(pkg) if m not in allowed]
    code = ("import importlib, sys\n"
            f"for m in {mods!r}:\n"
            "    importlib.import_module(m)\n"
            f"bad = sorted(f for f in {forbidden!r} if f in sys.modules)\n"
            "print(bad)\n"
            "sys.exit(1 if bad else 0)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, f"{pkg} imports {r.stdout.strip()} {r.stderr[-500:]}"
