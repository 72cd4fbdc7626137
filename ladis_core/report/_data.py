"""What a report shows: :class:`ReportData`, and :func:`gather_report_data` that reads it.

A report is a pure function of a :class:`ReportData`; only :func:`gather_report_data`
touches storage (job results, verdicts, the inference trial's inputs, provenance, the
natural data set and the reference trial). Anything optional that cannot be read (a
deleted trial, no provenance) becomes a note in the report instead of an error.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ladis_core import layout, storage
from ladis_core._version import __version__
from ladis_core.charts import job_time, sort_jobs
from ladis_core.config import redact
from ladis_core.errors import DataNotFoundError, InputError, LadisError
from ladis_core.images import PerturbationSize, perturbation_size
from ladis_core.progress import ProgressCallback, report
from ladis_core.results import JobResult
from ladis_core.triage import Verdict, list_verdicts

log = logging.getLogger(__name__)

#: how the original of a flagged input was found
ORIGINAL_RECORDED = "recorded"
ORIGINAL_NEAREST = "nearest-natural"

DEFAULT_CONTEXT = timedelta(hours=12)
#: the monitoring job's per-row scores, beside results.json (ladis_core.monitor.SCORES_NAME)
SCORES_NAME = "scores.json"
DEFAULT_MAX_SAMPLES = 100
_TRIAL_PATH = re.compile(r"^(?P<world>.*)/trials/(?P<endpoint>[^/]+)/inference/?$")


@dataclass(frozen=True, eq=False)
class ReportSample:
    """One flagged (top-scoring) input of a job, with its images when available.

    ``image`` and ``original`` are float32 arrays of shape (C, H, W) in [0, 1].
    """

    job_id: str
    #: 1-based rank within its job (1 = most suspicious)
    rank: int
    step: int
    score: float
    p_value: float | None = None
    predicted_class: int | None = None
    predicted_name: str | None = None
    #: the request's provenance record (source_index, true_label, attack, epsilon, hour)
    provenance: Mapping[str, Any] | None = None
    image: np.ndarray | None = None
    original: np.ndarray | None = None
    #: ``"recorded"`` (from provenance), ``"nearest-natural"`` (closest reference input in
    #: pixel space, not the true original) or ``None``
    original_kind: str | None = None
    #: where the original came from, e.g. "natural.npz row 17" or "reference step 40"
    original_source: str | None = None
    #: class of the original: the true label when recorded, the model's prediction for a
    #: nearest natural neighbour
    original_class: int | None = None

    @property
    def size(self) -> PerturbationSize | None:
        """L∞ / L2 of ``image - original`` when both are known and of equal shape."""
        if self.image is None or self.original is None or self.image.shape != self.original.shape:
            return None
        return perturbation_size(self.image, self.original)

    def export_dict(self) -> dict[str, Any]:
        """The sample as plain JSON values (no pixels)."""
        size = self.size
        return {
            "job_id": self.job_id,
            "rank": self.rank,
            "step": self.step,
            "score": _finite_or_none(self.score),
            "p_value": _finite_or_none(self.p_value),
            "predicted_class": self.predicted_class,
            "predicted_name": self.predicted_name,
            "provenance": dict(self.provenance) if self.provenance is not None else None,
            "image_available": self.image is not None,
            "original": None if self.original_kind is None else {
                "kind": self.original_kind,
                "source": self.original_source,
                "class": self.original_class,
            },
            "perturbation": None if size is None else {"linf": size.linf, "l2": size.l2},
        }


@dataclass(frozen=True, eq=False)
class WindowScores:
    """Per-input scores of every row of a job's window (the monitoring job's
    ``<job-id>/scores.json``); all arrays have shape (n,), one entry per request."""

    steps: np.ndarray
    predicted_class: np.ndarray
    score: np.ndarray
    p_value: np.ndarray
    score_method: str = ""
    #: per layer: {"score": (n,), "p_value": (n,)}
    layers: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> WindowScores:
        try:
            steps = np.asarray(data["steps"], dtype=np.int64)
            out = cls(
                steps=steps,
                predicted_class=np.asarray(data.get("predicted_class", []), dtype=np.int64),
                score=np.asarray(data["score"], dtype=np.float64),
                p_value=np.asarray(data.get("p_value", []), dtype=np.float64),
                score_method=str(data.get("score_method", "")),
                layers={
                    str(name): {k: np.asarray(v, dtype=np.float64) for k, v in dict(values).items()}
                    for name, values in dict(data.get("layers") or {}).items()
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{source} is not a scores document ({exc})") from None
        if out.score.shape != steps.shape:
            raise InputError(f"{source}: {out.score.size} scores for {steps.size} steps")
        return out

    def export_dict(self) -> dict[str, Any]:
        return {
            "score_method": self.score_method,
            "steps": [int(v) for v in self.steps],
            "predicted_class": [int(v) for v in self.predicted_class],
            "score": [_finite_or_none(float(v)) for v in self.score],
            "p_value": [_finite_or_none(float(v)) for v in self.p_value],
            "layers": {
                name: {k: [_finite_or_none(float(x)) for x in v] for k, v in values.items()}
                for name, values in self.layers.items()
            },
        }


@dataclass(frozen=True, eq=False)
class ReportEmbedding:
    """Precomputed 2-D coordinates (e.g. t-SNE) of one layer's representations.

    ``reference`` has shape (n, 2), ``inference`` shape (m, 2), ``inference_steps`` the
    step of each inference row, shape (m,). Computed elsewhere (``ladis_core.embedding``);
    the report only draws it.
    """

    layer: str
    reference: np.ndarray
    inference: np.ndarray
    inference_steps: np.ndarray
    method: str = "t-SNE"
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_embedding2d(
        cls,
        embedding: Any,
        *,
        layer: str,
        inference_steps: np.ndarray,
        reference_group: str = "reference",
        inference_group: str = "inference",
    ) -> ReportEmbedding:
        """From an ``embedding.Embedding2D``; ``inference_steps`` (k,) are the steps of the
        rows of the inference array that was embedded (the points keep their row index)."""
        ref, _ = embedding.of_group(reference_group)
        inf, rows = embedding.of_group(inference_group)
        steps = np.asarray(inference_steps, dtype=np.int64)[rows]
        return cls(
            layer=layer, reference=ref, inference=inf, inference_steps=steps,
            details={"seed": embedding.seed, "perplexity": embedding.perplexity, "pca_dims": embedding.pca_dims},
        )


@dataclass(frozen=True, eq=False)
class ReportData:
    """Everything a report shows. Build it with :func:`gather_report_data` (from storage)
    or directly from objects at hand (the dashboard); renderers never read storage."""

    #: the jobs the report is about, by scheduled time
    jobs: list[JobResult]
    #: jobs drawn on the timeline (the report's jobs and their neighbours)
    timeline_jobs: list[JobResult] = field(default_factory=list)
    #: {job id: verdicts, oldest first}
    verdicts: Mapping[str, list[Verdict]] = field(default_factory=dict)
    #: every recorded top sample of ``jobs``, in display priority order
    samples: list[ReportSample] = field(default_factory=list)
    #: {job id: scores of every request of its window}, when the job recorded them
    window_scores: Mapping[str, WindowScores] = field(default_factory=dict)
    #: how many of ``samples`` (from the start) the HTML report shows
    max_html_samples: int = DEFAULT_MAX_SAMPLES
    embedding: ReportEmbedding | None = None
    #: data that could not be read, in words (already free of secrets)
    notes: list[str] = field(default_factory=list)
    title: str = ""
    generated_at: str = ""
    range_start: str | None = None
    range_end: str | None = None
    #: where each job's results were read, {job id: uri}
    sources: Mapping[str, str] = field(default_factory=dict)
    images_included: bool = True
    ladis_version: str = __version__

    @property
    def html_samples(self) -> list[ReportSample]:
        return self.samples[: self.max_html_samples]

    def latest_verdict(self, job_id: str) -> Verdict | None:
        found = self.verdicts.get(job_id) or []
        return found[-1] if found else None

    @property
    def endpoints(self) -> list[str]:
        return sorted({job.endpoint for job in self.jobs})

    @property
    def display_title(self) -> str:
        if self.title:
            return self.title
        endpoints = ", ".join(self.endpoints) or "LADIS"
        if len(self.jobs) == 1:
            return f"Incident report: {endpoints}, job {self.jobs[0].job_id}"
        return f"Incident report: {endpoints}, {len(self.jobs)} jobs"


# --------------------------------------------------------------------------- helpers

def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _note(notes: list[str], text: str) -> None:
    text = redact(text)
    if text not in notes:
        notes.append(text)


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
        raise InputError(f"{job_uri!r} is not a job folder (expected <monitoring>/<job-id>[/results.json])")
    monitoring, job_id = folder.rsplit("/", 1)
    return layout.join(folder, layout.RESULTS_NAME), job_id, monitoring


def load_job(job_uri: str) -> JobResult:
    """Read one job's ``results.json`` (job folder or file URI)."""
    results, _, _ = results_location(job_uri)
    try:
        data = storage.read_bytes(results)
    except DataNotFoundError:
        raise DataNotFoundError(
            f"no monitoring job at {job_uri} ({results} does not exist); give a job folder "
            "such as s3://ladis/monitoring/<endpoint>/<job-id>"
        ) from None
    return JobResult.from_json(data, source=results)


