"""The local S3 server's credentials: random, one pair per data folder.

Fixed keys printed in the README protected nothing: any local user (or a web page able
to reach the loopback port) could use them. Now the first start of a data folder draws a
random access key and secret and keeps them in ``<data_dir>/credentials.json``, created
exclusively with mode 0600 inside the 0700 data folder; every later start, ``s3 env``
and the test fixtures read them from there. They are never logged.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from ladis_core.errors import ServerError
from ladis_core.store.files import write_atomic

CREDENTIALS_NAME = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    """One access key and its secret (``repr`` never shows the secret)."""

    access_key: str
    secret_key: str

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key!r}, secret_key='***')"


def given(access_key: str | None, secret_key: str | None) -> Credentials | None:
    """The pair a caller gave (``None`` for neither; one without the other is an error)."""
    if (access_key is None) != (secret_key is None):
        raise ServerError("give both access_key and secret_key, or neither")
    return Credentials(access_key, secret_key) if access_key and secret_key else None


def make_private_folder(folder: Path) -> None:
    """Create ``folder`` (and parents) and make it 0700 (:class:`ServerError` if it is
    not this user's)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(folder)
    if info.st_uid != os.getuid():
        raise ServerError(
            f"data folder {folder} belongs to another user; use a folder of your own (--data-dir)"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)


def load_or_create(data_dir: Path) -> Credentials:
    """The credentials of ``data_dir``, drawn at random and stored on first use."""
    path = data_dir / CREDENTIALS_NAME
    if not path.exists():
        make_private_folder(data_dir)
        fresh = {
            "access_key": f"ladis-{secrets.token_hex(8)}",
            "secret_key": secrets.token_urlsafe(32),
        }
        # linked into place: two starts at once agree on the pair that won
        write_atomic(path, json.dumps(fresh).encode(), exclusive=True, durable=True)
    return read(path)


def read(path: Path) -> Credentials:
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            raise ServerError(f"{path} is not a regular file of this user; remove it")
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(path, 0o600)
        value = json.loads(path.read_bytes())
        return Credentials(str(value["access_key"]), str(value["secret_key"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ServerError(
            f"cannot read the S3 server credentials {path} ({exc.__class__.__name__}); "
            "remove it to draw new ones (then restart the server)"
        ) from None
