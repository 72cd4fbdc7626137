"""The public reading API of a trial: its layers, its last step, its rows, its provenance."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from pathlib import Path

from ladis_core import store
from ladis_core.errors import DataNotFoundError, InputError
from ladis_core.progress import ProgressCallback
from ladis_core.trials.assembly import _empty, _read_entries
from ladis_core.trials.data import TrialData, _check_mode, _no_steps_message
from ladis_core.trials.index import INDEX_GROUP_SIZE, _group_of, _load_entries, _tail_entry
from ladis_core.trials.meta import TrialMeta, read_trial_meta
from ladis_core.trials.mirror import _cache_lock, _prepare, _sync_events, _sync_index
from ladis_core.trials.names import _is_input, penultimate_layer
from ladis_core.trials.packs import _Pack
from ladis_core.trials.steps import _complete_prefix

log = logging.getLogger(__name__)


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


def trial_meta(uri: str) -> TrialMeta | None:
    """What the capture recorded beside the trial (``ladis.json``: the penultimate
    layer, input, output, preprocessing, class names), ``None`` when nothing usable."""
    return read_trial_meta(uri)


def default_layer(uri: str, *, mode: str, meta: TrialMeta | None = None) -> str:
    """The layer a read or a job uses when none is named: the penultimate layer the
    capture recorded (``meta``, read when not given), else the ``avgpool`` output.
    :class:`InputError` listing the layers when neither is there."""
    names = list_layers(uri, mode=mode)
    return penultimate_layer(names, meta if meta is not None else read_trial_meta(uri))


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
    ``layer4.1``); default: the penultimate layer (as the capture recorded it in
    ``ladis.json``, see :func:`trial_meta`). An ``s3://`` trial is first
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
    meta = read_trial_meta(uri)
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
        entries = _load_entries(
            root, min_global=min_global, cached=remote, source=uri if remote else None
        )
        in_mode = [e for e in entries if e.mode == mode]
        if not in_mode:
            # nothing of this mode from min_global on: an empty range, or no such steps at all
            tail = _tail_entry(uri, mode=mode) if after_step is not None else None
            if tail is None:
                raise DataNotFoundError(_no_steps_message(uri, mode))
            return _empty(uri, mode, layers, tail.tensors, meta)
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
            return _empty(uri, mode, layers, in_mode[-1].tensors, meta)
        return _read_entries(
            uri, root, mode, selected, layers, include_inputs, progress, packs, meta
        )


def load_provenance(uri: str) -> dict[int, dict]:
    """All provenance records under ``uri`` (``*.jsonl`` parts, one JSON object per line
    per request), keyed by ``step``; a later part wins for a repeated step. No parts →
    ``{}``. A line that is not a JSON object with an integer ``step`` is skipped (a
    warning names the part, the count and the first such line): one bad line must not
    hide every other record."""
    parts = [info.uri for info in store.iter_objects(uri) if info.uri.endswith(".jsonl")]
    if not parts:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(parts))) as pool:
        contents = list(pool.map(store.read_bytes, parts))
    records: dict[int, dict] = {}
    for part, data in zip(parts, contents, strict=True):
        bad: list[int] = []
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            record = _provenance_record(line)
            if record is None:
                bad.append(number)
                continue
            records[record["step"]] = record
        if bad:
            log.warning(
                "%s: %d malformed line(s) skipped (not a JSON object with an integer 'step'; "
                "first: line %d)",
                part,
                len(bad),
                bad[0],
            )
    return records


def _provenance_record(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    step = record.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return None
    return record
