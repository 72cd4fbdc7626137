"""Reading job results and per-row scores back from a monitoring prefix."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ladis_core import store
from ladis_core.errors import DataNotFoundError, InputError
from ladis_core.monitoring.clock import parse_time
from ladis_core.monitoring.results import (
    JobResult,
)
from ladis_core.store import layout

log = logging.getLogger("ladis.monitor")


SCORES_NAME = "scores.json"


def load_job(output: str, job_id: str) -> JobResult:
    """The result of one job (:class:`DataNotFoundError` if it has none)."""
    uri = layout.results_uri(output, job_id)
    return JobResult.from_json(store.read_bytes(uri), source=uri)


def load_jobs(output: str) -> list[JobResult]:
    """Every job result under ``output``, sorted by scheduled time (then job id).

    Folders that are not job ids or hold no results.json (a job still running, or one
    that crashed) are skipped; a corrupt results.json is skipped with a warning.
    """
    output = output.rstrip("/")
    job_ids = []
    for name in store.list_children(output):
        try:
            layout.parse_job_id(name)
        except ValueError:
            continue
        job_ids.append(name)
    if not job_ids:
        return []

    def _one(job_id: str) -> JobResult | None:
        try:
            return load_job(output, job_id)
        except DataNotFoundError:
            return None
        except InputError as exc:
            log.warning("skipping %s: %s", layout.results_uri(output, job_id), exc)
            return None

    with ThreadPoolExecutor(max_workers=min(16, len(job_ids))) as pool:
        found = [r for r in pool.map(_one, job_ids) if r is not None]
    return sorted(found, key=lambda r: (parse_time(r.scheduled_at), r.job_id))


def load_scores(output: str, job_id: str) -> dict[str, Any]:
    """The per-row scores document of a tested job (``steps``, ``predicted_class``,
    ``score``, ``p_value``: lists of one entry per row of the window; ``layers``:
    the same per layer)."""
    return store.read_json(layout.join(output.rstrip("/"), job_id, SCORES_NAME))
