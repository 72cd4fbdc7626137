"""Bulk transfer between a store and local folders: parallel downloads, mirroring a
prefix (fetching only what changed) and uploading a folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ladis_core.errors import DataNotFoundError
from ladis_core.progress import ProgressCallback, report
from ladis_core.store.client import (
    DEFAULT_WORKERS,
    _s3_call,
    copy_body,
    is_s3,
    local_path,
    s3_client,
    split_s3,
)
from ladis_core.store.files import write_atomic
from ladis_core.store.objects import iter_objects, write_bytes
from ladis_core.store.paths import contained_path


def _download_one(uri: str, dest: Path) -> None:
    """Fetch one object to ``dest``: it appears whole or not at all (a broken stream or a
    full disk leaves nothing behind, not even the partial file)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        response = _s3_call(uri, "read", s3_client().get_object, Bucket=bucket, Key=key)
        write_atomic(dest, lambda handle: copy_body(response["Body"], uri, handle))
        return
    source = local_path(uri)
    if not source.is_file():
        raise DataNotFoundError(f"{uri} does not exist")
    with open(source, "rb") as handle:
        write_atomic(dest, lambda out: shutil.copyfileobj(handle, out, 1 << 20))


def _run_parallel(
    tasks: list, work, *, workers: int, stage: str, progress: ProgressCallback | None
) -> None:
    total = len(tasks)
    report(progress, stage, 0, total)
    if not total:
        return
    done = 0
    step = max(1, total // 100)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, total))) as pool:
        futures = [pool.submit(work, *task) for task in tasks]
        try:
            for future in as_completed(futures):
                future.result()
                done += 1
                if done % step == 0 or done == total:
                    report(progress, stage, done, total)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def download_many(
    pairs: Iterable[tuple[str, str | Path]],
    *,
    workers: int = DEFAULT_WORKERS,
    progress: ProgressCallback | None = None,
) -> None:
    """Fetch ``(uri, local_destination)`` pairs in parallel; each file appears atomically."""
    tasks = [(uri, Path(dest)) for uri, dest in pairs]
    _run_parallel(tasks, _download_one, workers=workers, stage="download", progress=progress)


MIRROR_MANIFEST = ".ladis-mirror.json"


def mirror_prefix(
    prefix: str,
    local_dir: str | Path,
    *,
    workers: int = DEFAULT_WORKERS,
    progress: ProgressCallback | None = None,
) -> list[str]:
    """Copy every object under ``prefix`` that ``local_dir`` lacks, or holds in another
    version, there, in parallel. Returns the relative paths fetched.

    A manifest in ``local_dir`` records the size and ETag of every mirrored object, so a
    replaced object of the same size (e.g. retrained weights) is fetched again while
    unchanged objects are never downloaded twice.
    """
    local_dir = Path(local_dir)
    manifest_path = local_dir / MIRROR_MANIFEST
    try:
        manifest: dict[str, list] = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    base = prefix.rstrip("/") + "/"
    pairs, versions = [], {}
    # every key is checked before anything is fetched: a key like `p//abs/path` or one
    # holding `..` must not write outside local_dir (SPEC section 7)
    for info in iter_objects(prefix):
        relative = info.uri[len(base) :] if info.uri.startswith(base) else Path(info.uri).name
        if relative == MIRROR_MANIFEST:
            continue
        dest = contained_path(local_dir, relative, what=f"the object {info.uri}")
        versions[relative] = [info.size, info.etag]
        if (
            dest.is_file()
            and dest.stat().st_size == info.size
            and manifest.get(relative) == versions[relative]
        ):
            continue
        pairs.append((info.uri, dest))
    download_many(pairs, workers=workers, progress=progress)
    if pairs:
        manifest.update(versions)
        write_atomic(manifest_path, json.dumps(manifest).encode())
    return [str(Path(dest).relative_to(local_dir)) for _, dest in pairs]


def _upload_one(path: Path, uri: str) -> None:
    write_bytes(uri, path.read_bytes())


def upload_dir(
    local_dir: str | Path,
    prefix: str,
    *,
    workers: int = DEFAULT_WORKERS,
    progress: ProgressCallback | None = None,
) -> int:
    """Upload every file under ``local_dir`` to ``prefix`` (same relative paths), in
    parallel. Returns the number of files."""
    local_dir = Path(local_dir)
    tasks = [
        (path, f"{prefix.rstrip('/')}/{path.relative_to(local_dir).as_posix()}")
        for path in sorted(local_dir.rglob("*"))
        if path.is_file()
    ]
    _run_parallel(tasks, _upload_one, workers=workers, stage="upload", progress=progress)
    return len(tasks)