def jobs_between(
    monitoring: str, start: datetime | None, end: datetime | None, *, notes: list[str] | None = None
) -> list[JobResult]:
    """Jobs under ``monitoring`` scheduled in ``[start, end]`` (either bound optional),
    by time. Folders without a readable ``results.json`` are skipped (with a note when
    the file is corrupt)."""
    start, end = _utc(start), _utc(end)
    wanted = []
    for name in storage.list_children(monitoring):
        try:
            moment = layout.parse_job_id(name)
        except ValueError:
            continue
        if (start is None or moment >= start) and (end is None or moment <= end):
            wanted.append(name)

    def read(job_id: str) -> JobResult | None:
        try:
            return load_job(layout.job_uri(monitoring, job_id))
        except DataNotFoundError:
            return None  # a job still running has a folder but no results yet
        except LadisError as exc:
            if notes is not None:
                _note(notes, f"job {job_id} was skipped: {exc}")
            return None

    if not wanted:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(wanted))) as pool:
        found = [job for job in pool.map(read, wanted) if job is not None]
    return sort_jobs(found)


def samples_of(job: JobResult) -> list[ReportSample]:
    """The recorded top samples of ``job`` as :class:`ReportSample` (no images)."""
    out = []
    for rank, sample in enumerate(job.top_samples, start=1):
        cls = sample.predicted_class
        out.append(
            ReportSample(
                job_id=job.job_id, rank=rank, step=int(sample.step), score=float(sample.score),
                p_value=sample.p_value, predicted_class=cls,
                predicted_name=None if cls is None else job.class_names.get(str(cls)),
            )
        )
    return out


