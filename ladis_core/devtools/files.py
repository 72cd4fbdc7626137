"""The files a local S3 server keeps in its data folder (PID, state, ports, log,
identities, start lock) and small helpers to read and write them safely.

The data folder holds::

    <data_dir>/weed/              SeaweedFS data (persistent across restarts)
    <data_dir>/weed.pid           PID of the running server
    <data_dir>/server.json        ports, bucket and endpoint of the running server
    <data_dir>/ports.json         the internal ports, reused at the next start when free
    <data_dir>/weed.log           the server's log (the previous one is weed.log.1)
    <data_dir>/credentials.json   the access key and secret, drawn at the first start (600)
    <data_dir>/s3-identities.json the same, as SeaweedFS reads them (mode 600)
    <data_dir>/security.toml      random JWT keys for the filer and volume ports (600)
    <data_dir>/start.lock         held while a start is in progress (one at a time)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ladis_core.errors import ServerError

PID_NAME = "weed.pid"


STATE_NAME = "server.json"


PORTS_NAME = "ports.json"


LOCK_NAME = "start.lock"


LOG_NAME = "weed.log"


IDENTITIES_NAME = "s3-identities.json"


SECURITY_NAME = "security.toml"


WEED_DIR_NAME = "weed"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing) for the block."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def rotate_log(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, path.with_name(path.name + ".1"))


def log_tail(log_path: Path, lines: int = 6) -> str:
    """The last ``lines`` meaningful lines of the server log, for error messages."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return f"no server log at {log_path}"
    kept = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not set(line.strip()) <= set("═║╔╗╚╝")
    ]
    tail = " | ".join(kept[-lines:])[-600:]
    return f"server log {log_path} ends: {tail}" if tail else f"server log {log_path} is empty"


def prepare_data_dir(data_dir: Path, weed_dir: Path) -> None:
    """Create the folders, 0700 (the data and the credentials are this user's only), and
    check that ``data_dir`` is writable (:class:`ServerError`)."""
    from ladis_core.devtools.credentials import make_private_folder

    try:
        make_private_folder(data_dir)
        weed_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = data_dir / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ServerError(
            f"data folder {data_dir} is not writable ({reason}); "
            "fix its permissions or choose another folder with --data-dir"
        ) from exc
