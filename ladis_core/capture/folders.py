"""Where captures stage their steps: one private folder per user, and the checks that
keep other local users out of it.

Staged steps are published with the endpoint's credentials, so a folder anyone could
plant (``/tmp/ladis-capture-*`` in earlier versions) let another local user publish
fake steps, delete files or block captures. Now every capture stages in a subfolder
``run-*`` of ``<tmp>/ladis-capture-<uid>`` (or ``$LADIS_CAPTURE_STAGING``), created
0700; a folder is trusted only if it is a real folder (no symlink), owned by this user
and closed to group and others. When the per-user folder itself is unusable (another
user created it first), captures stage in a fresh private folder and say so: they are
never blocked, but orphans there cannot be found by the next start.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

#: environment variable naming the folder under which the per-user staging folder lives
STAGING_ENV = "LADIS_CAPTURE_STAGING"

#: prefix of one capture's staging folder inside the per-user folder
RUN_PREFIX = "run-"


def staging_base() -> Path:
    """``<$LADIS_CAPTURE_STAGING or the temp folder>/ladis-capture-<uid>``."""
    parent = os.environ.get(STAGING_ENV, "").strip() or tempfile.gettempdir()
    return Path(parent) / f"ladis-capture-{os.getuid()}"


def is_private_folder(path: Path) -> bool:
    """A real folder (not a symlink), owned by this user, closed to group and others."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and stat.S_IMODE(info.st_mode) & 0o077 == 0
    )


def private_base() -> Path | None:
    """The per-user staging folder, created 0700 if missing; ``None`` (with a warning)
    when it exists but cannot be trusted."""
    base = staging_base()
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        base.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        log.warning("cannot create the capture staging folder %s (%s)", base, exc.strerror or exc)
        return None
    if is_private_folder(base):
        return base
    log.warning(
        "the capture staging folder %s is not a private folder of this user (a symlink, "
        "another owner or open permissions); staging elsewhere and not recovering steps "
        "from it. Remove it, or set %s",
        base,
        STAGING_ENV,
    )
    return None


def new_staging_folder() -> Path:
    """A fresh 0700 folder for one capture (in the per-user folder when it is usable)."""
    base = private_base()
    if base is not None:
        return Path(tempfile.mkdtemp(prefix=RUN_PREFIX, dir=base))
    return Path(tempfile.mkdtemp(prefix=f"ladis-capture-{os.getuid()}-"))


def orphan_candidates() -> list[Path]:
    """Staging folders in the per-user folder that pass :func:`is_private_folder`; the
    others are skipped with a log line (never read, published or deleted)."""
    base = private_base()
    if base is None:
        return []
    found = []
    for path in sorted(base.iterdir()):
        if not path.name.startswith(RUN_PREFIX):
            continue
        if is_private_folder(path):
            found.append(path)
        else:
            log.warning("ignoring %s: not a private staging folder of this user", path)
    return found
