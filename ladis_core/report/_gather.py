"""Reading a report's data from storage: :func:`gather_report_data`.

The only part of the report that reads storage: job results, their neighbours for the
timeline, verdicts, per-request scores, and (through ``_pictures``) inputs, provenance
and originals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ladis_core.errors import DataNotFoundError, InputError, LadisError
from ladis_core.monitoring import jobs as stored_jobs
from ladis_core.monitoring.jobs import job_time, sort_jobs
from ladis_core.monitoring.results import JobResult
from ladis_core.monitoring.scores import load_scores
from ladis_core.monitoring.triage import Verdict, list_verdicts
from ladis_core.progress import ProgressCallback, report
from ladis_core.report._data import (
    DEFAULT_MAX_SAMPLES,
    ReportData,
    ReportEmbedding,
    ReportSample,
    WindowScores,
)
from ladis_core.report._pictures import WorldCache, attach_images, attach_provenance, note
from ladis_core.store import layout

if TYPE_CHECKING:
    from ladis_core.access.sources import SourcePolicy

DEFAULT_CONTEXT = timedelta(hours=12)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else layout.as_utc(moment)


def results_location(job_uri: str) -> tuple[str, str, str]:
    """``(results.json uri, job id, monitoring uri)`` of a job given by its folder or its
    ``results.json``."""
    uri = str(job_uri).rstrip("/")
    if not uri:
        raise InputError("empty job URI; give a job folder or its results.json")
    if uri.endswith("/" + layout.RESULTS_NAME) or uri == layout.RESULTS_NAME:
        folder = uri[: -len(layout.RESULTS_NAME)].rstrip("/")
    else:
        folder = uri
    if "/" not in folder:
        raise InputError(
            f"{job_uri!r} is not a job folder (expected <monitoring>/<job-id>[/results.json])"
        )
    monitoring, job_id = folder.rsplit("/", 1)
    return layout.join(folder, layout.RESULTS_NAME), job_id, monitoring


def load_job(job_uri: str) -> JobResult:
    """Read one job's ``results.json`` (job folder or file URI)."""
    results, job_id, monitoring = results_location(job_uri)
    try:
        return stored_jobs.load_job(monitoring, job_id)
    except DataNotFoundError:
        raise DataNotFoundError(
            f"no monitoring job at {job_uri} ({results} does not exist); give a job folder "
            "such as s3://ladis/monitoring/<endpoint>/<job-id>"
        ) from None


def jobs_between(
    monitoring: str, start: datetime | None, end: datetime | None, *, notes: list[str] | None = None
) -> list[JobResult]:
    """Jobs under ``monitoring`` scheduled in ``[start, end]`` (either bound optional),
    by time, through the one job reader; a corrupt ``results.json`` is skipped with a
    note."""
    on_skip = None if notes is None else (lambda text: note(notes, text))
    return stored_jobs.load_jobs(monitoring, start=start, end=end, on_skip=on_skip)


def samples_of(job: JobResult) -> list[ReportSample]:
    """The recorded top samples of ``job`` as :class:`ReportSample` (no images)."""
    out = []
    for rank, sample in enumerate(job.top_samples, start=1):
        cls = sample.predicted_class
        out.append(
            ReportSample(
                job_id=job.job_id,
                rank=rank,
                step=int(sample.step),
                score=float(sample.score),
                p_value=sample.p_value,
                predicted_class=cls,
                predicted_name=None if cls is None else job.class_names.get(str(cls)),
            )
        )
    return out


def display_order(
    jobs: Sequence[JobResult], samples_by_job: Mapping[str, list[ReportSample]]
) -> list[ReportSample]:
    """All samples, ordered so that the first ones shown cover every job fairly: incident
    jobs first, then the others, taking each job's next-best sample in turn."""
    ordered_jobs = [j for j in jobs if j.incident] + [j for j in jobs if not j.incident]
    queues = [list(samples_by_job.get(j.job_id, [])) for j in ordered_jobs]
    out: list[ReportSample] = []
    depth = 0
    while any(depth < len(q) for q in queues):
        out.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return out


# --------------------------------------------------------------------------- gathering


