"""Running the monitoring job on a schedule (``--every 1h``)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ladis_core.errors import InputError, JobExistsError, LadisError, check
from ladis_core.monitoring.clock import _iso, _now

log = logging.getLogger("ladis.monitor")


def parse_interval(text: str | float | timedelta) -> timedelta:
    """``1h``, ``30m``, ``90s``, ``1d``, ``1h30m``, ``0.5s`` or plain seconds → timedelta."""
    if isinstance(text, timedelta):
        value = text
    elif isinstance(text, int | float):
        value = timedelta(seconds=float(text))
    else:
        raw = str(text).strip().lower()
        units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
        total, number = 0.0, ""
        try:
            if raw and raw[-1].isdigit():
                total = float(raw)
            else:
                for char in raw:
                    if char.isdigit() or char == ".":
                        number += char
                    elif char in units and number:
                        total += float(number) * units[char]
                        number = ""
                    else:
                        raise ValueError(char)
                if number:
                    raise ValueError(number)
        except ValueError:
            raise InputError(
                f"interval {text!r} is not a duration; use e.g. 1h, 30m, 90s or 1h30m"
            ) from None
        value = timedelta(seconds=total)
    if not value.total_seconds() > 0 or not math.isfinite(value.total_seconds()):
        raise InputError(f"interval {text!r} must be a positive duration")
    return value


@dataclass(frozen=True)
class ScheduleSummary:
    """What a bounded :func:`run_every` did."""

    runs: int
    succeeded: int
    failed: int
    skipped_ticks: int


def _floor_tick(moment: datetime, interval: timedelta) -> datetime:
    step = interval.total_seconds()
    seconds = math.floor(moment.timestamp() / step) * step
    return datetime.fromtimestamp(seconds, UTC)


def run_every(
    job: Callable[[datetime], Any],
    *,
    interval: timedelta | str | float,
    max_runs: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = _now,
) -> ScheduleSummary:
    """Call ``job(scheduled_time)`` now and then at every multiple of ``interval`` (UTC,
    counted from the epoch: ``1h`` runs at the top of each hour), until ``max_runs`` runs
    (forever if ``None``).

    The first run is scheduled at the current tick (the last multiple of ``interval``), so
    restarting a schedule within the hour re-runs nothing (same job id). A tick missed
    because a run took longer is skipped, not made up. A failing run is logged and the
    next one still runs; ``KeyboardInterrupt`` stops the schedule.
    """
    interval = parse_interval(interval)
    check(max_runs is None or max_runs >= 1, f"max_runs={max_runs!r} must be at least 1")
    runs = succeeded = failed = skipped = 0
    tick = _floor_tick(clock(), interval)
    while True:
        runs += 1
        try:
            job(tick)
            succeeded += 1
        except JobExistsError as exc:
            log.info("%s", exc)
            succeeded += 1
        except LadisError as exc:
            failed += 1
            log.error("scheduled job at %s failed: %s", _iso(tick), exc)
        except Exception:  # noqa: BLE001 - a schedule must outlive one broken run
            failed += 1
            log.exception("scheduled job at %s failed with an unexpected error", _iso(tick))
        if max_runs is not None and runs >= max_runs:
            return ScheduleSummary(runs, succeeded, failed, skipped)
        following = tick + interval
        now = clock()
        if now >= following + interval:
            missed = int((now - following) / interval)
            skipped += missed
            log.warning("the last run overran %d tick(s); skipping to the next one", missed)
            following = following + missed * interval
        delay = (following - clock()).total_seconds()
        if delay > 0:
            log.info("next monitoring job at %s (in %.0f s)", _iso(following), delay)
            sleep(delay)
        tick = following
