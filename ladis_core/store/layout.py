"""Where things live in a LADIS world (an S3 prefix or a local folder).

::

    <world>/                                 e.g. s3://ladis/  (LADIS_S3_URI)
      models/<endpoint>/                     model.pt + model.json (what the endpoint loads)
      datasets/<endpoint>/natural.npz        natural images the traffic was drawn from
      trials/<endpoint>/reference/           smdebug trial, EVAL mode (natural validation data)
      trials/<endpoint>/inference/           smdebug trial, PREDICT mode, one step per request
      trials/<endpoint>/provenance/*.jsonl   one JSON line per request: step, origin, attack, ε
      monitoring/<endpoint>/bookmark.json    last processed inference step
      monitoring/<endpoint>/<job-id>/results.json             written once, never rewritten
      monitoring/<endpoint>/<job-id>/verdicts/<time>-<id>.json  analyst verdicts, append-only
      experiments/<endpoint>/layers.json     the per-layer detection experiment

Every function here is pure string manipulation; nothing touches storage.
"""

from __future__ import annotations

from datetime import UTC, datetime

JOB_ID_FORMAT = "%Y-%m-%dT%H-%M-%SZ"
RESULTS_NAME = "results.json"
BOOKMARK_NAME = "bookmark.json"


def join(base: str, *parts: str) -> str:
    """Join URI or path segments with single slashes (``join("s3://b/", "x", "y/")``)."""
    out = base.rstrip("/")
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}"
    return out


def model_uri(world: str, endpoint: str) -> str:
    return join(world, "models", endpoint)


def dataset_uri(world: str, endpoint: str) -> str:
    return join(world, "datasets", endpoint, "natural.npz")


def reference_trial_uri(world: str, endpoint: str) -> str:
    return join(world, "trials", endpoint, "reference")


def inference_trial_uri(world: str, endpoint: str) -> str:
    return join(world, "trials", endpoint, "inference")


def provenance_uri(world: str, endpoint: str) -> str:
    return join(world, "trials", endpoint, "provenance")


def monitoring_uri(world: str, endpoint: str) -> str:
    return join(world, "monitoring", endpoint)


def job_uri(monitoring: str, job_id: str) -> str:
    return join(monitoring, job_id)


def results_uri(monitoring: str, job_id: str) -> str:
    return join(monitoring, job_id, RESULTS_NAME)


def bookmark_uri(monitoring: str) -> str:
    return join(monitoring, BOOKMARK_NAME)


def verdicts_uri(monitoring: str, job_id: str) -> str:
    return join(monitoring, job_id, "verdicts")


def experiment_uri(world: str, endpoint: str) -> str:
    return join(world, "experiments", endpoint, "layers.json")


def job_id_for(moment: datetime) -> str:
    """The job id of a job scheduled at ``moment`` (UTC), e.g. ``2026-11-23T17-00-00Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(JOB_ID_FORMAT)


def parse_job_id(job_id: str) -> datetime:
    """Inverse of :func:`job_id_for`; raises ``ValueError`` for anything else."""
    return datetime.strptime(job_id, JOB_ID_FORMAT).replace(tzinfo=UTC)


def is_job_id(name: str) -> bool:
    """Whether ``name`` is a job id (a folder named otherwise, like ``_state``, is not a job)."""
    try:
        parse_job_id(name)
    except (TypeError, ValueError):
        return False
    return True


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; a naive time is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time(text: str) -> datetime:
    """An aware UTC datetime from ISO-8601 (``2026-11-23T17:00:00Z``, ``…+01:00``, a date)
    or a job id (``2026-11-23T17-00-00Z``); naive times are taken as UTC. Anything else
    raises ``ValueError`` (callers turn it into their own message)."""
    value = text.strip()
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return parse_job_id(value)
