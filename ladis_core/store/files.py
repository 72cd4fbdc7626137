"""Writing local files so that a crash or a full disk never leaves half a file.

Every local write goes to a temporary file in the target's folder and is then moved
into place: renamed over the target, or, for a create-if-absent, *linked* (``link``
fails when the target exists, so two writers never both win and a torn file is never
visible under the final name). With ``durable`` the file and then its folder are
fsynced, so a claim, result or bookmark that a caller was told is written survives a
power cut. A failure removes the temporary file and raises :class:`LocalDiskError`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ladis_core.errors import LocalDiskError

Writer = Callable[[BinaryIO], object]


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes | Writer,
    *,
    exclusive: bool = False,
    durable: bool = False,
) -> bool:
    """Write ``data`` (bytes, or a function writing into the open file) to ``path``.

    ``exclusive``: only if nothing is at ``path`` yet; returns whether this call created
    it. Raises :class:`LocalDiskError` (disk full, read-only, permissions)."""
    target = Path(path)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if exclusive:
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
        else:
            os.replace(tmp, target)
            tmp = None
        if durable:
            fsync_folder(target.parent)
        return True
    except OSError as exc:
        raise disk_error(exc, target) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """Make a rename or link in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_error(exc: OSError, path: str | os.PathLike[str]) -> LocalDiskError:
    """A one-line :class:`LocalDiskError` for a failed local write of ``path``."""
    reason = exc.strerror or exc.__class__.__name__
    hint = (
        "; free some space (python -m ladis_core cache prune) and run again"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT)
        else ""
    )
    return LocalDiskError(f"cannot write {path}: {reason}; nothing half-written was kept{hint}")
