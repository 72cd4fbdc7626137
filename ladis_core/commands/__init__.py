"""One module per CLI subcommand.

Each module defines ``NAME``, ``HELP`` (one line), ``register(parser)`` that adds its
arguments to an ``argparse`` sub-parser, and ``run(args) -> int``. Heavy imports (torch,
smdebug) happen inside ``run`` so that ``--help`` stays instant.
"""
