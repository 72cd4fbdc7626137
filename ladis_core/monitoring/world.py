"""Discovery: which endpoints, trials and monitoring jobs a LADIS world holds.

A world is an S3 prefix (or a local folder) laid out as in :mod:`ladis_core.store.layout`. The
dashboard asks this module what is there; it reads only through
:mod:`ladis_core.store`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ladis_core import store
from ladis_core.errors import DataNotFoundError, InputError
from ladis_core.monitoring import jobs as stored_jobs
from ladis_core.monitoring.results import JobResult
from ladis_core.progress import ProgressCallback
from ladis_core.store import layout

#: top-level folders of a world that are named after endpoints
_ENDPOINT_FOLDERS = ("monitoring", "trials", "models")


@dataclass(frozen=True)
class EndpointInfo:
    """What one endpoint has in the world."""

    name: str
    has_model: bool
    has_reference: bool
    has_inference: bool
    has_provenance: bool
    has_dataset: bool
    job_ids: tuple[str, ...]

    @property
    def job_count(self) -> int:
        return len(self.job_ids)


@dataclass(frozen=True)
class WorldInfo:
    """A summary of one world: its URI and its endpoints (sorted by name)."""

    uri: str
    endpoints: tuple[EndpointInfo, ...]

    @property
    def is_empty(self) -> bool:
        return not any(e.job_count or e.has_inference for e in self.endpoints)

    def endpoint(self, name: str) -> EndpointInfo:
        for info in self.endpoints:
            if info.name == name:
                return info
        known = ", ".join(e.name for e in self.endpoints) or "none"
        raise DataNotFoundError(f"endpoint {name!r} is not in {self.uri} (known: {known})")


@dataclass(frozen=True)
class JobIndex:
    """The job folders of one endpoint's monitoring prefix, from one listing.

    ``job_ids`` are sorted (job ids sort by time); ``verdict_counts`` counts the verdict
    files of each job that has any.
    """

    monitoring: str
    job_ids: tuple[str, ...]
    verdict_counts: dict[str, int]


def normalize_world_uri(uri: str) -> str:
    """Trim and end with ``/``; an empty or malformed value raises :class:`InputError`."""
    text = (uri or "").strip()
    if not text:
        raise InputError("the data source is empty; enter an s3://bucket/prefix URI or a folder")
    if text.startswith("s3://"):
        bucket = text[len("s3://") :].split("/", 1)[0]
        if not bucket:
            raise InputError(
                f"{text!r} has no bucket; expected s3://bucket/ or s3://bucket/prefix/"
            )
    elif "://" in text and not text.startswith("file://"):
        raise InputError(f"{text!r} is not an s3:// URI or a local folder")
    return text if text.endswith("/") else text + "/"


def list_endpoints(world_uri: str) -> list[str]:
    """Names of the endpoints that have monitoring results, trials or a model, sorted.

    Raises :class:`~ladis_core.errors.StorageError` when the store cannot be reached or
    read (unreachable, access denied, missing bucket).
    """
    world = normalize_world_uri(world_uri)
    store.check_bucket(world)
    names: set[str] = set()
    for folder in _ENDPOINT_FOLDERS:
        names.update(store.list_children(layout.join(world, folder)))
    return sorted(names)


def job_index(world_uri: str, endpoint: str) -> JobIndex:
    """One listing of ``monitoring/<endpoint>/``: the job ids that have a ``results.json``
    and how many verdicts each has (a job folder without results is a job still being
    written, or a crashed one, and is left out; so are folders not named like a job id,
    as in :func:`ladis_core.monitoring.load_jobs`)."""
    monitoring = layout.monitoring_uri(normalize_world_uri(world_uri), endpoint)
    base = monitoring.rstrip("/") + "/"
    jobs: set[str] = set()
    verdicts: dict[str, int] = {}
    for info in store.iter_objects(monitoring):
        relative = info.uri[len(base) :] if info.uri.startswith(base) else ""
        parts = relative.split("/")
        if len(parts) == 2 and parts[1] == layout.RESULTS_NAME and layout.is_job_id(parts[0]):
            jobs.add(parts[0])
        elif len(parts) >= 3 and parts[1] == "verdicts":
            verdicts[parts[0]] = verdicts.get(parts[0], 0) + 1
    return JobIndex(monitoring=monitoring, job_ids=tuple(sorted(jobs)), verdict_counts=verdicts)


def describe_world(world_uri: str) -> WorldInfo:
    """What the world holds, per endpoint (a few listings per endpoint)."""
    world = normalize_world_uri(world_uri)
    infos = []
    for name in list_endpoints(world):
        trials = set(store.list_children(layout.join(world, "trials", name)))
        infos.append(
            EndpointInfo(
                name=name,
                has_model=store.exists(layout.join(layout.model_uri(world, name), "model.json")),
                has_reference="reference" in trials,
                has_inference="inference" in trials,
                has_provenance="provenance" in trials,
                has_dataset=store.exists(layout.dataset_uri(world, name)),
                job_ids=job_index(world, name).job_ids,
            )
        )
    return WorldInfo(uri=world, endpoints=tuple(infos))


def load_job(world_uri: str, endpoint: str, job_id: str) -> JobResult:
    """One job's result; :class:`DataNotFoundError` when it does not exist."""
    return stored_jobs.load_job(
        layout.monitoring_uri(normalize_world_uri(world_uri), endpoint), job_id
    )


def load_jobs(
    world_uri: str,
    endpoint: str,
    *,
    job_ids: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
) -> list[JobResult]:
    """Every job result of ``endpoint`` (or only ``job_ids``), through the one reader
    :func:`ladis_core.monitoring.jobs.load_jobs` and in its order."""
    monitoring = layout.monitoring_uri(normalize_world_uri(world_uri), endpoint)
    return stored_jobs.load_jobs(monitoring, ids=job_ids, progress=progress)
