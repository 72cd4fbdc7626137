"""Progress reporting for long work.

Long-running library functions take ``progress: ProgressCallback | None``. They call it
with a :class:`Progress` as work advances. The dashboard turns it into a progress bar,
the CLI into log lines (:func:`log_progress`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class Progress:
    """One progress report: ``done`` of ``total`` units of ``stage`` are finished."""

    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        """Share done, in [0, 1] (1 when ``total`` is 0)."""
        return 1.0 if self.total <= 0 else min(1.0, max(0.0, self.done / self.total))


ProgressCallback = Callable[[Progress], None]


def report(
    progress: ProgressCallback | None, stage: str, done: int, total: int, message: str = ""
) -> None:
    """Call ``progress`` if one was given (so callers need no ``if``)."""
    if progress is not None:
        progress(Progress(stage=stage, done=done, total=total, message=message))


def log_progress(
    logger: logging.Logger | None = None, *, min_interval_s: float = 2.0
) -> ProgressCallback:
    """A callback that logs progress lines, at most one per stage every ``min_interval_s``.

    The first and last report of every stage are always logged.
    """
    log = logger or logging.getLogger("ladis")
    last_logged: dict[str, float] = {}

    def _callback(p: Progress) -> None:
        now = time.monotonic()
        is_edge = p.done == 0 or p.done >= p.total
        if is_edge or now - last_logged.get(p.stage, 0.0) >= min_interval_s:
            last_logged[p.stage] = now
            suffix = f" — {p.message}" if p.message else ""
            log.info("%s: %d/%d (%.0f%%)%s", p.stage, p.done, p.total, 100 * p.fraction, suffix)

    return _callback


def bar_progress(stream: TextIO | None = None, *, width: int = 30) -> ProgressCallback:
    """A callback drawing one bar per stage on a terminal (``stream``, default stderr),
    redrawn in place; elsewhere (a log file, CI) it logs lines like :func:`log_progress`."""
    out = stream if stream is not None else sys.stderr
    if not getattr(out, "isatty", lambda: False)():
        return log_progress()
    current: list[str] = [""]

    def _callback(p: Progress) -> None:
        if current[0] and current[0] != p.stage:
            out.write("\n")
        current[0] = p.stage
        filled = int(round(width * p.fraction))
        line = f"\r{p.stage} [{'#' * filled}{'-' * (width - filled)}] {p.done}/{p.total}"
        out.write(line + (f" {p.message}" if p.message else ""))
        if p.done >= p.total:
            out.write("\n")
            current[0] = ""
        out.flush()

    return _callback
