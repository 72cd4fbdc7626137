"""Reading smdebug trials (reference EVAL / inference PREDICT) into arrays, rows = samples.

A trial is the folder layout SageMaker Debugger (``smdebug``) writes, in S3 or locally::

    <trial>/index/000000000/000000000042_worker_0.json    per step: mode, mode step, and
                                                          the byte range of every tensor
    <trial>/events/000000000042/000000000042_worker_0.tfevents   the tensors (TFRecord)
    <trial>/collections/000000000/worker_0_collections.json
    <trial>/training_job_end.ts

Index files are grouped 1,000 global steps per folder (``index/<step // 1000>/``). The
global step counts every forward pass in any mode, the mode step only those of its mode,
so a mode step is never larger than its global step.

**Why not smdebug's reader.** smdebug's S3 reader finds nothing on SeaweedFS (it lists
with ``StartAfter`` equal to the prefix) and on any S3 lists the events prefix again for
every ``tensor.value()`` (quadratic: 1,000 steps took 394 s, SPEC section 6). Its local
reader is correct but slower than needed (0.34 s for 2,000 steps). So:

**S3 trials are mirrored into a local cache** (``$LADIS_CACHE_DIR/trials/<name>``) with
our own listing and parallel downloads (:mod:`ladis_core.storage`), fetching only what
is new:

- only index folders that can hold steps after ``after_step`` are listed; a folder that
  was listed after a later folder existed is *sealed* (steps are written in order) and
  is never listed again;
- only the event files of steps of the wanted mode and range are fetched;
- a trial rewritten at the same URI (a regenerated demo world) is detected by the ETag of
  the first cached event file (event files carry wall-clock times, so a new capture
  never has the same ETag), and the cache is then dropped.

Sealed folders also get a *catalog* (their parsed index files in one JSON file) and, per
mode and tensor, a *pack* (the decoded rows of all their steps in one ``.npy`` file), so
a warm read of 10,000 steps opens a few dozen files instead of 20,000.

**Tensors are decoded by a small reader of our own** (:mod:`ladis_core.tensor_records`):
the index JSON gives the byte range of each wanted tensor, read with one ``seek``; the
TFRecord/protobuf framing is walked without the (pure-Python) protobuf runtime, and after
the first record of a tensor its header is found with ``bytes.find``. The tests check it against smdebug's own reader.

**Visibility.** A step is visible once its index file exists and its event file is
complete (LADIS's capture uploads event files before index files, in step order). If a
step's event file is missing, that step and every later one are left out, so a bookmark
on the last returned step never skips a request that is still arriving.
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
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

from ladis_core import layout, storage
from ladis_core.cache import TRIAL_LOCK, TRIAL_MANIFEST
from ladis_core.config import S3Settings, cache_root
from ladis_core.errors import DataNotFoundError, InputError, StorageError
from ladis_core.progress import Progress, ProgressCallback, report
from ladis_core.tensor_records import RecordDecoder, decode_tensor_record  # noqa: F401 - part of this API

log = logging.getLogger(__name__)

MODES = ("TRAIN", "EVAL", "PREDICT", "GLOBAL")
#: environment variable naming the cache root (default ``.cache`` in the working folder)
#: smdebug puts the index files of 1,000 consecutive global steps in one folder
INDEX_GROUP_SIZE = 1000
PENULTIMATE_PATTERN = re.compile(r"avgpool_output_\d+$")
_CACHE_FORMAT = 1


@dataclass(frozen=True, eq=False)
class TrialData:
    """The tensors of one trial in one mode, one row per sample.

    A step that recorded a batch of k inputs gives k consecutive rows; ``steps`` repeats
    its step number k times. Rows are in step order.

    - ``steps``: int64 ndarray of shape (n,), the mode step of every row.
    - ``layers``: ``{name: float32 ndarray of shape (n, d)}``, each sample's tensor
      flattened (e.g. ``avgpool_output_0`` → (n, 512)), in the order asked for.
    - ``predicted_class``: int64 ndarray of shape (n,), argmax of the model output.
    - ``inputs``: float32 ndarray of shape (n, C, H, W) (the model inputs, in [0, 1] for
      LADIS models), or ``None`` unless asked for.
    - ``output_name``: the model output tensor the classes come from (``ResNet_output_0``).
    """

    uri: str
    mode: str
    steps: np.ndarray
    layers: dict[str, np.ndarray]
    predicted_class: np.ndarray
    inputs: np.ndarray | None = None
    output_name: str = ""
    layer_names: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    @property
    def step_count(self) -> int:
        """Number of distinct steps (requests, for an inference trial)."""
        return int(np.unique(self.steps).size)

    @property
    def first_step(self) -> int | None:
        return int(self.steps[0]) if len(self) else None

    @property
    def last_step(self) -> int | None:
        return int(self.steps[-1]) if len(self) else None


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


# --------------------------------------------------------------------------- public API


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


def list_layers(uri: str, *, mode: str) -> list[str]:
    """Names of the layers saved in the newest step of ``mode``, in the order the forward
    pass produced them (inputs left out, the model output such as ``ResNet_output_0``
    included). Reads one index file. :class:`DataNotFoundError` when the trial is
    missing or has no step in that mode."""
    mode = _check_mode(mode)
    entry = _tail_entry(uri, mode=mode)
    if entry is None:
        raise DataNotFoundError(_no_steps_message(uri, mode))
    return [name for name in entry.tensors if not _is_input(name)]


def penultimate_layer(names: Sequence[str]) -> str:
    """The penultimate layer among ``names``: the ``avgpool`` output of a ResNet
    (``avgpool_output_0``). :class:`InputError` listing ``names`` if there is none."""
    for name in names:
        if PENULTIMATE_PATTERN.search(name):
            return name
    raise InputError(
        f"no penultimate layer (a name ending in 'avgpool_output_0') among {', '.join(names) or 'no layers'}; "
        "name the layers to use explicitly"
    )


def last_step(uri: str, *, mode: str) -> int | None:
    """The newest step of ``mode`` in the trial, ``None`` if it has none or does not
    exist yet. Reads only the newest index files, never the whole trial."""
    entry = _tail_entry(uri, mode=_check_mode(mode))
    return None if entry is None else entry.mode_step


def load_trial(
    uri: str,
    *,
    mode: str,
    layers: Sequence[str] | None = None,
    include_inputs: bool = False,
    after_step: int | None = None,
    until_step: int | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> TrialData:
    """Read the ``mode`` steps with ``after_step < step ≤ until_step`` of the trial at
    ``uri`` (an ``s3://`` URI or a local folder).

    ``layers``: tensor names (``avgpool_output_0``) or module names (``avgpool``,
    ``layer4.1``); default: the penultimate layer. An ``s3://`` trial is first
    synchronised into ``cache_dir`` (default :func:`default_cache_dir`), fetching only
    objects not cached yet. Progress stages: ``list``, ``index``, ``download``, ``read``.

    Raises :class:`DataNotFoundError` when the trial is missing or holds no step of
    ``mode``, :class:`InputError` for an unknown layer (listing the available ones) and
    :class:`StorageError` for an unreachable store or a corrupt file (naming it). A range
    without steps is not an error: the result then has no rows.
    """
    mode = _check_mode(mode)
    if after_step is not None and until_step is not None and until_step <= after_step:
        raise InputError(f"until_step={until_step} must be greater than after_step={after_step}")
    # a mode step is never above its global step, so no earlier global step can be wanted
    min_global = 0 if after_step is None else max(0, int(after_step) + 1)
    root, remote = _prepare(uri, cache_dir)
    with _cache_lock(root if remote else None):
        full_groups = (
            _sync_index(
                uri,
                root,
                min_global=min_global,
                progress=progress,
                mode=mode,
                until_step=until_step,
            )
            if remote
            else set()
        )
        entries = _load_entries(root, min_global=min_global, cached=remote)
        in_mode = [e for e in entries if e.mode == mode]
        if not in_mode:
            # nothing of this mode from min_global on: an empty range, or no such steps at all
            tail = _tail_entry(uri, mode=mode) if after_step is not None else None
            if tail is None:
                raise DataNotFoundError(_no_steps_message(uri, mode))
            return _empty(uri, mode, layers, tail.tensors)
        in_mode.sort(key=lambda e: (e.mode_step, e.step, e.worker))
        selected = [
            e
            for e in in_mode
            if (after_step is None or e.mode_step > after_step)
            and (until_step is None or e.mode_step <= until_step)
        ]
        packs: dict[int, _Pack] = {}
        if remote:
            for group, members in groupby(in_mode, key=lambda e: _group_of(e.step)):
                # only folders read whole and for good: a pack holds all steps of its folder
                if group in full_groups and group * INDEX_GROUP_SIZE >= min_global:
                    packs[group] = _Pack(root, group, mode, list(members))
            packed = {group for group, pack in packs.items() if pack.rows is not None}
            selected = _sync_events(uri, root, selected, packed=packed, progress=progress)
        else:
            selected = _complete_prefix(root, selected, uri=uri)
        if not selected:
            return _empty(uri, mode, layers, in_mode[-1].tensors)
        return _read_entries(uri, root, mode, selected, layers, include_inputs, progress, packs)


def load_provenance(uri: str) -> dict[int, dict]:
    """All provenance records under ``uri`` (``*.jsonl`` parts, one JSON object per line
    per request), keyed by ``step``; a later part wins for a repeated step. No parts →
    ``{}``. A malformed line raises :class:`StorageError` naming the part and line."""
    parts = [info.uri for info in storage.iter_objects(uri) if info.uri.endswith(".jsonl")]
    if not parts:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(parts))) as pool:
        contents = list(pool.map(storage.read_bytes, parts))
    records: dict[int, dict] = {}
    for part, data in zip(parts, contents, strict=True):
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                step = int(record["step"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise StorageError(
                    f"{part} line {number} is not a provenance record with a 'step' ({exc})"
                ) from None
            records[step] = record
    return records


# --------------------------------------------------------------------------- names


def _check_mode(mode: str) -> str:
    text = str(mode).strip().upper()
    if text not in MODES:
        raise InputError(f"mode={mode!r} is not one of {', '.join(MODES)}")
    return text


def _is_input(name: str) -> bool:
    return "_input_" in name


def _no_steps_message(uri: str, mode: str | None) -> str:
    what = "steps" if mode is None else f"{mode} steps"
    return (
        f"no trial {what} at {uri}: the trial is missing or empty; check the URI (the folder "
        "holding index/ and events/) and that capture has run"
    )


def _resolve_layers(
    requested: Sequence[str] | None, available: dict[str, Any], uri: str
) -> list[str]:
    names = [n for n in available if not _is_input(n)]
    if requested is None:
        return [penultimate_layer(names)]
    if isinstance(requested, str):
        requested = [requested]
    resolved = []
    for layer in requested:
        if layer in available and not _is_input(layer):
            resolved.append(layer)
        elif f"{layer}_output_0" in available:
            resolved.append(f"{layer}_output_0")
        else:
            raise InputError(
                f"layer {layer!r} is not in the trial at {uri}; available layers: {', '.join(names)}"
            )
    if not resolved:
        raise InputError(f"no layer asked for; available layers at {uri}: {', '.join(names)}")
    return list(dict.fromkeys(resolved))


def _output_name(available: dict[str, Any]) -> str | None:
    """The model output tensor, ``<ModelClass>_output_0``: smdebug names the top module
    after its class (``ResNet``) and sub-modules after their attribute names."""
    if "ResNet_output_0" in available:
        return "ResNet_output_0"
    candidates = [n for n in available if re.fullmatch(r"[A-Z][A-Za-z0-9]*_output_0", n)]
    if len(candidates) == 1:
        return candidates[0]
    tops = [
        n
        for n in available
        if n.endswith("_output_0") and n[: -len("_output_0")] + "_input_0" in available
    ]
    return tops[0] if len(tops) == 1 else None


def _input_name(available: dict[str, Any], output: str | None) -> str | None:
    if output:
        name = output[: -len("_output_0")] + "_input_0"
        if name in available:
            return name
    inputs = [n for n in available if n.endswith("_input_0") and "." not in n]
    return inputs[0] if len(inputs) == 1 else None


# --------------------------------------------------------------------------- index files


def _parse_index(data: bytes, where: str, relative: str = "") -> _StepEntry:
    try:
        index = json.loads(data)
        meta = index["meta"]
        tensors = {
            t["tensorname"]: (int(t["start_idx"]), int(t["length"]))
            for t in index["tensor_payload"]
        }
        name = where.replace("\\", "/").rsplit("/", 1)[-1]
        step_text, _, worker = name.removesuffix(".json").partition("_")
        return _StepEntry(
            step=int(step_text),
            worker=worker,
            mode=str(meta["mode"]),
            mode_step=int(meta["mode_step"]),
            index_file=relative,
            event_file=str(meta["event_file_name"]),
            tensors=tensors,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StorageError(
            f"{where} is not a valid smdebug index file ({exc.__class__.__name__}: {exc}); the trial "
            "is corrupt: capture it again (for a cached copy, delete the cache folder)"
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


def _parse_files(root: Path, files: list[tuple[int, str]]) -> list[_StepEntry]:
    entries = []
    prefix = len(str(root)) + 1
    for _step, path in files:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
        entries.append(_parse_index(data, path, path[prefix:].replace(os.sep, "/")))
    return entries


def _load_entries(root: Path, *, min_global: int, cached: bool) -> list[_StepEntry]:
    """The index entries of global steps ≥ ``min_global`` under ``root``, in folder
    order. In a cache (``cached``), each folder keeps a catalog of its parsed index files
    (they never change once written), so only new files are parsed."""
    entries: list[_StepEntry] = []
    for group, path in _index_groups(root):
        if group < _group_of(min_global):
            continue
        files = _index_files(path)
        if not cached:
            parsed = _parse_files(root, [f for f in files if f[0] >= min_global])
        else:
            catalog_path = root / "_catalog" / f"{group:09d}.json"
            catalog = _read_catalog(catalog_path)
            fresh = [f for f in files if os.path.basename(f[1]) not in catalog]
            if fresh:
                for entry in _parse_files(root, fresh):
                    catalog[entry.index_file.rsplit("/", 1)[-1]] = entry
                _atomic_write(
                    catalog_path, json.dumps({k: e.to_list() for k, e in catalog.items()}).encode()
                )
            parsed = [catalog[os.path.basename(f[1])] for f in files if f[0] >= min_global]
        entries.extend(parsed)
    return entries


def _read_catalog(path: Path) -> dict[str, _StepEntry]:
    try:
        return {
            name: _StepEntry.from_list(item) for name, item in json.loads(path.read_bytes()).items()
        }
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def _tail_entry(uri: str, *, mode: str | None) -> _StepEntry | None:
    """The index entry of the newest step of ``mode`` (any mode for ``None``), reading as
    few index files as possible (newest folder first, newest file first)."""
    if storage.is_s3(uri):
        index_prefix = layout.join(uri, "index")
        groups = sorted(
            (g for g in storage.list_children(index_prefix) if g.isdigit()), reverse=True
        )
        for group in groups:
            infos = [
                i
                for i in storage.list_objects(layout.join(index_prefix, group))
                if i.uri.endswith(".json")
            ]
            infos.sort(key=lambda i: _step_of_name(i.uri), reverse=True)
            for info in infos:
                entry = _parse_index(storage.read_bytes(info.uri), info.uri)
                if mode is None or entry.mode == mode:
                    return entry
        return None
    root = storage.local_path(uri)
    for _group, path in reversed(_index_groups(root)):
        for _step, file in sorted(_index_files(path), reverse=True):
            entry = _parse_index(Path(file).read_bytes(), file)
            if mode is None or entry.mode == mode:
                return entry
    return None


def _step_of_name(uri: str) -> int:
    text = uri.rsplit("/", 1)[-1].partition("_")[0]
    return int(text) if text.isdigit() else -1


# --------------------------------------------------------------------------- the S3 cache


def _prepare(uri: str, cache_dir: str | Path | None) -> tuple[Path, bool]:
    if not storage.is_s3(uri):
        root = storage.local_path(uri)
        if not root.is_dir():
            raise DataNotFoundError(_no_steps_message(uri, None))
        return root, False
    storage.split_s3(uri)  # validates the URI
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


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


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
    current = {info.uri: info.etag for info in storage.iter_objects(folder)}
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
    groups = sorted(int(g) for g in storage.list_children(index_prefix) if g.isdigit())
    if not groups and not storage.list_objects(uri):
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
        for info in storage.iter_objects(folder, start_after=after):
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
            if _passes(root / "index" / name, mode=mode, until_step=until_step):
                break
    _fetch(wanted, progress=progress, stage="index")
    known.update(updates)
    _write_manifest(root, manifest)
    return {
        int(name)
        for name, state in known.items()
        if state["sealed"] and state["since"] <= int(name) * INDEX_GROUP_SIZE
    }


def _passes(folder: Path, *, mode: str | None, until_step: int) -> bool:
    """Whether the cached index ``folder`` holds a ``mode`` step above ``until_step``
    (its newest step of that mode is read, newest file first)."""
    if not folder.is_dir():
        return False
    for _step, path in sorted(_index_files(str(folder)), reverse=True):
        entry = _parse_index(Path(path).read_bytes(), path)
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
        dest = os.path.join(root, entry.event_file)
        try:
            complete = os.stat(dest).st_size >= entry.event_size
        except OSError:
            complete = False
        if not complete:
            wanted.append((layout.join(uri, entry.event_file), Path(dest)))
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
        etag = {info.uri: info.etag for info in storage.iter_objects(folder)}.get(
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
        storage.download_many(pairs, progress=_relay if progress else None)
        return set()
    except DataNotFoundError:
        if not tolerate_missing:
            raise
    # rare: an object vanished or has not arrived; find which, one by one
    missing = set()
    for uri, dest in pairs:
        if not dest.is_file():
            try:
                storage.download_many([(uri, dest)])
            except DataNotFoundError:
                missing.add(uri)
    return missing


def _complete_prefix(root: Path, entries: list[_StepEntry], *, uri: str) -> list[_StepEntry]:
    """``entries`` up to (not including) the first whose event file is missing; a short
    event file is corruption and raises, naming it."""
    for position, entry in enumerate(entries):
        path = os.path.join(root, entry.event_file)
        try:
            size = os.stat(path).st_size
        except OSError:
            return entries[:position]
        if size < entry.event_size:
            raise StorageError(
                f"{path} is shorter ({size} bytes) than its index file {entry.index_file} says "
                f"({entry.event_size}); the trial at {uri} is corrupt: capture it again"
                + (" (or delete the cache folder)" if storage.is_s3(uri) else "")
            )
    return entries


def _read_step(
    root: Path, entry: _StepEntry, names: Sequence[str], decoder: RecordDecoder, uri: str
) -> dict[str, np.ndarray]:
    path = os.path.join(root, entry.event_file)
    out = {}
    try:
        with open(path, "rb") as handle:
            for name in names:
                start, length = entry.tensors[name]
                handle.seek(start)
                record = handle.read(length)
                try:
                    out[name] = decoder.decode(name, record)
                except (ValueError, IndexError) as exc:
                    raise StorageError(
                        f"{path} is corrupt: tensor {name} of step {entry.mode_step} cannot be decoded "
                        f"({exc}); capture the trial at {uri} again"
                        + (" (or delete the cache folder)" if storage.is_s3(uri) else "")
                    ) from None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return out


# --------------------------------------------------------------------------- packs


def _pack_file(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if safe != name:
        safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return safe + ".npy"


class _Pack:
    """The decoded rows of every ``mode`` step of one sealed index folder, per tensor
    (``_packs/<folder>/<MODE>/<tensor>.npy``, shape (rows, *tensor shape[1:]))."""

    def __init__(self, root: Path, group: int, mode: str, members: list[_StepEntry]) -> None:
        self.folder = root / "_packs" / f"{group:09d}" / mode
        self.members = members
        self.key = [[e.step, e.worker] for e in members]
        self.rows: np.ndarray | None = None
        meta = self.folder / "meta.json"
        try:
            saved = json.loads(meta.read_bytes())
            if saved.get("entries") == self.key:
                self.rows = np.asarray(saved["rows"], dtype=np.int64)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if self.rows is None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def arrays(
        self, names: Sequence[str], root: Path, decoder: RecordDecoder, uri: str
    ) -> dict[str, np.ndarray] | None:
        """The packed arrays of ``names`` (memory-mapped), packing the missing ones;
        ``None`` when a step's event file is not cached (it was outside a read range)."""
        out: dict[str, np.ndarray] = {}
        missing = []
        for name in names:
            path = self.folder / _pack_file(name)
            if self.rows is not None and path.is_file():
                try:
                    out[name] = np.load(path, mmap_mode="r")
                    continue
                except (OSError, ValueError):
                    pass
            missing.append(name)
        if missing:
            if _complete_prefix(root, self.members, uri=uri) != self.members:
                return None
            per_step = [_read_step(root, e, missing, decoder, uri) for e in self.members]
            rows = np.array([_rows(step[missing[0]]) for step in per_step], dtype=np.int64)
            if self.rows is not None and not np.array_equal(rows, self.rows):
                raise StorageError(
                    f"the cached pack {self.folder} disagrees with its trial; delete the cache folder"
                )
            self.folder.mkdir(parents=True, exist_ok=True)
            for name in missing:
                array = np.concatenate([_as_rows(step[name]) for step in per_step])
                fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".pack.", suffix=".npy")
                with os.fdopen(fd, "wb") as handle:
                    np.save(handle, array)
                os.replace(tmp, self.folder / _pack_file(name))
                out[name] = array
            if self.rows is None:
                self.rows = rows
                _atomic_write(
                    self.folder / "meta.json",
                    json.dumps({"entries": self.key, "rows": rows.tolist()}).encode(),
                )
        return out


