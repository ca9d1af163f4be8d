"""Every repository path and every project module a document names exists.

Scans README.md and docs/*.md for backticked paths (``sim/packed/runner.py``, ``configs/``)
and dotted project names (``sim.packed.runner.PackedRunner``): a path must exist in the
tree; a dotted name must resolve to a module, or to an attribute of one.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TOP = ("quant", "sim", "training", "rtl", "quagga", "tests", "docs", "configs", "reports",
       "scripts")
#: paths that commands create (run directories, build outputs), not part of the tree
GENERATED = ("runs/", "build/", "reports/training/runs/", "RUN/")

_PATH = re.compile(r"`((?:" + "|".join(TOP) + r")/[\w./*-]*)`")
_DOTTED = re.compile(r"`((?:quant|sim|training|rtl|quagga)(?:\.\w+)+)")


def _resolve(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_paths_exist(doc):
    text = doc.read_text()
    missing = []
    for raw in _PATH.findall(text):
        path = raw.split("::")[0].rstrip(".,")
        if any(path.startswith(g) for g in GENERATED) or "*" in path or "<" in path:
            continue
        if not (REPO / path).exists():
            missing.append(path)
    assert not missing, f"{doc.name} names paths that do not exist: {sorted(set(missing))}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_modules_resolve(doc):
    bad = sorted({n for n in _DOTTED.findall(doc.read_text()) if not _resolve(n)})
    assert not bad, f"{doc.name} names modules or attributes that do not exist: {bad}"
