"""The warnings torch gives for every sparse CSR tensor, silenced where such tensors are made.

torch warns that sparse CSR support "is in beta" and that "sparse invariant checks are
implicitly disabled" (our CSR structures are built by :func:`quant.model_ir.csr_from_edges`
and valid by construction).  Both are expected; they are ignored only inside
:func:`quiet_sparse`, never globally.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

#: Message prefixes of the expected warnings (regular expressions for ``warnings.filterwarnings``).
EXPECTED_SPARSE_WARNINGS = ("Sparse CSR tensor support is in beta",
                            "Sparse invariant checks are implicitly disabled")


@contextlib.contextmanager
def quiet_sparse() -> Iterator[None]:
    """Ignore :data:`EXPECTED_SPARSE_WARNINGS` inside the ``with`` block (and nothing else)."""
    with warnings.catch_warnings():
        for message in EXPECTED_SPARSE_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield
