"""Turning the index entries of a read into one :class:`~ladis_core.trials.data.TrialData`."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

from ladis_core.errors import DataNotFoundError
from ladis_core.progress import ProgressCallback, report
from ladis_core.trials.data import TrialData
from ladis_core.trials.index import _group_of, _StepEntry
from ladis_core.trials.meta import TrialMeta
from ladis_core.trials.names import _input_name, _output_name, _resolve_layers
from ladis_core.trials.packs import _Pack
from ladis_core.trials.records import RecordDecoder
from ladis_core.trials.steps import _as_rows, _read_step, _rows


def _empty(
    uri: str,
    mode: str,
    layers: Sequence[str] | None,
    available: dict[str, Any],
    meta: TrialMeta | None = None,
) -> TrialData:
    """A result without rows (the range holds no step yet); the layer names are checked."""
    names = _resolve_layers(layers, available, uri, meta)
    return TrialData(
        uri=uri,
        mode=mode,
        steps=np.zeros(0, dtype=np.int64),
        layers={name: np.zeros((0, 0), dtype=np.float32) for name in names},
        predicted_class=np.zeros(0, dtype=np.int64),
        inputs=None,
        output_name=_output_name(available, meta) or "",
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
    meta: TrialMeta | None = None,
) -> TrialData:
    """Decode ``entries`` (sorted, complete) into a :class:`TrialData`; ``meta`` (the
    trial's ``ladis.json``) names the penultimate layer, the output and the input."""
    available = entries[-1].tensors
    names = _resolve_layers(layers, available, uri, meta)
    output = _output_name(available, meta)
    if output is None:
        raise DataNotFoundError(
            f"the {mode} steps of the trial at {uri} hold no model output (<Model>_output_0), so "
            "the predicted classes are unknown; capture it with ladis_core.capture"
        )
    input_name = _input_name(available, output, meta) if include_inputs else None
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
