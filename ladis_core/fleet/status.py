"""Where each endpoint of a fleet stands: its last job, its age, its state, failing
windows and failing alert channels (``fleet status`` and the overview page).

One listing of the endpoint's monitoring prefix (:func:`scan`) finds the jobs with a
result, their verdicts and the windows with recorded failures; then only the jobs asked
for are read, through the one reader (:func:`ladis_core.monitoring.jobs.load_jobs`).

States, worst first: ``failing`` (a window newer than the last result failed),
``incident`` (the latest tested job is an incident), ``stale`` (no result for more than
two windows), ``quiet``, ``untested`` (only windows with too few requests) and
``no jobs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ladis_core import store
from ladis_core.fleet.alerts import failing_channels
from ladis_core.monitoring.jobs import job_time, load_jobs
from ladis_core.monitoring.results import JobResult
from ladis_core.store import layout

FAILING, INCIDENT, STALE, QUIET, UNTESTED, NO_JOBS = (
    "failing",
    "incident",
    "stale",
    "quiet",
    "untested",
    "no jobs",
)


@dataclass(frozen=True)
class EndpointIndex:
    """One listing of a monitoring prefix: job ids with a result (sorted), verdict
    counts per job and failure records per job id."""

    output: str
    job_ids: tuple[str, ...]
    verdict_counts: dict[str, int]
    failures: dict[str, int]


def scan(output: str) -> EndpointIndex:
    """List ``output`` once (see the module docstring)."""
    base = output.rstrip("/") + "/"
    jobs: set[str] = set()
    verdicts: dict[str, int] = {}
    failures: dict[str, int] = {}
    for info in store.iter_objects(output.rstrip("/")):
        parts = info.uri[len(base) :].split("/") if info.uri.startswith(base) else []
        if len(parts) < 2 or not layout.is_job_id(parts[0]):
            continue
        if len(parts) == 2 and parts[1] == layout.RESULTS_NAME:
            jobs.add(parts[0])
        elif len(parts) == 3 and parts[1] == "verdicts":
            verdicts[parts[0]] = verdicts.get(parts[0], 0) + 1
        elif len(parts) == 3 and parts[1] == "failures":
            failures[parts[0]] = failures.get(parts[0], 0) + 1
    return EndpointIndex(output.rstrip("/"), tuple(sorted(jobs)), verdicts, failures)


@dataclass(frozen=True)
class EndpointStatus:
    """What ``fleet status`` prints for one endpoint and the overview page shows."""

    name: str
    output: str
    state: str
    last_job: JobResult | None
    last_time: datetime | None
    age: timedelta | None
    failed_windows: tuple[str, ...]
    failing_channels: tuple[str, ...]
    recent: tuple[JobResult, ...] = ()
    unreviewed_incidents: int = 0

    @property
    def open_incident(self) -> bool:
        return self.state == INCIDENT or (
            self.state == FAILING and _latest_tested_incident(self.recent)
        )


def endpoint_status(
    name: str,
    output: str,
    *,
    every: timedelta = timedelta(hours=1),
    now: datetime | None = None,
    recent: timedelta | None = None,
    index: EndpointIndex | None = None,
    jobs: Sequence[JobResult] | None = None,
    failing: Sequence[str] | None = None,
) -> EndpointStatus:
    """The status of one endpoint. ``recent``: also read the jobs of this span before
    the last one (the overview's sparkline); ``index``/``jobs``/``failing``: already read
    (the dashboard's caches)."""
    now = now or datetime.now(UTC)
    index = index or scan(output)
    if jobs is None:
        jobs = _read_recent(output, index.job_ids, recent)
    jobs = list(jobs)
    last = jobs[-1] if jobs else None
    moment = job_time(last) if last is not None else None
    last_time = moment if isinstance(moment, datetime) else None
    age = None if last_time is None else max(timedelta(0), now - last_time)
    last_id = last.job_id if last is not None else ""
    failed = tuple(sorted(j for j in index.failures if j > last_id and j not in index.job_ids))
    incidents = [j for j in jobs if j.incident]
    state = _state(jobs, failed, age, every)
    return EndpointStatus(
        name=name,
        output=index.output,
        state=state,
        last_job=last,
        last_time=last_time,
        age=age,
        failed_windows=failed,
        failing_channels=tuple(failing_channels(output) if failing is None else failing),
        recent=tuple(jobs),
        unreviewed_incidents=sum(1 for j in incidents if j.job_id not in index.verdict_counts),
    )


def recent_ids(job_ids: Sequence[str], span: timedelta) -> list[str]:
    """The ids of ``job_ids`` (sorted) within ``span`` before the newest one."""
    if not job_ids:
        return []
    newest = layout.parse_job_id(job_ids[-1])
    return [j for j in job_ids if layout.parse_job_id(j) >= newest - span]


def typical_interval(job_ids: Sequence[str], default: timedelta = timedelta(hours=1)) -> timedelta:
    """The median gap between the newest jobs (how often this endpoint is monitored)."""
    times = [layout.parse_job_id(j) for j in job_ids[-25:]]
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False) if b > a)
    return gaps[len(gaps) // 2] if gaps else default


#: without a span, jobs are read back from the newest until a tested one, at most this many
_LOOK_BACK = 48


def _read_recent(output: str, job_ids: Sequence[str], span: timedelta | None) -> list[JobResult]:
    """The jobs of ``span`` before the newest one; without a span, the newest jobs back
    to the latest tested one (its decision is the endpoint's state)."""
    if not job_ids:
        return []
    if span is not None:
        return load_jobs(output, ids=recent_ids(job_ids, span))
    found: list[JobResult] = []
    end = len(job_ids)
    while end > 0 and len(job_ids) - end < _LOOK_BACK:
        start = max(0, end - (1 if not found else 8))
        found = load_jobs(output, ids=job_ids[start:end]) + found
        if any(j.detection_rate is not None for j in found):
            break
        end = start
    return found


def _latest_tested_incident(jobs: Sequence[JobResult]) -> bool:
    tested = [j for j in jobs if j.detection_rate is not None]
    return bool(tested) and tested[-1].incident


def _state(
    jobs: Sequence[JobResult], failed: Sequence[str], age: timedelta | None, every: timedelta
) -> str:
    if failed:
        return FAILING
    if not jobs:
        return NO_JOBS
    if _latest_tested_incident(jobs):
        return INCIDENT
    if age is not None and age > 2 * every:
        return STALE
    if all(j.detection_rate is None for j in jobs):
        return UNTESTED
    return QUIET


def format_age(age: timedelta | None) -> str:
    """``45s``, ``12m 05s``, ``3h 20m``, ``2d 04h`` (``—`` when unknown)."""
    if age is None:
        return "—"
    s = int(age.total_seconds())
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def status_table(statuses: Sequence[EndpointStatus]) -> str:
    """The lines ``fleet status`` prints."""
    rows = [("ENDPOINT", "LAST JOB", "AGE", "STATE", "RATE", "FAILING")]
    for s in statuses:
        job = s.last_job
        rate = "—" if job is None or job.detection_rate is None else f"{job.detection_rate:.0f}%"
        problems = [f"window {j}" for j in s.failed_windows[-3:]]
        problems += [f"alert channel {c}" for c in s.failing_channels]
        rows.append(
            (
                s.name,
                job.job_id if job else "—",
                format_age(s.age),
                s.state,
                rate,
                ", ".join(problems) or "—",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
