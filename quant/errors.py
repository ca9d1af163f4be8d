"""The one error type of the numerics contract."""

from __future__ import annotations


class QuantError(ValueError):
    """A quantization parameter or input broke the contract.

    The message always names the offending field and its value.
    """


def invalid(field: str, value: object, rule: str) -> QuantError:
    """Build a :class:`QuantError` of the form ``"<field> must be <rule>, not <value>"``."""
    return QuantError(f"{field} must be {rule}, not {value!r}")