def display_order(jobs: Sequence[JobResult], samples_by_job: Mapping[str, list[ReportSample]]) -> list[ReportSample]:
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


# --------------------------------------------------------------------------- images

@dataclass
class _WorldCache:
    """Per-world data read at most once while gathering (provenance, natural set, reference)."""

    provenance: dict[str, dict[int, dict] | None] = field(default_factory=dict)
    natural: dict[str, tuple[np.ndarray, np.ndarray, list[str]] | None] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)


def _world_of(job: JobResult, world: str | None) -> tuple[str | None, str]:
    match = _TRIAL_PATH.match(job.inference)
    if match:
        return match.group("world"), match.group("endpoint")
    return world, job.endpoint


def _load_provenance(cache: _WorldCache, uri: str) -> dict[int, dict] | None:
    if uri not in cache.provenance:
        try:
            from ladis_core import trials

            records = trials.load_provenance(uri)
            cache.provenance[uri] = {int(k): dict(v) for k, v in records.items()} or None
        except (LadisError, ImportError, AttributeError) as exc:
            log.info("no provenance at %s: %s", uri, exc)
            cache.provenance[uri] = None
    return cache.provenance[uri]


def _load_natural(cache: _WorldCache, uri: str, notes: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    if uri not in cache.natural:
        try:
            with np.load(io.BytesIO(storage.read_bytes(uri)), allow_pickle=False) as npz:
                images = np.asarray(npz["images"], dtype=np.float32)
                labels = np.asarray(npz["labels"], dtype=np.int64)
                names = [str(n) for n in npz["class_names"]] if "class_names" in npz.files else []
            cache.natural[uri] = (images, labels, names)
        except DataNotFoundError:
            cache.natural[uri] = None
        except (LadisError, KeyError, ValueError, OSError) as exc:
            _note(notes, f"the natural data set {uri} could not be read ({exc}); originals are not shown")
            cache.natural[uri] = None
    return cache.natural[uri]


def _load_reference_inputs(cache: _WorldCache, uri: str, notes: list[str], *, cache_dir: str | None) -> Any:
    if uri not in cache.reference:
        try:
            from ladis_core import trials

            data = trials.load_trial(uri, mode="EVAL", include_inputs=True, cache_dir=cache_dir)
            cache.reference[uri] = data if data.inputs is not None and len(data) else None
            if cache.reference[uri] is None:
                _note(notes, f"the reference trial {uri} has no recorded inputs; no nearest natural neighbours")
        except (LadisError, ImportError) as exc:
            _note(notes, f"the reference trial {uri} could not be read ({exc}); no nearest natural neighbours")
            cache.reference[uri] = None
    return cache.reference[uri]


def _nearest_rows(candidates: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index into ``candidates`` (n, d) of the nearest row (L2) to each of ``queries`` (m, d)."""
    cand = candidates.astype(np.float64)
    query = queries.astype(np.float64)
    dist = (query**2).sum(1)[:, None] - 2.0 * query @ cand.T + (cand**2).sum(1)[None, :]
    return dist.argmin(axis=1)


def _attach_provenance(
    job: JobResult, samples: list[ReportSample], *, world: str | None, cache: _WorldCache
) -> list[ReportSample]:
    """Samples of ``job`` with their provenance record, when the world has provenance."""
    world_uri, endpoint = _world_of(job, world)
    if world_uri is None or not samples:
        return samples
    provenance = _load_provenance(cache, layout.provenance_uri(world_uri, endpoint))
    if not provenance:
        return samples
    return [replace(s, provenance=provenance.get(s.step)) for s in samples]


def _attach_images(
    job: JobResult,
    samples: list[ReportSample],
    *,
    world: str | None,
    cache: _WorldCache,
    notes: list[str],
    cache_dir: str | None = None,
) -> list[ReportSample]:
    """Samples of ``job`` with their input and original filled in where they can be read;
    otherwise unchanged, with a note saying why."""
    if not samples:
        return samples
    steps = [s.step for s in samples]
    try:
        from ladis_core import trials

        trial = trials.load_trial(
            job.inference, mode="PREDICT", include_inputs=True,
            after_step=min(steps) - 1, until_step=max(steps), cache_dir=cache_dir,
        )
    except ImportError:
        _note(notes, "images are not shown: the trial reader (ladis_core.trials) is not available")
        return samples
    except LadisError as exc:
        _note(
            notes,
            f"images of job {job.job_id} are not shown: its inference trial {job.inference} "
            f"could not be read ({exc}); scores and provenance are still listed",
        )
        return samples
    if trial.inputs is None:
        _note(notes, f"images of job {job.job_id} are not shown: the inference trial recorded no inputs")
        return samples
    row_of = {int(step): row for row, step in enumerate(np.asarray(trial.steps))}

    world_uri, endpoint = _world_of(job, world)
    natural = None
    if world_uri is not None and any(s.provenance is not None for s in samples):
        natural = _load_natural(cache, layout.dataset_uri(world_uri, endpoint), notes)

    out: list[ReportSample] = []
    missing_nearest: list[int] = []
    for sample in samples:
        row = row_of.get(sample.step)
        image = None if row is None else np.asarray(trial.inputs[row], dtype=np.float32)
        record = sample.provenance
        original = kind = source = None
        original_class = None
        if record is not None and natural is not None and image is not None:
            index = record.get("source_index")
            images, labels, _names = natural
            if isinstance(index, int) and 0 <= index < len(images) and images[index].shape == image.shape:
                original, kind = images[index], ORIGINAL_RECORDED
                source = f"natural.npz row {index}"
                original_class = int(labels[index]) if index < len(labels) else record.get("true_label")
        updated = replace(
            sample, image=image, original=original, original_kind=kind,
            original_source=source, original_class=original_class,
        )
        if image is not None and original is None:
            missing_nearest.append(len(out))
        out.append(updated)

    missing_rows = [s.step for s in samples if s.step not in row_of]
    if missing_rows:
        _note(notes, f"job {job.job_id}: {len(missing_rows)} flagged steps are missing from the inference trial")
    if missing_nearest:
        reference = _load_reference_inputs(cache, job.reference, notes, cache_dir=cache_dir)
        if reference is not None:
            ref_inputs = np.asarray(reference.inputs, dtype=np.float32)
            queries = np.stack([out[i].image for i in missing_nearest])
            if ref_inputs.shape[1:] == queries.shape[1:]:
                nearest = _nearest_rows(ref_inputs.reshape(len(ref_inputs), -1), queries.reshape(len(queries), -1))
                ref_classes = np.asarray(reference.predicted_class) if reference.predicted_class is not None else None
                for i, ref_row in zip(missing_nearest, nearest, strict=True):
                    out[i] = replace(
                        out[i], original=ref_inputs[ref_row], original_kind=ORIGINAL_NEAREST,
                        original_source=(
                            f"reference row {int(ref_row)} (step {int(np.asarray(reference.steps)[ref_row])})"
                        ),
                        original_class=None if ref_classes is None else int(ref_classes[ref_row]),
                    )
            else:
                _note(notes, "reference inputs have another shape than the inference inputs; no nearest neighbours")
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
    """
    if max_html_samples < 0:
        raise InputError(f"max_html_samples={max_html_samples} must be at least 0")
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and start > end:
        raise InputError(f"the range starts ({_iso(start)}) after it ends ({_iso(end)}); swap --from and --to")
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
            raise InputError("nothing to report: give at least one job, or a monitoring URI with a time range")
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
                _note(notes, f"the timeline lacks the neighbours of these jobs: {folder} could not be listed ({exc})")
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
            _note(notes, f"verdicts of job {job.job_id} could not be read ({exc})")

    window_scores: dict[str, WindowScores] = {}
    for job in focus:
        folder = monitoring_of.get(job.job_id)
        if folder is None:
            continue
        uri = layout.join(folder, job.job_id, SCORES_NAME)
        try:
            window_scores[job.job_id] = WindowScores.from_dict(storage.read_json(uri), source=uri)
        except DataNotFoundError:
            continue  # untested windows and older jobs have none
        except LadisError as exc:
            _note(notes, f"per-request scores of job {job.job_id} could not be read ({exc})")

    cache = _WorldCache()
    samples_by_job = {
        job.job_id: _attach_provenance(job, samples_of(job), world=world, cache=cache) for job in focus
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
                attached = _attach_images(
                    job, by_job[job.job_id], world=world, cache=cache, notes=notes, cache_dir=cache_dir
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
