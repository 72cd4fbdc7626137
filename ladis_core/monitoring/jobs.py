"""Reading job results back from a monitoring prefix: the one reader, in one order.

Every part of LADIS that lists jobs (the dashboard, reports, the fleet) reads them here,
so all of them see the same jobs in the same order: by scheduled time, then job id, with
jobs whose time cannot be read last. Folders not named like a job id (``_state/``) are
not jobs; a job folder without ``results.json`` is a job still running (or one that
crashed) and is left out; a corrupt ``results.json`` is skipped with a note, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from ladis_core import store
from ladis_core.errors import DataNotFoundError, InputError
from ladis_core.monitoring.results import JobResult
from ladis_core.progress import ProgressCallback, report
from ladis_core.store import layout

log = logging.getLogger("ladis.monitor")


def job_time(job: JobResult) -> datetime | str:
    """When a job was scheduled, as an aware UTC datetime (from ``scheduled_at``, else
    the job id), or the raw ``scheduled_at`` text when neither parses."""
    for text in (job.scheduled_at, job.job_id):
        try:
            return layout.parse_time(text)
        except (TypeError, ValueError, AttributeError):
            continue
    return job.scheduled_at or job.job_id


def sort_jobs(jobs: Sequence[JobResult]) -> list[JobResult]:
    """``jobs`` by scheduled time, then job id; jobs whose time cannot be read last."""

    def key(job: JobResult) -> tuple:
        moment = job_time(job)
        if isinstance(moment, datetime):
            return (0, moment.timestamp(), job.job_id)
        return (1, 0.0, job.job_id)

    return sorted(jobs, key=key)


def job_ids(output: str) -> list[str]:
    """The names of the job folders under ``output`` (one listing), sorted."""
    names = []
    for name in store.list_children(output.rstrip("/")):
        try:
            layout.parse_job_id(name)
        except ValueError:
            continue
        names.append(name)
    return names


def load_job(output: str, job_id: str) -> JobResult:
    """The result of one job (:class:`DataNotFoundError` if it has none)."""
    uri = layout.results_uri(output.rstrip("/"), job_id)
    return JobResult.from_json(store.read_bytes(uri), source=uri)


def load_jobs(
    output: str,
    *,
    ids: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    on_skip: Callable[[str], None] | None = None,
    progress: ProgressCallback | None = None,
    workers: int = 16,
) -> list[JobResult]:
    """The job results under ``output``, sorted by :func:`sort_jobs`.

    ``ids``: only these jobs (default: every job folder); ``start``/``end``: only jobs
    whose id (their scheduled time) lies in ``[start, end]``. A corrupt ``results.json``
    is skipped, logged and told to ``on_skip`` (one sentence); storage failures raise.
    Progress stage: ``load jobs``.
    """
    output = output.rstrip("/")
    wanted = list(ids) if ids is not None else job_ids(output)
    start = None if start is None else layout.as_utc(start)
    end = None if end is None else layout.as_utc(end)
    if start is not None or end is not None:
        wanted = [j for j in wanted if _within(j, start, end)]
    total = len(wanted)
    report(progress, "load jobs", 0, total)
    if not wanted:
        return []

    def one(job_id: str) -> JobResult | None:
        try:
            return load_job(output, job_id)
        except DataNotFoundError:
            return None
        except InputError as exc:
            log.warning("skipping %s: %s", layout.results_uri(output, job_id), exc)
            if on_skip is not None:
                on_skip(f"job {job_id} was skipped: {exc}")
            return None

    found: list[JobResult] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, total))) as pool:
        for done, job in enumerate(pool.map(one, wanted), start=1):
            if job is not None:
                found.append(job)
            if done % max(1, total // 20) == 0 or done == total:
                report(progress, "load jobs", done, total)
    return sort_jobs(found)


def _within(job_id: str, start: datetime | None, end: datetime | None) -> bool:
    try:
        moment = layout.parse_job_id(job_id)
    except ValueError:
        return False
    return (start is None or moment >= start) and (end is None or moment <= end)
