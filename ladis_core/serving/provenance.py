"""Provenance of requests: the ``X-Ladis-Provenance`` header (where an input came from:
``source_index``, ``true_label``, ``attack``, ``epsilon``, ``hour``, …) parsed, stamped
with the captured step and written, by a background thread, as JSON lines under the
provenance URI, in parts (``part-<first step>-<last step>-<run>-<n>.jsonl``, written once).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ladis_core import store
from ladis_core.config import redact
from ladis_core.errors import InputError, LadisError, check
from ladis_core.store import layout

log = logging.getLogger("ladis.server")


PROVENANCE_HEADER = "X-Ladis-Provenance"


DEFAULT_PROVENANCE_EVERY = 100

#: records kept while storage fails (a few hundred bytes each); older ones are dropped
DEFAULT_MAX_PENDING = 100_000

#: records wait at most about this long before they are written, even fewer than ``every``
DEFAULT_INTERVAL_S = 60.0


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


@dataclass(frozen=True)
class ProvenanceStatus:
    """How provenance writing is doing (``/ping``): records written, waiting, dropped
    because the buffer was full, and the last write error (``None`` when healthy)."""

    written: int
    pending: int
    dropped: int
    last_error: str | None


class ProvenanceRecorder:
    """Buffers provenance lines; a background thread writes them under ``uri`` in parts.

    No request waits on storage: :meth:`add` only appends to a buffer. A thread writes a
    part of ``every`` records as soon as that many wait, and whatever waits once the
    oldest record is ``interval_s`` old. Each part is one object written once
    (``if_absent``): ``part-<first step>-<last step>-<run id>-<n>.jsonl``, one JSON object
    per line, sorted by step. A failed write keeps the lines and is retried with
    exponential backoff (``retry_s`` doubling up to ``max_retry_s``). The buffer holds at
    most ``max_pending`` records; past that the oldest are dropped, counted and logged
    (an outage long enough to fill it must not exhaust the endpoint's memory).
    :meth:`flush` writes everything now; :meth:`close` stops the thread and writes the
    rest, raising if it cannot, so a loss is never silent. Thread-safe.
    """

    def __init__(
        self,
        uri: str,
        *,
        every: int = DEFAULT_PROVENANCE_EVERY,
        max_pending: int = DEFAULT_MAX_PENDING,
        interval_s: float = DEFAULT_INTERVAL_S,
        retry_s: float = 1.0,
        max_retry_s: float = 60.0,
    ) -> None:
        check(every >= 1, f"provenance_every={every} must be at least 1")
        check(max_pending >= every, f"max_pending={max_pending} must be at least every={every}")
        self.uri = uri.rstrip("/")
        self.every = int(every)
        self.max_pending = int(max_pending)
        self.interval_s = float(interval_s)
        self._retry_s, self._max_retry_s = float(retry_s), float(max_retry_s)
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._buffer: list[dict[str, Any]] = []
        self._oldest = 0.0
        self._parts = 0
        self._last_part = 0
        self._in_flight = 0
        self._written = 0
        self._dropped = 0
        self._last_error: str | None = None
        self._closed = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ladis-provenance", daemon=True)
        self._thread.start()

    @property
    def written(self) -> int:
        """Records written so far."""
        return self._written

    @property
    def pending(self) -> int:
        """Records not written yet (buffered or being written)."""
        with self._lock:
            return len(self._buffer) + self._in_flight

    def _pending_locked(self) -> int:
        return len(self._buffer) + self._in_flight

    def status(self) -> ProvenanceStatus:
        with self._lock:
            pending = len(self._buffer) + self._in_flight
            return ProvenanceStatus(self._written, pending, self._dropped, self._last_error)

    def add(self, step: int, fields: Mapping[str, Any]) -> None:
        """Record that request ``step`` came from ``fields`` (no I/O, except after
        :meth:`close`, when the record is written at once so that none is lost)."""
        record = {"step": int(step), **{k: v for k, v in fields.items() if k != "step"}}
        with self._lock:
            if not self._buffer:
                self._oldest = time.monotonic()
            self._buffer.append(record)
            overflow = min(len(self._buffer), self._pending_locked() - self.max_pending)
            if overflow > 0:
                del self._buffer[:overflow]
                self._dropped += overflow
                if self._dropped == overflow or self._dropped % 1000 < overflow:
                    log.error(
                        "provenance buffer full (%d records; storage failing: %s): %d "
                        "record(s) dropped so far",
                        self.max_pending,
                        self._last_error,
                        self._dropped,
                    )
            due = len(self._buffer) >= self.every
            closed = self._closed
        if closed:
            try:
                self.flush()
            except LadisError as exc:
                log.error("provenance not written: %s", exc)
        elif due:
            self._wake.set()

    def flush(self) -> int:
        """Write everything buffered now, in parts of at most ``every`` records; returns
        the number of records written. Raises the storage error of a failed part (its
        records, and the later ones, stay buffered)."""
        written = 0
        with self._write_lock:
            while self._write_part(minimum=1):
                written += self._last_part
        return written

    def close(self) -> None:
        """Stop the writer thread and write the rest (raises if it cannot be written)."""
        with self._lock:
            self._closed = True
        self._wake.set()
        self._thread.join(timeout=5 * self._max_retry_s)
        self.flush()

    # -- the writer thread -----------------------------------------------------------
    def _run(self) -> None:
        delay = 0.0
        while True:
            self._wake.wait(timeout=delay or min(self.interval_s, 1.0))
            self._wake.clear()
            with self._lock:
                if self._closed:
                    return
                stale = bool(self._buffer) and time.monotonic() - self._oldest >= self.interval_s
            try:
                with self._write_lock:
                    while self._write_part(minimum=self.every):
                        pass
                    if stale:
                        self._write_part(minimum=1)
                delay = 0.0
            except LadisError as exc:
                delay = min(self._max_retry_s, max(self._retry_s, 2 * delay))
                log.warning("provenance not written yet (retrying in %.0f s): %s", delay, exc)

    def _write_part(self, *, minimum: int) -> bool:
        """Write one part of up to ``every`` records if at least ``minimum`` wait (the
        write lock is held); ``False`` when too few waited."""
        with self._lock:
            if len(self._buffer) < minimum:
                return False
            lines, self._buffer = self._buffer[: self.every], self._buffer[self.every :]
            self._in_flight = len(lines)
            self._oldest = time.monotonic()
        lines.sort(key=lambda r: r["step"])
        self._parts += 1
        name = (
            f"part-{lines[0]['step']:010d}-{lines[-1]['step']:010d}-{self.run_id}-"
            f"{self._parts:05d}.jsonl"
        )
        body = "".join(json.dumps(line, allow_nan=False) + "\n" for line in lines).encode()
        try:
            store.write_bytes(
                layout.join(self.uri, name),
                body,
                content_type="application/x-ndjson",
                if_absent=True,
            )
        except BaseException as exc:
            with self._lock:
                self._buffer[:0] = lines
                self._in_flight = 0
                self._last_error = redact(str(exc))
            self._parts -= 1  # the retry takes the same name
            raise
        with self._lock:
            self._written += len(lines)
            self._in_flight = 0
            self._last_error = None
        self._last_part = len(lines)
        return True
