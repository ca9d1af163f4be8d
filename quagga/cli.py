"""The ``quagga`` command line: a thin dispatcher over ``quagga.commands.<name>``.

Subcommand modules are imported only when used, so ``quagga --help`` stays fast and
``quagga estimate`` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from quagga.console import configure_logging, describe_os_error
from quant.errors import QuantError

#: name -> one-line help.  The module ``quagga.commands.<name>`` implements it.
SUBCOMMANDS: dict[str, str] = {
    "train": "train a quantized GNN (QAT), evaluate fake-quant and integer accuracy, export",
    "data": "export a dataset (the built-in synthetic graph included) as an .npz graph file",
    "simulate": "bit-exact functional simulation of an exported model",
    "golden": "write golden-vector files for the aggregation unit",
    "rtl": "export, synthesize and verify (cocotb) the aggregation unit RTL",
    "estimate": "cycles, time and energy of the accelerator at FP32/INT8/INT4/INT2",
    "sweep": "sweep design points x bit widths x datasets (Dask), CSV + Pareto plot",
    "bench": "measure low-bit CPU kernels against FP32 baselines in one run",
    "report": "render tables and plots of a run directory",
    "run": "the whole flow on one dataset: train, export, simulate, RTL, estimate, bench, report",
}


#: Exit status of a refused input (bad file, bad value, unwritable output).
EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """A user error in the command line; printed without a traceback, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``quagga CMD: error: <message>`` and exit 2 (no usage dump)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(names: list[str] | None = None) -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="quagga",
        description="Quagga: co-design simulator for low-bit GNN accelerators "
                    "(QAT trainer, bit-exact simulator, Amaranth RTL, cycle/energy model).")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                       help="more logging (-vv for debug)")
        if names is not None and name in names:
            mod = importlib.import_module(f"quagga.commands.{name}")
            mod.configure(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = [a for a in argv if a in SUBCOMMANDS][:1]
    if from_command_line and wanted == ["train"] and not ({"-h", "--help"} & set(argv)):
        from training.allocator import reexec_with_jemalloc

        try:  # before torch loads: the process may replace itself (training/allocator.py)
            reexec_with_jemalloc()
        except QuantError as exc:
            print(f"quagga train: error: {_one_line(str(exc))}", file=sys.stderr)
            return EXIT_USAGE
    if wanted and wanted[0] in ("run", "bench", "simulate"):
        from quagga.bench.machine import prefer_passive_omp

        # before the command's modules load numpy (OpenBLAS), torch or numba (libgomp)
        prefer_passive_omp()
    parser = build_parser(wanted)
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if args.command is None:
        parser.print_help()
        return 0
    if not hasattr(args, "_run"):
        parser.error(f"subcommand {args.command!r} is not available")
    action = getattr(args, f"{args.command}_command", None)  # e.g. ``quagga rtl verify``
    prog = f"quagga {args.command}" + (f" {action}" if action else "")
    try:
        return int(args._run(args) or 0)
    except (CLIError, QuantError) as exc:
        print(f"{prog}: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{prog}: error: {_one_line(describe_os_error(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemError as exc:  # Ctrl-C inside compiled (numba) code arrives wrapped
        if not _caused_by_interrupt(exc):
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    # run the importable module's main, so that the commands' ``quagga.cli.CLIError`` is the
    # class caught there (under ``python -m`` this file is also ``__main__``, a second copy)
    from quagga.cli import main as _main

    sys.exit(_main())
