"""Dependencies point one way (docs/architecture.md).

Two checks: a static scan of every ``import`` in the library (function-level imports
included) against the allowed first-party dependencies of each package and ``sim``
subpackage, and, in a fresh interpreter per package, that importing every module loads no
forbidden framework (nothing under ``sim`` loads torch or amaranth).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("quant", "sim", "training", "rtl", "quagga")
SIM_SUBPACKAGES = ("graphs", "design", "exact", "packed", "verify", "accel")

#: unit -> first-party units it may import (besides itself); ``quagga`` sits above all.
ALLOWED = {
    "quant": set(),
    "sim": set(),
    "sim.graphs": {"quant"},
    "sim.design": {"quant"},
    "sim.exact": {"quant", "sim.graphs", "sim.design"},
    "sim.packed": {"quant", "sim.graphs", "sim.exact"},
    "sim.verify": {"quant", "sim.graphs", "sim.design", "sim.exact"},
    "sim.accel": {"quant", "sim.graphs", "sim.design"},
    "training": {"quant"},
    "rtl": {"quant", "sim.graphs", "sim.design", "sim.exact", "sim.verify"},
    "quagga": {"quant", "training", "rtl", *(f"sim.{s}" for s in SIM_SUBPACKAGES)},
}
#: modules allowed to import torch inside quant (the fake-quant side)
QUANT_TORCH = {"quant.torch_ops", "quant.quantizers"}
#: the module allowed to import numba inside quant: the fake quantizers' CPU passes
QUANT_NUMBA = {"quant.fake_quant_kernels"}


def _unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "sim" and len(parts) > 1 else parts[0]


def _imports(path: Path) -> set[str]:
    """First-party modules named by the imports of one file."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sim":  # ``from sim import x``: the subpackage is x
                out.update(f"sim.{a.name}" for a in node.names)
            else:
                out.add(node.module)
    return {m for m in out if m.split(".")[0] in FIRST_PARTY}


def _library_files():
    for pkg in FIRST_PARTY:
        for f in sorted((REPO / pkg).rglob("*.py")):
            parts = f.relative_to(REPO).with_suffix("").parts
            mod = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield mod, f


def test_every_sim_subpackage_is_covered():
    found = {p.name for p in (REPO / "sim").iterdir() if (p / "__init__.py").is_file()}
    assert found == set(SIM_SUBPACKAGES)
    assert not [p.name for p in (REPO / "sim").glob("*.py") if p.name != "__init__.py"], \
        "sim/ holds subpackages only"
    for s in SIM_SUBPACKAGES:
        doc = ast.get_docstring(ast.parse((REPO / "sim" / s / "__init__.py").read_text()))
        assert doc and "Imports" in doc, f"sim/{s}/__init__.py must say what it holds and imports"


@pytest.mark.parametrize("mod,path", list(_library_files()), ids=lambda v: str(v))
def test_imports_point_one_way(mod, path):
    unit = _unit(mod)
    bad = sorted(m for m in _imports(path) if _unit(m) != unit and _unit(m) not in ALLOWED[unit])
    assert not bad, f"{mod} ({unit}) may not import {bad}"


def _modules(pkg: str) -> list[str]:
    return [mod for mod, _ in _library_files() if mod.split(".")[0] == pkg]


@pytest.mark.parametrize("pkg,forbidden,allowed", [
    ("quant", ("torch", "amaranth", "numba"), QUANT_TORCH | QUANT_NUMBA),
    ("quant", ("torch", "amaranth"), QUANT_TORCH),
    ("sim", ("torch", "torch_geometric", "amaranth"), set()),
    ("rtl", ("torch", "torch_geometric"), {"rtl.bench"}),
])
def test_package_does_not_import_upstream_frameworks(pkg, forbidden, allowed):
    mods = [m for m in _modules(pkg) if m not in allowed]
    if pkg == "sim":
        assert {m.split(".")[1] for m in mods if m != "sim"} >= set(SIM_SUBPACKAGES)
    code = ("import importlib, sys\n"
            f"for m in {mods!r}:\n"
            "    importlib.import_module(m)\n"
            f"bad = sorted(f for f in {forbidden!r} if f in sys.modules)\n"
            "print(bad)\n"
            "sys.exit(1 if bad else 0)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, f"{pkg} imports {r.stdout.strip()} {r.stderr[-500:]}"
