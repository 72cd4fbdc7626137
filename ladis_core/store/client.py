"""URIs and the shared boto3 client of the store, and the translation of boto3's
exceptions into secret-free LADIS errors.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from ladis_core.config import S3Settings, redact
from ladis_core.errors import (
    BucketNotFoundError,
    DataNotFoundError,
    StorageAccessDeniedError,
    StorageError,
    StorageUnreachableError,
)

DEFAULT_WORKERS = 32


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ``("bucket", "a/b")``."""
    if not is_s3(uri):
        raise StorageError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise StorageError(f"no bucket in {uri!r}; expected s3://bucket/prefix")
    return bucket, key


def local_path(uri: str) -> Path:
    """The filesystem path of a local URI (``file:///x`` or a plain path)."""
    text = str(uri)
    return Path(text[len("file://") :] if text.startswith("file://") else text)


_client_lock = threading.Lock()


_clients: dict[tuple, Any] = {}


def s3_client() -> Any:
    """A boto3 S3 client for the current AWS environment (shared, thread-safe)."""
    settings = S3Settings.from_environment()
    cache_key = (
        settings.endpoint_url,
        settings.region,
        os.environ.get("AWS_ACCESS_KEY_ID"),
        os.environ.get("AWS_SECRET_ACCESS_KEY"),
        os.environ.get("AWS_SESSION_TOKEN"),
        os.environ.get("AWS_PROFILE"),
    )
    with _client_lock:
        client = _clients.get(cache_key)
        if client is None:
            client = new_s3_client(
                endpoint_url=settings.endpoint_url,
                region=settings.region,
                max_attempts=3,
                connect_timeout=5,
                read_timeout=60,
                pool=DEFAULT_WORKERS + 8,
            )
            _clients[cache_key] = client
        return client


def new_s3_client(
    *,
    endpoint_url: str | None,
    region: str,
    access_key: str | None = None,
    secret_key: str | None = None,
    max_attempts: int,
    connect_timeout: float,
    read_timeout: float,
    pool: int = 10,
) -> Any:
    """A new boto3 S3 client: credentials from the arguments when given, else from boto3's
    usual sources (environment, profiles, roles)."""
    import boto3
    from botocore.config import Config

    config = Config(
        max_pool_connections=pool,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    keys = {}
    if access_key is not None:
        keys = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config, **keys
    )


def _storage_error(exc: BaseException, uri: str, action: str) -> Exception:
    """Translate a boto3/botocore exception into a clear, secret-free LADIS error."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    where = S3Settings.from_environment().describe()
    if isinstance(exc, EndpointConnectionError | ConnectionError):
        return StorageUnreachableError(
            f"cannot reach S3 at {where} while trying to {action} {uri}; is the server running "
            "(python -m ladis_core s3 start) and AWS_ENDPOINT_URL_S3 right?"
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StorageAccessDeniedError(
            f"no AWS credentials to {action} {uri}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in {"NoSuchKey", "404", "NotFound"}:
            return DataNotFoundError(f"{uri} does not exist")
        if code == "NoSuchBucket":
            bucket = split_s3(uri)[0]
            return BucketNotFoundError(
                f"bucket {bucket!r} does not exist at {where} (needed to {action} {uri})"
            )
        if (
            code
            in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden"}
            or status == 403
        ):
            return StorageAccessDeniedError(
                f"access denied by {where} to {action} {uri} ({code or status}); "
                "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy"
            )
        return StorageError(f"S3 error {code or status} at {where} while trying to {action} {uri}")
    return StorageError(f"S3 failure at {where} while trying to {action} {uri}: {redact(str(exc))}")


def _s3_call(uri: str, action: str, func, /, **kwargs):
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return func(**kwargs)
    except (BotoCoreError, ClientError, ConnectionError) as exc:
        raise _storage_error(exc, uri, action) from None


def _stream_errors() -> tuple[type[BaseException], ...]:
    import http.client

    from botocore.exceptions import BotoCoreError
    from urllib3.exceptions import HTTPError

    return (BotoCoreError, HTTPError, http.client.HTTPException, OSError)


def _broken_stream(exc: BaseException, uri: str, done: int) -> StorageError:
    where = S3Settings.from_environment().describe()
    return StorageUnreachableError(
        f"the connection to S3 at {where} broke while reading {uri} (after {done} bytes: "
        f"{exc.__class__.__name__}); nothing of it was kept; try again"
    )


def read_body(body: Any, uri: str) -> bytes:
    """All of a ``get_object`` body; a stream cut short (the server died, a body shorter
    than its ``Content-Length``) is a :class:`StorageUnreachableError` naming ``uri``."""
    chunks: list[bytes] = []
    done = 0
    try:
        while chunk := body.read(1 << 20):
            chunks.append(chunk)
            done += len(chunk)
    except _stream_errors() as exc:
        raise _broken_stream(exc, uri, done) from None
    finally:
        body.close()
    return b"".join(chunks)


def copy_body(body: Any, uri: str, handle: Any) -> int:
    """Copy a ``get_object`` body into the open file ``handle``; returns the bytes copied.
    Stream failures are as in :func:`read_body`; write failures (disk full) propagate as
    ``OSError`` for the caller to name the local file."""
    done = 0
    try:
        while True:
            try:
                chunk = body.read(1 << 20)
            except _stream_errors() as exc:
                raise _broken_stream(exc, uri, done) from None
            if not chunk:
                return done
            handle.write(chunk)
            done += len(chunk)
    finally:
        body.close()
