"""Atomic output files, defined once for every package (stdlib only).

A result file is written to a temporary file in the same directory and renamed over the
target (``os.replace``), so a reader never sees a partial file and an error leaves no output.
The temporary file gets the permissions a plain ``open(path, "w")`` would give (``0666 & ~umask``;
``tempfile.mkstemp`` alone makes ``0600`` files).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed.

    For writers that want a file name (``np.savez``, ``torch.save``); ``suffix`` keeps the
    extension such writers append or check (e.g. ``".npz"``).
    """
    p = Path(path)
    for d in (p.parent, *p.parent.parents):
        if d.exists() and not d.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(d))
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, p)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None or exc.filename == tmp:  # name the target, not the temporary file
            raise OSError(exc.errno, exc.strerror or str(exc), str(p)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    return write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int = 2) -> Path:
    """Write ``data`` as JSON (sorted keys, trailing newline) to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(data, indent=indent, sort_keys=True) + "\n")


def read_toml(path: str | os.PathLike, what: str, error: type[Exception] = ValueError) -> dict[str, Any]:
    """Parse the TOML file at ``path``; a missing, unreadable or malformed file raises ``error``
    with a message naming ``what`` (e.g. ``"design file"``) and the path."""
    import tomllib

    p = Path(path)
    try:
        return tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise error(f"{what} {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what} {str(p)!r} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {str(p)!r} is not valid TOML: {exc}") from None
