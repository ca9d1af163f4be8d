"""The design point of a command: ``--design FILE`` and ``--set key=value`` overrides.

The one place the commands (estimate, sweep, golden, rtl) turn their design arguments (a TOML file or a preset name, ``--set`` overrides) into a
:class:`sim.design.point.DesignPoint`; a design file must exist and set at least one key.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from quagga.cli import CLIError


def design_from_args(args: argparse.Namespace):
    """The validated design point of ``args.design`` (a TOML file or None) and ``args.set``.

    Raises
    ------
    CLIError
        A design file that is empty.
    sim.design.point.DesignError
        Missing or malformed files, unknown keys, wrong types, impossible design points.
    """
    from sim.design.point import design_from_cli

    if args.design:
        p = Path(args.design)
        if p.is_file() and not p.read_text(errors="replace").strip():
            raise CLIError(f"--design {str(p)!r} is empty: a design file must set at least one key "
                           f"(e.g. bits = 4)")
    dp = design_from_cli(args.design, args.set)
    if getattr(args, "agg_units", None) is not None:  # estimate / sweep: --agg-units N
        dp = dp.replace(agg_units=args.agg_units)
    return dp
