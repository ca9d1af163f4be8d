"""Helpers of the fault tests: run ``quagga`` in a child process, interrupt or kill it at a
point given by its own CPU time (not by the clock), and compare run directories."""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]


#: children started by :func:`spawn` that may still run (see :func:`reap_children`)
_CHILDREN: list[subprocess.Popen] = []


def _child_setup() -> None:
    """In the child, before exec: restore Ctrl-C's default disposition, and ask Linux for
    SIGKILL when the parent (pytest) dies.

    A shell without job control starts background commands with SIGINT ignored, and an
    ignored signal stays ignored across ``exec``, so a test run launched that way would
    otherwise hand its commands a deaf SIGINT.  The death signal means a killed or crashed
    test run leaves no command running in its own session."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(argv: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """Start ``quagga argv`` in its own process group; stdout and stderr go to ``log``.{out,err}.

    The child dies with the test process, and :func:`reap_children` kills its group if a
    test ends (fails) while it still runs."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "quagga.cli", *argv], cwd=cwd, env=env,
                            stdout=open(f"{log}.out", "w"), stderr=open(f"{log}.err", "w"),
                            start_new_session=True,
                            preexec_fn=_child_setup)
    _CHILDREN.append(proc)
    return proc


def reap_children() -> None:
    """Kill the process group of every spawned command that still runs, and reap it."""
    while _CHILDREN:
        proc = _CHILDREN.pop()
        if proc.poll() is None:
            kill_group(proc)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants, seconds."""
    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def wait_for_cpu(proc: subprocess.Popen, seconds: float) -> bool:
    """Poll until the process tree has used ``seconds`` of CPU; False if it ended first."""
    while proc.poll() is None:
        if cpu_seconds(proc.pid) >= seconds:
            return True
        time.sleep(0.02)
    return False


def run_to_end(argv: list[str], cwd: Path, log: Path) -> tuple[int, float]:
    """Run ``quagga argv`` to its end; return (exit code, CPU seconds of the process tree)."""
    proc = spawn(argv, cwd, log)
    used = 0.0
    while proc.poll() is None:
        used = max(used, cpu_seconds(proc.pid))
        time.sleep(0.02)
    return proc.returncode, used


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to the whole process group (workers included) and reap the leader."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    return proc.wait(timeout=120)


def temporary_files(root: Path) -> list[str]:
    """Files a writer left half-done: the atomic writer's ``.NAME.*.tmp`` (or ``.NAME.*.npz``/``.pt``)."""
    return sorted(str(p) for p in root.rglob(".*") if p.is_file())


_TIMING_KEYS = {"seconds", "machine"}


def _normalise_json(obj, run_dir: str, label: str):
    if isinstance(obj, dict):
        return {k: _normalise_json(v, run_dir, label) for k, v in obj.items() if k not in _TIMING_KEYS}
    if isinstance(obj, list):
        return [_normalise_json(v, run_dir, label) for v in obj]
    if isinstance(obj, str):
        return obj.replace(run_dir, label)
    return obj


def run_contents(run_dir: Path, label: str = "RUN", rename: Path | None = None) -> dict[str, bytes]:
    """Every (visible) file of a run directory, timings taken out: JSON files without
    ``seconds``/``machine``, the report's stage table without its seconds.  The directory's own
    path is written ``label``; ``rename`` is the path the directory had when it was written
    (for a reference moved aside after its run)."""
    written_at = str(rename or run_dir)
    out = {}
    for p in sorted(run_dir.rglob("*")):
        if not p.is_file() or p.name.startswith("."):  # a SIGKILL may leave a writer's hidden temporary file
            continue
        rel = str(p.relative_to(run_dir))
        data = p.read_bytes()
        if p.suffix == ".json":
            data = json.dumps(_normalise_json(json.loads(data), written_at, label), sort_keys=True).encode()
        elif p.suffix == ".md":
            text = data.decode().replace(written_at, label)
            text = re.sub(r"^\| (\w+) \| (\w+) \| [\d.]+ \|", r"| \1 | \2 | - |", text, flags=re.M)
            data = text.encode()
        out[rel] = data
    return out
