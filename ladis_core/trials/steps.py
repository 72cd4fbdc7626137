"""Reading the tensors of one step from its event file, and the completeness check of a
run of steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ladis_core import store
from ladis_core.errors import CorruptObjectError, StorageError
from ladis_core.store import layout
from ladis_core.trials.index import _StepEntry, event_path
from ladis_core.trials.records import RecordDecoder


def _complete_prefix(root: Path, entries: list[_StepEntry], *, uri: str) -> list[_StepEntry]:
    """``entries`` up to (not including) the first whose event file is missing; a short
    event file is corruption and raises, naming it."""
    for position, entry in enumerate(entries):
        path = event_path(root, entry)
        try:
            size = path.stat().st_size
        except OSError:
            return entries[:position]
        if size < entry.event_size:
            raise CorruptObjectError(
                f"{_shown(path, entry, uri)} is shorter ({size} bytes) than its index file "
                f"{entry.index_file} says "
                f"({entry.event_size}); the trial at {uri} is corrupt: capture it again"
                + (" (or delete the cache folder)" if store.is_s3(uri) else "")
            )
    return entries


def _read_step(
    root: Path, entry: _StepEntry, names: Sequence[str], decoder: RecordDecoder, uri: str
) -> dict[str, np.ndarray]:
    path = event_path(root, entry)
    out = {}
    try:
        with open(path, "rb") as handle:
            for name in names:
                start, length = entry.tensors[name]
                handle.seek(start)
                record = handle.read(length)
                try:
                    out[name] = decoder.decode(name, record)
                except (ValueError, IndexError, OverflowError) as exc:
                    raise CorruptObjectError(
                        f"{_shown(path, entry, uri)} is corrupt: tensor {name} of step "
                        f"{entry.mode_step} cannot be decoded "
                        f"({exc}); capture the trial at {uri} again"
                        + (" (or delete the cache folder)" if store.is_s3(uri) else "")
                    ) from None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return out


def _shown(path: Path, entry: _StepEntry, uri: str) -> str:
    """How errors name an event file: the object (and its cached copy) for an S3 trial."""
    if store.is_s3(uri):
        return f"{layout.join(uri, entry.event_file)} (cached at {path})"
    return str(path)


def _rows(output: np.ndarray) -> int:
    """Samples in a step: the batch dimension of a tensor (1 for a 0-/1-D tensor)."""
    return int(output.shape[0]) if output.ndim > 1 else 1


def _as_rows(value: np.ndarray) -> np.ndarray:
    return value if value.ndim > 1 else value.reshape(1, *value.shape)
