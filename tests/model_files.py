"""Test helper: rewrite fields of a model file's header and re-seal its checksum, to build
files that are well-formed but describe another version, graph or contract."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path


def rewrite_header(path: Path, **changes) -> None:
    """Update header fields of the ``.qim`` at ``path`` in place (checksum recomputed)."""
    data = path.read_bytes()[:-32]
    (hlen,) = struct.unpack("<I", data[8:12])
    header = json.loads(data[12:12 + hlen])
    header.update(changes)
    hb = json.dumps(header).encode()
    body = data[:8] + struct.pack("<I", len(hb)) + hb + data[12 + hlen:]
    path.write_bytes(body + hashlib.sha256(body).digest())
