"""Publishing finished steps from a staging folder to the trial.

Event files first (in parallel), then index files in step order, so a reader never sees
a step before its tensors. Step files are created only if absent, so a second endpoint
capturing into the same trial is stopped instead of overwriting steps.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ladis_core import store
from ladis_core.errors import CaptureConflictError, InputError, StorageError
from ladis_core.progress import ProgressCallback, report
from ladis_core.store import layout
from ladis_core.trials.index import _parse_index, event_path

#: the staged upload of event files uses this many threads
UPLOAD_WORKERS = 16


class _Publisher:
    """Copies finished steps from a staging folder to the trial at ``target``.

    A step is finished when smdebug has written its index file (it closes the event file
    first and renames both into place). Event files go first, in parallel; index files
    follow in step order; both are then removed from staging.

    Step files are created only if absent (S3 ``If-None-Match: *``). An object already
    there with the same bytes is this publisher's own earlier, interrupted attempt; one
    with other bytes (event files carry wall-clock times) means a second writer numbers
    steps in the same trial, and :class:`CaptureConflictError` is raised, leaving the
    unpublished steps in staging.
    """

    def __init__(self, staging: Path, target: str) -> None:
        self.staging = staging
        self.target = target.rstrip("/")
        self.lock = threading.Lock()
        self.steps = 0
        self.first_step: int | None = None
        self.last_step: int | None = None
        self._published_meta: dict[str, int] = {}

    def _uri(self, relative: str) -> str:
        return layout.join(self.target, relative)

    def publish(self, *, final: bool = False, progress: ProgressCallback | None = None) -> int:
        """Publish every finished step (and, with ``final``, the collections and
        end-of-job files); returns the number of steps published."""
        with self.lock:
            steps = self._finished_steps()
            total = len(steps)
            report(progress, "upload", 0, total)
            if steps:
                self._create_many([event for _, event, _ in steps])
                for position, (index, event, mode_step) in enumerate(steps, 1):
                    self._create(index)
                    index.unlink()
                    event.unlink(missing_ok=True)
                    with contextlib.suppress(OSError):
                        event.parent.rmdir()
                    self.steps += 1
                    self.first_step = mode_step if self.first_step is None else self.first_step
                    self.last_step = mode_step
                    report(progress, "upload", position, total)
            extras = [self.staging / "training_job_end.ts"] if final else []
            collections = self.staging / "collections"
            if collections.is_dir():
                extras.extend(collections.rglob("*.json"))
            for path in extras:
                if path.is_file():
                    stamp = path.stat().st_mtime_ns
                    key = path.relative_to(self.staging).as_posix()
                    if self._published_meta.get(key) != stamp:
                        self._put(path)
                        self._published_meta[key] = stamp
            return total

    def _finished_steps(self) -> list[tuple[Path, Path, int]]:
        """(index file, event file, mode step) of every finished step, in step order.

        Index files are parsed like a reader parses them: an event file name of another
        shape than smdebug's, or one leading outside the staging folder, raises
        :class:`~ladis_core.errors.UnsafeNameError` before anything is published."""
        index_files = []
        index_root = self.staging / "index"
        if index_root.is_dir():
            for path in index_root.rglob("*.json"):
                step_text = path.name.partition("_")[0]
                if step_text.isdigit() and path.is_file() and not path.is_symlink():
                    index_files.append((int(step_text), path))
        index_files.sort()
        steps = []
        for _step, path in index_files:
            relative = path.relative_to(self.staging).as_posix()
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
            entry = _parse_index(data, str(path), relative)
            steps.append((path, event_path(self.staging, entry), entry.mode_step))
        return steps

    def _put(self, path: Path) -> None:
        store.write_bytes(self._uri(path.relative_to(self.staging).as_posix()), path.read_bytes())

    def _create(self, path: Path) -> None:
        uri = self._uri(path.relative_to(self.staging).as_posix())
        data = path.read_bytes()
        if not store.write_bytes(uri, data, if_absent=True) and store.read_bytes(uri) != data:
            raise CaptureConflictError(
                f"{uri} was already written by another process: two endpoints are capturing into "
                f"the trial {self.target}. Capture stopped (unpublished steps stay in {self.staging}); "
                "give each endpoint its own capture URI"
            )

    def _create_many(self, paths: list[Path]) -> None:
        if len(paths) == 1:
            self._create(paths[0])
            return
        pool = ThreadPoolExecutor(max_workers=min(UPLOAD_WORKERS, len(paths)))
        try:
            futures = [pool.submit(self._create, p) for p in paths]
        except RuntimeError:
            # at interpreter exit (a capture closed by atexit after uvicorn or the serving
            # toolkit returned) no new thread may start: upload one by one instead (a step
            # already sent is sent again with the same bytes, which _create accepts)
            pool.shutdown(wait=True)
            for path in paths:
                self._create(path)
            return
        with pool:
            for future in futures:
                future.result()


def _check_target(out: str) -> str:
    text = str(out).strip()
    if not text:
        raise InputError("the capture destination is empty; give an s3:// URI or a local folder")
    if store.is_s3(text):
        bucket, key = store.split_s3(text)
        if not key.strip("/"):
            raise InputError(
                f"capture destination {text!r} is a bare bucket; name a prefix (s3://{bucket}/trials/x)"
            )
    return text.rstrip("/")


def _target_has_objects(target: str) -> bool:
    return next(iter(store.iter_objects(target)), None) is not None


def _clear_target(target: str) -> None:
    uris = [info.uri for info in store.iter_objects(target)]
    if uris:
        with ThreadPoolExecutor(max_workers=min(UPLOAD_WORKERS, len(uris))) as pool:
            list(pool.map(store.delete, uris))
