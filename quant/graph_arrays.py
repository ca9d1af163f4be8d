"""Node-classification graph arrays from user files: safe reading and validation (numpy only).

A graph file is data, never code: ``.npz`` archives are read with ``allow_pickle=False``, so an
object array is refused instead of unpickled.  :func:`validate_graph` checks shapes, dtypes,
index ranges, finiteness, label range and the train/val/test masks; every error names the
field and the offending value.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from quant.errors import QuantError

#: The first bytes of every zip archive, hence of every ``.npz``.
ZIP_SIGNATURE = b"PK\x03\x04"

#: The optional split masks a graph file may carry.
MASK_NAMES = ("train_mask", "val_mask", "test_mask")


class GraphFileError(QuantError):
    """A graph file that cannot be read or is not a valid graph; the message names field and value."""


def read_npz(path: str | Path, field: str = "dataset file") -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` archive, refusing pickled objects.

    Parameters
    ----------
    path : str or Path
        The archive.
    field : str
        How the error messages name the file (e.g. ``"--dataset"``).

    Returns
    -------
    dict
        Array name -> numpy array.

    Raises
    ------
    GraphFileError
        Missing, empty, truncated or corrupt archives, and archives holding object arrays.
    """
    p = Path(path)
    if not p.exists():
        raise GraphFileError(f"{field} {str(p)!r} does not exist")
    if not p.is_file():
        raise GraphFileError(f"{field} {str(p)!r} is not a file")
    if p.stat().st_size == 0:
        raise GraphFileError(f"{field} {str(p)!r} is empty (0 bytes), not an .npz archive")
    with p.open("rb") as fh:
        signature = fh.read(4)
    if signature != ZIP_SIGNATURE:
        raise GraphFileError(f"{field} {str(p)!r} is not an .npz archive (it starts with {signature!r}, "
                             f"not the zip signature {ZIP_SIGNATURE!r})")
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except GraphFileError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise GraphFileError(f"{field} {str(p)!r} holds pickled Python objects, which are refused "
                                 f"(graph files must hold plain numeric arrays)") from None
        raise GraphFileError(f"{field} {str(p)!r} is not a readable .npz archive: {exc}") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, zlib.error) as exc:
        raise GraphFileError(f"{field} {str(p)!r} is truncated or corrupt, not a readable .npz archive "
                             f"({type(exc).__name__}: {exc})") from None


def validate_graph(x, y, edge_index, masks: dict | None = None, source: str = "graph") -> None:
    """Check a graph's arrays; raise :class:`GraphFileError` naming the field and the value.

    Parameters
    ----------
    x : array_like, (N, F) numeric, finite, N > 0 and F > 0
    y : array_like or None, (N,) integer labels in ``0..N-1`` (a graph cannot have more classes
        than nodes); None skips the label checks (graphs used for inference only)
    edge_index : array_like, (2, E) integer node ids in ``0..N-1``
    masks : dict, optional
        ``train_mask`` / ``val_mask`` / ``test_mask`` -> (N,) bool; each present mask must select
        at least one node, and the masks must be pairwise disjoint.
    source : str
        Prefix of the messages (the file name).
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise GraphFileError(f"{source}: x.shape must be (N, F) with N, F > 0, not {x.shape}")
    if x.dtype.kind not in "fiub":
        raise GraphFileError(f"{source}: x.dtype must be a numeric dtype, not {x.dtype}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise GraphFileError(f"{source}: x must be finite, not {float(x[idx])!r} at index {idx}")
    n = x.shape[0]
    if y is not None:
        _check_labels(np.asarray(y), n, source)
    _check_edges(np.asarray(edge_index), n, source)
    _check_masks(masks or {}, n, source)


def _check_labels(y: np.ndarray, n: int, source: str) -> None:
    if y.ndim != 1 or y.shape[0] != n:
        raise GraphFileError(f"{source}: y.shape must be ({n},) (one label per node), not {y.shape}")
    if y.dtype.kind not in "iu":
        raise GraphFileError(f"{source}: y.dtype must be an integer dtype, not {y.dtype}")
    if y.min() < 0:
        raise GraphFileError(f"{source}: y must hold labels >= 0, not {int(y.min())}")
    if y.max() >= n:
        raise GraphFileError(f"{source}: y must hold labels in 0..{n - 1} (at most one class per node), "
                             f"not {int(y.max())}")


def _check_edges(ei: np.ndarray, n: int, source: str) -> None:
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise GraphFileError(f"{source}: edge_index.shape must be (2, E), not {ei.shape}")
    if ei.dtype.kind not in "iu":
        raise GraphFileError(f"{source}: edge_index.dtype must be an integer dtype, not {ei.dtype}")
    if ei.size and (ei.min() < 0 or ei.max() >= n):
        bad = int(ei[(ei < 0) | (ei >= n)][0])
        raise GraphFileError(f"{source}: edge_index must hold node ids in 0..{n - 1}, not {bad}")


def _check_masks(masks: dict, n: int, source: str) -> None:
    checked = {}
    for name, m in masks.items():
        m = np.asarray(m)
        if m.shape != (n,):
            raise GraphFileError(f"{source}: {name}.shape must be ({n},), not {m.shape}")
        if m.dtype != np.bool_:
            raise GraphFileError(f"{source}: {name}.dtype must be bool, not {m.dtype}")
        if not m.any():
            raise GraphFileError(f"{source}: {name} must select at least one node, not 0 of {n}")
        checked[name] = m
    names = sorted(checked)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = checked[a] & checked[b]
            if both.any():
                raise GraphFileError(f"{source}: {a} and {b} must be disjoint, not sharing "
                                     f"{int(both.sum())} nodes (first: node {int(np.argmax(both))})")
