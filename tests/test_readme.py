"""The README's two newcomer commands stay true: CI runs the same test command, and the
command line lists every subcommand."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_opens_with_setup_and_test_commands():
    cmds = _quick_start_commands()
    assert cmds[0] == "bash scripts/setup.sh && .venv/bin/quagga run"
    assert cmds[1] == ".venv/bin/python -m pytest -q"


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert "bash scripts/setup.sh" in ci
    assert _quick_start_commands()[1] in ci


def test_help_lists_every_subcommand():
    from quagga.cli import SUBCOMMANDS

    out = subprocess.run([sys.executable, "-m", "quagga.cli", "--help"], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout
    for name in SUBCOMMANDS:
        assert name in out


def test_every_subcommand_has_a_module_with_help():
    from quagga.cli import SUBCOMMANDS

    for name in SUBCOMMANDS:
        r = subprocess.run([sys.executable, "-m", "quagga.cli", name, "--help"], capture_output=True,
                           text=True, cwd=REPO)
        assert r.returncode == 0, (name, r.stderr)
        assert "usage: quagga" in r.stdout
