"""``python -m ladis_core``: the command-line entry point.

Every user-caused failure is a :class:`~ladis_core.errors.LadisError`; it is printed as
one line (``error: …``) and the process exits with code 2. Nothing else is caught, so a
real bug still shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ladis_core._version import __version__
from ladis_core.config import redact, redact_logs
from ladis_core.errors import LadisError

#: subcommand modules under ``ladis_core.commands``, in the order ``--help`` lists them
COMMAND_MODULES = (
    "s3",
    "demo",
    "capture_reference",
    "serve",
    "monitor",
    "fleet",
    "report",
    "cache",
    "dashboard",
)

DESCRIPTION = """\
LADIS watches a deployed image classifier for adversarial inputs by testing whether the
distribution of its layer representations on live traffic has moved away from natural
validation data (kernel MMD two-sample tests).

Environment: AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION (standard AWS settings) and LADIS_S3_URI (default s3://ladis/)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ladis_core",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"LADIS {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"ladis_core.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"ladis_core.commands.{name}":
                continue
            raise
        sub = subparsers.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.register(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    redact_logs()  # -v shows boto's requests: never their tokens, headers or signatures
    if not args.verbose:
        # boto's INFO lines ("Found credentials in environment variables") are noise here
        for name in ("botocore", "boto3", "urllib3", "s3transfer"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except LadisError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
