"""Checks of configuration fields that raise the contract's error (:func:`quant.errors.invalid`,
``"<field> must be <rule>, not <value>"``): a choice among names, positive ints, and int
fields whose range is declared beside the field (:func:`int_field`)."""

from __future__ import annotations

import dataclasses

from quant.errors import invalid

__all__ = ["check_choice", "check_int_fields", "check_positive_ints", "int_field"]


def check_choice(field: str, value: object, choices) -> None:
    """Raise ``"<field> must be one of <choices>, not <value>"`` unless ``value in choices``."""
    if value not in choices:
        raise invalid(field, value, f"one of {choices}")


def check_positive_ints(obj: object, *fields: str) -> None:
    """Raise ``"<field> must be a positive int, not <value>"`` for the first of ``fields`` of
    ``obj`` that is not an int >= 1 (a bool is not an int here)."""
    for f in fields:
        v = getattr(obj, f)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise invalid(f, v, "a positive int")


def int_field(default: int, lo: int, hi: int | None = None):
    """A dataclass field holding an int in ``lo..hi`` (``hi`` None: no upper bound), checked
    by :func:`check_int_fields`."""
    return dataclasses.field(default=default, metadata={"int_range": (lo, hi)})


def check_int_fields(obj: object) -> None:
    """Raise ``"<field> must be an int >= lo"`` (or ``"an int in lo..hi"``) for the first
    :func:`int_field` of the dataclass ``obj`` whose value is not such an int."""
    for f in dataclasses.fields(obj):
        if "int_range" not in f.metadata:
            continue
        lo, hi = f.metadata["int_range"]
        v = getattr(obj, f.name)
        if not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            raise invalid(f.name, v, f"an int >= {lo}" if hi is None else f"an int in {lo}..{hi}")
