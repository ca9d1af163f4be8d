"""The design point of a command: ``--design FILE|PRESET`` and ``--set key=value`` overrides.

The one place the commands (estimate, sweep, golden, rtl) turn their design arguments into a
:class:`sim.design.point.DesignPoint` (:func:`sim.design.point.design_from_cli`: a TOML file,
which must exist and set at least one key, or a preset name).
"""

from __future__ import annotations

import argparse


def design_from_args(args: argparse.Namespace):
    """The validated design point of ``args.design`` (a TOML file, a preset name or None),
    ``args.set`` and, where the command has it, ``args.agg_units``.

    Raises
    ------
    sim.design.point.DesignError
        Missing, empty or malformed files, unknown keys or presets, wrong types, impossible
        design points.
    """
    from sim.design.point import design_from_cli

    dp = design_from_cli(args.design, args.set)
    if getattr(args, "agg_units", None) is not None:  # estimate / sweep: --agg-units N
        dp = dp.replace(agg_units=args.agg_units)
    return dp
