"""Analyst verdicts on monitoring jobs: append-only records next to each job.

An analyst marks a job *confirmed* (a real attack), *dismissed* (a false alarm) or
*needs-review*, with a note. Each verdict is its own small JSON object::

    <monitoring>/<job-id>/verdicts/<time>-<uuid>.json

written with a conditional create (``if_absent=True``), so a record is never overwritten
and ``results.json`` is never touched. The history of a job is the list of its records,
oldest first; the current verdict is the newest one. The key starts with the UTC time (to
the microsecond), so listing order is time order.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from ladis_core import store
from ladis_core.errors import DataNotFoundError, InputError, LadisError
from ladis_core.store import layout

log = logging.getLogger(__name__)

VERDICTS = ("confirmed", "dismissed", "needs-review")
MAX_NOTE_CHARS = 10_000
MAX_ANALYST_CHARS = 200
RECORD_VERSION = 1

_TIME_FORMAT = "%Y-%m-%dT%H-%M-%S.%fZ"
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")


@dataclass(frozen=True)
class Verdict:
    """One analyst verdict on one job."""

    job_id: str
    verdict: str
    analyst: str
    note: str
    #: when the verdict was given, ISO 8601 UTC (``2026-11-23T17:05:12.123456+00:00``)
    at: str
    #: unique id of this record (hex UUID)
    id: str
    record_version: int = RECORD_VERSION

    @property
    def at_datetime(self) -> datetime:
        """``at`` as an aware UTC time (a stored naive time is taken as UTC: one such
        record used to make every listing fail comparing naive and aware times)."""
        return layout.as_utc(datetime.fromisoformat(self.at))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "verdict") -> Verdict:
        """Parse a stored record; a malformed one raises :class:`InputError` naming it."""
        if not isinstance(data, dict):
            raise InputError(f"{source}: expected a JSON object")
        try:
            verdict = cls(
                job_id=str(data["job_id"]),
                verdict=str(data["verdict"]),
                analyst=str(data["analyst"]),
                note=str(data.get("note", "")),
                at=str(data["at"]),
                id=str(data["id"]),
                record_version=int(data.get("record_version", RECORD_VERSION)),
            )
            verdict.at_datetime  # noqa: B018 - validates the timestamp
            if verdict.verdict not in VERDICTS:
                raise ValueError(f"verdict {verdict.verdict[:40]!r} is not one of {VERDICTS}")
        except KeyError as exc:
            raise InputError(f"{source}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"{source}: malformed verdict ({exc})") from None
        return verdict


def _clean_text(value: object, *, what: str, limit: int, allow_newlines: bool) -> str:
    if not isinstance(value, str):
        raise InputError(f"{what} must be text, got {type(value).__name__}")
    text = value.strip()
    if len(text) > limit:
        raise InputError(
            f"{what} is {len(text):,} characters long; shorten it to at most {limit:,}"
        )
    allowed = {"\n", "\t"} if allow_newlines else set()
    # control characters would corrupt CSV exports and terminal output
    if any(
        unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text.replace("\r\n", "\n")
    ):
        raise InputError(f"{what} contains control characters; remove them")
    return text.replace("\r\n", "\n")


def _check_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise InputError(
            f"job id {job_id!r} is not valid; use the name of a job folder such as 2026-11-23T17-00-00Z"
        )
    return job_id


def _utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if not isinstance(at, datetime):
        raise InputError(f"at={at!r} must be a datetime")
    return layout.as_utc(at)


def add_verdict(
    monitoring_uri: str,
    job_id: str,
    *,
    verdict: str,
    analyst: str,
    note: str = "",
    at: datetime | None = None,
    require_job: bool = True,
) -> Verdict:
    """Record an analyst's verdict on job ``job_id`` under ``monitoring_uri``.

    ``verdict`` is one of :data:`VERDICTS`; ``analyst`` a non-empty name (at most
    :data:`MAX_ANALYST_CHARS` characters, one line); ``note`` free text (at most
    :data:`MAX_NOTE_CHARS`); ``at`` the time (default now; naive times are UTC). With
    ``require_job`` (default) the job's ``results.json`` must exist, so a typo in the job id
    does not create an orphan record. Returns the stored :class:`Verdict`.
    """
    job_id = _check_job_id(job_id)
    if verdict not in VERDICTS:
        raise InputError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    analyst = _clean_text(
        analyst, what="analyst name", limit=MAX_ANALYST_CHARS, allow_newlines=False
    )
    if not analyst:
        raise InputError("analyst name is empty; give the name of the person making the verdict")
    note = _clean_text(
        note if note is not None else "", what="note", limit=MAX_NOTE_CHARS, allow_newlines=True
    )
    moment = _utc(at)
    if require_job and not store.exists(layout.results_uri(monitoring_uri, job_id)):
        raise DataNotFoundError(
            f"no job {job_id!r} under {monitoring_uri} (no results.json there); check the job id"
        )
    prefix = layout.verdicts_uri(monitoring_uri, job_id)
    for _attempt in range(5):
        record = Verdict(
            job_id=job_id,
            verdict=verdict,
            analyst=analyst,
            note=note,
            at=moment.isoformat(),
            id=uuid.uuid4().hex,
        )
        key = layout.join(prefix, f"{moment.strftime(_TIME_FORMAT)}-{record.id}.json")
        if store.write_json(key, record.to_dict(), if_absent=True):
            return record
    # five UUID collisions in a row mean the store ignores the condition or is broken
    raise LadisError(
        f"could not store a new verdict under {prefix}; the store keeps refusing new keys"
    )


def _read_verdict(uri: str) -> Verdict | None:
    try:
        verdict = Verdict.from_dict(json.loads(store.read_bytes(uri)), source=uri)
        folder = uri.replace("\\", "/").rsplit("/", 3)[-3]
        if verdict.job_id != folder:
            raise InputError(
                f"{uri}: a record about job {verdict.job_id!r} in the folder of {folder!r}"
            )
        return verdict
    except (
        InputError,
        DataNotFoundError,
        UnicodeDecodeError,
        json.JSONDecodeError,
        RecursionError,
    ) as exc:
        # one bad (or just deleted) record must not hide the others; it stays for inspection
        log.warning("skipping verdict record %s: %s", uri, exc)
        return None


def _read_verdicts(uris: Iterable[str]) -> list[Verdict]:
    uris = [u for u in uris if u.endswith(".json")]
    if not uris:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(uris))) as pool:
        found = [v for v in pool.map(_read_verdict, uris) if v is not None]
    return sorted(found, key=lambda v: (v.at_datetime, v.id))


def list_verdicts(monitoring_uri: str, job_id: str) -> list[Verdict]:
    """All verdicts on ``job_id``, oldest first (empty when there are none)."""
    job_id = _check_job_id(job_id)
    prefix = layout.verdicts_uri(monitoring_uri, job_id)
    return _read_verdicts(info.uri for info in store.iter_objects(prefix))


def latest_verdict(monitoring_uri: str, job_id: str) -> Verdict | None:
    """The newest verdict on ``job_id``, or ``None``."""
    verdicts = list_verdicts(monitoring_uri, job_id)
    return verdicts[-1] if verdicts else None


def verdicts_by_job(monitoring_uri: str) -> dict[str, list[Verdict]]:
    """Verdicts of every job under ``monitoring_uri`` with one listing of the prefix (for
    the history page): ``{job_id: [verdicts, oldest first]}``; jobs without any are absent."""
    uris = [
        info.uri
        for info in store.iter_objects(monitoring_uri)
        if info.uri.replace("\\", "/").rsplit("/", 2)[-2:-1] == ["verdicts"]
    ]
    out: dict[str, list[Verdict]] = {}
    for verdict in _read_verdicts(uris):
        out.setdefault(verdict.job_id, []).append(verdict)
    return out
