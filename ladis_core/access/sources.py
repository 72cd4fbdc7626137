"""Allowed data sources: the only places the dashboard reads from.

The dashboard reads the configured world (``LADIS_S3_URI``, default ``s3://ladis/``) and
the roots listed in ``LADIS_ALLOWED_SOURCES`` (comma-separated ``s3://bucket/prefix/``
URIs or local folders), and nothing else: not a data source typed in the sidebar, not a
trial URI typed on the on-demand page, not a trial URI found inside a ``results.json``.

A URI is inside a root when

- ``s3://``: the bucket is the same and the key starts with the root's key prefix at a
  ``/`` boundary (``s3://ladis/`` holds ``s3://ladis/trials/x`` but not
  ``s3://ladis-other/``); a key with a ``.`` or ``..`` segment is never allowed (stores
  disagree on what it means);
- a local folder (a plain path or ``file://``): its real path (symlinks resolved) is the
  root's real path or below it;
- any other scheme: never.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ladis_core.config import DEFAULT_WORLD_URI, redact
from ladis_core.errors import SourceNotAllowedError

ALLOWED_ENV = "LADIS_ALLOWED_SOURCES"


@dataclass(frozen=True)
class _Location:
    """A URI taken apart for comparison: ``("s3", bucket, key)`` or ``("file", "", path)``."""

    scheme: str
    bucket: str
    path: str


def _locate(uri: str) -> _Location | None:
    """The comparable form of ``uri``, or ``None`` when it can never be allowed."""
    text = str(uri or "").strip()
    if not text or any(ch in text for ch in "\0\r\n"):
        return None
    if text.startswith("s3://"):
        bucket, _, key = text[len("s3://") :].partition("/")
        if not bucket or any(part in (".", "..") for part in key.split("/")):
            return None
        return _Location("s3", bucket, key)
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        return None
    return _Location("file", "", os.path.realpath(os.path.expanduser(text)))


def _inside(location: _Location, root: _Location) -> bool:
    if location.scheme != root.scheme or location.bucket != root.bucket:
        return False
    if location.scheme == "s3":
        prefix = root.path.rstrip("/")
        return not prefix or (location.path + "/").startswith(prefix + "/")
    return location.path == root.path or location.path.startswith(root.path.rstrip("/") + "/")


@dataclass(frozen=True)
class SourcePolicy:
    """The allowed roots, in the order they were configured."""

    roots: tuple[str, ...]

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SourcePolicy:
        """``LADIS_S3_URI`` (the configured world) plus every root of
        ``LADIS_ALLOWED_SOURCES``."""
        env = os.environ if environ is None else environ
        world = (env.get("LADIS_S3_URI") or "").strip() or DEFAULT_WORLD_URI
        extra = (env.get(ALLOWED_ENV) or "").replace("\n", ",").split(",")
        return cls.of([world, *extra])

    @classmethod
    def of(cls, roots: Iterable[str]) -> SourcePolicy:
        seen: list[str] = []
        for root in roots:
            text = str(root or "").strip()
            if text and text not in seen:
                seen.append(text)
        return cls(roots=tuple(seen))

    def allows(self, uri: str) -> bool:
        location = _locate(uri)
        if location is None:
            return False
        for root in self.roots:
            allowed = _locate(root)
            if allowed is not None and _inside(location, allowed):
                return True
        return False

    def describe(self) -> str:
        """The allow-list as one line (for messages)."""
        return ", ".join(self.roots) or "none"

    def refusal(self, uri: str, *, what: str = "the data source") -> str:
        """The one-sentence refusal for ``uri`` (names the allow-list)."""
        return redact(
            f"{what} {str(uri).strip() or '(empty)'} is outside the allowed data sources "
            f"({self.describe()}); it was not read. An administrator can allow more with "
            f"{ALLOWED_ENV}"
        )

    def check(self, uri: str, *, what: str = "the data source") -> str:
        """Return ``uri`` when it is allowed; otherwise raise
        :class:`~ladis_core.errors.SourceNotAllowedError` naming the allow-list."""
        if not self.allows(uri):
            raise SourceNotAllowedError(self.refusal(uri, what=what))
        return uri
