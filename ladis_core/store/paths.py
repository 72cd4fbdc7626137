"""Turning names read from storage into local paths, safely.

Every stored name is untrusted (SPEC section 7): an index file's ``event_file_name``, an
object key below a mirrored prefix, an archive member. SeaweedFS refuses keys holding
``..`` but accepts ``//`` and absolute-looking keys, and AWS accepts both, so a name is
checked twice before it becomes a path: its *shape* (relative, plain components, no
``.``/``..``, no backslash or NUL) and, after resolving symlinks, its *containment* in
the folder it belongs to.
"""

from __future__ import annotations

import os
from pathlib import Path

from ladis_core.errors import UnsafeNameError

#: the longest relative name accepted (a key is at most 1,024 bytes on S3)
MAX_NAME_CHARS = 1024


def check_relative(name: str, *, what: str) -> str:
    """``name`` if it is a plain relative POSIX path (``a/b.json``); otherwise
    :class:`UnsafeNameError` naming ``what`` (where the name came from)."""
    text = str(name)
    bad = (
        not text
        or len(text) > MAX_NAME_CHARS
        or text.startswith("/")
        or "\\" in text
        or "\x00" in text
        or any(part in ("", ".", "..") for part in text.split("/"))
    )
    if bad:
        raise UnsafeNameError(
            f"{what} holds the name {_shown(text)}, which is not a plain relative path "
            "(absolute, empty parts, '.', '..' or backslashes); refusing to use it as a path"
        )
    return text


def contained_path(root: str | os.PathLike[str], name: str, *, what: str) -> Path:
    """``root / name`` after :func:`check_relative`, and only if it resolves (following
    symlinks) to a path inside ``root``; otherwise :class:`UnsafeNameError`."""
    relative = check_relative(name, what=what)
    base = Path(root)
    path = base / relative
    resolved_root = os.path.realpath(base)
    resolved = os.path.realpath(path)
    if os.path.commonpath([resolved_root, resolved]) != resolved_root or resolved == resolved_root:
        raise UnsafeNameError(
            f"{what} holds the name {_shown(relative)}, which resolves outside {base}; "
            "refusing to use it as a path"
        )
    return path


def _shown(text: str) -> str:
    return repr(text if len(text) <= 120 else text[:117] + "...")
