"""The local mirror of an ``s3://`` trial: what is listed, fetched and remembered.

Only index folders that can hold wanted steps are listed; a folder listed after a later
folder existed is *sealed* and never listed again; only the event files of wanted steps
are fetched; a trial rewritten at the same URI is noticed by the ETag of its first cached
event file and the cache is then dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ladis_core import store
from ladis_core.config import S3Settings, cache_root
from ladis_core.errors import DataNotFoundError, StorageError
from ladis_core.progress import Progress, ProgressCallback, report
from ladis_core.store import layout
from ladis_core.store.local_cache import TRIAL_LOCK, TRIAL_MANIFEST
from ladis_core.trials.data import _no_steps_message
from ladis_core.trials.index import (
    INDEX_GROUP_SIZE,
    _atomic_write,
    _group_of,
    _index_files,
    _parse_index,
    _step_of_name,
    _StepEntry,
    event_path,
)

log = logging.getLogger(__name__)


_CACHE_FORMAT = 1


def default_cache_dir(uri: str) -> Path:
    """The local cache folder of an ``s3://`` trial: ``$LADIS_CACHE_DIR/trials/<name>``
    (root ``.cache`` in the working folder by default). The name holds a hash of the S3
    endpoint and the URI, so the same URI on two servers never shares a cache."""
    root = cache_root()
    normalised = uri.rstrip("/")
    endpoint = S3Settings.from_environment().endpoint_url or "aws"
    digest = hashlib.sha256(f"{endpoint}|{normalised}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", normalised.removeprefix("s3://"))[-60:].strip("-")
    return root / "trials" / f"{slug}-{digest}"


def _prepare(uri: str, cache_dir: str | Path | None) -> tuple[Path, bool]:
    if not store.is_s3(uri):
        root = store.local_path(uri)
        if not root.is_dir():
            raise DataNotFoundError(_no_steps_message(uri, None))
        return root, False
    store.split_s3(uri)  # validates the URI
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir(uri)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the trial cache folder {root}: {exc.strerror or exc}"
        ) from None
    return root, True


@contextlib.contextmanager
def _cache_lock(root: Path | None) -> Iterator[None]:
    """Serialise processes that update the same cache folder (dashboard and job)."""
    if root is None:
        yield
        return
    while True:
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / TRIAL_LOCK, "a+b")  # noqa: SIM115 - closed below on every path
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                current = os.stat(root / TRIAL_LOCK).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(handle.fileno()).st_ino:
                break
        except BaseException:
            handle.close()
            raise
        # `cache prune` removed the folder while we waited for its lock: lock the new one
        handle.close()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _fresh_manifest(uri: str) -> dict[str, Any]:
    return {"format": _CACHE_FORMAT, "uri": uri, "groups": {}, "generation": None}


def _read_manifest(root: Path, uri: str) -> dict[str, Any]:
    try:
        manifest = json.loads((root / TRIAL_MANIFEST).read_text())
    except (OSError, ValueError):
        return _fresh_manifest(uri)
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != _CACHE_FORMAT
        or manifest.get("uri") != uri
    ):
        return _fresh_manifest(uri)
    return manifest


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    _atomic_write(root / TRIAL_MANIFEST, json.dumps(manifest).encode())


def _drop_cache(root: Path) -> None:
    for name in ("index", "events", "_catalog", "_packs"):  # everything cached
        shutil.rmtree(root / name, ignore_errors=True)
    (root / TRIAL_MANIFEST).unlink(missing_ok=True)


def _check_generation(uri: str, root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Drop the cache if the trial at ``uri`` was rewritten since it was cached (one
    listing request)."""
    generation = manifest.get("generation")
    if not generation:
        return manifest
    key, etag = generation
    folder = layout.join(uri, key.rsplit("/", 1)[0])
    current = {info.uri: info.etag for info in store.iter_objects(folder)}
    if current.get(layout.join(uri, key)) == etag:
        return manifest
    log.info("the trial %s was rewritten since it was cached; dropping the cache %s", uri, root)
    _drop_cache(root)
    return _fresh_manifest(uri)


