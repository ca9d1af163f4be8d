"""Torch files read as data: ``torch.load(weights_only=True)``, nothing in the file executed.

A torch file is a pickle.  Read with full pickle, it can run any code its author chose (an
object's ``__reduce__``); read here, it may hold only tensors, plain containers (dict, list,
tuple, str, numbers) and classes named by the caller (PyG's ``Data``), and any other Python
object makes the file refused, unread.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from quant.errors import QuantError


class TensorFileError(QuantError):
    """A torch file that cannot be read as data; the message names the file and why."""


def pyg_data_globals() -> list:
    """The PyG classes a saved ``Data`` object is made of (plain containers of tensors)."""
    from torch_geometric.data import Data
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage

    return [Data, DataEdgeAttr, DataTensorAttr, GlobalStorage]


def read_tensor_file(path: str | Path, field: str, extra_globals: list | None = None):
    """Load a torch file that may hold only tensors, plain containers and ``extra_globals``.

    Parameters
    ----------
    path : str or Path
    field : str
        How messages name the file (e.g. ``"checkpoint"``).
    extra_globals : list of classes, optional
        Classes allowed besides tensors and plain containers.

    Raises
    ------
    TensorFileError
        Missing, empty, truncated or corrupt files, and files holding other Python objects.
    """
    p = Path(path)
    if not p.exists():
        raise TensorFileError(f"{field} {str(p)!r} does not exist")
    if not p.is_file() or p.stat().st_size == 0:
        raise TensorFileError(f"{field} {str(p)!r} is empty or not a file")
    try:
        with torch.serialization.safe_globals(extra_globals or []):
            return torch.load(p, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        m = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if m:
            raise TensorFileError(f"{field} {str(p)!r} is refused: it holds Python objects other than tensors "
                                  f"and plain containers ({m.group(1)}); it is data and is never executed") from None
        detail = re.search(r"WeightsUnpickler error: \s*(.+)", str(exc))
        raise TensorFileError(f"{field} {str(p)!r} is truncated or corrupt, not a readable torch file "
                              f"({detail.group(1).strip() if detail else type(exc).__name__})") from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise TensorFileError(f"{field} {str(p)!r} is truncated or corrupt, not a readable torch file "
                              f"({type(exc).__name__}: {first})") from None
