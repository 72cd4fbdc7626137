"""The local cache (``LADIS_CACHE_DIR``): what it holds, and pruning it.

Trials read from S3 are mirrored under ``<cache>/trials/<name>`` and served models under
``<cache>/models/<fingerprint>`` (:func:`ladis_core.trials.default_cache_dir`,
:func:`ladis_core.model.store.default_cache_dir`). Both only grow; a dashboard that stays up
mirrors every trial an analyst opens. :func:`prune_cache` removes the least recently
used folders: everything unused for longer than ``older_than`` and, with ``max_bytes``,
then the oldest until the rest fits. A trial folder in use (its lock held by a reader) is
skipped, never removed under a reader; a removed folder is simply fetched again when
next needed.

"Last used" is when a trial was last read from S3 (every read rewrites its manifest) or
when a model was fetched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ladis_core.config import cache_root
from ladis_core.errors import InputError

#: the file every trial read rewrites (:mod:`ladis_core.trials`)
TRIAL_MANIFEST = "_ladis_cache.json"
#: the lock a trial reader holds (:mod:`ladis_core.trials`)
TRIAL_LOCK = ".lock"
KINDS = ("trials", "models")

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1e3,
    "kb": 1e3,
    "m": 1e6,
    "mb": 1e6,
    "g": 1e9,
    "gb": 1e9,
    "t": 1e12,
    "tb": 1e12,
}


@dataclass(frozen=True)
class CacheEntry:
    """One cached trial or model folder."""

    kind: str  # "trials" or "models"
    path: Path
    size_bytes: int
    last_used: datetime
    uri: str | None  # the S3 URI of a trial, when its manifest names it


@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune_cache` removed (or, with ``dry_run``, would remove)."""

    removed: tuple[CacheEntry, ...]
    skipped_busy: tuple[CacheEntry, ...]
    kept: tuple[CacheEntry, ...]
    dry_run: bool

    @property
    def freed_bytes(self) -> int:
        return sum(e.size_bytes for e in self.removed)

    @property
    def kept_bytes(self) -> int:
        return sum(e.size_bytes for e in self.kept) + sum(e.size_bytes for e in self.skipped_busy)


def parse_size(text: str) -> int:
    """``500MB``, ``5GB``, ``1.5g``, ``2048`` (bytes) → bytes (decimal units)."""
    raw = str(text).strip().lower().replace(" ", "")
    number = raw.rstrip("kmgtb")
    unit = raw[len(number) :]
    try:
        value = float(number) * _SIZE_UNITS[unit]
    except (ValueError, KeyError):
        raise InputError(
            f"size {text!r} is not a size; use e.g. 500MB, 5GB or a number of bytes"
        ) from None
    if not (value >= 0 and math.isfinite(value)):
        raise InputError(f"size {text!r} must be a finite, non-negative size")
    return int(value)


def format_size(size_bytes: int) -> str:
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size_bytes >= factor:
            return f"{size_bytes / factor:.1f} {unit}"
    return f"{size_bytes} B"


def _folder_size_and_mtime(folder: Path) -> tuple[int, float]:
    size, newest = 0, folder.stat().st_mtime
    for directory, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                stat = os.stat(os.path.join(directory, name))
                size += stat.st_size
                newest = max(newest, stat.st_mtime)
    return size, newest


def _trial_uri(folder: Path) -> str | None:
    try:
        return (
            str(json.loads((folder / TRIAL_MANIFEST).read_text(encoding="utf-8")).get("uri") or "")
            or None
        )
    except (OSError, ValueError, AttributeError):
        return None


def list_cache(root: str | Path | None = None) -> list[CacheEntry]:
    """Every cached trial and model folder under ``root`` (default: the cache root),
    least recently used first."""
    base = Path(root) if root is not None else cache_root()
    entries = []
    for kind in KINDS:
        folder = base / kind
        if not folder.is_dir():
            continue
        for item in folder.iterdir():
            if not item.is_dir():
                continue
            size, newest = _folder_size_and_mtime(item)
            if kind == "trials" and (item / TRIAL_MANIFEST).is_file():
                newest = (item / TRIAL_MANIFEST).stat().st_mtime
            entries.append(
                CacheEntry(
                    kind=kind,
                    path=item,
                    size_bytes=size,
                    last_used=datetime.fromtimestamp(newest, UTC),
                    uri=_trial_uri(item) if kind == "trials" else None,
                )
            )
    return sorted(entries, key=lambda e: e.last_used)


@contextlib.contextmanager
def _unless_busy(entry: CacheEntry) -> Iterator[bool]:
    """Hold a trial folder's lock while it is removed; yields False when a reader has it."""
    lock = entry.path / TRIAL_LOCK
    if entry.kind != "trials" or not lock.is_file():
        yield True
        return
    with open(lock, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prune_cache(
    *,
    older_than: timedelta | None = None,
    max_bytes: int | None = None,
    root: str | Path | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneResult:
    """Remove cached folders unused for longer than ``older_than``, then the least
    recently used ones until the rest takes at most ``max_bytes``. At least one of the
    two is required. Folders in use are skipped (and counted as kept)."""
    if older_than is None and max_bytes is None:
        raise InputError(
            "say what to prune: an age (--older-than 7d), a size (--max-size 5GB) or both"
        )
    if max_bytes is not None and max_bytes < 0:
        raise InputError(f"max_bytes={max_bytes} must not be negative")
    moment = now or datetime.now(UTC)
    entries = list_cache(root)
    doomed = [e for e in entries if older_than is not None and moment - e.last_used > older_than]
    if max_bytes is not None:
        remaining = sum(e.size_bytes for e in entries if e not in doomed)
        for entry in entries:  # least recently used first
            if remaining <= max_bytes:
                break
            if entry not in doomed:
                doomed.append(entry)
                remaining -= entry.size_bytes
    removed, busy = [], []
    for entry in doomed:
        with _unless_busy(entry) as free:
            if not free:
                busy.append(entry)
                continue
            if not dry_run:
                shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry)
    kept = [e for e in entries if e not in doomed]
    return PruneResult(
        removed=tuple(removed), skipped_busy=tuple(busy), kept=tuple(kept), dry_run=dry_run
    )