def _sync_index(
    uri: str,
    root: Path,
    *,
    min_global: int,
    progress: ProgressCallback | None,
    mode: str | None = None,
    until_step: int | None = None,
) -> set[int]:
    """Bring the cached index files of global steps ≥ ``min_global`` up to date.

    With ``until_step``, folders are synced in order and the sync stops after the first
    folder holding a ``mode`` step above ``until_step``: steps are written in order, so
    later folders cannot hold wanted steps (a window early in a long trial costs one
    folder of index files, not the rest of the trial).

    The manifest remembers, per index folder, from which global step on its cache is
    complete (``since``), the last file listed (``through``: the next listing starts
    after it) and whether it is sealed (listed after a later folder existed: in-order
    writers add nothing there any more, so it is not listed again). Returns the folders
    cached completely and for good (sealed, complete from their first step)."""
    manifest = _check_generation(uri, root, _read_manifest(root, uri))
    index_prefix = layout.join(uri, "index")
    groups = sorted(int(g) for g in store.list_children(index_prefix) if g.isdigit())
    if not groups and not store.list_objects(uri):
        raise DataNotFoundError(_no_steps_message(uri, None))
    known: dict[str, dict[str, Any]] = manifest.setdefault("groups", {})
    wanted: list[tuple[str, Path]] = []
    updates: dict[str, dict[str, Any]] = {}
    todo = []
    for group in groups:
        name = f"{group:09d}"
        state = known.get(name)
        incremental = state is not None and state["since"] <= min_global
        if group >= _group_of(min_global) and not (incremental and state["sealed"]):
            todo.append((group, name, state if incremental else None))
    report(progress, "list", 0, len(todo), f"index of {uri}")
    for position, (group, name, state) in enumerate(todo, 1):
        folder = layout.join(index_prefix, name)
        through = state["through"] if state else None
        after = layout.join(folder, through) if through else None
        for info in store.iter_objects(folder, start_after=after):
            filename = info.uri.rsplit("/", 1)[-1]
            if not filename.endswith(".json"):
                continue
            through = filename if through is None or filename > through else through
            if _step_of_name(filename) < min_global:
                continue
            dest = root / "index" / name / filename
            if not (dest.is_file() and dest.stat().st_size == info.size):
                wanted.append((info.uri, dest))
        updates[name] = {
            "since": state["since"] if state else min_global,
            "through": through,
            # a later folder existed before this listing: in-order writers are done here
            "sealed": group != groups[-1],
        }
        report(progress, "list", position, len(todo))
        if until_step is not None:
            _fetch(wanted, progress=progress, stage="index")
            wanted = []
            if _passes(root / "index" / name, mode=mode, until_step=until_step, uri=uri):
                break
    _fetch(wanted, progress=progress, stage="index")
    known.update(updates)
    _write_manifest(root, manifest)
    return {
        int(name)
        for name, state in known.items()
        if state["sealed"] and state["since"] <= int(name) * INDEX_GROUP_SIZE
    }


def _passes(folder: Path, *, mode: str | None, until_step: int, uri: str) -> bool:
    """Whether the cached index ``folder`` holds a ``mode`` step above ``until_step``
    (its newest step of that mode is read, newest file first)."""
    if not folder.is_dir():
        return False
    for _step, path in sorted(_index_files(str(folder)), reverse=True):
        shown = layout.join(uri, "index", folder.name, os.path.basename(path))
        entry = _parse_index(Path(path).read_bytes(), path, shown=f"{shown} (cached at {path})")
        if mode is None or entry.mode == mode:
            return entry.mode_step > until_step
    return False


def _sync_events(
    uri: str,
    root: Path,
    entries: list[_StepEntry],
    *,
    packed: set[int],
    progress: ProgressCallback | None,
) -> list[_StepEntry]:
    """Fetch the event files of ``entries`` not cached (complete) yet, except in the
    ``packed`` folders; return ``entries`` up to the first whose event file does not
    exist (yet)."""
    wanted = []
    for entry in entries:
        if packed and _group_of(entry.step) in packed:
            continue
        dest = event_path(root, entry)
        try:
            complete = os.stat(dest).st_size >= entry.event_size
        except OSError:
            complete = False
        if not complete:
            wanted.append((layout.join(uri, entry.event_file), dest))
    missing = _fetch(wanted, progress=progress, stage="download", tolerate_missing=True)
    if missing:
        cut = next(i for i, e in enumerate(entries) if layout.join(uri, e.event_file) in missing)
        log.warning(
            "%s (step %d) is not in the trial (yet); reading the steps before it only",
            layout.join(uri, entries[cut].event_file),
            entries[cut].mode_step,
        )
        entries = entries[:cut]
    manifest = _read_manifest(root, uri)
    if not manifest.get("generation") and entries:
        # remember the ETag of the first cached event file to notice a rewritten trial
        key = min(entries, key=lambda e: e.step).event_file
        folder = layout.join(uri, key.rsplit("/", 1)[0])
        etag = {info.uri: info.etag for info in store.iter_objects(folder)}.get(
            layout.join(uri, key)
        )
        if etag:
            manifest["generation"] = [key, etag]
            _write_manifest(root, manifest)
    return entries


def _fetch(
    pairs: list[tuple[str, Path]],
    *,
    progress: ProgressCallback | None,
    stage: str,
    tolerate_missing: bool = False,
) -> set[str]:
    """Download ``pairs`` in parallel; with ``tolerate_missing`` return the URIs that do
    not exist instead of raising."""
    if not pairs:
        return set()

    def _relay(p: Progress) -> None:
        report(progress, stage, p.done, p.total, p.message)

    try:
        store.download_many(pairs, progress=_relay if progress else None)
        return set()
    except DataNotFoundError:
        if not tolerate_missing:
            raise
    # rare: an object vanished or has not arrived; find which, one by one
    missing = set()
    for uri, dest in pairs:
        if not dest.is_file():
            try:
                store.download_many([(uri, dest)])
            except DataNotFoundError:
                missing.add(uri)
    return missing
