"""The trainer's checkpoint file (``checkpoint.pt``): written atomically, read as data only.

A checkpoint holds the model and training configurations (plain dicts), the dataset name,
the seed and the model's ``state_dict`` (tensors).  It is loaded with
``torch.load(weights_only=True)``: a file that needs any other Python object to unpickle is
refused without running anything.  The integer model that other tools read is ``model.qim``
(:mod:`quant.model_ir`), versioned and checksummed; the checkpoint serves the trainer's own
diagnostics (:mod:`training.stage_gap`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from quant.errors import QuantError
from quant.fileio import write_bytes_atomic
from training.tensor_files import TensorFileError, read_tensor_file

#: The keys every checkpoint holds, with the type of each value.
CHECKPOINT_KEYS: dict[str, type] = {"model_config": dict, "train_config": dict, "dataset": str,
                                    "seed": int, "state_dict": dict}


class CheckpointError(QuantError):
    """A checkpoint that cannot be read or lacks a field; the message names the field and value."""


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoint`` (the keys of :data:`CHECKPOINT_KEYS`) to ``path`` atomically.

    Serialised in memory first: ``torch.save`` names the archive's records after the file it
    writes, so saving to a temporary name would make equal checkpoints differ in bytes.
    """
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    return write_bytes_atomic(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint as data (tensors and plain containers only) and check its fields.

    Raises
    ------
    CheckpointError
        Missing, truncated or corrupt files, files holding other Python objects, and
        missing or mistyped fields.
    """
    try:
        ck = read_tensor_file(path, "checkpoint")
    except TensorFileError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(ck, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} must hold a dict, not {type(ck).__name__}")
    for key, kind in CHECKPOINT_KEYS.items():
        if not isinstance(ck.get(key), kind):
            raise CheckpointError(f"checkpoint {str(path)!r}: {key} must be of type {kind.__name__}, "
                                  f"not {type(ck.get(key)).__name__}")
    return ck
