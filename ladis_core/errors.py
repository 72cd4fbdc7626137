"""Every LADIS error, each with a machine-readable ``kind``.

Every error that a user can cause (bad input, missing data, S3 trouble) is raised as a
:class:`LadisError` subclass whose ``str()`` is one clear sentence naming the problem and
what to do. The CLI prints it and exits with code 2; the dashboard and the HTTP endpoint
decide what to show or answer from the class (or its ``kind``), never from the message
text. Messages never contain credentials: build them with :func:`ladis_core.config.redact`.
"""

from __future__ import annotations

from typing import ClassVar


class LadisError(Exception):
    """Base class: an error whose message is safe and useful to show to a user."""

    #: a stable name of what went wrong, for programs (logs, JSON answers, the dashboard)
    kind: ClassVar[str] = "error"
    #: the CLI's exit status for this error
    exit_code: ClassVar[int] = 2


# --------------------------------------------------------------------------- input and data


class InputError(LadisError, ValueError):
    """An argument, file or array is not what is expected (names the input and value)."""

    kind = "input"


class DataNotFoundError(LadisError):
    """A trial, job, layer or object that was asked for does not exist."""

    kind = "not-found"


# --------------------------------------------------------------------------- storage


class StorageError(LadisError):
    """S3 or the local store failed (the subclasses say how when it is known)."""

    kind = "storage"


class StorageUnreachableError(StorageError):
    """The S3 endpoint cannot be reached (down, wrong address, network)."""

    kind = "storage-unreachable"


class StorageAccessDeniedError(StorageError):
    """The store refused the credentials, or there are none."""

    kind = "storage-denied"


class BucketNotFoundError(StorageError):
    """The bucket (or local folder) a URI points into does not exist."""

    kind = "bucket-not-found"


class CorruptObjectError(StorageError):
    """A stored object is not what its name says (truncated, not JSON, bad records); the
    message names the object."""

    kind = "corrupt-object"


class UnsafeNameError(CorruptObjectError):
    """A name read from storage (an index file's event file, an object key, an archive
    member) would become a local path outside its folder, or has a shape LADIS never
    writes; nothing was written or read through it."""

    kind = "unsafe-name"


class LocalDiskError(StorageError):
    """A local file could not be written (disk full, read-only, permissions); whatever
    was being written was removed, so the cache stays usable."""

    kind = "local-disk"


class ServerError(LadisError):
    """The managed local S3 server could not be started, reached or stopped."""

    kind = "s3-server"


# --------------------------------------------------------------------------- monitoring


class JobExistsError(LadisError):
    """The job id already has a result, so nothing was done.

    Not a failure of the job: whoever runs jobs (``monitor``, the schedule, a fleet)
    treats it as "already done" and carries on; the CLI says so and exits 0."""

    kind = "job-exists"

    def __init__(self, job_id: str, uri: str, *, detail: str = "") -> None:
        self.job_id = job_id
        self.uri = uri
        super().__init__(f"job {job_id} already exists at {uri}{detail}; nothing done")


class ClaimTimeoutError(LadisError):
    """Another job still holds the claim on the next steps after waiting ``wait_s``."""

    kind = "claim-timeout"


class MetricsError(LadisError):
    """CloudWatch refused or could not be reached; the message names the namespace."""

    kind = "metrics"


# --------------------------------------------------------------------------- fleet


class ConfigError(InputError):
    """The fleet configuration is unreadable or wrong; the message names the key and line."""

    kind = "config"


class EngineError(LadisError):
    """The distributed engine (a Dask cluster) cannot be started, joined or used."""

    kind = "engine"


class AlertDeliveryError(LadisError):
    """An alert channel refused or could not be reached (after its retries)."""

    kind = "alert-delivery"


# --------------------------------------------------------------------------- capture and serving


class CaptureClosedError(LadisError):
    """A request reached a capture that has been closed."""

    kind = "capture-closed"


class CaptureConflictError(LadisError):
    """Another writer published a different step under the same name in the trial (two
    endpoints capturing to one URI): publishing stops so neither trial is corrupted."""

    kind = "capture-conflict"


class UnsupportedContentTypeError(InputError):
    """The request's ``Content-Type`` is not one the endpoint decodes (HTTP 415)."""

    kind = "unsupported-content-type"
    status = 415


class NotAcceptableError(InputError):
    """The request's ``Accept`` asks for a response type the endpoint cannot write (406)."""

    kind = "not-acceptable"
    status = 406


class EndpointBusyError(LadisError):
    """Every worker of the endpoint is busy and its queue is full; retry later (HTTP 503)."""

    kind = "endpoint-busy"
    status = 503


class EndpointClosedError(LadisError):
    """The endpoint was shut down; the request was not run (HTTP 503)."""

    kind = "endpoint-closed"
    status = 503


class InvocationError(LadisError):
    """The endpoint refused or failed a request (``status`` is the HTTP code, ``None``
    when it could not be reached)."""

    kind = "invocation"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- access (dashboard)


class SourceNotAllowedError(LadisError):
    """A data source or trial URI lies outside the allowed sources (``LADIS_S3_URI`` and
    ``LADIS_ALLOWED_SOURCES``); the message names the allow-list. Nothing was read."""

    kind = "source-not-allowed"


class PermissionDeniedError(LadisError):
    """The signed-in user's role does not allow the action (the message names the role
    that does)."""

    kind = "permission-denied"


class AccessConfigError(LadisError):
    """The sign-in or role settings are unusable (a bad roles file, an unknown role name,
    an incomplete ``[auth]`` section): the dashboard shows nothing until it is fixed."""

    kind = "access-config"


class CostLimitError(InputError):
    """An on-demand test asks for more work than the configured caps allow (the message
    names the cap and its setting)."""

    kind = "cost-limit"


class BusyError(LadisError):
    """The user already has an on-demand test running; one at a time."""

    kind = "busy"


def check(condition: bool, message: str) -> None:
    """Raise :class:`InputError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise InputError(message)
