"""The capture's background writer: steps queued by requests become smdebug step files in
the staging folder, off the request path.

A request puts its step (the copied tensors, see :mod:`~ladis_core.capture.tap`) into a
bounded queue and returns; one writer thread turns each step into its event and index
files (:mod:`~ladis_core.capture.tfevents`), event file first, each written to a temp
name and renamed into place, so an index file in the staging folder always means a
finished step (what the publisher uploads, and what recovery after a kill publishes).

**A full queue is a policy.** The queue holds at most ``max_steps`` steps and
``max_bytes`` bytes of tensors. When a step does not fit:

- ``"drop_oldest"`` (the default for serving): the oldest queued step is dropped and
  counted, so the endpoint never waits for its monitor; the trial then has a gap in its
  step numbers where the dropped steps were;
- ``"block"`` (back-pressure): the request waits until the writer made room, counted
  with the time waited, so every step is kept at the cost of latency.

Either way :meth:`StepWriter.counts` (``/ping``, the metrics) says what happened, and
every drop is logged. A step that cannot be written (a full disk) is retried with
backoff; while it is retried the queue fills and the policy applies. At close a step
that still cannot be written after a few attempts is given up, counted and logged.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ladis_core.capture.tap import CopiedTensor
from ladis_core.capture.tfevents import collections_file, encode_step
from ladis_core.errors import InputError

log = logging.getLogger(__name__)

QUEUE_POLICIES = ("drop_oldest", "block")

#: default bounds of the queue: a burst of steps, or of large intermediate layers
DEFAULT_MAX_STEPS = 1024
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

#: how long a failed write waits before it is tried again (doubling up to the maximum)
_RETRY_FIRST_S, _RETRY_MAX_S = 0.05, 5.0

#: the writer writes what is queued at least this often, and at once when _WAKE_AT steps
#: wait (or someone syncs, or the queue is full)
_BATCH_S = 0.05
_WAKE_AT = 16

#: attempts at a failing write once the capture is closing, before the step is given up
_CLOSING_ATTEMPTS = 3


@dataclass
class PendingStep:
    """One recorded request waiting to be written: its global and mode step, the time it
    was recorded and its tensors by name."""

    step: int
    mode_step: int
    wall_time: float
    tensors: Mapping[str, CopiedTensor]
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.nbytes = sum(t.nbytes for t in self.tensors.values())


@dataclass(frozen=True)
class WriterCounts:
    """What the writer did: steps ``queued`` by requests, ``written`` to staging,
    ``dropped`` by the drop-oldest policy, ``failed``: given up after failing writes at
    close; ``waits`` and ``wait_s``: requests that waited
    for room under back-pressure and how long in all; ``queue_steps`` / ``queue_bytes``:
    what is waiting now; ``write_error``: the last failed write (``None`` once one
    succeeds again)."""

    policy: str
    queued: int
    written: int
    dropped: int
    failed: int
    waits: int
    wait_s: float
    queue_steps: int
    queue_bytes: int
    write_error: str | None


class StepWriter:
    """Writes queued steps of ``mode`` holding ``tensor_names`` (in that order) into the
    trial folder ``staging`` from one background thread."""

    def __init__(
        self,
        staging: Path,
        *,
        tensor_names: Sequence[str],
        mode: str,
        policy: str = "drop_oldest",
        max_steps: int = DEFAULT_MAX_STEPS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if policy not in QUEUE_POLICIES:
            raise InputError(f"queue policy {policy!r} is not one of {', '.join(QUEUE_POLICIES)}")
        if int(max_steps) < 1 or int(max_bytes) < 1:
            raise InputError(
                f"queue bounds must be positive (steps {max_steps}, bytes {max_bytes})"
            )
        self.staging = staging
        self.tensor_names = tuple(tensor_names)
        self.mode = mode
        self.policy = policy
        self.max_steps, self.max_bytes = int(max_steps), int(max_bytes)
        self._queue: collections.deque[PendingStep] = collections.deque()
        self._queue_bytes = 0
        self._changed = threading.Condition()
        self._busy = False  # the writer holds a step it took from the queue
        self._closing = False
        self._urgent = 0  # callers of sync() waiting: write at once
        self._queued = self._written = self._dropped = self._failed = self._waits = 0
        self._wait_s = 0.0
        self._write_error: str | None = None
        self._root = str(staging)
        self._folders: set[str] = set()
        path, data = collections_file(self.tensor_names, mode=mode)
        self._write_file(path, data)
        self._thread = threading.Thread(target=self._run, name="ladis-capture-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ request side

    def put(self, step: PendingStep) -> None:
        """Queue ``step`` (called on the request path: never touches disk or network)."""
        with self._changed:
            if self._closing:
                raise RuntimeError("the capture writer is closed")
            if not self._fits(step) and self.policy == "block":
                started = time.perf_counter()
                self._waits += 1
                self._changed.notify_all()  # the writer makes room now
                while not self._fits(step):
                    self._changed.wait()
                self._wait_s += time.perf_counter() - started
            while not self._fits(step):  # drop_oldest
                oldest = self._queue.popleft()
                self._queue_bytes -= oldest.nbytes
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 100 == 0:
                    log.warning(
                        "capture queue full (%d steps, %d bytes): dropped step %d (%d dropped so far)",
                        len(self._queue) + 1,
                        self._queue_bytes + oldest.nbytes,
                        oldest.mode_step,
                        self._dropped,
                    )
            self._queue.append(step)
            self._queue_bytes += step.nbytes
            self._queued += 1
            if len(self._queue) >= _WAKE_AT or not self._fits(step):
                self._changed.notify_all()  # else the writer comes by within _BATCH_S

    def drop(self, mode_step: int, reason: str) -> None:
        """Count a step that cannot be saved (numbered, never queued), and log why."""
        with self._changed:
            self._queued += 1
            self._dropped += 1
        log.warning("capture step %d dropped: %s", mode_step, reason)

    def _fits(self, step: PendingStep) -> bool:
        if not self._queue:
            return True  # one step always fits, however large
        return (
            len(self._queue) < self.max_steps and self._queue_bytes + step.nbytes <= self.max_bytes
        )

    # ------------------------------------------------------------------ writer side

    def _run(self) -> None:
        _lower_priority()
        while True:
            with self._changed:
                # steps are written in batches: a wake-up per request would hand the
                # interpreter lock back and forth with the request threads
                while not self._closing and not self._urgent and len(self._queue) < _WAKE_AT:
                    if not self._changed.wait(_BATCH_S) and self._queue:
                        break
                if not self._queue:
                    if self._closing:
                        return
                    continue
                step = self._queue.popleft()  # in hand: no longer dropped by the policy
                self._queue_bytes -= step.nbytes
                self._busy = True
                self._changed.notify_all()
            written = self._write_with_retries(step)
            with self._changed:
                self._busy = False
                if written:
                    self._written += 1
                    self._write_error = None
                else:
                    self._failed += 1
                self._changed.notify_all()

    def _write_with_retries(self, step: PendingStep) -> bool:
        """Write ``step``, retrying with backoff while writes fail; once the writer is
        closing, give up after :data:`_CLOSING_ATTEMPTS` (counted as failed, logged)."""
        delay, attempts = _RETRY_FIRST_S, 0
        while True:
            try:
                self._write_step(step)
                return True
            except OSError as exc:
                attempts += 1
                with self._changed:
                    self._write_error = (
                        f"cannot write step {step.mode_step} to {self.staging}: {exc}"
                    )
                    closing = self._closing
                if closing and attempts >= _CLOSING_ATTEMPTS:
                    log.error("%s; the step is lost", self._write_error)
                    return False
                log.warning("%s (retrying in %.2f s)", self._write_error, delay)
                time.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)

    def _write_step(self, step: PendingStep) -> None:
        files = encode_step(
            (
                (name, step.tensors[name].numpy())
                for name in self.tensor_names
                if name in step.tensors
            ),
            step=step.step,
            mode=self.mode,
            mode_step=step.mode_step,
            wall_time=step.wall_time,
        )
        # the event file straight into place: a step is finished only once its index
        # file is there (renamed into place last), so a half-written event file is
        # never read, and a killed writer's is dropped by recovery
        self._write_file(files.event_path, *files.event_parts, atomic=False)
        self._write_file(files.index_path, files.index)

    def _write_file(self, relative: str, *parts: bytes | memoryview, atomic: bool = True) -> None:
        """Write ``parts`` to ``relative`` (through a temp name when ``atomic``). Tensor
        contents are views written straight from the tensors' memory: no copy, and the
        interpreter lock is released while the system writes them."""
        path = os.path.join(self._root, relative)
        folder = os.path.dirname(path)
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            if atomic:  # an index folder, for 1,000 steps (event folders are one a step)
                self._folders.add(folder)
        target = f"{folder}/.{os.path.basename(path)}.tmp" if atomic else path
        with open(target, "wb") as handle:
            for part in parts:
                handle.write(part)
        if atomic:
            os.replace(target, path)

    # ------------------------------------------------------------------ both

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until every queued step is written (or dropped); ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            self._urgent += 1
            self._changed.notify_all()
            try:
                while self._queue or self._busy:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._changed.wait(left)
            finally:
                self._urgent -= 1
        return True

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, then the end-of-job marker, and stop (idempotent)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._write_file("training_job_end.ts", b"")

    def counts(self) -> WriterCounts:
        with self._changed:
            return WriterCounts(
                policy=self.policy,
                queued=self._queued,
                written=self._written,
                dropped=self._dropped,
                failed=self._failed,
                waits=self._waits,
                wait_s=round(self._wait_s, 6),
                queue_steps=len(self._queue),
                queue_bytes=self._queue_bytes,
                write_error=self._write_error,
            )


def _lower_priority() -> None:
    """Run this thread at a lower CPU priority than the request threads (Linux: a thread
    has its own nice value); best effort."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
