"""smdebug index files: one JSON file per step (and worker) giving the mode, the mode
step, the event file and the byte range of every tensor in it.

Index files are grouped 1,000 global steps per folder (``index/<step // 1000>/``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ladis_core import store
from ladis_core.errors import CorruptObjectError, StorageError, UnsafeNameError
from ladis_core.store import layout
from ladis_core.store.files import write_atomic
from ladis_core.store.paths import contained_path

#: smdebug puts the index files of 1,000 consecutive global steps in one folder
INDEX_GROUP_SIZE = 1000

#: the only event file name smdebug writes for a step: events/<step>/<step>_<worker>.tfevents
#: (both steps the same); anything else in an index file is refused before it is a path
_EVENT_FILE = re.compile(
    r"events/(\d{1,20})/(\d{1,20})_([A-Za-z0-9_][A-Za-z0-9_.:-]{0,127})\.tfevents"
)

#: bounds on what one index file may declare (a step holds tens of tensors)
_MAX_TENSORS = 10_000
_MAX_OFFSET = 1 << 40


@dataclass(frozen=True)
class _StepEntry:
    """One parsed index file (one step of one worker)."""

    step: int  # global step (from the file name)
    worker: str
    mode: str
    mode_step: int
    index_file: str  # relative to the trial root
    event_file: str  # relative to the trial root
    tensors: dict[str, tuple[int, int]]  # name → (start byte, length) in the event file

    def __post_init__(self) -> None:
        _check_event_file(self.event_file, self.index_file or "an index file")

    @property
    def event_size(self) -> int:
        """The size of the complete event file (the end of its last record)."""
        return max((start + length for start, length in self.tensors.values()), default=0)

    def to_list(self) -> list:
        tensors = [[name, start, length] for name, (start, length) in self.tensors.items()]
        return [
            self.step,
            self.worker,
            self.mode,
            self.mode_step,
            self.index_file,
            self.event_file,
            tensors,
        ]

    @classmethod
    def from_list(cls, item: list) -> _StepEntry:
        step, worker, mode, mode_step, index_file, event_file, tensors = item
        return cls(
            step,
            worker,
            mode,
            mode_step,
            index_file,
            event_file,
            {n: (s, ln) for n, s, ln in tensors},
        )


def _check_event_file(name: str, where: str) -> str:
    """``name`` if it has the shape smdebug writes; :class:`UnsafeNameError` otherwise."""
    match = _EVENT_FILE.fullmatch(name) if isinstance(name, str) else None
    if match is None or match[1] != match[2]:
        shown = repr(name if not isinstance(name, str) or len(name) <= 120 else name[:117] + "...")
        raise UnsafeNameError(
            f"{where} names the event file {shown}, not events/<step>/<step>_<worker>.tfevents "
            "as smdebug writes; the trial is corrupt or forged, so it was not read"
        )
    return name


def event_path(root: Path, entry: _StepEntry) -> Path:
    """The local path of ``entry``'s event file under the trial (or cache) ``root``,
    checked to stay inside it after resolving symlinks."""
    return contained_path(root, entry.event_file, what=f"index file {entry.index_file}")


def _tensor_range(item: dict) -> tuple[str, tuple[int, int]]:
    name, start, length = str(item["tensorname"]), int(item["start_idx"]), int(item["length"])
    if not (0 <= start < _MAX_OFFSET and 0 <= length < _MAX_OFFSET):
        raise ValueError(f"tensor {name[:80]!r} has the byte range {start}+{length}")
    return name, (start, length)


def _parse_index(data: bytes, where: str, relative: str = "", *, shown: str = "") -> _StepEntry:
    """Parse one index file; ``where`` is its path or URI (its name gives step and
    worker), ``shown`` what errors call it (default ``where``: for a cached copy, the
    object it came from)."""
    shown = shown or where
    try:
        index = json.loads(data)
        meta = index["meta"]
        payload = index["tensor_payload"]
        if not isinstance(payload, list) or len(payload) > _MAX_TENSORS:
            raise ValueError(f"tensor_payload must be a list of at most {_MAX_TENSORS} tensors")
        tensors = dict(_tensor_range(t) for t in payload)
        name = where.replace("\\", "/").rsplit("/", 1)[-1]
        step_text, _, worker = name.removesuffix(".json").partition("_")
        event_file = _check_event_file(meta["event_file_name"], shown)
        return _StepEntry(
            step=int(step_text),
            worker=worker,
            mode=str(meta["mode"]),
            mode_step=int(meta["mode_step"]),
            index_file=relative or where,
            event_file=event_file,
            tensors=tensors,
        )
    except (
        UnicodeDecodeError,
        json.JSONDecodeError,
        RecursionError,
        KeyError,
        TypeError,
        ValueError,
    ) as exc:
        raise CorruptObjectError(
            f"{shown} is not a valid smdebug index file ({exc.__class__.__name__}: "
            f"{str(exc)[:200]}); the trial is corrupt: capture it again (for a cached copy, "
            "delete the cache folder)"
        ) from None


def _group_of(step: int) -> int:
    return step // INDEX_GROUP_SIZE


def _index_groups(root: Path) -> list[tuple[int, str]]:
    index_dir = root / "index"
    if not index_dir.is_dir():
        return []
    return sorted(
        (int(p.name), p.path) for p in os.scandir(index_dir) if p.is_dir() and p.name.isdigit()
    )


def _index_files(group_path: str) -> list[tuple[int, str]]:
    """(global step, path) of the index files in one index folder (no temp files)."""
    found = []
    for item in os.scandir(group_path):
        name = item.name
        if name.endswith(".json") and not name.startswith("."):
            step_text = name.partition("_")[0]
            if step_text.isdigit():
                found.append((int(step_text), item.path))
    return found


def _parse_files(root: Path, files: list[tuple[int, str]], source: str | None) -> list[_StepEntry]:
    """Parse index files under ``root``; for a cache of the trial at ``source``, errors
    name the object (and the cached copy)."""
    entries = []
    prefix = len(str(root)) + 1
    for _step, path in files:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
        relative = path[prefix:].replace(os.sep, "/")
        shown = f"{layout.join(source, relative)} (cached at {path})" if source else path
        entries.append(_parse_index(data, path, relative, shown=shown))
    return entries


def _load_entries(
    root: Path, *, min_global: int, cached: bool, source: str | None = None
) -> list[_StepEntry]:
    """The index entries of global steps ≥ ``min_global`` under ``root``, in folder
    order. In a cache (``cached``; of the trial at ``source``), each folder keeps a
    catalog of its parsed index files (they never change once written), so only new
    files are parsed."""
    entries: list[_StepEntry] = []
    for group, path in _index_groups(root):
        if group < _group_of(min_global):
            continue
        files = _index_files(path)
        if not cached:
            parsed = _parse_files(root, [f for f in files if f[0] >= min_global], source)
        else:
            catalog_path = root / "_catalog" / f"{group:09d}.json"
            catalog = _read_catalog(catalog_path)
            fresh = [f for f in files if os.path.basename(f[1]) not in catalog]
            if fresh:
                for entry in _parse_files(root, fresh, source):
                    catalog[entry.index_file.rsplit("/", 1)[-1]] = entry
                _atomic_write(
                    catalog_path, json.dumps({k: e.to_list() for k, e in catalog.items()}).encode()
                )
            parsed = [catalog[os.path.basename(f[1])] for f in files if f[0] >= min_global]
        entries.extend(parsed)
    return entries


def _read_catalog(path: Path) -> dict[str, _StepEntry]:
    """A folder's catalog of parsed index files; anything unreadable (or naming an event
    file of the wrong shape) is dropped, and the index files are parsed again."""
    try:
        return {
            name: _StepEntry.from_list(item) for name, item in json.loads(path.read_bytes()).items()
        }
    except (OSError, ValueError, TypeError, AttributeError, StorageError):
        return {}


def _tail_entry(uri: str, *, mode: str | None) -> _StepEntry | None:
    """The index entry of the newest step of ``mode`` (any mode for ``None``), reading as
    few index files as possible (newest folder first, newest file first)."""
    if store.is_s3(uri):
        index_prefix = layout.join(uri, "index")
        groups = sorted((g for g in store.list_children(index_prefix) if g.isdigit()), reverse=True)
        for group in groups:
            infos = [
                i
                for i in store.list_objects(layout.join(index_prefix, group))
                if i.uri.endswith(".json")
            ]
            infos.sort(key=lambda i: _step_of_name(i.uri), reverse=True)
            for info in infos:
                entry = _parse_index(store.read_bytes(info.uri), info.uri)
                if mode is None or entry.mode == mode:
                    return entry
        return None
    root = store.local_path(uri)
    for _group, path in reversed(_index_groups(root)):
        for _step, file in sorted(_index_files(path), reverse=True):
            entry = _parse_index(Path(file).read_bytes(), file)
            if mode is None or entry.mode == mode:
                return entry
    return None


def _step_of_name(uri: str) -> int:
    text = uri.rsplit("/", 1)[-1].partition("_")[0]
    return int(text) if text.isdigit() else -1


def _atomic_write(path: Path, data: bytes) -> None:
    write_atomic(path, data)
