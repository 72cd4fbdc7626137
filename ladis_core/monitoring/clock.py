"""The job clock: now, ISO-8601 text and the parsing of a scheduled time."""

from __future__ import annotations

from datetime import UTC, datetime

from ladis_core.errors import InputError
from ladis_core.store import layout


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def parse_time(value: str | datetime) -> datetime:
    """An aware UTC datetime from ISO-8601 (``2026-11-23T17:00:00Z``, ``…+01:00``, a date)
    or a job id (``2026-11-23T17-00-00Z``); naive times are taken as UTC."""
    if isinstance(value, datetime):
        return layout.as_utc(value)
    try:
        return layout.parse_time(str(value))
    except ValueError:
        raise InputError(
            f"--at {str(value).strip()!r} is not an ISO-8601 time; use e.g. 2026-11-23T17:00:00Z"
        ) from None
