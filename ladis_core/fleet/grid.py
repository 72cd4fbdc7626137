"""The grid of a fleet run: endpoint × window.

A window is one scheduled time (a tick: a multiple of the window length ``every``,
counted from the epoch in UTC, so ``1h`` windows sit on the hour) and one job per
endpoint: :func:`ladis_core.monitoring.run_job` with ``at`` = the tick. ``fleet run``
runs the due window (the latest tick); ``--from T --to T`` runs every tick of a range
(a backfill). The windows of one endpoint run one after the other, oldest first, since
each job tests the traffic after the previous job's; different endpoints run in
parallel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ladis_core.errors import InputError
from ladis_core.fleet.config import EndpointSpec
from ladis_core.store import layout

#: a backfill larger than this is refused (a typo in --from would queue years of jobs)
MAX_WINDOWS = 100_000


@dataclass(frozen=True)
class Window:
    """One cell of the grid: ``endpoint`` tested at ``at`` (aware UTC)."""

    endpoint: str
    at: datetime

    @property
    def job_id(self) -> str:
        return layout.job_id_for(self.at)


def floor_tick(moment: datetime, every: timedelta) -> datetime:
    """The last multiple of ``every`` (from the epoch, UTC) at or before ``moment``."""
    step = every.total_seconds()
    return datetime.fromtimestamp(math.floor(layout.as_utc(moment).timestamp() / step) * step, UTC)


def ticks(start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    """Every tick of ``every`` in ``[start, end]``, oldest first."""
    start, end = layout.as_utc(start), layout.as_utc(end)
    if end < start:
        raise InputError(f"--to {end.isoformat()} is before --from {start.isoformat()}")
    first = floor_tick(start, every)
    if first < start:
        first += every
    count = int((end - first) / every) + 1 if first <= end else 0
    if count > MAX_WINDOWS:
        raise InputError(
            f"the range {start.isoformat()} … {end.isoformat()} holds {count:,} windows of "
            f"{every}; at most {MAX_WINDOWS:,} per run"
        )
    return [first + k * every for k in range(count)]


def plan(endpoints: tuple[EndpointSpec, ...], moments: list[datetime]) -> list[list[Window]]:
    """The grid as one queue per endpoint (its windows oldest first)."""
    return [[Window(spec.name, at) for at in sorted(moments)] for spec in endpoints]