def gather_report_data(
    jobs: Sequence[str | JobResult] = (),
    *,
    monitoring: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    context: timedelta = DEFAULT_CONTEXT,
    include_images: bool = True,
    max_html_samples: int = DEFAULT_MAX_SAMPLES,
    world: str | None = None,
    embedding: ReportEmbedding | None = None,
    title: str = "",
    now: datetime | None = None,
    cache_dir: str | None = None,
    allowed: SourcePolicy | None = None,
    progress: ProgressCallback | None = None,
) -> ReportData:
    """Read everything a report on ``jobs`` needs.

    ``jobs`` are job folder / ``results.json`` URIs, or :class:`JobResult` objects already
    loaded (then ``monitoring`` says where their verdicts live). With ``monitoring`` and
    ``start``/``end`` but no ``jobs``, the report covers every job in that range. The
    timeline shows the jobs of ``[start, end]``, or when no range is given, the jobs of the
    monitoring folder within ``context`` of the report's jobs.

    Provenance is attached to every sample when the world has it. Images (the inputs of
    the first ``max_html_samples`` samples and their originals) are read only with
    ``include_images``; when the trial is gone the report
    says so and lists scores without pictures. ``world`` is the LADIS world root, needed
    only when the trial URIs do not follow the standard layout; ``cache_dir`` is where
    ``s3://`` trials are cached (default: :func:`ladis_core.trials.default_cache_dir`).
    ``allowed``: when given, the trials, provenance and data sets that the jobs' results
    point to are read only inside these sources; the others are not followed (a note
    says so, naming the allow-list).
    """
    if max_html_samples < 0:
        raise InputError(f"max_html_samples={max_html_samples} must be at least 0")
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and start > end:
        raise InputError(
            f"the range starts ({_iso(start)}) after it ends ({_iso(end)}); swap --from and --to"
        )
    notes: list[str] = []
    sources: dict[str, str] = {}
    monitoring_of: dict[str, str] = {}
    focus: list[JobResult] = []
    report(progress, "report: jobs", 0, max(1, len(jobs)))
    for i, item in enumerate(jobs):
        if isinstance(item, JobResult):
            job = item
            if monitoring:
                monitoring_of[job.job_id] = monitoring
        else:
            results_uri, _, job_monitoring = results_location(item)
            job = load_job(item)
            sources[job.job_id] = results_uri
            monitoring_of[job.job_id] = monitoring or job_monitoring
        focus.append(job)
        report(progress, "report: jobs", i + 1, max(1, len(jobs)))

    timeline: dict[str, JobResult] = {}
    if not focus:
        if not monitoring:
            raise InputError(
                "nothing to report: give at least one job, or a monitoring URI with a time range"
            )
        focus = jobs_between(monitoring, start, end, notes=notes)
        if not focus:
            raise DataNotFoundError(
                f"no monitoring jobs under {monitoring} between {_iso(start) or 'the beginning'} "
                f"and {_iso(end) or 'now'}; widen --from/--to"
            )
        for job in focus:
            monitoring_of[job.job_id] = monitoring
            sources[job.job_id] = layout.results_uri(monitoring, job.job_id)
        timeline.update((j.job_id, j) for j in focus)
    else:
        times = [t for t in (job_time(j) for j in focus) if isinstance(t, datetime)]
        lo = start or (min(times) - context if times else None)
        hi = end or (max(times) + context if times else None)
        for folder in sorted(set(monitoring_of.values())):
            try:
                timeline.update((j.job_id, j) for j in jobs_between(folder, lo, hi, notes=notes))
            except LadisError as exc:
                note(
                    notes,
                    f"the timeline lacks the neighbours of these jobs: {folder} could not be listed ({exc})",
                )
    focus = sort_jobs(list({j.job_id: j for j in focus}.values()))
    timeline.update((j.job_id, j) for j in focus)

    verdicts: dict[str, list[Verdict]] = {}
    for job in focus:
        folder = monitoring_of.get(job.job_id)
        if folder is None:
            continue
        try:
            verdicts[job.job_id] = list_verdicts(folder, job.job_id)
        except LadisError as exc:
            note(notes, f"verdicts of job {job.job_id} could not be read ({exc})")

    window_scores: dict[str, WindowScores] = {}
    for job in focus:
        folder = monitoring_of.get(job.job_id)
        if folder is None:
            continue
        try:
            window_scores[job.job_id] = load_scores(folder, job.job_id)
        except DataNotFoundError:
            continue  # untested windows and older jobs have none
        except LadisError as exc:
            note(notes, f"per-request scores of job {job.job_id} could not be read ({exc})")

    cache = WorldCache(allowed=allowed)
    samples_by_job = {
        job.job_id: attach_provenance(job, samples_of(job), world=world, cache=cache, notes=notes)
        for job in focus
    }
    ordered = display_order(focus, samples_by_job)
    if include_images and max_html_samples > 0:
        shown = ordered[:max_html_samples]
        by_job: dict[str, list[ReportSample]] = {}
        for sample in shown:
            by_job.setdefault(sample.job_id, []).append(sample)
        replaced: dict[tuple[str, int], ReportSample] = {}
        for i, job in enumerate(focus):
            report(progress, "report: images", i, len(focus), job.job_id)
            if job.job_id in by_job:
                attached = attach_images(
                    job,
                    by_job[job.job_id],
                    world=world,
                    cache=cache,
                    notes=notes,
                    cache_dir=cache_dir,
                )
                for sample in attached:
                    replaced[(sample.job_id, sample.rank)] = sample
        report(progress, "report: images", len(focus), len(focus))
        ordered = [replaced.get((s.job_id, s.rank), s) for s in ordered]

    generated = _utc(now) or datetime.now(UTC)
    return ReportData(
        jobs=focus,
        timeline_jobs=sort_jobs(list(timeline.values())),
        verdicts=verdicts,
        samples=ordered,
        window_scores=window_scores,
        max_html_samples=max_html_samples,
        embedding=embedding,
        notes=notes,
        title=title,
        generated_at=generated.isoformat(),
        range_start=_iso(start),
        range_end=_iso(end),
        sources=sources,
        images_included=include_images,
    )