# --------------------------------------------------------------------------- assembly


def _rows(output: np.ndarray) -> int:
    """Samples in a step: the batch dimension of a tensor (1 for a 0-/1-D tensor)."""
    return int(output.shape[0]) if output.ndim > 1 else 1


def _as_rows(value: np.ndarray) -> np.ndarray:
    return value if value.ndim > 1 else value.reshape(1, *value.shape)


def _empty(
    uri: str, mode: str, layers: Sequence[str] | None, available: dict[str, Any]
) -> TrialData:
    """A result without rows (the range holds no step yet); the layer names are checked."""
    names = _resolve_layers(layers, available, uri)
    return TrialData(
        uri=uri,
        mode=mode,
        steps=np.zeros(0, dtype=np.int64),
        layers={name: np.zeros((0, 0), dtype=np.float32) for name in names},
        predicted_class=np.zeros(0, dtype=np.int64),
        inputs=None,
        output_name=_output_name(available) or "",
        layer_names=tuple(names),
    )


def _read_entries(
    uri: str,
    root: Path,
    mode: str,
    entries: list[_StepEntry],
    layers: Sequence[str] | None,
    include_inputs: bool,
    progress: ProgressCallback | None,
    packs: dict[int, _Pack],
) -> TrialData:
    """Decode ``entries`` (sorted, complete) into a :class:`TrialData`."""
    available = entries[-1].tensors
    names = _resolve_layers(layers, available, uri)
    output = _output_name(available)
    if output is None:
        raise DataNotFoundError(
            f"the {mode} steps of the trial at {uri} hold no model output (<Model>_output_0), so "
            "the predicted classes are unknown; capture it with ladis_core.capture"
        )
    input_name = _input_name(available, output) if include_inputs else None
    if include_inputs and input_name is None:
        raise DataNotFoundError(
            f"the trial at {uri} holds no model inputs (<Model>_input_0); capture it with inputs"
        )
    to_read = list(dict.fromkeys([output, *names, *([input_name] if input_name else [])]))
    for entry in entries:
        lacking = [n for n in to_read if n not in entry.tensors]
        if lacking:
            raise DataNotFoundError(
                f"step {entry.mode_step} of the trial at {uri} ({entry.index_file}) lacks {', '.join(lacking)}; "
                "read a step range where it was captured (after_step/until_step) or other layers"
            )

    # blocks of consecutive rows: (mode step per row, {tensor: (rows, ...)}); packs are
    # memory-mapped and per-step records are views, so the copy below is the only one
    blocks: list[tuple[np.ndarray, dict[str, np.ndarray]] | None] = []
    decoder = RecordDecoder()
    total, done = len(entries), 0
    report(progress, "read", 0, total, f"{mode} steps of {uri}")
    every = max(1, total // 50)
    for group, members in groupby(entries, key=lambda e: _group_of(e.step)):
        members = list(members)
        pack = packs.get(group)
        if pack is not None and not _is_run_of(members, pack.members):
            pack = None
        arrays = pack.arrays(to_read, root, decoder, uri) if pack is not None else None
        if pack is not None and arrays is not None and pack.rows is not None:
            full = pack.members
            first = full.index(members[0])
            row_start = int(pack.rows[:first].sum())
            row_stop = row_start + int(pack.rows[first : first + len(members)].sum())
            step_rows = np.repeat(
                np.array([e.mode_step for e in members], dtype=np.int64),
                pack.rows[first : first + len(members)],
            )
            blocks.append((step_rows, {n: a[row_start:row_stop] for n, a in arrays.items()}))
            done += len(members)
            report(progress, "read", done, total)
            continue
        for entry in members:
            values = _read_step(root, entry, to_read, decoder, uri)
            rows = _rows(values[output])
            blocks.append(
                (
                    np.full(rows, entry.mode_step, dtype=np.int64),
                    {n: _as_rows(v) for n, v in values.items()},
                )
            )
            done += 1
            if done % every == 0 or done == total:
                report(progress, "read", done, total)

    n = sum(len(block[0]) for block in blocks if block is not None)
    arrays_out: dict[str, np.ndarray] = {}
    for name in to_read:
        sample = blocks[0][1][name]  # type: ignore[index]
        if name == input_name:
            arrays_out[name] = np.empty((n, *sample.shape[1:]), dtype=np.float32)
        else:
            arrays_out[name] = np.empty(
                (n, int(np.prod(sample.shape[1:], dtype=np.int64))), dtype=np.float32
            )
    steps = np.empty(n, dtype=np.int64)
    offset = 0
    for position, block in enumerate(blocks):
        assert block is not None
        step_rows, values = block
        rows = len(step_rows)
        steps[offset : offset + rows] = step_rows
        for name in to_read:
            target = arrays_out[name][offset : offset + rows]
            value = values[name]
            if value.size != target.size:
                raise DataNotFoundError(
                    f"{name} has shape {value.shape[1:]} at step {int(step_rows[0])} of {uri}, unlike the "
                    f"earlier steps ({target.shape[1:]}); read one capture configuration at a time "
                    "(after_step/until_step)"
                )
            target[...] = value.reshape(target.shape)
        blocks[position] = None  # free the records as we go: peak memory ≈ the result
        offset += rows
    logits = arrays_out[output]
    predicted = logits.argmax(axis=1).astype(np.int64) if n else np.zeros(0, dtype=np.int64)
    return TrialData(
        uri=uri,
        mode=mode,
        steps=steps,
        layers={name: arrays_out[name] for name in names},
        predicted_class=predicted,
        inputs=arrays_out[input_name] if input_name else None,
        output_name=output,
        layer_names=tuple(names),
    )


def _is_run_of(members: list[_StepEntry], full: list[_StepEntry]) -> bool:
    """Whether ``members`` is a consecutive run of ``full`` (both in step order) whose
    event files are all cached, so the pack of ``full`` can serve it."""
    try:
        first = full.index(members[0])
    except ValueError:
        return False
    return full[first : first + len(members)] == members
