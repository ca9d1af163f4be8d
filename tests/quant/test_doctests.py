"""Run the doctests of every quant module (the examples in docstrings are executable)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import quant

MODULES = sorted(m.name for m in pkgutil.iter_modules(quant.__path__, "quant."))


def test_every_quant_module_is_listed():
    assert {"quant.reference", "quant.spec", "quant.pack", "quant.aggregate", "quant.torch_ops",
            "quant.quantizers", "quant.truncation"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0, f"{res.failed} doctest failure(s) in {name}"


def test_numpy_reference_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, quant.reference, quant.spec, quant.pack, quant.aggregate, "
            "quant.truncation, quant.model_ir; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
