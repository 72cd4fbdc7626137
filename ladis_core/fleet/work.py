"""One cell of the grid, as it runs on a worker: :func:`run_window`.

It runs on whatever process the engine picks (in-process, or a Dask worker), so it takes
and returns plain picklable values and never raises for a failed job: a failure becomes
a :class:`WindowOutcome` with ``status == "failed"`` (and a record in S3 beside the
job, ``<output>/<job-id>/failures/``), so the driver decides about retries. Exactly
once comes from the claims of :func:`ladis_core.monitoring.run_job`: a window whose
result exists is ``exists``, and two runs of one window never both write it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from ladis_core import store
from ladis_core.config import redact
from ladis_core.errors import JobExistsError, LadisError
from ladis_core.fleet.config import EndpointSpec
from ladis_core.monitoring import ClaimPolicy, run_job
from ladis_core.monitoring.jobs import load_job
from ladis_core.monitoring.results import JobResult
from ladis_core.store import layout

log = logging.getLogger("ladis.fleet")

OK, EXISTS, FAILED, SKIPPED = "ok", "exists", "failed", "skipped"


@dataclass(frozen=True)
class WindowOptions:
    """How every window runs: the claims' lease and wait, the trial cache, the device
    and the torch threads of one worker."""

    lease_s: float = 900.0
    wait_s: float | None = None
    cache_dir: str | None = None
    device: str | None = None
    threads: int = 1


@dataclass(frozen=True)
class WindowOutcome:
    """What became of one window: ``status`` (``ok``: its result was written now,
    ``exists``: it was done before, ``failed``, ``skipped``), the result when there is
    one, and for a failure the error's ``kind`` and one-line ``message``."""

    endpoint: str
    job_id: str
    status: str
    duration_s: float
    result: JobResult | None = None
    error_kind: str | None = None
    message: str = ""
    worker: str = ""


def run_window(spec: EndpointSpec, at: datetime, options: WindowOptions) -> WindowOutcome:
    """Run the job of ``spec`` at ``at``; never raises (see the module docstring)."""
    import torch

    if torch.get_num_threads() != options.threads:
        torch.set_num_threads(options.threads)  # one worker per core: no thread fights
    worker = f"{socket.gethostname()}:{os.getpid()}"
    job_id = layout.job_id_for(at)
    started = time.perf_counter()
    try:
        result = run_job(
            reference=spec.reference,
            inference=spec.inference,
            output=spec.output,
            at=at,
            layers=list(spec.layers) if spec.layers else None,
            settings=spec.settings,
            rule=spec.rule,
            endpoint=spec.name,
            claim_policy=ClaimPolicy(lease_s=options.lease_s, wait_s=options.wait_s),
            cache_dir=options.cache_dir,
            device=options.device,
        )
        status = OK
    except JobExistsError:
        status = EXISTS
        result = _existing(spec, job_id)
    except LadisError as exc:
        return _failed(spec, job_id, started, exc.kind, redact(str(exc)), worker)
    except Exception as exc:  # noqa: BLE001 - one broken window must not stop the grid
        log.error("window %s %s: %s", spec.name, job_id, redact(traceback.format_exc()))
        message = f"unexpected {type(exc).__name__}: {redact(str(exc))}"
        return _failed(spec, job_id, started, "unexpected", message, worker)
    return WindowOutcome(
        spec.name, job_id, status, time.perf_counter() - started, result, worker=worker
    )


def _existing(spec: EndpointSpec, job_id: str) -> JobResult | None:
    try:
        return load_job(spec.output, job_id)
    except LadisError:
        return None


def _failed(
    spec: EndpointSpec, job_id: str, started: float, kind: str, message: str, worker: str
) -> WindowOutcome:
    outcome = WindowOutcome(
        spec.name,
        job_id,
        FAILED,
        time.perf_counter() - started,
        error_kind=kind,
        message=message,
        worker=worker,
    )
    record_failure(spec.output, outcome)
    return outcome


def failures_uri(output: str, job_id: str) -> str:
    """Where the failed attempts of one window are recorded."""
    return layout.join(layout.job_uri(output, job_id), "failures")


def record_failure(output: str, outcome: WindowOutcome) -> None:
    """Write one failure record beside the job (best effort: S3 may be what failed)."""
    now = datetime.now(UTC)
    name = f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{uuid.uuid4().hex[:8]}.json"
    record = {
        "endpoint": outcome.endpoint,
        "job_id": outcome.job_id,
        "failed_at": now.isoformat(),
        "kind": outcome.error_kind,
        "message": outcome.message,
        "worker": outcome.worker,
        "duration_s": round(outcome.duration_s, 3),
    }
    try:
        store.write_json(layout.join(failures_uri(output, outcome.job_id), name), record)
    except LadisError as exc:
        log.warning(
            "could not record the failure of %s %s: %s", outcome.endpoint, outcome.job_id, exc
        )
