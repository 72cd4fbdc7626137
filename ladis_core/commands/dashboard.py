"""``python -m ladis_core dashboard``: serve the dashboard on the address its sign-in allows."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

NAME = "dashboard"
HELP = "serve the Streamlit dashboard (127.0.0.1 without sign-in, every interface with it)"
DESCRIPTION = """\
Serve the dashboard with `streamlit run`. Where it listens follows from its sign-in:

  sign-in configured ([auth] in the secrets)      every interface (0.0.0.0)
  no sign-in                                      127.0.0.1 only
  no sign-in and LADIS_ALLOW_ANONYMOUS=1          every interface, and every page
                                                  says access is unauthenticated

The secrets are Streamlit's: --secrets FILE (or LADIS_SECRETS_FILE), else
~/.streamlit/secrets.toml and ./.streamlit/secrets.toml. An [auth] section with keys
missing is an error. --address overrides the address, but serving beyond 127.0.0.1
without sign-in still needs LADIS_ALLOW_ANONYMOUS=1.

examples:
  python -m ladis_core dashboard                      # http://127.0.0.1:8501
  python -m ladis_core dashboard --secrets /run/secrets/ladis.toml --port 8080"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("LADIS_PORT") or 8501),
        help="TCP port (default LADIS_PORT or 8501)",
    )
    parser.add_argument("--address", default=None, help="address to listen on (default: see above)")
    parser.add_argument(
        "--secrets",
        type=Path,
        default=None,
        help="Streamlit secrets file with the [auth] section (default LADIS_SECRETS_FILE, "
        "else Streamlit's own places)",
    )


def run(args: argparse.Namespace) -> int:
    from ladis_core.access import exposure
    from ladis_core.errors import AccessConfigError, InputError

    secrets = args.secrets or (
        Path(os.environ[exposure.SECRETS_ENV]) if os.environ.get(exposure.SECRETS_ENV) else None
    )
    if secrets is not None and not secrets.is_file():
        raise AccessConfigError(f"the secrets file {secrets} does not exist")
    files = [secrets] if secrets is not None else exposure.default_secrets_files()
    sign_in = exposure.sign_in_configured(exposure.auth_section(files))
    anonymous = exposure.anonymous_allowed()
    address = args.address or exposure.bind_address(sign_in=sign_in, allow_anonymous=anonymous)
    problem = exposure.exposure_problem(address, sign_in=sign_in, allow_anonymous=anonymous)
    if problem:
        raise InputError(problem)
    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port} is not a TCP port")
    entry = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(entry),
        "--server.address",
        address,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]
    if secrets is not None:
        command += ["--secrets.files", str(secrets)]
    mode = "sign-in on" if sign_in else "no sign-in: access is unauthenticated"
    print(f"[dashboard] http://{address}:{args.port} ({mode})", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached
