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

    if args.design == "host":
        dp = host_design(getattr(args, "host_probe", None), args.set)
    else:
        dp = design_from_cli(args.design, args.set)
    if getattr(args, "agg_units", None) is not None:  # estimate / sweep: --agg-units N
        dp = dp.replace(agg_units=args.agg_units)
    return dp


def host_design(probe_path, sets=()):
    """``--design host``: the design point of a saved host probe
    (:meth:`sim.design.host.HostPoint.design_point`) with ``--set`` overrides.

    Raises
    ------
    sim.design.point.DesignError
        Without a probe file (the message says how to make one), or for a bad probe or override.
    """
    from sim.design.host import load_host
    from sim.design.point import DesignError, DesignPoint, parse_override

    if not probe_path:
        raise DesignError("--design host needs --host-probe FILE, a probe of this machine made by "
                          "'python -m quagga.bench.host_probe --out FILE'")
    dp = load_host(probe_path).design_point()
    overrides = dict(parse_override(s) for s in sets)
    return DesignPoint.from_dict({**dp.to_dict(), **overrides}) if overrides else dp
