"""``quagga report RUN_DIR``: render a run directory into ``RUN_DIR/report/index.md`` and PNG plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from quagga.cli import CLIError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `quagga run`")
    parser.add_argument("--out", default=None, help="output directory (default RUN_DIR/report)")


def run(args: argparse.Namespace) -> int:
    from quagga.report import render

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise CLIError(f"RUN_DIR must be an existing directory, not {str(run_dir)!r}")
    if not (run_dir / "run.json").is_file() and not (run_dir / "train").is_dir():
        raise CLIError(f"RUN_DIR {str(run_dir)!r} holds no run.json and no train/: not a run directory")
    index = render(run_dir, args.out)
    print(f"wrote {index}")
    return 0
