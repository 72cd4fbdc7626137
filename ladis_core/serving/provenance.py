"""Provenance of requests: the ``X-Ladis-Provenance`` header (where an input came from:
``source_index``, ``true_label``, ``attack``, ``epsilon``, ``hour``, …) parsed, stamped
with the captured step and written as JSON lines under the provenance URI, in parts
(``part-<first step>-<last step>-<run>.jsonl``, written once).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from ladis_core import store
from ladis_core.errors import InputError, LadisError, check
from ladis_core.store import layout

log = logging.getLogger("ladis.server")


PROVENANCE_HEADER = "X-Ladis-Provenance"


DEFAULT_PROVENANCE_EVERY = 100


MAX_PROVENANCE_HEADER_CHARS = 4096


#: field → accepted JSON types of the provenance contract (docs/architecture.md, "Formats a world holds")
_PROVENANCE_FIELDS: dict[str, tuple[type, ...]] = {
    "source_index": (int,),
    "true_label": (int,),
    "attack": (str,),
    "epsilon": (int, float),
    "hour": (str,),
}


def parse_provenance(text: str | None) -> dict[str, Any] | None:
    """Validate an ``X-Ladis-Provenance`` header: a JSON object of scalars, the known
    fields with their contract types. ``step`` is dropped (the server fills it in)."""
    if text is None or not text.strip():
        return None
    check(
        len(text) <= MAX_PROVENANCE_HEADER_CHARS,
        f"the {PROVENANCE_HEADER} header is {len(text)} characters; at most {MAX_PROVENANCE_HEADER_CHARS}",
    )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"the {PROVENANCE_HEADER} header is not valid JSON ({exc.msg})") from None
    check(isinstance(value, dict), f"the {PROVENANCE_HEADER} header must be a JSON object")
    record: dict[str, Any] = {}
    for key, item in value.items():
        if key == "step":
            continue
        check(
            item is None or isinstance(item, str | int | float | bool),
            f"{PROVENANCE_HEADER} field {key!r} must be a string, number, boolean or null",
        )
        # json.loads accepts NaN/Infinity, which the JSON-lines parts cannot hold
        check(
            not isinstance(item, float) or math.isfinite(item),
            f"{PROVENANCE_HEADER} field {key!r} must be a finite number, not {item!r}",
        )
        types = _PROVENANCE_FIELDS.get(key)
        if types is not None and item is not None:
            ok = isinstance(item, types) and not isinstance(item, bool)
            names = " or ".join(t.__name__ for t in types)
            check(ok, f"{PROVENANCE_HEADER} field {key!r} must be {names}, not {item!r}")
        record[key] = item
    return record


class ProvenanceRecorder:
    """Buffers provenance lines and writes them under ``uri`` in parts.

    Each part is one object written once (``if_absent``): ``part-<first step>-<last
    step>-<run id>.jsonl`` with one JSON object per line, sorted by step. A part is
    written every ``every`` records, on :meth:`flush` and on :meth:`close`. A failed write
    keeps the lines for the next attempt; :meth:`close` raises if they still cannot be
    written, so a loss is never silent. Thread-safe.
    """

    def __init__(self, uri: str, *, every: int = DEFAULT_PROVENANCE_EVERY) -> None:
        check(every >= 1, f"provenance_every={every} must be at least 1")
        self.uri = uri.rstrip("/")
        self.every = int(every)
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._buffer: list[dict[str, Any]] = []
        self._parts = 0
        self._written = 0
        self._closed = False

    @property
    def written(self) -> int:
        """Records written so far."""
        return self._written

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def add(self, step: int, fields: Mapping[str, Any]) -> None:
        """Record that request ``step`` came from ``fields``; may write a part."""
        record = {"step": int(step), **{k: v for k, v in fields.items() if k != "step"}}
        with self._lock:
            self._buffer.append(record)
            due = len(self._buffer) >= self.every or self._closed
        if due:
            try:
                self.flush()
            except LadisError as exc:  # kept in the buffer; the request itself succeeded
                log.error("provenance not written yet (will retry): %s", exc)

    def flush(self) -> int:
        """Write what is buffered as one part; returns the number of records written."""
        with self._write_lock:
            with self._lock:
                lines, self._buffer = self._buffer, []
            if not lines:
                return 0
            lines.sort(key=lambda r: r["step"])
            self._parts += 1
            name = f"part-{lines[0]['step']:010d}-{lines[-1]['step']:010d}-{self.run_id}-{self._parts:05d}.jsonl"
            body = "".join(json.dumps(line, allow_nan=False) + "\n" for line in lines).encode()
            try:
                store.write_bytes(
                    layout.join(self.uri, name),
                    body,
                    content_type="application/x-ndjson",
                    if_absent=True,
                )
            except BaseException:
                with self._lock:
                    self._buffer[:0] = lines
                raise
            self._written += len(lines)
            return len(lines)

    def close(self) -> None:
        """Write the rest; later records are written at once (nothing is dropped)."""
        with self._lock:
            self._closed = True
        self.flush()
