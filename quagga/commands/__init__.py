"""One module per ``quagga`` subcommand; each defines ``configure(parser)`` and ``run(args) -> int``."""
